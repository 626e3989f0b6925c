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
export AGRILAKE_JVM_OPTIONS="${AGRILAKE_JVM_OPTIONS:--XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m -XX:+UseSerialGC}"
echo ">> ruff"
"$BIN/ruff" check .
echo ">> pytest (${WORKERS} workers)"
if [ "$WORKERS" = "0" ]; then
    exec "$BIN/python" -m pytest --durations=25 "$@"
fi
exec "$BIN/python" -m pytest -n "$WORKERS" --dist loadfile --no-loadscope-reorder --durations=25 "$@"
