#!/usr/bin/env bash
# Rewrites packaging/symbol-order.txt: the functions that start-up runs, which the release link
# (LOOPSY_RELEASE_FLAGS in scripts/lib.sh) lays out first, and the protocol conformance
# descriptors, which it lays out together. It records them with valgrind's
# callgrind while loopsyd starts and answers a few requests, while loopsy runs a few commands
# against it, and while loopsy-mcp starts. Run it when start-up code has changed: an
# out-of-date list still links (names no longer there are skipped), but each start-up function
# it misses lies somewhere in 9 MB of code, and the kernel maps up to a whole large folio of
# the binary around it (12 hours of changes cost a fresh loopsyd 1.8 MiB of RSS).
# `scripts/symbol-order.sh --check` traces the same way, changes nothing and fails when the
# list misses start-up functions (the test suite runs it). The
# names the release link gives unnamed functions (scripts/unnamed_functions.py) are numbered in
# the order the compiler made them: after edits, an old entry may name another function of the
# same file, which only places that one badly.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-write}"
[ "$mode" = write ] || [ "$mode" = --check ] || { echo "usage: scripts/symbol-order.sh [--check]" >&2; exit 2; }
source scripts/lib.sh
loopsy_apt $LOOPSY_BUILD_PACKAGES valgrind curl binutils python3
loopsy_swift

