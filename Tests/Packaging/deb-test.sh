#!/usr/bin/env bash
# The Debian package on this machine, as a user gets it: build, lintian (in build-deb.sh),
# dpkg -i, init + start from /usr/bin, an exec and a transfer, then dpkg -r and --purge.
# Needs root (dpkg); CI runs as root. Prints "deb: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
[ "$(id -u)" -eq 0 ] || loopsy_die "the package test installs a .deb and needs root (run it with sudo)"

source Tests/Packaging/checks.sh

deb="$(bash scripts/build-deb.sh | tail -1)" || loopsy_die "building the package failed"
[ -f "$deb" ] || loopsy_die "no package was built"

home="$(mktemp -d)"
cleanup() {
    HOME="$home" loopsy stop >/dev/null 2>&1 || true
    dpkg --purge loopsy >/dev/null 2>&1 || true
    rm -rf "$home"
    checks_cleanup
}
trap cleanup EXIT

check "dpkg -i installs the package" dpkg -i "$deb"
check "binaries, migrations, man pages, completions and user unit are installed" bash -c '
    test -x /usr/bin/loopsy && test -x /usr/bin/loopsyd && test -x /usr/bin/loopsy-mcp &&
    test -f /usr/share/loopsy/migrations/0001_initial.sql && test -f /usr/share/man/man1/loopsy.1.gz &&
    test -f /usr/share/man/man1/loopsyd.1.gz && test -f /usr/share/bash-completion/completions/loopsy &&
    test -f /usr/share/zsh/vendor-completions/_loopsy && test -f /usr/share/fish/vendor_completions.d/loopsy.fish &&
    test -f /usr/lib/systemd/user/loopsy.service'
check "the packaged user unit passes systemd-analyze verify without a warning" bash -c '
    out=$(systemd-analyze verify /usr/lib/systemd/user/loopsy.service 2>&1) && [ -z "$out" ] || { echo "$out"; exit 1; }'
# loopsy and loopsyd dlopen libcurl (Sources/CCurl), so dpkg-shlibdeps cannot see it there: control
# names it (loopsy-mcp still links it, through the MCP SDK's FoundationNetworking).
check "the package depends on the libcurl it loads at run time" bash -c '
    dpkg-deb -f "$0" Depends | grep -q "libcurl3-gnutls (>= 7.88)" &&
    ! readelf -d /usr/bin/loopsy /usr/bin/loopsyd | grep -q "NEEDED.*libcurl"' "$deb"
# loopsyd dlopens avahi-client when discovery starts (Sources/CAvahi) likewise.
check "the package depends on the avahi-client it loads at run time" bash -c '
    dpkg-deb -f "$0" Depends | grep -q "libavahi-client3 (>= 0.8)" &&
    ! readelf -d /usr/bin/loopsyd /usr/bin/loopsy | grep -q "NEEDED.*libavahi"' "$deb"
# The C++ runtime and the unwinder are linked in (scripts/lib.sh, LOOPSY_RELEASE_FLAGS): no program
# loads libstdc++ or libgcc_s.
check "no program loads libstdc++ or libgcc_s" bash -c '
    ! readelf -d /usr/bin/loopsyd /usr/bin/loopsy /usr/bin/loopsy-mcp | grep -qE "NEEDED.*(libstdc\+\+|libgcc_s)"'
check "the binaries carry no rpath into a build tree" bash -c '! readelf -d /usr/bin/loopsyd /usr/bin/loopsy | grep -qE "RPATH|RUNPATH"'
export HOME="$home"
unset LOOPSY_DATA_DIR
check "loopsy init makes ~/.loopsy with a private TLS key" bash -c '
    loopsy init && test -f "$HOME/.loopsy/config.yaml" && test -f "$HOME/.loopsy/tls/cert.pem" &&
    test "$(stat -c %a "$HOME/.loopsy/tls/key.pem")" = 600 && test -f /usr/share/loopsy/migrations/0003_peers.sql'
check "loopsy start runs the packaged loopsyd" loopsy start --port 0
check "loopsy exec runs a command" bash -c 'test "$(loopsy exec local echo packaged)" = packaged'
check "loopsy send and pull move a file intact" bash -c '
    head -c 100000 /dev/urandom > "$HOME/data.bin" &&
    loopsy send local "$HOME/data.bin" "$HOME/incoming/data.bin" &&
    loopsy pull local "$HOME/incoming/data.bin" "$HOME/back.bin" &&
    cmp "$HOME/data.bin" "$HOME/back.bin"'
check "the packaged daemon serves the dashboard from its binary, and a login link for it" bash -c '
    port=$(cat "$HOME/.loopsy/daemon.port")
    curl -sf "http://127.0.0.1:$port/dashboard/" | grep -q "<title>Loopsy</title>" &&
    curl -sf "http://127.0.0.1:$port/dashboard/app.js" | grep -q "X-CSRF-Token" &&
    loopsy dashboard --daemon | grep -q "/dashboard/#login="'
check "loopsy peers lists none yet" bash -c 'loopsy peers | grep -q "no peers yet"'
check "loopsy stop" loopsy stop
check "dpkg -r removes the programs" bash -c 'dpkg -r loopsy && ! test -e /usr/bin/loopsyd'
check "dpkg --purge leaves nothing registered" bash -c 'dpkg --purge loopsy && ! dpkg -s loopsy 2>/dev/null | grep -q "^Status: install"'

check_summary deb
