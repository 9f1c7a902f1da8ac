#!/usr/bin/env bash
# A LAN of HOSTS machines (default 20): network namespaces on one bridge, each with its own dbus,
# avahi-daemon and loopsyd with the default config (TLS on, mDNS on, healthInterval 30 s), made
# by Tests/Support/lab.sh. All daemons start at once; on host 1 it measures how long until
# loopsyd lists every other host (discovered over mDNS) and until each is online with its key
# pinned (health-checked over TLS). The reference, in the same round: avahi-browse on host 1,
# started with the daemons, until it has resolved every host's _loopsy._tcp advert (the floor
# mDNS sets). A new lab and new data dirs every round. Needs root.
# Usage: bench/lan.sh [hosts, default 20] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
hosts="${1:-20}"
rounds="${2:-3}"
[[ $hosts =~ ^[0-9]+$ && $hosts -ge 2 && $hosts -le 20 ]] || loopsy_die "hosts must be 2..20"
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 && $rounds -le 20 ]] || loopsy_die "rounds must be 1..20"

loopsy_apt $LOOPSY_BUILD_PACKAGES iproute2 dbus-daemon dbus-bin avahi-daemon avahi-utils util-linux python3 bc
loopsy_swift
loopsy_bench_build
lab_sh="$PWD/Tests/Support/lab.sh"
bash "$lab_sh" check

work="$(mktemp -d)"
chmod 755 "$work"
lab="b$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n' | cut -c1-5)"
cleanup() {
    bash "$lab_sh" down "$lab" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Polls host 1's daemon (inside its namespace) until it lists every other host, then until every
# one is online with a pinned key; prints both as Unix times. The key comes from a file.
cat >"$work/watch.py" <<'PY'
import http.client, json, sys, time, urllib.request
key_file, expected, deadline = sys.argv[1], int(sys.argv[2]), time.time() + float(sys.argv[3])
key = open(key_file).read().strip()
request = urllib.request.Request("http://127.0.0.1:19532/api/v1/peers", headers={"Authorization": "Bearer " + key})
discovered = online = None
while time.time() < deadline and online is None:
    try:
        peers = json.load(urllib.request.urlopen(request, timeout=2))["peers"]
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        time.sleep(0.02)
        continue
    now = time.time()
    if discovered is None and len(peers) >= expected:
        discovered = now
    if sum(1 for p in peers if p.get("status") == "online" and p.get("fingerprint")) >= expected:
        online = now
    time.sleep(0.02)
print(discovered if discovered else "-", online if online else "-")
PY

# avahi-browse on host 1 until it has resolved N _loopsy._tcp services; prints the Unix time.
cat >"$work/browse.py" <<'PY'
import subprocess, sys, threading, time
expected, limit = int(sys.argv[1]), float(sys.argv[2])
browse = subprocess.Popen(["avahi-browse", "-p", "-r", "-k", "_loopsy._tcp"], stdout=subprocess.PIPE, text=True)
# avahi-browse goes quiet once it has printed what there is: the deadline cannot wait for a line.
timer = threading.Timer(limit, browse.kill)
timer.daemon = True
timer.start()
seen = set()
for line in browse.stdout:
    fields = line.split(";")
    if fields[0] == "=" and len(fields) > 3:
        seen.add(fields[3])
    if len(seen) >= expected:
        break
done = time.time()
timer.cancel()
browse.kill()
print(done if len(seen) >= expected else "-")
PY

discovered_runs=() online_runs=() browse_runs=()
for round in $(seq "$rounds"); do
    loopsy_log "round $round: a $hosts-host lab"
    bash "$lab_sh" up "$lab" "$hosts" >/dev/null
    for i in $(seq "$hosts"); do
        dir="$work/h$i"
        rm -rf "$dir"
        LOOPSY_DATA_DIR="$dir" "$bin/loopsy" init --no-mcp >/dev/null
        sed -i "s/^  # hostname: my-laptop/  hostname: host$i/" "$dir/config.yaml"
        grep -q "^  hostname: host$i" "$dir/config.yaml" || loopsy_die "could not name host $i in its config"
    done
    LOOPSY_DATA_DIR="$work/h1" "$bin/loopsy" key show >"$work/key"
    chmod 600 "$work/key"
    bash "$lab_sh" exec "$lab" 1 python3 "$work/browse.py" "$hosts" 60 >"$work/browse.out" &
    browse_pid=$!
    start=$(date +%s.%N)
    for i in $(seq "$hosts"); do
        bash "$lab_sh" exec "$lab" "$i" env LOOPSY_DATA_DIR="$work/h$i" "$bin/loopsyd" \
            >"$work/h$i.out" 2>"$work/h$i.err" &
    done
    read -r discovered online < <(bash "$lab_sh" exec "$lab" 1 python3 "$work/watch.py" "$work/key" "$((hosts - 1))" 60) ||
        loopsy_die "round $round: the watcher on host 1 failed (see above)"
    wait "$browse_pid" || true
    browsed="$(cat "$work/browse.out")"
    [ "$discovered" != - ] || loopsy_die "round $round: host 1 did not list $((hosts - 1)) peers within 60 s"
    [ "$online" != - ] || loopsy_die "round $round: not every peer was online within 60 s"
    [ "$browsed" != - ] || loopsy_die "round $round: avahi-browse did not resolve $hosts adverts within 60 s"
    discovered_runs+=("$(echo "$discovered - $start" | bc -l)")
    online_runs+=("$(echo "$online - $start" | bc -l)")
    browse_runs+=("$(echo "$browsed - $start" | bc -l)")
    printf '   discovered %.2f s, online %.2f s, avahi-browse %.2f s\n' "${discovered_runs[-1]}" "${online_runs[-1]}" \
        "${browse_runs[-1]}" >&2
    bash "$lab_sh" down "$lab" >/dev/null
    wait 2>/dev/null || true
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
t_discovered="$(median "${discovered_runs[@]}")"
t_online="$(median "${online_runs[@]}")"
t_browse="$(median "${browse_runs[@]}")"
printf '| %-58s | %9s |\n' "$hosts-host LAN, from all daemons started ($rounds rounds, median)" "seconds"
printf '|%s|%s|\n' "------------------------------------------------------------" "-----------"
printf '| %-58s | %9.2f |\n' "host 1 lists every other host (mDNS)" "$t_discovered"
printf '| %-58s | %9.2f |\n' "... and has each online, key pinned (health over TLS)" "$t_online"
printf '| %-58s | %9.2f |\n' "avahi-browse on host 1 resolves every advert (reference)" "$t_browse"
echo
echo "rounds (seconds): discovered ${discovered_runs[*]}; online ${online_runs[*]}; avahi-browse ${browse_runs[*]}"
loopsy_bench_summary "$hosts-host LAN: discovered / all online" \
    "$(printf '%.2f / %.2f s' "$t_discovered" "$t_online")" "avahi-browse resolves all $(printf '%.2f' "$t_browse") s" \
    "≤ 2 s / ≤ 5 s"
