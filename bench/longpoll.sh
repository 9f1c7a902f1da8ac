#!/usr/bin/env bash
# Inbox long polls at scale: holds N (default 500) `GET /messages/inbox?wait=60` open on a
# release loopsyd and prints the daemon CPU time spent registering them, and the time and CPU
# one message takes to answer all of them. Registering a poll must cost the same however many
# are already waiting.
# Usage: bench/longpoll.sh [polls, default 500]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
count="${1:-500}"

loopsy_apt $LOOPSY_BUILD_PACKAGES python3
loopsy_swift
loopsy_bench_build
ulimit -n 4096

work="$(mktemp -d)"
trap 'loopsy_bench_cleanup "$work"' EXIT
loopsy_bench_daemon "$work"
key="$("$bin/loopsy" key show)"

printf '| %-8s | %16s | %22s | %10s | %16s | %18s |\n' "polls" "registered in" "daemon CPU to register" "answered" "answered in" "daemon CPU to answer"
printf '|%s|%s|%s|%s|%s|%s|\n' "----------" "------------------" "------------------------" "------------" "------------------" "--------------------"
for n in 50 "$count"; do
    read -r polls registered cpu answered elapsed answer_cpu < <(LOOPSYD_PID="$loopsyd_pid" python3 bench/longpoll.py "$loopsyd_port" "$key" "$n")
    printf '| %-8s | %14s s | %20s s | %10s | %14s s | %16s s |\n' "$polls" "$registered" "$cpu" "$answered" "$elapsed" "$answer_cpu"
done
loopsy_bench_summary "registering $polls inbox long-polls" "$cpu s daemon CPU" "-" "O(1) per waiter"
