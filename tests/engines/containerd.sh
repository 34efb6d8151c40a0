# containerd 1.6 running containers on runr, against a private containerd (own root, state,
# socket): through containerd-shim-runc-v2 (`ctr run --runc-binary PATH`), and through
# runr's native shim (`ctr run --runtime io.containerd.runr.v2`, the shim suite in
# shim.sh). Sourced by run.sh; defines containerd_suite, and containerd_start for the CRI
# suites.

# The runtime name of runr's native shim, containerd-shim-runr-v2.
RUNR_SHIM_RUNTIME=io.containerd.runr.v2

# containerd_start DIR RUNTIME [RUNTIME_TYPE]: a private containerd whose CRI plugin runs
# pods with host networking only, on RUNTIME through containerd-shim-runc-v2 (runtime_type
# io.containerd.runc.v2, BinaryName RUNTIME), or on runr's native shim when RUNTIME_TYPE is
# io.containerd.runr.v2. The native shim ($SHIM_BINARY) is on the daemon's PATH either way.
containerd_start() {
  local dir=$1 runtime=$2 runtime_type=${3:-io.containerd.runc.v2} options
  options="[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runr.options]
        BinaryName = \"$runtime\""
  [ "$runtime_type" = io.containerd.runc.v2 ] || options=""
  mkdir -p "$dir/cni-bin" "$dir/cni-conf"
  cat >"$dir/config.toml" <<CONF
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  # Pod sandboxes ask for oom_score_adj -998; going below our own needs CAP_SYS_RESOURCE,
  # which some hosts (sandboxes) withhold from root, and runc and crun then fail as runr
  # does. Ask containerd not to go below its own.
  restrict_oom_score_adj = $([ "$(cap_sys_resource)" = yes ] && echo false || echo true)
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$dir/cni-bin"
    conf_dir = "$dir/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runr"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runr]
      runtime_type = "$runtime_type"
      $options
CONF
  # A shim given no BinaryName runs "runc" from PATH: make that runr too (ctr drops
  # --runc-binary when it sets up a user namespace with --uidmap).
  mkdir -p "$dir/path"
  ln -sf "$runtime" "$dir/path/runc"
  # containerd finds a runtime's shim on its PATH: containerd-shim-runr-v2 for
  # io.containerd.runr.v2. A copy, so that its processes are told apart by their path.
  [ -z "${SHIM_BINARY:-}" ] || cp "$SHIM_BINARY" "$dir/path/containerd-shim-runr-v2"
  PATH="$dir/path:$PATH" start_daemon CONTAINERD_PID "$dir/containerd.log" \
    containerd --config "$dir/config.toml"
  wait_for 60 ctr -a "$dir/containerd.sock" version || { tail -20 "$dir/containerd.log"; return 1; }
}

C() {
  ctr -a "$WORK/containerd/containerd.sock" -n runr-engines "$@"
}

# How ctr is pointed at runr: set by the suite (the Go shim with --runc-binary, or the
# native shim with --runtime).
CTR_RUNTIME=()

# ctr run with runr; the image reference containerd gave our image.
CR() {
  C run "${CTR_RUNTIME[@]}" "$@"
}

# runr_ran ID: runr created container ID (the Go shim ran the runr binary for it, or the
# native shim logged its create into containerd's log).
runr_ran() {
  if [ "${CTR_RUNTIME[0]}" = --runtime ]; then
    grep -q "msg=create .*id=$1 " "$WORK/containerd/containerd.log"
  else
    grep -qF " $1" "$WORK/calls/containerd.log"
  fi
}
CTR_IMAGE=docker.io/library/$IMAGE

containerd_setup() {
  CONTAINERD_RUNTIME=$(runtime_for containerd)
  CTR_RUNTIME=(--runc-binary "$CONTAINERD_RUNTIME")
  # The shim runs runr, which finds criu on the daemon's PATH: the one scripts/criu.sh
  # gives (Debian 12's criu 3.17 does not start on 6.x kernels).
  CONTAINERD_CRIU=""
  if CONTAINERD_CRIU=$(bash "$REPO/scripts/criu.sh" 2>/dev/null); then
    mkdir -p "$WORK/containerd/path"
    ln -sf "$CONTAINERD_CRIU" "$WORK/containerd/path/criu"
  fi
  containerd_start "$WORK/containerd" "$CONTAINERD_RUNTIME" || return 1
  C images import "$IMAGE_TAR" >/dev/null
}

