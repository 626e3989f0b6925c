#!/usr/bin/env bash
# The test suite: lint, then unit and integration tests. Called by `make test` (and so by .ci/run).
# Two pytest workers by default (AGRILAKE_TEST_WORKERS; 0 = in-process): most integration time is
# spent waiting on a child process (airflow dags test, spark-submit, a server), so the second core
# is otherwise idle. Whole files go to one worker, so a module's fixtures are built once.
# --no-loadscope-reorder: xdist would hand out files by their number of tests, not in the order
# tests/conftest.py gives (longest first), and a long file with few tests then ran alone at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
WORKERS="${AGRILAKE_TEST_WORKERS:-2}"
# Every JVM of the suite (the shared session, Airflow tasks, spark-submit, the SQL server) runs small
# data for seconds: C1 alone compiles enough, without C2 burning a core on code that soon exits, and
# the serial collector suits a 1 GB heap (docs/benchmarks.md: the suite's CPU time roughly halves).
# The code cache must be set with it: C1-only defaults to 48 MB, which Spark fills, and the JVM then
# stops compiling altogether. Not the product's default: C2 wins on a stage of millions of rows.
if [ -z "${AGRILAKE_JVM_OPTIONS:-}" ]; then
    JVM="-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m -XX:+UseSerialGC"
    # Class data sharing: most of a JVM's start is loading and verifying Spark's and Delta's classes,
    # and the suite starts dozens of JVMs. One warm-up session archives them at exit, once per JDK,
    # Spark, jars and flags (key below); every later JVM maps the archive (11 s -> 6.7 s for a local
    # session with a Delta write). A JVM whose class path differs (a cluster daemon) runs without it.
    QUIET="-Xlog:cds=off -Xlog:cds+dynamic=off"
    KEY=$( { java -version 2>&1; "$BIN/python" -c 'import pyspark; print(pyspark.__version__)'; ls .jars; echo "$JVM"; } \
           | sha256sum | cut -c1-16)
    JSA="$PWD/.cache/jvm/spark-$KEY.jsa"
    if [ ! -s "$JSA" ]; then
        echo ">> JVM class-data archive $JSA (once per JDK, Spark, jars and flags)"
        mkdir -p .cache/jvm
        AGRILAKE_JVM_OPTIONS="$JVM -XX:ArchiveClassesAtExit=$JSA.tmp $QUIET" AGRILAKE_SPARK_MASTER="local[1]" \
            "$BIN/python" infra/jvm_warmup.py >/dev/null 2>&1 && mv "$JSA.tmp" "$JSA" \
            || { echo "   (not created: the JVMs start without it)"; rm -f "$JSA.tmp"; }
    fi
    [ -s "$JSA" ] && JVM="$JVM -XX:SharedArchiveFile=$JSA $QUIET"
    export AGRILAKE_JVM_OPTIONS="$JVM"
fi
# Spark on the suite's tiny tables: most of a query's time is planning and compiling, not rows. Without
# whole-stage code generation (Janino compiles a class per query) and adaptive re-planning, on one shuffle
# partition (and one task per local scan), the suite runs ~15% faster (docs/benchmarks.md). Results do not change: both are
# optimisations. The product keeps Spark's defaults, and the wheel test runs the pipeline on them.
export AGRILAKE_SPARK_CONF="${AGRILAKE_SPARK_CONF-spark.sql.codegen.wholeStage=false spark.sql.adaptive.enabled=false spark.default.parallelism=1}"
export AGRILAKE_SHUFFLE_PARTITIONS="${AGRILAKE_SHUFFLE_PARTITIONS:-1}"
echo ">> ruff"
"$BIN/ruff" check .
echo ">> pytest (${WORKERS} workers)"
if [ "$WORKERS" = "0" ]; then
    exec "$BIN/python" -m pytest --durations=25 "$@"
fi
exec "$BIN/python" -m pytest -n "$WORKERS" --dist loadfile --no-loadscope-reorder --durations=25 "$@"
