"""Proves, from inside Airflow, that the Spark + Delta runtime works (write, MERGE, time travel)."""

from airflow.sdk import DAG

from jobs.orchestration import default_args, stage_task, start_date

with DAG(
    dag_id="agrilake_doctor",
    description="Spark + Delta runtime check",
    doc_md=__doc__,
    schedule=None,
    start_date=start_date(),
    catchup=False,
    default_args=default_args(),
    tags=["agrilake", "ops"],
):
    stage_task("delta_check", "jobs.doctor", ["--only", "delta"])
