# runr's native shim, containerd-shim-runr-v2: every containerd scenario of containerd.sh
# through `ctr run --runtime io.containerd.runr.v2` (no runr binary runs: the shim creates
# containers through runr's library), against a private containerd, and what only a shim
# does: its events in order, exit statuses, no zombie, exiting with its last task; then
# the CRI scenarios of cri.sh with runtime_type io.containerd.runr.v2, and a pod of three
# containers sharing one shim. Sourced by run.sh after containerd.sh and cri.sh; defines
# shim_suite.

# The pids of the native shims the private containerd started (found by their path, which
# is this suite's own copy of the binary).
shim_pids() {
  pgrep -f "^$WORK/containerd/path/containerd-shim-runr-v2 " || true
}

# The zombie children of process PID.
zombies_of() {
  ps --ppid "$1" -o stat= | grep -c '^Z' || true
}

shim_exits_with_its_last_task() {
  CR --rm "$CTR_IMAGE" s-1 true
  CR --rm "$CTR_IMAGE" s-2 sh -c 'exit 2' || true
  wait_for 10 sh -c "[ -z \"\$(pgrep -f '^$WORK/containerd/path/containerd-shim-runr-v2 ')\" ]" ||
    fail "shims left after their tasks were deleted: $(shim_pids)"
  expect_eq "$(ls "$WORK/containerd/state/s" 2>/dev/null | wc -l)" 0 "sockets left"
  # (runr's seccomp cache stays.)
  expect_eq "$(find "$WORK/containerd/state/runr/runr-engines" -mindepth 1 -maxdepth 1 ! -name '~seccomp' | wc -l)" 0 "runr state left"
}

# Exec exit statuses, stdin through the shim (closed by ctr at its end), and no zombie
# left in the shim: neither an exec'd process nor an orphan it adopted as subreaper.
shim_exec_status_stdin_no_zombie() {
  local pid shim out
  # This shell's pid namespace: a process whose parent dies is the shim's to reap.
  CR -d --with-ns "pid:/proc/$BASHPID/ns/pid" "$CTR_IMAGE" s-x sleep 1000 >/dev/null
  pid=$(C task ls | awk '$1 == "s-x" { print $2 }')
  shim=$(ps -o ppid= -p "$pid" | tr -d ' ')
  expect_contains " $(shim_pids | tr '\n' ' ')" " $shim " "the task's parent is the native shim"
  expect_eq "$(cat "/proc/$shim/oom_score_adj")" "$(($(cat "/proc/$CONTAINERD_PID/oom_score_adj") + 1))" \
    "the shim's OOM score, one above containerd's"
  expect_eq "$(code_of C task exec --exec-id e1 s-x sh -c 'exit 7')" 7 "exit status of an exec"
  expect_eq "$(code_of C task exec --exec-id e2 s-x sh -c 'kill -9 $$')" 137 "status of a killed exec"
  out=$(printf 'line1\nline2\n' | C task exec --exec-id e3 s-x sh -c 'cat; echo done')
  expect_eq "$out" "line1
line2
done" "stdin to the end, then end-of-file"
  # An orphan: the shell exits at once, its sleep outlives it and ends a second later.
  C task exec --exec-id e4 s-x sh -c 'sleep 1 & exit 0'
  sleep 5
  expect_eq "$(zombies_of "$shim")" 0 "zombies in the shim"
  c_remove s-x
}

# Without a pid namespace of its own, what the init leaves running is killed as it exits
# (as containerd's runc shim does), not left behind on the host.
shim_host_pid_leftovers_killed() {
  CR --rm --with-ns "pid:/proc/$BASHPID/ns/pid" "$CTR_IMAGE" s-h sh -c 'sleep 4321 & exit 0'
  wait_for 5 sh -c '! pgrep -f "^sleep 4321$"' || fail "left running: $(pgrep -af '^sleep 4321$')"
}

