#!/usr/bin/env bash
# Builds the Debian package: ./dist/loopsy_<version>_amd64.deb (and runs lintian on it).
# The Swift toolchain comes from PATH or /opt/swift; Debian build dependencies are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

loopsy_apt $LOOPSY_BUILD_PACKAGES debhelper dpkg-dev help2man lintian rsync
loopsy_swift
version="$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)"
build="$(pwd)/.build-deb-src"
mkdir -p "$build" dist
loopsy_log "staging sources in $build"
# The package is built from a copy with debian/ at its top; the SwiftPM build dir is kept
# between runs (.build-deb inside the copy), so rebuilding is incremental.
rsync -a --delete --exclude '/.build*' --exclude '/.git' --exclude '/dist' --exclude '/.venv' ./ "$build/src/"
rm -rf "$build/src/debian"
cp -r packaging/debian "$build/src/debian"
loopsy_log "building loopsy $version (release, static Swift runtime)"
(cd "$build/src" && dpkg-buildpackage -b -us -uc -d >"$build/build.log" 2>&1) || {
    tail -40 "$build/build.log" >&2
    loopsy_die "dpkg-buildpackage failed (full log: $build/build.log)"
}
mv -f "$build"/loopsy_"$version"_*.deb dist/
rm -f "$build"/loopsy_"$version"_*.{buildinfo,changes}
deb="dist/loopsy_${version}_amd64.deb"
loopsy_log "lintian"
lintian --fail-on error,warning "$deb"
echo "$deb"
