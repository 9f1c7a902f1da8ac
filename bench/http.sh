#!/usr/bin/env bash
# HTTP throughput of loopsyd on loopback, against nginx serving a small static file in the same
# run: wrk on /api/v1/health, on an authenticated GET /api/v1/context/{key}, and on nginx in two
# set-ups (sendfile on, the default advice; and tuned for small files: sendfile off, open file
# cache), the better of which is the reference. A third target is the floor: libmicrohttpd with
# loopsyd's flags answering every request with the same body and headers and no work of its own
# (bench/mhd-floor.c), so the gap to it is what loopsyd's own code costs. Each row also shows the
# CPU time the server and wrk spent per request (both share the machine's cores).
# The targets take turns in short rounds, so that a change in the host's load (it moves requests
# per second by 15% and more within minutes) falls on all of them: each row is the median round,
# and the ratios are the median of each round's ratio.
# Usage: bench/http.sh [seconds per target, default 10] [connections, default 32] [rounds, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
duration="${1:-10}"
connections="${2:-32}"
rounds="${3:-5}"
for number in "$duration" "$connections" "$rounds"; do
    [[ "$number" =~ ^[1-9][0-9]{0,3}$ ]] || loopsy_die "'$number' is not a count from 1 to 9999 (usage: bench/http.sh [seconds] [connections] [rounds])"
done
round_seconds=$(( duration / rounds > 0 ? duration / rounds : 1 ))

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
# One round of one target: wrk for round_seconds, appending to "$work/<name>.rounds" a line
# "requests/s latency p99 non-2xx requests server-user-ticks server-system-ticks wrk-seconds".
run_wrk() { # name url header server-pid...
    local name="$1" url="$2" header="$3" file
    shift 3
    file="$work/$(echo "$name" | tr -c 'a-zA-Z0-9\n' '_')"
    local before after wrk_cpu
    before="$(cpu_ticks "$@")"
    # bash's time keyword: wrk's own user + system seconds.
    wrk_cpu="$( { TIMEFORMAT='%3U %3S'; time wrk -t2 -c"$connections" -d"${round_seconds}s" --latency -H "$header" "$url" \
        >"$file.txt"; } 2>&1 )"
    after="$(cpu_ticks "$@")"
    awk -v a="$before" -v b="$after" -v cpu="$wrk_cpu" '
        /Requests\/sec/ {rps = $2} /^    Latency/ {avg = $2} /^ +99%/ {p99 = $2} /Non-2xx/ {errors = $NF}
        /requests in/ {total = $1}
        END {split(a, x, " "); split(b, y, " "); split(cpu, c, " ")
             printf "%s %s %s %d %d %d %d %.3f\n", rps, avg, p99, errors, total, y[1] - x[1], y[2] - x[2], c[1] + c[2]}' \
        "$file.txt" >>"$file.rounds"
}

names=("nginx, sendfile on" "nginx, tuned for small files" "libmicrohttpd floor (mhd-floor.c)" "loopsyd GET /health"
    "loopsyd GET /context/plan (auth)")
round() {
    run_wrk "${names[0]}" "http://127.0.0.1:$nginx_port/entry.json" "X-Bench: 1" $(nginx_pids nginx)
    run_wrk "${names[1]}" "http://127.0.0.1:$small_port/entry.json" "X-Bench: 1" $(nginx_pids nginx-small)
    run_wrk "${names[2]}" "http://127.0.0.1:$floor_port/api/v1/context/plan" "Authorization: Bearer $key" \
        "$floor_pid"
    run_wrk "${names[3]}" "http://127.0.0.1:$port/api/v1/health" "X-Bench: 1" "$loopsyd_pid"
    run_wrk "${names[4]}" "http://127.0.0.1:$port/api/v1/context/plan" "Authorization: Bearer $key" \
        "$loopsyd_pid"
}
rounds_file() { echo "$work/$(echo "$1" | tr -c 'a-zA-Z0-9\n' '_').rounds"; }

