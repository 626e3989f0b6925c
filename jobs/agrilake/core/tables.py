"""Where every table lives and how it is written: the one place that knows the Delta APIs.

Every function takes the run context (agrilake.core.context.RunContext) first: its settings say
where the lakehouse is, its session does the work.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

log = logging.getLogger(__name__)

LAYERS = ("bronze", "silver", "gold", "ops")


def path(ctx, layer: str, name: str) -> str:
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; one of {LAYERS}")
    return ctx.settings.table_path(layer, name)


def exists(ctx, layer: str, name: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(ctx.spark, path(ctx, layer, name))


def read(ctx, layer: str, name: str, *, version: int | None = None):
    reader = ctx.spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    df = reader.load(path(ctx, layer, name))
    _noted(ctx, "read", layer, name, version)
    return df


def note_read(ctx, layer: str, name: str) -> None:
    """Note a read of the table's current version in the stage's OpenLineage run (a read made before
    the run began)."""
    _noted(ctx, "read", layer, name)


def _noted(ctx, what: str, layer: str, name: str, version: int | None = None) -> None:
    """Tell the stage's OpenLineage run (agrilake.core.lineage) a table was read or written."""
    recorder = getattr(ctx, "lineage", None)
    if recorder is None:
        return
    location = path(ctx, layer, name)
    if what == "read":
        # the snapshot the load above has just taken (no second listing of the log)
        recorder.table_read(f"{layer}.{name}", location,
                            snapshot_version(ctx, location, refresh=False) if version is None else version)
    else:
        recorder.table_written(f"{layer}.{name}", location)


def snapshot_version(ctx, location: str, *, refresh: bool = True) -> int:
    """The table's current version from its Delta log (no Spark job: ~10 ms once the log is cached).
    `refresh=False`: the snapshot this process last loaded, without listing the log again."""
    jvm = ctx.spark._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(ctx.spark._jsparkSession, location)
    if not refresh:
        return int(delta_log.unsafeVolatileSnapshot().version())
    defaults = [getattr(delta_log, f"update$default${i}")() for i in (1, 2, 3)]
    return int(delta_log.update(*defaults).version())


def read_or_empty(ctx, layer: str, name: str, ddl: str):
    if exists(ctx, layer, name):
        return read(ctx, layer, name)
    return ctx.spark.createDataFrame([], ddl)


def _sql_text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def create_if_missing(ctx, layer: str, name: str, ddl: str, *, partition_by: Iterable[str] = (),
                      comments: dict[str, str] | None = None, constraints: dict[str, str] | None = None,
                      properties: dict[str, str] | None = None, evolve: bool = False) -> bool:
    """Create an empty Delta table with the given schema (NOT NULL kept), column comments and CHECK
    constraints.

    One CREATE TABLE commit: Delta keeps a CHECK constraint as the table property
    `delta.constraints.<name>` and derives the writer protocol from it, so declaring the constraints at
    creation gives the table ALTER TABLE ADD CONSTRAINT would (enforced on every write), without one
    more commit and table scan per constraint (3.5 s -> 0.35 s a table on a warm local session).
    Returns whether the table was created now.

    `evolve`: a table that exists but lacks columns its contract gained since it was created gets
    them (ALTER TABLE ADD COLUMNS, nullable, at the end): a lakehouse made by an earlier release keeps
    working, its old rows read the new columns as null.
    """
    if exists(ctx, layer, name):
        if evolve:
            add_missing_columns(ctx, layer, name, ddl, comments)
        return False
    schema = ctx.spark.createDataFrame([], ddl).schema
    columns = ", ".join(
        f"`{f.name}` {f.dataType.simpleString()}" + ("" if f.nullable else " NOT NULL")
        + (f" COMMENT {_sql_text(comments[f.name])}" if (comments or {}).get(f.name) else "")
        for f in schema.fields)
    statement = f"CREATE TABLE IF NOT EXISTS delta.`{path(ctx, layer, name)}` ({columns}) USING DELTA"
    if partition_by:
        statement += f" PARTITIONED BY ({', '.join(f'`{c}`' for c in partition_by)})"
    props = {**(properties or {}), **{f"delta.constraints.{c.lower()}": e for c, e in (constraints or {}).items()}}
    if props:
        statement += f" TBLPROPERTIES ({', '.join(f'{_sql_text(k)} = {_sql_text(v)}' for k, v in props.items())})"
    # Two first runs may create the table at once: the loser's CREATE conflicts, or finds the folder
    # half-made by the winner; once the winner's first commit is there, the loser finds the table.
    def create() -> bool:
        if exists(ctx, layer, name):
            return False
        ctx.spark.sql(statement)
        return True

    return retrying(f"creating {layer}.{name}", create, also=("DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION",))


