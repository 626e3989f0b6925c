"""The first real DAG, run through Airflow, failing: the task and the run are marked failed, and the
chain runner stops there. (The doctor's success, a Delta table that MERGE and time travel work on, is
checked where it opens the whole chain: tests/integration/test_chain_dags.py.)"""

from __future__ import annotations

import pytest

from agrilake.core.contracts import packaged
from agrilake.orchestration.tasks import pipeline_dag_ids
from tests.integration.conftest import dag_run_state, dag_run_states, run_dag, run_dags

pytestmark = pytest.mark.integration


def test_a_failing_stage_fails_the_task(airflow_env, tmp_path):
    # No Delta jars: the doctor exits non-zero, and the task (and the run) must be marked failed.
    env = {"AGRILAKE_LAKEHOUSE": str(tmp_path / "lake"), "AGRILAKE_JARS": str(tmp_path / "nojars"),
           "AGRILAKE_TASK_RETRIES": "0"}  # `dags test` would otherwise wait out the retry backoff
    proc = run_dag(airflow_env, "agrilake_doctor", "2026-11-02", env)
    assert dag_run_state(proc) == "failed", proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Delta jars are missing" in proc.stdout + proc.stderr

    # `agrilake dags-test` (make run's runner) says so too, exits 1 and runs nothing after the failure:
    # the whole chain of make run, which the doctor opens.
    dags = pipeline_dag_ids(packaged())
    assert dags[0] == "agrilake_doctor" and len(dags) > 1
    proc = run_dags(airflow_env, dags, "2026-11-03", env)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert dag_run_states(proc) == [("agrilake_doctor", "failed")], proc.stdout[-4000:]
    assert "DAG agrilake_doctor failed for 2026-11-03" in proc.stderr


def test_the_doctor_proves_the_runtime(airflow_env, spark, tmp_path):
    """`agrilake doctor` in full (the DAG runs its Delta check only): versions, the packaged specs, the
    Airflow home, a Delta write + MERGE + time travel and a GX validation, on the test run's session."""
    from pathlib import Path

    from agrilake import doctor
    from agrilake.core.settings import Settings

    settings = Settings.from_env(airflow_home=Path(airflow_env["AIRFLOW_HOME"]), lakehouse=str(tmp_path / "lake"))
    report = doctor.run([], settings)
    assert report["airflow_home"] == str(Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db")
    assert report["delta"] == {"path": settings.table_path("ops", doctor.DOCTOR_TABLE), "version_read": 0,
                               "rows_now": 3, "rows_at_v0": 2}
    assert report["great_expectations"] == "1 passing and 1 failing expectation told apart"
    assert "feeds" in report["schemas"] and "suites" in report["expectations"]
    with pytest.raises(doctor.RuntimeMissing, match="no Airflow metadata DB"):
        doctor.run([], settings.replace(airflow_home=tmp_path / "no-airflow"))
