"""Silver DAGs, one per domain, scheduled on the bronze Assets they read.

They conform every bronze row delivered up to the run's date that silver has not settled yet,
release held rows whose reference arrived, and publish the silver Assets that schedule the gold DAG.
The run's date comes from the bronze Asset events that triggered it: the newest date every system of
the domain has delivered (agrilake.orchestration.rundates). A run triggered by hand builds
`params.date` (default: the newest delivery ingested).
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
                          outlets=wiring.silver_assets(domain), dates_from=wiring.bronze_groups(systems),
                          cumulative=True)
