#!/usr/bin/env bash
# What a user waits for and what the programs hold in memory: `loopsy --version` and
# `loopsy context get` against curl doing the same request (hyperfine), `loopsy start` until it
# returns, peak RSS of each program, loopsyd's RSS fresh, and the binaries' sizes. The binaries
# are the ones setup.sh builds (static Swift runtime, stripped), as the .deb ships them.
# Usage: bench/startup.sh [runs, default 200]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
runs="${1:-200}"

loopsy_apt $LOOPSY_BUILD_PACKAGES hyperfine curl time python3 bc util-linux
loopsy_swift
loopsy_bench_build

work="$(mktemp -d)"
# The second data dir's daemon (loopsy start below) goes too if the script stops half-way.
trap '[ -d "$work/second" ] && LOOPSY_DATA_DIR="$work/second" "$bin/loopsy" stop >/dev/null 2>&1
    [ -n "${fresh_pid:-}" ] && kill "$fresh_pid" 2>/dev/null; loopsy_bench_cleanup "$work"' EXIT

# loopsyd's RSS 2 s after it started on a new data dir (discovery and upkeep have begun), before
# any request, into rss_total and rss_file (the file-backed part), in KiB. It runs a copy of the binary that no
# other process maps (a running daemon built here would keep its pages cached), with none of it in
# the page cache as after a boot ("$1" = cold), or read through once first ("$1" = read), as an
# install, a backup or a checksum leaves it: this kernel (6.18) maps a whole large folio at a
# fault, and a file read through sits in large folios, so more of the binary becomes resident.
fresh_rss() {
    local copy="$work/fresh/loopsyd" resident
    rm -rf "$work/fresh"
    mkdir -p "$work/fresh"
    cp "$bin/loopsyd" "$copy"
    # Dirty pages are not dropped: written back first.
    python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$copy"
    resident="$(fincore --noheadings --bytes --output RES "$copy")"
    [ "$resident" -eq 0 ] || loopsy_die "$resident bytes of $copy stayed in the page cache after POSIX_FADV_DONTNEED"
    [ "$1" = read ] && cat "$copy" >/dev/null
    LOOPSY_DATA_DIR="$work/fresh/data" "$bin/loopsy" init --no-mcp >/dev/null
    LOOPSY_DATA_DIR="$work/fresh/data" "$copy" --port 0 --host 127.0.0.1 >/dev/null 2>"$work/fresh/err" &
    fresh_pid=$!
    for _ in $(seq 100); do [ -s "$work/fresh/data/daemon.port" ] && break; sleep 0.1; done
    [ -s "$work/fresh/data/daemon.port" ] || loopsy_die "loopsyd did not start: $(cat "$work/fresh/err")"
    sleep 2
    rss_total="$(awk '/^VmRSS/ {print $2}' "/proc/$fresh_pid/status")"
    rss_file="$(awk '/^RssFile/ {print $2}' "/proc/$fresh_pid/status")"
    kill "$fresh_pid"
    wait "$fresh_pid" 2>/dev/null || true
    fresh_pid=""
}
fresh_rss cold
fresh_total="$rss_total" fresh_file="$rss_file"
fresh_rss read
read_total="$rss_total" read_file="$rss_file"

loopsy_bench_daemon "$work"
key="$("$bin/loopsy" key show)"
"$bin/loopsy" context set plan "the plan is to ship on friday" >/dev/null
# curl reads the key from a file (-H @file), as loopsy does: no key in argv.
printf 'Authorization: Bearer %s\n' "$key" >"$work/auth"
chmod 600 "$work/auth"
url="http://127.0.0.1:$loopsyd_port/api/v1/context/plan"
curl -fsS -H @"$work/auth" "$url" >/dev/null

loopsy_log "hyperfine: $runs runs each"
hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/cli.json" \
    -n "loopsy --version" "$bin/loopsy --version" \
    -n "loopsy context get plan" "$bin/loopsy context get plan" \
    -n "curl GET /context/plan (reference)" "curl -fsS -o /dev/null -H @$work/auth $url" >/dev/null

# loopsy start until it returns, on a second data dir (stopped between runs, not timed). Its
# first start creates the database (migrations, WAL): timed alone, apart from the later ones.
export LOOPSY_DATA_DIR="$work/second"
"$bin/loopsy" init --no-mcp >/dev/null
sed -i 's/^  port: .*/  port: 0/' "$LOOPSY_DATA_DIR/config.yaml"
first_start="$(python3 -c 'import subprocess, sys, time
t = time.monotonic(); subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(f"{(time.monotonic() - t) * 1000:.1f}")' "$bin/loopsy" start)"
hyperfine -N --runs 30 --export-json "$work/start.json" --prepare "$bin/loopsy stop" \
    -n "loopsy start" "$bin/loopsy start" >/dev/null
"$bin/loopsy" stop >/dev/null
export LOOPSY_DATA_DIR="$work/loopsy"

