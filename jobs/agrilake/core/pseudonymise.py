"""RIC -> person_key: lowercase hex HMAC-SHA256 of the upper-cased RIC under a secret key.

The key comes from AGRILAKE_PSEUDO_KEY, or from the password of the Airflow connection named by
AGRILAKE_PSEUDO_KEY_CONN_ID; outside demo mode (AGRILAKE_DEMO=1) a run without one refuses to start.
The key is never logged and never written anywhere. What is written is its fingerprint (an HMAC of a
fixed label under the key: it names the key without revealing it), as the table property
`agrilake.person_key.fingerprint` of every silver table holding person keys and in every export
manifest: a run whose key has another fingerprint refuses to append (keys under two secrets would
split one person in two), and a consumer can tell a key rotation from a change of people.

The public demo key only ever pseudonymises the local demo: with an object-store lakehouse or an S3
endpoint that is not on this machine, demo mode refuses to start.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from urllib.parse import urlparse

from agrilake.core.credentials import CredentialsMissing, airflow_connection
from agrilake.core.settings import DEMO_PSEUDO_KEY, Settings

log = logging.getLogger(__name__)


class MissingSecret(CredentialsMissing):
    """No pseudonymisation key was configured; the message says how to give one."""


class KeyMismatch(RuntimeError):
    """The lakehouse holds person keys made with another key; the message says what to do."""


FINGERPRINT_PROPERTY = "agrilake.person_key.fingerprint"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def fingerprint(key: str) -> str:
    """What identifies a pseudonymisation key without revealing it (16 hex digits)."""
    return hmac.new(key.encode("utf-8"), b"agrilake person_key fingerprint v1", hashlib.sha256).hexdigest()[:16]


def _demo_refusal(settings: Settings) -> str | None:
    if "://" in settings.lakehouse and not settings.lakehouse.startswith("file:"):
        return f"the lakehouse {settings.lakehouse} is not a local folder"
    if settings.s3_endpoint and urlparse(settings.s3_endpoint).hostname not in LOCAL_HOSTS:
        return f"the S3 endpoint {settings.s3_endpoint} is not on this machine"
    return None


def resolve_key(settings: Settings) -> str:
    if settings.pseudo_key:
        return settings.pseudo_key
    conn_id = settings.pseudo_key_conn_id
    if conn_id:
        password = airflow_connection(conn_id).password
        if password:
            return password
        raise MissingSecret(f"Airflow connection {conn_id!r} has no password: put the pseudonymisation key there")
    if settings.demo_mode:
        refusal = _demo_refusal(settings)
        if refusal:
            raise MissingSecret(f"AGRILAKE_DEMO=1 but {refusal}: the public demo key only pseudonymises the local "
                                "demo's synthetic data; set AGRILAKE_PSEUDO_KEY (or AGRILAKE_PSEUDO_KEY_CONN_ID)")
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


# Column names of the HMAC key pads that with_key_pads() joins onto a frame.
IPAD, OPAD = "__hmac_ipad", "__hmac_opad"
_STRIP = r"(?U)^[\s\x1c-\x1f]+|[\s\x1c-\x1f]+$"  # what str.strip() strips


def key_pads(key: str) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer padded keys (RFC 2104): the key, hashed if longer than a block,
    zero-padded to 64 bytes, XORed with 0x36 and 0x5c."""
    raw = key.encode("utf-8")
    if len(raw) > 64:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)


def with_key_pads(df, key: str):
    """`df` with the key pads as two columns, from a one-row DataFrame joined in: the key travels as
    data, so it never appears in a SQL text, a plan, the UI or an event log (a literal would)."""
    from pyspark.sql import functions as F

    ipad, opad = key_pads(key)
    pads = df.sparkSession.createDataFrame([(bytearray(ipad), bytearray(opad))], f"{IPAD} binary, {OPAD} binary")
    return df.crossJoin(F.broadcast(pads))


def person_key_column(ric):
    """person_key as a Spark expression (no Python per row): HMAC-SHA256 = SHA256(opad || SHA256(ipad ||
    message)), the message being the RIC stripped and upper-cased as person_key() does. Needs the
    pad columns of with_key_pads()."""
    from pyspark.sql import functions as F

    message = F.encode(F.upper(F.regexp_replace(ric, _STRIP, "")), "UTF-8")
    inner = F.unhex(F.sha2(F.concat(F.col(IPAD), message), 256))
    return F.when(ric.isNotNull(), F.sha2(F.concat(F.col(OPAD), inner), 256))
