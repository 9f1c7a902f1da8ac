#!/usr/bin/env bash
# HTTP throughput of loopsyd on loopback, against nginx serving a small static file in the same
# run: wrk on /api/v1/health, on an authenticated GET /api/v1/context/{key}, and on nginx in two
# set-ups (sendfile on, the default advice; and tuned for small files: sendfile off, open file
# cache), the better of which is the reference.
# Usage: bench/http.sh [seconds per run, default 10] [connections, default 32]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
duration="${1:-10}"
connections="${2:-32}"

loopsy_apt $LOOPSY_BUILD_PACKAGES wrk nginx-light curl
loopsy_swift
loopsy_bench_build

work="$(mktemp -d)"
chmod 755 "$work"
trap 'loopsy_bench_cleanup "$work"' EXIT

loopsy_bench_daemon "$work"
port="$loopsyd_port"
key="$("$bin/loopsy" key show)"
curl -fsS -X PUT -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d '{"value":"the plan is to ship on friday"}' "http://127.0.0.1:$port/api/v1/context/plan" >"$work/entry.json"

# nginx serving a file of the same size as the context response.
mkdir -p "$work/www"
cp "$work/entry.json" "$work/www/entry.json"
nginx_port="$(loopsy_free_port)"
loopsy_bench_nginx "$work" "$work/www" "$nginx_port"
curl -fsS "http://127.0.0.1:$nginx_port/entry.json" >/dev/null
small_port="$(loopsy_free_port)"
loopsy_bench_nginx "$work" "$work/www" "$small_port" small
curl -fsS "http://127.0.0.1:$small_port/entry.json" >/dev/null

run_wrk() { # name url [header]
    local name="$1" url="$2" header="${3:-X-Bench: 1}" file
    file="$work/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_')"
    wrk -t2 -c"$connections" -d"${duration}s" --latency -H "$header" "$url" >"$file.txt"
    local rps avg p99 errors
    rps="$(awk '/Requests\/sec/ {print $2}' "$file.txt")"
    avg="$(awk '/^    Latency/ {print $2}' "$file.txt")"
    p99="$(awk '/^ +99%/ {print $2}' "$file.txt")"
    errors="$(awk '/Non-2xx/ {print $NF}' "$file.txt")"
    printf '| %-34s | %12s | %10s | %10s | %8s |\n' "$name" "$rps" "$avg" "$p99" "${errors:-0}"
    echo "$rps" >"$file.rps"
}

loopsy_log "wrk: ${duration}s per run, $connections connections, 2 threads, $(nproc) cores"
printf '| %-34s | %12s | %10s | %10s | %8s |\n' "target" "requests/s" "latency" "p99" "non-2xx"
printf '|%s|%s|%s|%s|%s|\n' "------------------------------------" "--------------" "------------" "------------" "----------"
run_wrk "nginx, sendfile on" "http://127.0.0.1:$nginx_port/entry.json"
run_wrk "nginx, tuned for small files" "http://127.0.0.1:$small_port/entry.json"
run_wrk "loopsyd GET /health" "http://127.0.0.1:$port/api/v1/health"
run_wrk "loopsyd GET /context/plan (auth)" "http://127.0.0.1:$port/api/v1/context/plan" "Authorization: Bearer $key"
reference="$(cat "$work/nginx__sendfile_on.rps" "$work/nginx__tuned_for_small_files.rps" | sort -g | tail -1)"
context="$(cat "$work/loopsyd_GET__context_plan__auth_.rps")"
echo
echo "authenticated context GET / best nginx: $(awk -v a="$context" -v b="$reference" 'BEGIN {printf "%.2f", a / b}')"
echo "loopsyd peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$loopsyd_pid/status)"
loopsy_bench_summary "authenticated GET /context/{key}, wrk -c$connections" "$(printf '%.0f' "$context") req/s" \
    "best nginx $(printf '%.0f' "$reference") req/s" "≥ 1.0x (now $(awk -v a="$context" -v b="$reference" 'BEGIN {printf "%.2f", a / b}')x)"
loopsy_bench_summary "loopsyd peak RSS under wrk" "$(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' /proc/$loopsyd_pid/status)" "-" "≤ 32 MB"
