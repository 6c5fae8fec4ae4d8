#!/usr/bin/env bash
# Set up, lint, type-check, then run every test tier: unit (fake runtime), integration (real
# Docker), Postgres (a throwaway server in a container). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "==> ruff";           ruff check . && ruff format --check .
echo "==> mypy";           mypy
echo "==> import-linter";  lint-imports
echo "==> pytest"
pytest "$@"
