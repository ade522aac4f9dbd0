#!/bin/bash
# with-glusterfs.sh VOLUME-KIND COMMAND [ARGS...]
#
# Runs COMMAND with KVT_CLUSTER_DIR set to a fresh GlusterFS volume mounted
# over FUSE on loopback, then tears everything down, whatever happened.
# VOLUME-KIND: "distribute" (3 bricks) or "replica" (replica 2).
# Exit: COMMAND's status; 77 (meson: SKIP) with the reason on stderr when
# GlusterFS cannot start here (not installed, not root, no FUSE, no /etc/hosts
# alias possible, glusterd or the mount does not come up in time).
#
# Why it looks like this (issue 18): there is no systemd in CI, so glusterd
# runs directly with a private working and run directory and a volfile that
# binds it to 127.0.0.1 (the bricks inherit it: nothing listens beyond
# loopback). The CLI refuses bricks on "127.0.0.1" or "localhost", hence a
# host alias. Bricks sit on the root disk, hence `force`. strict-o-direct
# makes O_DIRECT writes bypass the client's cache. Every GlusterFS command
# runs under `timeout` and every wait has a deadline: a hung filesystem
# fails or skips this test, it never hangs the suite. Teardown kills by
# pidfile (never by process name) and wipes the bricks.
set -u

kind=${1:?volume kind}
shift
[ $# -ge 1 ] || { echo "usage: $0 distribute|replica COMMAND [ARGS...]" >&2; exit 2; }

# The whole fixture stays within this many seconds (meson's timeout for it is
# 240): COMMAND gets what setup left, less a reserve for teardown.
fixture_budget=${KVT_GLUSTER_FIXTURE_SECONDS:-200}
teardown_reserve=40
alias_name=kvt-gluster-node
volume=kvt${kind:0:1}$$

skip() {
    echo "SKIP: GlusterFS unavailable: $*" >&2
    exit 77
}

for prog in glusterd gluster glusterfs mountpoint timeout; do
    command -v "$prog" >/dev/null 2>&1 || skip "$prog is not installed (apt-get install glusterfs-server glusterfs-client)"
done
[ "$(id -u)" = 0 ] || skip "needs root (glusterd and FUSE mounts)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
case $kind in distribute | replica) ;; *) echo "unknown volume kind $kind" >&2; exit 2 ;; esac

# One GlusterFS at a time on this machine: glusterd's port is fixed.
lock=/tmp/kvt-glusterfs.lock
exec 9>"$lock"
timeout 60 flock 9 || skip "another GlusterFS fixture held $lock for 60 s"
# Holding the lock, no other fixture runs (its daemons never hold fd 9: they
# are started with it closed), so any daemon of a fixture's directory left
# here is a stale one — a run killed before its teardown — and would hold
# glusterd's port: stop it.
pkill -KILL -f -- '/tmp/kvt-gluster\.[A-Za-z0-9]{6}/' 2>/dev/null
for _ in $(seq 20); do pgrep -f -- '/tmp/kvt-gluster\.[A-Za-z0-9]{6}/' >/dev/null || break; sleep 0.1; done
for stale in /tmp/kvt-gluster.??????; do
    [ -d "$stale" ] || continue
    grep -q " $stale/mnt " /proc/mounts && umount -l "$stale/mnt" 2>/dev/null
    rm -rf --one-file-system "$stale"
done

work=$(mktemp -d /tmp/kvt-gluster.XXXXXX) || skip "mktemp failed"
mnt=$work/mnt
mkdir -p "$work/glusterd" "$work/run" "$work/logs" "$work/bricks" "$mnt"
sock=$work/run/glusterd.socket

cli() { timeout "${cli_timeout:-20}" gluster --mode=script --glusterd-sock="$sock" \
    --log-file="$work/logs/cli.log" "$@"; }

