"""The ops.* tables: ingest log, quarantine, data-quality results, export manifests."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from agrilake.core import tables
from agrilake.core.quality import SuiteResult

# Created on first use by every stage; export_manifests and silver_ledger by their own stage.
CORE_TABLES = ("ingest_log", "quarantine", "quarantine_raw", "dq_results")


def ddl(ctx, name: str) -> str:
    """The DDL of ops.<name> from its contract (schemas/ops/<name>.yaml)."""
    return ctx.contracts.ops_table(name).ddl


# Tables whose contract gained columns after a release wrote them: brought up to date when first used by a run.
EVOLVED = ("ingest_log", "gold_publications")


def create(ctx, name: str) -> None:
    """Create ops.<name> from its contract, with its column comments, unless it exists."""
    table = ctx.contracts.ops_table(name)
    tables.create_if_missing(ctx, "ops", name, table.ddl, comments={c.name: c.description for c in table.columns},
                             evolve=name in EVOLVED)


def rows_df(ctx, ddl: str, rows: list[dict]):
    """A DataFrame of `ddl` from dicts (keys = the DDL's column names)."""
    schema = ctx.spark.createDataFrame([], ddl).schema
    names = schema.fieldNames()
    return ctx.spark.createDataFrame([tuple(r.get(n) for n in names) for r in rows], schema)


def ensure(ctx) -> None:
    """Create the ops tables that do not exist yet."""
    for name in CORE_TABLES:
        create(ctx, name)


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def record_dq_results(ctx, result: SuiteResult, *, table: str, partition: str = "", run_id: str | None = None) -> str:
    """Append one row per expectation of `result` to ops.dq_results; returns the run id."""
    return record_dq_batch(ctx, {table: result}, partition=partition, run_id=run_id)


def record_dq_batch(ctx, results: dict[str, SuiteResult], *, partition: str = "", run_id: str | None = None) -> str:
    """Append the results of several tables' suites ({table: result}) in one Delta commit."""
    ensure(ctx)
    run_id = run_id or new_run_id()
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (run_id, result.suite, table, partition, o.expectation, o.column, json.dumps(o.kwargs, default=str, sort_keys=True),
         o.severity, o.success, o.observed, now)
        for table, result in results.items() for o in result.outcomes
    ]
    df = ctx.spark.createDataFrame(rows, ddl(ctx, "dq_results"))
    tables.append(ctx, df, "ops", "dq_results")
    return run_id


class DQBatch:
    """Validation results of one run, written to ops.dq_results in one commit when the run ends,
    successfully or not (a failed gate is recorded before its exception propagates)."""

    def __init__(self, ctx, *, partition: str, run_id: str):
        self.ctx, self.partition, self.run_id = ctx, partition, run_id
        self.results: dict[str, SuiteResult] = {}

    def add(self, table: str, result: SuiteResult) -> None:
        self.results[table] = result

    def __enter__(self) -> DQBatch:
        return self

    def __exit__(self, *exc) -> None:
        if self.results:
            record_dq_batch(self.ctx, self.results, partition=self.partition, run_id=self.run_id)


def latest_dq(ctx, table: str, partition: str = "") -> dict | None:
    """The newest validation of `table` (and partition): {run_id, suite, success, failed, validated_at}."""
    return _validation(ctx, table, [partition])


def dq_of_run(ctx, table: str, partitions: list[str], run_id: str) -> dict | None:
    """The validation of `table` by the run `run_id` under any of `partitions` (its last, should it have
    made two), shaped as latest_dq; None when that run recorded none."""
    return _validation(ctx, table, partitions, run_id)


def _validation(ctx, table: str, partitions: list[str], run_id: str | None = None) -> dict | None:
    from pyspark.sql import functions as F

    if not tables.exists(ctx, "ops", "dq_results"):
        return None
    df = tables.read(ctx, "ops", "dq_results").where((F.col("table_name") == table) & F.col("partition").isin(partitions))
    if run_id is None:  # every validation ever made of it: find the newest first
        last = df.agg(F.max("validated_at").alias("t")).first()["t"]
        rows = [] if last is None else df.where(F.col("validated_at") == last).collect()
    else:  # one run's: a row per expectation, a few dozen
        rows = df.where(F.col("run_id") == run_id).collect()
        last = max((r.validated_at for r in rows), default=None)
        rows = [r for r in rows if r.validated_at == last]
    if not rows:
        return None
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


def gold_publication(ctx, as_of) -> dict | None:
    """The latest complete gold publication of as-of date D (ops.gold_publications): {"run_id",
    "versions", "row_counts", "published_at"}, or None when no publish of D has completed."""
    from pyspark.sql import functions as F

    if not tables.exists(ctx, "ops", "gold_publications"):
        return None
    row = (tables.read(ctx, "ops", "gold_publications").where(F.col("as_of_date") == F.lit(as_of))
           .orderBy(F.col("published_at").desc()).first())
    return None if row is None else {"run_id": row.run_id, "versions": dict(row.versions),
                                     "row_counts": dict(row.row_counts),
                                     "published_at": row.published_at.isoformat(timespec="seconds")}


def record_exports(ctx, rows: list[dict]) -> None:
    """Append export attempts (complete, failed or refused) to ops.export_manifests, in one commit."""
    if not rows:
        return
    create(ctx, "export_manifests")
    now = datetime.now(UTC).replace(tzinfo=None)
    df = rows_df(ctx, ddl(ctx, "export_manifests"), [{"exported_at": now, **r} for r in rows])
    tables.append(ctx, df, "ops", "export_manifests")
