"""Bronze: every landed row into `bronze.<system>_<feed>` (values as text + lineage), exactly once.

A run for date D takes the files in delivery folders dated <= D that the ingest log has not seen,
identifies each by SHA-256 (a file seen before under any name is logged as a duplicate and not
ingested again), parses them on the executors by the contracts, validates the batch (GX bronze
suite), then MERGEs rows into bronze and quarantine on (file SHA-256, line) and logs the files last.
Each step is idempotent, so a run killed anywhere and run again leaves each row exactly once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from datetime import UTC, date, datetime

from jobs import contracts, landing, ops, quality, tables
from jobs.contracts import Feed
from jobs.settings import get_settings

log = logging.getLogger(__name__)

LINEAGE = ["_file_sha256", "_file_name", "_line", "_delivery_date", "_batch_id"]
META_DDL = ("_extra map<string,string>, _file_sha256 string, _file_name string, _line bigint, "
            "_delivery_date date, _ingested_at timestamp, _batch_id string")


def bronze_ddl(feed: Feed) -> str:
    return ", ".join(f"{c} string" for c in feed.column_names) + ", " + META_DDL


def parsed_ddl(feed: Feed) -> str:
    """Schema of the parse step's output: a record or a quarantine entry per physical record."""
    cols = ", ".join(f"{c} string" for c in feed.column_names)
    return (f"_reason string, _detail string, _raw string, {cols}, _extra map<string,string>, "
            "_line bigint, _file_sha256 string, _file_name string, _delivery_date date")


def _local(path: str) -> str:
    """Spark's binaryFile reports `file:/x`; discovery knows `/x`: one spelling for both."""
    return os.path.abspath(path.removeprefix("file://").removeprefix("file:"))


