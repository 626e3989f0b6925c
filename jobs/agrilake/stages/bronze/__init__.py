"""Bronze: every landed row into `bronze.<system>_<feed>` (values as text + lineage), exactly once.

A run for date D takes the files in delivery folders dated <= D that the ingest log has not seen,
identifies each by SHA-256 (a file seen before under any name is logged as a duplicate and not
ingested again), reads them into records with Spark SQL by the contracts (`reader`), validates the
batch (GX bronze suite) and appends it to bronze (a file a killed run already committed is skipped);
the run's quarantine rows (MERGE on file SHA-256 and line) and then its ingest-log rows are written
once at the end, the log last. A run killed anywhere and run again leaves each row exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from agrilake.core import audit, dates, deliveries, faults, lineage, locks, ops, tables
from agrilake.core.context import RunContext
from agrilake.core.contracts import Feed
from agrilake.stages.bronze import landing, reader, transform

log = logging.getLogger(__name__)


def logged_files(ctx: RunContext, feeds: list[Feed]) -> dict[str, list]:
    """The ingest log's (file_name, file_sha256, status, file_bytes, ingested_at) rows of `feeds`, by
    feed name: one read per run."""
    from pyspark.sql import functions as F

    out: dict[str, list] = {f.name: [] for f in feeds}
    if not tables.exists(ctx, "ops", "ingest_log"):
        return out
    wanted = F.concat_ws("_", "system", "feed").isin([f.name for f in feeds])
    for r in (tables.read(ctx, "ops", "ingest_log").where(wanted)
              .select("system", "feed", "file_name", "file_sha256", "status", "file_bytes", "ingested_at").collect()):
        out[f"{r.system}_{r.feed}"].append(r)
    return out


@dataclass
class Plan:
    """One feed's landing against its ingest log: what this run reads, and what it only records."""
    to_ingest: list[tuple] = field(default_factory=list)  # (LandedFile, sha)
    duplicates: list[tuple] = field(default_factory=list)  # (LandedFile, sha, name first ingested with sha)
    rejected: list[landing.Rejected] = field(default_factory=list)
    replaces: dict[str, str] = field(default_factory=dict)  # sha of a new version -> sha it replaces
    waiting: list[str] = field(default_factory=list)
    survey: landing.Survey | None = None  # the feed's landing as this run saw it (ops.deliveries)
    late: dict[str, date] = field(default_factory=dict)  # sha of a late file -> the date its rows count from


def _changed(f: landing.LandedFile, rows: list) -> bool:
    """Whether a file under a logged name may hold other content than when it was logged: another size,
    or written after it was logged (then it is hashed again)."""
    last = max(rows, key=lambda r: r.ingested_at)
    logged_at = last.ingested_at.replace(tzinfo=UTC).timestamp()
    return f.size != last.file_bytes or f.mtime > logged_at


def plan(ctx: RunContext, feed: Feed, landing_root: str, as_of: date, logged: list | None = None,
         published: set[date] | None = None) -> Plan:
    """Sort the feed's landing (landing.survey) against the ingest log: new files by SHA-256 into to
    ingest or duplicate; a logged name whose content changed into a new version; rejected entries
    recorded once; `logged`: logged_files()[feed]. A new file whose delivery date gold has already
    published (that date or a later one) is late: its rows count from the day after the newest
    publication (deliveries.availability), so no published date changes on a rerun."""
    rows = logged if logged is not None else logged_files(ctx, [feed])[feed.name]
    by_name: dict[str, list] = {}
    for r in rows:
        by_name.setdefault(r.file_name, []).append(r)
    known = {r.file_sha256: r.file_name for r in rows if r.status in ("ingested", "empty", "quarantined")}
    found = landing.survey(landing_root, feed, as_of, settle_seconds=ctx.settings.landing_settle_seconds)
    out = Plan(rejected=[r for r in found.rejected if r.name not in by_name],
               waiting=found.settling + found.hidden, survey=found)
    seen_now: dict[str, str] = {}
    for f in found.files:
        # what this name held when read before (a rejected entry was never read: it has no content)
        before = [r for r in by_name.get(f.name, []) if r.file_sha256]
        if before and not _changed(f, before):
            continue  # logged already, unchanged: a rerun skips it
        try:
            sha = landing.sha256_file(f.path)
        except OSError as exc:  # vanished or unreadable since it was listed
            out.rejected.append(landing.Rejected(feed.name, f.name, landing.UNREADABLE,
                                                 f"cannot be read: {exc.strerror or exc}", f.delivery_date, f.size))
            continue
        if before:
            if sha in {r.file_sha256 for r in before}:
                continue  # touched, same content
            out.replaces[sha] = max(before, key=lambda r: r.ingested_at).file_sha256
        if sha in known or sha in seen_now:
            out.duplicates.append((f, sha, known.get(sha) or seen_now[sha]))
        else:
            seen_now[sha] = f.name
            out.to_ingest.append((f, sha))
            if (available := deliveries.availability(f.delivery_date, published or set())) != f.delivery_date:
                out.late[sha] = available
    return out


