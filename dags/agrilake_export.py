"""Export DAG: the curated datasets to the platforms' buckets (METRICS.md, Exports).

Scheduled on the gold Assets, so it runs only after a gold publish passed its quality gate. The
bank gets the credit profiles, the government the aggregate datasets; each dataset lands under
`<bucket>/<dataset>/as_of=D/` with `_manifest.json` written last. S3 credentials come from the
Airflow connection named by AGRILAKE_S3_CONN_ID, or the environment; they never appear in logs.
"""

from airflow.sdk import DAG, Param

from jobs.contracts import GOLD_TABLES
from jobs.orchestration import all_of, asset, default_args, stage_task, start_date

with DAG(
    dag_id="agrilake_export",
    description="gold -> s3://bank, s3://gov",
    doc_md=__doc__,
    schedule=all_of([asset("gold", t) for t in GOLD_TABLES]),
    start_date=start_date(),
    catchup=False,
    max_active_runs=1,
    params={"date": Param("latest", type="string", description="as-of date YYYY-MM-DD, or latest")},
    default_args=default_args(),
    tags=["agrilake", "export"],
):
    for platform in ("bank", "gov"):
        # spark=False: the export reads S3 credentials from an Airflow connection, which only the
        # task's own process can do; its Spark session still uses AGRILAKE_SPARK_MASTER.
        stage_task(f"export_{platform}", "jobs.export", ["--platform", platform, "--date", "{{ params.date }}"],
                   spark=False)
