"""The gold stage end to end on Delta: silver tables in a temporary lakehouse -> `publish` for D ->
one partition per gold table; a rerun is idempotent; a failed critical expectation publishes nothing."""

from __future__ import annotations

import shutil
from datetime import date

import pytest
import yaml
from pyspark.sql import functions as F

import agrilake.stages.gold as gold
from agrilake.core import quality, tables
from agrilake.stages.gold.contract import GOLD_TABLES
from tests.gold_fixtures import D, world, world_gold

pytestmark = pytest.mark.integration

EXPECTED_ROWS = {"coop_credit_profile": 4, "household_credit_profile": 10, "logistics_division_daily": 8,
                 "credit_county_summary": 2}


@pytest.fixture
def silver_lake(ctx):
    for name, df in world(ctx.spark).items():
        tables.overwrite(ctx, df, "silver", name)
    return ctx


def _publish(ctx, day: date) -> dict[str, int]:
    """What `agrilake gold --date D` runs for one date."""
    return gold.publish(ctx, gold.read_silver(ctx), day)


def _partition(ctx, name, day):
    df = tables.read(ctx, "gold", name).where(F.col("as_of_date") == F.lit(day))
    return sorted((tuple(r) for r in df.collect()), key=repr)


def test_publish_kills_rerun_and_blocked_publish(spark, silver_lake, lakehouse, tmp_path):
    """A publish of D, two publishes of D killed between their commits (real processes), a rerun, and a
    publish blocked by a failed critical expectation: in one lakehouse, so each publish serves two checks."""
    import os
    import signal
    import subprocess
    import sys

    from agrilake.core import ops

    ctx = silver_lake
    assert _publish(ctx, D) == EXPECTED_ROWS
    first = {name: _partition(ctx, name, D) for name in GOLD_TABLES}
    assert {name: len(rows) for name, rows in first.items()} == EXPECTED_ROWS
    assert tables.read(ctx, "gold", "coop_credit_profile").inputFiles()
    for name in GOLD_TABLES:  # every column carries its METRICS.md definition as a comment
        undocumented = [f.name for f in tables.read(ctx, "gold", name).schema.fields if not f.metadata.get("comment")]
        assert undocumented == [], (name, undocumented)
    assert all("as_of_date=2026-06-30" in f for f in tables.read(ctx, "gold", "credit_county_summary").inputFiles())

    # the partition holds exactly what the pure transform computes (checked value by value in unit tests)
    for name in GOLD_TABLES:
        assert first[name] == sorted((tuple(r.values()) for r in world_gold(spark, name)), key=repr), name

    # Killed between its commits: the four gold tables of a date are four commits. A publish SIGKILLed
    # after the first of them, and one killed after all four but before its publication record, each
    # leave D's latest complete publication (what exports read) at the old versions, whole.
    before = ops.gold_publication(ctx, D)
    assert sorted(before["versions"]) == sorted(GOLD_TABLES) and before["row_counts"] == EXPECTED_ROWS
    for point in ("after_gold_table", "before_gold_publication"):
        env = dict(os.environ, AGRILAKE_LAKEHOUSE=str(lakehouse), AGRILAKE_CRASH_AT=point,
                   AGRILAKE_SHUFFLE_PARTITIONS="1", AGRILAKE_SPARK_MASTER="local[1]")
        killed = subprocess.run([sys.executable, "-m", "agrilake.cli", "gold", "--date", D.isoformat()], env=env,
                                capture_output=True, text=True, timeout=600)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-2000:])
        newer = {name: tables.history(ctx, "gold", name, 1).select("version").first()[0] for name in GOLD_TABLES}
        written = [n for n in GOLD_TABLES if newer[n] > before["versions"][n]]
        assert written if point == "after_gold_table" else len(written) == len(GOLD_TABLES), (point, written)
        assert ops.gold_publication(ctx, D) == before, point  # readers still see the old date, whole

    # the rerun publishes all four anew: same partition content, no duplicates
    assert _publish(ctx, D) == EXPECTED_ROWS
    assert {name: _partition(ctx, name, D) for name in GOLD_TABLES} == first
    after = ops.gold_publication(ctx, D)
    assert after["run_id"] != before["run_id"] and all(after["versions"][n] > newer[n] for n in GOLD_TABLES)

    # every stage records its DQ partition as the plain ISO date of the run
    dq = tables.read(ctx, "ops", "dq_results").where(F.col("partition") == "2026-06-30")
    assert dq.where(~F.col("success") & (F.col("severity") == "critical")).count() == 0
    assert {r.table_name for r in dq.select("table_name").distinct().collect()} == {f"gold.{n}" for n in GOLD_TABLES}

    # an impossible critical expectation on one table blocks the publish of the whole date
    suites = tmp_path / "expectations"
    shutil.copytree(ctx.suites_dir, suites)
    path = suites / "gold_credit_county_summary.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    spec["expectations"].append({"expectation": "expect_column_values_to_be_between",
                                 "kwargs": {"column": "coops", "max_value": 0}, "severity": "critical"})
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    strict = ctx.with_settings(expectations_dir=suites)

    later = date(2026, 7, 1)
    with pytest.raises(quality.QualityGateFailed, match="expect_column_values_to_be_between") as failure:
        _publish(strict, later)
    assert "gold_credit_county_summary" in str(failure.value)
    for name in GOLD_TABLES:
        assert _partition(ctx, name, later) == [], f"{name} published despite the failed gate"
        assert _partition(ctx, name, D) == first[name], f"{name} lost its earlier partition"

    failed = (tables.read(ctx, "ops", "dq_results")
              .where((F.col("partition") == "2026-07-01") & ~F.col("success"))
              .select("table_name", "expectation", "column_name", "severity").collect())
    assert [tuple(r) for r in failed] == [
        ("gold.credit_county_summary", "expect_column_values_to_be_between", "coops", "critical")]