def committed_files(ctx: RunContext, feed: Feed, files: list[tuple]) -> set[str]:
    """The SHA-256s of `files` (LandedFile, sha) that bronze already holds: one pruned scan of the
    SHA column in their delivery partitions, empty but for a rerun after a crash."""
    days = sorted({f.delivery_date for f, _ in files})
    shas = sorted({sha for _, sha in files})
    found = (tables.read(ctx, "bronze", feed.name)
             .where(F.col("_delivery_date").isin(days) & F.col("_file_sha256").isin(shas))
             .select("_file_sha256").distinct().collect())
    return {r[0] for r in found}


def ingest_feed(ctx: RunContext, feed: Feed, landing_root: str, as_of: date, batch_id: str, now: datetime,
                dq: ops.DQBatch | None = None, logged: list | None = None, gx_lock=None,
                published: set[date] | None = None):
    """Read, audit and commit one feed's new files to bronze.

    Returns (ingest-log rows, quarantine rows or None, the plan): the rows still to be recorded
    (`record`), so that a run of many feeds pays one quarantine and one log commit, not one per feed.
    """
    planned = plan(ctx, feed, landing_root, as_of, logged, published)
    to_ingest = planned.to_ingest
    figures: dict[str, dict] = {}
    rejected = None
    if to_ingest:
        if (run := lineage.recorder(ctx)) is not None:
            for landed, sha in to_ingest:
                run.file_read(landed.path, sha, landed.size)
        parsed = reader.read(ctx.spark, to_ingest, feed).persist()
        accepted = transform.accepted(parsed, feed, batch_id=batch_id, now=now, late=planned.late)
        figures = {r["_file_sha256"]: r.asDict() for r in transform.file_figures(parsed).collect()}

        context = {"columns": feed.column_names + [c.name for c in ctx.contracts.bronze_lineage()],
                   "lineage": transform.LINEAGE, "key": list(feed.key)}
        checks = {f"bronze.{feed.name}": audit.Check(accepted, f"bronze.{feed.name}",
                                                      audit.suite(ctx, "bronze", context))}
        with gx_lock or contextlib.nullcontext():
            audit.audit(ctx, checks, as_of=as_of, run_id=batch_id, dq=dq)

        # Statistics only on the lineage the pipeline prunes by, not on every text column of a feed.
        new_table = tables.create_if_missing(ctx, "bronze", feed.name, ctx.contracts.bronze_ddl(feed),
                                             partition_by=["_delivery_date"],
                                             properties={"delta.dataSkippingStatsColumns": "_file_sha256,_line"},
                                             evolve=True)
        # A plain append, once per file: a commit holds every accepted row of its files, so a file
        # already in bronze (committed by a run killed before its log commit) is whole, and skipped.
        done = set() if new_table else committed_files(ctx, feed, to_ingest)
        tables.append(ctx, accepted.where(~F.col("_file_sha256").isin(sorted(done))) if done else accepted,
                      "bronze", feed.name)
        faults.crash_point("after_bronze_merge")
        if any(r["bad"] for r in figures.values()):  # a clean delivery keeps nothing for the quarantine
            # kept (small) past the feed's parsed rows, for the run's one quarantine commit
            rejected = transform.rejected(parsed, feed, batch_id=batch_id, now=now).persist()
            rejected.count()
        parsed.unpersist()
    if planned.waiting:
        log.warning("bronze.%s: %d file(s) wait for a later run, still being written (changed less than %d s ago) "
                    "or hidden (.name, an upload's temporary file): %s", feed.name, len(planned.waiting),
                    ctx.settings.landing_settle_seconds, ", ".join(planned.waiting[:5]))
    for r in planned.rejected:
        log.warning("bronze.%s: %s rejected, not read: %s", feed.name, r.name, r.message)
    for landed, sha in to_ingest:
        if sha in planned.late:
            log.warning("bronze.%s: %s is late: gold of %s (or a later date) was already published, so its rows "
                        "count from %s on; published dates do not change", feed.name, landed.name,
                        landed.delivery_date, planned.late[sha])
    rows = transform.log_rows(feed, to_ingest, figures, planned.duplicates, planned.rejected, planned.replaces,
                              planned.late)
    return rows, rejected, planned


