#!/usr/bin/env bash
# Two loopsyd builds side by side, for a change whose effect is smaller than this shared host's
# noise (its load moves requests per second by 20-30% within minutes): both daemons run at once,
# each with its own data dir and port, and take turns under the same wrk load in short rounds,
# so a change in the host's load falls on both. Prints every round, each one's mean and median,
# and how many rounds the second won.
# Usage: bench/ab.sh OLD_LOOPSYD NEW_LOOPSYD [put|get, default put] [rounds, default 8]
#                    [seconds per round, default 3] [connections, default 8]
# put: PUTs of new keys (bench/context-put.lua); get: an authenticated GET of one key.
# For example: cp .build/x86_64-unknown-linux-gnu/release/loopsyd /tmp/loopsyd.old, change the
# code, scripts/lib.sh's loopsy_build_release loopsyd, then compare the two.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
usage="usage: bench/ab.sh OLD_LOOPSYD NEW_LOOPSYD [put|get] [rounds] [seconds] [connections]"
[ $# -ge 2 ] || loopsy_die "$usage"
kind="${3:-put}" rounds="${4:-8}" seconds="${5:-3}" connections="${6:-8}"
case "$kind" in put | get) ;; *) loopsy_die "the kind is put or get, not '$kind' ($usage)" ;; esac
for number in "$rounds" "$seconds" "$connections"; do
    [[ "$number" =~ ^[1-9][0-9]{0,3}$ ]] || loopsy_die "'$number' is not a count from 1 to 9999 ($usage)"
done
loopsy_ab_binaries "$1" "$2"

loopsy_apt $LOOPSY_BUILD_PACKAGES wrk curl
loopsy_swift
loopsy_bench_build  # loopsy itself (init, key show) comes from this build
built="$bin"

work="$(mktemp -d)"
pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; loopsy_bench_cleanup "$work"' EXIT
ports=() keys=()
for side in 0 1; do
    # loopsy_bench_daemon runs "$bin/loopsyd": a directory of this side's binary and this build's loopsy.
    mkdir -p "$work/$side/bin"
    ln -s "${binaries[side]}" "$work/$side/bin/loopsyd"
    ln -s "$built/loopsy" "$work/$side/bin/loopsy"
    bin="$work/$side/bin"
    export LOOPSY_DATA_DIR="$work/$side/loopsy"
    "$bin/loopsy" init --no-mcp >/dev/null
    # Room for every key the rounds write (the default limit is 10000).
    sed -i "0,/^  maxEntries: 10000$/s//  maxEntries: 100000000/" "$LOOPSY_DATA_DIR/config.yaml"
    loopsy_bench_daemon "$work/$side"
    pids+=("$loopsyd_pid")
    ports+=("$loopsyd_port")
    keys+=("$("$bin/loopsy" key show)")
    if [ "$kind" = get ]; then
        curl -fsS -X PUT -H "Authorization: Bearer ${keys[side]}" -H 'Content-Type: application/json' \
            -d '{"value":"the plan is to ship on friday"}' "http://127.0.0.1:$loopsyd_port/api/v1/context/plan" >/dev/null
    fi
done
loopsyd_pid=""

threads=2
[ "$connections" -ge 2 ] || threads=1
round() { # side round-number: requests per second of one round
    local url="http://127.0.0.1:${ports[$1]}" script=()
    if [ "$kind" = put ]; then
        script=(-s bench/context-put.lua)
    else
        url="$url/api/v1/context/plan"
    fi
    wrk -t"$threads" -c"$connections" -d"${seconds}s" "${script[@]}" -H "Authorization: Bearer ${keys[$1]}" \
        "$url" -- "ab$1-$2" | awk '/Non-2xx/ {bad = 1} /Requests\/sec/ {rate = $2} END {if (bad) print "errors"; else print rate}'
}

loopsy_log "$kind, $rounds rounds of ${seconds}s per side, $connections connections, $(nproc) cores"
loopsy_log "A: ${binaries[0]}"
loopsy_log "B: ${binaries[1]}"
printf '| %-5s | %12s | %12s | %6s |\n' "round" "A req/s" "B req/s" "B / A"
printf '|%s|%s|%s|%s|\n' "-------" "--------------" "--------------" "--------"
: >"$work/rates"
for number in $(seq "$rounds"); do
    # Who goes first alternates, so neither always follows the other's writes.
    if [ $((number % 2)) -eq 1 ]; then a="$(round 0 "$number")"; b="$(round 1 "$number")"
    else b="$(round 1 "$number")"; a="$(round 0 "$number")"; fi
    [ "$a" != errors ] && [ "$b" != errors ] || loopsy_die "round $number had error answers (A: $a, B: $b)"
    printf '| %-5s | %12.0f | %12.0f | %6.2f |\n' "$number" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {print b / a}')"
    echo "$a $b" >>"$work/rates"
done
echo
awk "$LOOPSY_AWK_MEDIAN"'
     {a[NR] = $1; b[NR] = $2; sa += $1; sb += $2; if ($2 > $1) won++}
     END {
         printf "mean:   A %.0f, B %.0f req/s (B / A %.2f)\n", sa / NR, sb / NR, sb / sa
         ma = median(a, NR); mb = median(b, NR)
         printf "median: A %.0f, B %.0f req/s (B / A %.2f)\n", ma, mb, mb / ma
         printf "B was faster in %d of %d rounds\n", won, NR
     }' "$work/rates"
