#!/bin/sh
# First start on an empty data folder: initdb with POSTGRES_USER as the superuser (password
# POSTGRES_PASSWORD, scram-sha-256 over TCP), then create POSTGRES_DB. The set-up server listens on a private
# socket folder only, so `pg_isready` reports ready once the real server runs, not before.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pwfile"
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        setup="$(mktemp -d)"
        pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$setup" start
        createdb -h "$setup" -U "$user" "$db"
        pg_ctl -D "$PGDATA" -w -m fast stop
        rmdir "$setup"
    fi
fi
exec "$@"
