#!/usr/bin/env bash
# Set up this checkout on a Debian machine with a running Docker engine: system packages,
# a virtualenv with the project, and the local images. Safe to re-run: finished work is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
# the browser tests (tests/browser) drive the system Chromium; Playwright downloads nothing
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# the docker-compose stack and its test (scripts/compose.sh takes either tool)
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  missing+=(docker-compose)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "==> installing the project and its dev tools into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

echo "==> local base images"
.venv/bin/orchestrator images bootstrap
echo "==> task images"
.venv/bin/orchestrator images build
