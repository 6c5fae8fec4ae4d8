#!/usr/bin/env bash
# Run the docker-compose stack (docker-compose.yml) on this host, also where no registry can
# be reached: the images the stack builds on and runs are made locally when the public ones are
# absent, and passed to compose as variables.
#
#   bash scripts/compose.sh                 build the orchestrator image, then `up -d`
#   bash scripts/compose.sh logs -f web     any other arguments go to compose as they are
#   bash scripts/compose.sh down -v         stop and remove the stack with its database volume
#
# Uses `docker compose` (v2) when the engine's CLI has it, else `docker-compose` (v1.29+).
# Variables the stack reads (ORCH_ADMIN_PASSWORD, ORCH_STACK_HOME, ...) are listed at the top of
# docker-compose.yml; set any of ORCH_BASE_IMAGE / ORCH_POSTGRES_IMAGE to choose those images.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
else
  echo "scripts/compose.sh: neither \`docker compose\` nor \`docker-compose\` is installed" >&2
  exit 1
fi

has_image() { docker image inspect "$1" >/dev/null 2>&1; }

orchestrator_cli() {
  if [ -x .venv/bin/orchestrator ]; then .venv/bin/orchestrator "$@"
  elif command -v orchestrator >/dev/null 2>&1; then orchestrator "$@"
  else
    echo "scripts/compose.sh: no \`orchestrator\` command to make the local images with;" \
      "run scripts/setup.sh first" >&2
    exit 1
  fi
}

if [ "${1:-up}" = up ]; then
  # The public images when the engine has them; else the local ones, made when missing.
  : "${ORCH_BASE_IMAGE:=python:3.11-slim}"
  : "${ORCH_POSTGRES_IMAGE:=postgres:15}"
  if ! has_image "$ORCH_BASE_IMAGE" || ! has_image "$ORCH_POSTGRES_IMAGE"; then
    orchestrator_cli images bootstrap
    has_image "$ORCH_BASE_IMAGE" || ORCH_BASE_IMAGE=orchestrator/python-base:bookworm
    has_image "$ORCH_POSTGRES_IMAGE" || ORCH_POSTGRES_IMAGE=orchestrator/postgres:15
  fi
  export ORCH_BASE_IMAGE ORCH_POSTGRES_IMAGE
  # The example DAGs' task images (a cached rebuild takes seconds).
  orchestrator_cli images build
  # Certificates this host added to its trust store (a TLS-inspecting proxy, say) are trusted
  # by the image build too, for the package index.
  if [ -z "${ORCH_EXTRA_CA_CERTS:-}" ] && compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    ORCH_EXTRA_CA_CERTS="$(cat /usr/local/share/ca-certificates/*.crt)"
    export ORCH_EXTRA_CA_CERTS
  fi
  echo "==> orchestrator image on ${ORCH_BASE_IMAGE}; database ${ORCH_POSTGRES_IMAGE}"
  "${compose[@]}" build init
  if [ $# -eq 0 ]; then
    set -- up -d
  fi
fi
exec "${compose[@]}" "$@"
