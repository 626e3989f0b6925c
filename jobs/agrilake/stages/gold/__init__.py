"""The gold stage: credit and logistics datasets of docs/metrics.md, per as-of date, write-audit-publish.

`build` is the pure part (silver DataFrames in, four gold DataFrames out); `publish` validates
each with its GX suite, records the outcomes in ops.dq_results and, only when no critical
expectation failed on any of the four, overwrites the date's partition of each gold table.
The four tables of a date are published together or not at all: the county summary is derived
from the cooperative profile, so a half-published date would be inconsistent.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from agrilake.core import audit, dates, deliveries, faults, lineage, ops, tables
from agrilake.core.context import RunContext
from agrilake.core.contracts import GOLD_TABLES, Contracts, packaged
from agrilake.stages.gold.asof import divisions_state, upsert_state
from agrilake.stages.gold.credit import (
    coop_credit_profile,
    credit_county_summary,
    household_credit_profile,
    household_population,
)
from agrilake.stages.gold.logistics import PREFIX_LENGTH, logistics_division_daily
from agrilake.stages.gold.parcels import parcels_known

log = logging.getLogger(__name__)

PARTITION_COLUMN = "as_of_date"


def read_silver(ctx: RunContext) -> dict[str, DataFrame]:
    """Every silver table (all versions, with lineage); a table never written reads as empty."""
    return {name: tables.read_or_empty(ctx, "silver", name, t.ddl) for name, t in ctx.contracts.silver_tables().items()}


# The tables built from silver; credit_county_summary is derived from the cooperative profile.
FROM_SILVER = {
    "coop_credit_profile": coop_credit_profile,
    "household_credit_profile": household_credit_profile,
    "logistics_division_daily": logistics_division_daily,
}


# What a builder of FROM_SILVER takes besides silver, built once by transform for all that take it.
USES = {"coop_credit_profile": ("known_parcels",), "logistics_division_daily": ("known_parcels",)}


def transform(silver: dict[str, DataFrame], as_of: date, contracts: Contracts | None = None, *,
              keep: Callable[[DataFrame], DataFrame] = lambda df: df,
              each: Callable[[Callable[[str], DataFrame], list[str]], list[DataFrame]] | None = None,
              ) -> dict[str, DataFrame]:
    """The pure part: silver DataFrames in, the four gold DataFrames of as-of date D out.

    `keep` is applied to each table as it is built and to what several tables share (publish: an
    eager checkpoint) and `each` maps the builders of FROM_SILVER (publish: side by side in threads);
    the county summary is derived from the kept cooperative profile, so the profile is not computed
    twice."""
    contracts = contracts or packaged()
    names = list(FROM_SILVER)
    # Both the cooperative profile and the logistics table count parcels: built (and kept) once.
    shared = {"known_parcels": keep(parcels_known(silver, as_of, contracts))}

    def one(name: str) -> DataFrame:
        return keep(FROM_SILVER[name](silver, as_of, contracts, **{k: shared[k] for k in USES.get(name, ())}))

    built = dict(zip(names, (each or (lambda fn, items: [fn(i) for i in items]))(one, names), strict=True))
    built["credit_county_summary"] = keep(credit_county_summary(built["coop_credit_profile"], contracts))
    return built


def _side_by_side(ctx: RunContext, fn: Callable[[str], Any], names: list[str]) -> list[Any]:
    """fn over names in threads, `settings.feed_concurrency` at a time: gold's tables are small jobs
    and separate commits, so one table's driver-side work overlaps another's Spark tasks. Results
    in order; the first error is raised once the running ones finish."""
    workers = max(1, min(ctx.settings.feed_concurrency, len(names)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gold") as pool:
        return list(pool.map(fn, names))


def build(ctx: RunContext, as_of: date) -> dict[str, DataFrame]:
    """The four gold tables for as-of date D, from the silver Delta tables."""
    return transform(read_silver(ctx), as_of, ctx.contracts)


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


def suite(ctx: RunContext, name: str, expected_rows: int) -> list[dict[str, Any]]:
    """expectations/gold_<name>.yaml plus what only the code knows: the contract's column order
    and the population's row count for this date."""
    columns = [c.name for c in ctx.contracts.gold_table(name).columns]
    return [
        {"expectation": "expect_table_columns_to_match_ordered_list", "kwargs": {"column_list": columns},
         "severity": "critical"},
        {"expectation": "expect_table_row_count_to_equal", "kwargs": {"value": expected_rows},
         "severity": "critical"},
        *audit.suite(ctx, f"gold_{name}"),
    ]


def record_publication(ctx: RunContext, as_of: date, run_id: str, written: dict[str, int],
                       missing: list[str] | None = None) -> None:
    """One ops.gold_publications row once every table of the date is written: the versions a reader
    must use to see the date whole (a publish killed between its commits records nothing, and readers
    keep the date's previous publication until a rerun completes)."""
    faults.crash_point("before_gold_publication")
    versions = {name: tables.latest_version(ctx, "gold", name) for name in written}
    ops.create(ctx, "gold_publications")
    row = {"as_of_date": as_of, "run_id": run_id, "versions": versions, "row_counts": written,
           "published_at": datetime.now(UTC).replace(tzinfo=None), "missing_deliveries": list(missing or [])}
    tables.append(ctx, ops.rows_df(ctx, ops.ddl(ctx, "gold_publications"), [row]), "ops", "gold_publications")


