"""Every DAG file imports without a database, and every task is wired the way operations expect.

The DagBag is loaded in a child process whose Airflow home has no metadata DB (and whose
connection points nowhere), so a DAG file that touched the DB or the network at parse time fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "dags"

LOADER = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
heavy = sorted(m for m in ("pyspark", "delta", "great_expectations") if m in sys.modules)
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "heavy_imports": heavy, "dags": {}}
def assets(cond):
    if cond is None:
        return []
    if hasattr(cond, "objects"):  # AssetAll / AssetAny
        return sorted({name for o in cond.objects for name in assets(o)})
    return [cond.name]
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "file": dag.fileloc, "tags": sorted(dag.tags or []), "doc_md": bool(dag.doc_md),
        "schedule_assets": assets(getattr(dag.timetable, "asset_condition", None)),
        "tasks": [{"id": t.task_id, "owner": t.owner, "retries": t.retries, "operator": type(t).__mro__[1].__name__
                   if type(t).__name__ == "StageSubmit" else type(t).__name__,
                   "outlets": sorted(getattr(o, "name", "") for o in t.outlets),
                   "failure_callback": bool(t.on_failure_callback), "pool": t.pool,
                   "dates_from": (getattr(t, "op_kwargs", None) or {}).get("dates_from"),
                   "py_files_or_zip": getattr(t, "application", None),
                   "jars": getattr(t, "_jars", None) or getattr(t, "jars", None),
                   "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None}
                  for t in dag.tasks],
    }
print("@@" + json.dumps(out))
"""


def _load(tmp_path_factory, **extra_env) -> dict:
    home = tmp_path_factory.mktemp("airflow_home_no_db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/absent/never.db",
        AIRFLOW_CONN_AGRILAKE_S3=json.dumps({"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:1"}}),
        AIRFLOW_VAR_AGRILAKE_SCALE="1",
        **extra_env,
    )
    proc = subprocess.run([sys.executable, "-c", LOADER, str(DAGS)], env=env, capture_output=True, text=True,
                          timeout=300, cwd=home)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@")]
    assert proc.returncode == 0 and lines, f"DagBag loader failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert not (home / "absent").exists(), "parsing the DAGs created a metadata DB"
    return json.loads(lines[-1][2:])


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    return _load(tmp_path_factory)


def test_every_dag_file_imports(dagbag):
    assert dagbag["errors"] == {}, dagbag["errors"]
    files = {p.name for p in DAGS.glob("*.py") if not p.name.startswith("_")}
    loaded = {Path(d["file"]).name for d in dagbag["dags"].values()}
    assert files and files <= loaded, f"DAG files that define no DAG: {files - loaded}"


def test_parsing_imports_no_heavy_library(dagbag):
    # The scheduler parses DAG files every few seconds: Spark and GX belong in the task, not at import.
    assert dagbag["heavy_imports"] == [], f"DAG parsing imported {dagbag['heavy_imports']}"


def test_dags_have_tags_owner_docs(dagbag):
    for dag_id, dag in dagbag["dags"].items():
        assert dag["tags"], f"{dag_id} has no tags"
        assert dag["doc_md"], f"{dag_id} has no doc_md"
        for task in dag["tasks"]:
            assert task["owner"] and task["owner"] != "airflow", f"{dag_id}.{task['id']} has no owner"


def test_tasks_have_retries_and_timeouts(dagbag):
    # One knob for every task (AGRILAKE_TASK_RETRIES): a DAG with its own count would, among other
    # things, make a test that sets 0 wait out minutes of retry backoff.
    expected = int(os.environ.get("AGRILAKE_TASK_RETRIES", "2"))
    for dag_id, dag in dagbag["dags"].items():
        for task in dag["tasks"]:
            assert task["retries"] == expected >= 1, f"{dag_id}.{task['id']} retries {task['retries']}"
            assert task["timeout"] and task["timeout"] <= 6 * 3600, f"{dag_id}.{task['id']} has no execution timeout"


def test_every_task_says_which_tables_failed(dagbag):
    for dag_id, dag in dagbag["dags"].items():
        for task in dag["tasks"]:
            assert task["failure_callback"], f"{dag_id}.{task['id']} has no failure callback"


def test_the_chain_is_driven_by_assets(dagbag):
    """ingest -> silver -> gold -> export: every Asset a DAG waits for is published by a task of an
    upstream DAG, and each layer's DAGs wait only for the layer before."""
    dags = dagbag["dags"]
    produced = {o: dag_id for dag_id, d in dags.items() for t in d["tasks"] for o in t["outlets"]}
    for dag_id, d in dags.items():
        for a in d["schedule_assets"]:
            assert a in produced, f"{dag_id} waits for {a}, which no task publishes"
    layer_of = {"agrilake_silver": "bronze.", "agrilake_gold": "silver.", "agrilake_export": "gold."}
    for prefix, upstream in layer_of.items():
        chained = [dag_id for dag_id in dags if dag_id.startswith(prefix)]
        assert chained, f"no {prefix}* DAG"
        for dag_id in chained:
            waits = dags[dag_id]["schedule_assets"]
            assert waits and all(a.startswith(upstream) for a in waits), (dag_id, waits)
    for dag_id in dags:  # each asset-triggered task builds the dates of the events that triggered it
        if dag_id.startswith(tuple(layer_of)):
            for t in dags[dag_id]["tasks"]:
                assert sorted(t["dates_from"] or {}) == dags[dag_id]["schedule_assets"], (dag_id, t["id"])
    ingest = [dag_id for dag_id in dags if dag_id.startswith("agrilake_ingest_")]
    assert {o for dag_id in ingest for t in dags[dag_id]["tasks"] for o in t["outlets"]} == {
        a for dag_id in dags if dag_id.startswith("agrilake_silver") for a in dags[dag_id]["schedule_assets"]}


def test_cluster_mode_submits_spark_stages_with_spark_submit(tmp_path_factory, dagbag):
    """Production's wiring: a Spark cluster, and the lakehouse on S3, where every task that writes it
    takes the one slot of the writers' pool (S3SingleDriverLogStore: one committing driver at a time)."""
    bag = _load(tmp_path_factory, AGRILAKE_SPARK_MASTER="spark://127.0.0.1:7077",
                AGRILAKE_LAKEHOUSE="s3a://lakehouse/agrilake")
    assert bag["errors"] == {}, bag["errors"]
    operators = {(dag_id, t["id"]): t for dag_id, d in bag["dags"].items() for t in d["tasks"]}
    assert {t["pool"] for t in operators.values()} == {"agrilake_lakehouse_writers"}
    # a local lakehouse (atomic renames, flocks): no pool needed
    assert {t["pool"] for d in dagbag["dags"].values() for t in d["tasks"]} == {"default_pool"}
    spark_stages = {k: t for k, t in operators.items() if not k[0].startswith("agrilake_export")
                    and not k[0].startswith("agrilake_maintenance")}
    assert spark_stages
    for key, task in spark_stages.items():
        assert task["operator"] == "SparkSubmitOperator", (key, task["operator"])
        assert task["py_files_or_zip"].endswith("infra/spark_submit_entry.py"), key
    # the export needs the task's Airflow connection for S3 credentials: it stays in the task process
    assert {t["operator"] for k, t in operators.items() if k[0] == "agrilake_export"} == {"PythonOperator"}
