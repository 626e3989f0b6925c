"""Ingest DAGs, one per upstream system: landing files delivered up to `{{ ds }}` -> bronze Delta tables.

Daily with catchup, so a backfill is just clearing or triggering past dates; each run ingests only
files it has not seen (by SHA-256), so reruns change nothing. Each task publishes the bronze Assets
of its system, which schedule the silver DAGs.
"""

from airflow.sdk import DAG

from jobs.contracts import systems
from jobs.orchestration import bronze_assets, default_args, stage_task, start_date

for system in sorted(systems()):
    with DAG(
        dag_id=f"agrilake_ingest_{system}",
        description=f"landing/{system}/* -> bronze.{system}_*",
        doc_md=__doc__,
        schedule="@daily",
        start_date=start_date(),
        catchup=True,
        max_active_runs=1,
        default_args=default_args(),
        tags=["agrilake", "bronze", system],
    ):
        stage_task("ingest", "jobs.bronze", ["--date", "{{ ds }}", "--system", system], outlets=bronze_assets(system))