def add_missing_columns(ctx, layer: str, name: str, ddl: str, comments: dict[str, str] | None = None) -> list[str]:
    """Add the columns of `ddl` the table does not have (one metadata commit; none when it has them all)."""
    have = {f.name for f in read(ctx, layer, name).schema.fields}
    wanted = ctx.spark.createDataFrame([], ddl).schema.fields
    new = [f for f in wanted if f.name not in have]
    if new:
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}"
                            + (f" COMMENT {_sql_text(comments[f.name])}" if (comments or {}).get(f.name) else "")
                            for f in new)
        retrying(f"adding columns to {layer}.{name}",
                 lambda: ctx.spark.sql(f"ALTER TABLE delta.`{path(ctx, layer, name)}` ADD COLUMNS ({columns})"))
        log.warning("%s.%s: added the column(s) %s its contract gained (older rows read them as null)",
                    layer, name, ", ".join(f.name for f in new))
    return [f.name for f in new]


def properties(ctx, layer: str, name: str) -> dict[str, str]:
    """The table's properties (TBLPROPERTIES), from its latest snapshot."""
    return {r["key"]: r["value"] for r in ctx.spark.sql(f"SHOW TBLPROPERTIES delta.`{path(ctx, layer, name)}`").collect()}


def set_properties(ctx, layer: str, name: str, props: dict[str, str]) -> None:
    """One metadata commit setting `props`."""
    pairs = ", ".join(f"{_sql_text(k)} = {_sql_text(v)}" for k, v in props.items())
    retrying(f"setting properties of {layer}.{name}",
             lambda: ctx.spark.sql(f"ALTER TABLE delta.`{path(ctx, layer, name)}` SET TBLPROPERTIES ({pairs})"))


# Optimistic concurrency: a commit that conflicts with another writer's (two ingests MERGEing into
# ops.ingest_log, two first runs creating a table) fails in Delta and is simply tried again on the new
# snapshot. Every write here is idempotent by design (MERGE on keys, replaceWhere, CREATE IF NOT
# EXISTS, txn-guarded appends), so a retry never doubles a row.
CONFLICT_RETRIES = 6


def retrying(what: str, write, *, retries: int = CONFLICT_RETRIES, also: tuple[str, ...] = ()):
    """Run `write()`; on a Delta concurrent-modification conflict (or an error whose condition is in
    `also`) wait (0.2 s doubling, jittered) and run it again, at most `retries` more times, then raise
    with what to do."""
    import random
    import time

    import delta.exceptions as conflicts

    # each conflict class derives from PySparkException only, not from their common base: all of them
    kinds = tuple(getattr(conflicts, n) for n in conflicts.__all__)
    for attempt in range(retries + 1):
        try:
            return write()
        except Exception as exc:
            if not (isinstance(exc, kinds) or any(c in str(exc) for c in also)):
                raise
            if attempt == retries:
                raise RuntimeError(f"{what}: still conflicting with other writers after {retries} retries "
                                   f"({type(exc).__name__}); rerun it (writes are idempotent)") from exc
            wait = 0.2 * 2 ** attempt * (0.5 + random.random())
            log.info("%s conflicted with another writer (%s); retry %d in %.1f s", what, type(exc).__name__,
                     attempt + 1, wait)
            time.sleep(wait)
    return None


