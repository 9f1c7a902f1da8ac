# Shared by the project's scripts: toolchain on PATH and Debian build dependencies installed.
# Sourced, not run.

# C libraries loopsy links against (Debian 12 -dev packages).
LOOPSY_BUILD_PACKAGES="pkg-config libmicrohttpd-dev libsqlite3-dev libgnutls28-dev libavahi-client-dev libcurl4-gnutls-dev
    libstdc++-12-dev binutils python3"

loopsy_log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

# For benchmarks: a TCP port on 127.0.0.1 that nothing listens on now, as the kernel picks one
# (the daemon's port + 1, as the scripts took before, is in the ephemeral range, where a
# client's connection could hold it: nginx then failed to bind).
loopsy_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
loopsy_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Puts swift on PATH (the toolchain lives in /opt/swift on our machines).
loopsy_swift() {
    if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
        export PATH="/opt/swift/usr/bin:$PATH"
    fi
    command -v swift >/dev/null 2>&1 ||
        loopsy_die "Swift 6 is not installed: unpack a Swift 6 toolchain for Debian 12 into /opt/swift (see swift.org/install)"
}

# How the binaries a user runs are built, by scripts/setup.sh and by every benchmark (the .deb's
# rules build the same way): release, the Swift runtime linked in statically (no rpath into the
# toolchain, no 22 MB of toolchain libraries mapped at start), linked by lld with packed
# relative relocations (DT_RELR, glibc 2.36: 50k relocation records become a few KB, and the
# binary 1.3 MB smaller), no dynamic symbol table (swiftc links executables with -export-dynamic,
# which put 10.8k symbols, 870 KB, into .dynsym/.dynstr and kept them from --gc-sections; nothing
# loads a plugin that would look them up), symbols stripped.
# LOOPSY_LAYOUT_FLAGS put each function in its own section, so that --gc-sections drops the
# unused ones (0.6 MB of BoringSSL) and the linker can lay out first the code that start-up runs,
# in the order packaging/symbol-order.txt gives (made by scripts/symbol-order.sh): the kernel maps
# 64 KiB of the binary around each page a program touches, and start-up code spread over the
# whole binary kept most of it resident. The functions the compiler leaves unnamed are named
# for it (scripts/unnamed_functions.py, in the linker below).
# The C++ runtime the Swift runtime (and BoringSSL) needs is linked in statically too: swiftc
# asks for -lstdc++, and the first directory searched holds only libstdc++.a
# (loopsy_static_cxx). Loading libstdc++.so cost each program about 1.7 MiB of RSS (its pages
# and those its relocations dirty) for the few dozen functions it uses. The unwinder comes from
# libgcc's archives for the same reason (-static-libgcc): libgcc_s.so was one more library to
# map and relocate at every start, about 170 KiB of `loopsy --version`'s peak RSS.
# Unused types go too. -internalize-at-link: the compiler no longer marks every public symbol
# "used" (retained), as it must for a library other programs link against; ours are linked into
# one static program that exports nothing. And the program's own objects reach the linker as
# copies in which each Swift type and conformance record depends on its type's descriptor
# (scripts/lld-tied-records.py, the linker clang runs, and scripts/swift_records.py): retained,
# the records kept every type's code whether or not anything used the type. Together 0.74 MB
# of loopsyd (most of swift-crypto, types only the CLI uses).
# The Swift runtime comes from copies of the toolchain's archives (loopsy_static_swift, lld's
# --remap-inputs-file) in which --gc-sections may drop functions: the toolchain marks every one
# "retain", so each function of every runtime object a link pulled in stayed (loopsyd 1.4 MB
# larger, 0.75 MB more RSS when fresh: scripts/unretain-archives.py says why it is safe).
LOOPSY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOOPSY_STATIC_CXX="$LOOPSY_ROOT/.build/static-cxx"
LOOPSY_STATIC_SWIFT="$LOOPSY_ROOT/.build/static-swift"
LOOPSY_LAYOUT_FLAGS=(-Xswiftc -Xfrontend -Xswiftc -function-sections -Xcc -ffunction-sections -Xcc -fdata-sections
    -Xswiftc -Xfrontend -Xswiftc -internalize-at-link)
LOOPSY_RELEASE_FLAGS=(-c release --static-swift-stdlib -Xswiftc -no-toolchain-stdlib-rpath --disable-local-rpath
    -Xswiftc -use-ld=lld -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic
    "${LOOPSY_LAYOUT_FLAGS[@]}" -Xlinker "--symbol-ordering-file=$LOOPSY_ROOT/packaging/symbol-order.txt"
    -Xswiftc -Xclang-linker -Xswiftc "-L$LOOPSY_STATIC_CXX" -Xswiftc -Xclang-linker -Xswiftc -static-libgcc
    -Xlinker "--remap-inputs-file=$LOOPSY_STATIC_SWIFT/remap.txt" -Xlinker "--dependency-file=$LOOPSY_STATIC_SWIFT/linked.d"
    -Xswiftc -Xclang-linker -Xswiftc "--ld-path=$LOOPSY_ROOT/scripts/lld-tied-records.py"
    -Xlinker --no-warn-symbol-ordering -Xlinker --strip-all)

