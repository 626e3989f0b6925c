"""Silver's pure outcome logic: reference checks, hold and release, dedup ranking, ledger rows.

Every candidate bronze row gets exactly one outcome: `quarantined` (a rule failed in conform),
`held` (a reference is not known yet: re-checked on every later run, released when it arrives),
`duplicate` (its key, or for upsert feeds its whole content, is already in silver or earlier in
this batch; for reference feeds, the same content just before it in its file) or `accepted`. DataFrames in, DataFrames out; the shell (agrilake.stages.silver) reads
and writes the tables.

Silver is appended to, not MERGEd: a row is accepted at most once because its key (events) or its
content (versions) is then in silver and every later copy is a duplicate. The one row that finds
itself in silver is the same bronze row (same file and line) after a run that published silver but
was stopped before its ledger commit: it stays `accepted`, flagged `_in_silver`, and is not
appended again.
"""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from agrilake.core.contracts import Feed, Table
from agrilake.core.pseudonymise import with_key_pads
from agrilake.stages.silver.entities import Entity, silver_columns

OUTCOMES = ("accepted", "quarantined", "duplicate", "held")


def business_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if not c.name.startswith("_")]


def mask_pii(feed: Feed) -> list:
    """map(name, value, ...) of a record for triage, PII reduced to a non-identifying stub: its first
    quarter, rounded down, then `***` (a RIC keeps its 4-digit province and city, a phone its first
    2 digits, a Chinese name of 2 or 3 characters nothing: a fixed count would show a whole short name)."""
    out = []
    for c in feed.columns:
        col = F.col(c.name)
        if c.pii:
            kept = col.substr(F.lit(1), F.floor(F.length(col) / 4).cast("int"))
            col = F.when(col.isNotNull(), F.concat(kept, F.lit("***")))
        out.extend([F.lit(c.name), col])
    return out


def content_hash(names: list[str]):
    return F.sha2(F.to_json(F.struct(*[F.col(n) for n in names])), 256)


def check_references(conformed: DataFrame, e: Entity, known: list[DataFrame]) -> DataFrame:
    """Adds `_held` (the reason a row waits for a reference, else null) and `_available_date`.

    `conformed` carries bronze's `_available_date` (null in rows ingested before bronze had it: their
    delivery date).

    `known[i]`: the values of `e.refs[i]`'s reference column known in silver (any version, any
    delivery), as (`__ref<i>`, `__avail<i>` = first availability). A row held for a reference becomes
    available only when that reference is: its `_available_date` is the latest of its own delivery
    and the first availability of each reference, so gold for an earlier date never sees it,
    however late the backfill runs (point-in-time rule).
    """
    held = F.lit(None).cast("string")
    # a bronze row counts from its file's availability: its delivery date, or later for a late file
    available = [F.coalesce(F.col("_available_date"), F.col("_delivery_date"))]
    for i, (ref, refs) in enumerate(zip(e.refs, known, strict=True)):
        conformed = conformed.join(refs, F.col(f"__typed_{ref.column}") == F.col(f"__ref{i}"), "left")
        held = F.coalesce(held, F.when(F.col("_reason").isNull() & F.col(f"__ref{i}").isNull(),
                                       F.lit(f"{ref.reason}({ref.column})")))
        available.append(F.col(f"__avail{i}"))
    return (conformed.withColumn("_held", held)
            .withColumn("_available_date", F.greatest(*available) if len(available) > 1 else available[0]))


def known_values(silver_ref: DataFrame, column: str, i: int) -> DataFrame:
    """The reference values of one silver table with their first availability, named for check_references."""
    return silver_ref.groupBy(F.col(column).alias(f"__ref{i}")).agg(F.min("_available_date").alias(f"__avail{i}"))


def shape(checked: DataFrame, e: Entity, table: Table, feed: Feed, key: str, run_id: str) -> DataFrame:
    """Silver's columns (person keys, birth dates, renames) plus what the outcome needs."""
    business = business_columns(table)
    if e.pseudonymised:
        checked = with_key_pads(checked, key)
    # `_was_held`: the ledger held this row before this run (its ledger row is updated, not appended).
    was_held = F.col("_was_held") if "_was_held" in checked.columns else F.lit(False)
    return (checked.select(*silver_columns(e, business), "_delivery_date", "_available_date", "_file_sha256",
                           "_line", F.lit(run_id).alias("_batch_id"), "_reason", "_detail", "_held",
                           was_held.alias("_was_held"),
                           F.create_map(*mask_pii(feed)).alias("_record"))
            .withColumn("_hash", content_hash(business)))


