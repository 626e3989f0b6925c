"""Proves, from inside Airflow, that the Spark + Delta runtime works (write, MERGE, time travel)."""

from airflow.sdk import DAG

from agrilake.orchestration.tasks import Wiring

wiring = Wiring.from_env()

with DAG(
    dag_id="agrilake_doctor",
    description="Spark + Delta runtime check",
    doc_md=__doc__,
    schedule=None,
    start_date=wiring.start_date(),
    catchup=False,
    default_args=wiring.default_args(),
    tags=["agrilake", "ops"],
):
    wiring.stage_task("delta_check", "agrilake.doctor", ["--only", "delta"])
