"""The one SparkSession factory: local or cluster master, Delta extension and catalog, local jars."""

from __future__ import annotations

import logging
import os
import shutil
import sys

from jobs.settings import Settings, get_settings

log = logging.getLogger(__name__)


class RuntimeMissing(RuntimeError):
    """A part of the runtime (Java, the Delta jars) is missing; the message says how to fix it."""


def check_java() -> str:
    java = shutil.which("java", path=os.path.join(os.environ.get("JAVA_HOME", ""), "bin")) or shutil.which("java")
    if not java:
        raise RuntimeMissing("Java 17 is not on PATH (nor in $JAVA_HOME/bin): install openjdk-17-jre-headless.")
    return java


def check_jars(settings: Settings) -> list[str]:
    jars = settings.delta_jars()
    names = " ".join(j.name for j in jars)
    if "delta-spark" not in names or "delta-storage" not in names:
        raise RuntimeMissing(
            f"The Delta jars are missing from {settings.jars_dir}: run `make setup` "
            "(it fetches them once with Maven), or point AGRILAKE_JARS at a folder that has them."
        )
    return [str(j) for j in jars]


def spark_conf(settings: Settings, *, test: bool = False) -> dict[str, str]:
    partitions = "1" if test else str(settings.shuffle_partitions)
    return {
        "spark.jars": ",".join(check_jars(settings)),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": partitions,
        # Delta reconstructs table state with 50 partitions by default: minutes of tiny tasks locally.
        "spark.databricks.delta.snapshotPartitions": partitions,
        "spark.default.parallelism": partitions if test else "4",
        # METRICS.md takes event dates in UTC+08:00: the session zone makes to_date() do exactly that.
        "spark.sql.session.timeZone": settings.timezone,
        "spark.sql.ansi.enabled": "false",
        "spark.ui.enabled": "false" if test else "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": settings.driver_memory,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.warehouse.dir": f"{settings.lakehouse.rstrip('/')}/_warehouse",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
    }


def get_spark(app_name: str = "agrilake", *, settings: Settings | None = None, test: bool = False):
    """Return the process's SparkSession, creating it with the project's configuration."""
    from pyspark.sql import SparkSession

    settings = settings or get_settings()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers must run this interpreter (the venv: pandas, stdnum, jobs), not whatever is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    check_java()
    master = "local[1]" if test else settings.spark_master
    builder = SparkSession.builder.appName(app_name).master(master)
    for key, value in spark_conf(settings, test=test).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    log.info("Spark %s on %s", spark.version, master)
    return spark
