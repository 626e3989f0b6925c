"""Where the SQL endpoint of a catalog runs and whether it answers: the state `agrilake sql-server` keeps.

`<catalog>/sql-server/server.json` (pid, port, url), `server.log`, and three secrets the server was
started with, each mode 0600: `token`, the bearer token every client must present (Spark Connect's own
pre-shared-key authentication), `admin.token`, the one that lets the catalog's registration write
(infra/guard: every other plan is read-only), and `operator.token`, the one that lets a session read
the tables holding personal data in clear (bronze, the raw quarantine). The analyst commands read it
(agrilake.analyst.catalog.open_context) to query through a running server; starting one
(agrilake.analyst.sql_server, the `agrilake sql-server` command) needs the catalog code, so it lives
with the analyst tools and uses this, keeping the rooms' imports one-way: analyst -> services.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from agrilake.services.lifecycle import LifecycleError, Server, write_atomic
from agrilake.services.processes import HOST, answers

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002  # Spark Connect's own default, what clients try first


class ServerError(LifecycleError):
    """The SQL server cannot start or stop; the message says why and what to do."""


def url_of(port: int) -> str:
    return f"sc://{HOST}:{port}"


def client_url(port: int, token: str) -> str:
    """The URL a client connects with. pyspark sends a token without TLS only to `localhost` (gRPC's
    local credentials: the loopback interface, where the server listens), never over a network."""
    return f"sc://localhost:{port}/;token={token}"


class SqlEndpoint(Server):
    """The Spark Connect server of the catalog kept in `catalog_directory`, as its state file tells."""

    title = "SQL server"
    error = ServerError
    poll_interval = 0.5
    start_timeout = 180.0
    tail_lines = 25

    def __init__(self, catalog_directory: str | Path):
        super().__init__(Path(catalog_directory) / "sql-server")

    def owns(self, args: list[str], state: dict) -> bool:
        return SERVER_CLASS in args and f"spark.connect.grpc.binding.port={state.get('port')}" in args

    def ports(self, state: dict) -> list[int]:
        return [state["port"]] if state.get("port") else []

    def ready(self) -> bool:
        return answers(self.state()["port"])

    def running_url(self) -> str | None:
        """The server's URL when it runs for this catalog and accepts connections, else None."""
        state = self.state()
        if self.is_ours(state.get("pid"), state) and answers(state["port"]):
            return url_of(state["port"])
        return None

    def running_client_url(self) -> str | None:
        """The URL with the server's token, for agrilake's own commands (None when it does not run)."""
        return client_url(self.state()["port"], self.token()) if self.running_url() else None

    @property
    def token_file(self) -> Path:
        return self.run_dir / "token"

    @property
    def admin_token_file(self) -> Path:
        return self.run_dir / "admin.token"

    def token(self) -> str:
        return self.token_file.read_text(encoding="utf-8").strip()

    @property
    def operator_token_file(self) -> Path:
        return self.run_dir / "operator.token"

    def admin_token(self) -> str | None:
        return _read_secret(self.admin_token_file)

    def operator_token(self) -> str | None:
        return _read_secret(self.operator_token_file)

    def new_tokens(self) -> tuple[str, str, str]:
        """Fresh (client, admin, operator) tokens for a start, written 0600 before the server exists."""
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=self.run_dir_mode)
        tokens = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        for path, token in zip((self.token_file, self.admin_token_file, self.operator_token_file), tokens, strict=True):
            write_atomic(path, token, private=True)
        return tokens


def _read_secret(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
