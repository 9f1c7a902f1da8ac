#!/usr/bin/env bash
# A small multi-host "lab" for integration tests: Linux network namespaces joined by a bridge,
# each host with its own dbus-daemon and avahi-daemon so mDNS works between them (see
# DESIGN.md, "Tests across hosts"). Needs root.
#
#   lab.sh check                    exit 0 if this machine can run labs, else say what is missing
#   lab.sh up LAB N                 create lab LAB ([a-z0-9]{1,6}) with hosts 1..N (N <= 20);
#                                   prints "LAB-hI 10.77.0.I BUS_ADDRESS" per host
#   lab.sh exec LAB I CMD [ARGS...] run CMD in host I (DBUS_SYSTEM_BUS_ADDRESS = its bus)
#   lab.sh avahi LAB I stop|start   stop or (re)start host I's avahi-daemon
#   lab.sh down LAB                 kill everything in the lab, delete it (never fails)
#   lab.sh down-all                 the same for every lab under /tmp/loopsy-lab
#
# Layout of lab LAB with N hosts:
#   namespace LAB-sw   bridge br0 with ports h1..hN
#   namespace LAB-hI   lo, eth0 = 10.77.0.I/24 (veth peer of LAB-sw's hI); dbus-daemon and
#                      avahi-daemon (host name LAB-hI.local, eth0 only, IPv4 only)
#   /tmp/loopsy-lab/LAB/hI/   bus (dbus socket), dbus.conf, avahi.conf, *.pid, *.log, services/
# Labs never share a link, so every lab uses the same subnet.
set -euo pipefail

LAB_ROOT=/tmp/loopsy-lab
SUBNET=10.77.0
MAX_HOSTS=20 # tests use a few; bench/lan.sh a 20-host LAN
READY_TIMEOUT=15 # seconds to wait for a daemon to come up

die() { printf 'lab.sh: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '6,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

check_lab() { [[ $1 =~ ^[a-z0-9]{1,6}$ ]] || die "bad lab id '$1' (want [a-z0-9], at most 6 chars)"; }
check_index() { [[ $1 =~ ^[1-9][0-9]?$ && $1 -le $MAX_HOSTS ]] || die "bad host index '$1' (want 1..$MAX_HOSTS)"; }

host_dir() { echo "$LAB_ROOT/$1/h$2"; }
bus_address() { echo "unix:path=$(host_dir "$1" "$2")/bus"; }
ns_exists() { [ -e "/run/netns/$1" ]; }

# Runs "$@" until it succeeds, for at most $1 seconds; polls every 20 ms.
poll() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.02
    done
}

# Starts "$@" detached: own session, stdin from /dev/null, output to log file $1 and every
# other inherited fd closed, so no daemon holds open a pipe our caller reads to EOF (the
# caller of "up" would hang) or our flock.
spawn() {
    local log=$1; shift
    (
        exec </dev/null >>"$log" 2>&1
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
        done
        exec setsid "$@"
    ) &
}

# State letter of process $1 (R, S, Z, ...), empty if there is no such process.
proc_state() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) } # the fields after "pid (comm) "; the first is the state
    echo "${stat%% *}"
}

# True while pid $1 is alive and runs program $2 (guards against pid reuse). A zombie counts
# as dead: our daemons are orphans, and the init of some sandboxes reaps them seconds late.
pid_is() {
    [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    local state
    state=$(proc_state "$1")
    [ -n "$state" ] && [ "$state" != Z ]
}

# True once the process whose pid is in file $1 has exited (false while the file is not
# written yet: the daemon is still starting).
pidfile_dead() {
    local pid state
    pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] || return 1
    state=$(proc_state "$pid")
    [ -z "$state" ] || [ "$state" = Z ]
}

# Asks host's bus whether avahi-daemon is registered there and RUNNING (state 2: its host
# name is probed and announced, so peers can resolve it).
avahi_running() {
    DBUS_SYSTEM_BUS_ADDRESS=$(bus_address "$1" "$2") \
        dbus-send --system --print-reply --reply-timeout=500 --dest=org.freedesktop.Avahi / \
        org.freedesktop.Avahi.Server.GetState 2>/dev/null | grep -q 'int32 2'
}

