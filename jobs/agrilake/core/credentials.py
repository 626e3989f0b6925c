"""Secrets from outside the repository: Airflow connections, and the S3 identity the exports use.

Every secret the pipeline may keep in an Airflow connection (the pseudonymisation key, the platforms'
object store) and the Spark connection of the DAGs are looked up here, one way. Airflow is imported
only when a connection is named: it costs seconds, and the CLI must not need it otherwise.
"""

from __future__ import annotations

from agrilake.core.s3 import LocalStoreMissing, S3Target, local_store_target
from agrilake.core.settings import Settings


class CredentialsMissing(RuntimeError):
    """No usable credentials were configured; the message says what to set."""


def airflow_connection(conn_id: str):
    """The Airflow connection `conn_id` (Airflow 3's task SDK, else Airflow 2's hook).

    Never log what this returns: a connection's repr shows its password."""
    try:
        from airflow.sdk import BaseHook
    except ImportError:
        from airflow.hooks.base import BaseHook
    return BaseHook.get_connection(conn_id)


def has_airflow_connection(conn_id: str) -> bool:
    try:
        airflow_connection(conn_id)
    except Exception:  # noqa: BLE001 - Airflow raises its own not-found types across versions
        return False
    return True


def s3_target(s: Settings) -> S3Target:
    """The pipeline's S3 identity: environment, else Airflow connection, else the local object store."""
    if s.s3_access_key or s.s3_secret_key:
        if not (s.s3_access_key and s.s3_secret_key):
            missing = "AGRILAKE_S3_SECRET_KEY" if s.s3_access_key else "AGRILAKE_S3_ACCESS_KEY"
            raise CredentialsMissing(f"{missing} is not set while its pair is: set both, or neither")
        return S3Target(s.s3_endpoint, s.s3_access_key, s.s3_secret_key, s.s3_region, source="environment")
    if s.s3_conn_id:
        return _s3_from_airflow(s.s3_conn_id, s)
    try:
        target = local_store_target(s.exports_dir, "pipeline", s.s3_region)
    except LocalStoreMissing as exc:
        raise CredentialsMissing(
            "no S3 credentials: set AGRILAKE_S3_ENDPOINT, AGRILAKE_S3_ACCESS_KEY and AGRILAKE_S3_SECRET_KEY, "
            "or AGRILAKE_S3_CONN_ID (an Airflow aws connection), or run `agrilake objectstore start` "
            f"for the local store ({exc})"
        ) from None
    if s.s3_endpoint:
        target = S3Target(s.s3_endpoint, target.access_key, target.secret_key, target.region, target.source)
    return target


def _s3_from_airflow(conn_id: str, s: Settings) -> S3Target:
    conn = airflow_connection(conn_id)
    extra = conn.extra_dejson or {}
    access = conn.login or extra.get("aws_access_key_id")
    secret = conn.password or extra.get("aws_secret_access_key")
    if not (access and secret):
        raise CredentialsMissing(f"Airflow connection {conn_id!r} has no access key and secret "
                                 "(login/password, or aws_access_key_id/aws_secret_access_key in extra)")
    endpoint = (s.s3_endpoint or extra.get("endpoint_url")
                or extra.get("service_config", {}).get("s3", {}).get("endpoint_url"))
    region = extra.get("region_name") or s.s3_region
    return S3Target(endpoint, access, secret, region, source=f"Airflow connection {conn_id!r}")
