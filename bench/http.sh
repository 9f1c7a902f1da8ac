#!/usr/bin/env bash
# HTTP throughput of loopsyd on loopback, against nginx serving a small static file in the same
# run: wrk on /api/v1/health, on an authenticated GET /api/v1/context/{key}, and on nginx in two
# set-ups (sendfile on, the default advice; and tuned for small files: sendfile off, open file
# cache), the better of which is the reference. A third target is the floor: libmicrohttpd with
# loopsyd's flags answering every request with the same body and headers and no work of its own
# (bench/mhd-floor.c), so the gap to it is what loopsyd's own code costs. Each row also shows the
# CPU time the server and wrk spent per request (both share the machine's cores).
# Usage: bench/http.sh [seconds per run, default 10] [connections, default 32]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
duration="${1:-10}"
connections="${2:-32}"

loopsy_apt $LOOPSY_BUILD_PACKAGES wrk nginx-light curl procps
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
nginx_pids() { # the master of nginx "$1" and its workers
    local master
    master="$(cat "$work/$1.pid")"
    echo "$master $(pgrep -P "$master" | tr '\n' ' ')"
}

# The floor: as many threads and as much memory per connection as loopsyd has (its defaults:
# threads 0, one per core and at least 2; connectionMemoryKiB 16), built with the toolchain's
# clang against the same libmicrohttpd.
clang -O2 -o "$work/mhd-floor" bench/mhd-floor.c $(pkg-config --cflags --libs libmicrohttpd)
floor_port="$(loopsy_free_port)"
floor_threads="${THREADS:-$(( $(nproc) > 2 ? $(nproc) : 2 ))}"
"$work/mhd-floor" "$floor_port" "$floor_threads" $((16 << 10)) "$work/entry.json" &
floor_pid=$!
for _ in $(seq 50); do
    curl -fsS -H "Authorization: Bearer x" "http://127.0.0.1:$floor_port/api/v1/context/plan" >/dev/null 2>&1 && break
    sleep 0.1
done
cmp -s <(curl -fsS -H "Authorization: Bearer x" "http://127.0.0.1:$floor_port/api/v1/context/plan") "$work/entry.json" ||
    loopsy_die "the libmicrohttpd floor server did not answer with the context entry"

hz="$(getconf CLK_TCK)"
cpu_ticks() { # "user system" ticks of the processes "$@", together
    local user=0 system=0 pid
    for pid in "$@"; do
        user=$((user + $(awk '{print $14}' "/proc/$pid/stat")))
        system=$((system + $(awk '{print $15}' "/proc/$pid/stat")))
    done
    echo "$user $system"
}
run_wrk() { # name url header server-pid...
    local name="$1" url="$2" header="$3" file
    shift 3
    file="$work/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_')"
    local before after wrk_cpu
    before="$(cpu_ticks "$@")"
    # bash's time keyword: wrk's own user + system seconds.
    wrk_cpu="$( { TIMEFORMAT='%3U %3S'; time wrk -t2 -c"$connections" -d"${duration}s" --latency -H "$header" "$url" \
        >"$file.txt"; } 2>&1 )"
    after="$(cpu_ticks "$@")"
    local rps avg p99 errors total
    rps="$(awk '/Requests\/sec/ {print $2}' "$file.txt")"
    avg="$(awk '/^    Latency/ {print $2}' "$file.txt")"
    p99="$(awk '/^ +99%/ {print $2}' "$file.txt")"
    errors="$(awk '/Non-2xx/ {print $NF}' "$file.txt")"
    total="$(awk '/requests in/ {print $1}' "$file.txt")"
    local server_us wrk_us
    # The server's CPU per request, and of it the part in its own code (user) apart from the
    # kernel's (system: the socket calls, about the same for every server here).
    server_us="$(awk -v a="$before" -v b="$after" -v hz="$hz" -v n="$total" 'BEGIN {split(a, x, " "); split(b, y, " ")
        printf "%.1f (user %.1f)", (y[1] + y[2] - x[1] - x[2]) / hz * 1e6 / n, (y[1] - x[1]) / hz * 1e6 / n}')"
    wrk_us="$(awk -v cpu="$wrk_cpu" -v n="$total" 'BEGIN {split(cpu, c, " "); printf "%.1f", (c[1] + c[2]) * 1e6 / n}')"
    printf '| %-34s | %12s | %10s | %10s | %8s | %18s | %10s |\n' "$name" "$rps" "$avg" "$p99" "${errors:-0}" \
        "$server_us" "$wrk_us"
    echo "$rps" >"$file.rps"
    awk -v a="$before" -v b="$after" -v hz="$hz" -v n="$total" \
        'BEGIN {split(a, x, " "); split(b, y, " "); printf "%.2f\n", (y[1] - x[1]) / hz * 1e6 / n}' >"$file.user"
}

loopsy_log "wrk: ${duration}s per run, $connections connections, 2 threads, $(nproc) cores"
printf '| %-34s | %12s | %10s | %10s | %8s | %18s | %10s |\n' "target" "requests/s" "latency" "p99" "non-2xx" \
    "server CPU µs/req" "wrk µs/req"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "------------------------------------" "--------------" "------------" "------------" \
    "----------" "--------------------" "------------"
run_wrk "nginx, sendfile on" "http://127.0.0.1:$nginx_port/entry.json" "X-Bench: 1" $(nginx_pids nginx)
run_wrk "nginx, tuned for small files" "http://127.0.0.1:$small_port/entry.json" "X-Bench: 1" $(nginx_pids nginx-small)
run_wrk "libmicrohttpd floor (mhd-floor.c)" "http://127.0.0.1:$floor_port/api/v1/context/plan" \
    "Authorization: Bearer $key" "$floor_pid"
run_wrk "loopsyd GET /health" "http://127.0.0.1:$port/api/v1/health" "X-Bench: 1" "$loopsyd_pid"
run_wrk "loopsyd GET /context/plan (auth)" "http://127.0.0.1:$port/api/v1/context/plan" "Authorization: Bearer $key" \
    "$loopsyd_pid"
kill "$floor_pid"
reference="$(cat "$work/nginx__sendfile_on.rps" "$work/nginx__tuned_for_small_files.rps" | sort -g | tail -1)"
context="$(cat "$work/loopsyd_GET__context_plan__auth_.rps")"
floor="$(cat "$work/libmicrohttpd_floor__mhd_floor_c_.rps")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo
echo "authenticated context GET / best nginx: $(ratio "$context" "$reference")"
echo "libmicrohttpd floor / best nginx: $(ratio "$floor" "$reference") (the most loopsyd could reach on libmicrohttpd)"
echo "loopsyd's own code per authenticated GET: $(awk -v a="$(cat "$work/loopsyd_GET__context_plan__auth_.user")" \
    -v b="$(cat "$work/libmicrohttpd_floor__mhd_floor_c_.user")" 'BEGIN {printf "%.1f", a - b}') µs of user CPU (its user time less the floor's)"
echo "loopsyd peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$loopsyd_pid/status)"
loopsy_bench_summary "authenticated GET /context/{key}, wrk -c$connections" "$(printf '%.0f' "$context") req/s" \
    "best nginx $(printf '%.0f' "$reference") req/s; libmicrohttpd floor $(printf '%.0f' "$floor") ($(ratio "$floor" "$reference")x)" \
    "≥ 1.0x (now $(ratio "$context" "$reference")x)"
loopsy_bench_summary "loopsyd peak RSS under wrk" "$(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' /proc/$loopsyd_pid/status)" "-" "≤ 32 MB"
