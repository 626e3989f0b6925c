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

from jobs import contracts, ops, quality, tables
from jobs.pseudonymise import MissingSecret, resolve_key
from jobs.silver.conform import conform
from jobs.silver.entities import DOMAINS, ENTITIES, Entity, entity, silver_columns

log = logging.getLogger(__name__)

LEDGER_DDL = ("feed string, _file_sha256 string, _line bigint, _delivery_date date, outcome string, reason string, "
              "detail string, held_since date, updated_at timestamp, run_id string")
LINEAGE = ["_delivery_date", "_file_sha256", "_line", "_batch_id"]


def _mask_pii(feed) -> list:
    """Quarantined records keep their values for triage, with PII reduced to a non-identifying stub."""
    from pyspark.sql import functions as F

    out = []
    for c in feed.columns:
        col = F.col(c.name)
        if c.pii:
            col = F.when(col.isNotNull(), F.concat(F.substring(col, 1, 2), F.lit("***")))
        out.extend([F.lit(c.name), col])
    return out


def _content_hash(names: list[str]):
    from pyspark.sql import functions as F

    return F.sha2(F.to_json(F.struct(*[F.col(n) for n in names])), 256)


def conform_entity(spark, e: Entity, as_of: date, run_id: str, key: str,
                   dq: ops.DQBatch | None = None) -> dict:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    feed = contracts.feed(e.feed)
    table = contracts.silver_tables()[e.table]
    business = [c.name for c in table.columns if not c.name.startswith("_")]
    tables.create_if_missing(spark, "silver", e.table, table.ddl, partition_by=["_delivery_date"],
                             comments={c.name: c.description for c in table.columns}, constraints=e.constraints)
    counts = {"table": e.table, "candidates": 0, "accepted": 0, "quarantined": 0, "duplicate": 0, "held": 0}
    if not tables.exists(spark, "bronze", feed.name):
        return counts

    bronze = tables.read(spark, "bronze", feed.name).where(F.col("_delivery_date") <= F.lit(as_of))
    settled = (tables.read(spark, "ops", "silver_ledger")
               .where((F.col("feed") == feed.name) & (F.col("outcome") != "held"))
               .select("_file_sha256", "_line"))
    candidates = bronze.join(settled, ["_file_sha256", "_line"], "left_anti")
    conformed = conform(candidates, feed)

    # References: known in silver (any version, any delivery) — tables earlier in the domain order are
    # already merged for this run, so a cooperative and its members delivered together both pass.
    # A row held for a reference becomes known only when that reference is: its _available_date is the
    # latest of its own delivery and the first availability of each reference, so gold for an earlier
    # date never sees it, however late the backfill runs (METRICS.md point-in-time rule).
    ref_reason = F.lit(None).cast("string")
    available = [F.col("_delivery_date")]
    for i, ref in enumerate(e.refs):
        known = (tables.read(spark, "silver", ref.ref_table).groupBy(F.col(ref.ref_column).alias(f"__ref{i}"))
                 .agg(F.min("_available_date").alias(f"__avail{i}")))
        conformed = conformed.join(known, F.col(f"__typed_{ref.column}") == F.col(f"__ref{i}"), "left")
        ref_reason = F.coalesce(ref_reason, F.when(F.col("_reason").isNull() & F.col(f"__ref{i}").isNull(),
                                                   F.lit(f"{ref.reason}({ref.column})")))
        available.append(F.col(f"__avail{i}"))
    shaped = (conformed.withColumn("_held", ref_reason)
              .withColumn("_available_date", F.greatest(*available) if len(available) > 1 else available[0])
              .select(*silver_columns(e, business, key), "_delivery_date", "_available_date", "_file_sha256", "_line",
                      F.lit(run_id).alias("_batch_id"), "_reason", "_detail", "_held",
                      F.create_map(*_mask_pii(feed)).alias("_record"))
              .withColumn("_hash", _content_hash(business)))

    # Dedup. Events: one row per key, the first delivered. Versioned feeds: identical versions are one.
    dedup_cols = list(table.key) if table.kind == "event" else ["_hash"]
    order = [F.col("_delivery_date"), F.col("_file_sha256"), F.col("_line")]
    existing = tables.read(spark, "silver", e.table)
    if table.kind != "event":
        existing = existing.select(*business).withColumn("_hash", _content_hash(business))
    existing = existing.select(*dedup_cols).distinct().withColumn("_exists", F.lit(True))
    ok = F.col("_reason").isNull() & F.col("_held").isNull()
    ranked = (shaped.withColumn("_rank", F.when(ok, F.row_number().over(Window.partitionBy(ok, *dedup_cols)
                                                                        .orderBy(*order))))
              .join(existing, dedup_cols, "left")
              .withColumn("_outcome", F.when(F.col("_reason").isNotNull(), "quarantined")
                          .when(F.col("_held").isNotNull(), "held")
                          .when(F.col("_exists") | (F.col("_rank") > 1), "duplicate")
                          .otherwise("accepted"))
              # Eager and lineage-free: the outcomes must not be recomputed after the MERGE into silver
              # below, or the rows just accepted would find themselves in `existing` as duplicates.
              .localCheckpoint(eager=True))

    outcome_counts = {r._outcome: r["count"] for r in ranked.groupBy("_outcome").count().collect()}
    counts.update({k: outcome_counts.get(k, 0) for k in ("accepted", "quarantined", "duplicate", "held")})
    counts["candidates"] = sum(outcome_counts.values())
    if counts["candidates"] == 0:
        return counts

    accepted = ranked.where(F.col("_outcome") == "accepted").select(*[c.name for c in table.columns])
    shas = sorted({r._file_sha256 for r in ranked.select("_file_sha256").distinct().collect()})
    in_batch = f"t._file_sha256 IN ({', '.join(repr(s) for s in shas)})"
    if counts["accepted"]:
        suite_context = {"key": list(table.key), "columns": [c.name for c in table.columns], "lineage": LINEAGE}
        result = quality.validate(accepted, f"silver.{e.table}", _silver_suite(e.table, suite_context))
        ops.record(spark, dq, f"silver.{e.table}", result, partition=as_of.isoformat(), run_id=run_id)
        quality.gate(result)
        tables.merge(spark, accepted, "silver", e.table,
                     f"{in_batch} AND t._file_sha256 = s._file_sha256 AND t._line = s._line")
    now = datetime.now(UTC).replace(tzinfo=None)
    if counts["quarantined"]:
        rejected = ranked.where(F.col("_outcome") == "quarantined").select(
            F.lit("silver").alias("stage"), F.lit(feed.name).alias("feed"), F.col("_reason").alias("reason"),
            F.col("_detail").alias("detail"), F.lit(None).cast("string").alias("raw"),
            F.col("_record").alias("record"), "_file_sha256", F.lit(None).cast("string").alias("_file_name"),
            "_line", "_delivery_date", F.lit(run_id).alias("_batch_id"),
            F.lit(now).cast("timestamp").alias("quarantined_at"))
        tables.merge(spark, rejected, "ops", "quarantine",
                     f"t.stage = 'silver' AND {in_batch} AND t._file_sha256 = s._file_sha256 AND t._line = s._line")
    ledger = ranked.select(
        F.lit(feed.name).alias("feed"), "_file_sha256", "_line", "_delivery_date", F.col("_outcome").alias("outcome"),
        F.coalesce(F.col("_reason"), F.regexp_extract("_held", r"^(\w+)", 1)).alias("reason"),
        F.coalesce(F.col("_detail"), F.col("_held")).alias("detail"),
        F.when(F.col("_outcome") == "held", F.lit(as_of)).alias("held_since"),
        F.lit(now).cast("timestamp").alias("updated_at"), F.lit(run_id).alias("run_id"))
    _merge_ledger(spark, ledger, feed.name)
    return counts


