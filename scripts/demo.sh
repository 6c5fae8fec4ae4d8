#!/usr/bin/env bash
# Set up, then run the example DAG end to end on the local Docker engine (SQLite store).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ORCH_DAGS_FOLDER="${ORCH_DAGS_FOLDER:-$PWD/dags}"
echo "==> running example_sales (store and logs in ${ORCH_HOME:-~/.orchestrator})"
.venv/bin/orchestrator dags test example_sales "$@"
