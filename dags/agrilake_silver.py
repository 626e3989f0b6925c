"""Silver DAGs, one per domain, scheduled on the bronze Assets they read.

They conform every bronze row delivered up to the run's date that silver has not settled yet
(`params.date`, default: the newest delivery ingested), release held rows whose reference arrived,
and publish the silver Assets that schedule the gold DAG.
"""

from airflow.sdk import DAG, Param

from agrilake.orchestration.tasks import Wiring, all_of

wiring = Wiring.from_env()

for domain, systems in wiring.domains().items():
    with DAG(
        dag_id=f"agrilake_silver_{domain}",
        description=f"bronze -> silver ({domain})",
        doc_md=__doc__,
        schedule=all_of([a for s in systems for a in wiring.bronze_assets(s)]),
        start_date=wiring.start_date(),
        catchup=False,
        max_active_runs=1,
        params={"date": Param("latest", type="string", description="as-of date YYYY-MM-DD, or latest")},
        default_args=wiring.default_args(),
        tags=["agrilake", "silver", domain],
    ):
        wiring.stage_task("conform", "agrilake.stages.silver", ["--date", "{{ params.date }}", "--domain", domain],
                          outlets=wiring.silver_assets(domain))