def record(ctx: RunContext, log_rows: list[dict], rejected: list, batch_id: str, now: datetime) -> None:
    """The run's quarantine rows in one commit, then its ingest-log rows in one commit (the log last:
    a file is done once logged, so a run killed before this point ingests its files again: bronze
    skips the files it already holds, and the quarantine MERGE on (file SHA-256, line) keeps every
    row once)."""
    if rejected:
        union = reduce(DataFrame.unionByName, rejected)
        shas = ", ".join(repr(s) for s in sorted({r["file_sha256"] for r in log_rows if r["quarantined"]})) or "NULL"
        # the clear lines first (restricted, operators only), then what everyone reads: both MERGEs are
        # idempotent on (file, line), so a run killed between them completes both when rerun
        tables.merge(ctx, transform.clear_lines(union), "ops", "quarantine_raw",
                     f"t._file_sha256 = s._file_sha256 AND t._line = s._line AND t._file_sha256 IN ({shas})")
        faults.crash_point("after_quarantine_raw_merge")
        tables.merge(ctx, transform.quarantine_rows(union), "ops", "quarantine",
                     "t.stage = 'bronze' AND t._file_sha256 = s._file_sha256 AND t._line = s._line "
                     f"AND t._file_sha256 IN ({shas})")
        for df in rejected:
            df.unpersist()
    faults.crash_point("after_quarantine_merge")
    if log_rows:
        df = ops.rows_df(ctx, ops.ddl(ctx, "ingest_log"),
                         [dict(batch_id=batch_id, ingested_at=now, **r) for r in log_rows])
        tables.merge(ctx, df, "ops", "ingest_log", "t.file_sha256 = s.file_sha256 AND t.file_name = s.file_name")


def ingest(ctx: RunContext, system: str | None, as_of: date, landing_root: str | None = None,
           batch_id: str | None = None) -> Ingested:
    """Ingest every feed of `system` (all systems when None) for date `as_of`; returns the log rows.

    Each feed is committed to bronze on its own; what the feeds committed is recorded (quarantine,
    then ingest log) once at the end, also when a feed stops the run (a failed gate).
    """
    landing_root = landing_root or ctx.settings.landing
    batch_id = batch_id or f"bronze-{as_of.isoformat()}-{ops.new_run_id()}"
    feeds = [f for f in ctx.contracts.feeds().values() if system in (None, f.system)]
    if not feeds:
        raise SystemExit(f"unknown system {system!r}; one of {sorted(ctx.contracts.systems())}")
    ops.ensure(ctx)
    # Two ingests of one system at once would both read the files neither has logged yet (core/locks.py).
    with lineage.stage_run(ctx, f"bronze.ingest.{system or 'all'}", dates=[as_of]), \
            locks.exclusive(ctx.settings, sorted({f"bronze-{f.system}" for f in feeds}), what=f"ingest {as_of}"):
        return _ingest(ctx, feeds, as_of, landing_root, batch_id)


