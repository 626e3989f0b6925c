"""`agrilake sql-server start|stop|status`: the SQL endpoint, a Spark Connect server on 127.0.0.1.

BI tools, notebooks and other programs connect with any Spark Connect client (pyspark-client,
the Scala/Go/Rust clients, tools built on them):

    from pyspark.sql import SparkSession
    spark = SparkSession.builder.remote("sc://127.0.0.1:15002").getOrCreate()
    spark.sql("SELECT * FROM gold.coop_credit_profile").show()

The server is pyspark's own SparkConnectServer (its jar is in the pip wheel), started with
spark-submit on the project's session settings (Delta jars and catalog, AGRILAKE_SPARK_MASTER,
driver memory) and the persistent catalog. It binds to the loopback interface only and every client
must present the bearer token the server was started with (Spark Connect's pre-shared key), kept
mode 0600 in `<catalog>/sql-server/token`; pyspark sends it, without TLS, only to `localhost`:

    sc://localhost:15002/;token=<the token>

What a client may run is read-only whatever it sends, SQL or DataFrame plans (infra/guard); none of
a client's code runs in it (no artifacts, UDFs or streaming queries; runtime settings from a safe list
only: ConnectGuard); it has no Spark UI, and its environment holds only the variables it needs. It
holds the catalog while it runs, and the agrilake commands then query through it (catalog.open_context).

State under `<catalog>/sql-server/`: server.json (pid, port, url), server.log, token, admin.token,
operator.token (operators present it to read bronze and the raw quarantine: docs/querying.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from agrilake.analyst.catalog import (
    ADMIN_ENV,
    OPERATOR_ENV,
    CatalogBusy,
    CatalogLock,
    analyst_environment,
    catalog_dir,
    refresh,
)
from agrilake.core.context import RunContext
from agrilake.core.settings import Settings, get_settings
from agrilake.services import lifecycle
from agrilake.services.processes import HOST, answers
from agrilake.services.sql_endpoint import (
    DEFAULT_PORT,
    SERVER_CLASS,
    ServerError,
    SqlEndpoint,
    client_url,
    url_of,
)

__all__ = ["DEFAULT_PORT", "ServerError", "SqlServer", "command", "main", "url_of"]


def command(settings: Settings, port: int) -> list[str]:
    """spark-submit of SparkConnectServer with the project's session settings and the persistent catalog."""
    from pyspark.find_spark_home import _find_spark_home

    from agrilake.core.spark import CONNECT_GUARD_CLASS, spark_conf

    conf = spark_conf(settings, catalog_dir=catalog_dir(settings))
    conf.update({
        "spark.connect.grpc.binding.address": HOST,
        "spark.connect.grpc.binding.port": str(port),
        # No client code, no streaming, runtime settings from a safe list only (infra/guard: why and what).
        "spark.connect.grpc.interceptor.classes": CONNECT_GUARD_CLASS,
        # The UI has no login and shows every session's settings and statements to any local user.
        "spark.ui.enabled": "false",
    })
    argv = [str(Path(_find_spark_home()) / "bin" / "spark-submit"), "--class", SERVER_CLASS,
            "--name", "agrilake-sql-server", "--master", settings.spark_master]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return argv


class SqlServer(SqlEndpoint):
    """The SQL endpoint of the lakehouse of `settings`, on `port` when it starts."""

    def __init__(self, settings: Settings, port: int = DEFAULT_PORT):
        super().__init__(catalog_dir(settings))
        self.settings = settings
        self.port = port

    def launch(self, timeout: float) -> None:
        """Start the server, wait until it accepts connections, register the tables.

        The registration goes through the server as a Spark Connect client, which turns this process into
        one (agrilake.core.spark.connect_spark): call it from a process of its own, as the command does.
        """
        from agrilake.analyst.output import explain, quiet_pyspark
        from agrilake.core.spark import check_java, connect_spark

        if answers(self.port):
            raise ServerError(f"port {self.port} on {HOST} is taken by another program: "
                              "pass --port with a free one")
        check_java()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock = CatalogLock(catalog_dir(self.settings)).acquire("agrilake sql-server, starting")
        token, admin, operator = self.new_tokens()
        env = {**analyst_environment(), "SPARK_LOCAL_IP": HOST, ADMIN_ENV: admin, OPERATOR_ENV: operator,
               "SPARK_CONNECT_AUTHENTICATE_TOKEN": token,
               "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)}
        try:
            # The catalog lock's descriptor goes with the server, so the lock lasts exactly as long as it.
            proc = self.spawn(command(self.settings, self.port),
                              {"port": self.port, "url": url_of(self.port), "log": str(self.log_file),
                               "lakehouse": self.settings.lakehouse},
                              cwd=self.run_dir, env=env, pass_fds=(lock.fd,))
            lock.note(proc.pid, "agrilake sql-server")
        finally:
            lock.release()  # this process's copy only
        with self.stop_on_failure():
            self.wait_ready(timeout)
            quiet_pyspark()
            try:
                client = RunContext(self.settings, connect_spark(client_url(self.port, token)), "agrilake-sql-server")
                report = refresh(client, all_comments=True)
            except Exception as exc:
                raise ServerError(f"the SQL server started but could not register the tables: "
                                  f"{explain(exc)}") from exc
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr)

    def started_message(self, seconds: float) -> str:
        return (f"SQL server running: {self.url} (pid {self.pid()}, lakehouse {self.settings.lakehouse}; clients "
                f"connect to sc://localhost:{self.port}/;token=<the token in {self.token_file}>, "
                f"log {self.log_file})")

    def status_report(self) -> tuple[str, int]:
        """Exit 0 only when the server answers."""
        url = self.running_url()
        if url:
            return f"SQL server running: {url} (pid {self.pid()}, lakehouse {self.settings.lakehouse})", 0
        pid = self.pid()
        return (f"SQL server starting (pid {pid}), not answering yet" if pid else
                "SQL server not running (`agrilake sql-server start`)"), 1


def main(argv: list[str] | None = None) -> int:
    parser = lifecycle.command("agrilake sql-server", __doc__, SqlServer, epilog=True)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port on {HOST} (default {DEFAULT_PORT})")
    args = parser.parse_args(argv)
    server = SqlServer(get_settings(), args.port)
    return lifecycle.run(server, args.action, prog=parser.prog, timeout=args.timeout, errors=(CatalogBusy,))
