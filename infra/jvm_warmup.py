"""One short Spark + Delta session whose JVM writes a class-data-sharing archive at exit (run_tests.sh).

Every later JVM of the suite maps the archive instead of loading and verifying Spark's and Delta's
classes again: a local session with a Delta write and read starts in ~6.7 s instead of ~11 s here.
The work below touches what the pipeline's sessions load: Delta create, MERGE, time travel, JSON,
regular expressions, windows, joins and aggregations.
"""

from __future__ import annotations

import sys
import tempfile

from agrilake.core.settings import Settings
from agrilake.core.spark import get_spark


def main() -> None:
    spark = get_spark("agrilake-jvm-warmup", settings=Settings.from_env())
    root = tempfile.mkdtemp(prefix="agrilake-warmup-")
    df = spark.sql("""SELECT id, CAST(id % 3 AS string) AS k, to_json(named_struct('a', id)) AS j,
                      date_add(DATE'2026-11-01', CAST(id AS int)) AS d FROM range(20)""")
    df.write.format("delta").partitionBy("k").save(f"{root}/t")
    from delta.tables import DeltaTable

    target = DeltaTable.forPath(spark, f"{root}/t")
    target.alias("t").merge(df.alias("s"), "t.id = s.id").whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
    spark.read.format("delta").option("versionAsOf", 0).load(f"{root}/t").createOrReplaceTempView("v")
    spark.sql("""SELECT u.k, count(*), max(regexp_extract(u.j, '([0-9]+)', 1)), sum(from_json(u.j, 'a long').a),
                        max(u.n) FROM (SELECT *, row_number() OVER (PARTITION BY k ORDER BY d) AS n FROM v) AS u
                 JOIN v AS w ON u.k = w.k AND u.id = w.id GROUP BY u.k""").collect()
    gateway = spark.sparkContext._gateway
    spark.stop()
    # The archive is written as the JVM exits, after Python would: close its stdin (the gateway's
    # signal to exit) and wait, so the caller finds the archive complete.
    proc = getattr(gateway, "proc", None)
    if proc is not None:
        proc.stdin.close()
        proc.wait(timeout=300)


if __name__ == "__main__":
    sys.exit(main())
