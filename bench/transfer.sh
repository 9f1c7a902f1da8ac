#!/usr/bin/env bash
# Throughput of a 1 GiB push and pull through loopsyd on loopback, compared in the same run with
# dd + fsync (push), curl downloading the same file from nginx (pull) and scp against a private
# sshd (both ways). Push and pull take turns with their references, three rounds each. A push
# hashes the file on both ends: the SHA-256 of the file alone on one core (openssl, which uses
# the CPU's SHA instructions as BoringSSL in loopsyd does) is printed as well, because where the
# disk writes faster than one core hashes, that, not dd, is the most a verified push can reach.
# Prints MB/s and loopsyd's peak RSS.
# Usage: bench/transfer.sh [size in MiB, default 1024]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
size_mib="${1:-1024}"

loopsy_apt $LOOPSY_BUILD_PACKAGES nginx-light openssh-server openssh-client bc curl openssl
loopsy_swift
loopsy_bench_build

work="$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")"
chmod 755 "$work"
trap 'loopsy_bench_cleanup "$work"' EXIT

loopsy_bench_daemon "$work"
# Let the daemon write into the bench directory.
sed -i "s|^  allowedPaths: .*|  allowedPaths: [\"$work/files\"]|" "$LOOPSY_DATA_DIR/config.yaml"
kill "$loopsyd_pid"; wait "$loopsyd_pid" 2>/dev/null || true
"$bin/loopsyd" --port 0 --host 127.0.0.1 >"$work/loopsyd.out" 2>"$work/loopsyd.err" &
loopsyd_pid=$!
for _ in $(seq 100); do [ -s "$LOOPSY_DATA_DIR/daemon.port" ] && break; sleep 0.1; done
loopsyd_port="$(cat "$LOOPSY_DATA_DIR/daemon.port")"

mkdir -p "$work/files" "$work/www"
loopsy_log "writing a $size_mib MiB test file"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/source.bin"
cp "$work/source.bin" "$work/files/served.bin"
cp "$work/source.bin" "$work/www/served.bin"
bytes=$((size_mib * 1024 * 1024))

# nginx for the pull reference.
nginx_port="$(loopsy_free_port)"
loopsy_bench_nginx "$work" "$work/www" "$nginx_port"

# A private sshd for scp.
ssh_port="$(loopsy_free_port)"
loopsy_bench_sshd "$work" "$ssh_port"
scp_opts=("${ssh_opts[@]}" -P "$ssh_port")

rate() { echo "scale=1; $bytes / 1048576 / $1" | bc -l; }
# CPU time the whole machine spent (every process and the kernel, both cores; steal included,
# what the host took), in clock ticks: a push hashes on both ends and copies five times where
# dd copies twice, and on two cores that CPU is what bounds it.
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
hz="$(getconf CLK_TCK)"
cpu_since() { awk -v a="$1" -v b="$(busy)" -v hz="$hz" 'BEGIN {printf "%.2f", (b - a) / hz}'; }
sync

loopsy_log "running (the page cache is warm for every reader)"
# Writes to disk vary run to run (writeback of the previous run, the virtual disk's cache):
# dd and push take turns, three times each after a sync, and the medians count. Before them,
# one untimed round of each, and one of pull and curl: on this VM the first write of 512 MiB
# after the test files were made took 4-5 times as long as the next ones for every writer
# (dd 1.4 s against 0.3 s, curl 1.8 s against 0.7-1.7 s), so it was always the slowest of
# three and the median became the slower of the other two.
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
rm -f "$work/dd.bin" "$work/files/pushed.bin" "$work/pulled.bin" "$work/nginx.bin"
sync
dd if="$work/source.bin" of="$work/dd.bin" bs=1M conv=fsync status=none
"$bin/loopsy" send local "$work/source.bin" "$work/files/pushed.bin" >/dev/null
"$bin/loopsy" pull -f local "$work/files/served.bin" "$work/pulled.bin" >/dev/null
curl -fsS -o "$work/nginx.bin" "http://127.0.0.1:$nginx_port/served.bin"
disk_runs=() push_runs=() disk_cpu=() push_cpu=() hash_runs=()
for round in 1 2 3; do
    hash_runs+=("$(loopsy_timed openssl dgst -sha256 "$work/source.bin")")
    rm -f "$work/dd.bin" "$work/files/pushed.bin"
    sync
    before="$(busy)"
    disk_runs+=("$(loopsy_timed dd if="$work/source.bin" of="$work/dd.bin" bs=1M conv=fsync status=none)")
    disk_cpu+=("$(cpu_since "$before")")
    sync
    before="$(busy)"
    push_runs+=("$(loopsy_timed "$bin/loopsy" send local "$work/source.bin" "$work/files/pushed.bin")")
    push_cpu+=("$(cpu_since "$before")")