# The events containerd got from the shim, in order.
shim_events_in_order() {
  local events_pid log=$WORK/containerd/events.log topics
  C events >"$log" 2>&1 &
  events_pid=$!
  sleep 0.5
  CR -d "$CTR_IMAGE" s-e sleep 1000 >/dev/null
  C task exec --exec-id e1 s-e true
  C task pause s-e
  C task resume s-e
  C task kill -s KILL s-e
  wait_for 10 sh -c "[ \"\$(ctr -a $WORK/containerd/containerd.sock -n runr-engines task ls | awk '\$1 == \"s-e\" { print \$3 }')\" = STOPPED ]"
  C task rm s-e >/dev/null
  C c rm s-e >/dev/null
  expect_eq "$(code_of CR --rm --memory-limit 33554432 "$CTR_IMAGE" s-oom sh -c 'a=$(head -c 200000000 /dev/zero | tr "\0" x)')" 137 "exit code of an OOM kill"
  sleep 1
  kill "$events_pid"
  wait "$events_pid" 2>/dev/null || true
  cat "$log"
  topics=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\/tasks\//) print $i }' "$log" | tr '\n' ' ')
  expect_contains "$topics" "/tasks/create /tasks/start /tasks/exec-added /tasks/exec-started /tasks/exit /tasks/paused /tasks/resumed /tasks/exit /tasks/delete " "the events of s-e, in order"
  expect_contains "$topics" "/tasks/oom /tasks/exit /tasks/delete" "the OOM kill before its exit"
}

# Output to a binary:// logger (a program containerd starts with the streams on its
# descriptors 3 and 4) and to a file:// path.
shim_loggers() {
  local logger=$WORK/containerd/logger.sh out=$WORK/containerd/logged
  cat >"$logger" <<'SH'
#!/bin/sh
# A binary:// logger: the URI's query `file=PATH` arrives as the arguments "file PATH".
[ "$1" = file ] || exit 2
echo "$CONTAINER_NAMESPACE/$CONTAINER_ID" >"$2.who"
# Ready (before anything inherits descriptor 5).
exec 5>&-
cat <&4 >"$2.err" &
cat <&3 >"$2"
wait
SH
  chmod 755 "$logger"
  CR --rm --log-uri "binary://$logger?file=$out" "$CTR_IMAGE" s-log sh -c 'echo to-out; echo to-err >&2'
  wait_for 5 grep -q to-err "$out.err"
  wait_for 5 grep -q to-out "$out"
  expect_eq "$(cat "$out")" to-out "stdout through the logger"
  expect_eq "$(cat "$out.err")" to-err "stderr through the logger"
  expect_eq "$(cat "$out.who")" runr-engines/s-log "the logger's CONTAINER_NAMESPACE/CONTAINER_ID"
  CR --rm --log-uri "file://$WORK/containerd/file.log" "$CTR_IMAGE" s-file sh -c 'echo to-file; echo err-file >&2'
  expect_contains "$(cat "$WORK/containerd/file.log")" "to-file" "stdout in the file"
  expect_contains "$(cat "$WORK/containerd/file.log")" "err-file" "stderr in the file"
}

# ctr container checkpoint --task, then restore --live, through the native shim (CRIU driven
# by runr's library inside the shim): the container's count goes on (c_checkpoint, the
# scenario the Go shim runs too).
shim_checkpoint_restore() {
  c_checkpoint
  # The restored task's init is the shim's child, as a created one is.
  CR -d "$CTR_IMAGE" s-ck2 sleep 1000 >/dev/null
  C c checkpoint --task s-ck2 s-ck2-image:1 >/dev/null
  c_remove s-ck2
  C c restore --live s-ck2 s-ck2-image:1
  pid=$(C task ls | awk '$1 == "s-ck2" { print $2 }')
  expect_contains " $(shim_pids | tr '\n' ' ')" " $(ps -o ppid= -p "$pid" | tr -d ' ') " "the restored init's parent is the native shim"
  c_remove s-ck2
  C images rm s-ck2-image:1 >/dev/null
}

