#!/usr/bin/env bash
# Adversarial phase: a release loopsyd on lab host 1 (a network namespace) while host 2 holds
# 1100 slowloris connections and host 3 sends 20000 unauthenticated requests with 8 KB paths and
# 40 fake mDNS adverts, and a local client keeps pulling a FIFO; then with 500 unreachable peers. The owner's
# latencies (/health, `loopsy exec local true`, `loopsy context set`) and the daemon's RSS, fds,
# threads and database size are printed before, during and after. Needs root (namespaces).
# Usage: bash bench/adversarial.sh [ATTACK_SECONDS]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
seconds="${1:-30}"
loopsy_apt $LOOPSY_BUILD_PACKAGES iproute2 dbus-daemon dbus-bin avahi-daemon avahi-utils curl procps sqlite3 python3
loopsy_swift
if [ -z "${bin:-}" ]; then
    loopsy_bench_build
fi
work="$(mktemp -d)"
lab="a$(head -c 2 /dev/urandom | od -An -tx1 | tr -d ' \n')"
in_host() { bash Tests/Support/lab.sh exec "$lab" "$@"; }
cleanup() {
    [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null
    pkill -f "attack.py" 2>/dev/null || true
    pkill -9 -f "avahi-publish -s fake-" 2>/dev/null || true
    bash Tests/Support/lab.sh down "$lab" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
bash Tests/Support/lab.sh up "$lab" 3 >/dev/null
export LOOPSY_DATA_DIR="$work/loopsy"
"$bin/loopsy" init --no-mcp >/dev/null
sed -i -e 's/^  execute: 30$/  execute: 0/' -e 's/^  context: 60$/  context: 0/' -e 's/^  transfer: 10$/  transfer: 0/' \
    -e "s|allowedPaths: \\[\"~\"\\]|allowedPaths: [\"$work/files\"]|" \
    -e 's/^  enabled: true            # serve peers/  enabled: false           # serve peers/' "$LOOPSY_DATA_DIR/config.yaml"
mkdir -p "$work/files" && mkfifo "$work/files/pipe"
key="$(awk '/apiKey:/ {print $2}' "$LOOPSY_DATA_DIR/config.yaml")"
printf 'Authorization: Bearer %s\nContent-Type: application/json\n' "$key" >"$work/headers"
chmod 600 "$work/headers"

start_daemon() {
    rm -f "$LOOPSY_DATA_DIR/daemon.port"
    in_host 1 "$bin/loopsyd" --port 19532 --host 0.0.0.0 >>"$work/loopsyd.out" 2>>"$work/loopsyd.err" &
    daemon=$!
    for _ in $(seq 100); do [ -s "$LOOPSY_DATA_DIR/daemon.port" ] && break; sleep 0.1; done
    [ -s "$LOOPSY_DATA_DIR/daemon.port" ] || loopsy_die "loopsyd did not start: $(tail -5 "$work/loopsyd.err")"
    pid="$(cat "$LOOPSY_DATA_DIR/daemon.pid")"
}
stop_daemon() {
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$daemon" 2>/dev/null || true
    daemon=""
}

# Milliseconds of one run of a command in host 1.
ms() { local t0 t1; t0=$(date +%s%N); in_host 1 "$@" >/dev/null 2>&1 || echo "FAILED: $*" >&2; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
# "median / max" of N runs.
stats() { local n=$1; shift; for _ in $(seq "$n"); do ms "$@"; done | sort -n | awk '{a[NR]=$1} END {printf "%d / %d", a[int((NR+1)/2)], a[NR]}'; }
db_bytes() { du -cb "$LOOPSY_DATA_DIR"/loopsy.db* 2>/dev/null | tail -1 | cut -f1; }
resources() { echo "$(awk '/VmRSS/ {print $2}' /proc/"$pid"/status) KiB, $(ls /proc/"$pid"/fd | wc -l) fds, $(awk '/Threads/ {print $2}' /proc/"$pid"/status) threads, $(( $(db_bytes) / 1024 )) KiB db"; }
measure() {
    printf '| %s | %s | %s | %s | %s |\n' "$1" \
        "$(stats 20 curl -s -o /dev/null -m 5 http://127.0.0.1:19532/api/v1/health)" \
        "$(stats 10 "$bin/loopsy" exec local true)" \
        "$(stats 10 "$bin/loopsy" context set bench value)" "$(resources)"
}

start_daemon
echo "| phase | /health ms (median / max) | exec local true ms | context set ms | loopsyd |"
echo "|---|---|---|---|---|"
measure "idle"
in_host 2 python3 Tests/Support/attack.py slowloris 10.77.0.1 19532 1100 1 "$seconds" >"$work/slowloris.json" &
in_host 3 python3 Tests/Support/attack.py flood 10.77.0.1 19532 20000 8192 >"$work/flood.json" &
in_host 3 python3 Tests/Support/attack.py mdns 40 "$seconds" 19533 >/dev/null &
in_host 1 bash -c "end=\$((SECONDS + $seconds)); while [ \$SECONDS -lt \$end ]; do
    curl -s -o /dev/null -m 3 -H @$work/headers -d '{\"sourcePath\":\"$work/files/pipe\"}' http://127.0.0.1:19532/api/v1/transfer/pull
    curl -s -o /dev/null -m 3 -H @$work/headers -d '{\"path\":\"$work/files/pipe\"}' http://127.0.0.1:19532/api/v1/transfer/checksum
done" &
sleep 3
measure "under attack"
sleep 5
measure "under attack (+5 s)"
wait_attackers() { for job in $(jobs -p); do [ "$job" = "$daemon" ] || wait "$job" 2>/dev/null || true; done; }
wait_attackers
measure "after"
peers=$(in_host 1 "$bin/loopsy" peers list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["peers"]))')

# 500 peers that never answer: a listener that accepts nothing (its backlog fills, then SYNs are dropped).
stop_daemon
in_host 1 python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',9999)); s.listen(1); time.sleep($seconds + 30)" &
now=$(($(date +%s) * 1000))
python3 - "$LOOPSY_DATA_DIR/loopsy.db" "$now" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executemany("INSERT OR IGNORE INTO peers (node_id, name, address, port, source, created_at, updated_at) "
               "VALUES (?, ?, '127.0.0.1', 9999, 'manual', ?, ?)",
               [("%032x" % (0xdead0000 + i), f"unreachable-{i}", int(sys.argv[2]), int(sys.argv[2])) for i in range(500)])
db.commit()
PY
start_daemon
sleep 8
measure "500 unreachable peers"
echo
echo "slowloris from one host: $(cat "$work/slowloris.json")"
echo "anonymous flood: $(cat "$work/flood.json")"
echo "peers learned from 40 fake adverts: $peers (discovery.maxUnpairedPerAddress)"
echo "database: $(( $(db_bytes) / 1024 )) KiB after all phases"
