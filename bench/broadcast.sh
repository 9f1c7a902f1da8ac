#!/usr/bin/env bash
# Fan-out to many peers: alpha (127.0.0.1) with N peers (default 19: a 20-host LAN) serving
# TLS on 127.0.0.2 … 127.0.0.N+1, each pinned by alpha. Times `POST /messages/broadcast` and
# `POST /context/broadcast` on alpha (every peer answers before the call returns), against curl
# sending the same context PUT to every peer directly (--parallel, TLS, no relay) in the same run.
# Usage: bench/broadcast.sh [peers, default 19] [runs, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
count="${1:-19}"
runs="${2:-30}"

loopsy_apt $LOOPSY_BUILD_PACKAGES hyperfine curl python3
loopsy_swift
loopsy_bench_build

work="$(mktemp -d -p "${BENCH_DIR:-/var/tmp}")"
chmod 755 "$work"
peer_pids=()
trap 'for pid in "${peer_pids[@]}"; do kill "$pid" 2>/dev/null; done; loopsy_bench_cleanup "$work"' EXIT

loopsy_bench_daemon "$work"
alpha="$LOOPSY_DATA_DIR"
printf 'Authorization: Bearer %s\n' "$("$bin/loopsy" key show)" >"$work/alpha.auth"
chmod 600 "$work/alpha.auth"

loopsy_log "starting $count peers"
: >"$work/direct.curl"
for i in $(seq 1 "$count"); do
    peer="$work/peer$i"
    address="127.0.0.$((i + 1))"
    LOOPSY_DATA_DIR="$peer" "$bin/loopsy" init --no-mcp >/dev/null
    sed -i -e 's/^  context: 60$/  context: 0/' \
        -e 's/^  enabled: false           # serve peers/  enabled: true            # serve peers/' \
        -e 's/^  enabled: true            # mDNS/  enabled: false            # mDNS/' \
        -e "s/^  # hostname: my-laptop/  hostname: peer$i/" "$peer/config.yaml"
    "$bin/loopsyd" --data-dir "$peer" --port 0 --host "$address" >"$work/peer$i.out" 2>"$work/peer$i.err" &
    peer_pids+=($!)
done
for i in $(seq 1 "$count"); do
    peer="$work/peer$i"
    for _ in $(seq 100); do [ -s "$peer/daemon.port" ] && break; sleep 0.1; done
    [ -s "$peer/daemon.port" ] || loopsy_die "peer $i did not start: $(cat "$work/peer$i.err")"
    port="$(cat "$peer/daemon.port")"
    key="$(LOOPSY_DATA_DIR="$peer" "$bin/loopsy" key show)"
    echo "$key" | LOOPSY_DATA_DIR="$alpha" "$bin/loopsy" peers add "127.0.0.$((i + 1))" "$port" --key-stdin >/dev/null
    # The reference: the same PUT straight to each peer (keys in a curl config file, not argv).
    [ "$i" -eq 1 ] || echo "next" >>"$work/direct.curl"
    cat >>"$work/direct.curl" <<CURL
url = "https://127.0.0.$((i + 1)):$port/api/v1/context/plan"
insecure
fail
request = "PUT"
header = "Authorization: Bearer $key"
header = "Content-Type: application/json"
data = "{\"value\":\"ship on friday\"}"
output = "/dev/null"
CURL
done
chmod 600 "$work/direct.curl"
alpha_url="http://127.0.0.1:$loopsyd_port/api/v1"
curl -fsS -H @"$work/alpha.auth" -H 'Content-Type: application/json' -d '{"key":"plan","value":"ship on friday"}' \
    "$alpha_url/context/broadcast" >"$work/first.json"
set_on="$(python3 -c 'import json,sys; print(sum(r["state"] == "set" for r in json.load(open(sys.argv[1]))["results"]))' "$work/first.json")"
[ "$set_on" -eq "$count" ] || loopsy_die "context broadcast reached $set_on of $count peers: $(cat "$work/first.json")"

for check in "messages/broadcast {\"body\":\"standup\",\"ttl\":60}" "context/broadcast {\"key\":\"plan\",\"value\":\"ship\"}"; do
    curl -sS -o "$work/check.json" -w "%{http_code}" -H @"$work/alpha.auth" -H Content-Type:application/json -d "${check#* }" "$alpha_url/${check%% *}" | grep -q "^200$" ||
        loopsy_die "POST ${check%% *} failed: $(cat "$work/check.json")"
done
loopsy_log "hyperfine: $runs runs each"
hyperfine -N --warmup 3 --runs "$runs" --export-json "$work/result.json" \
    -n "POST /messages/broadcast ($count peers)" \
    "curl -fsS -o /dev/null -H @$work/alpha.auth -H Content-Type:application/json -d '{\"body\":\"standup\",\"ttl\":60}' $alpha_url/messages/broadcast" \
    -n "POST /context/broadcast ($count peers)" \
    "curl -fsS -o /dev/null -H @$work/alpha.auth -H Content-Type:application/json -d '{\"key\":\"plan\",\"value\":\"ship\"}' $alpha_url/context/broadcast" \
    -n "curl --parallel PUT to each peer (reference)" \
    "curl -sS --no-progress-meter --parallel --parallel-max 64 -K $work/direct.curl" >/dev/null
python3 - "$work/result.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
print(f"| {'request':<46} | {'mean ms':>8} | {'median':>7} | {'max ms':>7} |")
print(f"|{'-'*48}|{'-'*10}|{'-'*9}|{'-'*9}|")
for r in results:
    print(f"| {r['command']:<46} | {r['mean']*1000:8.1f} | {r['median']*1000:7.1f} | {r['max']*1000:7.1f} |")
PY
median() { loopsy_bench_ms "$work/result.json" "$1" median 0; }
loopsy_bench_summary "POST /messages/broadcast, $count peers" "$(median "POST /messages") ms" "curl --parallel direct $(median "curl") ms" "≤ 100 ms"
loopsy_bench_summary "POST /context/broadcast, $count peers" "$(median "POST /context") ms" "curl --parallel direct $(median "curl") ms" "≤ 100 ms"
