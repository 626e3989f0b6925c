"""`agrilake sql-server start|stop|status`: the SQL endpoint, a Spark Connect server on 127.0.0.1.

BI tools, notebooks and other programs connect with any Spark Connect client (pyspark-client,
the Scala/Go/Rust clients, tools built on them):

    from pyspark.sql import SparkSession
    spark = SparkSession.builder.remote("sc://127.0.0.1:15002").getOrCreate()
    spark.sql("SELECT * FROM gold.coop_credit_profile").show()

The server is pyspark's own SparkConnectServer (its jar is in the pip wheel), started with
spark-submit on the project's session settings (Delta jars and catalog, AGRILAKE_SPARK_MASTER,
driver memory) and the persistent catalog. It binds to the loopback interface only, and has no
authentication: anyone who can open a connection on this machine can query. It holds the catalog
while it runs, and the agrilake commands then query through it (catalog.open_session).

State under `<catalog>/sql-server/`: server.json (pid, port, url) and server.log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from jobs.processes import pid_alive as _alive
from jobs.settings import Settings, get_settings
from jobs.sql.catalog import CatalogBusy, CatalogLock, catalog_dir

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
HOST = "127.0.0.1"
DEFAULT_PORT = 15002  # Spark Connect's own default, what clients try first


class ServerError(RuntimeError):
    """The SQL server cannot start or stop; the message says why and what to do."""


def state_dir(settings: Settings | None = None) -> Path:
    return Path(catalog_dir(settings)) / "sql-server"


def url_of(port: int) -> str:
    return f"sc://{HOST}:{port}"


def read_state(settings: Settings | None = None) -> dict:
    try:
        return json.loads((state_dir(settings) / "server.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write_state(settings: Settings, state: dict) -> None:
    path = state_dir(settings) / "server.json"
    tmp = path.with_name("server.json.tmp")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _is_ours(pid: int | None, port: int | None) -> bool:
    """Is `pid` the server started for this catalog? A stale pid file may name an unrelated process by now."""
    if not pid or not _alive(pid):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return True  # no /proc: trust the pid file
    return SERVER_CLASS in args and f"spark.connect.grpc.binding.port={port}" in args


def answers(port: int, timeout: float = 1.0) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        return s.connect_ex((HOST, port)) == 0


def running_pid(settings: Settings | None = None) -> int | None:
    state = read_state(settings)
    return state.get("pid") if _is_ours(state.get("pid"), state.get("port")) else None


def running_url(settings: Settings | None = None) -> str | None:
    """The server's URL when it runs for this lakehouse and accepts connections, else None."""
    state = read_state(settings)
    if _is_ours(state.get("pid"), state.get("port")) and answers(state["port"]):
        return url_of(state["port"])
    return None


def command(settings: Settings, port: int) -> list[str]:
    """spark-submit of SparkConnectServer with the project's session settings and the persistent catalog."""
    from pyspark.find_spark_home import _find_spark_home

    from jobs.spark import spark_conf

    conf = spark_conf(settings, catalog_dir=catalog_dir(settings))
    conf.update({
        "spark.connect.grpc.binding.address": HOST,
        "spark.connect.grpc.binding.port": str(port),
    })
    argv = [str(Path(_find_spark_home()) / "bin" / "spark-submit"), "--class", SERVER_CLASS,
            "--name", "agrilake-sql-server", "--master", settings.spark_master]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return argv