def _merge_ledger(spark, ledger, feed_name: str) -> None:
    from delta.tables import DeltaTable

    target = DeltaTable.forPath(spark, tables.path("ops", "silver_ledger"))
    (target.alias("t").merge(ledger.alias("s"), f"t.feed = '{feed_name}' AND t.feed = s.feed AND "
                             "t._file_sha256 = s._file_sha256 AND t._line = s._line")
     .whenMatchedUpdate(set={"outcome": "s.outcome", "reason": "s.reason", "detail": "s.detail",
                             "held_since": "coalesce(t.held_since, s.held_since)", "updated_at": "s.updated_at",
                             "run_id": "s.run_id"})
     .whenNotMatchedInsertAll().execute())


def _silver_suite(table: str, context: dict) -> list[dict]:
    specs = quality.load_suite("silver", context=context)
    try:
        specs += quality.load_suite(f"silver_{table}", context=context)
    except FileNotFoundError:
        pass
    return specs


def reconcile(spark, as_of: date, feeds: list[str], run_id: str, dq: ops.DQBatch | None = None) -> list[dict]:
    """Bronze rows delivered <= D against their ledger outcomes, per feed and delivery date (GX-checked)."""
    from pyspark.sql import functions as F

    rows = []
    ledger = tables.read(spark, "ops", "silver_ledger")
    for name in feeds:
        if not tables.exists(spark, "bronze", name):
            continue
        b = (tables.read(spark, "bronze", name).where(F.col("_delivery_date") <= F.lit(as_of))
             .groupBy("_delivery_date").count().withColumnRenamed("count", "bronze"))
        led = (ledger.where((F.col("feed") == name) & (F.col("_delivery_date") <= F.lit(as_of)))
               .groupBy("_delivery_date").pivot("outcome", ["accepted", "quarantined", "duplicate", "held"]).count())
        for r in b.join(led, "_delivery_date", "left").collect():
            parts = {k: r[k] or 0 for k in ("accepted", "quarantined", "duplicate", "held")}
            rows.append({"feed": name, "delivery_date": r._delivery_date, "bronze": r.bronze, **parts,
                         "balanced": r.bronze == sum(parts.values())})
    if rows:
        df = spark.createDataFrame(rows)
        result = quality.validate(df, "silver.reconciliation", [
            {"expectation": "expect_column_values_to_be_in_set", "kwargs": {"column": "balanced", "value_set": [True]},
             "severity": "critical"}])
        ops.record(spark, dq, "silver.reconciliation", result, partition=as_of.isoformat(), run_id=run_id)
        quality.gate(result)
    return rows