def publish(ctx: RunContext, silver: dict[str, DataFrame], as_of: date, *, run_id: str | None = None,
            missing: list[str] | None = None) -> dict[str, int]:
    """Build, validate, record and (if every critical expectation passed) write one as-of date.
    Returns the row count written per table; raises QualityGateFailed and writes nothing otherwise.
    `missing`: the deliveries an operator chose to publish without (recorded in ops.gold_publications).
    Whether the date's deliveries are there is the caller's question (`run`)."""
    with lineage.stage_run(ctx, "gold.publish", dates=[as_of]) as run:
        if run is not None:  # silver is usually read once for many dates, before this run began
            for name in ctx.contracts.silver_tables():
                if tables.exists(ctx, "silver", name):
                    tables.note_read(ctx, "silver", name)
        written = _publish(ctx, silver, as_of, run_id or ops.new_run_id(), missing)
        if run is not None:
            for name, rows in written.items():
                run.rows_written(tables.path(ctx, "gold", name), rows)
        return written


def _publish(ctx: RunContext, silver: dict[str, DataFrame], as_of: date, run_id: str,
             missing: list[str] | None = None) -> dict[str, int]:
    kept: list[DataFrame] = []

    def keep(df: DataFrame) -> DataFrame:
        # Computed once and cut from their lineage: the GX expectations and the write then scan a small
        # in-memory table instead of re-planning the whole as-of join tree for every query.
        kept.append(df.localCheckpoint(eager=True))
        return kept[-1]

    try:
        frames = transform(silver, as_of, ctx.contracts, keep=keep, each=lambda fn, names: _side_by_side(ctx, fn, names))
        expected = expected_row_counts(silver, as_of)
        checks = {f"gold.{name}": audit.Check(df, f"gold_{name}", suite(ctx, name, expected[name]))
                  for name, df in frames.items()}
        audit.audit(ctx, checks, as_of=as_of, run_id=run_id)

        def write(name: str) -> None:
            contract = ctx.contracts.gold_table(name)
            # Created once with the metric definitions as column comments, for analysts' DESCRIBE.
            tables.create_if_missing(ctx, "gold", name, contract.ddl, partition_by=[PARTITION_COLUMN],
                                     comments={c.name: c.description for c in contract.columns})
            tables.replace_partition(ctx, frames[name], "gold", name, PARTITION_COLUMN, as_of.isoformat())
            faults.crash_point("after_gold_table")

        _side_by_side(ctx, write, list(frames))
        written = {name: expected[name] for name in frames}
        record_publication(ctx, as_of, run_id, written, missing)
        log.info("gold %s published: %s", as_of, written)
        return written
    finally:
        for df in kept:
            df.unpersist()


def run(ctx: RunContext, wanted: list[date], *, allow_partial: bool = False, with_pending: bool = False,
        silver: dict[str, DataFrame] | None = None) -> deliveries.Outcome:
    """Publish each date of `wanted` whose deliveries are all there (core.deliveries), in order; the others
    wait, each with what it waits for (logged as a warning). `with_pending`: also the dates after the
    newest publication that waited before and may now be built (an Asset-triggered run).
    `allow_partial`: publish a date that waits all the same, recording what it lacked."""
    wanted = sorted(set(wanted))
    if with_pending and wanted:
        wanted = sorted(set(wanted) | set(deliveries.pending(ctx, wanted[-1])))
    planned = deliveries.plan(ctx, wanted, allow_partial=allow_partial)
    for line in planned.warnings():
        if allow_partial:
            log.warning("%s; published all the same (--allow-partial), recorded in ops.gold_publications", line)
        else:
            log.warning("gold %s; it is built once the delivery lands (or with --allow-partial)", line)
    if planned.build:
        silver = silver if silver is not None else read_silver(ctx)
        run_id = ops.new_run_id()
        for d in planned.build:
            # a failed critical expectation raises QualityGateFailed (naming it) before anything is written
            publish(ctx, silver, d, run_id=run_id, missing=planned.missing.get(d) if allow_partial else None)
    return deliveries.Outcome(built=planned.build,
                              waiting={} if allow_partial else planned.waiting)


def task(argv: list[str], planned: list[date] | None) -> deliveries.Outcome:
    """The scheduler's entry (orchestration.tasks.run_stage): the dates its Asset events planned (None: those
    of argv), plus the dates that waited for a delivery that has landed since."""
    from agrilake.core import context

    args = _options().parse_args(argv)
    ctx = context.from_env("agrilake-gold")
    wanted = planned if planned is not None else dates.resolve_all(ctx, dates.from_options(args))
    return run(ctx, wanted, allow_partial=args.allow_partial, with_pending=True)


def _options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agrilake gold", description=__doc__.splitlines()[0])
    dates.add_date_options(parser, what="as-of date D", ranges=True)
    parser.add_argument("--allow-partial", action="store_true",
                        help="publish a date even when a system due on it (or since the previous publication) has "
                             "not delivered; what was missing is recorded in ops.gold_publications")
    return parser


def main(argv: list[str] | None = None) -> int:
    from agrilake.core import context

    args = _options().parse_args(argv)
    wanted = dates.from_options(args)  # a bad argument fails before a Spark session starts
    ctx = context.from_env("agrilake-gold")
    outcome = run(ctx, dates.resolve_all(ctx, wanted), allow_partial=args.allow_partial)
    return outcome.report("gold")


__all__ = ["GOLD_TABLES", "build", "expected_row_counts", "main", "publish", "read_silver", "suite", "transform"]