# ctr task ps: an exec'd process carries its exec id (containerd's ProcessDetails).
shim_ps_exec_ids() {
  local out
  CR -d "$CTR_IMAGE" s-ps sleep 1000 >/dev/null
  # A detached exec's fifos outlive ctr: in the suite's directory, not /run/containerd/fifo.
  mkdir -p "$WORK/containerd/fifo"
  C task exec -d --fifo-dir "$WORK/containerd/fifo" --exec-id my-exec s-ps sleep 999 >/dev/null
  sleep 0.5
  out=$(C task ps s-ps)
  echo "$out"
  expect_contains "$out" "my-exec" "the exec id in ctr task ps"
  expect_eq "$(echo "$out" | grep -c my-exec)" 1 "one process is the exec"
  c_remove s-ps
}

shim_suite() {
  ENGINE=shim
  if [ -z "${SHIM_BINARY:-}" ] || [ ! -x "$SHIM_BINARY" ]; then
    FAILED+=("shim: no containerd-shim-runr-v2 binary at '${SHIM_BINARY:-}'")
    return
  fi
  CONTAINERD_RUNTIME=$(runtime_for shim)
  CTR_RUNTIME=(--runtime "$RUNR_SHIM_RUNTIME")
  # The shim finds criu on the daemon's PATH: the one scripts/criu.sh gives.
  local criu=""
  if criu=$(bash "$REPO/scripts/criu.sh" 2>/dev/null); then
    mkdir -p "$WORK/containerd/path"
    ln -sf "$criu" "$WORK/containerd/path/criu"
  fi
  if ! containerd_start "$WORK/containerd" "$CONTAINERD_RUNTIME" ||
    ! C images import "$IMAGE_TAR" >/dev/null; then
    FAILED+=("shim: the daemon did not start, or took no image")
    return
  fi
  containerd_scenarios
  scenario "exec statuses, stdin, no zombie" shim_exec_status_stdin_no_zombie
  scenario "events in order (exec, pause, exit, delete, oom)" shim_events_in_order
  scenario "binary and file loggers (--log-uri)" shim_loggers
  scenario "ctr task ps shows exec ids" shim_ps_exec_ids
  if [ -n "$criu" ]; then
    scenario "container checkpoint and restore (CRIU, in the shim)" shim_checkpoint_restore
  else
    skip "container checkpoint and restore (in the shim)" "no working criu (scripts/criu.sh failed)"
  fi
  scenario "host pid namespace: what the init leaves is killed" shim_host_pid_leftovers_killed
  scenario "the shim exits with its last task" shim_exits_with_its_last_task
  containerd_stop "$WORK/containerd/containerd.sock" runr-engines
  # No runr binary ran: the shim did it all in-process.
  [ ! -s "$WORK/calls/shim.log" ] || FAILED+=("shim: the runr binary was run: $(head -3 "$WORK/calls/shim.log")")
  shim_cri_suite
}

shim_cri_suite() {
  ENGINE=shim-cri
  CRI_DIR=$WORK/cri-shim
  if ! cri_setup "$RUNR_SHIM_RUNTIME"; then
    FAILED+=("shim-cri: containerd did not start")
    return
  fi
  export RUNR_SHIM_PATH=$CRI_DIR/path/containerd-shim-runr-v2
  scenario "pod: sandbox, container, exec, stats, update, stop, remove" cri_client pod
  scenario "create error reaches the CRI client" cri_client error
  scenario "a pod of three containers shares one shim" cri_client pod3
  cri_teardown
  [ ! -s "$WORK/calls/shim-cri.log" ] || FAILED+=("shim-cri: the runr binary was run: $(head -3 "$WORK/calls/shim-cri.log")")
}