def _crash_point(name: str) -> None:
    # Fault injection for the exactly-once test: the process is really killed (SIGKILL) here.
    if os.environ.get("AGRILAKE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def parse_partition(rows, feed: Feed):
    """Executor side: (content, sha, name, delivery) rows -> parsed tuples in parsed_ddl order."""
    for content, sha, name, delivered in rows:
        _, _, records = landing.parse(bytes(content), feed)
        for r in records:
            values = r.values or {}
            yield (r.reason, r.detail, None if r.values is not None else r.raw,
                   *(values.get(c) for c in feed.column_names), r.extra, r.line, sha, name, delivered)


def logged_files(spark, feeds: list[Feed]) -> dict[str, list]:
    """The ingest log's (file_name, file_sha256, status) rows of `feeds`, by feed name: one read per run."""
    from pyspark.sql import functions as F

    out: dict[str, list] = {f.name: [] for f in feeds}
    if not tables.exists(spark, "ops", "ingest_log"):
        return out
    wanted = F.concat_ws("_", "system", "feed").isin([f.name for f in feeds])
    for r in (tables.read(spark, "ops", "ingest_log").where(wanted)
              .select("system", "feed", "file_name", "file_sha256", "status").collect()):
        out[f"{r.system}_{r.feed}"].append(r)
    return out


def _known_files(rows: list) -> tuple[set[str], dict[str, str]]:
    """(file names already logged, sha -> name of the file first ingested with it) for one feed."""
    names = {r.file_name for r in rows}
    shas = {r.file_sha256: r.file_name for r in rows if r.status != "duplicate"}
    return names, shas


def plan(spark, feed: Feed, landing_root: str, as_of: date, logged: list | None = None):
    """Split the feed's unseen files into (to ingest, duplicates) by SHA-256; `logged`: logged_files()[feed]."""
    names, known = _known_files(logged if logged is not None else logged_files(spark, [feed])[feed.name])
    to_ingest, duplicates, seen_now = [], [], {}
    for f in landing.discover(landing_root, feed, as_of):
        if f.name in names:
            continue  # already logged (ingested, quarantined or duplicate): a rerun skips it silently
        sha = landing.sha256_file(f.path)
        if sha in known or sha in seen_now:
            duplicates.append((f, sha, known.get(sha) or seen_now[sha]))
        else:
            seen_now[sha] = f.name
            to_ingest.append((f, sha))
    return to_ingest, duplicates


def ingest_feed(spark, feed: Feed, landing_root: str, as_of: date, batch_id: str,
                dq: ops.DQBatch | None = None, logged: list | None = None) -> list[dict]:
    """Ingest one feed's new files; returns the ingest-log rows written."""
    from pyspark.sql import functions as F

    to_ingest, duplicates = plan(spark, feed, landing_root, as_of, logged)
    now = datetime.now(UTC).replace(tzinfo=None)
    log_rows: list[dict] = []

    if to_ingest:
        meta = {_local(f.path): (sha, f.name, f.delivery_date) for f, sha in to_ingest}
        contents = (spark.read.format("binaryFile").load([f.path for f, _ in to_ingest])
                    .select("path", "content").rdd
                    .map(lambda r: (r.content, *meta[_local(r.path)])))
        parsed = spark.createDataFrame(contents.mapPartitions(lambda rows: parse_partition(rows, feed)),
                                       parsed_ddl(feed)).persist()
        accepted = (parsed.where(F.col("_reason").isNull())
                    .select(*feed.column_names, "_extra", "_file_sha256", "_file_name", "_line", "_delivery_date")
                    .withColumn("_ingested_at", F.lit(now).cast("timestamp"))
                    .withColumn("_batch_id", F.lit(batch_id)))
        rejected = (parsed.where(F.col("_reason").isNotNull())
                    .select(F.lit("bronze").alias("stage"), F.lit(feed.name).alias("feed"),
                            F.col("_reason").alias("reason"), F.col("_detail").alias("detail"),
                            F.col("_raw").alias("raw"), F.lit(None).cast("map<string,string>").alias("record"),
                            "_file_sha256", "_file_name", "_line", "_delivery_date",
                            F.lit(batch_id).alias("_batch_id"), F.lit(now).cast("timestamp").alias("quarantined_at")))
        # One pass over the parsed rows for every per-file figure: accepted, quarantined, drift columns
        # and the missing-column reason (one Spark job instead of one per figure).
        per_file = {r._file_sha256: r for r in parsed.groupBy("_file_sha256").agg(
            F.count(F.when(F.col("_reason").isNull(), 1)).alias("ok"),
            F.count(F.col("_reason")).alias("bad"),
            F.array_distinct(F.flatten(F.collect_list(
                F.coalesce(F.map_keys("_extra"), F.array().cast("array<string>"))))).alias("cols"),
            F.max(F.when(F.col("_reason") == "MISSING_COLUMN", F.col("_detail"))).alias("missing"),
        ).collect()}
        counts = {(sha, ok): (r.ok if ok else r.bad) for sha, r in per_file.items() for ok in (True, False)}
        drift = {sha: sorted(r.cols or []) for sha, r in per_file.items()}
        missing = {sha: r.missing for sha, r in per_file.items() if r.missing is not None}

        context = {"columns": feed.column_names + ["_extra", "_file_sha256", "_file_name", "_line", "_delivery_date",
                                                   "_ingested_at", "_batch_id"],
                   "lineage": LINEAGE, "key": list(feed.key)}
        result = quality.validate(accepted, f"bronze.{feed.name}", quality.load_suite("bronze", context=context))
        ops.record(spark, dq, f"bronze.{feed.name}", result, partition=as_of.isoformat(), run_id=batch_id)
        quality.gate(result)

        dates = sorted({f.delivery_date.isoformat() for f, _ in to_ingest})
        shas = sorted({sha for _, sha in to_ingest})
        prune = (f"t._delivery_date IN ({', '.join(repr(d) for d in dates)}) AND "
                 f"t._file_sha256 IN ({', '.join(repr(s) for s in shas)})")
        tables.create_if_missing(spark, "bronze", feed.name, bronze_ddl(feed), partition_by=["_delivery_date"])
        tables.merge(spark, accepted, "bronze", feed.name,
                     f"{prune} AND t._file_sha256 = s._file_sha256 AND t._line = s._line")
        _crash_point("after_bronze_merge")
        if any(r.bad for r in per_file.values()):  # a clean delivery costs no quarantine commit
            tables.merge(spark, rejected, "ops", "quarantine",
                         "t.stage = 'bronze' AND t._file_sha256 = s._file_sha256 AND t._line = s._line "
                         f"AND t._file_sha256 IN ({', '.join(repr(s) for s in shas)})")
        _crash_point("after_quarantine_merge")
        parsed.unpersist()

        for f, sha in to_ingest:
            ok, bad = counts.get((sha, True), 0), counts.get((sha, False), 0)
            status = "quarantined" if sha in missing else ("empty" if ok + bad == 0 else "ingested")
            log_rows.append(dict(system=feed.system, feed=feed.feed, delivery_date=f.delivery_date, file_name=f.name,
                                 file_sha256=sha, file_bytes=f.size, status=status, read=ok + bad, accepted=ok,
                                 quarantined=bad, schema_drift=drift.get(sha, []),
                                 message=missing.get(sha) or ("schema drift: " + ", ".join(drift[sha])
                                                              if drift.get(sha) else None)))
    for f, sha, first in duplicates:
        log_rows.append(dict(system=feed.system, feed=feed.feed, delivery_date=f.delivery_date, file_name=f.name,
                             file_sha256=sha, file_bytes=f.size, status="duplicate", read=0, accepted=0,
                             quarantined=0, schema_drift=[], message=f"same SHA-256 as {first}; not ingested again"))
    if log_rows:
        df = ops.rows_df(spark, ops.INGEST_LOG_DDL, [dict(batch_id=batch_id, ingested_at=now, **r) for r in log_rows])
        tables.merge(spark, df, "ops", "ingest_log", "t.file_sha256 = s.file_sha256 AND t.file_name = s.file_name")
    return log_rows


def ingest(spark, system: str | None, as_of: date, landing_root: str | None = None, batch_id: str | None = None):
    """Ingest every feed of `system` (all systems when None) for date `as_of`; returns the log rows."""
    settings = get_settings()
    landing_root = landing_root or settings.landing
    batch_id = batch_id or f"bronze-{as_of.isoformat()}-{ops.new_run_id()}"
    ops.ensure(spark)
    feeds = [f for f in contracts.feeds().values() if system in (None, f.system)]
    if not feeds:
        raise SystemExit(f"unknown system {system!r}; one of {sorted(contracts.systems())}")
    out = []
    logged = logged_files(spark, feeds)
    with ops.DQBatch(spark, partition=as_of.isoformat(), run_id=batch_id) as dq:
        for feed in feeds:
            out.extend(_ingest_and_log(spark, feed, landing_root, as_of, batch_id, dq, logged[feed.name]))
    return out


def _ingest_and_log(spark, feed: Feed, landing_root: str, as_of: date, batch_id: str, dq, logged) -> list[dict]:
    rows = ingest_feed(spark, feed, landing_root, as_of, batch_id, dq, logged)
    new = [r for r in rows if r["status"] != "duplicate"]
    log.info("bronze.%s: %d file(s), read %d = accepted %d + quarantined %d; %d duplicate file(s)",
             feed.name, len(new), sum(r["read"] for r in new), sum(r["accepted"] for r in new),
             sum(r["quarantined"] for r in new), len(rows) - len(new))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agrilake ingest", description=__doc__)
    parser.add_argument("--date", required=True, type=date.fromisoformat, help="ingest deliveries dated <= this day")
    parser.add_argument("--system", choices=sorted(contracts.systems()), help="one upstream system (default: all)")
    parser.add_argument("--landing", help="landing root (default: AGRILAKE_LANDING)")
    args = parser.parse_args(argv)
    from jobs.spark import get_spark

    spark = get_spark(f"agrilake-ingest-{args.system or 'all'}")
    try:
        rows = ingest(spark, args.system, args.date, args.landing)
    except quality.QualityGateFailed as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 1
    print(f"{'feed':<30} {'files':>5} {'read':>8} {'accepted':>8} {'quarant.':>8} {'dups':>4}")
    by_feed: dict[str, list[dict]] = {}
    for r in rows:
        by_feed.setdefault(f"{r['system']}_{r['feed']}", []).append(r)
    for name, rs in sorted(by_feed.items()):
        new = [r for r in rs if r["status"] != "duplicate"]
        print(f"{name:<30} {len(new):>5} {sum(r['read'] for r in new):>8} {sum(r['accepted'] for r in new):>8} "
              f"{sum(r['quarantined'] for r in new):>8} {len(rs) - len(new):>4}")
    return 0
