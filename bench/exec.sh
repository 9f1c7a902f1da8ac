#!/usr/bin/env bash
# End-to-end latency of `loopsy exec self true` (CLI → loopsyd → spawn → result), compared in
# the same run with `ssh` to localhost running `true` (a private sshd on a spare port with a
# throwaway key; nothing in ~/.ssh is touched). Uses hyperfine.
# Usage: bench/exec.sh [runs, default 100]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
runs="${1:-100}"

loopsy_apt $LOOPSY_BUILD_PACKAGES openssh-server openssh-client hyperfine
loopsy_swift
loopsy_bench_build

work="$(mktemp -d)"
trap 'loopsy_bench_cleanup "$work"' EXIT

loopsy_bench_daemon "$work"

ssh_port="$(loopsy_free_port)"
loopsy_bench_sshd "$work" "$ssh_port"
ssh_cmd="ssh ${ssh_opts[*]} -p $ssh_port $(id -un)@127.0.0.1 true"
for _ in $(seq 50); do $ssh_cmd 2>/dev/null && break; sleep 0.1; done
$ssh_cmd || loopsy_die "the private sshd on port $ssh_port does not answer (port taken? see $work/sshd_config)"

loopsy_log "hyperfine: $runs runs each"
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/result.json" \
    -n "loopsy exec self true" "$bin/loopsy exec self true" \
    -n "ssh localhost true" "$ssh_cmd" >/dev/null
python3 - "$work/result.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
print(f"| {'command':<24} | {'mean ms':>9} | {'stddev':>8} | {'min ms':>8} | {'max ms':>8} |")
print(f"|{'-'*26}|{'-'*11}|{'-'*10}|{'-'*10}|{'-'*10}|")
for name, r in results.items():
    print(f"| {name:<24} | {r['mean']*1000:9.2f} | {r['stddev']*1000:8.2f} | {r['min']*1000:8.2f} | {r['max']*1000:8.2f} |")
loopsy, ssh = results["loopsy exec self true"]["mean"], results["ssh localhost true"]["mean"]
print(f"\nloopsy / ssh mean latency: {loopsy / ssh:.2f}")
PY
