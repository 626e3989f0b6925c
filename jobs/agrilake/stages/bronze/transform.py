"""Bronze's pure part: parsed records in, bronze rows, quarantine rows and per-file figures out.

No I/O here: the shell (agrilake.stages.bronze) reads the files, writes the tables and the log.
"""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from agrilake.core import quarantine as q
from agrilake.core.contracts import Feed

# The lineage a bronze row carries from its file (the rest of schemas/bronze/_lineage.yaml is the batch's).
FILE_LINEAGE = ["_extra", "_file_sha256", "_file_name", "_line", "_delivery_date"]
# Columns the bronze suite names as the lineage of a row (expectations/bronze.yaml).
LINEAGE = ["_file_sha256", "_file_name", "_line", "_delivery_date", "_batch_id"]


def parsed_ddl(feed: Feed) -> str:
    """Schema of the parse step's output: a record or a quarantine entry per physical record."""
    cols = ", ".join(f"{c} string" for c in feed.column_names)
    return (f"_reason string, _detail string, _raw string, {cols}, _extra map<string,string>, "
            "_line bigint, _file_sha256 string, _file_name string, _delivery_date date")


def accepted(parsed: DataFrame, feed: Feed, *, batch_id: str, now: datetime,
             late: dict[str, date] | None = None) -> DataFrame:
    """The records that parsed, as bronze rows: contract columns as text, then lineage. `late`: the
    SHA-256 of each late file -> the date its rows count from (the others count from their delivery date)."""
    available = F.col("_delivery_date")
    for sha, day in sorted((late or {}).items()):
        available = F.when(F.col("_file_sha256") == sha, F.lit(day)).otherwise(available)
    return (parsed.where(F.col("_reason").isNull())
            .select(*feed.column_names, *FILE_LINEAGE)
            .withColumn("_ingested_at", F.lit(now).cast("timestamp"))
            .withColumn("_batch_id", F.lit(batch_id))
            .withColumn("_available_date", available.cast("date")))


def shape(text: Column) -> Column:
    """A line reduced to its shape: digits 9, Latin letters x, other characters 某; punctuation, quotes,
    spaces and U+FFFD (undecodable bytes) kept. Why a line failed to parse (a quote, a field count, an
    encoding) stays visible; no identifier, name or phone does."""
    for pattern, mark in (("[0-9]", "9"), ("[A-Za-z]", "x"), ("[^\\x{0}-\\x{7F}\\x{FFFD}]", "某")):
        text = F.regexp_replace(text, F.lit(pattern), F.lit(mark))
    return text


def rejected(parsed: DataFrame, feed: Feed, *, batch_id: str, now: datetime) -> DataFrame:
    """The records that did not parse, as ops.quarantine rows (stage `bronze`, reason, the line's shape)
    plus `_clear_raw`, the line itself, for ops.quarantine_raw (`clear_lines`)."""
    return (parsed.where(F.col("_reason").isNotNull())
            .select(F.lit("bronze").alias("stage"), F.lit(feed.name).alias("feed"),
                    F.col("_reason").alias("reason"), F.col("_detail").alias("detail"),
                    shape(F.col("_raw")).alias("raw"), F.lit(None).cast("map<string,string>").alias("record"),
                    "_file_sha256", "_file_name", "_line", "_delivery_date",
                    F.lit(batch_id).alias("_batch_id"), F.lit(now).cast("timestamp").alias("quarantined_at"),
                    F.col("_raw").alias("_clear_raw")))


def quarantine_rows(rejected_rows: DataFrame) -> DataFrame:
    """`rejected`'s ops.quarantine rows."""
    return rejected_rows.drop("_clear_raw")


def clear_lines(rejected_rows: DataFrame) -> DataFrame:
    """`rejected`'s ops.quarantine_raw rows: the clear line, for the pipeline's operators only."""
    return rejected_rows.select("feed", "reason", F.col("_clear_raw").alias("raw"), "_file_sha256", "_file_name",
                                "_line", "_delivery_date", "_batch_id", "quarantined_at")


def file_figures(parsed: DataFrame) -> DataFrame:
    """One row per file: accepted and quarantined records, drift columns, and the missing-column reason
    (one aggregate for every per-file figure instead of one Spark job per figure)."""
    return parsed.groupBy("_file_sha256").agg(
        F.count(F.when(F.col("_reason").isNull(), 1)).alias("ok"),
        F.count(F.col("_reason")).alias("bad"),
        F.array_distinct(F.flatten(F.collect_list(
            F.coalesce(F.map_keys("_extra"), F.array().cast("array<string>"))))).alias("cols"),
        # a file-level reason (a column missing or repeated in the header) quarantines the whole file
        F.max(F.when(F.col("_reason").isin(*q.FILE_REASONS), F.col("_detail"))).alias("missing"),
    )


def log_rows(feed: Feed, files: list[tuple], figures: dict[str, dict], duplicates: list[tuple],
             rejected: list | None = None, replaces: dict[str, str] | None = None,
             late: dict[str, date] | None = None) -> list[dict]:
    """ops.ingest_log rows: one per file read (read = accepted + quarantined), one per duplicate, one
    per rejected landing entry (never read: landing.Rejected, its reason code first in the message).

    `files`: (LandedFile, sha) read this run; `figures`: file_figures() rows by SHA-256, as dicts;
    `duplicates`: (LandedFile, sha, name of the file first ingested with that SHA-256);
    `replaces`: sha of a new version of a logged name -> the sha it replaces; `late`: sha of a late file
    -> the date its rows count from.
    """
    out = []
    replaces = replaces or {}
    late = late or {}
    for f, sha in files:
        fig = figures.get(sha) or {"ok": 0, "bad": 0, "cols": [], "missing": None}
        ok, bad, drift, missing = fig["ok"], fig["bad"], sorted(fig["cols"] or []), fig["missing"]
        status = "quarantined" if missing is not None else ("empty" if ok + bad == 0 else "ingested")
        notes = [missing or ("schema drift: " + ", ".join(drift) if drift else None),
                 f"new version of this file name (replaces SHA-256 {replaces[sha]})" if sha in replaces else None,
                 f"LATE: first seen after gold of {f.delivery_date} or a later date was published; its rows count "
                 f"from {late[sha]}" if sha in late else None]
        out.append(dict(system=feed.system, feed=feed.feed, delivery_date=f.delivery_date, file_name=f.name,
                        file_sha256=sha, file_bytes=f.size, status=status, read=ok + bad, accepted=ok,
                        quarantined=bad, schema_drift=drift, message="; ".join(n for n in notes if n) or None,
                        available_date=late.get(sha, f.delivery_date)))
    for r in rejected or []:
        out.append(dict(system=feed.system, feed=feed.feed, delivery_date=r.delivery_date, file_name=r.name,
                        file_sha256=None, file_bytes=r.size, status="rejected", read=0, accepted=0,
                        quarantined=0, schema_drift=[], message=r.message))
    for f, sha, first in duplicates:
        out.append(dict(system=feed.system, feed=feed.feed, delivery_date=f.delivery_date, file_name=f.name,
                        file_sha256=sha, file_bytes=f.size, status="duplicate", read=0, accepted=0,
                        quarantined=0, schema_drift=[], message=f"same SHA-256 as {first}; not ingested again"))
    return out


def delivery_dates(files: list[tuple]) -> list[date]:
    return sorted({f.delivery_date for f, _ in files})
