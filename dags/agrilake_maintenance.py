"""Maintenance DAG: weekly OPTIMIZE (compaction) and VACUUM of every Delta table, layer by layer.

Appends, MERGEs and partition replaces leave small files and files only old versions need; this
compacts each table and deletes unreferenced files older than AGRILAKE_VACUUM_RETENTION_HOURS
(default 168 h, so time travel still reaches a week back and long readers keep their files). The
layers run one after another so that only one Spark session at a time competes with the pipeline.
Every table's files and bytes before and after land in ops.maintenance_log; a table that fails
fails its layer's task after the other tables of the layer were maintained.
"""

from datetime import timedelta

from airflow.sdk import DAG, chain

from agrilake.orchestration.tasks import Wiring

wiring = Wiring.from_env()

LAYERS = ("bronze", "silver", "gold", "ops")

with DAG(
    dag_id="agrilake_maintenance",
    description="OPTIMIZE + VACUUM of the lakehouse Delta tables",
    doc_md=__doc__,
    # Sunday 03:00 in Asia/Shanghai (19:00 UTC on Saturday): after the night's ingest, before Monday's use.
    schedule="0 19 * * 6",
    start_date=wiring.start_date(),
    catchup=False,
    max_active_runs=1,
    # Rewriting a large bronze table takes longer than a daily stage.
    default_args=wiring.default_args(execution_timeout=timedelta(hours=4)),
    tags=["agrilake", "ops", "maintenance"],
):
    chain(*[wiring.stage_task(f"maintain_{layer}", "agrilake.stages.maintenance", ["--tables", f"{layer}.*"]) for layer in LAYERS])
