#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL server: DATABASE_URL is set for it, and the
# server is stopped and deleted afterwards, whatever the command's outcome.
set -euo pipefail

PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
# A free loopback port unless PGPORT is given: two runs on one machine must not meet.
PGPORT=${PGPORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
PGDATA=$(mktemp -d /tmp/gptstore-pg.XXXXXX)
as_pg() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}
[ "$(id -u)" = 0 ] && chown postgres "$PGDATA"
cleanup() {
  as_pg "$PGBIN/pg_ctl -D $PGDATA -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$PGDATA"
}
trap cleanup EXIT

as_pg "$PGBIN/initdb -D $PGDATA -A trust -U postgres --no-sync" >/dev/null
as_pg "$PGBIN/pg_ctl -D $PGDATA -l $PGDATA/server.log -w -o \"-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1 -c fsync=off\" start" >/dev/null
as_pg "$PGBIN/createdb -h 127.0.0.1 -p $PGPORT -U postgres gptstore"

DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/gptstore" "$@"
