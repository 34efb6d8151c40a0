# podman (with conmon) running containers on runr: `podman --runtime PATH`, with its own
# storage, run root and configuration. Sourced by run.sh; defines podman_suite.

P() {
  podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --tmpdir "$WORK/podman/tmp" \
    --runtime "$PODMAN_RUNTIME" --cgroup-manager cgroupfs --events-backend file "$@"
}

podman_setup() {
  PODMAN_RUNTIME=$(runtime_for podman)
  mkdir -p "$WORK/podman/root" "$WORK/podman/run" "$WORK/podman/tmp"
  # runr writes runc's json error lines, so podman may ask for them (--log-format=json).
  export CONTAINERS_CONF="$WORK/podman/containers.conf"
  # As root podman asks for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576, which needs
  # CAP_SYS_RESOURCE where the hard limits are lower (runc and crun fail the same way; some
  # sandboxes withhold it); and podman itself caps its own RLIMIT_NPROC at 32768 then.
  # Ask for what we have.
  local nofile nproc
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu)
  [ "$nproc" != unlimited ] && [ "$nproc" -lt 32768 ] || nproc=32768
  cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime_supports_json = ["runr"]
CONF
  P load -i "$IMAGE_TAR" >/dev/null
}

podman_teardown() {
  P rm -af -t 0 >/dev/null 2>&1 || true
  P pod rm -af >/dev/null 2>&1 || true
  P system reset -f >/dev/null 2>&1 || true
  unset CONTAINERS_CONF
}

p_run_rm_exit_code() {
  local rc
  rc=$(code_of P run --rm "$IMAGE" sh -c 'exit 3')
  expect_eq "$rc" 3 "exit code of run --rm"
  expect_contains "$(cat "$WORK/calls/podman.log")" "create " "runr was called"
  expect_eq "$(P ps -aq | wc -l)" 0 "containers left after --rm"
}

p_detached_exec_stop_rm() {
  local id out
  id=$(P run -d "$IMAGE" sleep 1000)
  out=$(P exec "$id" sh -c 'echo from-exec; id -u')
  expect_eq "$out" "from-exec
0" "exec output"
  expect_eq "$(P inspect -f '{{.State.Status}}' "$id")" running "status"
  # sleep as pid 1 ignores SIGTERM: stop falls back to SIGKILL after the timeout.
  P stop -t 1 "$id" >/dev/null
  expect_eq "$(P inspect -f '{{.State.ExitCode}}' "$id")" 137 "exit code after stop"
  P rm "$id" >/dev/null
  expect_eq "$(P ps -aq | wc -l)" 0 "containers left"
}