def _ingest(ctx: RunContext, feeds: list[Feed], as_of: date, landing_root: str, batch_id: str) -> list[dict]:
    now = datetime.now(UTC).replace(tzinfo=None)
    done: dict[str, tuple[list[dict], DataFrame | None, Plan]] = {}
    logged = logged_files(ctx, feeds)
    published = deliveries.published_dates(ctx)
    try:
        with ops.DQBatch(ctx, partition=as_of.isoformat(), run_id=batch_id) as dq, \
                reader.one_task_per_file(ctx.spark):
            _each_feed(ctx, feeds, done, landing_root, as_of, batch_id, now, dq, logged, published)
    except Exception:
        # The feeds committed before the one that stopped the run are recorded all the same, so the
        # next run need not read them again; if even that fails, the next run redoes them, once.
        try:
            record(ctx, *_gathered(feeds, done), batch_id, now)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            log.exception("bronze: could not record the feeds committed before the failure")
        raise
    out, rejected = _gathered(feeds, done)
    record(ctx, out, rejected, batch_id, now)
    result = Ingested(out)
    result.days = record_deliveries(ctx, feeds, done, landing_root, as_of, published, now)
    result.waiting = [w for f in feeds if f.name in done for w in done[f.name][2].waiting]
    result.late = [(landed.name, landed.delivery_date, p.late[sha]) for f in feeds if f.name in done
                   for p in [done[f.name][2]] for landed, sha in p.to_ingest if sha in p.late]
    return result


class Ingested(list):
    """The run's ingest-log rows (a list, as before), with what the terminal must also hear: the state of
    each delivery day of the run's systems, and the files that wait for a later run."""
    days: list[deliveries.DayState]
    waiting: list[str]
    late: list[tuple[str, date, date]]  # (file, its folder's date, the date its rows count from)

    def warnings(self, as_of: date) -> list[str]:
        out = []
        if self.waiting:
            out.append(f"{len(self.waiting)} file(s) wait for a later run: still being written (changed less "
                       f"than the settle time ago) or hidden (.name): {', '.join(self.waiting[:3])}"
                       + (" ..." if len(self.waiting) > 3 else ""))
        for name, folder, available in self.late:
            out.append(f"{name} is late: gold of {folder} (or a later date) was already published, so its rows "
                       f"count from {available} on; published dates do not change")
        for s in self.days:
            if s.status in ("waiting", "rejected"):
                out.append(f"delivery {s.system} {s.day} is {s.status}: {s.message}")
        return out


def record_deliveries(ctx: RunContext, feeds: list[Feed], done: dict, landing_root: str, as_of: date,
                      published: set[date], now: datetime) -> list[deliveries.DayState]:
    """The state of each delivery day of the run's systems (core.deliveries) into ops.deliveries, after the
    ingest log holds every settled file; what is not ready is said on the terminal."""
    states = []
    for system in sorted({f.system for f in feeds}):
        surveys = [done[f.name][2].survey for f in feeds if f.system == system and f.name in done]
        found = deliveries.markers(landing_root, system, as_of, settle_seconds=ctx.settings.landing_settle_seconds)
        states += deliveries.day_states(system, [s for s in surveys if s is not None], found)
    changed = deliveries.record(ctx, states, published, now)
    for s in changed:
        if s.status in ("waiting", "rejected"):
            log.warning("delivery %s %s is %s: %s; gold of %s and later waits for it", s.system, s.day, s.status,
                        s.message, s.day)
    return states


