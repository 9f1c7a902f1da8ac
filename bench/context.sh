#!/usr/bin/env bash
# Context writes as the table grows: wrk PUTs new keys in rounds of a few seconds until the
# table holds [keys] entries (default 100000), and prints each round's rate with the table size
# it started at. The rate should stay flat from an empty table to a full one. The rounds use 50
# connections, as the GET row of bench/http.sh does: enough writers that groups of them share a
# commit. Then a round at 8 connections (a handful of agents) and one writer alone.
# Usage: bench/context.sh [keys, default 100000] [seconds per round, default 2] [connections, default 50]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
target="${1:-100000}"
round="${2:-2}"
connections="${3:-50}"

loopsy_apt $LOOPSY_BUILD_PACKAGES wrk curl procps
loopsy_swift
loopsy_bench_build

work="$(mktemp -d)"
trap 'loopsy_bench_cleanup "$work"' EXIT
export LOOPSY_DATA_DIR="$work/loopsy"
"$bin/loopsy" init --no-mcp >/dev/null
# Room for the whole run (the default limit is 10000 keys): the last round passes the target by
# a round's worth, and the 8-connection and one-writer rounds add theirs.
sed -i "0,/^  maxEntries: 10000$/s//  maxEntries: $((target * 4))/" "$LOOPSY_DATA_DIR/config.yaml"
loopsy_bench_daemon "$work"
key="$("$bin/loopsy" key show)"

loopsy_log "wrk: PUT of new keys, ${round}s rounds, $connections connections, 2 threads, $(nproc) cores"
printf '| %-6s | %12s | %14s | %10s | %8s |\n' "round" "keys before" "new keys / s" "p99" "non-2xx"
printf '|%s|%s|%s|%s|%s|\n' "--------" "--------------" "----------------" "------------" "----------"
keys=0 n=0 first="" last="" started=$SECONDS
while [ "$keys" -lt "$target" ] && [ $((SECONDS - started)) -lt 300 ]; do
    n=$((n + 1))
    wrk -t2 -c"$connections" -d"${round}s" --latency -s bench/context-put.lua \
        -H "Authorization: Bearer $key" "http://127.0.0.1:$loopsyd_port" -- "$n" >"$work/round.txt"
    rps="$(awk '/Requests\/sec/ {print $2}' "$work/round.txt")"
    total="$(awk '/requests in/ {print $1}' "$work/round.txt")"
    errors="$(awk '/Non-2xx/ {print $NF}' "$work/round.txt")"
    p99="$(awk '/^ +99%/ {print $2}' "$work/round.txt")"
    printf '| %-6s | %12s | %14s | %10s | %8s |\n' "$n" "$keys" "$rps" "$p99" "${errors:-0}"
    [ -n "$first" ] || first="$rps"
    last="$rps"
    keys=$((keys + total - ${errors:-0}))
done
# Eight writers: groups of up to eight share a commit.
wrk -t2 -c8 -d"${round}s" --latency -s bench/context-put.lua \
    -H "Authorization: Bearer $key" "http://127.0.0.1:$loopsyd_port" -- "eight" >"$work/eight.txt"
eight_rps="$(awk '/Requests\/sec/ {print $2}' "$work/eight.txt")"
! grep -q Non-2xx "$work/eight.txt" || loopsy_die "some writes at 8 connections failed: $(cat "$work/eight.txt")"
# One writer alone (an agent writing keys one after another): nothing to group it with, so
# its rate is one commit's round trip.
wrk -t1 -c1 -d"${round}s" --latency -s bench/context-put.lua \
    -H "Authorization: Bearer $key" "http://127.0.0.1:$loopsyd_port" -- "one" >"$work/one.txt"
one_rps="$(awk '/Requests\/sec/ {print $2}' "$work/one.txt")"
! grep -q Non-2xx "$work/one.txt" || loopsy_die "some writes of the one writer failed: $(cat "$work/one.txt")"
one_p50="$(awk '/^ +50%/ {print $2}' "$work/one.txt")"
echo
echo "8 connections: $eight_rps new keys/s"
echo "one writer (1 connection): $one_rps new keys/s, median latency $one_p50"
echo "keys written: $keys in $n rounds; last round / first round: $(awk -v a="$last" -v b="$first" 'BEGIN {printf "%.2f", a / b}')"
echo "loopsyd peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$loopsyd_pid/status)"
loopsy_bench_summary "context PUT of new keys, $connections connections, 0 → $keys keys" "$(printf '%.0f' "$first") → $(printf '%.0f' "$last")/s" "-" "≥ 20k/s, flat"
loopsy_bench_summary "context PUT, 8 connections" "$(printf '%.0f' "$eight_rps")/s" "-" "-"
loopsy_bench_summary "context PUT, one writer alone" "$(printf '%.0f' "$one_rps")/s, median $one_p50" "-" "-"
