#!/bin/sh
# Entrypoint of orchestrator/postgres: on first start initialise a cluster in $PGDATA, then run
# postgres listening on 0.0.0.0:5432. Honours the official image's variables:
#   POSTGRES_PASSWORD          required unless POSTGRES_HOST_AUTH_METHOD=trust
#   POSTGRES_USER              superuser name (default postgres)
#   POSTGRES_DB                database created for it (default: the user name)
#   POSTGRES_HOST_AUTH_METHOD  auth over TCP: scram-sha-256 (default), md5, or trust
#   POSTGRES_INITDB_ARGS       extra initdb arguments
# and runs /docker-entrypoint-initdb.d/*.sql and *.sh once after initialisation.
# Local-socket connections inside the container are trusted; TCP ones need the password.
# Ready line (printed once, by postgres itself): "database system is ready to accept connections".
set -eu

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA

first="${1:-}"
if [ -z "$first" ] || [ "${first#-}" != "$first" ]; then
    set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
    exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

say() { echo "orchestrator/postgres: $*"; }

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
        echo "orchestrator/postgres: error: POSTGRES_PASSWORD is not set." >&2
        echo "  Set it (docker run -e POSTGRES_PASSWORD=...), or allow every TCP client in" >&2
        echo "  without one with -e POSTGRES_HOST_AUTH_METHOD=trust." >&2
        exit 1
    fi
    say "initialising a cluster in $PGDATA for user '$user', database '$db'"
    pwfile="$(mktemp)"
    printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    # shellcheck disable=SC2086
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
        --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} > /tmp/initdb.log 2>&1 \
        || { cat /tmp/initdb.log >&2; rm -f "$pwfile"; exit 1; }
    rm -f "$pwfile"
    printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
    printf '\nhost all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"

    # A socket-only server for the set-up; its log goes to a file so that the ready line
    # appears once, from the real server.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -l /tmp/postgres-init.log -w start > /dev/null
    if [ "$db" != postgres ]; then
        psql -v ON_ERROR_STOP=1 --no-psqlrc -q -U "$user" -d postgres --set db="$db" <<'SQL'
CREATE DATABASE :"db";
SQL
    fi
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sql) say "running $script"
                   psql -v ON_ERROR_STOP=1 --no-psqlrc -q -U "$user" -d "$db" -f "$script" ;;
            *.sh)  say "running $script"; . "$script" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
    say "initialised; starting postgres on 0.0.0.0:5432"
else
    say "using the existing cluster in $PGDATA"
fi

exec "$@"