bus_up() {
    DBUS_SYSTEM_BUS_ADDRESS=$(bus_address "$1" "$2") \
        dbus-send --system --print-reply --reply-timeout=500 --dest=org.freedesktop.DBus / \
        org.freedesktop.DBus.GetId
}

avahi_owns_name() {
    DBUS_SYSTEM_BUS_ADDRESS=$(bus_address "$1" "$2") \
        dbus-send --system --print-reply --reply-timeout=500 --dest=org.freedesktop.DBus / \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.Avahi 2>/dev/null |
        grep -q 'boolean true'
}

# --- check ------------------------------------------------------------------------------

cmd_check() {
    local missing=() tool ns="loopsychk$$"
    [ "$(id -u)" -eq 0 ] || missing+=("root (running as uid $(id -u))")
    for tool in ip dbus-daemon dbus-send avahi-daemon setsid mount; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool (command not found)")
    done
    if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null 2>&1; then
        if ip netns add "$ns" 2>/dev/null; then
            ip netns exec "$ns" ip link set lo up 2>/dev/null ||
                missing+=("ip netns exec (cannot run in a new network namespace)")
            ip -n "$ns" link add loopsybr type bridge 2>/dev/null ||
                missing+=("bridge interfaces (ip link add type bridge failed)")
            ip -n "$ns" link add loopsyva type veth peer name loopsyvb 2>/dev/null ||
                missing+=("veth interfaces (ip link add type veth failed)")
            ip netns exec "$ns" mount -t tmpfs tmpfs /tmp 2>/dev/null ||
                missing+=("tmpfs mounts inside ip netns exec")
            ip netns del "$ns" 2>/dev/null || true
        else
            missing+=("ip netns (ip netns add failed: no network namespaces here)")
        fi
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        printf 'lab.sh: cannot run labs here; missing:\n' >&2
        printf '  %s\n' "${missing[@]}" >&2
        exit 1
    fi
}

# --- up ---------------------------------------------------------------------------------

# Config files of host $2 of lab $1.
write_configs() {
    local lab=$1 i=$2 dir
    dir=$(host_dir "$lab" "$i")
    mkdir -p "$dir/services"
    # A private system bus: anyone (we are all root anyway) may own any name and talk to
    # anyone, so avahi can own org.freedesktop.Avahi and any client may call it. No
    # includes of /usr/share/dbus-1/system.d, no service activation.
    cat >"$dir/dbus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$dir/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
EOF
    cat >"$dir/avahi.conf" <<EOF
[server]
host-name=$lab-h$i
domain-name=local
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes

[wide-area]
enable-wide-area=no

[publish]
publish-workstation=no
publish-hinfo=no
publish-addresses=yes
publish-domain=yes
publish-aaaa-on-ipv4=no

[reflector]
enable-reflector=no
EOF
}

# The bridge namespace and host namespaces with their links. Creating namespaces is
# serialised across concurrent "up"s: the first "ip netns add" on a machine sets up the
# /run/netns mount, which two racing calls could do twice.
make_network() {
    local lab=$1 n=$2 i sw="$1-sw"
    (
        flock 9
        ip netns add "$sw"
        for ((i = 1; i <= n; i++)); do ip netns add "$lab-h$i"; done
    ) 9>"$LAB_ROOT/.netns.lock"

    # mcast_snooping 0: flood all multicast to all ports (no IGMP querier here); stp off, so
    # ports forward at once.
    ip -n "$sw" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
    ip -n "$sw" link set br0 up
    for ((i = 1; i <= n; i++)); do
        local h="$lab-h$i"
        # Made inside LAB-sw with the peer moved straight into the host namespace, so no
        # interface name ever exists in the root namespace (labs cannot clash there).
        ip -n "$sw" link add "h$i" type veth peer name eth0 netns "$h"
        ip -n "$sw" link set "h$i" master br0 up
        ip -n "$h" link set lo up
        ip -n "$h" addr add "$SUBNET.$i/24" dev eth0
        ip -n "$h" link set eth0 up
    done
}

start_dbus() {
    local lab=$1 i=$2 dir
    dir=$(host_dir "$lab" "$i")
    rm -f "$dir/bus" "$dir/dbus.pid"
    # The shell records its pid and execs (ip netns exec execs too), so the pid is the daemon's.
    spawn "$dir/dbus.log" ip netns exec "$lab-h$i" sh -c 'echo $$ >"$1"; shift; exec "$@"' sh \
        "$dir/dbus.pid" dbus-daemon --config-file="$dir/dbus.conf" --nofork --nopidfile --nosyslog
}