def _each_feed(ctx: RunContext, feeds: list[Feed], done: dict, landing_root: str, as_of: date, batch_id: str,
               now: datetime, dq: ops.DQBatch, logged: dict, published: set[date]) -> None:
    """Feeds side by side, `settings.feed_concurrency` at a time: one feed's driver-side work (file
    hashing, GX, commits) overlaps another's Spark jobs, and one big file's single task does not
    leave the other cores idle. GX runs one validation at a time (its context is not thread-safe).
    A feed that fails does not stop the others: every feed runs, each failure is logged with its
    feed, and the first is raised once all have finished (what they committed is recorded)."""
    gx_lock = threading.Lock()

    def one(feed: Feed) -> None:
        rows, bad, planned = ingest_feed(ctx, feed, landing_root, as_of, batch_id, now, dq, logged[feed.name], gx_lock,
                                         published)
        _log_feed(feed, rows)
        done[feed.name] = (rows, bad, planned)

    workers = max(1, min(ctx.settings.feed_concurrency, len(feeds)))
    failures: list[tuple[Feed, BaseException]] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bronze") as pool:
        futures = [(f, pool.submit(one, f)) for f in feeds]
        for feed, future in futures:
            try:
                future.result()
            except Exception as exc:  # noqa: BLE001 - reported below, the first one raised
                failures.append((feed, exc))
                log.error("bronze.%s failed, the other feeds go on: %s: %s", feed.name, type(exc).__name__,
                          str(exc).splitlines()[0] if str(exc) else "")
    if failures:
        if len(failures) > 1:
            log.error("bronze: %d feeds failed: %s", len(failures), ", ".join(f.name for f, _ in failures))
        raise failures[0][1]


def _gathered(feeds: list[Feed], done: dict) -> tuple[list[dict], list[DataFrame]]:
    """The log rows and quarantine frames of the feeds that finished, in the contracts' feed order."""
    out = [r for f in feeds if f.name in done for r in done[f.name][0]]
    rejected = [done[f.name][1] for f in feeds if f.name in done and done[f.name][1] is not None]
    return out, rejected


def _log_feed(feed: Feed, rows: list[dict]) -> None:
    new = [r for r in rows if r["status"] != "duplicate"]
    log.info("bronze.%s: %d file(s), read %d = accepted %d + quarantined %d; %d duplicate file(s)",
             feed.name, len(new), sum(r["read"] for r in new), sum(r["accepted"] for r in new),
             sum(r["quarantined"] for r in new), len(rows) - len(new))


def main(argv: list[str] | None = None) -> int:
    from agrilake.core import context, quality

    options = argparse.ArgumentParser(prog="agrilake ingest", description=__doc__)
    dates.add_date_options(options, what="ingest deliveries dated <= this day", latest=False)
    options.add_argument("--system", help="one upstream system (default: all)")
    options.add_argument("--landing", help="landing root (default: AGRILAKE_LANDING)")
    args = options.parse_args(argv)
    ctx = context.from_env(f"agrilake-ingest-{args.system or 'all'}")
    if args.system is not None and args.system not in ctx.contracts.systems():
        options.error(f"unknown --system {args.system!r}; one of {sorted(ctx.contracts.systems())}")
    try:
        rows = ingest(ctx, args.system, args.date, args.landing)
    except quality.QualityGateFailed as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    for line in rows.warnings(args.date):
        print(f"WARNING: ingest: {line}", file=sys.stderr)
    print(f"{'feed':<30} {'files':>5} {'read':>8} {'accepted':>8} {'quarant.':>8} {'dups':>4}")
    by_feed: dict[str, list[dict]] = {}
    for r in rows:
        by_feed.setdefault(f"{r['system']}_{r['feed']}", []).append(r)
    for name, rs in sorted(by_feed.items()):
        new = [r for r in rs if r["status"] != "duplicate"]
        print(f"{name:<30} {len(new):>5} {sum(r['read'] for r in new):>8} {sum(r['accepted'] for r in new):>8} "
              f"{sum(r['quarantined'] for r in new):>8} {len(rs) - len(new):>4}")
    return 0
