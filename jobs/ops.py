"""The ops.* tables: ingest log, quarantine, data-quality results, export manifests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from jobs import tables
from jobs.quality import SuiteResult

INGEST_LOG_DDL = (
    "batch_id string, system string, feed string, delivery_date date, file_name string, file_sha256 string, "
    "file_bytes bigint, status string, read bigint, accepted bigint, quarantined bigint, "
    "schema_drift array<string>, message string, ingested_at timestamp"
)
QUARANTINE_DDL = (
    "stage string, feed string, reason string, detail string, raw string, record map<string,string>, "
    "_file_sha256 string, _file_name string, _line bigint, _delivery_date date, _batch_id string, "
    "quarantined_at timestamp"
)
DQ_RESULTS_DDL = (
    "run_id string, suite string, table_name string, partition string, expectation string, column_name string, "
    "kwargs string, severity string, success boolean, observed string, validated_at timestamp"
)

SCHEMAS = {"ingest_log": INGEST_LOG_DDL, "quarantine": QUARANTINE_DDL, "dq_results": DQ_RESULTS_DDL}


def rows_df(spark, ddl: str, rows: list[dict]):
    """A DataFrame of `ddl` from dicts (keys = the DDL's column names)."""
    schema = spark.createDataFrame([], ddl).schema
    names = schema.fieldNames()
    return spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], schema)


def ensure(spark) -> None:
    """Create the ops tables that do not exist yet."""
    for name, ddl in SCHEMAS.items():
        tables.create_if_missing(spark, "ops", name, ddl)


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def record_dq_results(spark, result: SuiteResult, *, table: str, partition: str = "", run_id: str | None = None) -> str:
    """Append one row per expectation of `result` to ops.dq_results; returns the run id."""
    return record_dq_batch(spark, {table: result}, partition=partition, run_id=run_id)


def record_dq_batch(spark, results: dict[str, SuiteResult], *, partition: str = "", run_id: str | None = None) -> str:
    """Append the results of several tables' suites ({table: result}) in one Delta commit."""
    ensure(spark)
    run_id = run_id or new_run_id()
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (run_id, result.suite, table, partition, o.expectation, o.column, json.dumps(o.kwargs, default=str, sort_keys=True),
         o.severity, o.success, o.observed, now)
        for table, result in results.items() for o in result.outcomes
    ]
    df = spark.createDataFrame(rows, DQ_RESULTS_DDL)
    tables.append(df, "ops", "dq_results")
    return run_id


class DQBatch:
    """Validation results of one run, written to ops.dq_results in one commit when the run ends,
    successfully or not (a failed gate is recorded before its exception propagates)."""

    def __init__(self, spark, *, partition: str, run_id: str):
        self.spark, self.partition, self.run_id = spark, partition, run_id
        self.results: dict[str, SuiteResult] = {}

    def add(self, table: str, result: SuiteResult) -> None:
        self.results[table] = result

    def __enter__(self) -> DQBatch:
        return self

    def __exit__(self, *exc) -> None:
        if self.results:
            record_dq_batch(self.spark, self.results, partition=self.partition, run_id=self.run_id)


def record(spark, dq: DQBatch | None, table: str, result: SuiteResult, *, partition: str, run_id: str) -> None:
    """Into the run's batch when there is one, else straight to ops.dq_results."""
    if dq is not None:
        dq.add(table, result)
    else:
        record_dq_results(spark, result, table=table, partition=partition, run_id=run_id)


def latest_dq(spark, table: str, partition: str = "") -> dict | None:
    """The newest validation of `table` (and partition): {run_id, suite, success, failed, validated_at}."""
    from pyspark.sql import functions as F

    if not tables.exists(spark, "ops", "dq_results"):
        return None
    df = tables.read(spark, "ops", "dq_results").where((F.col("table_name") == table) & (F.col("partition") == partition))
    last = df.agg(F.max("validated_at").alias("t")).first()["t"]
    if last is None:
        return None
    rows = df.where(F.col("validated_at") == last).collect()
    failed = [
        {"expectation": r.expectation, "column": r.column_name, "severity": r.severity, "observed": r.observed}
        for r in rows if not r.success
    ]
    return {
        "run_id": rows[0].run_id,
        "suite": rows[0].suite,
        "success": not any(f["severity"] == "critical" for f in failed),
        "expectations": len(rows),
        "failed": failed,
        "validated_at": last.isoformat(),
    }


EXPORT_MANIFESTS_DDL = (
    "export_id string, platform string, dataset string, as_of_date date, bucket string, prefix string, "
    "status string, row_count bigint, files int, bytes bigint, manifest_sha256 string, quality_success boolean, "
    "source_version bigint, pipeline_version string, message string, seconds double, exported_at timestamp"
)


def record_exports(spark, rows: list[dict]) -> None:
    """Append export attempts (complete, failed or refused) to ops.export_manifests, in one commit."""
    if not rows:
        return
    tables.create_if_missing(spark, "ops", "export_manifests", EXPORT_MANIFESTS_DDL)
    names = [part.strip().split(" ", 1)[0] for part in EXPORT_MANIFESTS_DDL.split(",")]
    now = datetime.now(UTC).replace(tzinfo=None)
    df = spark.createDataFrame([tuple({"exported_at": now, **r}.get(n) for n in names) for r in rows],
                               EXPORT_MANIFESTS_DDL)
    tables.append(df, "ops", "export_manifests")


def latest_delivery(spark):
    """The newest delivery date the ingest log has seen (None before the first ingest)."""
    from pyspark.sql import functions as F

    if not tables.exists(spark, "ops", "ingest_log"):
        return None
    return tables.read(spark, "ops", "ingest_log").agg(F.max("delivery_date")).first()[0]


def resolve_date(spark, value: str):
    """`YYYY-MM-DD`, or `latest` (asset-triggered runs): the newest delivery ingested."""
    from datetime import date

    if value != "latest":
        return date.fromisoformat(value)
    newest = latest_delivery(spark)
    if newest is None:
        raise SystemExit("--date latest: nothing has been ingested yet; run the ingest DAGs (or agrilake ingest) first")
    return newest
