"""The real ingest and silver DAG files, run through Airflow on a small landing: bronze and silver
Delta tables appear with the expected rows, and a rerun of the same date changes nothing."""

from __future__ import annotations

import pytest

from tests.integration.conftest import dag_run_state, run_dag
from tests.integration.test_bronze import _drop
from tests.integration.test_silver import D1, coop_row, divisions_csv, member_row, sales_jsonl, valid_ric
from tests.unit.test_landing import _csv

pytestmark = pytest.mark.integration


def test_ingest_and_silver_dags(airflow_env, spark, tmp_path):
    from jobs import contracts

    landing, lake = tmp_path / "landing", tmp_path / "lake"
    _drop(landing, "ref_divisions", D1, "divisions.csv", divisions_csv())
    _drop(landing, "coop_cooperatives", D1, "coops.csv",
          _csv(contracts.feed("coop_cooperatives").column_names, [coop_row("C1")]))
    _drop(landing, "coop_members", D1, "members.csv",
          _csv(contracts.feed("coop_members").column_names, [member_row("C1", valid_ric())]))
    _drop(landing, "coop_sales", D1, "sales.jsonl", sales_jsonl([{"sale_id": "S1", "coop_id": "C1"}]))
    env = {"AGRILAKE_LANDING": str(landing), "AGRILAKE_LAKEHOUSE": str(lake)}
    for dag_id in ("agrilake_ingest_ref", "agrilake_ingest_coop", "agrilake_silver_divisions",
                   "agrilake_silver_coop"):
        proc = run_dag(airflow_env, dag_id, D1.isoformat(), env)
        assert dag_run_state(proc) == "success", (dag_id, proc.stdout[-3000:], proc.stderr[-3000:])

    def read(layer, name):
        return spark.read.format("delta").load(str(lake / layer / name))

    assert read("bronze", "coop_sales").count() == 1
    assert [r.sale_id for r in read("silver", "sales").collect()] == ["S1"]
    assert read("silver", "members").first().person_key is not None
    history = spark.sql(f"DESCRIBE HISTORY delta.`{lake / 'silver' / 'sales'}`").count()

    proc = run_dag(airflow_env, "agrilake_silver_coop", "2026-11-02", env)
    assert dag_run_state(proc) == "success"
    assert read("silver", "sales").count() == 1
    # nothing new to conform: no new version of the silver table
    assert spark.sql(f"DESCRIBE HISTORY delta.`{lake / 'silver' / 'sales'}`").count() == history
