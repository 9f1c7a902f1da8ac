#!/usr/bin/env bash
# Runs every test: installs what the tests need, builds all products, runs the Swift Testing
# suites (unit, server-in-process and integration tests against real loopsyd processes), then
# builds the Debian package and tests it installed (root needed for dpkg).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# Multi-host tests: network namespaces (iproute2) each with its own dbus and avahi-daemon;
# openssl, sqlite3 and curl check what the daemons wrote and sent; chromium and its driver
# run the dashboard tests in a real browser; fuse3 mounts the slow disk of the durability tests.
LOOPSY_TEST_PACKAGES="iproute2 dbus-daemon dbus-bin avahi-daemon avahi-utils openssl sqlite3 curl util-linux
    python3 python3-venv tcpdump chromium chromium-driver tmux fuse3 libfuse3-3"
loopsy_apt $LOOPSY_BUILD_PACKAGES $LOOPSY_TEST_PACKAGES
# Every program the scripts call is installed by them (a fresh machine has only the base system).
loopsy_log "checking the scripts' programs against what they install"
python3 Tests/Packaging/script-deps.py || loopsy_die "a script calls a program that no script installs"
# A lab left behind by an interrupted run would only waste addresses; remove any.
bash Tests/Support/lab.sh down-all
loopsy_swift
mkdir -p .build
loopsy_log "building"
if ! swift build --build-tests >.build/build.log 2>&1; then
    grep -E 'error|warning: unre' .build/build.log | head -40 >&2 || tail -40 .build/build.log >&2
    loopsy_die "build failed (full log: .build/build.log)"
fi
loopsy_log "running tests"
set +e
# Passing tests and start markers go to the log only; failures, suites and the summary show.
swift test --skip-build 2>&1 | tee .build/test-output.txt |
    awk '/^✔ Test run / || !(/^(◇|↳)/ || /^✔ Test .* (started|passed)/)'
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || loopsy_die "tests failed (full output: .build/test-output.txt)"

# A Python suite in a venv of its own, rebuilt when its pinned requirements change.
python_suite() {
    local name="$1" dir="$2" venv=".build/venv-$1"
    if [ ! -x "$venv/bin/pytest" ] || ! cmp -s "$dir/requirements.txt" "$venv/requirements.txt"; then
        rm -rf "$venv"
        python3 -m venv "$venv" || loopsy_die "python3 -m venv failed (install python3-venv)"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$dir/requirements.txt" ||
            loopsy_die "installing the $name test requirements from PyPI failed"
        cp "$dir/requirements.txt" "$venv/requirements.txt"
    fi
    "$venv/bin/python" -m pytest -q -p no:cacheprovider "$dir" || loopsy_die "$name tests failed"
}

# loopsy-mcp against the official Python MCP SDK (pinned).
loopsy_log "MCP tests (Python mcp SDK)"
python_suite mcp Tests/MCP

# schemathesis: every check on every operation of the daemon's OpenAPI document, fixed seed.
loopsy_log "API property tests (schemathesis)"
python_suite api Tests/API

# libFuzzer (-sanitize=fuzzer,address) on the parsers of untrusted bytes, 15 s each from the
# committed corpus; bash Tests/Fuzz/run.sh 600 runs the long version.
loopsy_log "fuzzing (libFuzzer + AddressSanitizer)"
bash Tests/Fuzz/run.sh 15

# The dashboard in Debian's chromium driven by Selenium; screenshots land in
# .build/test-artifacts/dashboard.
loopsy_log "dashboard tests (chromium + selenium)"
python_suite dashboard Tests/Dashboard

# A stopping daemon with pushed files still being stored, on a FUSE mount whose fsync is slow
# (needs /dev/fuse and root, as in CI).
loopsy_log "slow-disk tests (FUSE)"
python_suite slowdisk Tests/SlowDisk

# The release link's copies of the Swift runtime archives (scripts/unretain-archives.py).
loopsy_log "runtime archive copies"
bash Tests/Packaging/unretain-test.sh || loopsy_die "the runtime archive copies are not what the release link needs"
# The release link's linker, which lets unused types' records go (scripts/lld-tied-records.py).
loopsy_log "records tied to their types"
bash Tests/Packaging/tie-records-test.sh || loopsy_die "linking with tied records does not give the program it should"

# The order in which the release link lays out start-up code (scripts/symbol-order.sh) must
# still list what start-up runs: each function it misses maps more of the binary into every
# fresh process.
loopsy_log "symbol order (callgrind)"
bash scripts/symbol-order.sh --check || loopsy_die "packaging/symbol-order.txt misses functions start-up runs"

# The Debian package, built and installed on this machine (needs root, as in CI; without it
# the script says so and fails).
loopsy_log "package test"
bash Tests/Packaging/deb-test.sh
