"""Ingest DAGs, one per upstream system: landing files delivered up to `{{ ds }}` -> bronze Delta tables.

Daily with catchup (from AGRILAKE_DAG_START, up to AGRILAKE_DAG_END when set), so a backfill is just
clearing or triggering past dates; each run ingests only files it has not seen (by SHA-256), so reruns
change nothing. Each run also records which delivery days of its system exist (ops.deliveries): gold
waits for those, not for the schedule. Each task publishes the bronze Assets
of its system, which schedule the silver DAGs.
"""

from airflow.sdk import DAG

from agrilake.orchestration.tasks import Wiring

wiring = Wiring.from_env()

for system in wiring.systems():
    with DAG(
        dag_id=f"agrilake_ingest_{system}",
        description=f"landing/{system}/* -> bronze.{system}_*",
        doc_md=__doc__,
        schedule="@daily",
        start_date=wiring.start_date(),
        end_date=wiring.end_date(),
        catchup=True,
        max_active_runs=1,
        default_args=wiring.default_args(),
        tags=["agrilake", "bronze", system],
    ):
        wiring.stage_task("ingest", "agrilake.stages.bronze", ["--date", "{{ ds }}", "--system", system], outlets=wiring.bronze_assets(system))
