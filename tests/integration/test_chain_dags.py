"""The whole chain through Airflow on a small landing: the real ingest, silver, gold and export DAG
files, in the order their Assets schedule them (the reference domain is built in-process first).
Bronze and silver rows appear, gold publishes D1, the export lands manifest-complete datasets in the
platforms' buckets with credentials from an Airflow connection, and no secret appears in any task log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import dag_run_state, run_dag
from tests.integration.test_bronze import _drop
from tests.integration.test_silver import D1, coop_row, divisions_csv, member_row, sales_jsonl, valid_ric
from tests.unit.test_landing import _csv

pytestmark = pytest.mark.integration


def test_the_chain_through_airflow(airflow_env, spark, store, tmp_path, monkeypatch):
    from jobs import bronze, contracts, silver

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    _drop(landing, "ref_divisions", D1, "divisions.csv", divisions_csv())
    _drop(landing, "coop_cooperatives", D1, "coops.csv",
          _csv(contracts.feed("coop_cooperatives").column_names, [coop_row("C1")]))
    _drop(landing, "coop_members", D1, "members.csv",
          _csv(contracts.feed("coop_members").column_names, [member_row("C1", valid_ric())]))
    _drop(landing, "coop_sales", D1, "sales.jsonl", sales_jsonl([{"sale_id": "S1", "coop_id": "C1"}]))
    env = {"AGRILAKE_LANDING": str(landing), "AGRILAKE_LAKEHOUSE": str(lake)}
    # The reference domain in this process (its DAGs are built by the same factory as the coop ones, and
    # each DAG run costs a JVM start): the coop chain below runs in Airflow, one DAG per layer.
    monkeypatch.setenv("AGRILAKE_LAKEHOUSE", str(lake))
    bronze.ingest(spark, "ref", D1, str(landing))
    silver.run(spark, "divisions", D1)
    for dag_id in ("agrilake_ingest_coop", "agrilake_silver_coop"):
        proc = run_dag(airflow_env, dag_id, D1.isoformat(), env)
        assert dag_run_state(proc) == "success", (dag_id, proc.stdout[-3000:], proc.stderr[-3000:])

    def read(layer, name):
        return spark.read.format("delta").load(str(lake / layer / name))

    assert read("bronze", "coop_sales").count() == 1
    assert [r.sale_id for r in read("silver", "sales").collect()] == ["S1"]
    assert read("silver", "members").first().person_key is not None

    # gold for D1 (the silver Assets schedule it; `params.date` as a triggered run would pass it)
    proc = run_dag(airflow_env, "agrilake_gold", D1.isoformat(), env, conf={"date": D1.isoformat()})
    assert dag_run_state(proc) == "success", (proc.stdout[-3000:], proc.stderr[-3000:])
    assert read("gold", "coop_credit_profile").where(f"as_of_date = '{D1}'").count() == 1

    # export for D1, the pipeline identity's keys from an Airflow connection (as in production)
    creds = store.credentials()["pipeline"]
    conn = {"conn_type": "aws", "login": creds["access_key"], "password": creds["secret_key"],
            "extra": {"endpoint_url": store.endpoint}}
    export_env = {**env, "AGRILAKE_S3_CONN_ID": "agrilake_s3", "AIRFLOW_CONN_AGRILAKE_S3": json.dumps(conn)}
    proc = run_dag(airflow_env, "agrilake_export", D1.isoformat(), export_env, conf={"date": D1.isoformat()})
    logs = proc.stdout + proc.stderr
    assert dag_run_state(proc) == "success", (logs[-3000:],)
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
