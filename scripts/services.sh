#!/usr/bin/env bash
# Start the services the tests need: a throw-away PostgreSQL cluster on 127.0.0.1.
# Installs PostgreSQL through apt when missing (needs root). Source it to get
# TWIN_TEST_PG_URL exported, or run it and read var/test-pg-url:
#   source scripts/services.sh        # or: scripts/services.sh && cat var/test-pg-url
# Stop it with: scripts/services.sh stop
# (Radicale, the CalDAV server, is started by the tests themselves.)

_twin_services() {
  local root port data log pgbin runas url
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  port="${TWIN_PG_PORT:-55432}"
  data="${TWIN_PG_DIR:-/tmp/twin-pg-$port}"
  log="$data.log"
  url="postgresql+asyncpg://twin:twin@127.0.0.1:$port/twin"

  pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$pgbin" ] || [ ! -x "$pgbin/initdb" ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "services.sh: PostgreSQL is not installed; run as root or: apt-get install postgresql" >&2
      return 1
    fi
    echo "==> installing PostgreSQL (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 && apt-get install -y -q postgresql >&2 || return 1
    pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi

  # PostgreSQL refuses to run as root: use the "postgres" system user then.
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home /var/lib/postgresql postgres
    runas=(runuser -u postgres --)
  else
    runas=()
  fi

  if [ "${1:-}" = "stop" ]; then
    [ -d "$data" ] && "${runas[@]}" "$pgbin/pg_ctl" -D "$data" -m fast stop >&2
    return 0
  fi

  if ! "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
    if [ ! -f "$data/PG_VERSION" ]; then
      echo "==> creating a PostgreSQL cluster in $data (port $port)" >&2
      mkdir -p "$data"
      [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
      chmod 700 "$data"
      "${runas[@]}" "$pgbin/initdb" -D "$data" -U postgres -A trust -E UTF8 \
        --locale=C.UTF-8 >/dev/null || return 1
    fi
    touch "$log"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$log"
    "${runas[@]}" "$pgbin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k /tmp -c max_connections=200 -c fsync=off" \
      start >&2 || { tail -n 20 "$log" >&2; return 1; }
  fi
  "${runas[@]}" "$pgbin/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    >/dev/null <<'SQL' || return 1
SELECT 'CREATE ROLE twin LOGIN CREATEDB PASSWORD ''twin'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'twin') \gexec
SELECT 'CREATE DATABASE twin OWNER twin'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'twin') \gexec
-- Tests drop their databases WITH (FORCE); an autovacuum worker still on a database just
-- filled is not twin's to end without this role (the drop then fails in teardown).
SET client_min_messages = warning;
GRANT pg_signal_backend TO twin;
SQL
  mkdir -p "$root/var"
  echo "$url" > "$root/var/test-pg-url"
  export TWIN_TEST_PG_URL="$url"
  echo "PostgreSQL ready: TWIN_TEST_PG_URL=$url" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  _twin_services "$@"
else
  # Sourced: the caller's own arguments (e.g. pytest's) are not for us.
  _twin_services || { echo "services.sh: PostgreSQL could not be started" >&2; false; }
fi

# ---------------------------------------------------------------------------------
# telephony/docker block (owner: telephony): Debian's docker-compose (v1.29) so that
# tests/test_docker_configs.py can validate docker/compose.yaml without a Docker
# engine (`docker-compose config` needs no daemon). Best effort: without it, that one
# test is skipped with a message.
_twin_docker_compose() {
  command -v docker-compose >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "services.sh: docker-compose missing; run as root or: apt-get install docker-compose" >&2
    return 0
  fi
  echo "==> installing docker-compose (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >&2; } \
    || echo "services.sh: could not install docker-compose" >&2
  return 0
}
if [ "${1:-}" != "stop" ] || [ "${BASH_SOURCE[0]}" != "$0" ]; then
  _twin_docker_compose
fi
