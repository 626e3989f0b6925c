"""Where the SQL endpoint of a catalog runs and whether it answers: the state `agrilake sql-server` keeps.

`<catalog>/sql-server/server.json` (pid, port, url) and `server.log`. The analyst commands read it
(agrilake.analyst.catalog.open_context) to query through a running server; starting one
(agrilake.analyst.sql_server, the `agrilake sql-server` command) needs the catalog code, so it lives
with the analyst tools and uses this, keeping the rooms' imports one-way: analyst -> services.
"""

from __future__ import annotations

from pathlib import Path

from agrilake.services.lifecycle import LifecycleError, Server
from agrilake.services.processes import HOST, answers

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
DEFAULT_PORT = 15002  # Spark Connect's own default, what clients try first


class ServerError(LifecycleError):
    """The SQL server cannot start or stop; the message says why and what to do."""


def url_of(port: int) -> str:
    return f"sc://{HOST}:{port}"


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
