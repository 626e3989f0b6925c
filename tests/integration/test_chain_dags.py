"""The whole chain through Airflow on a small landing: the real doctor, ingest, silver, gold and export
DAG files, in the order their Assets schedule them, run by `agrilake dags-test`.
The doctor's Delta table takes a MERGE and time travel, bronze and silver rows appear, gold publishes D1, the export lands manifest-complete datasets in the
platforms' buckets with credentials from an Airflow connection, and no secret appears in any task log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agrilake.core.contracts import packaged
from agrilake.orchestration.tasks import pipeline_dag_ids
from tests.integration.conftest import dag_run_states, run_dags
from tests.integration.test_bronze import _drop
from tests.integration.test_silver import D1, coop_row, divisions_csv, member_row, sales_jsonl, valid_ric
from tests.unit.test_landing import _csv

pytestmark = pytest.mark.integration


def test_the_chain_through_airflow(airflow_env, spark, store, tmp_path):
    contracts = packaged()
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    _drop(landing, "ref_divisions", D1, "divisions.csv", divisions_csv())
    _drop(landing, "coop_cooperatives", D1, "coops.csv",
          _csv(contracts.feed("coop_cooperatives").column_names, [coop_row("C1")]))
    _drop(landing, "coop_members", D1, "members.csv",
          _csv(contracts.feed("coop_members").column_names, [member_row("C1", valid_ric())]))
    _drop(landing, "coop_sales", D1, "sales.jsonl", sales_jsonl([{"sale_id": "S1", "coop_id": "C1"}]))
    # the DAGs' tasks run in a process of their own: the environment is their input
    env = {"AGRILAKE_LANDING": str(landing), "AGRILAKE_LAKEHOUSE": str(lake)}
    # Every DAG of a delivery date (what `make run` drives), in the order their Assets schedule them,
    # in one `agrilake dags-test` process (one warm JVM for every task): systems without a delivery
    # ingest nothing; silver, gold and export for D1 by `params.date`, as a triggered run would pass
    # it; the export's keys (the pipeline identity's) from an Airflow connection, as in production.
    creds = store.credentials()["pipeline"]
    conn = {"conn_type": "aws", "login": creds["access_key"], "password": creds["secret_key"],
            "extra": {"endpoint_url": store.endpoint}}
    chain_env = {**env, "AGRILAKE_S3_CONN_ID": "agrilake_s3", "AIRFLOW_CONN_AGRILAKE_S3": json.dumps(conn)}
    dags = pipeline_dag_ids(contracts)
    assert {"agrilake_ingest_ref", "agrilake_silver_divisions", "agrilake_ingest_coop", "agrilake_silver_coop",
            "agrilake_gold", "agrilake_export"} <= set(dags)
    proc = run_dags(airflow_env, dags, D1.isoformat(), chain_env, conf={"date": D1.isoformat()})
    logs = proc.stdout + proc.stderr
    assert proc.returncode == 0 and dag_run_states(proc) == [(d, "success") for d in dags], logs[-6000:]

    def read(layer, name):
        return spark.read.format("delta").load(str(lake / layer / name))

    # the doctor DAG, which opens the chain, wrote a Delta table that MERGE and time travel work on
    doctor = lake / "ops" / "doctor_check"
    assert {r.id: r.product for r in read("ops", "doctor_check").collect()} == {1: "grain", 2: "fruit", 3: "herb"}
    v0 = spark.read.format("delta").option("versionAsOf", 0).load(str(doctor)).collect()
    assert {r.id: r.product for r in v0} == {1: "grain", 2: "tea"}
    history = spark.sql(f"DESCRIBE HISTORY delta.`{doctor}`").select("operation").collect()
    assert {r.operation for r in history} >= {"WRITE", "MERGE"}

    assert read("bronze", "coop_sales").count() == 1
    assert [r.sale_id for r in read("silver", "sales").collect()] == ["S1"]
    assert read("silver", "members").first().person_key is not None
    assert read("gold", "coop_credit_profile").where(f"as_of_date = '{D1}'").count() == 1
    for platform, datasets in {"bank": ("coop_credit_profile", "household_credit_profile"),
                               "gov": ("logistics_division_daily", "credit_county_summary")}.items():
        client = store.client(platform)
        for dataset in datasets:
            manifest = json.loads(client.get_object(Bucket=platform, Key=f"{dataset}/as_of={D1}/_manifest.json")
                                  ["Body"].read())
            assert manifest["dataset"] == dataset and manifest["as_of"] == D1.isoformat(), manifest

    # the task logs: what `airflow dags test` printed, and every log file under the Airflow home
    files = [f for f in Path(airflow_env["AIRFLOW_HOME"]).rglob("*.log") if f.is_file()]
    logs += "".join(f.read_text(errors="replace") for f in files)
    assert "export_bank" in logs and "export_gov" in logs, "the export tasks' logs were not captured"
    for identity, keys in store.credentials().items():
        assert keys["secret_key"] not in logs, f"the {identity} secret appears in a task log"
