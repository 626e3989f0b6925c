"""The gold stage: credit and logistics datasets of METRICS.md, per as-of date, write-audit-publish.

`build` is the pure part (silver DataFrames in, four gold DataFrames out); `publish` validates
each with its GX suite, records the outcomes in ops.dq_results and, only when no critical
expectation failed on any of the four, overwrites the date's partition of each gold table.
The four tables of a date are published together or not at all: the county summary is derived
from the cooperative profile, so a half-published date would be inconsistent.
"""

from __future__ import annotations

import argparse
import logging
from datetime import date, timedelta
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs import ops, quality, tables
from jobs.contracts import silver_tables
from jobs.gold.asof import divisions_state, upsert_state
from jobs.gold.contract import GOLD_TABLES, gold_table
from jobs.gold.credit import (
    coop_credit_profile,
    credit_county_summary,
    household_credit_profile,
    household_population,
)
from jobs.gold.logistics import PREFIX_LENGTH, logistics_division_daily
from jobs.spark import get_spark

log = logging.getLogger(__name__)

PARTITION_COLUMN = "as_of_date"


def read_silver(spark) -> dict[str, DataFrame]:
    """Every silver table (all versions, with lineage); a table never written reads as empty."""
    return {name: tables.read_or_empty(spark, "silver", name, t.ddl) for name, t in silver_tables().items()}


def transform(silver: dict[str, DataFrame], as_of: date) -> dict[str, DataFrame]:
    coops = coop_credit_profile(silver, as_of)
    return {
        "coop_credit_profile": coops,
        "household_credit_profile": household_credit_profile(silver, as_of),
        "logistics_division_daily": logistics_division_daily(silver, as_of),
        "credit_county_summary": credit_county_summary(coops),
    }


def build(spark, as_of: date) -> dict[str, DataFrame]:
    """The four gold tables for as-of date D, from the silver Delta tables."""
    return transform(read_silver(spark), as_of)


def expected_row_counts(silver: dict[str, DataFrame], as_of: date) -> dict[str, int]:
    """Each table's row count by its population rule, counted straight from the as-of states
    (no joins), so a join that duplicates or drops rows fails the gate."""
    coops = upsert_state(silver["cooperatives"], "cooperatives", as_of)
    return {
        "coop_credit_profile": coops.count(),
        "household_credit_profile": household_population(silver, as_of).count(),
        "logistics_division_daily": divisions_state(silver["divisions"], as_of)
        .where(F.col("level").isin(*PREFIX_LENGTH)).count(),
        "credit_county_summary": coops.select(F.substring("village_code", 1, 6)).distinct().count(),
    }


def suite(name: str, expected_rows: int) -> list[dict[str, Any]]:
    """expectations/gold_<name>.yaml plus what only the code knows: the contract's column order
    and the population's row count for this date."""
    columns = [c.name for c in gold_table(name).columns]
    return [
        {"expectation": "expect_table_columns_to_match_ordered_list", "kwargs": {"column_list": columns},
         "severity": "critical"},
        {"expectation": "expect_table_row_count_to_equal", "kwargs": {"value": expected_rows},
         "severity": "critical"},
        *quality.load_suite(f"gold_{name}"),
    ]


def publish(spark, silver: dict[str, DataFrame], as_of: date, *, run_id: str | None = None) -> dict[str, int]:
    """Build, validate, record and (if every critical expectation passed) write one as-of date.
    Returns the row count written per table; raises QualityGateFailed and writes nothing otherwise."""
    run_id = run_id or ops.new_run_id()
    partition = f"{PARTITION_COLUMN}={as_of.isoformat()}"
    # Computed once and cut from their lineage: the GX expectations and the write then scan a small
    # in-memory table instead of re-planning the whole as-of join tree for every query.
    frames = {name: df.localCheckpoint(eager=True) for name, df in transform(silver, as_of).items()}
    try:
        expected = expected_row_counts(silver, as_of)
        results = {name: quality.validate(df, f"gold_{name}", suite(name, expected[name]))
                   for name, df in frames.items()}
        ops.record_dq_batch(spark, {f"gold.{name}": r for name, r in results.items()},
                            partition=partition, run_id=run_id)
        failed = {name: r for name, r in results.items() if r.critical_failures}
        if failed:
            raise quality.QualityGateFailed(
                ", ".join(f"gold_{n}" for n in failed), [o for r in failed.values() for o in r.critical_failures])
        for name, df in frames.items():
            contract = gold_table(name)
            # Created once with the METRICS.md definitions as column comments, for analysts' DESCRIBE.
            tables.create_if_missing(spark, "gold", name, contract.ddl, partition_by=[PARTITION_COLUMN],
                                     comments={c.name: c.description for c in contract.columns})
            tables.replace_partition(df, "gold", name, PARTITION_COLUMN, as_of.isoformat())
        written = {name: expected[name] for name in frames}
        log.info("gold %s published: %s", as_of, written)
        return written
    finally:
        for df in frames.values():
            df.unpersist()


def _dates(args: argparse.Namespace) -> list[date]:
    if args.date:
        return [args.date]
    if not (args.from_ and args.to):
        raise SystemExit("gold: give --date D (or `latest`), or --from D1 --to D2")
    if args.to < args.from_:
        raise SystemExit(f"gold: --to {args.to} is before --from {args.from_}")
    return [args.from_ + timedelta(days=i) for i in range((args.to - args.from_).days + 1)]


def _as_of(value: str) -> date | str:
    return value if value == "latest" else date.fromisoformat(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake gold", description=__doc__.splitlines()[0])
    parser.add_argument("--date", type=_as_of, help="as-of date D (YYYY-MM-DD), or `latest` (newest delivery)")
    parser.add_argument("--from", dest="from_", type=date.fromisoformat, help="first as-of date of a range")
    parser.add_argument("--to", type=date.fromisoformat, help="last as-of date of a range (inclusive)")
    args = parser.parse_args(argv)
    latest = args.date == "latest"
    dates = [] if latest else _dates(args)  # a bad argument fails before a Spark session starts
    spark = get_spark("agrilake-gold")
    if latest:
        dates = [ops.resolve_date(spark, "latest")]
    silver = read_silver(spark)
    run_id = ops.new_run_id()
    for d in dates:
        # a failed critical expectation raises QualityGateFailed (naming it) before anything is written
        publish(spark, silver, d, run_id=run_id)
    return 0


__all__ = ["GOLD_TABLES", "build", "expected_row_counts", "main", "publish", "read_silver", "suite", "transform"]
