#!/usr/bin/env bash
# The test suite: lint, then unit and integration tests. Called by `make test` (and so by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
echo ">> ruff"
"$BIN/ruff" check .
echo ">> pytest"
"$BIN/python" -m pytest "$@"