def run(spark, domain: str | None, as_of: date, run_id: str | None = None) -> list[dict]:
    run_id = run_id or f"silver-{as_of.isoformat()}-{ops.new_run_id()}"
    key = resolve_key()
    ops.ensure(spark)
    tables.create_if_missing(spark, "ops", "silver_ledger", LEDGER_DDL)
    names = [t for d, ts in DOMAINS.items() if domain in (None, d) for t in ts]
    out = []
    with ops.DQBatch(spark, partition=as_of.isoformat(), run_id=run_id) as dq:
        for name in names:
            counts = conform_entity(spark, entity(name), as_of, run_id, key, dq)
            log.info("silver.%s %s: %d candidate rows -> accepted %d, quarantined %d, duplicate %d, held %d",
                     name, as_of, counts["candidates"], counts["accepted"], counts["quarantined"],
                     counts["duplicate"], counts["held"])
            out.append(counts)
        reconcile(spark, as_of, [entity(n).feed for n in names], run_id, dq)
    return out


def held_rows(spark):
    """Rows waiting for a reference, with how long they have waited (for operators and the CLI)."""
    from pyspark.sql import functions as F

    return (tables.read(spark, "ops", "silver_ledger").where(F.col("outcome") == "held")
            .withColumn("held_days", F.datediff(F.current_date(), "held_since")))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake silver", description=__doc__)
    parser.add_argument("--date", required=True, help="as-of date YYYY-MM-DD, or `latest` (newest delivery)")
    parser.add_argument("--domain", choices=sorted(DOMAINS), help="one domain (default: all, in dependency order)")
    args = parser.parse_args(argv)
    from jobs.spark import get_spark

    spark = get_spark(f"agrilake-silver-{args.domain or 'all'}")
    try:
        counts = run(spark, args.domain, ops.resolve_date(spark, args.date))
    except (quality.QualityGateFailed, MissingSecret) as exc:
        print(f"silver: {exc}", file=sys.stderr)
        return 1
    print(f"{'table':<22} {'rows':>8} {'accepted':>8} {'quarant.':>8} {'dups':>6} {'held':>6}")
    for c in counts:
        print(f"{c['table']:<22} {c['candidates']:>8} {c['accepted']:>8} {c['quarantined']:>8} "
              f"{c['duplicate']:>6} {c['held']:>6}")
    return 0


__all__ = ["ENTITIES", "run", "main", "held_rows"]
