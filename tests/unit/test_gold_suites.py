"""The gold GX suites: the world's gold passes them, and a wrong row fails the expectation meant for it."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import functions as F

from agrilake.core import dates, quality
from agrilake.core.contracts import GOLD_TABLES
from agrilake.stages.gold import expected_row_counts, main, suite
from tests.gold_fixtures import D, world, world_gold_frame


@pytest.fixture(scope="module")
def frames(spark):
    out = {name: world_gold_frame(spark, name) for name in GOLD_TABLES}
    return out, expected_row_counts(world(spark), D)


@pytest.fixture
def suites(session_ctx):
    """suite(table, expected_rows) on the session's settings (the shipped expectations/)."""
    return lambda table, expected_rows: suite(session_ctx, table, expected_rows)


def test_expected_row_counts_follow_the_population_rules(frames):
    _, expected = frames
    assert expected == {"coop_credit_profile": 4, "household_credit_profile": 10, "logistics_division_daily": 8,
                        "credit_county_summary": 2}


@pytest.mark.parametrize("table", GOLD_TABLES)
def test_world_passes_its_suite(frames, suites, table):
    out, expected = frames
    result = quality.validate(out[table], f"gold_{table}", suites(table, expected[table]))
    assert [o for o in result.outcomes if not o.success] == []


def _failed(result):
    return sorted((o.expectation, o.column or "") for o in result.outcomes if not o.success)


def test_score_and_tier_must_agree(frames, suites):
    out, expected = frames
    # C5 scores 670 (tier B); calling it A must fail the tier-A score expectation, and only that
    bad = out["coop_credit_profile"].withColumn(
        "credit_tier", F.when(F.col("coop_id") == "C5", F.lit("A")).otherwise(F.col("credit_tier")))
    result = quality.validate(bad, "gold_coop_credit_profile", suites("coop_credit_profile", 4))
    assert _failed(result) == [("expect_column_values_to_be_between", "score")]
    failed = [o for o in result.outcomes if not o.success][0]
    assert failed.kwargs["row_condition"]["parameter"] == "A"
    with pytest.raises(quality.QualityGateFailed, match="expect_column_values_to_be_between"):
        quality.gate(result)


def test_p95_below_p50_and_row_count_fail(frames, suites):
    out, _ = frames
    bad = out["logistics_division_daily"].withColumn(
        "lead_time_p95_h", F.when(F.col("lead_time_p95_h").isNotNull(), F.lit(1.0)))
    result = quality.validate(bad, "gold_logistics_division_daily", suites("logistics_division_daily", 9))
    assert _failed(result) == [("expect_column_pair_values_a_to_be_greater_than_b", ""),
                               ("expect_table_row_count_to_equal", "")]


def test_date_arguments():
    import argparse

    ns = argparse.Namespace(date=None, from_=date(2026, 6, 29), to=date(2026, 7, 1))
    assert dates.from_options(ns) == [date(2026, 6, 29), date(2026, 6, 30), date(2026, 7, 1)]
    assert dates.from_options(argparse.Namespace(date=D, from_=None, to=None)) == [D]
    with pytest.raises(SystemExit):
        dates.from_options(argparse.Namespace(date=None, from_=date(2026, 7, 1), to=date(2026, 6, 1)))
    with pytest.raises(SystemExit):
        main([])


def test_latest_needs_an_ingest(spark, lakehouse, monkeypatch):
    """The CLI is an entry point: its lakehouse comes from the environment (an empty one here)."""
    import agrilake.core.spark

    monkeypatch.setenv("AGRILAKE_LAKEHOUSE", str(lakehouse))
    monkeypatch.setattr(agrilake.core.spark, "get_spark", lambda *a, **k: spark)
    with pytest.raises(SystemExit, match="nothing has been ingested"):
        main(["--date", "latest"])
