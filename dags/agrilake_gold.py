"""Gold DAG: the credit and logistics datasets (METRICS.md) for one as-of date, write-audit-publish.

Scheduled when every silver domain has published; builds the four gold tables for `params.date`
(default: the newest delivery ingested), validates each with its GX suite and only then replaces
that date's partition. A failed critical expectation fails the task, names the expectation, and
so stops the export DAG (it is scheduled on the gold Assets, which are not updated).
"""

from airflow.sdk import DAG, Param

from jobs.contracts import GOLD_TABLES, SILVER_DOMAINS
from jobs.orchestration import all_of, asset, default_args, silver_assets, stage_task, start_date

with DAG(
    dag_id="agrilake_gold",
    description="silver -> gold credit and logistics datasets",
    doc_md=__doc__,
    schedule=all_of([a for d in SILVER_DOMAINS for a in silver_assets(d)]),
    start_date=start_date(),
    catchup=False,
    max_active_runs=1,
    params={"date": Param("latest", type="string", description="as-of date YYYY-MM-DD, or latest")},
    default_args=default_args(),
    tags=["agrilake", "gold"],
):
    stage_task("build_and_publish", "jobs.gold", ["--date", "{{ params.date }}"],
               outlets=[asset("gold", t) for t in GOLD_TABLES])
