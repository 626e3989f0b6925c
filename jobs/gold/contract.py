"""The gold table contracts (schemas/gold/*.yaml): column order, types and descriptions.

The transforms end with `conform`, so the yaml is the one place that fixes what a gold table
looks like; the same yaml feeds the column comments and the GX column-order expectation.
"""

from __future__ import annotations

from functools import cache

import yaml
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.contracts import SCHEMAS_DIR, Column, Table

GOLD_TABLES = ("coop_credit_profile", "household_credit_profile", "logistics_division_daily",
               "credit_county_summary")


@cache
def gold_table(name: str) -> Table:
    raw = yaml.safe_load((SCHEMAS_DIR / "gold" / f"{name}.yaml").read_text(encoding="utf-8"))
    return Table(
        name=raw["table"],
        source="gold",
        kind="snapshot",
        key=tuple(raw["key"]),
        columns=tuple(Column(**c) for c in raw["columns"]),
        description=raw.get("description", ""),
        extra={"partition_by": raw.get("partition_by", "as_of_date")},
    )


def conform(df: DataFrame, name: str) -> DataFrame:
    """Select the contract's columns in its order, with its types; a missing column fails loudly."""
    missing = [c.name for c in gold_table(name).columns if c.name not in df.columns]
    if missing:
        raise ValueError(f"gold.{name} transform lacks column(s) {missing}")
    return df.select(*[F.col(c.name).cast(c.spark_type).alias(c.name) for c in gold_table(name).columns])
