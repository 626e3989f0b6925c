"""The independent DuckDB implementation (jobs/agrilake/devdata/bench/gold_duckdb.py) agrees with Spark on the world."""

from __future__ import annotations

import pytest

from agrilake.core.contracts import GOLD_TABLES, packaged
from agrilake.devdata.bench import gold_duckdb
from tests.gold_fixtures import D, world, world_gold


@pytest.fixture(scope="module")
def duck(spark):
    con = gold_duckdb.connect({name: df.toArrow() for name, df in world(spark).items()})
    return gold_duckdb.gold(con, D)


@pytest.mark.parametrize("table", GOLD_TABLES)
def test_duckdb_matches_spark(spark, duck, table):
    spark_rows = world_gold(spark, table)
    assert spark_rows, "the world has rows in every gold table"
    assert gold_duckdb.compare(table, spark_rows, duck[table]) == []


@pytest.mark.parametrize("table", GOLD_TABLES)
def test_duckdb_columns_follow_the_contract(duck, table):
    assert list(duck[table][0]) == [c.name for c in packaged().gold_table(table).columns]


def test_compare_reports_differences():
    a = [{"county_code": "1", "coops": 2, "mean_on_time_rate_12m": 0.5}]
    b = [{"county_code": "1", "coops": 3, "mean_on_time_rate_12m": 0.5 + 1e-15},
         {"county_code": "2", "coops": 1, "mean_on_time_rate_12m": None}]
    assert gold_duckdb.compare("credit_county_summary", a, b) == [
        "credit_county_summary[2]: only in duckdb",
        "credit_county_summary[1].coops: spark=2 duckdb=3",
    ]