def rank(shaped: DataFrame, table: Table, existing: DataFrame) -> DataFrame:
    """Adds `_outcome` and `_in_silver`. Events: one row per key, the first delivered (then file, then
    line) wins. Upsert feeds (versioned by a timestamp): identical versions are one. Reference feeds
    (no timestamp, the latest delivery wins): a row is a duplicate only of the row just before it for
    its key in the same file; a value that comes back in a later delivery (A -> B -> A) is a new
    version, or B would win for ever. Anything already in `existing` (silver) is a duplicate, but for
    the very row silver holds (same file and line): accepted, `_in_silver`."""
    if table.kind == "reference":
        return _rank_reference(shaped, table, existing)
    business = business_columns(table)
    dedup_cols = list(table.key) if table.kind == "event" else ["_hash"]
    order = [F.col("_delivery_date"), F.col("_file_sha256"), F.col("_line")]
    if table.kind != "event":
        existing = existing.withColumn("_hash", content_hash(business))
    # One row per key or content in silver (silver holds each once); `_at` is the bronze row it came from.
    existing = (existing.groupBy(*dedup_cols)
                .agg(F.min(F.struct("_file_sha256", "_line")).alias("_at"))
                .withColumn("_exists", F.lit(True)))
    ok = F.col("_reason").isNull() & F.col("_held").isNull()
    same_row = ok & (F.col("_at._file_sha256") == F.col("_file_sha256")) & (F.col("_at._line") == F.col("_line"))
    return (shaped.withColumn("_rank", F.when(ok, F.row_number().over(Window.partitionBy(ok, *dedup_cols)
                                                                       .orderBy(*order))))
            .join(existing, dedup_cols, "left")
            .withColumn("_in_silver", F.coalesce(same_row, F.lit(False)))
            .withColumn("_outcome", F.when(F.col("_reason").isNotNull(), "quarantined")
                        .when(F.col("_held").isNotNull(), "held")
                        .when(F.col("_in_silver"), "accepted")
                        .when(F.col("_exists") | (F.col("_rank") > 1), "duplicate")
                        .otherwise("accepted"))
            .drop("_at"))


def _rank_reference(shaped: DataFrame, table: Table, existing: DataFrame) -> DataFrame:
    """rank() for reference feeds. A file is read whole in one batch, so a copy within it is always
    ranked beside its original; across files every version is kept, which keeps "the latest delivery
    wins" exact even when an older delivery arrives late."""
    ok = F.col("_reason").isNull() & F.col("_held").isNull()
    before = F.lag("_hash").over(Window.partitionBy(ok, *table.key, "_file_sha256").orderBy("_line"))
    held_here = existing.select("_file_sha256", "_line").distinct().withColumn("_exists", F.lit(True))
    return (shaped.withColumn("_copy", ok & F.coalesce(before == F.col("_hash"), F.lit(False)))
            .join(held_here, ["_file_sha256", "_line"], "left")
            .withColumn("_in_silver", ok & F.coalesce(F.col("_exists"), F.lit(False)))
            .withColumn("_outcome", F.when(F.col("_reason").isNotNull(), "quarantined")
                        .when(F.col("_held").isNotNull(), "held")
                        .when(F.col("_in_silver"), "accepted")
                        .when(F.col("_copy"), "duplicate")
                        .otherwise("accepted"))
            .drop("_copy"))


def accepted_rows(ranked: DataFrame, table: Table) -> DataFrame:
    """The rows to append to silver: accepted now, not already there."""
    return (ranked.where((F.col("_outcome") == "accepted") & ~F.col("_in_silver"))
            .select(*[c.name for c in table.columns]))


def quarantine_rows(ranked: DataFrame, feed: Feed, run_id: str, now: datetime) -> DataFrame:
    """ops.quarantine rows (stage `silver`): the reason, the failing value, the masked record."""
    return ranked.where(F.col("_outcome") == "quarantined").select(
        F.lit("silver").alias("stage"), F.lit(feed.name).alias("feed"), F.col("_reason").alias("reason"),
        F.col("_detail").alias("detail"), F.lit(None).cast("string").alias("raw"),
        F.col("_record").alias("record"), "_file_sha256", F.lit(None).cast("string").alias("_file_name"),
        "_line", "_delivery_date", F.lit(run_id).alias("_batch_id"),
        F.lit(now).cast("timestamp").alias("quarantined_at"))


def ledger_rows(ranked: DataFrame, feed: Feed, as_of: date, run_id: str, now: datetime) -> DataFrame:
    """ops.silver_ledger rows: one outcome per bronze row; a held row names the reference it waits for."""
    return ranked.select(
        F.lit(feed.name).alias("feed"), "_file_sha256", "_line", "_delivery_date", F.col("_outcome").alias("outcome"),
        F.coalesce(F.col("_reason"), F.regexp_extract("_held", r"^(\w+)", 1)).alias("reason"),
        F.coalesce(F.col("_detail"), F.col("_held")).alias("detail"),
        F.when(F.col("_outcome") == "held", F.lit(as_of)).alias("held_since"),
        F.lit(now).cast("timestamp").alias("updated_at"), F.lit(run_id).alias("run_id"))
