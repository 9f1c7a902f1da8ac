#!/usr/bin/env bash
# Coordination primitives: lock acquire+release round trips per second on loopback and through
# a TLS peer (127.0.0.2), and compare-and-set increments per second, each from one client on a
# kept-alive connection; etcd's lock and transaction through etcdctl are the reference when
# Debian's etcd-server and etcd-client install here. Usage: bash bench/coordination.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
rounds="${1:-2000}"
loopsy_apt $LOOPSY_BUILD_PACKAGES python3
loopsy_swift
loopsy_bench_build
work="$(mktemp -d)"
trap 'kill "${alpha_pid:-}" "${bravo_pid:-}" 2>/dev/null; rm -rf "$work"' EXIT

start_node() {  # name dir host tls
    export LOOPSY_DATA_DIR="$2"
    "$bin/loopsy" init --no-mcp >/dev/null
    # Rate limits off: a benchmark is one caller sending thousands of requests (the peer's calls
    # through alpha count as alpha's, which bravo would limit to rateLimits.context a minute).
    sed -i -e 's/^  enabled: true            # mDNS/  enabled: false            # mDNS/' -e 's/^  context: 60$/  context: 0/' \
        -e "s/^  # hostname: my-laptop.*/  hostname: $1/" "$2/config.yaml"
    [ "$4" = tls ] || sed -i "s/^  enabled: true            # serve peers/  enabled: false           # serve peers/" "$2/config.yaml"
    "$bin/loopsyd" --port 0 --host "$3" >"$2.out" 2>"$2.err" &
    for _ in $(seq 100); do [ -s "$2/daemon.port" ] && break; sleep 0.1; done
}
start_node alpha "$work/alpha" 127.0.0.1 plain; alpha_pid=$!
start_node bravo "$work/bravo" 127.0.0.2 tls; bravo_pid=$!
alpha_port=$(cat "$work/alpha/daemon.port"); bravo_port=$(cat "$work/bravo/daemon.port")
alpha_key=$(awk '/apiKey:/ {print $2}' "$work/alpha/config.yaml")
bravo_key=$(awk '/apiKey:/ {print $2}' "$work/bravo/config.yaml")
echo "$bravo_key" | LOOPSY_DATA_DIR="$work/alpha" "$bin/loopsy" peers add 127.0.0.2 "$bravo_port" --key-stdin >/dev/null

python3 - "$alpha_port" "$rounds" "$alpha_pid" <<PY
import http.client, json, os, socket, statistics, sys, threading, time
port, rounds = int(sys.argv[1]), int(sys.argv[2])
key = "$alpha_key"
def measure(label, prefix, count):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    started = time.perf_counter()
    for index in range(count):
        connection.request("POST", prefix + "/locks/bench", json.dumps({"holder": "bench", "ttl": 30}), headers)
        response = connection.getresponse(); body = json.loads(response.read())
        assert response.status == 201, body
        connection.request("DELETE", prefix + "/locks/bench?token=%d" % body["token"], headers=headers)
        response = connection.getresponse(); text = response.read()
        assert response.status == 200, text
    elapsed = time.perf_counter() - started
    print(f"| {label} | {count} | {count / elapsed:,.0f} | {elapsed / count * 1000:.2f} |")
def cas(count):
    connection = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    revision, started = 0, time.perf_counter()
    for index in range(count):
        connection.request("PUT", "/api/v1/context/bench-counter",
                           json.dumps({"value": str(index + 1), "ifRevision": revision}), headers)
        response = connection.getresponse(); body = json.loads(response.read())
        assert response.status == 200, body
        revision = body["revision"]
    elapsed = time.perf_counter() - started
    print(f"| compare-and-set increment, loopback | {count} | {count / elapsed:,.0f} | {elapsed / count * 1000:.2f} |")
def rss_kib(pid):
    return int(next(line.split()[1] for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS")))
def watch_latency(count):
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    writer = http.client.HTTPConnection("127.0.0.1", port)
    watcher = http.client.HTTPConnection("127.0.0.1", port)
    watcher.request("GET", "/api/v1/context?prefix=wl:&wait=0", headers=headers)
    cursor = json.loads(watcher.getresponse().read())["cursor"]
    latencies = []
    for index in range(count):
        result = {}
        def wait():
            watcher.request("GET", f"/api/v1/context?prefix=wl:&after={cursor}&wait=10", headers=headers)
            result["body"] = json.loads(watcher.getresponse().read())
            result["at"] = time.perf_counter()
        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.005)  # the watch is registered
        sent = time.perf_counter()
        writer.request("PUT", "/api/v1/context/wl:key", json.dumps({"value": str(index)}), headers)
        writer.getresponse().read()
        thread.join()
        cursor = result["body"]["cursor"]
        latencies.append((result["at"] - sent) * 1000)
    latencies.sort()
    print(f"| watch wake-up (write → waiter answered), loopback | {count} | median {statistics.median(latencies):.2f} ms "
          f"| p99 {latencies[int(len(latencies) * 0.99) - 1]:.2f} ms |")
def many_watchers(count, pid):
    before = rss_kib(pid)
    sockets = []
    for index in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(f"GET /api/v1/context?prefix=idle{index}:&wait=120 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {key}\r\n\r\n".encode())
        sockets.append(s)
    time.sleep(2)
    during = rss_kib(pid)
    print(f"| {count} watchers held at once: loopsyd RSS | {count} | {before / 1024:.1f} → {during / 1024:.1f} MB "
          f"| +{(during - before) / 1024:.1f} MB |")
    for s in sockets:
        s.close()
print("| operation | rounds | per second | ms each |")
print("|---|---|---|---|")
measure("lock acquire + release, loopback", "/api/v1", rounds)
measure("lock acquire + release, through a TLS peer", "/api/v1/peers/bravo", max(100, rounds // 10))
cas(rounds)
watch_latency(200)
many_watchers(1000, int(sys.argv[3]))
PY

# The reference: etcd on loopback, same operations through etcdctl (one process per operation,
# so its figure includes etcdctl's start-up; `etcdctl lock` holds a lock while a command runs).
if apt-get install -y -qq etcd-server etcd-client >/dev/null 2>&1 && command -v etcd >/dev/null; then
    etcd --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:23790 \
        --advertise-client-urls http://127.0.0.1:23790 --listen-peer-urls http://127.0.0.1:23800 >"$work/etcd.log" 2>&1 &
    etcd_pid=$!
    sleep 2
    n=$(( rounds / 20 > 20 ? rounds / 20 : 20 ))
    t0=$(date +%s%N)
    for _ in $(seq "$n"); do ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:23790 lock bench true >/dev/null; done
    t1=$(date +%s%N)
    echo "| etcd: etcdctl lock <name> true (acquire + release) | $n | $(( n * 1000000000 / (t1 - t0) )) | $(( (t1 - t0) / n / 1000000 )) |"
    kill "$etcd_pid" 2>/dev/null || true
else
    echo "(etcd-server does not install here: no etcd reference)"
fi
