#!/bin/sh
# orchestrator-init: the compose stack's start-up step, run once before the scheduler and the
# web server start (and again, harmlessly, on every `up`):
#   1. `orchestrator db upgrade` (creates or migrates the store);
#   2. creates the admin user ORCH_ADMIN_USERNAME (default `admin`) unless it exists, with the
#      password ORCH_ADMIN_PASSWORD; without one a random password is generated and printed
#      here once (`docker-compose logs init`). An existing user is never changed.
set -eu

orchestrator db upgrade

name="${ORCH_ADMIN_USERNAME:-admin}"
if orchestrator users list --output json | python3 -c '
import json, sys
sys.exit(0 if any(u["username"] == sys.argv[1] for u in json.load(sys.stdin)) else 1)
' "$name"; then
    echo "orchestrator-init: user $name exists already; left as it is"
    exit 0
fi

password="${ORCH_ADMIN_PASSWORD:-}"
generated=""
if [ -z "$password" ]; then
    password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
    generated=1
fi
orchestrator users create "$name" --role admin --password "$password"
if [ -n "$generated" ]; then
    echo "orchestrator-init: ORCH_ADMIN_PASSWORD is unset; the password of $name is: $password"
fi
