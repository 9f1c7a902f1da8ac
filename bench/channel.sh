#!/usr/bin/env bash
# Live sessions: a message sent on machine A (lab host 1) until loopsy-mcp on machine B (lab host
# 2, TLS) writes the notifications/claude/channel line to its Claude Code session. The reference,
# in the same run, is a client long-polling B's inbox REST route directly (the daemon's own push
# path, without loopsy-mcp): the difference is what the MCP layer costs.
# Usage: bash bench/channel.sh [MESSAGES, default 100]   (BIN=dir uses prebuilt binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
count="${1:-100}"
loopsy_apt $LOOPSY_BUILD_PACKAGES python3 curl iproute2 avahi-daemon dbus
if [ -z "${BIN:-}" ]; then
    loopsy_swift
    loopsy_bench_build
else
    bin="$BIN"
fi
lab="ch$$"; lab="${lab:0:6}"
work="$(mktemp -d -p /var/tmp)"
chmod 755 "$work"
cleanup() {
    [ -n "${pids:-}" ] && kill $pids 2>/dev/null || true
    bash Tests/Support/lab.sh down "$lab" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
bash Tests/Support/lab.sh up "$lab" 2 >/dev/null
pids=""
for host in 1 2; do
    dir="$work/h$host"
    LOOPSY_DATA_DIR="$dir" "$bin/loopsy" init --no-mcp >/dev/null
    sed -i -e 's/^  context: 60$/  context: 0/' -e 's/^  enabled: true            # mDNS/  enabled: false            # mDNS/' \
        -e "s/^  # hostname: my-laptop.*/  hostname: host$host/" "$dir/config.yaml"
    bash Tests/Support/lab.sh exec "$lab" "$host" "$bin/loopsyd" --data-dir "$dir" --port 19532 --host 0.0.0.0 \
        >"$dir.out" 2>"$dir.err" &
    pids="$pids $!"
    for _ in $(seq 100); do [ -s "$dir/daemon.port" ] && break; sleep 0.1; done
    [ -s "$dir/daemon.port" ] || loopsy_die "loopsyd did not start on host $host: $(tail -3 "$dir.err")"
done
key2="$(awk '/apiKey:/ {print $2}' "$work/h2/config.yaml")"
echo "$key2" | bash Tests/Support/lab.sh exec "$lab" 1 env LOOPSY_DATA_DIR="$work/h1" "$bin/loopsy" \
    peers add 10.77.0.2 --key-stdin >/dev/null

loopsy_log "sending $count messages from host 1 to host 2"
python3 - "$lab" "$bin" "$work" "$count" <<'PY'
import json, os, statistics, subprocess, sys, threading, time
lab, bin, work, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def in_host(host, argv, **kwargs):
    return subprocess.Popen(["bash", "Tests/Support/lab.sh", "exec", lab, str(host)] + argv, **kwargs)
def key(host):
    return next(l.split()[1] for l in open(f"{work}/h{host}/config.yaml") if "apiKey:" in l)

# loopsy-mcp on host 2, initialised as Claude Code does; the reader stamps every channel event.
mcp = in_host(2, ["env", f"LOOPSY_DATA_DIR={work}/h2", f"{bin}/loopsy-mcp"], stdin=subprocess.PIPE,
              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
arrived, polled = {}, {}
def read_mcp():
    for line in mcp.stdout:
        now = time.monotonic()
        message = json.loads(line)
        if message.get("method") == "notifications/claude/channel":
            arrived[message["params"]["content"]] = now
threading.Thread(target=read_mcp, daemon=True).start()
mcp.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}) + "\n")
mcp.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
mcp.stdin.flush()

# The reference: a long-poll on host 2's inbox route, printing each arrival.
poller = in_host(2, ["python3", "-c", """
import http.client, json, sys, time
key, cursor = sys.argv[1], None
c = http.client.HTTPConnection("127.0.0.1", 19532)
h = {"Authorization": "Bearer " + key}
c.request("GET", "/api/v1/messages/inbox?after=0&limit=1000", headers=h); cursor = json.loads(c.getresponse().read())["cursor"]
print("ready", flush=True)
while True:
    c.request("GET", "/api/v1/messages/inbox?after=%d&limit=100&wait=25" % cursor, headers=h)
    page = json.loads(c.getresponse().read())
    for m in page["messages"]:
        print(m["body"], flush=True)
    cursor = page["cursor"]
""", key(2)], stdout=subprocess.PIPE, text=True, bufsize=1)
assert poller.stdout.readline().strip() == "ready"
def read_poller():
    for line in poller.stdout:
        polled[line.strip()] = time.monotonic()
threading.Thread(target=read_poller, daemon=True).start()
time.sleep(1.5)

# The sender on host 1: one kept-alive connection; stamps just before each request.
sender = in_host(1, ["python3", "-c", """
import http.client, json, sys, time
key, count = sys.argv[1], int(sys.argv[2])
c = http.client.HTTPConnection("127.0.0.1", 19532)
h = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
for i in range(count):
    sys.stdin.readline()
    body = "bench-%d" % i
    print(body, time.monotonic(), flush=True)
    c.request("POST", "/api/v1/messages", json.dumps({"to": "host2", "body": body}), h)
    r = c.getresponse(); r.read()
    assert r.status == 201, r.status
""", key(1), str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
sent = {}
for i in range(count):
    sender.stdin.write("\n"); sender.stdin.flush()
    body, stamp = sender.stdout.readline().split()
    sent[body] = float(stamp)
    deadline = time.monotonic() + 5
    while body not in arrived and time.monotonic() < deadline:
        time.sleep(0.0005)
    time.sleep(0.02)
time.sleep(1)
for process in (mcp, poller, sender):
    process.kill()

def row(label, stamps):
    latencies = sorted((stamps[b] - sent[b]) * 1000 for b in sent if b in stamps)
    lost = len(sent) - len(latencies)
    if not latencies:
        print(f"| {label} | 0 of {len(sent)} | - | - | - |")
        return
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"| {label} | {len(latencies)} of {len(sent)} | {statistics.median(latencies):.1f} | {p99:.1f} | {max(latencies):.1f} |")
print()
print("## Message on host 1 → event on host 2 (lab namespaces, TLS between the daemons; monotonic clock)")
print()
print("| Path | Arrived | Median ms | p99 ms | Max ms |")
print("|---|---|---|---|---|")
row("loopsy-mcp channel notification (notifications/claude/channel)", arrived)
row("inbox long-poll on host 2's REST API [reference]", polled)
print()
print("Goal (issue 21): median ≤ 50 ms.")
PY