start_avahi() {
    local lab=$1 i=$2 dir
    dir=$(host_dir "$lab" "$i")
    rm -f "$dir/avahi.pid" # wait_avahi must not take a previous daemon's exit for ours
    # "ip netns exec" runs us in a new mount namespace (with / made a slave), so these mounts
    # are private to this avahi-daemon: its own /run/avahi-daemon (pid file and socket; the
    # daemon refuses to start if another one's pid file is there) and an empty static services
    # dir instead of the machine's /etc/avahi/services (tests may drop .service files into
    # the host's services/ dir and send SIGHUP).
    spawn "$dir/avahi.log" env DBUS_SYSTEM_BUS_ADDRESS="$(bus_address "$lab" "$i")" \
        ip netns exec "$lab-h$i" sh -c '
            set -e
            echo $$ >"$1"
            mount -t tmpfs -o mode=0755,size=1m tmpfs /run/avahi-daemon
            mount --bind "$2" /etc/avahi/services
            exec avahi-daemon -f "$3" --no-drop-root --no-chroot --no-rlimits' sh \
        "$dir/avahi.pid" "$dir/services" "$dir/avahi.conf"
}

# Prints the end of host's log $3 to stderr (for failure messages).
show_log() {
    local file
    file="$(host_dir "$1" "$2")/$3.log"
    [ -s "$file" ] || return 0
    printf -- '--- %s (last lines) ---\n' "$file" >&2
    tail -n 15 "$file" >&2
}

# Waits until $4 (a check taking LAB I) succeeds for host I's daemon $3 (dbus or avahi);
# fails at once if the daemon exits, printing the end of its log.
wait_daemon() {
    local lab=$1 i=$2 daemon=$3 check=$4 pidfile deadline=$((SECONDS + READY_TIMEOUT))
    pidfile="$(host_dir "$lab" "$i")/$daemon.pid"
    until "$check" "$lab" "$i" >/dev/null 2>&1; do
        if pidfile_dead "$pidfile"; then
            printf 'lab.sh: host %s: %s-daemon exited while starting\n' "$i" "$daemon" >&2
            show_log "$lab" "$i" "$daemon"
            return 1
        fi
        if [ $SECONDS -ge $deadline ]; then
            printf 'lab.sh: host %s: %s-daemon not ready after %ss\n' "$i" "$daemon" "$READY_TIMEOUT" >&2
            show_log "$lab" "$i" "$daemon"
            return 1
        fi
        sleep 0.02
    done
}

wait_dbus() { wait_daemon "$1" "$2" dbus bus_up; }
wait_avahi() { wait_daemon "$1" "$2" avahi avahi_running; }

up_failed() {
    local lab=$1
    printf 'lab.sh: up %s failed; removing the lab\n' "$lab" >&2
    cmd_down "$lab"
}

cmd_up() {
    local lab=$1 n=$2 i
    check_lab "$lab"
    [[ $n =~ ^[1-9][0-9]?$ && $n -le $MAX_HOSTS ]] || die "bad host count '$n' (want 1..$MAX_HOSTS)"
    [ "$(id -u)" -eq 0 ] || die "must run as root (lab.sh check says what else is needed)"
    cmd_down "$lab" # a lab left over from an earlier run

    trap "up_failed $lab" EXIT # $lab is checked: [a-z0-9] only
    mkdir -p "$LAB_ROOT/$lab" /run/avahi-daemon # mount point for the private tmpfs
    for ((i = 1; i <= n; i++)); do write_configs "$lab" "$i"; done
    make_network "$lab" "$n"
    # All hosts start in parallel; the wait is about one avahi host name probe (~1 s).
    for ((i = 1; i <= n; i++)); do start_dbus "$lab" "$i"; done
    for ((i = 1; i <= n; i++)); do
        wait_dbus "$lab" "$i" || die "host $i: dbus-daemon did not start"
    done
    for ((i = 1; i <= n; i++)); do start_avahi "$lab" "$i"; done
    for ((i = 1; i <= n; i++)); do
        wait_avahi "$lab" "$i" || die "host $i: avahi-daemon did not start"
    done
    trap - EXIT
    for ((i = 1; i <= n; i++)); do
        printf '%s-h%d %s.%d %s\n' "$lab" "$i" "$SUBNET" "$i" "$(bus_address "$lab" "$i")"
    done
}

