"""RIC -> person_key: lowercase hex HMAC-SHA256 of the upper-cased RIC under a secret key.

The key comes from AGRILAKE_PSEUDO_KEY, or from the password of the Airflow connection named by
AGRILAKE_PSEUDO_KEY_CONN_ID; outside demo mode (AGRILAKE_DEMO=1) a run without one refuses to start.
The key is never logged and never written anywhere.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

import pandas as pd

from agrilake.core.settings import DEMO_PSEUDO_KEY, Settings

log = logging.getLogger(__name__)


class MissingSecret(RuntimeError):
    pass


def resolve_key(settings: Settings) -> str:
    if settings.pseudo_key:
        return settings.pseudo_key
    conn_id = settings.pseudo_key_conn_id
    if conn_id:
        from airflow.sdk import BaseHook

        password = BaseHook.get_connection(conn_id).password
        if password:
            return password
        raise MissingSecret(f"Airflow connection {conn_id!r} has no password: put the pseudonymisation key there")
    if settings.demo_mode:
        log.warning("pseudonymising with the PUBLIC DEMO KEY (AGRILAKE_DEMO=1): synthetic data only")
        return DEMO_PSEUDO_KEY
    raise MissingSecret(
        "no pseudonymisation key: set AGRILAKE_PSEUDO_KEY (or AGRILAKE_PSEUDO_KEY_CONN_ID naming an Airflow "
        "connection whose password is the key); AGRILAKE_DEMO=1 allows the public demo key for synthetic data"
    )


def person_key(ric: str | None, key: str) -> str | None:
    if ric is None:
        return None
    return hmac.new(key.encode("utf-8"), ric.strip().upper().encode("utf-8"), hashlib.sha256).hexdigest()


def person_key_column(col, key: str):
    """A Spark column of person_key for a column of RICs (vectorised over Arrow batches)."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def _hmac(rics: pd.Series) -> pd.Series:
        return rics.map(lambda r: person_key(r, key), na_action="ignore")

    return _hmac(col)
