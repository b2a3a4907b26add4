#!/usr/bin/env bash
# The local observability stack, on loopback only: build | up | down | status
#
#   build   builds what is missing or stale into .cache/bin/ (otelcol-b2b from collector/, jaeger from
#           collector/jaeger/) and installs Debian's prometheus and prometheus-alertmanager when missing
#   up      build, then start what is not running yet and wait until each piece answers:
#             webhook       127.0.0.1:9095   scripts/stack_webhook.py (Alertmanager's receiver in the demo)
#             alertmanager  127.0.0.1:9093   collector/alertmanager/alertmanager.yml
#             jaeger        127.0.0.1:16686  query API (OTLP in on 14317/14318), collector/config/jaeger.yaml
#             otelcol-b2b   127.0.0.1:13133  health (OTLP in on 4317/4318), collector/config/gateway.yaml
#             prometheus    127.0.0.1:9090   collector/prometheus/prometheus.yml
#   down    stop them (SIGTERM, then SIGKILL after B2B_STACK_STOP_TIMEOUT_S)
#   status  what runs and whether it answers; exit 0 only when everything does
#
# Everything the stack writes goes under B2B_STACK_DIR (default .cache/stack; a relative path is taken
# from the repository root): logs/ (one log per piece), run/ (pid files), prometheus/ and alertmanager/
# (their storage), and the gateway's files security.jsonl, audit.jsonl, derived.jsonl, plus webhook.jsonl.
#
# Environment (optional):
#   B2B_STACK_DIR              see above
#   B2B_STACK_READY_TIMEOUT_S  how long `up` waits for each piece to answer (default 60)
#   B2B_STACK_STOP_TIMEOUT_S   how long `down` waits after SIGTERM before SIGKILL (default 10)
#   GO                         the go command (default: go on PATH); GOFLAGS gets -trimpath added
#   PYTHON                     the python for the webhook receiver (default python3; stdlib only)
#   B2B_STACK_SKIP             comma list of pieces `up` neither builds nor starts, e.g. `jaeger` when the
#                              official Jaeger image (with its UI) serves 14317/16686 (docs/collector.md)
# The gateway also reads B2B_TAIL_SAMPLE_PERCENT, B2B_TAIL_DECISION_WAIT, B2B_MEMORY_LIMIT_MIB and
# B2B_JAEGER_OTLP_ENDPOINT (collector/config/gateway.yaml), Jaeger B2B_JAEGER_MAX_TRACES
# (collector/config/jaeger.yaml); B2B_LISTEN_HOST is forced to 127.0.0.1.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.cache/bin"
STACK_DIR="${B2B_STACK_DIR:-.cache/stack}"
[[ "$STACK_DIR" == /* ]] || STACK_DIR="$REPO/$STACK_DIR"
LOG_DIR="$STACK_DIR/logs"
RUN_DIR="$STACK_DIR/run"
READY_TIMEOUT_S="${B2B_STACK_READY_TIMEOUT_S:-60}"
STOP_TIMEOUT_S="${B2B_STACK_STOP_TIMEOUT_S:-10}"
GO="${GO:-go}"
PYTHON="${PYTHON:-python3}"

# The pieces in start order (down stops the gateway first so it can flush to Jaeger).
PIECES=(webhook alertmanager jaeger otelcol-b2b prometheus)
STOP_ORDER=(otelcol-b2b prometheus jaeger alertmanager webhook)
SKIP=",${B2B_STACK_SKIP:-},"
skipped() { [[ "$SKIP" == *",$1,"* ]]; }

say() { echo "stack.sh: $*"; }
die() { echo "stack.sh: error: $*" >&2; exit 1; }

# --- what each piece is ---------------------------------------------------------------------------

ready_url() {
    case "$1" in
        webhook) echo "http://127.0.0.1:9095/-/ready" ;;
        alertmanager) echo "http://127.0.0.1:9093/-/ready" ;;
        jaeger) echo "http://127.0.0.1:16686/api/services" ;;
        otelcol-b2b) echo "http://127.0.0.1:13133/" ;;
        prometheus) echo "http://127.0.0.1:9090/-/ready" ;;
    esac
}

# The loopback ports a piece binds: checked before start so that a stranger on them is named.
ports() {
    case "$1" in
        webhook) echo "9095" ;;
        alertmanager) echo "9093" ;;
        jaeger) echo "16686 16685 14317 14318 14269" ;;
        otelcol-b2b) echo "4317 4318 13133 8888 8889" ;;
        prometheus) echo "9090" ;;
    esac
}

# The executable's name, to recognise our process behind a pid file (pids are reused).
exe_name() {
    case "$1" in
        webhook) echo "stack_webhook.py" ;;
        alertmanager) echo "prometheus-alertmanager" ;;
        *) echo "$1" ;;
    esac
}

# Sets CMD to the piece's command line (an array: paths may hold spaces).
command_of() {
    case "$1" in
        webhook)
            CMD=("$PYTHON" "$REPO/scripts/stack_webhook.py" --listen 127.0.0.1:9095
                --out "$STACK_DIR/webhook.jsonl") ;;
        alertmanager)
            # --cluster.listen-address= (empty) turns clustering off: one instance, no gossip port.
            CMD=(prometheus-alertmanager
                --config.file="$REPO/collector/alertmanager/alertmanager.yml"
                --storage.path="$STACK_DIR/alertmanager"
                --web.listen-address=127.0.0.1:9093
                --cluster.listen-address=) ;;
        jaeger)
            CMD=("$BIN/jaeger" --config="file:$REPO/collector/config/jaeger.yaml") ;;
        otelcol-b2b)
            CMD=("$BIN/otelcol-b2b" --config="file:$REPO/collector/config/gateway.yaml") ;;
        prometheus)
            CMD=(prometheus
                --config.file="$REPO/collector/prometheus/prometheus.yml"
                --storage.tsdb.path="$STACK_DIR/prometheus"
                --storage.tsdb.retention.time=2d
                --web.listen-address=127.0.0.1:9090) ;;
    esac
}

# --- build ----------------------------------------------------------------------------------------

# make-style freshness: build when the binary is missing or a Go source (tests aside), go.mod or go.sum
# under the module is newer. A nested module (collector/jaeger inside collector) is pruned.
is_stale() {
    local bin="$1" dir="$2" prune="${3:-/nonexistent}"
    [[ -x "$bin" ]] || return 0
    local newer
    newer="$(find "$dir" -path "$prune" -prune -o -type f \
        \( \( -name '*.go' ! -name '*_test.go' \) -o -name go.mod -o -name go.sum \) \
        -newer "$bin" -print -quit)"
    [[ -n "$newer" ]]
}

need_go() {
    command -v "$GO" >/dev/null || die "'$GO' not found: install Go >= 1.26 (or set GO=/path/to/go) to build $1"
}

go_build() {
    local name="$1" dir="$2" pkg="$3" ldflags="-s -w ${4:-}"
    need_go "$name"
    mkdir -p "$BIN" "$LOG_DIR"
    local log="$LOG_DIR/build-$name.log" started=$SECONDS
    say "building $name ($dir; a first build takes minutes, later ones reuse Go's build cache) ..."
    # Build beside the target and rename: a failed build never leaves a half-written binary behind.
    if ! (cd "$dir" && GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath" \
            "$GO" build -ldflags="$ldflags" -o "$BIN/.$name.tmp" "$pkg") >"$log" 2>&1; then
        rm -f "$BIN/.$name.tmp"
        echo "stack.sh: error: building $name failed; build log $log (last 30 lines):" >&2
        tail -n 30 "$log" >&2
        exit 1
    fi
    mv -f "$BIN/.$name.tmp" "$BIN/$name"
    say "built $BIN/$name in $((SECONDS - started)) s ($(du -h "$BIN/$name" | cut -f1))"
}

ensure_packages() {
    local missing=()
    command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
    command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
    ((${#missing[@]})) || return 0
    [[ "$(id -u)" == 0 ]] || die "${missing[*]} not installed and we are not root: apt-get install ${missing[*]}"
    command -v apt-get >/dev/null || die "${missing[*]} not installed and apt-get is unavailable"
    say "installing ${missing[*]} (apt-get) ..."
    # The packages would start their system services on 0.0.0.0 (and on our ports): forbid service
    # starts for the install when nothing forbids them already. We run our own instances.
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
    fi
    local rc=0 log="$LOG_DIR/apt-get.log"
    mkdir -p "$LOG_DIR"
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    } >"$log" 2>&1 || rc=$?
    [[ -z "$added_policy" ]] || rm -f "$policy"
    if ((rc)); then
        echo "stack.sh: error: apt-get install ${missing[*]} failed; log $log (last 20 lines):" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
}

build() {
    if is_stale "$BIN/otelcol-b2b" "$REPO/collector" "$REPO/collector/jaeger"; then
        go_build otelcol-b2b "$REPO/collector" .
    else
        say "otelcol-b2b is up to date ($BIN/otelcol-b2b)"
    fi
    if skipped jaeger; then
        say "jaeger skipped (B2B_STACK_SKIP)"
    elif is_stale "$BIN/jaeger" "$REPO/collector/jaeger"; then
        # Jaeger reads its version from link-time variables; name the module version we build.
        local version
        need_go jaeger
        version="$(cd "$REPO/collector/jaeger" && "$GO" list -m -f '{{.Version}}' github.com/jaegertracing/jaeger)"
        go_build jaeger "$REPO/collector/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger \
            "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version"
    else
        say "jaeger is up to date ($BIN/jaeger)"
    fi
    ensure_packages
}

# --- processes ------------------------------------------------------------------------------------

pid_file() { echo "$RUN_DIR/$1.pid"; }

# Alive and not a zombie waiting for a parent that has not reaped it yet.
is_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local state
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [[ "$state" != Z ]]
}

# Prints the pid when the pid file names a live process of that piece.
running_pid() {
    local file pid
    file="$(pid_file "$1")"
    [[ -f "$file" ]] || return 1
    pid="$(<"$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] && is_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(exe_name "$1")" || return 1
    echo "$pid"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

probe() {
    if command -v curl >/dev/null; then
        curl -fsS -o /dev/null -m 2 "$1" 2>/dev/null
    else
        "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
    fi
}

# Logs are appended to across runs: remember where this start begins, to show only its own lines.
declare -A LOG_START=()
mark_logs() {
    local log
    for log in "$LOG_DIR/$1.log" "$LOG_DIR/$1.console.log"; do
        LOG_START[$log]="$(stat -c %s "$log" 2>/dev/null || echo 0)"
    done
}

show_logs_and_die() {
    local piece="$1" message="$2" log
    echo "stack.sh: error: $piece $message" >&2
    for log in "$LOG_DIR/$piece.log" "$LOG_DIR/$piece.console.log"; do
        [[ -s "$log" ]] || continue
        local from=$((${LOG_START[$log]:-0} + 1))
        [[ "$(stat -c %s "$log")" -ge "$from" ]] || continue
        echo "stack.sh: log $log (last 30 lines of this start):" >&2
        tail -c "+$from" "$log" | tail -n 30 >&2
    done
    exit 1
}

start_piece() {
    local piece="$1" step="$2" pid url started
    url="$(ready_url "$piece")"
    if pid="$(running_pid "$piece")"; then
        local note=""
        [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" != *"(deleted)"* ]] ||
            note=" (its binary was rebuilt since: 'stack.sh down && stack.sh up' to restart it)"
        say "[$step] $piece already running (pid $pid)$note"
        return 0
    fi
    rm -f "$(pid_file "$piece")"
    local port
    for port in $(ports "$piece"); do
        if port_in_use "$port"; then
            local who
            who="$(ss -ltnpH "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\(.*\)))/\1/p' | head -n 1)"
            die "$piece cannot start: 127.0.0.1:$port is already in use${who:+ by $who} (not a process this script started)"
        fi
    done
    # The collector's own log file is set in gateway.yaml; console output (startup errors, panics)
    # goes to a second file. The others log to stderr, all of it into the piece's log.
    local out="$LOG_DIR/$piece.log"
    [[ "$piece" != otelcol-b2b ]] || out="$LOG_DIR/$piece.console.log"
    local -a CMD
    command_of "$piece"
    mark_logs "$piece"
    started=$SECONDS
    # setsid: the piece outlives this script and the terminal; cwd is the repository root.
    (cd "$REPO" && exec setsid "${CMD[@]}" >>"$out" 2>&1 </dev/null) &
    pid=$!
    echo "$pid" >"$(pid_file "$piece")"
    local deadline=$((SECONDS + READY_TIMEOUT_S))
    while :; do
        is_alive "$pid" || show_logs_and_die "$piece" "exited during start-up"
        if probe "$url"; then
            break
        fi
        ((SECONDS < deadline)) || show_logs_and_die "$piece" "did not answer $url within ${READY_TIMEOUT_S}s (pid $pid left running; 'stack.sh down' stops it)"
        sleep 0.25
    done
    say "[$step] $piece ready on $url (pid $pid, $((SECONDS - started)) s, log $LOG_DIR/$piece.log)"
}

up() {
    build
    mkdir -p "$STACK_DIR" "$LOG_DIR" "$RUN_DIR" "$STACK_DIR/prometheus" "$STACK_DIR/alertmanager"
    export B2B_STACK_DIR="$STACK_DIR"
    # The local stack listens on loopback only, whatever a deployment's environment says.
    export B2B_LISTEN_HOST=127.0.0.1
    local i=0 n=${#PIECES[@]} piece
    for piece in "${PIECES[@]}"; do
        i=$((i + 1))
        if skipped "$piece"; then
            say "[$i/$n] $piece skipped (B2B_STACK_SKIP)"
            continue
        fi
        start_piece "$piece" "$i/$n"
    done
    say "stack is up: send OTLP to 127.0.0.1:4317 (gRPC) or http://127.0.0.1:4318;" \
        "Jaeger API http://127.0.0.1:16686/api/traces, Prometheus http://127.0.0.1:9090," \
        "Alertmanager http://127.0.0.1:9093; files and logs under $STACK_DIR"
}

stop_piece() {
    local piece="$1" pid
    if ! pid="$(running_pid "$piece")"; then
        rm -f "$(pid_file "$piece")"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    local polls=$((STOP_TIMEOUT_S * 5))
    while is_alive "$pid" && ((polls-- > 0)); do
        sleep 0.2
    done
    if is_alive "$pid"; then
        say "$piece (pid $pid) did not stop within ${STOP_TIMEOUT_S}s of SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pid_file "$piece")"
    say "stopped $piece (pid $pid)"
}

down() {
    local piece
    for piece in "${STOP_ORDER[@]}"; do
        stop_piece "$piece"
    done
    say "stack is down"
}

status() {
    local piece pid url all_up=0
    for piece in "${PIECES[@]}"; do
        url="$(ready_url "$piece")"
        if skipped "$piece"; then
            if probe "$url"; then
                printf '%-13s skipped (B2B_STACK_SKIP), something answers %s\n' "$piece" "$url"
            else
                printf '%-13s skipped (B2B_STACK_SKIP), nothing answers %s\n' "$piece" "$url"
                all_up=1
            fi
        elif pid="$(running_pid "$piece")"; then
            if probe "$url"; then
                printf '%-13s running (pid %s), answers %s\n' "$piece" "$pid" "$url"
            else
                printf '%-13s running (pid %s), NOT answering %s\n' "$piece" "$pid" "$url"
                all_up=1
            fi
        else
            printf '%-13s stopped\n' "$piece"
            all_up=1
        fi
    done
    echo "files and logs: $STACK_DIR"
    return "$all_up"
}

case "${1:-}" in
    build) build ;;
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 build|up|down|status" >&2; exit 2 ;;
esac