# containerd_stop SOCKET NAMESPACE: kill and remove what is left in NAMESPACE (so no shim
# outlives the daemon), then stop the daemon.
containerd_stop() {
  local ctr=(ctr -a "$1" -n "$2") id
  for id in $("${ctr[@]}" task ls -q 2>/dev/null); do
    "${ctr[@]}" task kill -s KILL "$id" >/dev/null 2>&1 || true
  done
  sleep 0.5
  for id in $("${ctr[@]}" c ls -q 2>/dev/null); do
    "${ctr[@]}" task rm -f "$id" >/dev/null 2>&1 || true
    "${ctr[@]}" c rm "$id" >/dev/null 2>&1 || true
  done
  stop_daemon "$CONTAINERD_PID"
}

containerd_teardown() {
  containerd_stop "$WORK/containerd/containerd.sock" runr-engines
}

task_status() {
  C task ls | awk -v id="$1" '$1 == id { print $3 }'
}

# Kill (KILL) and remove a detached container.
c_remove() {
  C task kill -s KILL "$1" >/dev/null 2>&1 || true
  wait_for 10 sh -c "[ \"\$(ctr -a $WORK/containerd/containerd.sock -n runr-engines task ls | awk '\$1 == \"$1\" { print \$3 }')\" = STOPPED ]" || true
  C task rm -f "$1" >/dev/null
  C c rm "$1" >/dev/null
}

c_run_rm_exit_code() {
  expect_eq "$(code_of CR --rm "$CTR_IMAGE" c-rm sh -c 'exit 3')" 3 "exit code of run --rm"
  expect_eq "$(C c ls -q | grep -c c-rm || true)" 0 "container left after --rm"
}

c_detached_exec_kill_rm() {
  local out
  CR -d "$CTR_IMAGE" c-d sleep 1000 >/dev/null
  expect_eq "$(task_status c-d)" RUNNING "status"
  out=$(C task exec --exec-id e1 c-d sh -c 'echo from-exec; id -u')
  expect_eq "$out" "from-exec
0" "exec output"
  c_remove c-d
}

c_run_t() {
  expect_shell_on_pty /dev/pts/0 5 ctr -a "$WORK/containerd/containerd.sock" -n runr-engines \
    run -t --rm "${CTR_RUNTIME[@]}" "$CTR_IMAGE" c-t sh
}

c_exec_t() {
  CR -d "$CTR_IMAGE" c-x sleep 1000 >/dev/null
  expect_shell_on_pty /dev/pts/ any ctr -a "$WORK/containerd/containerd.sock" -n runr-engines \
    task exec -t --exec-id e2 c-x sh
  c_remove c-x
}

c_pause_resume_ps_metrics() {
  local pid out
  CR -d "$CTR_IMAGE" c-p sleep 1000 >/dev/null
  pid=$(C task ls | awk '$1 == "c-p" { print $2 }')
  C task pause c-p
  expect_eq "$(task_status c-p)" PAUSED "status when paused"
  expect_eq "$(cat "$(cgroup_dir "$pid" freezer)/freezer.state")" FROZEN "freezer"
  C task resume c-p
  expect_eq "$(task_status c-p)" RUNNING "status after resume"
  expect_contains "$(C task ps c-p)" "$pid" "task ps"
  out=$(C task metrics c-p)
  echo "$out"
  expect_contains "$out" "memory.usage_in_bytes" "metrics"
  c_remove c-p
}

c_limits() {
  local pid
  CR -d --memory-limit 67108864 --cpus 0.5 "$CTR_IMAGE" c-l sleep 1000 >/dev/null
  pid=$(C task ls | awk '$1 == "c-l" { print $2 }')
  expect_eq "$(cat "$(cgroup_dir "$pid" memory)/memory.limit_in_bytes")" 67108864 "memory limit"
  expect_eq "$(cat "$(cgroup_dir "$pid" cpu)/cpu.cfs_quota_us")" 50000 "cpu quota"
  c_remove c-l
  expect_eq "$(code_of CR --rm --memory-limit 33554432 "$CTR_IMAGE" c-oom sh -c 'a=$(head -c 200000000 /dev/zero | tr "\0" x)')" 137 "exit code of an OOM kill"
}

