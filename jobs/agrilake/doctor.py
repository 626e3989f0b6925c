"""`agrilake doctor`: print the runtime's versions and paths, then prove each part really works.

Checks, in order: Java, the Delta jars, Spark + Delta (write, MERGE, time travel), Great
Expectations (one expectation on a Spark DataFrame), the Airflow home. Any failure exits 1
with a message saying what to fix.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import subprocess
import sys
import tempfile
from pathlib import Path

from agrilake.core.contracts import load
from agrilake.core.settings import Settings, get_settings
from agrilake.core.spark import RuntimeMissing, check_jars, check_java

DOCTOR_TABLE = "doctor_check"


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def java_version(java: str) -> str:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    return (out.stderr or out.stdout).splitlines()[0].strip()


def delta_check(spark, table_path: str) -> dict:
    """Write a Delta table, MERGE into it, read version 0 back by time travel; return what was seen."""
    from delta.tables import DeltaTable

    first = spark.createDataFrame([(1, "grain"), (2, "tea")], "id int, product string")
    first.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(table_path)
    v0 = DeltaTable.forPath(spark, table_path).history(1).first()["version"]
    changes = spark.createDataFrame([(2, "fruit"), (3, "herb")], "id int, product string")
    (DeltaTable.forPath(spark, table_path).alias("t").merge(changes.alias("s"), "t.id = s.id")
        .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
    now = {r.id: r.product for r in spark.read.format("delta").load(table_path).collect()}
    then = {r.id: r.product for r in spark.read.format("delta").option("versionAsOf", v0).load(table_path).collect()}
    if now != {1: "grain", 2: "fruit", 3: "herb"} or then != {1: "grain", 2: "tea"}:
        raise RuntimeError(f"Delta MERGE/time travel gave unexpected rows: now={now} v{v0}={then}")
    return {"path": table_path, "version_read": v0, "rows_now": len(now), "rows_at_v0": len(then)}


def gx_check(spark) -> str:
    from agrilake.core import quality

    df = spark.createDataFrame([("93", 1), ("93", 2)], "prefix string, n int")
    ok = quality.validate(df, "doctor", [{"expectation": "expect_column_values_to_not_be_null",
                                          "kwargs": {"column": "prefix"}, "severity": "critical"}])
    bad = quality.validate(df, "doctor", [{"expectation": "expect_column_values_to_be_between",
                                           "kwargs": {"column": "n", "min_value": 5}, "severity": "critical"}])
    if not ok.success or bad.success:
        raise RuntimeError("Great Expectations did not tell a passing expectation from a failing one")
    return "1 passing and 1 failing expectation told apart"


def airflow_check(settings) -> str:
    db = settings.airflow_home / "airflow.db"
    if not db.exists():
        raise RuntimeMissing(f"no Airflow metadata DB at {db}: run `make setup` (it runs `airflow db migrate`)")
    return str(db)


def run(argv: list[str] | None, settings: Settings) -> dict:
    parser = argparse.ArgumentParser(prog="agrilake doctor", description=__doc__)
    parser.add_argument("--only", choices=["delta"], help="run only the Spark/Delta check (used by the DAG)")
    parser.add_argument("--table", help="where the Delta check writes (default: the lakehouse's ops/doctor_check)")
    args = parser.parse_args(argv)
    report: dict = {}

    java = check_java()
    report["java"] = f"{java_version(java)} ({java})"
    report["jars"] = ", ".join(Path(j).name for j in check_jars(settings))
    for dist in ("pyspark", "delta-spark", "great-expectations", "apache-airflow"):
        report[dist] = _version(dist)
    contracts = load(settings.schemas_dir)
    report["schemas"] = f"{settings.schemas_dir} ({len(contracts.feeds())} feeds, {len(contracts.silver_tables())} silver tables)"
    suites = sorted(settings.expectations_dir.glob("*.yaml"))
    if not suites:
        raise RuntimeMissing(f"no expectation suites in {settings.expectations_dir}: reinstall agrilake, "
                             "or point AGRILAKE_EXPECTATIONS at the project's expectations/ folder")
    report["expectations"] = f"{settings.expectations_dir} ({len(suites)} suites)"
    report["landing"] = settings.landing
    report["lakehouse"] = settings.lakehouse
    report["spark_master"] = settings.spark_master
    if args.only != "delta":
        report["airflow_home"] = airflow_check(settings)

    from agrilake.core.spark import get_spark

    spark = get_spark("agrilake-doctor", settings=settings)
    report["spark"] = spark.version
    table = args.table or settings.table_path("ops", DOCTOR_TABLE)
    report["delta"] = delta_check(spark, table)
    if args.only != "delta":
        with tempfile.TemporaryDirectory():
            report["great_expectations"] = gx_check(spark)
    return report


def main(argv: list[str] | None = None) -> int:
    try:
        report = run(argv, get_settings())
    except RuntimeMissing as exc:
        print(f"doctor: MISSING: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the doctor reports any failure and what failed
        print(f"doctor: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    width = max(map(len, report))
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    print("doctor: OK")
    return 0
