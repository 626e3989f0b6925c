"""Silver DAGs, one per domain, scheduled on the bronze Assets they read.

They conform every bronze row delivered up to the run's date that silver has not settled yet
(`params.date`, default: the newest delivery ingested), release held rows whose reference arrived,
and publish the silver Assets that schedule the gold DAG.
"""

from airflow.sdk import DAG, Param

from jobs.orchestration import all_of, bronze_assets, default_args, silver_assets, stage_task, start_date

SOURCES = {"divisions": ["ref"], "coop": ["coop"], "postal": ["postal"], "bank": ["bank"]}

for domain, systems in SOURCES.items():
    with DAG(
        dag_id=f"agrilake_silver_{domain}",
        description=f"bronze -> silver ({domain})",
        doc_md=__doc__,
        schedule=all_of([a for s in systems for a in bronze_assets(s)]),
        start_date=start_date(),
        catchup=False,
        max_active_runs=1,
        params={"date": Param("latest", type="string", description="as-of date YYYY-MM-DD, or latest")},
        default_args=default_args(),
        tags=["agrilake", "silver", domain],
    ):
        stage_task("conform", "jobs.silver", ["--date", "{{ params.date }}", "--domain", domain],
                   outlets=silver_assets(domain))
