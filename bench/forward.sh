#!/usr/bin/env bash
# What relaying through the local daemon to a peer costs: alpha (127.0.0.1) calls bravo, which
# serves peers over TLS on 127.0.0.2 with its key pinned by alpha. Compared in the same run with
# curl talking to bravo's HTTPS listener directly (the same TLS handshake per request, no relay).
# Prints request latency (hyperfine) and pull throughput.
# Usage: bench/forward.sh [size in MiB, default 512]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
size_mib="${1:-512}"

loopsy_apt $LOOPSY_BUILD_PACKAGES hyperfine curl bc python3
loopsy_swift
loopsy_bench_build

work="$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")"
chmod 755 "$work"
bravo_pid=""
trap '[ -n "$bravo_pid" ] && kill "$bravo_pid" 2>/dev/null; loopsy_bench_cleanup "$work"' EXIT

# alpha: the local node (plain HTTP on loopback), rate limits off.
loopsy_bench_daemon "$work"
alpha="$LOOPSY_DATA_DIR"
alpha_key="$(grep -m1 'apiKey:' "$alpha/config.yaml" | awk '{print $2}')"

# bravo: the peer, TLS on 127.0.0.2, files under $work/files.
bravo="$work/bravo"
LOOPSY_DATA_DIR="$bravo" "$bin/loopsy" init --no-mcp >/dev/null
sed -i -e 's/^  context: 60$/  context: 0/' -e 's/^  execute: 30$/  execute: 0/' -e 's/^  transfer: 10$/  transfer: 0/' \
    -e 's/^  enabled: false           # serve peers/  enabled: true            # serve peers/' \
    -e 's/^  enabled: true            # mDNS/  enabled: false            # mDNS/' \
    -e "s|^  allowedPaths: .*|  allowedPaths: [\"$work/files\"]|" -e 's/^  # hostname: my-laptop/  hostname: bravo/' \
    "$bravo/config.yaml"
"$bin/loopsyd" --data-dir "$bravo" --port 0 --host 127.0.0.2 >"$work/bravo.out" 2>"$work/bravo.err" &
bravo_pid=$!
for _ in $(seq 100); do [ -s "$bravo/daemon.port" ] && break; sleep 0.1; done
bravo_port="$(cat "$bravo/daemon.port")"
bravo_key="$(grep -m1 'apiKey:' "$bravo/config.yaml" | awk '{print $2}')"
echo "$bravo_key" | LOOPSY_DATA_DIR="$alpha" "$bin/loopsy" peers add 127.0.0.2 "$bravo_port" --key-stdin >/dev/null
# A new peer holds the context and messages grants: bravo's owner lets alpha run programs and move files.
LOOPSY_DATA_DIR="$bravo" "$bin/loopsy" peers grant 127.0.0.1 exec transfer >/dev/null
export LOOPSY_DATA_DIR="$alpha"

loopsy_log "request latency"
hyperfine -N --warmup 10 --runs 200 --style basic --export-markdown "$work/latency.md" --export-json "$work/latency.json" \
    -n "status, local daemon" "curl -fsS -o /dev/null -H 'Authorization: Bearer $alpha_key' http://127.0.0.1:$loopsyd_port/api/v1/status" \
    -n "status, bravo through alpha (relay + pinned TLS)" "curl -fsS -o /dev/null -H 'Authorization: Bearer $alpha_key' http://127.0.0.1:$loopsyd_port/api/v1/peers/bravo/status" \
    -n "status, bravo directly (curl, TLS) [reference]" "curl -fsSk -o /dev/null -H 'Authorization: Bearer $bravo_key' https://127.0.0.2:$bravo_port/api/v1/status" \
    >/dev/null
hyperfine -N --warmup 3 --runs 30 --style basic --export-markdown "$work/exec.md" --export-json "$work/exec.json" \
    -n "loopsy exec local true" "$bin/loopsy exec local true" \
    -n "loopsy exec bravo true (relay + TLS)" "$bin/loopsy exec bravo true" >/dev/null

mkdir -p "$work/files"
loopsy_log "writing a $size_mib MiB test file"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/files/served.bin"
bytes=$((size_mib * 1024 * 1024))
rate() { echo "scale=1; $bytes / 1048576 / $1" | bc -l; }
body="{\"sourcePath\":\"$work/files/served.bin\"}"
t_relay=$(loopsy_timed curl -fsS -o "$work/relay.bin" -H "Authorization: Bearer $alpha_key" -H 'Content-Type: application/json' \
    -d "$body" "http://127.0.0.1:$loopsyd_port/api/v1/peers/bravo/transfer/pull")
t_direct=$(loopsy_timed curl -fsSk -o "$work/direct.bin" -H "Authorization: Bearer $bravo_key" -H 'Content-Type: application/json' \
    -d "$body" "https://127.0.0.2:$bravo_port/api/v1/transfer/pull")
t_cli=$(loopsy_timed "$bin/loopsy" pull -f bravo "$work/files/served.bin" "$work/cli.bin")
cmp -s "$work/relay.bin" "$work/files/served.bin" && cmp -s "$work/cli.bin" "$work/files/served.bin" ||
    loopsy_die "a relayed file differs from the original"

echo
echo "## Request latency (200 runs each, loopback, 2 cores shared)"
cat "$work/latency.md"
echo
cat "$work/exec.md"
echo
echo "## Pull of $size_mib MiB (MB/s)"
echo "| path | MB/s |"
echo "|---|---|"
echo "| bravo directly over TLS (curl) [reference] | $(rate "$t_direct") |"
echo "| bravo through alpha's relay (curl to alpha) | $(rate "$t_relay") |"
echo "| loopsy pull bravo (relay, SHA-256 verified) | $(rate "$t_cli") |"
median() { loopsy_bench_ms "$1" "$2" median; }
loopsy_bench_summary "relayed GET /peers/{p}/status (TLS)" "$(median "$work/latency.json" "status, bravo through") ms" \
    "direct pinned HTTPS with curl $(median "$work/latency.json" "status, bravo directly") ms" "≤ 1.5x direct"
loopsy_bench_summary "loopsy exec <peer> true" "$(median "$work/exec.json" "loopsy exec bravo") ms" \
    "loopsy exec local true $(median "$work/exec.json" "loopsy exec local") ms" "≤ 1.3x local"