teardown() {
    local rc=$?
    trap - EXIT INT TERM
    # The mount first (a stopped client would otherwise block the unmount).
    if [ -f "$work/client.pid" ]; then kill -CONT "$(cat "$work/client.pid")" 2>/dev/null; fi
    if mountpoint -q "$mnt" 2>/dev/null; then
        timeout 10 umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
    fi
    if [ -S "$sock" ]; then
        cli_timeout=10 cli volume stop "$volume" force >/dev/null 2>&1
        cli_timeout=10 cli volume delete "$volume" >/dev/null 2>&1
    fi
    # Every daemon of this fixture wrote a pidfile under $work: glusterd,
    # the bricks, the self-heal daemon, the client.
    local pids=() p
    while IFS= read -r -d '' f; do
        p=$(cat "$f" 2>/dev/null)
        [[ $p =~ ^[0-9]+$ ]] && pids+=("$p")
    done < <(find "$work" /var/run/gluster -name '*.pid' -newer "$work/stamp" -print0 2>/dev/null)
    ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null
    for _ in $(seq 30); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    ((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null
    if mountpoint -q "$mnt" 2>/dev/null; then umount -l "$mnt" 2>/dev/null; fi
    if ((rc != 0 && rc != 77)) && [ -d "$work/logs" ]; then
        echo "--- GlusterFS logs (last lines) ---" >&2
        tail -n 15 "$work"/logs/*.log >&2 2>/dev/null
    fi
    rm -rf "$work"
    exit "$rc"
}
touch "$work/stamp"
trap teardown EXIT
trap 'exit 143' INT TERM

# The host alias the CLI accepts for 127.0.0.1.
if ! grep -qE "^127\.0\.0\.1[[:space:]].*\b$alias_name\b" /etc/hosts; then
    echo "127.0.0.1 $alias_name" >>/etc/hosts 2>/dev/null || skip "cannot add the host alias to /etc/hosts"
fi

cat >"$work/glusterd.vol" <<EOF
volume management
    type mgmt/glusterd
    option working-directory $work/glusterd
    option run-directory $work/run
    option glusterd-sockfile $sock
    option transport-type socket
    option transport.socket.bind-address 127.0.0.1
    option transport.socket.listen-port 24007
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
end-volume
EOF

timeout 20 glusterd --volfile="$work/glusterd.vol" --pid-file="$work/glusterd.pid" \
    --log-file="$work/logs/glusterd.log" 9>&- || skip "glusterd did not start (see $work/logs/glusterd.log)"
deadline=$((SECONDS + 20))
until cli_timeout=5 cli volume list >/dev/null 2>&1; do
    ((SECONDS < deadline)) || skip "glusterd did not answer within 20 s"
    sleep 0.2
done

b=$work/bricks
if [ "$kind" = distribute ]; then
    bricks=("$alias_name:$b/d1" "$alias_name:$b/d2" "$alias_name:$b/d3")
    cli volume create "$volume" "${bricks[@]}" force >"$work/logs/create.out" 2>&1 ||
        skip "volume create failed: $(tail -n 2 "$work/logs/create.out")"
else
    bricks=("$alias_name:$b/r1" "$alias_name:$b/r2")
    cli volume create "$volume" replica 2 "${bricks[@]}" force >"$work/logs/create.out" 2>&1 ||
        skip "volume create failed: $(tail -n 2 "$work/logs/create.out")"
fi
cli volume set "$volume" performance.strict-o-direct on >/dev/null 2>&1 ||
    skip "cannot set performance.strict-o-direct"
# A dead brick or client is noticed in seconds, not the default 42.
cli volume set "$volume" network.ping-timeout 5 >/dev/null 2>&1
cli_timeout=40 cli volume start "$volume" >"$work/logs/start.out" 2>&1 ||
    skip "volume start failed: $(tail -n 2 "$work/logs/start.out")"

timeout 30 glusterfs --volfile-server=127.0.0.1 --volfile-id="/$volume" \
    --pid-file="$work/client.pid" --log-file="$work/logs/client.log" "$mnt" 9>&- ||
    skip "the FUSE client did not start"
deadline=$((SECONDS + 20))
until mountpoint -q "$mnt" && timeout 5 stat "$mnt" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || skip "the volume did not mount within 20 s"
    sleep 0.2
done
timeout 10 touch "$mnt/.kvt-probe" && timeout 10 rm -f "$mnt/.kvt-probe" ||
    skip "the mounted volume is not writable"

echo "GlusterFS $kind volume $volume mounted at $mnt (setup ${SECONDS} s)" >&2
# KVT_GLUSTER_KILL_BRICK=N (1-based): the test is told the pidfile of brick N,
# to kill it under a running store (test_cluster.c's brick test).
if [ -n "${KVT_GLUSTER_KILL_BRICK:-}" ]; then
    brick_dir=${bricks[$((KVT_GLUSTER_KILL_BRICK - 1))]#*:}
    brick_pidfile=$(find "$work" /var/run/gluster -name "*${brick_dir//\//-}.pid" \
        -newer "$work/stamp" 2>/dev/null | head -n 1)
    [ -n "$brick_pidfile" ] || skip "no pidfile for brick $KVT_GLUSTER_KILL_BRICK ($brick_dir)"
    export KVT_GLUSTER_KILL_BRICK_PIDFILE=$brick_pidfile
fi
export KVT_CLUSTER_DIR=$mnt
export KVT_GLUSTER_CLIENT_PID
KVT_GLUSTER_CLIENT_PID=$(cat "$work/client.pid" 2>/dev/null)
start=$SECONDS
test_budget=$((fixture_budget - teardown_reserve - SECONDS))
((test_budget >= 30)) || skip "setup took ${SECONDS} s, leaving too little time for the test"
timeout -k 5 "$test_budget" "$@"
rc=$?
((rc == 124 || rc == 137)) && echo "FAIL: the test ran past its ${test_budget} s budget on GlusterFS" >&2
echo "GlusterFS $kind: test ran $((SECONDS - start)) s, status $rc" >&2
exit "$rc"
