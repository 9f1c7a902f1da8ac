#!/usr/bin/env bash
# Every benchmark, short, then one summary table of where loopsy stands against its references
# and goals (issue 24's table). Builds the release binaries once; each script's own table is in
# $LOOPSY_BENCH_LOGS (default: a temp dir, printed at the end). About 5 minutes on 2 cores.
# Usage: bench/all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

loopsy_swift
loopsy_log "building release binaries (static Swift runtime, stripped)"
loopsy_apt $LOOPSY_BUILD_PACKAGES python3
loopsy_build_release
export LOOPSY_BENCH_BUILT=1
logs="${LOOPSY_BENCH_LOGS:-$(mktemp -d)}"
mkdir -p "$logs"
export LOOPSY_BENCH_SUMMARY="$logs/summary.tsv"
: >"$LOOPSY_BENCH_SUMMARY"

failed=()
run() { # name script args...
    local name="$1"
    shift
    loopsy_log "$name: $*"
    if ! bash "$@" >"$logs/$name.txt" 2>&1; then
        failed+=("$name")
        tail -5 "$logs/$name.txt" >&2
    fi
}
run http bench/http.sh 10 50
run instructions bench/instructions.sh 2000
run forward bench/forward.sh 64
run broadcast bench/broadcast.sh 19 20
run lan bench/lan.sh 20 3
run context bench/context.sh 100000 2 50
run longpoll bench/longpoll.sh 500
run transfer bench/transfer.sh 512
run startup bench/startup.sh 100

echo
echo "## Where loopsy stands ($(nproc) cores, loopback; $(date -u +%Y-%m-%d))"
echo
python3 - "$LOOPSY_BENCH_SUMMARY" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1]) if line.strip()]
headers = ["what", "loopsy", "reference (same run)", "goal"]
widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
for r in rows:
    print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
PY
echo
echo "each benchmark's own output: $logs"
[ ${#failed[@]} -eq 0 ] || loopsy_die "failed: ${failed[*]} (see $logs)"
