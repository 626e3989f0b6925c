"""Gold DAG: the credit and logistics datasets (docs/metrics.md) for one as-of date, write-audit-publish.

Scheduled when every silver domain has published; builds the four gold tables for each date the
silver Asset events carry, up to the newest date every domain has conformed (agrilake.orchestration.rundates),
and only dates whose deliveries all exist (ops.deliveries: every daily system delivered, or marked
nothing to deliver, on the date and every day since the previous publication; agrilake.core.deliveries).
Dates that waited before are built, in order, by the first run after their delivery lands. A run
in which every date waits ends *skipped*, saying what each waits for, and triggers no export. By
hand: `params.date` (default: the newest delivery ingested). Each is validated with its GX suite and
only then replaces that date's partition. A failed critical expectation fails the task, names the expectation, and
so stops the export DAG (it is scheduled on the gold Assets, which are not updated).
"""

from airflow.sdk import DAG, Param

from agrilake.orchestration.tasks import Wiring, all_of

wiring = Wiring.from_env()

with DAG(
    dag_id="agrilake_gold",
    description="silver -> gold credit and logistics datasets",
    doc_md=__doc__,
    schedule=all_of([a for d in wiring.domains() for a in wiring.silver_assets(d)]),
    start_date=wiring.start_date(),
    catchup=False,
    max_active_runs=1,
    params={"date": Param("latest", type="string", description="as-of date YYYY-MM-DD, or latest")},
    default_args=wiring.default_args(),
    tags=["agrilake", "gold"],
):
    wiring.stage_task("build_and_publish", "agrilake.stages.gold", ["--date", "{{ params.date }}"],
                      outlets=wiring.gold_assets(), dates_from=wiring.silver_groups())