c_read_only_mounts() {
  local out
  mkdir -p "$WORK/containerd/host"
  out=$(CR --rm --read-only --mount type=tmpfs,src=tmpfs,dst=/tmp,options=size=1m \
    --mount "type=bind,src=$WORK/containerd/host,dst=/data,options=rbind:rw" "$CTR_IMAGE" c-ro \
    sh -c 'touch /x 2>&1; grep " /tmp " /proc/mounts; touch /tmp/ok && echo tmp-writable; echo hi > /data/f')
  expect_contains "$out" "Read-only file system" "--read-only"
  expect_contains "$out" "tmpfs /tmp tmpfs" "tmpfs mount"
  expect_contains "$out" "tmp-writable" "tmpfs writable"
  expect_eq "$(cat "$WORK/containerd/host/f")" hi "file written through the bind mount"
}

c_no_pivot() {
  local out
  out=$(CR --rm --no-pivot "$CTR_IMAGE" c-np sh -c 'ls / | wc -l; cat /proc/self/mountinfo | wc -l')
  echo "$out"
  if [ "${CTR_RUNTIME[0]}" = --runtime ]; then
    grep -q "msg=create .*id=c-np .*no_pivot=true" "$WORK/containerd/containerd.log" ||
      fail "the native shim did not create c-np with no_pivot"
  else
    expect_contains "$(cat "$WORK/calls/containerd.log")" "--no-pivot" "the shim passed --no-pivot"
  fi
}

c_caps() {
  local out
  out=$(CR --rm --cap-drop CAP_CHOWN "$CTR_IMAGE" c-c1 sh -c 'chown 1 /tmp 2>&1 || echo refused')
  expect_contains "$out" "refused" "--cap-drop CAP_CHOWN"
  out=$(CR --rm --cap-add CAP_NET_ADMIN "$CTR_IMAGE" c-c2 sh -c 'ip link set lo down && echo net-admin')
  expect_contains "$out" "net-admin" "--cap-add CAP_NET_ADMIN"
}

c_seccomp() {
  local out
  out=$(CR --rm --seccomp "$CTR_IMAGE" c-s1 sh -c "grep Seccomp: /proc/self/status; syscall $ADD_KEY")
  expect_contains "$out" "Seccomp:	2" "filter mode"
  expect_contains "$out" "errno 1" "add_key refused by containerd's default profile"
  out=$(CR --rm "$CTR_IMAGE" c-s2 syscall $ADD_KEY)
  expect_contains "$out" "errno 14" "without --seccomp: the kernel's own answer"
}

c_userns() {
  local out
  out=$(CR --rm --uidmap 0:200000:65536 --gidmap 0:200000:65536 "$CTR_IMAGE" c-u \
    sh -c 'cat /proc/self/uid_map; touch /tmp/f && chown 1000 /tmp/f && stat -c %u /tmp/f')
  expect_eq "$(echo $out)" "0 200000 65536 1000" "uid map, and chown inside"
  runr_ran c-u || fail "runr did not run c-u"
}

c_network_and_joined() {
  local out host pid
  out=$(CR --rm "$CTR_IMAGE" c-n1 ls /sys/class/net)
  expect_eq "$(echo $out)" "lo" "a new network namespace"
  host=$(readlink /proc/self/ns/net)
  out=$(CR --rm --net-host "$CTR_IMAGE" c-n2 readlink /proc/self/ns/net)
  expect_eq "$out" "$host" "--net-host"
  CR -d "$CTR_IMAGE" c-j sleep 1000 >/dev/null
  pid=$(C task ls | awk '$1 == "c-j" { print $2 }')
  out=$(CR --rm --with-ns "pid:/proc/$pid/ns/pid" --with-ns "network:/proc/$pid/ns/net" "$CTR_IMAGE" c-j2 ps)
  expect_contains "$out" "sleep 1000" "joined pid namespace"
  c_remove c-j
}