# Builds the products named in "$@" (all when none) that way and sets bin to where they are.
# SwiftPM does not see the contents of the symbol order, of the runtime copies' remap file or of
# the scripts the link runs, only their paths: a program being built that is older than any of
# them is removed, so that it is linked again.
loopsy_build_release() {
    loopsy_static_cxx
    loopsy_static_swift
    bin="$(swift build "${LOOPSY_RELEASE_FLAGS[@]}" --show-bin-path)"
    local programs=("$@") program input
    [ $# -gt 0 ] || programs=(loopsyd loopsy loopsy-mcp)
    for program in "${programs[@]}"; do
        for input in "$LOOPSY_ROOT/packaging/symbol-order.txt" "$LOOPSY_STATIC_SWIFT/remap.txt" \
            "$LOOPSY_ROOT/scripts/swift_records.py" "$LOOPSY_ROOT/scripts/unnamed_functions.py" \
            "$LOOPSY_ROOT/scripts/lld-tied-records.py" \
            "$LOOPSY_ROOT/scripts/regex-engine-users.txt"; do
            if [ -e "$bin/$program" ] && [ "$input" -nt "$bin/$program" ]; then rm -f "$bin/$program"; fi
        done
    done
    rm -f "$LOOPSY_STATIC_SWIFT/linked.d"
    if [ $# -eq 0 ]; then
        swift build "${LOOPSY_RELEASE_FLAGS[@]}" >/dev/null
    fi
    for program in "$@"; do swift build "${LOOPSY_RELEASE_FLAGS[@]}" --product "$program" >/dev/null; done
    # lld remaps only a path it was given exactly as the remap file says it (another toolchain,
    # a symlink): then it quietly links the toolchain's own archives. Its list of what this
    # build linked (none when nothing was linked again) says which.
    if [ -f "$LOOPSY_STATIC_SWIFT/linked.d" ] && ! grep -qF "$LOOPSY_STATIC_SWIFT/libswiftCore.a" "$LOOPSY_STATIC_SWIFT/linked.d"; then
        loopsy_die "the release link used the toolchain's libswiftCore.a, not the copy in $LOOPSY_STATIC_SWIFT (see scripts/unretain-archives.py)"
    fi
    # lld quietly takes libstdc++.so when the archive is not where -L says.
    for program in "${programs[@]}"; do
        if readelf -d "$bin/$program" | grep -q "NEEDED.*libstdc++"; then
            loopsy_die "$program was linked with libstdc++.so, not $LOOPSY_STATIC_CXX/libstdc++.a"
        fi
        if readelf -d "$bin/$program" | grep -q "NEEDED.*libgcc_s"; then
            loopsy_die "$program was linked with libgcc_s.so, not libgcc's archives (-static-libgcc)"
        fi
    done
}

# Makes $LOOPSY_STATIC_CXX hold libstdc++.a (from libstdc++-12-dev, where the toolchain's clang
# finds it) for the release link (see LOOPSY_RELEASE_FLAGS).
loopsy_static_cxx() {
    local archive
    archive="$(clang -print-file-name=libstdc++.a)"
    [ -f "$archive" ] || loopsy_die "libstdc++.a not found (install libstdc++-12-dev)"
    mkdir -p "$LOOPSY_STATIC_CXX"
    ln -sfn "$archive" "$LOOPSY_STATIC_CXX/libstdc++.a"
}

# The toolchain's static Swift runtime archives, copied with their functions no longer marked
# "retain" (scripts/unretain-archives.py), and the remap file that makes the release link use them.
loopsy_static_swift() {
    python3 "$LOOPSY_ROOT/scripts/unretain-archives.py" "$LOOPSY_STATIC_SWIFT" ||
        loopsy_die "could not copy the Swift runtime's archives into $LOOPSY_STATIC_SWIFT"
}

# For benchmarks: the release binaries in $bin, built unless LOOPSY_BENCH_BUILT is set (bench/all.sh
# builds once for all of them).
loopsy_bench_build() {
    if [ -n "${LOOPSY_BENCH_BUILT:-}" ]; then
        bin="$(swift build "${LOOPSY_RELEASE_FLAGS[@]}" --show-bin-path)"
    else
        loopsy_log "building release binaries"
        loopsy_build_release
    fi
}

# For the paired benchmarks (bench/ab.sh, bench/ab-push.sh): the two loopsyd builds "$1" and "$2"
# as absolute paths in the array binaries (dies if one is not an executable file).
loopsy_ab_binaries() {
    binaries=()
    local program
    for program in "$1" "$2"; do
        [ -f "$program" ] && [ -x "$program" ] || loopsy_die "$program: not an executable loopsyd"
        binaries+=("$(realpath "$program")")
    done
}

# For benchmarks: the seconds the command "$@" took (its output discarded).
loopsy_timed() {
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    awk -v start="$start" -v end="$end" 'BEGIN {printf "%.6f\n", end - start}'
}

# For the paired benchmarks' summaries: an awk function, median(values, count), that sorts the
# array values[1..count] in place (a few dozen rounds) and returns its median.
LOOPSY_AWK_MEDIAN='function median(v, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}'

# For benchmarks: milliseconds of the first hyperfine result in JSON file "$1" whose command
# starts with "$2"; "$3" is the statistic (median, the default, or mean), "$4" the decimals (1).
loopsy_bench_ms() {
    python3 -c "import json,sys; r=[x for x in json.load(open(sys.argv[1]))['results'] if x['command'].startswith(sys.argv[2])][0]; print(f'{r[sys.argv[3]]*1000:.{sys.argv[4]}f}')" \
        "$1" "$2" "${3:-median}" "${4:-1}"
}

# For benchmarks run by bench/all.sh: one row of its summary table (what, loopsy, reference,
# goal), appended to $LOOPSY_BENCH_SUMMARY when that is set.
loopsy_bench_summary() {
    [ -n "${LOOPSY_BENCH_SUMMARY:-}" ] || return 0
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$LOOPSY_BENCH_SUMMARY"
}

# Installs the missing Debian packages named in "$@" (apt-get needs root, or sudo).
loopsy_apt() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    loopsy_log "installing ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        loopsy_die "apt-get install ${missing[*]} failed"
}

# For benchmarks: a release loopsyd on a free loopback port with its own data dir under "$1",
# rate limits off (a benchmark is one caller sending thousands of requests). Sets
# LOOPSY_DATA_DIR, loopsyd_pid and loopsyd_port; "$bin" must hold the release binaries.
# A config already in "$1/loopsy" (a caller's own settings) is kept.
loopsy_bench_daemon() {
    export LOOPSY_DATA_DIR="$1/loopsy"
    [ -f "$LOOPSY_DATA_DIR/config.yaml" ] || "$bin/loopsy" init --no-mcp >/dev/null
    sed -i -e 's/^  context: 60$/  context: 0/' -e 's/^  execute: 30$/  execute: 0/' \
        -e 's/^  transfer: 10$/  transfer: 0/' "$LOOPSY_DATA_DIR/config.yaml"
    if [ -n "${THREADS:-}" ]; then  # THREADS=N overrides loopsyd's worker count
        sed -i "s/^  port: \\(.*\\)$/  port: \\1\\n  threads: $THREADS/" "$LOOPSY_DATA_DIR/config.yaml"
    fi
    "$bin/loopsyd" --port 0 --host 127.0.0.1 >"$1/loopsyd.out" 2>"$1/loopsyd.err" &
    loopsyd_pid=$!
    for _ in $(seq 100); do [ -s "$LOOPSY_DATA_DIR/daemon.port" ] && break; sleep 0.1; done
    [ -s "$LOOPSY_DATA_DIR/daemon.port" ] || loopsy_die "loopsyd did not start: $(cat "$1/loopsyd.err")"
    loopsyd_port="$(cat "$LOOPSY_DATA_DIR/daemon.port")"
}

# For benchmarks: nginx serving directory "$2" on 127.0.0.1:"$3", files under "$1" (nginx.conf,
# nginx.pid). With "$4" = small, it is set up as its experts set it up for small files: no
# sendfile (a 200-byte body goes out with the headers in one write), open file descriptors and
# their metadata cached, every worker accepting; its files are then nginx-small.*.
loopsy_bench_nginx() {
    local name=nginx tuning="sendfile on;"
    if [ "${4:-}" = small ]; then
        name=nginx-small
        tuning="sendfile off; tcp_nodelay on; etag off; server_tokens off;
    open_file_cache max=1024 inactive=300s; open_file_cache_valid 300s; open_file_cache_errors on;"
    fi
    cat >"$1/$name.conf" <<CONF
worker_processes auto;
pid $1/$name.pid;
error_log $1/$name-error.log;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    $tuning
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server { listen 127.0.0.1:$3; root $2; }
}
CONF
    nginx -c "$1/$name.conf"
    sleep 0.3
}

# For benchmarks: a private sshd on 127.0.0.1:"$2" with a throwaway host and client key under
# "$1" (nothing in ~/.ssh is touched). Sets ssh_opts for ssh/scp (-p/-P are added by callers).
loopsy_bench_sshd() {
    ssh-keygen -q -t ed25519 -N '' -f "$1/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$1/client_key"
    cp "$1/client_key.pub" "$1/authorized_keys"
    chmod 600 "$1/authorized_keys"
    mkdir -p /run/sshd
    cat >"$1/sshd_config" <<CONF
Port $2
ListenAddress 127.0.0.1
HostKey $1/host_key
AuthorizedKeysFile $1/authorized_keys
PidFile $1/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
    /usr/sbin/sshd -f "$1/sshd_config"
    ssh_opts=(-q -i "$1/client_key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes)
    sleep 0.3
}

# For benchmarks: stops what the loopsy_bench_* helpers started under "$1" and removes it.
loopsy_bench_cleanup() {
    [ -n "${loopsyd_pid:-}" ] && kill "$loopsyd_pid" 2>/dev/null || true
    for pid_file in "$1"/nginx*.pid "$1/sshd.pid"; do
        [ -f "$pid_file" ] && kill "$(cat "$pid_file")" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$1"
}
