"""agrilake.core.tables: the one place that creates and writes Delta tables."""

import pytest

from agrilake.core import tables


def test_created_table_carries_schema_partitions_comments_and_enforced_constraints(ctx):
    spark = ctx.spark
    tables.create_if_missing(ctx, "silver", "t", "k string, amount double, day date, tags map<string,string>",
                             partition_by=["day"], comments={"amount": "CNY, it's >= 0"},
                             constraints={"amount_nonneg": "amount >= 0"})
    location = tables.path(ctx, "silver", "t")
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{location}`").first()
    assert detail.format == "delta" and detail.partitionColumns == ["day"]
    assert detail.properties == {"delta.constraints.amount_nonneg": "amount >= 0"}
    assert detail.minWriterVersion >= 3  # CHECK constraints need writer 3 (or the checkConstraints feature)
    fields = {f.name: f for f in tables.read(ctx, "silver", "t").schema.fields}
    assert list(fields) == ["k", "amount", "day", "tags"]
    assert fields["amount"].metadata.get("comment") == "CNY, it's >= 0"
    assert fields["tags"].dataType.simpleString() == "map<string,string>"

    spark.sql(f"INSERT INTO delta.`{location}` VALUES ('a', 1.5, date'2026-11-01', map('x', 'y'))")
    with pytest.raises(Exception, match="DELTA_VIOLATE_CONSTRAINT|CHECK constraint amount_nonneg"):
        spark.sql(f"INSERT INTO delta.`{location}` VALUES ('b', -1.0, date'2026-11-01', NULL)")
    assert tables.read(ctx, "silver", "t").count() == 1

    tables.create_if_missing(ctx, "silver", "t", "other int")  # exists: left as it is
    assert tables.history(ctx, "silver", "t").count() == 2
