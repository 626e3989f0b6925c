"""The gold table contracts (schemas/gold/*.yaml): column order, types and descriptions.

The transforms end with `conform`, so the yaml is the one place that fixes what a gold table
looks like; the same yaml feeds the column comments and the GX column-order expectation.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from agrilake.core.contracts import GOLD_TABLES, Table  # noqa: F401 - GOLD_TABLES re-exported


def conform(df: DataFrame, table: Table) -> DataFrame:
    """Select the contract's columns in its order, with its types; a missing column fails loudly."""
    missing = [c.name for c in table.columns if c.name not in df.columns]
    if missing:
        raise ValueError(f"{table.name} transform lacks column(s) {missing}")
    return df.select(*[F.col(c.name).cast(c.spark_type).alias(c.name) for c in table.columns])
