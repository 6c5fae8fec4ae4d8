#!/bin/sh
# Entrypoint of the orchestrator image: runs `orchestrator ARGS...` as the unprivileged user
# `orchestrator` (`docker run IMAGE dags list` runs `orchestrator dags list`). The first
# argument `orchestrator`, `orchestrator-init` (the compose stack's start-up step) or `sh` is run
# as it is instead.
#
# Started as root (the compose stack does this for the scheduler and the start-up step only),
# it first makes $ORCH_HOME and hands it to `orchestrator` (a host folder the engine created for
# a bind mount belongs to root), and adds the group owning the Docker socket, when one is
# mounted, to the user's groups, then drops to that user. Started as any other user it only
# runs the command.
set -eu

case "${1:-}" in
    orchestrator | orchestrator-init | sh) ;;
    *) set -- orchestrator "$@" ;;
esac

if [ "$(id -u)" != 0 ]; then
    exec "$@"
fi

home="${ORCH_HOME:-/var/lib/orchestrator}"
mkdir -p "$home"
if [ "$(stat -c %u "$home")" != "$(id -u orchestrator)" ]; then
    chown orchestrator:orchestrator "$home"
fi

groups="$(id -g orchestrator)"
socket="${DOCKER_HOST:-unix:///var/run/docker.sock}"
socket="${socket#unix://}"
if [ -S "$socket" ]; then
    groups="$groups,$(stat -c %g "$socket")"
fi
exec setpriv --reuid=orchestrator --regid=orchestrator --groups="$groups" -- "$@"