loopsy_log "wrk: $rounds rounds of ${round_seconds}s per target, $connections connections, 2 threads, $(nproc) cores"
for ((r = 1; r <= rounds; r++)); do round; done
kill "$floor_pid"

echo "requests/s in each round:"
for name in "${names[@]}"; do
    printf '  %-34s %s\n' "$name" "$(awk '{printf "%8.0f", $1}' "$(rounds_file "$name")")"
done
echo
printf '| %-34s | %12s | %10s | %10s | %8s | %18s | %10s |\n' "target (median round)" "requests/s" "latency" "p99" \
    "non-2xx" "server CPU µs/req" "wrk µs/req"
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "------------------------------------" "--------------" "------------" "------------" \
    "----------" "--------------------" "------------"
# CPU per request over all rounds: the server's (and its user part, its own code) and wrk's.
for name in "${names[@]}"; do
    sort -g "$(rounds_file "$name")" | awk -v name="$name" -v hz="$hz" -v n="$rounds" '
        {rps[NR] = $1; avg[NR] = $2; p99[NR] = $3; errors += $4; total += $5; user += $6; kernel += $7; wrk += $8}
        END {m = int((n + 1) / 2)
             printf "| %-34s | %12.0f | %10s | %10s | %8d | %18s | %10.1f |\n", name, rps[m], avg[m], p99[m], errors,
                 sprintf("%.1f (user %.1f)", (user + kernel) / hz * 1e6 / total, user / hz * 1e6 / total), wrk * 1e6 / total}'
done
# Median of the rounds' ratios: "$1" over the better of the two nginx set-ups in the same round.
round_ratio() {
    paste -d' ' <(cut -d' ' -f1 "$(rounds_file "$1")") <(cut -d' ' -f1 "$(rounds_file "${names[0]}")") \
        <(cut -d' ' -f1 "$(rounds_file "${names[1]}")") |
        awk '{print $1 / ($2 > $3 ? $2 : $3)}' | sort -g | awk '{r[NR] = $1} END {printf "%.2f", r[int((NR + 1) / 2)]}'
}
median_rps() { sort -g "$(rounds_file "$1")" | awk '{r[NR] = $1} END {printf "%.0f", r[int((NR + 1) / 2)]}'; }
best_nginx() { # the better nginx set-up's median round
    local a b
    a="$(median_rps "${names[0]}")" b="$(median_rps "${names[1]}")"
    echo $((a > b ? a : b))
}
user_us() { awk -v hz="$hz" '{user += $6; total += $5} END {printf "%.2f", user / hz * 1e6 / total}' "$(rounds_file "$1")"; }
context_ratio="$(round_ratio "${names[4]}")"
floor_ratio="$(round_ratio "${names[2]}")"
echo
echo "authenticated context GET / best nginx: $context_ratio (median of the rounds' ratios)"
echo "libmicrohttpd floor / best nginx: $floor_ratio (the most loopsyd could reach on libmicrohttpd)"
echo "loopsyd's own code per authenticated GET: $(awk -v a="$(user_us "${names[4]}")" -v b="$(user_us "${names[2]}")" \
    'BEGIN {printf "%.1f", a - b}') µs of user CPU (its user time less the floor's)"
echo "loopsyd peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$loopsyd_pid/status)"
context="$(median_rps "${names[4]}")" floor="$(median_rps "${names[2]}")" reference="$(best_nginx)"
loopsy_bench_summary "authenticated GET /context/{key}, wrk -c$connections, $rounds rounds" "$context req/s (median round)" \
    "best nginx $reference req/s; libmicrohttpd floor $floor (${floor_ratio}x)" \
    "≥ 1.0x (now ${context_ratio}x, median of the rounds' ratios)"
loopsy_bench_summary "loopsyd peak RSS under wrk" "$(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' /proc/$loopsyd_pid/status)" "-" "≤ 32 MB"