def append(ctx, df, layer: str, name: str, *, txn_app_id: str | None = None, txn_version: int | None = None) -> None:
    """Append; with txnAppId/txnVersion Delta skips a write it has already committed (exactly-once)."""
    writer = df.write.format("delta").mode("append")
    if txn_app_id is not None:
        writer = writer.option("txnAppId", txn_app_id).option("txnVersion", txn_version)
    writer.save(path(ctx, layer, name))
    _noted(ctx, "write", layer, name)


def replace_partition(ctx, df, layer: str, name: str, column: str, value: str) -> None:
    """Overwrite exactly one partition (`column = value`) atomically: reruns give the same table."""
    writer = (df.write.format("delta").mode("overwrite")
              .option("replaceWhere", f"{column} = '{value}'")
              .partitionBy(column))
    retrying(f"replacing {layer}.{name} {column}={value}", lambda: writer.save(path(ctx, layer, name)))
    _noted(ctx, "write", layer, name)


def overwrite(ctx, df, layer: str, name: str) -> None:
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path(ctx, layer, name))
    _noted(ctx, "write", layer, name)


def merge(ctx, source, layer: str, name: str, on: str, *, update: bool = False) -> None:
    """MERGE source into the table on `on`: insert new rows, and update matched ones when asked."""
    from delta.tables import DeltaTable

    target = DeltaTable.forPath(ctx.spark, path(ctx, layer, name))
    m = target.alias("t").merge(source.alias("s"), on)
    if update:
        m = m.whenMatchedUpdateAll()
    retrying(f"MERGE into {layer}.{name}", m.whenNotMatchedInsertAll().execute)
    _noted(ctx, "write", layer, name)


def latest_version(ctx, layer: str, name: str) -> int:
    return snapshot_version(ctx, path(ctx, layer, name))


def last_version_with_partition_of(ctx, layer: str, name: str, version: int, column: str, value: str) -> int | None:
    """The newest version whose `column = value` partition holds exactly what it held at `version`.

    That is the version before the first later commit that added or removed a data file of the
    partition with dataChange (OPTIMIZE rewrites files without changing data, so it does not count),
    or the latest version when none did. Reading it instead of `version` itself keeps a time-travelled
    read working after OPTIMIZE and VACUUM have removed `version`'s own files. None when a commit
    after `version` is no longer in the log (log retention), so the answer cannot be known.
    """
    latest = latest_version(ctx, layer, name)
    if latest <= version:
        return latest
    fs, hroot = _hadoop_fs(ctx.spark, path(ctx, layer, name) + "/_delta_log")
    present = {int(st.getPath().getName()[:20]) for st in fs.listStatus(hroot)
               if re.fullmatch(r"\d{20}\.json", st.getPath().getName())}
    wanted = range(version + 1, latest + 1)
    if any(v not in present for v in wanted):
        return None
    from pyspark.sql import functions as F

    action = "struct<path string, partitionValues map<string,string>, dataChange boolean>"
    commits = ctx.spark.read.schema(f"add {action}, remove {action}").json(
        [f"{hroot.toString()}/{v:020d}.json" for v in wanted])
    touched = (commits.select(F.input_file_name().alias("file"), F.col("add"), F.col("remove"))
               .where(((F.col("add.partitionValues")[column] == value) & F.col("add.dataChange"))
                      | ((F.col("remove.partitionValues")[column] == value) & F.col("remove.dataChange")))
               .select("file").distinct().collect())
    if not touched:
        return latest
    first = min(int(re.search(r"(\d{20})\.json$", row.file).group(1)) for row in touched)
    return first - 1


def history(ctx, layer: str, name: str, limit: int = 20):
    from delta.tables import DeltaTable

    return DeltaTable.forPath(ctx.spark, path(ctx, layer, name)).history(limit)


# -- maintenance (OPTIMIZE, VACUUM, sizes): used by jobs/agrilake/stages/maintenance.py -------------------------------------

