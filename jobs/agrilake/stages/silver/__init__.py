"""Silver: bronze text -> typed, validated, deduplicated, pseudonymised entities with lineage.

A run for date D takes, per feed, the bronze rows delivered <= D that the silver ledger has not
settled (new rows, and rows held for an unknown reference), and gives each exactly one outcome in
`ops.silver_ledger`: accepted (MERGEd into silver.<entity>), quarantined (ops.quarantine, with its
reason), duplicate (counted, not kept), or held (UNKNOWN_REF / UNKNOWN_DIVISION: re-evaluated on
every later run, released when the reference arrives). Bronze rows delivered <= D always equal
accepted + quarantined + duplicate + held: a GX check stops the run when they do not.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, date, datetime

from agrilake.core import audit, dates, ops, tables
from agrilake.core.context import RunContext
from agrilake.core.pseudonymise import MissingSecret, resolve_key
from agrilake.stages.silver import outcomes
from agrilake.stages.silver.conform import conform
from agrilake.stages.silver.entities import DOMAINS, ENTITIES, Entity, entity

log = logging.getLogger(__name__)

LINEAGE = ["_delivery_date", "_file_sha256", "_line", "_batch_id"]


def conform_entity(ctx: RunContext, e: Entity, as_of: date, run_id: str, key: str,
                   dq: ops.DQBatch | None = None) -> dict:
    from pyspark.sql import functions as F

    feed = ctx.contracts.feed(e.feed)
    table = ctx.contracts.silver_tables()[e.table]
    tables.create_if_missing(ctx, "silver", e.table, table.ddl, partition_by=["_delivery_date"],
                             comments={c.name: c.description for c in table.columns}, constraints=e.constraints)
    counts = {"table": e.table, "candidates": 0, "accepted": 0, "quarantined": 0, "duplicate": 0, "held": 0}
    if not tables.exists(ctx, "bronze", feed.name):
        return counts

    bronze = tables.read(ctx, "bronze", feed.name).where(F.col("_delivery_date") <= F.lit(as_of))
    settled = (tables.read(ctx, "ops", "silver_ledger")
               .where((F.col("feed") == feed.name) & (F.col("outcome") != "held"))
               .select("_file_sha256", "_line"))
    candidates = bronze.join(settled, ["_file_sha256", "_line"], "left_anti")
    # References known in silver: tables earlier in the domain order are already merged for this run,
    # so a cooperative and its members delivered together both pass.
    known = [outcomes.known_values(tables.read(ctx, "silver", ref.ref_table), ref.ref_column, i)
             for i, ref in enumerate(e.refs)]
    checked = outcomes.check_references(conform(candidates, feed), e, known)
    shaped = outcomes.shape(checked, e, table, feed, key, run_id)
    # Eager and lineage-free: the outcomes must not be recomputed after the MERGE into silver below,
    # or the rows just accepted would find themselves in silver as duplicates.
    ranked = outcomes.rank(shaped, table, tables.read(ctx, "silver", e.table)).localCheckpoint(eager=True)

    outcome_counts = {r._outcome: r["count"] for r in ranked.groupBy("_outcome").count().collect()}
    counts.update({k: outcome_counts.get(k, 0) for k in outcomes.OUTCOMES})
    counts["candidates"] = sum(outcome_counts.values())
    if counts["candidates"] == 0:
        return counts

    shas = sorted({r._file_sha256 for r in ranked.select("_file_sha256").distinct().collect()})
    in_batch = f"t._file_sha256 IN ({', '.join(repr(s) for s in shas)})"
    if counts["accepted"]:
        accepted = outcomes.accepted_rows(ranked, table)
        suite_context = {"key": list(table.key), "columns": [c.name for c in table.columns], "lineage": LINEAGE}
        checks = {f"silver.{e.table}": audit.Check(accepted, f"silver.{e.table}",
                                                    silver_suite(ctx, e.table, suite_context))}
        audit.audit(ctx, checks, as_of=as_of, run_id=run_id, dq=dq)
        tables.merge(ctx, accepted, "silver", e.table,
                     f"{in_batch} AND t._file_sha256 = s._file_sha256 AND t._line = s._line")
    now = datetime.now(UTC).replace(tzinfo=None)
    if counts["quarantined"]:
        tables.merge(ctx, outcomes.quarantine_rows(ranked, feed, run_id, now), "ops", "quarantine",
                     f"t.stage = 'silver' AND {in_batch} AND t._file_sha256 = s._file_sha256 AND t._line = s._line")
    _merge_ledger(ctx, outcomes.ledger_rows(ranked, feed, as_of, run_id, now), feed.name)
    return counts


def _merge_ledger(ctx: RunContext, ledger, feed_name: str) -> None:
    from delta.tables import DeltaTable

    target = DeltaTable.forPath(ctx.spark, tables.path(ctx, "ops", "silver_ledger"))
    (target.alias("t").merge(ledger.alias("s"), f"t.feed = '{feed_name}' AND t.feed = s.feed AND "
                             "t._file_sha256 = s._file_sha256 AND t._line = s._line")
     .whenMatchedUpdate(set={"outcome": "s.outcome", "reason": "s.reason", "detail": "s.detail",
                             "held_since": "coalesce(t.held_since, s.held_since)", "updated_at": "s.updated_at",
                             "run_id": "s.run_id"})
     .whenNotMatchedInsertAll().execute())


def silver_suite(ctx: RunContext, table: str, context: dict) -> list[dict]:
    """expectations/silver.yaml for every table, plus silver_<table>.yaml where there is one."""
    specs = audit.suite(ctx, "silver", context)
    try:
        specs += audit.suite(ctx, f"silver_{table}", context)
    except FileNotFoundError:
        pass
    return specs


RECONCILIATION = [{"expectation": "expect_column_values_to_be_in_set",
                   "kwargs": {"column": "balanced", "value_set": [True]}, "severity": "critical"}]


def reconcile(ctx: RunContext, as_of: date, feeds: list[str], run_id: str,
              dq: ops.DQBatch | None = None) -> list[dict]:
    """Bronze rows delivered <= D against their ledger outcomes, per feed and delivery date (GX-checked)."""
    from pyspark.sql import functions as F

    rows = []
    ledger = tables.read(ctx, "ops", "silver_ledger")
    for name in feeds:
        if not tables.exists(ctx, "bronze", name):
            continue
        b = (tables.read(ctx, "bronze", name).where(F.col("_delivery_date") <= F.lit(as_of))
             .groupBy("_delivery_date").count().withColumnRenamed("count", "bronze"))
        led = (ledger.where((F.col("feed") == name) & (F.col("_delivery_date") <= F.lit(as_of)))
               .groupBy("_delivery_date").pivot("outcome", list(outcomes.OUTCOMES)).count())
        for r in b.join(led, "_delivery_date", "left").collect():
            parts = {k: r[k] or 0 for k in outcomes.OUTCOMES}
            rows.append({"feed": name, "delivery_date": r._delivery_date, "bronze": r.bronze, **parts,
                         "balanced": r.bronze == sum(parts.values())})
    if rows:
        checks = {"silver.reconciliation": audit.Check(ctx.spark.createDataFrame(rows), "silver.reconciliation",
                                                        RECONCILIATION)}
        audit.audit(ctx, checks, as_of=as_of, run_id=run_id, dq=dq)
    return rows


def run(ctx: RunContext, domain: str | None, as_of: date, run_id: str | None = None) -> list[dict]:
    run_id = run_id or f"silver-{as_of.isoformat()}-{ops.new_run_id()}"
    key = resolve_key(ctx.settings)
    ops.ensure(ctx)
    ops.create(ctx, "silver_ledger")
    names = [t for d, ts in DOMAINS.items() if domain in (None, d) for t in ts]
    out = []
    with ops.DQBatch(ctx, partition=as_of.isoformat(), run_id=run_id) as dq:
        for name in names:
            counts = conform_entity(ctx, entity(name), as_of, run_id, key, dq)
            log.info("silver.%s %s: %d candidate rows -> accepted %d, quarantined %d, duplicate %d, held %d",
                     name, as_of, counts["candidates"], counts["accepted"], counts["quarantined"],
                     counts["duplicate"], counts["held"])
            out.append(counts)
        reconcile(ctx, as_of, [entity(n).feed for n in names], run_id, dq)
    return out


def held_rows(ctx: RunContext):
    """Rows waiting for a reference, with how long they have waited (for operators and the CLI)."""
    from pyspark.sql import functions as F

    return (tables.read(ctx, "ops", "silver_ledger").where(F.col("outcome") == "held")
            .withColumn("held_days", F.datediff(F.current_date(), "held_since")))


def main(argv: list[str] | None = None) -> int:
    from agrilake.core import context, quality

    parser = argparse.ArgumentParser(prog="agrilake silver", description=__doc__)
    dates.add_date_options(parser, what="as-of date")
    parser.add_argument("--domain", choices=sorted(DOMAINS), help="one domain (default: all, in dependency order)")
    args = parser.parse_args(argv)
    ctx = context.from_env(f"agrilake-silver-{args.domain or 'all'}")
    try:
        counts = run(ctx, args.domain, dates.resolve(ctx, args.date))
    except (quality.QualityGateFailed, MissingSecret) as exc:
        print(f"silver: {exc}", file=sys.stderr)
        return 1
    print(f"{'table':<22} {'rows':>8} {'accepted':>8} {'quarant.':>8} {'dups':>6} {'held':>6}")
    for c in counts:
        print(f"{c['table']:<22} {c['candidates']:>8} {c['accepted']:>8} {c['quarantined']:>8} "
              f"{c['duplicate']:>6} {c['held']:>6}")
    return 0


__all__ = ["ENTITIES", "run", "main", "held_rows"]
