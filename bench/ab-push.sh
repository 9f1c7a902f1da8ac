#!/usr/bin/env bash
# Two loopsyd builds side by side for pushes (`loopsy send`), as bench/ab.sh does for requests:
# both daemons run at once with their own data dirs, and in each round each takes one push of
# the same file, after a dd + fsync of it (the reference: the disk's speed now), who goes first
# alternating. A push's time moves with the host's disk from one minute to the next (its cache,
# the neighbours' writes), so only rounds taken in turn compare. Prints every round, the medians,
# each side's ratio to dd + fsync and how many rounds the second won.
# Usage: bench/ab-push.sh OLD_LOOPSYD NEW_LOOPSYD [size in MiB, default 512] [rounds, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
usage="usage: bench/ab-push.sh OLD_LOOPSYD NEW_LOOPSYD [size in MiB] [rounds]"
[ $# -ge 2 ] || loopsy_die "$usage"
size_mib="${3:-512}" rounds="${4:-8}"
for number in "$size_mib" "$rounds"; do
    [[ "$number" =~ ^[1-9][0-9]{0,4}$ ]] || loopsy_die "'$number' is not a count from 1 to 99999 ($usage)"
done
loopsy_ab_binaries "$1" "$2"

loopsy_apt $LOOPSY_BUILD_PACKAGES bc coreutils
loopsy_swift
loopsy_bench_build  # loopsy itself (init, send) comes from this build
built="$bin"

work="$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")"
chmod 755 "$work"
pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; loopsy_bench_cleanup "$work"' EXIT
mkdir -p "$work/files"
for side in 0 1; do
    export LOOPSY_DATA_DIR="$work/$side"
    "$built/loopsy" init --no-mcp >/dev/null
    # Pushes into the bench directory, with no rate limit between rounds.
    sed -i -e "s|^  allowedPaths: .*|  allowedPaths: [\"$work/files\"]|" -e 's/^  transfer: 10$/  transfer: 0/' \
        "$LOOPSY_DATA_DIR/config.yaml"
    "${binaries[side]}" --port 0 --host 127.0.0.1 >"$work/loopsyd$side.out" 2>"$work/loopsyd$side.err" &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$LOOPSY_DATA_DIR/daemon.port" ] && break; sleep 0.1; done
    [ -s "$LOOPSY_DATA_DIR/daemon.port" ] || loopsy_die "loopsyd ${binaries[side]} did not start: $(cat "$work/loopsyd$side.err")"
done

loopsy_log "writing a $size_mib MiB test file"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/source.bin"
push() { # side: seconds one push took, after a dd + fsync of the same file (its seconds first)
    rm -f "$work/dd.bin" "$work/files/pushed.bin"
    sync
    local disk
    disk="$(loopsy_timed dd if="$work/source.bin" of="$work/dd.bin" bs=1M conv=fsync status=none)"
    sync
    echo "$disk $(LOOPSY_DATA_DIR="$work/$1" loopsy_timed "$built/loopsy" send local "$work/source.bin" "$work/files/pushed.bin")"
}

loopsy_log "push of $size_mib MiB, $rounds rounds, $(nproc) cores"
loopsy_log "A: ${binaries[0]}"
loopsy_log "B: ${binaries[1]}"
printf '| %-5s | %8s | %8s | %6s | %12s |\n' "round" "A s" "B s" "B / A" "dd + fsync s"
printf '|%s|%s|%s|%s|%s|\n' "-------" "----------" "----------" "--------" "--------------"
: >"$work/times"
for number in $(seq "$rounds"); do
    if [ $((number % 2)) -eq 1 ]; then a="$(push 0)"; b="$(push 1)"
    else b="$(push 1)"; a="$(push 0)"; fi
    cmp -s "$work/source.bin" "$work/files/pushed.bin" || loopsy_die "round $number: the pushed file differs"
    read -r disk_a time_a <<<"$a"
    read -r disk_b time_b <<<"$b"
    printf '| %-5s | %8.3f | %8.3f | %6.2f | %5.3f %5.3f |\n' "$number" "$time_a" "$time_b" \
        "$(echo "$time_b / $time_a" | bc -l)" "$disk_a" "$disk_b"
    echo "$time_a $time_b $disk_a $disk_b" >>"$work/times"
done
echo
awk -v mib="$size_mib" "$LOOPSY_AWK_MEDIAN"'
     {a[NR] = $1; b[NR] = $2; d[2 * NR - 1] = $3; d[2 * NR] = $4; if ($2 < $1) won++}
     END {
         ma = median(a, NR); mb = median(b, NR); md = median(d, 2 * NR)
         printf "median: A %.3f s, B %.3f s (B / A %.2f); dd + fsync %.3f s\n", ma, mb, mb / ma, md
         printf "against dd + fsync: A %.2fx, B %.2fx (%.0f, %.0f and %.0f MiB/s)\n", md / ma, md / mb, mib / ma, mib / mb, mib / md
         printf "B was faster in %d of %d rounds\n", won, NR
     }' "$work/times"