done
t_disk="$(median3 "${disk_runs[@]}")"
t_push="$(median3 "${push_runs[@]}")"
t_hash="$(median3 "${hash_runs[@]}")"
c_disk="$(median3 "${disk_cpu[@]}")"
c_push="$(median3 "${push_cpu[@]}")"
# The same for pull and its reference: both write 512 MiB of new pages into the page cache,
# which on this VM took curl 1.2-2 s of kernel time from one run to the next: single runs of
# each put the pull anywhere from 0.75x to 2.4x nginx. Every pull is a first one: loopsyd keeps
# the digests of files it hashed (by inode, size and times), and the touch makes it hash again.
pull_runs=() nginx_runs=()
for round in 1 2 3; do
    rm -f "$work/pulled.bin" "$work/nginx.bin"
    touch "$work/files/served.bin"
    sync
    pull_runs+=("$(loopsy_timed "$bin/loopsy" pull -f local "$work/files/served.bin" "$work/pulled.bin")")
    [ "$round" = 3 ] || cmp -s "$work/source.bin" "$work/pulled.bin" || loopsy_die "pulled file differs"
    sync
    nginx_runs+=("$(loopsy_timed curl -fsS -o "$work/nginx.bin" "http://127.0.0.1:$nginx_port/served.bin")")
done
t_pull="$(median3 "${pull_runs[@]}")"
t_nginx="$(median3 "${nginx_runs[@]}")"
t_scp_up=$(loopsy_timed scp "${scp_opts[@]}" "$work/source.bin" "$(id -un)@127.0.0.1:$work/scp-up.bin")
t_scp_down=$(loopsy_timed scp "${scp_opts[@]}" "$(id -un)@127.0.0.1:$work/source.bin" "$work/scp-down.bin")
cmp -s "$work/source.bin" "$work/pulled.bin" || loopsy_die "pulled file differs"
cmp -s "$work/source.bin" "$work/files/pushed.bin" || loopsy_die "pushed file differs"

printf '| %-48s | %9s | %8s |\n' "transfer of $size_mib MiB on loopback" "seconds" "MiB/s"
printf '|%s|%s|%s|\n' "--------------------------------------------------" "-----------" "----------"
printf '| %-48s | %9.2f | %8s |\n' "dd copy + fsync (disk reference, median of 3)" "$t_disk" "$(rate "$t_disk")"
printf '| %-48s | %9.2f | %8s |\n' "openssl sha256 alone (one core, median of 3)" "$t_hash" "$(rate "$t_hash")"
printf '| %-48s | %9.2f | %8s |\n' "loopsy send (push, fsync + sha256, median of 3)" "$t_push" "$(rate "$t_push")"
printf '| %-48s | %9.2f | %8s |\n' "scp upload (reference)" "$t_scp_up" "$(rate "$t_scp_up")"
printf '| %-48s | %9.2f | %8s |\n' "loopsy pull (sha256 verified, median of 3)" "$t_pull" "$(rate "$t_pull")"
printf '| %-48s | %9.2f | %8s |\n' "curl from nginx (reference, median of 3)" "$t_nginx" "$(rate "$t_nginx")"
printf '| %-48s | %9.2f | %8s |\n' "scp download (reference)" "$t_scp_down" "$(rate "$t_scp_down")"
echo
echo "rounds (seconds): dd ${disk_runs[*]}; sha256 ${hash_runs[*]}; push ${push_runs[*]}; pull ${pull_runs[*]}; curl ${nginx_runs[*]}"
echo "machine CPU-seconds (median of 3, both cores, every process): dd + fsync $c_disk, push $c_push" \
    "(rounds: dd ${disk_cpu[*]}; push ${push_cpu[*]})"
echo "loopsy pull / nginx: $(echo "scale=2; $t_nginx / $t_pull" | bc -l)"
loopsy_bench_summary "loopsy send $size_mib MiB (push, fsync + sha256)" "$(rate "$t_push") MiB/s, $c_push CPU-s" \
    "dd + fsync $(rate "$t_disk") MiB/s, $c_disk CPU-s; SHA-256 alone $(rate "$t_hash") MiB/s; HTTP on loopback (nginx → curl) $(rate "$t_nginx") MiB/s" \
    "≥ 0.9x dd (now $(awk -v a="$t_disk" -v b="$t_push" 'BEGIN {printf "%.2f", a / b}')x)"
loopsy_bench_summary "loopsy pull $size_mib MiB" "$(rate "$t_pull") MiB/s" "nginx + curl $(rate "$t_nginx") MiB/s" \
    "≥ 0.9x (now $(awk -v a="$t_nginx" -v b="$t_pull" 'BEGIN {printf "%.2f", a / b}')x)"
echo "loopsyd peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$loopsyd_pid/status)"
