"""`agrilake airflow start|stop`: the real API server, scheduler and dag-processor on loopback, SQLite.

Healthy, a JWT from the SimpleAuthManager login, every DAG of dags/ served by the REST API once
the dag-processor has parsed it; then, in the middle of a DAG run (its task running in a process
group of its own under a LocalExecutor worker, starting Spark), `agrilake airflow stop` from another
process, and afterwards no process of the server's tree is left: not its components, not the workers
the scheduler leaves behind, not the task or its JVM.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import psutil
import pytest

from agrilake.core.settings import Settings
from agrilake.services.airflow_server import AirflowServer, http_json
from agrilake.services.processes import descendants, group_members

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent

# What the dag-processor must end up serving: the DAG ids the files of dags/ define.
LOADER = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
print("@@" + json.dumps(sorted(DagBag(dag_folder=sys.argv[1]).dags)))
"""


@pytest.fixture
def server_env(airflow_env, tmp_path):
    """A private copy of the session's migrated SQLite home: the scheduler must not touch other tests' runs."""
    home = tmp_path / "airflow"
    home.mkdir()
    src = airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(src) as a, sqlite3.connect(home / "airflow.db") as b:
        a.backup(b)
    env = dict(airflow_env)
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
               AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True")
    env.pop("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", None)
    return env


def test_start_login_list_every_dag_stop(server_env):
    t0 = time.monotonic()
    loader = subprocess.Popen([sys.executable, "-c", LOADER, str(ROOT / "dags")], env=server_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = AirflowServer(Settings.from_env(server_env), server_env["AIRFLOW_HOME"], port=0, env=server_env)
    tree: dict[psutil.Process, str] = {}
    pgid = None
    try:
        server.start(timeout=150)
        t_healthy = time.monotonic()
        pgid = server.pid()
        assert pgid and server.is_running()
        health = http_json(f"{server.url}/api/v2/monitor/health")
        assert health["metadatabase"]["status"] == "healthy", health
        assert health["scheduler"]["status"] == health["dag_processor"]["status"] == "healthy", health

        out, err = loader.communicate(timeout=180)
        expected = set(json.loads([line for line in out.splitlines() if line.startswith("@@")][-1][2:]))
        assert "agrilake_maintenance" in expected, expected

        with pytest.raises(urllib.error.HTTPError) as denied:
            http_json(f"{server.url}/api/v2/dags")
        assert denied.value.code in (401, 403)
        with pytest.raises(urllib.error.HTTPError) as wrong:
            server.token("admin", "not-the-password")
        assert wrong.value.code == 401
        token = server.token("admin")

        deadline = time.monotonic() + 90
        served: set[str] = set()
        while time.monotonic() < deadline and not expected <= served:
            served = server.dag_ids(token)
            time.sleep(1)
        assert expected <= served, f"never served: {sorted(expected - served)}"
        t_listed = time.monotonic()

        # In the middle of work: a DAG run whose task runs (in a process group of its own, below a worker).
        http_json(f"{server.url}/api/v2/dags/agrilake_doctor", data={"is_paused": False}, token=token,
                  method="PATCH")
        http_json(f"{server.url}/api/v2/dags/agrilake_doctor/dagRuns", data={"logical_date": None}, token=token)
        tree = _wait_for_a_running_task(pgid, timeout=120)
        t_task = time.monotonic()
        stop = subprocess.run([str(BIN / "agrilake"), "airflow", "stop"], env=server_env, capture_output=True,
                              text=True, timeout=120)
        assert stop.returncode == 0 and "Airflow stopped" in stop.stdout, stop.stdout + stop.stderr[-3000:]
    finally:
        if loader.poll() is None:
            loader.kill()
        server.stop()
    assert not server.is_running()
    left = [f"{p.pid} {what}" for p, what in tree.items() if _running(p)]
    assert not left, f"processes left after stop: {left}"
    assert not group_members(pgid)

    # The password exists only in the 0600 file: neither Airflow nor the supervisor logged it.
    password = server.password("admin")
    assert password and (server.passwords_file.stat().st_mode & 0o777) == 0o600
    home = Path(server_env["AIRFLOW_HOME"])
    for path in home.rglob("*.log"):
        assert password not in path.read_text(errors="replace"), f"password in {path}"
    print(f"airflow server: healthy after {t_healthy - t0:.0f} s, all {len(expected)} DAGs served after "
          f"{t_listed - t0:.0f} s, a task running after {t_task - t0:.0f} s, stopped after "
          f"{time.monotonic() - t0:.0f} s", file=sys.stderr)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for_a_running_task(pgid: int, timeout: float) -> dict[psutil.Process, str]:
    """Every process of the server's tree (with its command line) once a task process, in a group of its
    own, runs below it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = {}
        for pid in {pgid, *descendants(pgid)}:
            try:
                proc = psutil.Process(pid)
                procs[proc] = " ".join(proc.cmdline())[:120]
            except psutil.Error:
                continue
        tasks = [p for p in procs if _pgid(p.pid) not in (None, pgid)]
        if tasks:
            return procs
        time.sleep(0.5)
    raise AssertionError(f"no task process started within {timeout:.0f} s")


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_stop_and_status_when_not_running(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "none")}
    server = AirflowServer(Settings.from_env(env), port=0, env=env)
    assert server.home == tmp_path / "none"
    assert server.stop() is False
    assert server.status()["running"] is False
