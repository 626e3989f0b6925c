"""The openlineage-spark listener on this Spark and Delta (AGRILAKE_LINEAGE_SPARK=1): a session from
the one factory reports its Delta writes, with column lineage, under the Airflow task that started it.

A process of its own: the listener is configured when the JVM starts, and the suite's session runs
without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agrilake.core.lineage import read_events
from agrilake.core.settings import Settings

pytestmark = pytest.mark.integration

PARENT = "agrilake/agrilake_silver_coop.silver_coop/01890f5e-0d7c-7a3e-8000-0000000000aa"
ROOT_RUN = "agrilake/agrilake_silver_coop/01890f5e-0d7c-7a3e-8000-0000000000bb"

SCRIPT = """
from agrilake.core import context, tables
from pyspark.sql import functions as F
ctx = context.from_env("agrilake-listener-check")
spark = ctx.spark
tables.append(ctx, spark.createDataFrame([("C1", 2.5, "postal"), ("C1", 1.0, "market")],
              "coop_id string, amount_cny double, channel string"), "silver", "sales")
sales = tables.read(ctx, "silver", "sales")
tables.overwrite(ctx, sales.groupBy("coop_id").agg(
    F.sum("amount_cny").alias("sales_cny"),
    F.sum(F.when(F.col("channel") == "postal", F.col("amount_cny"))).alias("postal_cny")), "gold", "sales_by_coop")
spark.stop()
"""


def test_the_listener_reports_delta_writes_with_column_lineage_under_the_task(tmp_path):
    settings = Settings.from_env()
    if settings.openlineage_spark_jar() is None:
        pytest.fail(f"the openlineage-spark jar is missing from {settings.jars_dir}: run `make setup`")
    lake = tmp_path / "lake"
    env = {**os.environ, "AGRILAKE_LAKEHOUSE": str(lake), "AGRILAKE_LINEAGE_SPARK": "1",
           "AGRILAKE_SPARK_MASTER": "local[1]", "AGRILAKE_SHUFFLE_PARTITIONS": "1",
           "OPENLINEAGE_PARENT_ID": PARENT, "OPENLINEAGE_ROOT_PARENT_ID": ROOT_RUN}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    events = read_events(Settings.from_env(lakehouse=str(lake)), spark=True)
    assert list(Path(lake / "_lineage").glob("spark-*.jsonl")), "the listener wrote no event file"
    writes = [e for e in events if e["eventType"] == "COMPLETE"
              and any(o["name"] == str(lake / "gold" / "sales_by_coop") for o in e.get("outputs", []))]
    assert writes, [(e["eventType"], e["job"]["name"]) for e in events]
    event = writes[-1]
    assert [i["name"] for i in event["inputs"]] == [str(lake / "silver" / "sales")]
    (output,) = event["outputs"]
    fields = {name: sorted((f["name"].rsplit("/", 1)[1], f["field"]) for f in spec["inputFields"])
              for name, spec in output["facets"]["columnLineage"]["fields"].items()}
    assert fields["coop_id"] == [("sales", "coop_id")]
    assert fields["sales_cny"] == [("sales", "amount_cny")]
    assert ("sales", "amount_cny") in fields["postal_cny"]
    # the query's run is a child of the application's, whose parent is the Airflow task
    application = [e for e in events if e["job"]["name"] == event["job"]["name"].split(".")[0]]
    parents = {e["run"]["facets"].get("parent", {}).get("run", {}).get("runId") for e in application}
    assert PARENT.rsplit("/", 1)[1] in parents, [e["run"]["facets"].get("parent") for e in application]