# Delta refuses a VACUUM retention shorter than the tables' deletedFileRetentionDuration (7 days by
# default) unless this check is off: a shorter one can delete files that a running reader's snapshot,
# an in-flight writer or a time-travel query still needs.
SAFE_RETENTION_HOURS = 168


def _hadoop_fs(spark, location: str):
    """The Hadoop FileSystem and Path of `location`: one listing code for local paths and s3a:// alike."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(location)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


def list_tables(ctx, layers: Iterable[str] = LAYERS) -> list[tuple[str, str]]:
    """Every Delta table under the lakehouse as (layer, name), found by its `_delta_log` folder."""
    found = []
    for layer in layers:
        root = path(ctx, layer, "").rstrip("/")
        fs, hroot = _hadoop_fs(ctx.spark, root)
        if not fs.exists(hroot):
            continue
        for status in fs.listStatus(hroot):
            name = status.getPath().getName()
            if status.isDirectory() and not name.startswith(("_", ".")) and exists(ctx, layer, name):
                found.append((layer, name))
    return sorted(found)


def detail(ctx, layer: str, name: str) -> dict:
    """DESCRIBE DETAIL of one table: numFiles and sizeInBytes count the files of the current version only."""
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(ctx.spark, path(ctx, layer, name)).detail().first()
    return {"num_files": int(row["numFiles"] or 0), "size_bytes": int(row["sizeInBytes"] or 0),
            "partition_columns": list(row["partitionColumns"] or []), "properties": dict(row["properties"] or {})}


def storage_usage(ctx, layer: str, name: str) -> tuple[int, int]:
    """(files, bytes) the table's data occupies on storage, old versions included, `_delta_log` excluded.

    This is what VACUUM shrinks (DESCRIBE DETAIL only sees the current version). A content summary
    is one call per folder instead of listing every file through py4j.
    """
    fs, hroot = _hadoop_fs(ctx.spark, path(ctx, layer, name))
    total = fs.getContentSummary(hroot)
    files, size = total.getFileCount(), total.getLength()
    log_dir = ctx.spark.sparkContext._jvm.org.apache.hadoop.fs.Path(hroot, "_delta_log")
    if fs.exists(log_dir):
        log_summary = fs.getContentSummary(log_dir)
        files, size = files - log_summary.getFileCount(), size - log_summary.getLength()
    return int(files), int(size)


def optimize(ctx, layer: str, name: str) -> dict:
    """OPTIMIZE (bin-packing compaction) of the whole table; the files it removed and added."""
    from delta.tables import DeltaTable

    metrics = DeltaTable.forPath(ctx.spark, path(ctx, layer, name)).optimize().executeCompaction().first()["metrics"]
    _noted(ctx, "write", layer, name)
    return {"files_removed": int(metrics["numFilesRemoved"]), "files_added": int(metrics["numFilesAdded"])}


def vacuum(ctx, layer: str, name: str, retention_hours: float) -> None:
    """VACUUM files no version younger than `retention_hours` needs.

    It runs in a child session (same SparkContext, own SQL settings), so neither setting below leaks
    into the writes of the process's main session.
    """
    from delta.tables import DeltaTable

    if retention_hours < 0:
        raise ValueError(f"VACUUM retention must be >= 0 hours, got {retention_hours}")
    session = ctx.spark.newSession()
    # VACUUM lists the table in as many tasks as this (default 10,000): minutes of empty tasks for a
    # small table on 2 cores. One wave of the cluster's cores lists any table as fast.
    session.conf.set("spark.sql.sources.parallelPartitionDiscovery.parallelism",
                     str(max(1, ctx.spark.sparkContext.defaultParallelism)))
    if retention_hours < SAFE_RETENTION_HOURS:
        log.warning("VACUUM %s.%s with %s h retention (< %s h): readers of older snapshots and time travel "
                    "beyond it will fail", layer, name, retention_hours, SAFE_RETENTION_HOURS)
        session.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    DeltaTable.forPath(session, path(ctx, layer, name)).vacuum(float(retention_hours))
