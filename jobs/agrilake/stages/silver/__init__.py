"""Silver: bronze text -> typed, validated, deduplicated, pseudonymised entities with lineage.

A run for date D takes, per feed, the bronze rows delivered <= D that the silver ledger has not
settled (new rows, and rows held for an unknown reference), and gives each exactly one outcome in
`ops.silver_ledger`: accepted (appended to silver.<entity>), quarantined (ops.quarantine, with its
reason), duplicate (counted, not kept), or held (UNKNOWN_REF / UNKNOWN_DIVISION: re-evaluated on
every later run, released when the reference arrives). Bronze rows delivered <= D always equal
accepted + quarantined + duplicate + held: a GX check stops the run when they do not.

Commits of a run: one append per silver table with accepted rows (after its GX audit), then one
quarantine MERGE and one ledger append for all tables (plus a ledger MERGE when rows held before
were re-evaluated), then the reconciliation's DQ record. A run stopped between silver and the
ledger is completed by the next one: see `record`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from agrilake.core import audit, dates, faults, lineage, locks, ops, pseudonymise, tables
from agrilake.core.context import RunContext
from agrilake.core.pseudonymise import MissingSecret, resolve_key
from agrilake.stages.silver import outcomes
from agrilake.stages.silver.conform import conform
from agrilake.stages.silver.entities import DOMAINS, ENTITIES, Entity, entity

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

LINEAGE = ["_delivery_date", "_file_sha256", "_line", "_batch_id"]


@dataclass
class Published:
    """One table's outcomes for this run, after silver got its accepted rows; recorded at the run's end."""

    entity: Entity
    ranked: DataFrame  # checkpointed: the same outcomes however often it is read
    quarantine_files: list[str]  # the files of its quarantined rows (prunes the quarantine MERGE)
    was_held: int  # rows the ledger held before this run (their ledger rows are updated, not appended)
    new: int  # rows the ledger has never seen (appended)


def conform_entity(ctx: RunContext, e: Entity, as_of: date, run_id: str, key: str,
                   dq: ops.DQBatch | None = None, gx_lock=None) -> tuple[dict, Published | None]:
    """Outcomes of one table's candidate rows; audits and appends the accepted ones to silver.

    The ledger and quarantine rows are returned, not written: `record` writes every table's in one
    commit each at the end of the run."""
    from pyspark.sql import functions as F

    feed = ctx.contracts.feed(e.feed)
    table = ctx.contracts.silver_tables()[e.table]
    marks = {pseudonymise.FINGERPRINT_PROPERTY: pseudonymise.fingerprint(key)} if e.pseudonymised else None
    created = tables.create_if_missing(ctx, "silver", e.table, table.ddl, partition_by=["_delivery_date"],
                                       comments={c.name: c.description for c in table.columns},
                                       constraints=e.constraints, properties=marks)
    if marks and not created:
        same_key(ctx, e.table, marks[pseudonymise.FINGERPRINT_PROPERTY])
    counts = {"table": e.table, "candidates": 0, "accepted": 0, "quarantined": 0, "duplicate": 0, "held": 0}
    if not tables.exists(ctx, "bronze", feed.name):
        return counts, None

    bronze = tables.read(ctx, "bronze", feed.name).where(F.col("_delivery_date") <= F.lit(as_of))
    if "_available_date" not in bronze.columns:  # a bronze table from before late files were told apart
        bronze = bronze.withColumn("_available_date", F.lit(None).cast("date"))
    # Candidates: bronze rows the ledger has not settled (no outcome yet, or held); one join tells both.
    ledger = (tables.read(ctx, "ops", "silver_ledger").where(F.col("feed") == feed.name)
              .select("_file_sha256", "_line", F.col("outcome").alias("__ledger_outcome")))
    candidates = (bronze.join(ledger, ["_file_sha256", "_line"], "left")
                  .where(F.col("__ledger_outcome").isNull() | (F.col("__ledger_outcome") == "held"))
                  .withColumn("_was_held", F.col("__ledger_outcome").isNotNull()).drop("__ledger_outcome"))
    # References known in silver: tables earlier in the domain order are already appended for this
    # run, so a cooperative and its members delivered together both pass.
    # A referenced table another domain has not created yet (its first run still going) knows nothing:
    # the rows wait for it (held) instead of failing the run.
    known = [outcomes.known_values(tables.read_or_empty(ctx, "silver", ref.ref_table,
                                                        ctx.contracts.silver_tables()[ref.ref_table].ddl),
                                   ref.ref_column, i)
             for i, ref in enumerate(e.refs)]
    checked = outcomes.check_references(conform(candidates, feed), e, known)
    shaped = outcomes.shape(checked, e, table, feed, key, run_id)
    # Eager and lineage-free: the outcomes must not be recomputed after the append to silver below,
    # or the rows just accepted would find themselves in silver.
    ranked = outcomes.rank(shaped, table, tables.read(ctx, "silver", e.table)).localCheckpoint(eager=True)

    # One small job for the counts, the quarantined rows' files and the rows held before.
    groups = (ranked.groupBy("_outcome", "_was_held", "_in_silver",
                             F.when(F.col("_outcome") == "quarantined", F.col("_file_sha256")).alias("sha"))
              .count().collect())
    for g in groups:
        counts[g["_outcome"]] += g["count"]
    counts["candidates"] = sum(g["count"] for g in groups)
    if counts["candidates"] == 0:
        return counts, None
    to_append = sum(g["count"] for g in groups if g["_outcome"] == "accepted" and not g["_in_silver"])
    if to_append:
        accepted = outcomes.accepted_rows(ranked, table)
        suite_context = {"key": list(table.key), "columns": [c.name for c in table.columns], "lineage": LINEAGE}
        checks = {f"silver.{e.table}": audit.Check(accepted, f"silver.{e.table}",
                                                    silver_suite(ctx, e.table, suite_context))}
        with gx_lock or contextlib.nullcontext():  # GX's context is not thread-safe
            audit.audit(ctx, checks, as_of=as_of, run_id=run_id, dq=dq)
        tables.append(ctx, accepted, "silver", e.table)
        faults.crash_point("after_silver_append")
    was_held = sum(g["count"] for g in groups if g["_was_held"])
    return counts, Published(e, ranked, sorted({g["sha"] for g in groups if g["sha"]}), was_held,
                             counts["candidates"] - was_held)


def same_key(ctx: RunContext, table: str, mine: str) -> None:
    """Refuse to add person keys to a table whose keys were made with another key (a table from before
    fingerprints gets this run's: the first run after the upgrade vouches for its key)."""
    theirs = tables.properties(ctx, "silver", table).get(pseudonymise.FINGERPRINT_PROPERTY)
    if theirs is None:
        tables.set_properties(ctx, "silver", table, {pseudonymise.FINGERPRINT_PROPERTY: mine})
    elif theirs != mine:
        raise pseudonymise.KeyMismatch(
            f"silver.{table} holds person keys made with the key of fingerprint {theirs}; this run's key has "
            f"fingerprint {mine}. Mixing them would split every person in two. Run with the key that made the "
            "lakehouse, or, for a deliberate key rotation, rebuild silver and gold from bronze with the new key "
            "(docs/operations.md, key rotation).")


def record(ctx: RunContext, published: list[Published], as_of: date, run_id: str) -> None:
    """The quarantine rows and ledger outcomes of every published table: one commit each (two when
    rows held before were re-evaluated).

    Silver is already appended: a run stopped before this commit leaves those bronze rows unsettled,
    and the next run finds them in silver (accepted, not appended again: see outcomes.rank). The
    quarantine MERGE skips rows a stopped run already quarantined; ledger rows are new rows but for
    the ones held before, which are updated in place (their `held_since` kept)."""
    from functools import reduce

    from pyspark.sql import functions as F

    if not published:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    union = lambda frames: reduce(lambda a, b: a.unionByName(b), frames)  # noqa: E731
    files = sorted({sha for p in published for sha in p.quarantine_files})
    if files:
        rows = union([outcomes.quarantine_rows(p.ranked, ctx.contracts.feed(p.entity.feed), run_id, now)
                      for p in published if p.quarantine_files])
        tables.merge(ctx, rows, "ops", "quarantine",
                     f"t.stage = 'silver' AND t._file_sha256 IN ({', '.join(repr(s) for s in files)}) "
                     "AND t._file_sha256 = s._file_sha256 AND t._line = s._line")
    faults.crash_point("after_silver_quarantine")
    ledger = {held: union([outcomes.ledger_rows(p.ranked.where(F.col("_was_held") == F.lit(held)),
                                                ctx.contracts.feed(p.entity.feed), as_of, run_id, now)
                           for p in published]) for held in (True, False)}
    if any(p.was_held for p in published):
        _merge_held(ctx, ledger[True])
    if any(p.new for p in published):
        tables.append(ctx, ledger[False], "ops", "silver_ledger")


def _merge_held(ctx: RunContext, ledger) -> None:
    from delta.tables import DeltaTable

    target = DeltaTable.forPath(ctx.spark, tables.path(ctx, "ops", "silver_ledger"))
    merge = (target.alias("t").merge(ledger.alias("s"), "t.outcome = 'held' AND t.feed = s.feed AND "
                                     "t._file_sha256 = s._file_sha256 AND t._line = s._line")
             .whenMatchedUpdate(set={"outcome": "s.outcome", "reason": "s.reason", "detail": "s.detail",
                                     "held_since": "coalesce(t.held_since, s.held_since)",
                                     "updated_at": "s.updated_at", "run_id": "s.run_id"})
             .whenNotMatchedInsertAll())
    # Every silver domain writes the ledger: under a scheduler two domains' runs commit side by side, and
    # this MERGE reads the whole table, so another domain's append conflicts with it (the same MERGE on
    # the new snapshot is right: nothing of the failed attempt was committed).
    tables.retrying("MERGE into ops.silver_ledger", merge.execute)


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
    """Bronze rows delivered <= D against their ledger outcomes, per feed and delivery date (GX-checked).

    One query for all feeds: the bronze counts of each and the ledger's, pivoted by outcome."""
    from functools import reduce

    from pyspark.sql import functions as F

    present = [name for name in feeds if tables.exists(ctx, "bronze", name)]
    if not present:
        return []
    counted = [tables.read(ctx, "bronze", name).where(F.col("_delivery_date") <= F.lit(as_of))
               .groupBy("_delivery_date").count().select(F.lit(name).alias("feed"), "_delivery_date",
                                                         F.col("count").alias("bronze"))
               for name in present]
    bronze = reduce(lambda a, b: a.unionByName(b), counted)
    led = (tables.read(ctx, "ops", "silver_ledger")
           .where(F.col("feed").isin(present) & (F.col("_delivery_date") <= F.lit(as_of)))
           .groupBy("feed", "_delivery_date").pivot("outcome", list(outcomes.OUTCOMES)).count())
    rows = []
    for r in bronze.join(led, ["feed", "_delivery_date"], "left").collect():
        parts = {k: r[k] or 0 for k in outcomes.OUTCOMES}
        rows.append({"feed": r.feed, "delivery_date": r._delivery_date, "bronze": r.bronze, **parts,
                     "balanced": r.bronze == sum(parts.values())})
    rows.sort(key=lambda row: (present.index(row["feed"]), row["delivery_date"]))
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
    # Two runs of one domain at once would both settle the same bronze rows (core/locks.py).
    domains = [d for d in DOMAINS if domain in (None, d)]
    with lineage.stage_run(ctx, f"silver.conform.{domain or 'all'}", dates=[as_of]), \
            locks.exclusive(ctx.settings, [f"silver-{d}" for d in domains], what=f"silver {as_of}"), \
            ops.DQBatch(ctx, partition=as_of.isoformat(), run_id=run_id) as dq:
        results: dict[str, tuple[dict, Published | None]] = {}
        try:
            _each_table(ctx, names, results, as_of, run_id, key, dq)
        except Exception:
            # A table failed (e.g. its gate): the tables done are in silver, so their outcomes are
            # recorded all the same; if even that fails, the next run records them. The first error is
            # the one to report.
            try:
                record(ctx, [results[n][1] for n in names if n in results and results[n][1]], as_of, run_id)
            except Exception:  # noqa: BLE001
                log.exception("silver: could not record the outcomes of the tables published before the failure")
            raise
        out = [results[n][0] for n in names]
        published = [results[n][1] for n in names if results[n][1]]
        record(ctx, published, as_of, run_id)
        reconcile(ctx, as_of, [entity(n).feed for n in names], run_id, dq)
    return out


def _each_table(ctx: RunContext, names: list[str], results: dict, as_of: date, run_id: str, key: str,
                dq: ops.DQBatch) -> None:
    """Tables side by side, `settings.feed_concurrency` at a time, each once the tables it references
    are done (their values are what it is checked against, as in one-by-one domain order, so the
    outcomes are the same): a table's commits and GX overlap another's Spark jobs. A table that fails
    stops the tables that reference it, not the others; the first error is raised once all are done."""
    gx_lock = threading.Lock()
    needs = {n: {r.ref_table for r in entity(n).refs} & set(names) for n in names}
    failed: list[BaseException] = []
    blocked: set[str] = set()

    def one(name: str) -> None:
        counts, done = conform_entity(ctx, entity(name), as_of, run_id, key, dq, gx_lock)
        log.info("silver.%s %s: %d candidate rows -> accepted %d, quarantined %d, duplicate %d, held %d",
                 name, as_of, counts["candidates"], counts["accepted"], counts["quarantined"],
                 counts["duplicate"], counts["held"])
        results[name] = (counts, done)

    workers = max(1, min(ctx.settings.feed_concurrency, len(names)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="silver") as pool:
        running: dict = {}
        waiting = list(names)
        while waiting or running:
            for name in [n for n in waiting if needs[n] <= set(results)]:
                waiting.remove(name)
                running[pool.submit(one, name)] = name
            for name in [n for n in waiting if needs[n] & blocked]:
                waiting.remove(name)
                blocked.add(name)
                log.error("silver.%s not run: a table it references failed", name)
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                if future.exception() is not None:
                    failed.append(future.exception())
                    blocked.add(name)
                    log.error("silver.%s failed: %s", name, str(future.exception()).splitlines()[0]
                              if str(future.exception()) else type(future.exception()).__name__)
    if failed:
        raise failed[0]


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
    except (quality.QualityGateFailed, MissingSecret, pseudonymise.KeyMismatch) as exc:
        print(f"silver: {exc}", file=sys.stderr)
        return 1
    print(f"{'table':<22} {'rows':>8} {'accepted':>8} {'quarant.':>8} {'dups':>6} {'held':>6}")
    for c in counts:
        print(f"{c['table']:<22} {c['candidates']:>8} {c['accepted']:>8} {c['quarantined']:>8} "
              f"{c['duplicate']:>6} {c['held']:>6}")
    return 0


__all__ = ["ENTITIES", "run", "main", "held_rows"]