peak() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
version_rss="$(peak "$bin/loopsy" --version)"
get_rss="$(peak "$bin/loopsy" context get plan)"
curl_rss="$(peak curl -fsS -o /dev/null -H @"$work/auth" "$url")"
# loopsy-mcp as Claude Code runs it: initialize, list the tools, end of input.
mcp_rss="$( { printf '%s\n' \
    '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}' \
    '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
    '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'; sleep 0.5; } | peak "$bin/loopsy-mcp")"
# Those of hyperfine's runs and warm-ups of context get and curl, and a few more.
requests=$((2 * (runs + 10) + 4))
daemon_rss="$(awk '/VmRSS/ {print $2}' /proc/$loopsyd_pid/status)"
daemon_file="$(awk '/RssFile/ {print $2}' /proc/$loopsyd_pid/status)"

python3 - "$work/cli.json" "$work/start.json" <<PY
import json, sys
results = {r["command"]: r for f in sys.argv[1:] for r in json.load(open(f))["results"]}
print(f"| {'command':<36} | {'mean ms':>8} | {'min ms':>7} | {'peak RSS':>9} |")
print(f"|{'-'*38}|{'-'*10}|{'-'*9}|{'-'*11}|")
rss = {"loopsy --version": $version_rss, "loopsy context get plan": $get_rss,
       "curl GET /context/plan (reference)": $curl_rss}
for name, r in results.items():
    peak = f"{rss[name] / 1024:.1f} MiB" if name in rss else "-"
    print(f"| {name:<36} | {r['mean']*1000:8.2f} | {r['min']*1000:7.2f} | {peak:>9} |")
get, curl = results["loopsy context get plan"]["mean"], results["curl GET /context/plan (reference)"]["mean"]
print(f"\nloopsy context get / curl: {get / curl:.2f}")
PY
echo "loopsy start, the first of a data dir (it creates the database): $first_start ms"
echo
printf '| %-34s | %10s |\n' "memory and size" "MiB"
printf '|%s|%s|\n' "------------------------------------" "------------"
printf '| %-34s | %10.1f |\n' "loopsyd RSS, fresh (cold cache)" "$(echo "$fresh_total / 1024" | bc -l)"
printf '| %-34s | %10.1f |\n' "  of which file-backed" "$(echo "$fresh_file / 1024" | bc -l)"
printf '| %-34s | %10.1f |\n' "loopsyd RSS, fresh (binary read)" "$(echo "$read_total / 1024" | bc -l)"
printf '| %-34s | %10.1f |\n' "  of which file-backed" "$(echo "$read_file / 1024" | bc -l)"
printf '| %-34s | %10.1f |\n' "loopsyd RSS after $requests requests" "$(echo "$daemon_rss / 1024" | bc -l)"
printf '| %-34s | %10.1f |\n' "  of which file-backed" "$(echo "$daemon_file / 1024" | bc -l)"
printf '| %-34s | %10.1f |\n' "loopsy-mcp peak RSS (init + list)" "$(echo "$mcp_rss / 1024" | bc -l)"
for program in loopsyd loopsy loopsy-mcp; do
    printf '| %-34s | %10.1f |\n' "$program binary" "$(echo "$(stat -c %s "$bin/$program") / 1048576" | bc -l)"
done

mean() { loopsy_bench_ms "$1" "$2" mean; }
# KiB (what /proc and time report) or bytes as MiB, and as MB (10^6 bytes, the goals' unit).
kib_mib() { printf '%.1f MiB' "$(echo "$1 / 1024" | bc -l)"; }
kib_both() { printf '%.1f MiB (%.2f MB)' "$(echo "$1 / 1024" | bc -l)" "$(echo "$1 * 1024 / 1000000" | bc -l)"; }
daemon_size="$(stat -c %s "$bin/loopsyd")"
loopsy_bench_summary "loopsy --version" "$(mean "$work/cli.json" "loopsy --version") ms, $(kib_both "$version_rss")" "curl whole request $(mean "$work/cli.json" "curl GET /context/plan (reference)") ms" "≤ 4 ms, ≤ 8 MB"
loopsy_bench_summary "loopsy context get k" "$(mean "$work/cli.json" "loopsy context get plan") ms" "curl $(mean "$work/cli.json" "curl GET /context/plan (reference)") ms" "≤ 1.5x curl"
loopsy_bench_summary "loopsy start until it returns" \
    "$(loopsy_bench_ms "$work/start.json" "loopsy start") ms median, $(mean "$work/start.json" "loopsy start") mean" \
    "first start of a data dir (creates the database) $first_start ms" "≤ 30 ms"
loopsy_bench_summary "loopsyd RSS fresh" "$(kib_both "$fresh_total") cold cache, $(kib_both "$read_total") binary read first" \
    "after $requests requests $(kib_mib "$daemon_rss")" "≤ 15 MB"
loopsy_bench_summary "loopsyd binary" "$(kib_both "$(echo "$daemon_size / 1024" | bc -l)")" "-" "≤ 15 MB"
loopsy_bench_summary "loopsy-mcp peak RSS" "$(kib_both "$mcp_rss")" "loopsy $(kib_mib "$get_rss")" "≤ 25 MB"
