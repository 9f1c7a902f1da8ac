#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install build dependencies, build loopsy in
# release mode, initialise ~/.loopsy if it is not there, start the daemon and show it healthy.
# Set LOOPSY_DATA_DIR to use another data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

loopsy_apt $LOOPSY_BUILD_PACKAGES curl
loopsy_swift
loopsy_log "building (release, static Swift runtime, stripped: the same binaries as the .deb's)"
loopsy_build_release loopsyd loopsy loopsy-mcp

data_dir="${LOOPSY_DATA_DIR:-$HOME/.loopsy}"
if [ ! -f "$data_dir/config.yaml" ]; then
    loopsy_log "initialising $data_dir"
    "$bin/loopsy" init
fi
loopsy_log "starting loopsyd"
"$bin/loopsy" start
"$bin/loopsy" status
port="$(cat "$data_dir/daemon.port")"
loopsy_log "health: $(curl -fsS "http://127.0.0.1:$port/api/v1/health")"
loopsy_log "binaries are in $bin (add it to PATH, or use the .deb)"