c_stop_signals() {
  local pid rc
  CR --rm "$CTR_IMAGE" c-t1 sh -c 'trap "echo got-term; exit 0" TERM; while :; do sleep 0.1; done' >"$WORK/containerd/t1.out" 2>&1 &
  pid=$!
  wait_for 10 sh -c "[ \"\$(ctr -a $WORK/containerd/containerd.sock -n runr-engines task ls | awk '\$1 == \"c-t1\" { print \$3 }')\" = RUNNING ]"
  C task kill c-t1
  set +e
  wait $pid
  rc=$?
  set -e
  expect_eq "$rc" 0 "exit code after a handled TERM"
  expect_contains "$(cat "$WORK/containerd/t1.out")" "got-term" "TERM reached the handler"
  CR --rm "$CTR_IMAGE" c-t2 sleep 1000 >/dev/null 2>&1 &
  pid=$!
  wait_for 10 sh -c "[ \"\$(ctr -a $WORK/containerd/containerd.sock -n runr-engines task ls | awk '\$1 == \"c-t2\" { print \$3 }')\" = RUNNING ]"
  C task kill -s KILL c-t2
  set +e
  wait $pid
  rc=$?
  set -e
  expect_eq "$rc" 137 "exit code after SIGKILL"
}

c_error_reaches_user() {
  local out
  set +e
  out=$(CR --rm "$CTR_IMAGE" c-e /no/such/program 2>&1)
  set -e
  echo "$out"
  expect_contains "$out" "/no/such/program" "runr's error shown by ctr"
  C c rm c-e >/dev/null 2>&1 || true
}

# containerd 1.6 leaves the directory it unpacks a checkpoint into for a restore
# (ctrd-checkpoint* in $XDG_RUNTIME_DIR, else the temporary directory): those made from now
# on are removed when the scenario's subshell ends.
remove_restore_dirs_at_exit() {
  local dir=${XDG_RUNTIME_DIR:-${TMPDIR:-/tmp}} was
  was=$(find "$dir" -maxdepth 1 -name 'ctrd-checkpoint*' | sort)
  # shellcheck disable=SC2064
  trap "comm -13 <(echo \"$was\") <(find '$dir' -maxdepth 1 -name 'ctrd-checkpoint*' | sort) | xargs -r rm -rf" EXIT
}

# ctr container checkpoint --task and restore --live on runr (through the runc shim): the
# count the container keeps in its rw layer goes on from where the checkpoint took it.
c_checkpoint() {
  local before after
  remove_restore_dirs_at_exit
  CR -d "$CTR_IMAGE" c-ckpt sh -c 'i=0; while true; do i=$((i+1)); echo $i >> /tmp/count; sleep 0.1; done' >/dev/null
  sleep 2
  C c checkpoint --task --rw --image c-ckpt c-ckpt-image:1 >/dev/null
  before=$(C task exec --exec-id e1 c-ckpt tail -n 1 /tmp/count)
  c_remove c-ckpt
  C c restore --live c-ckpt c-ckpt-image:1
  expect_eq "$(task_status c-ckpt)" RUNNING "status after restore"
  sleep 1
  after=$(C task exec --exec-id e2 c-ckpt tail -n 1 /tmp/count)
  # Restarted rather than restored, it would have appended 1 to 10 to the restored file.
  [ "$after" -gt "$before" ] || fail "the count did not go on: $before, then $after"
  c_remove c-ckpt
  C images rm c-ckpt-image:1 >/dev/null
}

# The containerd scenarios, run through the runtime the suite set up (--runc-binary runr,
# or runr's own shim).
containerd_scenarios() {
  scenario "run --rm, exit code" c_run_rm_exit_code
  scenario "run -d, exec, kill, rm" c_detached_exec_kill_rm
  scenario "run -t" c_run_t
  scenario "exec -t" c_exec_t
  scenario "pause, resume, ps, metrics" c_pause_resume_ps_metrics
  scenario "--memory-limit, --cpus" c_limits
  scenario "--read-only, tmpfs, bind" c_read_only_mounts
  scenario "--no-pivot" c_no_pivot
  scenario "--cap-add, --cap-drop" c_caps
  scenario "--seccomp" c_seccomp
  scenario "--uidmap (user namespace)" c_userns
  scenario "network, --net-host, --with-ns" c_network_and_joined
  scenario "kill: SIGTERM, SIGKILL" c_stop_signals
  scenario "create error reaches the user" c_error_reaches_user
}

containerd_suite() {
  ENGINE=containerd
  if ! containerd_setup; then
    FAILED+=("containerd: the daemon did not start")
    return
  fi
  containerd_scenarios
  if [ -n "$CONTAINERD_CRIU" ]; then
    scenario "container checkpoint and restore (CRIU)" c_checkpoint
  else
    skip "container checkpoint and restore" "no working criu (scripts/criu.sh failed)"
  fi
  containerd_teardown
}
