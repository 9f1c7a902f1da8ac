#!/usr/bin/env bash
# Soak: MINUTES (default 30) of mixed load from wrk (bench/soak.lua: context, exec, exec as SSE,
# small pushes and pulls) against a release loopsyd whose rate limits are on, sampling its RSS,
# open fds and threads every 10 s. Passes when, after a 2-minute warm-up, neither RSS nor fds grow
# by more than 10% (last 3 minutes against minutes 2-5) and every answer was 2xx or a configured 429.
# nginx serving a small file under the same wrk load (for up to 5 minutes) is the reference for
# memory and fds. Usage: bash bench/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
minutes="${1:-30}"
loopsy_apt $LOOPSY_BUILD_PACKAGES wrk nginx-light procps
loopsy_swift
loopsy_bench_build
work="$(mktemp -d)"
trap 'kill "$loopsyd_pid" "$sampler" 2>/dev/null; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")"; rm -rf "$work"' EXIT

loopsy_bench_daemon "$work"
# Limits on, high enough that most work is done and some requests meet a 429.
sed -i -e 's/^  execute: 0$/  execute: 2400/' -e 's/^  transfer: 0$/  transfer: 2400/' \
    -e "s|allowedPaths: \\[\"~\"\\]|allowedPaths: [\"$work/files\"]|" "$LOOPSY_DATA_DIR/config.yaml"
kill "$loopsyd_pid"; wait "$loopsyd_pid" 2>/dev/null || true
rm -f "$LOOPSY_DATA_DIR/daemon.port"
"$bin/loopsyd" --port 0 --host 127.0.0.1 >"$work/loopsyd.out" 2>"$work/loopsyd.err" &
loopsyd_pid=$!
for _ in $(seq 100); do [ -s "$LOOPSY_DATA_DIR/daemon.port" ] && break; sleep 0.1; done
loopsyd_port="$(cat "$LOOPSY_DATA_DIR/daemon.port")"
mkdir -p "$work/files"
head -c 16384 /dev/urandom >"$work/files/small.bin"

sample() {  # pid csv
    while kill -0 "$1" 2>/dev/null; do
        echo "$(date +%s),$(awk '/VmRSS/ {print $2}' /proc/"$1"/status),$(ls /proc/"$1"/fd | wc -l),$(awk '/Threads/ {print $2}' /proc/"$1"/status)" >>"$2"
        sleep 10
    done
}
sample "$loopsyd_pid" "$work/loopsyd.csv" & sampler=$!

loopsy_log "soak: $minutes min of mixed load on loopsyd (port $loopsyd_port)"
LOOPSY_KEY="$(awk '/apiKey:/ {print $2}' "$LOOPSY_DATA_DIR/config.yaml")" SOAK_DIR="$work/files" \
    wrk -t2 -c8 -d"${minutes}m" --timeout 10s -s bench/soak.lua "http://127.0.0.1:$loopsyd_port" >"$work/wrk.txt" 2>&1
kill "$sampler" 2>/dev/null || true
cp "$work/wrk.txt" "$work/loopsyd.csv" "$work/loopsyd.err" .build/ 2>/dev/null || true

reference=$(( minutes < 5 ? minutes : 5 ))
loopsy_log "reference: nginx under the same connections for $reference min"
nginx_port="$(loopsy_free_port)"
loopsy_bench_nginx "$work" "$work/files" "$nginx_port"
nginx_pid="$(cat "$work/nginx.pid")"
worker="$(pgrep -P "$nginx_pid" | head -1)"
sample "$worker" "$work/nginx.csv" & sampler=$!
wrk -t2 -c8 -d"${reference}m" "http://127.0.0.1:$nginx_port/small.bin" >"$work/wrk-nginx.txt" 2>&1
kill "$sampler" 2>/dev/null || true

soak_status=0
python3 - "$work" "$minutes" "$reference" <<'PY' || soak_status=$?
import sys, re
work, minutes, reference = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
def load(name):
    rows = [tuple(map(int, line.split(","))) for line in open(f"{work}/{name}.csv") if line.count(",") == 3]
    start = rows[0][0]
    return [(t - start, rss, fds, threads) for t, rss, fds, threads in rows]
def window(rows, lo, hi, column):
    values = [r[column] for r in rows if lo <= r[0] < hi]
    return sum(values) / len(values) if values else float("nan")
print(f"| process | minutes | RSS early (KiB) | RSS last 3 min (KiB) | RSS growth | fds early | fds last 3 min "
      f"| fd growth | threads max |")
print("|---|---|---|---|---|---|---|---|---|")
verdict = True
for name, length in (("loopsyd", minutes), ("nginx", reference)):
    rows = load(name)
    span = length * 60
    # Early: minutes 2-5 of a long run (after warm-up); the same share of a short one.
    base_lo, base_hi = min(120, span * 0.2), min(300, span * 0.4)
    rss0, rss1 = window(rows, base_lo, base_hi, 1), window(rows, span - 180, span + 60, 1)
    fd0, fd1 = window(rows, base_lo, base_hi, 2), window(rows, span - 180, span + 60, 2)
    growth_rss, growth_fd = (rss1 - rss0) / rss0 * 100, (fd1 - fd0) / fd0 * 100
    print(f"| {name} | {length:.0f} | {rss0:.0f} | {rss1:.0f} | {growth_rss:+.1f}% | {fd0:.1f} | {fd1:.1f} | {growth_fd:+.1f}% | {max(r[3] for r in rows)} |")
    if name == "loopsyd" and (growth_rss > 10 or growth_fd > 10):
        verdict = False
wrk = open(f"{work}/wrk.txt").read()
line = re.search(r"WRK ok=(\d+) limited=(\d+) other=(\d+) socket_errors=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+)", wrk)
ok, limited, other, socket_errors = (int(line.group(i)) for i in range(1, 5))
rate = re.search(r"Requests/sec:\s*([\d.]+)", wrk).group(1)
print(f"\n| loopsyd answers | count |\n|---|---|\n| 2xx | {ok} |\n| 429 (configured limits) | {limited} |"
      f"\n| anything else | {other} |\n| socket errors | {socket_errors} |\n| requests/s | {rate} |"
      f"\n| p50 / p99 ms | {line.group(5)} / {line.group(6)} |")
nginx_rate = re.search(r"Requests/sec:\s*([\d.]+)", open(f"{work}/wrk-nginx.txt").read()).group(1)
print(f"| nginx requests/s (reference, one static file) | {nginx_rate} |")
if other or socket_errors:
    print("\n" + "\n".join(l for l in wrk.splitlines() if "other-sample" in l))
    verdict = False
print("\nSOAK " + ("PASSED" if verdict else "FAILED"))
sys.exit(0 if verdict else 1)
PY

loopsy_log "adversarial phase (bench/adversarial.sh)"
bin="$bin" bash bench/adversarial.sh 30
exit "$soak_status"