# The same build as the release one, but keeping the symbol table callgrind names functions by.
flags=()
for ((i = 0; i < ${#LOOPSY_RELEASE_FLAGS[@]}; i++)); do
    if [ "${LOOPSY_RELEASE_FLAGS[i]}" = -Xlinker ] && [ "${LOOPSY_RELEASE_FLAGS[i + 1]:-}" = --strip-all ]; then
        i=$((i + 1))
        continue
    fi
    flags+=("${LOOPSY_RELEASE_FLAGS[i]}")
done
loopsy_log "building release binaries with symbols"
loopsy_static_cxx
loopsy_static_swift
swift build "${flags[@]}" >/dev/null
built="$(swift build "${flags[@]}" --show-bin-path)"

work="$(mktemp -d)"
daemon=""
stop_daemon() { # SIGTERM, then SIGKILL if it has not stopped within 60 s
    [ -n "$daemon" ] || return 0
    kill -TERM "$daemon" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
    daemon=""
    rm -f "$LOOPSY_DATA_DIR/daemon.port"
}
trap 'stop_daemon; rm -rf "$work"' EXIT
# callgrind cannot read Swift's DWARF; the symbol table is all it needs.
mkdir "$work/bin"
for program in loopsyd loopsy loopsy-mcp; do objcopy --strip-debug "$built/$program" "$work/bin/$program"; done
export LOOPSY_DATA_DIR="$work/loopsy"
"$work/bin/loopsy" init --no-mcp >/dev/null
trace() { # name program args...
    local name="$1"
    shift
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$name.out" "$@" >/dev/null 2>"$work/$name.err"
}

# loopsyd twice (with the default config, mDNS included: that is the start-up users run):
# starting alone, then starting and answering requests. What start-up alone runs
# comes first, so a fresh daemon touches as few pages as it can; what requests add comes next.
daemon_trace() { # name, then whether to send requests
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$1.out" \
        "$work/bin/loopsyd" --port 0 --host 127.0.0.1 >/dev/null 2>"$work/$1.err" &
    daemon=$!
    for _ in $(seq 600); do
        [ -s "$LOOPSY_DATA_DIR/daemon.port" ] && break
        kill -0 "$daemon" 2>/dev/null || break
        sleep 0.1
    done
    [ -s "$LOOPSY_DATA_DIR/daemon.port" ] || loopsy_die "loopsyd did not start under valgrind: $(cat "$work/$1.err")"
    # What runs in the first seconds after the port is written (upkeep, discovery, the first
    # timers) is start-up too: bench/startup.sh measures a fresh daemon's RSS 2 s after it
    # started, and code left out of the order lies scattered, each page of it mapping 64-128
    # KiB of the binary around it. Valgrind runs it some 30 times slower.
    sleep 5
    kill -0 "$daemon" 2>/dev/null || loopsy_die "loopsyd exited under valgrind: $(cat "$work/$1.err")"
    if [ "$2" = requests ]; then
        local url
        url="http://127.0.0.1:$(cat "$LOOPSY_DATA_DIR/daemon.port")/api/v1"
        printf 'Authorization: Bearer %s\n' "$("$work/bin/loopsy" key show)" >"$work/auth"
        curl -fsS -o /dev/null "$url/health"
        curl -fsS -o /dev/null -H @"$work/auth" -X PUT -H 'Content-Type: application/json' -d '{"value":"v"}' "$url/context/k"
        curl -fsS -o /dev/null -H @"$work/auth" "$url/context/k"
        curl -fsS -o /dev/null -H @"$work/auth" "$url/status"
    fi
}
loopsy_log "tracing loopsyd's start-up"
daemon_trace start none
stop_daemon
loopsy_log "tracing loopsyd's first requests"
daemon_trace requests requests

loopsy_log "tracing loopsy commands"
trace version "$work/bin/loopsy" --version
trace get "$work/bin/loopsy" context get k
trace set "$work/bin/loopsy" context set k2 v2
trace status "$work/bin/loopsy" status
# loopsy-mcp as Claude Code starts it: initialize, list the tools, end of input.
{ printf '%s\n' \
    '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"order","version":"1"}}}' \
    '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
    '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'; sleep 3; } | trace mcp "$work/bin/loopsy-mcp"
stop_daemon

status=0
python3 - "$work" packaging/symbol-order.txt "$mode" <<'PY' || status=$?
import re, subprocess, sys
work, target, mode = sys.argv[1], sys.argv[2], sys.argv[3]
ours = {f"{work}/bin/{program}" for program in ("loopsyd", "loopsy", "loopsy-mcp")}
traces = {}
for name in ["start", "requests", "version", "get", "set", "status", "mcp"]:
    # callgrind names each object and function once ("ob=(3) /path", "fn=(7) name") and by
    # number after; "cob=" sets the object of the next "cfn=" only.
    objects, functions = {}, {}
    current_object, call_object = None, None
    seen, traces[name] = set(), []
    for line in open(f"{work}/{name}.out", errors="replace"):
        line = line.rstrip("\n")
        match = re.match(r"^(ob|cob|fn|cfn)=\((\d+)\)(?: (.+))?$", line)
        if not match:
            continue
        kind, number, text = match.groups()
        if kind in ("ob", "cob"):
            if text is not None:
                objects[number] = text
            if kind == "ob":
                current_object = objects.get(number)
            else:
                call_object = objects.get(number)
            continue
        if text is not None:
            functions[number] = text
        symbol = functions.get(number)
        owner = call_object if kind == "cfn" and call_object is not None else current_object
        if kind == "cfn":
            call_object = None
        if symbol is None or owner not in ours:
            continue
        symbol = re.sub(r"'\d+$", "", symbol)  # callgrind's mark of a recursion level
        if symbol not in seen and not symbol.startswith("0x") and " " not in symbol:
            seen.add(symbol)
            traces[name].append(symbol)
# The three programs share one order, and a program skips the names it does not have. So that
# each program's start-up code is together in its own binary: what both loopsyd's start-up and
# `loopsy --version` run (the runtime, ArgumentParser, the config), then the rest of loopsyd's
# start-up (mostly loopsyd's own code, absent from loopsy), then the rest of --version's (mostly
# loopsy's own), then what requests and the other commands add. Starting with loopsyd's whole
# start-up instead put its shared functions between --version's: 0.8 MiB more of its RSS.
version, start = set(traces["version"]), set(traces["start"])
seen, order = set(), []
for name, keep in [("version", start.__contains__), ("start", lambda symbol: True),
                   ("version", lambda symbol: True)] + [
                   (name, lambda symbol: True) for name in ["requests", "get", "set", "status", "mcp"]]:
    for symbol in traces[name]:
        if symbol not in seen and keep(symbol):
            seen.add(symbol)
            order.append(symbol)
traced = len(order)
if mode == "--check":
    # A few may differ between two traces of the same code (what a timer ran in the first
    # seconds); 55 missing from loopsyd's start-up cost it 1.8 MiB.
    allowed = 10
    listed = {line.strip() for line in open(target) if line.strip() and not line.startswith("#")}
    stale = False
    for name, what in (("start", "loopsyd's start-up"), ("version", "`loopsy --version`")):
        missing = [symbol for symbol in traces[name] if symbol not in listed]
        print(f"{what}: {len(missing)} of the {len(traces[name])} functions it runs are not in {target} "
              f"(at most {allowed} may be)")
        for symbol in missing[:10]:
            print(f"  {symbol}")
        stale = stale or len(missing) > allowed
    if stale:
        print(f"{target} is out of date: run scripts/symbol-order.sh and commit what it writes", file=sys.stderr)
    sys.exit(1 if stale else 0)
# Then every protocol conformance descriptor ("...Mc"): the first dynamic cast or conformance
# lookup (ArgumentParser's, the JSON coders') makes the runtime read all of them, about 4,500
# records of 28-56 bytes. lld orders input sections, so what moves is each .rodata section
# that holds one (with -internalize-at-link, most objects keep their descriptors together in
# one .rodata section with other constants), to the start of .rodata. Where each object file
# left them they were spread over 1.7 MB, and the kernel maps 64 KiB around each page read:
# about 1 MiB of every process's RSS (loopsy --version 8.6 -> 7.5 MiB).
for program in ("loopsyd", "loopsy", "loopsy-mcp"):
    symbols = subprocess.run(["nm", "--defined-only", f"{work}/bin/{program}"],
                             capture_output=True, text=True, check=True).stdout
    for line in symbols.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2].endswith("Mc") and fields[2].startswith("$s") and fields[2] not in seen:
            seen.add(fields[2])
            order.append(fields[2])
with open(target, "w") as out:
    out.write("# Functions that start-up runs: those loopsyd's and `loopsy --version`'s share, the rest of each,\n")
    out.write("# then what requests, other commands and loopsy-mcp add; then every protocol conformance\n")
    out.write("# descriptor. For the release link's --symbol-ordering-file.\n")
    out.write("# Made by scripts/symbol-order.sh; do not edit.\n")
    out.write("\n".join(order) + "\n")
print(f"{traced} functions, {len(order) - traced} conformance descriptors")
PY
if [ "$mode" = write ]; then
    loopsy_log "wrote packaging/symbol-order.txt; linking the release binaries with it"
else
    # The traced binaries kept their symbols: the release ones are linked again, stripped.
    rm -f "$built/loopsyd" "$built/loopsy" "$built/loopsy-mcp"
fi
loopsy_build_release
exit "$status"
