"""S3 as the pipeline talks to it: who (S3Target), the one boto3 client factory, and masking.

Production points AGRILAKE_S3_* (or an Airflow connection) at the platforms' store; the local
object store of the demo and the tests (agrilake.services.objectstore) writes its endpoint and
generated keys into two files under settings.exports_dir, which `local_store_target` reads: the
export never needs the code that runs that server.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

# Files of the local object store under settings.exports_dir (written by agrilake.services.objectstore).
CREDENTIALS_FILE = "credentials.json"  # 0600: access key and secret per identity
STATE_FILE = "server.json"  # pid, ports and endpoint; no secrets


class LocalStoreMissing(RuntimeError):
    """The local object store has no credentials or was never started; the message says what to run."""


def mask(access_key: str) -> str:
    """An access key id shortened for logs: enough to tell identities apart, not enough to use."""
    return f"{access_key[:4]}***{access_key[-2:]}" if len(access_key) > 8 else "***"


@dataclass(frozen=True)
class S3Target:
    """Where and as whom to talk S3. The secret never appears in repr, str or logs."""

    endpoint: str | None
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    source: str = ""

    def describe(self) -> str:
        return f"{self.endpoint or 'AWS S3'} as {mask(self.access_key)} (credentials from {self.source})"


def s3_client(target: S3Target, *, max_attempts: int = 5, connect_timeout: float = 5, read_timeout: float = 60):
    """The project's one boto3 S3 client factory: SigV4, path-style, standard-mode retries with backoff."""
    import boto3
    from botocore.config import Config

    from agrilake import __version__

    config = Config(
        signature_version="s3v4",
        # SeaweedFS (and most on-premise stores) have no wildcard DNS for virtual-hosted buckets.
        s3={"addressing_style": "path" if target.endpoint else "auto"},
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra=f"agrilake/{__version__}",
    )
    global _SESSION
    # A private session (not boto3's default one), and every client is given its identity: nothing from
    # ~/.aws or AWS_* variables may leak into which identity is used. One session for all clients: a
    # new one builds botocore's S3 client class again (0.5-1 s each time); sessions are not
    # thread-safe, so clients are made one at a time.
    with _SESSION_LOCK:
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client(
            "s3", endpoint_url=target.endpoint, region_name=target.region, config=config,
            aws_access_key_id=target.access_key, aws_secret_access_key=target.secret_key,
        )


_SESSION = None
_SESSION_LOCK = threading.Lock()


def local_store_target(root: str | Path, identity: str, region: str) -> S3Target:
    """The identity's keys and the endpoint of the local object store kept under `root`."""
    root = Path(root)
    creds_file, state_file = root / CREDENTIALS_FILE, root / STATE_FILE
    if not creds_file.is_file():
        raise LocalStoreMissing(f"no local object store credentials at {creds_file}: run `agrilake objectstore start`")
    creds = json.loads(creds_file.read_text(encoding="utf-8"))[identity]
    try:
        port = json.loads(state_file.read_text(encoding="utf-8")).get("ports", {}).get("s3.port")
    except (FileNotFoundError, json.JSONDecodeError):
        port = None
    if not port:
        raise LocalStoreMissing(f"the object store at {root} was never started: `agrilake objectstore start`")
    return S3Target(f"http://127.0.0.1:{port}", creds["access_key"], creds["secret_key"], region,
                    source=f"local object store {root}")
