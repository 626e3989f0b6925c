"""Proves, from inside Airflow, that the Spark + Delta runtime works (write, MERGE, time travel)."""

from datetime import datetime

from airflow.sdk import DAG

from jobs.orchestration import default_args, stage_task

with DAG(
    dag_id="agrilake_doctor",
    description="Spark + Delta runtime check",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=default_args(retries=1),
    tags=["agrilake", "ops"],
):
    stage_task("delta_check", "jobs.doctor", ["--only", "delta"])
