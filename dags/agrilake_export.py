"""Export DAG: the curated datasets to the platforms' buckets (docs/metrics.md, Exports).

Scheduled on the gold Assets, so it runs only after a gold publish passed its quality gate, and
exports each date that publish built (the dates its Asset events carry; by hand: `params.date`). The
bank gets the credit profiles, the government the aggregate datasets; each dataset lands under
`<bucket>/<dataset>/as_of=D/` with `_manifest.json` written last. S3 credentials come from the
Airflow connection named by AGRILAKE_S3_CONN_ID, or the environment; they never appear in logs.
"""

from airflow.sdk import DAG, Param

from agrilake.orchestration.tasks import Wiring, all_of

wiring = Wiring.from_env()

with DAG(
    dag_id="agrilake_export",
    description="gold -> s3://bank, s3://gov",
    doc_md=__doc__,
    schedule=all_of(wiring.gold_assets()),
    start_date=wiring.start_date(),
    catchup=False,
    max_active_runs=1,
    params={"date": Param("latest", type="string", description="as-of date YYYY-MM-DD, or latest")},
    default_args=wiring.default_args(),
    tags=["agrilake", "export"],
):
    for platform in ("bank", "gov"):
        # spark=False: the export reads S3 credentials from an Airflow connection, which only the
        # task's own process can do; its Spark session still uses AGRILAKE_SPARK_MASTER.
        wiring.stage_task(f"export_{platform}", "agrilake.stages.export", ["--platform", platform, "--date", "{{ params.date }}"],
                          spark=False, dates_from=wiring.gold_groups())