# --- exec, avahi ------------------------------------------------------------------------

need_host() {
    check_lab "$1"
    check_index "$2"
    ns_exists "$1-h$2" || die "no host $2 in lab '$1' (namespace $1-h$2 missing; run lab.sh up)"
}

cmd_exec() {
    local lab=$1 i=$2; shift 2
    [ $# -gt 0 ] || usage
    need_host "$lab" "$i"
    export DBUS_SYSTEM_BUS_ADDRESS
    DBUS_SYSTEM_BUS_ADDRESS=$(bus_address "$lab" "$i")
    exec ip netns exec "$lab-h$i" "$@"
}

stop_avahi() {
    local lab=$1 i=$2 pid
    pid=$(cat "$(host_dir "$lab" "$i")/avahi.pid" 2>/dev/null || true)
    if pid_is "$pid" avahi-daemon; then
        kill -TERM "$pid" 2>/dev/null || true # avahi sends goodbye packets on TERM
        poll 5 eval "! pid_is $pid avahi-daemon" || kill -KILL "$pid" 2>/dev/null || true
        poll 2 eval "! pid_is $pid avahi-daemon" || die "host $i: avahi-daemon (pid $pid) does not die"
    fi
    # The bus notices the closed connection asynchronously; return once the name is gone.
    poll 5 eval "! avahi_owns_name $lab $i" || die "host $i: org.freedesktop.Avahi still owned after stop"
}

cmd_avahi() {
    local lab=$1 i=$2 action=$3
    need_host "$lab" "$i"
    case $action in
        stop) stop_avahi "$lab" "$i" ;;
        start)
            stop_avahi "$lab" "$i"
            start_avahi "$lab" "$i"
            wait_avahi "$lab" "$i" || die "host $i: avahi-daemon did not start"
            ;;
        *) usage ;;
    esac
}

# --- down -------------------------------------------------------------------------------

# Pids of every process in the given namespaces, except ourselves.
ns_pids() {
    local ns
    for ns in "$@"; do ip netns pids "$ns" 2>/dev/null || true; done | grep -vx "$$" || true
}

ns_empty() { [ -z "$(ns_pids "$@")" ]; }

cmd_down() {
    local lab=$1 namespaces=() ns pids
    check_lab "$lab"
    while read -r ns _; do
        [[ $ns =~ ^$lab-(sw|h[0-9]+)$ ]] && namespaces+=("$ns")
    done < <(ip netns list 2>/dev/null || true)
    if [ ${#namespaces[@]} -gt 0 ]; then
        pids=$(ns_pids "${namespaces[@]}")
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086 # one pid per word
            kill -TERM $pids 2>/dev/null || true
            if ! poll 3 ns_empty "${namespaces[@]}"; then
                # shellcheck disable=SC2046
                kill -KILL $(ns_pids "${namespaces[@]}") 2>/dev/null || true
                poll 2 ns_empty "${namespaces[@]}" || true
            fi
        fi
        for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    fi
    rm -rf "${LAB_ROOT:?}/$lab"
}

cmd_down_all() {
    local dir
    for dir in "$LAB_ROOT"/*/; do
        [ -d "$dir" ] || continue
        dir=${dir%/}
        [[ ${dir##*/} =~ ^[a-z0-9]{1,6}$ ]] && cmd_down "${dir##*/}"
    done
    return 0
}

# --- main -------------------------------------------------------------------------------

[ $# -ge 1 ] || usage
command=$1; shift
case $command in
    check) [ $# -eq 0 ] || usage; cmd_check ;;
    up) [ $# -eq 2 ] || usage; cmd_up "$@" ;;
    exec) [ $# -ge 3 ] || usage; cmd_exec "$@" ;;
    avahi) [ $# -eq 3 ] || usage; cmd_avahi "$@" ;;
    down) [ $# -eq 1 ] || usage; cmd_down "$1" ;;
    down-all) [ $# -eq 0 ] || usage; cmd_down_all ;;
    *) usage ;;
esac
