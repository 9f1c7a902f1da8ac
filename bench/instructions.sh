#!/usr/bin/env bash
# CPU work per request counted in instructions (valgrind's callgrind), which, unlike requests
# per second on a shared VM, does not move with the host's load: loopsyd's authenticated
# GET /context/{key} against nginx serving a file of the same size (tuned for small files, one
# worker, the same client), and loopsyd's PUT of a new key (one connection, so each write is a
# commit of its own). Requests go one at a time over one keep-alive connection; the counts
# cover every thread of the server between the first and the last request.
# memset is counted apart: valgrind counts `rep stosb` once per byte, which the CPU does not
# (libmicrohttpd clears its 32 KiB connection pool after each request that way).
# Usage: bench/instructions.sh [requests, default 2000]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
requests="${1:-2000}"

loopsy_apt $LOOPSY_BUILD_PACKAGES valgrind nginx-light curl python3
loopsy_swift
loopsy_bench_build

work="$(mktemp -d)"
chmod 755 "$work"
cleanup() {
    for pid in ${valgrind_pids:-}; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
valgrind_pids=""

# One keep-alive connection, one request at a time; every answer must be a 200.
cat >"$work/load.py" <<'PY'
import http.client, json, sys
port, path, count, method = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
headers = {"Authorization": "Bearer " + sys.argv[5]} if len(sys.argv) > 5 else {}
body = json.dumps({"value": "the plan is to ship on friday"})
connection = http.client.HTTPConnection("127.0.0.1", port)
for index in range(count):
    if method == "PUT":
        connection.request("PUT", f"{path}-{index}", body=body,
                           headers=dict(headers, **{"Content-Type": "application/json"}))
    else:
        connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        sys.exit(f"{method} {path}: {response.status}")
PY

# Instructions the process $1 ran while "${@:2}" sent its requests: total and memset's part.
count_instructions() {
    local pid="$1" out
    shift
    callgrind_control -z "$pid" >/dev/null 2>&1
    "$@"
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 0.5
    out="$(ls -t "$work"/callgrind.out."$pid".* | head -1)"
    callgrind_annotate --threshold=100 "$out" 2>/dev/null |
        awk '/PROGRAM TOTALS/ {gsub(",", "", $1); total = $1} /memset/ {gsub(",", "", $1); memset += $1}
             END {print total + 0, memset + 0}'
}

wait_for_port() { # file
    for _ in $(seq 600); do [ -s "$1" ] && return 0; sleep 0.1; done
    loopsy_die "no port in $1"
}

export LOOPSY_DATA_DIR="$work/loopsy"
"$bin/loopsy" init --no-mcp >/dev/null
sed -i -e 's/^  context: 60$/  context: 0/' "$LOOPSY_DATA_DIR/config.yaml"
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out.%p" \
    "$bin/loopsyd" --port 0 --host 127.0.0.1 >"$work/loopsyd.out" 2>"$work/loopsyd.err" &
loopsyd_pid=$!
valgrind_pids="$loopsyd_pid"
wait_for_port "$LOOPSY_DATA_DIR/daemon.port"
port="$(cat "$LOOPSY_DATA_DIR/daemon.port")"
key="$("$bin/loopsy" key show)"
curl -fsS -X PUT -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"value":"the plan is to ship on friday"}' "http://127.0.0.1:$port/api/v1/context/plan" >"$work/entry.json"
# Warm-up: caches filled, first-use paths taken.
python3 "$work/load.py" "$port" /api/v1/context/plan 200 GET "$key"
python3 "$work/load.py" "$port" /api/v1/context/warm 200 PUT "$key"
read -r get_total get_memset < <(count_instructions "$loopsyd_pid" \
    python3 "$work/load.py" "$port" /api/v1/context/plan "$requests" GET "$key")
read -r put_total put_memset < <(count_instructions "$loopsyd_pid" \
    python3 "$work/load.py" "$port" /api/v1/context/new "$requests" PUT "$key")

mkdir -p "$work/www"
cp "$work/entry.json" "$work/www/entry.json"
nginx_port="$(loopsy_free_port)"
cat >"$work/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile off; tcp_nodelay on; etag off; server_tokens off;
    open_file_cache max=1024 inactive=300s; open_file_cache_valid 300s; open_file_cache_errors on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
CONF
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out.%p" nginx -c "$work/nginx.conf" \
    >"$work/nginx.out" 2>&1 &
nginx_pid=$!
valgrind_pids="$loopsyd_pid $nginx_pid"
for _ in $(seq 300); do curl -fsS "http://127.0.0.1:$nginx_port/entry.json" >/dev/null 2>&1 && break; sleep 0.1; done
python3 "$work/load.py" "$nginx_port" /entry.json 200 GET
read -r nginx_total nginx_memset < <(count_instructions "$nginx_pid" \
    python3 "$work/load.py" "$nginx_port" /entry.json "$requests" GET)

per() { echo $(( $1 / requests )); }
loopsy_log "$requests requests of each kind, one connection; instructions per request"
printf '| %-40s | %12s | %12s | %14s |\n' "request" "instructions" "of it memset" "without memset"
printf '|%s|%s|%s|%s|\n' "------------------------------------------" "--------------" "--------------" "----------------"
printf '| %-40s | %12s | %12s | %14s |\n' "nginx GET of a file of the same size" "$(per "$nginx_total")" \
    "$(per "$nginx_memset")" "$(per $((nginx_total - nginx_memset)))"
printf '| %-40s | %12s | %12s | %14s |\n' "loopsyd GET /context/{key} (auth)" "$(per "$get_total")" \
    "$(per "$get_memset")" "$(per $((get_total - get_memset)))"
printf '| %-40s | %12s | %12s | %14s |\n' "loopsyd PUT /context/{new key} (auth)" "$(per "$put_total")" \
    "$(per "$put_memset")" "$(per $((put_total - put_memset)))"
ratio="$(awk -v a=$((get_total - get_memset)) -v b=$((nginx_total - nginx_memset)) 'BEGIN {printf "%.1f", a / b}')"
echo
echo "loopsyd GET / nginx GET, without memset: ${ratio}x the instructions"
loopsy_bench_summary "instructions per authenticated GET (callgrind)" \
    "$(per $((get_total - get_memset)))" "nginx $(per $((nginx_total - nginx_memset)))" "- (now ${ratio}x)"
loopsy_bench_summary "instructions per context PUT, one connection" "$(per $((put_total - put_memset)))" "-" "-"