def _log_tail(path: Path, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        keep = [line for line in path.read_text(errors="replace").splitlines() if not line.startswith("\tat ")]
        return "\n".join(keep[-lines:])
    return ""


def start(settings: Settings | None = None, port: int = DEFAULT_PORT, timeout: float = 180.0) -> str:
    """Start the server (unless it runs), wait until it accepts connections, register the tables; its URL.

    The registration goes through the server as a Spark Connect client, which turns this process into
    one (jobs.spark.connect_spark): call it from a process of its own, as the command does.
    """
    from jobs.spark import check_java, connect_spark
    from jobs.sql.catalog import refresh
    from jobs.sql.output import explain, quiet_pyspark

    settings = settings or get_settings()
    url = running_url(settings)
    if url:
        return url
    if running_pid(settings):
        raise ServerError(f"a SQL server for this lakehouse is starting (pid {running_pid(settings)}); "
                          "`agrilake sql-server status` tells when it answers")
    if answers(port):
        raise ServerError(f"port {port} on {HOST} is taken by another program: pass --port with a free one")
    check_java()
    directory = state_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    lock = CatalogLock(catalog_dir(settings)).acquire("agrilake sql-server, starting")
    log_path = directory / "server.log"
    env = {**os.environ, "SPARK_LOCAL_IP": HOST, "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)}
    try:
        with open(log_path, "ab") as out:
            # Its own session: Ctrl+C in the shell that started it must not stop it. The catalog lock's
            # descriptor goes with it, so the lock lasts exactly as long as the server.
            proc = subprocess.Popen(command(settings, port), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=directory, env=env, start_new_session=True,
                                    pass_fds=(lock.fd,))
        lock.note(proc.pid, "agrilake sql-server")
    finally:
        lock.release()  # this process's copy only
    _write_state(settings, {"pid": proc.pid, "port": port, "url": url_of(port), "log": str(log_path),
                            "lakehouse": settings.lakehouse, "started_at": datetime.now(UTC).isoformat()})
    deadline = time.monotonic() + timeout
    while not answers(port):
        if proc.poll() is not None:
            raise ServerError(f"the SQL server exited during start-up (code {proc.returncode}); "
                              f"the end of {log_path}:\n{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            stop(settings)
            raise ServerError(f"the SQL server did not answer on {url_of(port)} within {timeout:.0f} s; "
                              f"the end of {log_path}:\n{_log_tail(log_path)}")
        time.sleep(0.5)
    quiet_pyspark()
    try:
        report = refresh(connect_spark(url_of(port)), settings, all_comments=True)
    except Exception as exc:
        stop(settings)
        raise ServerError(f"the SQL server started but could not register the tables: {explain(exc)}") from exc
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return url_of(port)


def stop(settings: Settings | None = None, timeout: float = 30.0) -> bool:
    """Stop the server (SIGTERM to its process group, SIGKILL after `timeout`); False when it was not running."""
    settings = settings or get_settings()
    state = read_state(settings)
    pid = state.get("pid")
    if not _is_ours(pid, state.get("port")):
        if state:
            _write_state(settings, {**state, "pid": None})
        return False
    # The group is the one start() created for the server (start_new_session): its JVM and any child.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaps it when this process started it
    port = state.get("port")
    while port and answers(port, timeout=0.2) and time.monotonic() < deadline + 5:
        time.sleep(0.1)  # the listener closes with the last thread: "stopped" means nobody answers any more
    _write_state(settings, {**state, "pid": None})
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake sql-server", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on {HOST} (default {DEFAULT_PORT})")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the server to answer")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        if args.action == "start":
            url = start(settings, args.port, args.timeout)
            print(f"SQL server running: {url} (pid {running_pid(settings)}, lakehouse {settings.lakehouse}, "
                  f"log {state_dir(settings) / 'server.log'})")
        elif args.action == "stop":
            print("SQL server stopped" if stop(settings) else "SQL server was not running")
        else:
            url = running_url(settings)
            if not url:
                pid = running_pid(settings)
                print(f"SQL server starting (pid {pid}), not answering yet" if pid else
                      "SQL server not running (`agrilake sql-server start`)")
                return 1
            print(f"SQL server running: {url} (pid {running_pid(settings)}, lakehouse {settings.lakehouse})")
    except (ServerError, CatalogBusy) as exc:
        print(f"agrilake sql-server: {exc}", file=sys.stderr)
        return 1
    return 0
