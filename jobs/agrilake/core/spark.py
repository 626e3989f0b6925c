"""The one SparkSession factory: local or cluster master, Delta extension and catalog, local jars."""

from __future__ import annotations

import logging
import os
import shutil
import sys

from agrilake.core.settings import Settings

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


GUARD_CLASS = "org.agrilake.spark.ReadOnlyCatalog"
CONNECT_GUARD_CLASS = "org.agrilake.spark.ConnectGuard"
# Spark's default redaction pattern, and the session settings a catalog token is presented in
# (agrilake.analyst.catalog): logs and any UI or event log show them as *********(redacted).
REDACTION = r"(?i)secret|password|token|access[.]?key|spark\.agrilake\.catalog\."


def check_guard(settings: Settings) -> str:
    jar = settings.guard_jar
    if not jar.is_file():
        raise RuntimeMissing(
            f"The read-only guard of the analyst sessions is missing ({jar}): run `make setup` (it compiles "
            "infra/guard with javac), or point AGRILAKE_JARS at a folder that has it.")
    return str(jar)


def catalog_conf(catalog_dir: str, timezone: str) -> dict[str, str]:
    """Settings of a session on the persistent catalog under `catalog_dir` (why: jobs/agrilake/analyst/catalog.py).

    Only the analyst commands and the SQL server ask for it; the pipeline's sessions keep Spark's
    in-memory catalog and address tables by path, so any number of them can run at once.
    """
    return {
        # pyspark's wheel ships the Hive 2.3 client and Derby: a metastore with no server to run.
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL":
            f"jdbc:derby:;databaseName={catalog_dir}/metastore_db;create=true",
        "spark.sql.warehouse.dir": f"{catalog_dir}/warehouse",
        # Derby writes derby.log into the working directory unless told where its home is. The JVM's
        # zone must be the session's: Delta turns `TIMESTAMP AS OF` into text in the JVM zone and
        # parses it back in the session zone, so any difference shifts the version that is read.
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={catalog_dir} -Duser.timezone={timezone}",
    }


def spark_conf(settings: Settings, *, test: bool = False, catalog_dir: str | None = None) -> dict[str, str]:
    partitions = "1" if test else str(settings.shuffle_partitions)
    conf = {
        "spark.jars": ",".join(check_jars(settings)),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.shuffle.partitions": partitions,
        # Delta reconstructs table state with 50 partitions by default: minutes of tiny tasks locally.
        "spark.databricks.delta.snapshotPartitions": partitions,
        "spark.default.parallelism": partitions if test else "4",
        # docs/metrics.md takes event dates in UTC+08:00: the session zone makes to_date() do exactly that.
        "spark.sql.session.timeZone": settings.timezone,
        "spark.sql.ansi.enabled": "false",
        # A JSON key or CSV header repeated in one record: the last value wins, as in Python (bronze).
        "spark.sql.mapKeyDedupPolicy": "LAST_WIN",
        "spark.ui.enabled": "false" if test else "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": settings.driver_memory,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.warehouse.dir": f"{settings.lakehouse.rstrip('/')}/_warehouse",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
    }
    if settings.jvm_options:
        conf["spark.driver.extraJavaOptions"] = conf["spark.executor.extraJavaOptions"] = settings.jvm_options
    if settings.lineage_spark and not catalog_dir:
        from agrilake.core import lineage

        listener = lineage.spark_conf(settings)
        if listener:
            conf["spark.jars"] += "," + listener.pop("spark.jars")
            conf.update(listener)
    for item in settings.spark_conf.split():
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("spark."):
            raise SystemExit(f"AGRILAKE_SPARK_CONF: {item!r} is not spark.<key>=<value> "
                             "(settings separated by spaces)")
        conf[key] = value
    if catalog_dir:
        catalog = catalog_conf(catalog_dir, settings.timezone)
        key = "spark.driver.extraJavaOptions"
        catalog[key] = f"{settings.jvm_options} {catalog[key]}".strip()
        conf.update(catalog)
        # The analyst sessions are read-only, decided on every analysed plan (infra/guard: why and what).
        conf["spark.jars"] += "," + check_guard(settings)
        conf["spark.sql.extensions"] += "," + GUARD_CLASS
        conf["spark.redaction.regex"] = REDACTION
    return conf


def get_spark(app_name: str, *, settings: Settings, test: bool = False, catalog_dir: str | None = None):
    """Return the process's SparkSession, creating it with the project's configuration.

    `catalog_dir`: put the session on the persistent catalog kept there (Hive metastore in embedded
    Derby: one process at a time). It only applies when this call creates the session.
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers must run this interpreter (the venv: pandas, stdnum, agrilake), not whatever is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    check_java()
    master = "local[1]" if test else settings.spark_master
    builder = SparkSession.builder.appName(app_name).master(master)
    for key, value in spark_conf(settings, test=test, catalog_dir=catalog_dir).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    log.info("Spark %s on %s", spark.version, master)
    return spark


def connect_spark(url: str):
    """A Spark Connect client session on `url` (`sc://host:port`), e.g. the SQL server of agrilake.analyst.sql_server.

    It flips pyspark into Connect mode for the whole process (pyspark.sql.functions and friends then
    build Connect plans), so never call it in a process that also uses a classic session.
    """
    from pyspark.sql import SparkSession

    return SparkSession.builder.remote(url).getOrCreate()
