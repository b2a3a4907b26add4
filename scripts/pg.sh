#!/usr/bin/env bash
# A private PostgreSQL cluster for the test suite: start | stop | status | url
#
# We run our own cluster (initdb + pg_ctl) instead of Debian's pg_ctlcluster service so that the
# tests need no system configuration, never touch a cluster someone else uses, and work the same
# inside containers without systemd.
#
#   B2B_OTEL_PG_PORT  TCP port on 127.0.0.1        (default 55432)
#   B2B_OTEL_PG_DIR   data directory               (default $REPO/.cache/pg, git-ignored)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${B2B_OTEL_PG_PORT:-55432}"
DIR="${B2B_OTEL_PG_DIR:-$REPO/.cache/pg}"
DB="b2b_otel_test"
LOG="$DIR/postgres.log"
READY_TIMEOUT_S=30

say() { echo "pg.sh: $*"; }
die() { echo "pg.sh: error: $*" >&2; exit 1; }

# Newest installed server binaries (Debian puts them outside PATH).
find_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$dir" && -x "$dir/pg_ctl" ]]; then
        echo "$dir"
    fi
}

install_postgres() {
    [[ "$(id -u)" == 0 ]] || die "PostgreSQL is not installed and we are not root; install the 'postgresql' package"
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is unavailable"
    say "installing PostgreSQL (apt-get install postgresql) ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
}

# Run a server binary as the cluster owner: initdb/postgres refuse to run as root.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        # runuser keeps it non-interactive (no PAM password prompt); su is the fallback.
        if command -v runuser >/dev/null; then
            runuser -u postgres -- "$@"
        else
            su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

is_ready() {
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" >/dev/null 2>&1
}

show_log_and_die() {
    echo "pg.sh: error: $1" >&2
    if [[ -f "$LOG" ]]; then
        echo "pg.sh: server log: $LOG (last 30 lines):" >&2
        tail -n 30 "$LOG" >&2 || true
    else
        echo "pg.sh: no server log at $LOG" >&2
    fi
    exit 1
}

url() {
    echo "postgresql://postgres@127.0.0.1:$PORT/$DB"
}

init_cluster() {
    mkdir -p "$DIR"
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || die "user 'postgres' does not exist (the postgresql package creates it)"
        chown postgres:postgres "$DIR"
        # The owner must be able to reach the data dir through every parent (e.g. a repo under /root):
        # grant traverse-only permission where it is missing.
        local parent
        parent="$(dirname "$DIR")"
        while [[ "$parent" != "/" ]]; do
            if ! as_owner test -x "$parent"; then
                say "granting o+x on $parent so that user postgres can reach $DIR"
                chmod o+x "$parent"
            fi
            parent="$(dirname "$parent")"
        done
    fi
    chmod 700 "$DIR"
    # Locale C: no dependency on generated locales, and the tests need no collation.
    # The output goes outside $DIR because initdb insists on an empty directory.
    local out
    if ! out="$(as_owner "$BIN/initdb" -D "$DIR" --auth=trust -U postgres -E UTF8 --locale=C 2>&1)"; then
        echo "$out" >&2
        die "initdb failed in $DIR (output above)"
    fi
}

start() {
    BIN="$(find_bindir)"
    if [[ -z "$BIN" ]]; then
        install_postgres
        BIN="$(find_bindir)"
        [[ -n "$BIN" ]] || die "PostgreSQL installed but no pg_ctl under /usr/lib/postgresql/*/bin"
    fi
    if is_ready; then
        say "PostgreSQL already running on 127.0.0.1:$PORT"
    else
        [[ -f "$DIR/PG_VERSION" ]] || init_cluster
        # A crash can leave a stale pid file behind that would stop pg_ctl from starting.
        if [[ -f "$DIR/postmaster.pid" ]] && ! as_owner "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
            rm -f "$DIR/postmaster.pid"
        fi
        if [[ "$(id -u)" == 0 ]]; then
            touch "$LOG"
            chown postgres:postgres "$LOG"
        fi
        # Loopback only, socket inside the data dir (no /var/run/postgresql needed); durability
        # settings off because this is throw-away test data and it makes the suite faster.
        local opts="-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='$DIR'"
        opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        # pg_stat_statements: the slow statements that prometheus-postgres-exporter reports.
        opts+=" -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
        if ! as_owner "$BIN/pg_ctl" -D "$DIR" -l "$LOG" -w -t "$READY_TIMEOUT_S" -o "$opts" start \
            >"$DIR/pg_ctl.out" 2>&1; then
            cat "$DIR/pg_ctl.out" >&2 || true
            show_log_and_die "pg_ctl could not start PostgreSQL on 127.0.0.1:$PORT"
        fi
        # pg_ctl -w watches the pid file; also wait until TCP on our port answers (bounded).
        local waited=0
        until is_ready; do
            if (( waited >= READY_TIMEOUT_S * 10 )); then
                show_log_and_die "PostgreSQL did not become ready on 127.0.0.1:$PORT within ${READY_TIMEOUT_S}s"
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
        say "PostgreSQL started on 127.0.0.1:$PORT (data $DIR)"
    fi
    local exists
    exists="$("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'" 2>&1)" \
        || show_log_and_die "cannot query 127.0.0.1:$PORT as user postgres: $exists"
    if [[ "$exists" != "1" ]]; then
        "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE $DB" >/dev/null \
            || show_log_and_die "cannot create database $DB"
    fi
    "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d "$DB" -qc \
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null 2>&1 \
        || say "warning: cannot create the extension pg_stat_statements in $DB (slow-statement metrics are missing)"
    local preloaded
    preloaded="$("$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d "$DB" -tAc "SHOW shared_preload_libraries" 2>/dev/null || true)"
    [[ "$preloaded" == *pg_stat_statements* ]] \
        || say "note: this server was started without pg_stat_statements preloaded ('pg.sh stop && pg.sh start' loads it)"
}

stop() {
    BIN="$(find_bindir)"
    if [[ -z "$BIN" || ! -f "$DIR/PG_VERSION" ]]; then
        say "no cluster at $DIR"
        return 0
    fi
    if as_owner "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
        as_owner "$BIN/pg_ctl" -D "$DIR" -m fast -w stop >/dev/null
        say "PostgreSQL stopped (data $DIR)"
    else
        say "PostgreSQL not running (data $DIR)"
    fi
}

status() {
    BIN="$(find_bindir)"
    [[ -n "$BIN" ]] || { say "PostgreSQL is not installed"; return 1; }
    if is_ready; then
        say "PostgreSQL running on 127.0.0.1:$PORT ($(url))"
    else
        say "PostgreSQL not running on 127.0.0.1:$PORT"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    url) url ;;
    *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
