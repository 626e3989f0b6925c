"""Cluster mode for real: a Spark standalone master and worker on 127.0.0.1 from the pip pyspark,
the gold DAG submitting `agrilake.stages.gold` with SparkSubmitOperator, the same partitions as the local build;
and a stage that fails on the cluster fails its Airflow task."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from agrilake.core import deliveries, tables
from agrilake.core.contracts import GOLD_TABLES
from agrilake.services.processes import free_port
from tests.gold_fixtures import D, world, world_gold
from tests.integration.conftest import ROOT, dag_run_state, run_dag

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def _wait_for(log: Path, pattern: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and re.search(pattern, log.read_text(errors="replace")):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} not seen in {log}:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    """A real standalone master + one worker (2 cores, 1 GB), stopped with their process groups."""
    logs = tmp_path_factory.mktemp("spark_cluster")
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", SPARK_LOG_DIR=str(logs), SPARK_WORKER_DIR=str(logs / "work"),
               SPARK_DAEMON_JAVA_OPTS=os.environ.get("AGRILAKE_JVM_OPTIONS", ""))  # the suite's JVM tuning
    port = free_port()
    master_url = f"spark://127.0.0.1:{port}"
    procs = []
    master_log = logs / "master.log"
    with master_log.open("w") as out:
        procs.append(subprocess.Popen(
            [str(BIN / "spark-class"), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(free_port())],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    try:
        _wait_for(master_log, r"I have been elected leader", procs[0])
        worker_log = logs / "worker.log"
        with worker_log.open("w") as out:
            procs.append(subprocess.Popen(
                [str(BIN / "spark-class"), "org.apache.spark.deploy.worker.Worker", master_url,
                 "--host", "127.0.0.1", "--cores", "2", "--memory", "1g", "--webui-port", str(free_port())],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_for(worker_log, r"Successfully registered with master", procs[1])
        yield master_url, logs
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def _rows(ctx, name):
    df = tables.read(ctx, "gold", name).where(F.col("as_of_date") == F.lit(D))
    return sorted((tuple(r) for r in df.collect()), key=repr)


def test_gold_dag_on_a_standalone_cluster_equals_the_local_build(spark, ctx, lakehouse, airflow_env,
                                                                standalone_cluster):
    master_url, cluster_logs = standalone_cluster
    for name, df in world(spark).items():
        tables.overwrite(ctx, df, "silver", name)
    # silver was written directly, not ingested: record that every daily system delivered D (gold waits otherwise)
    daily = [s for s, c in ctx.contracts.delivery_calendars().items() if c == "daily"]
    deliveries.record(ctx, [deliveries.DayState(s, D, "delivered", files=1) for s in daily], set())
    # the DAG's task is a process of its own: the environment points it at ctx's lakehouse
    cluster_env = {"AGRILAKE_LAKEHOUSE": str(lakehouse), "AGRILAKE_SPARK_MASTER": master_url,
                   "AGRILAKE_DRIVER_MEMORY": "1g", "AGRILAKE_HOME": str(ROOT)}

    proc = run_dag(airflow_env, "agrilake_gold", "2026-10-01", extra_env=cluster_env, conf={"date": D.isoformat()})
    out = proc.stdout + proc.stderr
    assert dag_run_state(proc) == "success", out[-6000:]
    assert "spark-submit" in out and master_url in out, "the task did not go through spark-submit"
    assert "--py-files" in out and "delta-spark_" in out, "the jobs zip or the Delta jars were not shipped"
    # the application really ran on the cluster: the worker launched an executor for it
    assert list((cluster_logs / "work").glob("app-*/*/stderr")), "no executor ran on the standalone worker"
    on_cluster = {name: _rows(ctx, name) for name in GOLD_TABLES}
    assert all(on_cluster.values())

    # the local build of the same silver gives exactly these rows (test_gold_delta proves the local
    # partitions equal world_gold value by value); building it again here would double the cost
    assert on_cluster == {name: sorted((tuple(r.values()) for r in world_gold(spark, name)), key=repr)
                          for name in GOLD_TABLES}

    # a stage that fails on the cluster fails the task: spark-submit's exit code is checked
    failed = run_dag(airflow_env, "agrilake_gold", "2026-10-02", extra_env={**cluster_env, "AGRILAKE_TASK_RETRIES": "0"},
                     conf={"date": "not-a-date"})
    assert dag_run_state(failed) == "failed", (failed.stdout + failed.stderr)[-4000:]
    assert "agrilake task failed" in failed.stdout + failed.stderr
