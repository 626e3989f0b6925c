"""Where every table lives and how it is written: the one place that knows the Delta APIs."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from jobs.settings import Settings, get_settings

log = logging.getLogger(__name__)

LAYERS = ("bronze", "silver", "gold", "ops")


def path(layer: str, name: str, settings: Settings | None = None) -> str:
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; one of {LAYERS}")
    return (settings or get_settings()).table_path(layer, name)


def exists(spark, layer: str, name: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path(layer, name))


def read(spark, layer: str, name: str, *, version: int | None = None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path(layer, name))


def read_or_empty(spark, layer: str, name: str, ddl: str):
    if exists(spark, layer, name):
        return read(spark, layer, name)
    return spark.createDataFrame([], ddl)


def create_if_missing(spark, layer: str, name: str, ddl: str, *, partition_by: Iterable[str] = (),
                      comments: dict[str, str] | None = None, constraints: dict[str, str] | None = None) -> None:
    """Create an empty Delta table with the given schema, column comments and CHECK constraints."""
    from delta.tables import DeltaTable

    if exists(spark, layer, name):
        return
    schema = spark.createDataFrame([], ddl).schema
    builder = DeltaTable.createIfNotExists(spark).location(path(layer, name))
    for f in schema.fields:
        builder = builder.addColumn(f.name, f.dataType, nullable=True, comment=(comments or {}).get(f.name))
    if partition_by:
        builder = builder.partitionedBy(*partition_by)
    builder.execute()
    for cname, expr in (constraints or {}).items():
        spark.sql(f"ALTER TABLE delta.`{path(layer, name)}` ADD CONSTRAINT {cname} CHECK ({expr})")


def append(df, layer: str, name: str, *, txn_app_id: str | None = None, txn_version: int | None = None) -> None:
    """Append; with txnAppId/txnVersion Delta skips a write it has already committed (exactly-once)."""
    writer = df.write.format("delta").mode("append")
    if txn_app_id is not None:
        writer = writer.option("txnAppId", txn_app_id).option("txnVersion", txn_version)
    writer.save(path(layer, name))


def replace_partition(df, layer: str, name: str, column: str, value: str) -> None:
    """Overwrite exactly one partition (`column = value`) atomically: reruns give the same table."""
    (df.write.format("delta").mode("overwrite")
       .option("replaceWhere", f"{column} = '{value}'")
       .partitionBy(column)
       .save(path(layer, name)))


def overwrite(df, layer: str, name: str) -> None:
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path(layer, name))


def merge(spark, source, layer: str, name: str, on: str, *, update: bool = False) -> None:
    """MERGE source into the table on `on`: insert new rows, and update matched ones when asked."""
    from delta.tables import DeltaTable

    target = DeltaTable.forPath(spark, path(layer, name))
    m = target.alias("t").merge(source.alias("s"), on)
    if update:
        m = m.whenMatchedUpdateAll()
    m.whenNotMatchedInsertAll().execute()


def history(spark, layer: str, name: str, limit: int = 20):
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, path(layer, name)).history(limit)