p_run_it() {
  local out rc
  set +e
  out=$(pty_run 'echo $((6*7)); tty; exit 5\n' podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" \
    --tmpdir "$WORK/podman/tmp" --runtime "$PODMAN_RUNTIME" --cgroup-manager cgroupfs \
    --events-backend file run -it --rm "$IMAGE" sh)
  rc=$?
  set -e
  echo "$out"
  expect_contains "$out" "42" "arithmetic typed into the shell"
  expect_contains "$out" "/dev/pts/0" "the container's terminal"
  expect_eq "$rc" 5 "exit code"
}

p_exec_it() {
  local id out
  id=$(P run -d "$IMAGE" sleep 1000)
  out=$(pty_run 'tty; echo $((7*6)); exit\n' podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" \
    --tmpdir "$WORK/podman/tmp" --runtime "$PODMAN_RUNTIME" --cgroup-manager cgroupfs \
    --events-backend file exec -it "$id" sh)
  echo "$out"
  expect_contains "$out" "42" "typed into exec -it"
  expect_contains "$out" "/dev/pts/" "exec's terminal"
  P rm -f -t 0 "$id" >/dev/null
}

p_pause_unpause() {
  local id pid
  id=$(P run -d "$IMAGE" sh -c 'while :; do date +%s%N > /tmp/tick; sleep 0.05; done')
  P pause "$id" >/dev/null
  expect_eq "$(P inspect -f '{{.State.Status}}' "$id")" paused "status when paused"
  pid=$(P inspect -f '{{.State.Pid}}' "$id")
  expect_eq "$(cat "$(cgroup_dir "$pid" freezer)/freezer.state")" FROZEN "freezer"
  P unpause "$id" >/dev/null
  expect_eq "$(P inspect -f '{{.State.Status}}' "$id")" running "status after unpause"
  P rm -f -t 0 "$id" >/dev/null
}

p_top_and_stats() {
  local id out
  id=$(P run -d "$IMAGE" sleep 1000)
  out=$(P top "$id")
  expect_contains "$out" "sleep 1000" "podman top"
  out=$(P stats --no-stream --format '{{.PIDs}} {{.MemUsage}}' "$id")
  echo "$out"
  expect_contains "$out" "1 " "stats: pids"
  P rm -f -t 0 "$id" >/dev/null
}

p_limits() {
  local id pid out rc
  id=$(P run -d --memory 64m --pids-limit 20 --cpus 0.5 "$IMAGE" sleep 1000)
  pid=$(P inspect -f '{{.State.Pid}}' "$id")
  expect_eq "$(cat "$(cgroup_dir "$pid" memory)/memory.limit_in_bytes")" 67108864 "memory limit"
  expect_eq "$(cat "$(cgroup_dir "$pid" pids)/pids.max")" 20 "pids limit"
  expect_eq "$(cat "$(cgroup_dir "$pid" cpu)/cpu.cfs_quota_us")" 50000 "cpu quota"
  P rm -f -t 0 "$id" >/dev/null
  # Trip them: an OOM kill is exit 137, a fork bomb stops at the limit.
  rc=$(code_of P run --rm --memory 32m --memory-swap 32m "$IMAGE" sh -c 'a=$(head -c 200000000 /dev/zero | tr "\0" x); echo survived')
  expect_eq "$rc" 137 "exit code of an OOM kill"
  # The shell gives up at the first fork the limit refuses.
  out=$(P run --rm --pids-limit 10 "$IMAGE" sh -c 'for i in $(seq 30); do sleep 30 & done' 2>&1 || true)
  echo "$out"
  expect_contains "$out" "can't fork" "fork refused at the limit"
}

p_read_only_tmpfs_bind() {
  local out
  out=$(P run --rm --read-only "$IMAGE" sh -c 'touch /x 2>&1; touch /tmp/ok && echo tmp-writable')
  expect_contains "$out" "Read-only file system" "--read-only"
  expect_contains "$out" "tmp-writable" "--read-only keeps /tmp writable"
  mkdir -p "$WORK/podman/host"
  out=$(P run --rm --tmpfs /scratch:size=1m -v "$WORK/podman/host:/data" "$IMAGE" \
    sh -c 'grep " /scratch " /proc/mounts; echo hi > /data/f')
  expect_contains "$out" "tmpfs /scratch tmpfs" "tmpfs mount"
  expect_eq "$(cat "$WORK/podman/host/f")" hi "file written through the bind mount"
}

p_user_and_caps() {
  expect_eq "$(P run --rm --user 1000:1000 "$IMAGE" id -u)" 1000 "--user uid"
  expect_eq "$(P run --rm --user app "$IMAGE" id -un)" app "--user name"
  local out
  out=$(P run --rm --cap-drop CHOWN "$IMAGE" sh -c 'chown 1 /tmp 2>&1 || echo refused')
  expect_contains "$out" "refused" "--cap-drop CHOWN"
  out=$(P run --rm --cap-add NET_ADMIN "$IMAGE" sh -c 'ip link set lo down && echo net-admin')
  expect_contains "$out" "net-admin" "--cap-add NET_ADMIN"
}

p_seccomp() {
  local out
  out=$(P run --rm "$IMAGE" sh -c "grep Seccomp: /proc/self/status; syscall $ADD_KEY")
  expect_contains "$out" "Seccomp:	2" "filter mode"
  expect_contains "$out" "errno 38" "add_key refused by the default profile (ENOSYS)"
  out=$(P run --rm --security-opt seccomp=unconfined "$IMAGE" syscall $ADD_KEY)
  expect_contains "$out" "errno 14" "unconfined: the kernel's own answer (EFAULT)"
}

p_userns() {
  local out
  out=$(P run --rm --uidmap 0:200000:65536 --gidmap 0:200000:65536 "$IMAGE" cat /proc/self/uid_map)
  expect_eq "$(echo $out)" "0 200000 65536" "uid map"
}

p_network() {
  local out host
  out=$(P run --rm --network none "$IMAGE" ls /sys/class/net)
  expect_eq "$(echo $out)" "lo" "--network none"
  host=$(readlink /proc/self/ns/net)
  out=$(P run --rm --network host "$IMAGE" readlink /proc/self/ns/net)
  expect_eq "$out" "$host" "--network host"
}

p_pod() {
  local a out
  a=$(P run -d --name podtest-a "$IMAGE" sleep 1000)
  out=$(P run --rm --pid container:podtest-a --network container:podtest-a --ipc container:podtest-a "$IMAGE" ps)
  expect_contains "$out" "sleep 1000" "joined pid namespace"
  P rm -f -t 0 "$a" >/dev/null
  P pod create --name pod1 >/dev/null
  P run -d --pod pod1 --name pod1-a "$IMAGE" sleep 1000 >/dev/null
  out=$(P run --rm --pod pod1 "$IMAGE" sh -c 'hostname; cat /proc/net/dev | wc -l')
  echo "$out"
  P pod rm -f -t 0 pod1 >/dev/null
}

p_restart_and_logs() {
  local id pid1 pid2
  id=$(P run -d "$IMAGE" sh -c 'echo hello-log; sleep 1000')
  pid1=$(P inspect -f '{{.State.Pid}}' "$id")
  P restart -t 0 "$id" >/dev/null
  pid2=$(P inspect -f '{{.State.Pid}}' "$id")
  [ "$pid1" != "$pid2" ] || fail "restart kept pid $pid1"
  expect_eq "$(P inspect -f '{{.State.Status}}' "$id")" running "status after restart"
  expect_contains "$(P logs "$id")" "hello-log" "logs"
  P rm -f -t 0 "$id" >/dev/null
}

p_stop_signals() {
  local id start
  id=$(P run -d "$IMAGE" sh -c 'trap "echo got-term; exit 0" TERM; while :; do sleep 0.1; done')
  start=$SECONDS
  P stop -t 20 "$id" >/dev/null
  [ $((SECONDS - start)) -lt 10 ] || fail "stop waited for the timeout despite the TERM handler"
  expect_eq "$(P inspect -f '{{.State.ExitCode}}' "$id")" 0 "exit code after a handled TERM"
  expect_contains "$(P logs "$id")" "got-term" "TERM reached the handler"
  P rm "$id" >/dev/null
}

p_error_reaches_user() {
  local out
  set +e
  out=$(P run --rm "$IMAGE" /no/such/program 2>&1)
  set -e
  echo "$out"
  expect_contains "$out" "/no/such/program" "runr's error shown by podman"
}

podman_suite() {
  ENGINE=podman
  podman_setup
  scenario "run --rm, exit code" p_run_rm_exit_code
  scenario "run -d, exec, stop, rm" p_detached_exec_stop_rm
  scenario "run -it" p_run_it
  scenario "exec -it" p_exec_it
  scenario "pause, unpause" p_pause_unpause
  scenario "top, stats" p_top_and_stats
  scenario "--memory, --pids-limit, --cpus" p_limits
  scenario "--read-only, tmpfs, bind" p_read_only_tmpfs_bind
  scenario "--user, --cap-add, --cap-drop" p_user_and_caps
  scenario "default seccomp profile" p_seccomp
  scenario "--uidmap (user namespace)" p_userns
  scenario "--network none, host" p_network
  scenario "joined namespaces, pod" p_pod
  scenario "restart, logs" p_restart_and_logs
  scenario "stop: SIGTERM, then SIGKILL" p_stop_signals
  scenario "create error reaches the user" p_error_reaches_user
  podman_teardown
}
