"""Point-in-time reads of silver: what was known by the end of an as-of date D (docs/metrics.md).

Silver keeps every validated version of upsert entities and the first delivered copy of events,
each with its lineage (`_delivery_date, _file_sha256, _line`) and `_available_date` (its delivery date,
or later when it waited for a reference). Gold never looks at a row available after D, so re-running
D after later deliveries gives the same answer.
"""

from __future__ import annotations

from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from agrilake.core.contracts import Contracts, packaged

WINDOW_DAYS = 365  # W(D) = [D - 364 days, D]


def window_start(as_of: date) -> date:
    return as_of - timedelta(days=WINDOW_DAYS - 1)


def in_window(day: Column | str, as_of: date) -> Column:
    """`day` (a date) lies in W(D)."""
    day = F.col(day) if isinstance(day, str) else day
    return day.between(F.lit(window_start(as_of)), F.lit(as_of))


def event_date(ts: Column | str) -> Column:
    """The date of an instant in UTC+08:00 (the session time zone is Asia/Shanghai, fixed +08:00)."""
    return F.to_date(F.col(ts) if isinstance(ts, str) else ts)


def whole_years(start: Column | str, end: Column | str) -> Column:
    """Full years elapsed from `start` to `end`, counted like a birthday (a Feb 29 start has its
    anniversary on Mar 1 in common years)."""
    start = F.col(start) if isinstance(start, str) else start
    end = F.col(end) if isinstance(end, str) else end
    before_anniversary = (F.month(end) < F.month(start)) | (
        (F.month(end) == F.month(start)) & (F.dayofmonth(end) < F.dayofmonth(start))
    )
    return (F.year(end) - F.year(start) - F.when(before_anniversary, 1).otherwise(0)).cast("int")


def known_by(df: DataFrame, as_of: date) -> DataFrame:
    """Rows known and valid by the end of D: delivered <= D, and not waiting for a later reference."""
    return df.where(F.col("_available_date") <= F.lit(as_of))


def _first_per_key(df: DataFrame, key: list[str], order: list[Column]) -> DataFrame:
    w = Window.partitionBy(*key).orderBy(*order)
    return df.withColumn("_rn", F.row_number().over(w)).where(F.col("_rn") == 1).drop("_rn")


def _latest_delivery() -> list[Column]:
    return [F.col("_delivery_date").desc(), F.col("_file_sha256").desc(), F.col("_line").desc()]


def _earliest_delivery() -> list[Column]:
    return [F.col("_delivery_date").asc(), F.col("_file_sha256").asc(), F.col("_line").asc()]


def upsert_state(df: DataFrame, entity: str, as_of: date, contracts: Contracts | None = None) -> DataFrame:
    """State of an upsert entity as of D: per key the greatest version (`updated_at`, `recorded_at`
    for installments); ties go to the later delivery, then the greater file SHA-256, then the later line."""
    table = (contracts or packaged()).silver_tables()[entity]
    if table.kind != "upsert" or not table.version_by:
        raise ValueError(f"silver.{entity} is not an upsert entity with a version column")
    order = [F.col(table.version_by).desc(), *_latest_delivery()]
    return _first_per_key(known_by(df, as_of), list(table.key), order)


def divisions_state(df: DataFrame, as_of: date) -> DataFrame:
    """Divisions as of D: the latest delivery of each code wins (no timestamp), then only the
    divisions valid on D (`valid_from <= D < valid_to`, open-ended when valid_to is null)."""
    latest = _first_per_key(known_by(df, as_of), ["division_code"], _latest_delivery())
    d = F.lit(as_of)
    return latest.where((F.col("valid_from") <= d) & (F.col("valid_to").isNull() | (F.col("valid_to") > d)))


def events_known(df: DataFrame, entity: str, as_of: date, contracts: Contracts | None = None) -> DataFrame:
    """Events delivered by D, one per key. Silver already keeps the first delivered copy; the dedup
    is a safety net that keeps the earliest delivery, so a later re-delivery can never change D."""
    table = (contracts or packaged()).silver_tables()[entity]
    if table.kind != "event":
        raise ValueError(f"silver.{entity} is not an event entity")
    return _first_per_key(known_by(df, as_of), list(table.key), _earliest_delivery())
