# Shared by the engine tests: a work directory, a logging runr wrapper, scenarios and
# assertions, private daemons stopped by pid. Sourced by run.sh.

# Everything the suite makes lives under $WORK; removed at the end (after the engines
# have been stopped and their mounts undone).
WORK=$(mktemp -d /tmp/runr-engines.XXXXXX)
# Containers in a user namespace (root mapped to an unprivileged host id) reach their
# rootfs through it.
chmod 755 "$WORK"
IMAGE_TAR=$WORK/busybox.tar
IMAGE=runr-busybox:latest
# For Kubernetes' pod sandboxes: the same busybox, sleeping.
PAUSE_IMAGE_TAR=$WORK/pause.tar
PAUSE_IMAGE=docker.io/library/runr-pause:latest
PASSED=0
FAILED=()
SKIPPED=()
DAEMON_PIDS=()

# A runr for one engine: a wrapper that records each call (its arguments) in
# $WORK/calls/ENGINE.log, then runs the real binary.
runtime_for() {
  local engine=$1
  mkdir -p "$WORK/$engine/bin" "$WORK/calls"
  cat >"$WORK/$engine/bin/runr" <<WRAP
#!/bin/sh
printf '%s\n' "\$*" >>"$WORK/calls/$engine.log"
exec "$RUNR_BINARY" "\$@"
WRAP
  chmod 755 "$WORK/$engine/bin/runr"
  echo "$WORK/$engine/bin/runr"
}

# scenario NAME FUNCTION [ARGS...]: run FUNCTION in a subshell with errexit; its output goes
# to a log (with a trace of each command), the end of which is shown when it fails. With
# ONLY set (an extended regular expression), only the scenarios whose name matches it run.
scenario() {
  local name=$1
  shift
  if [ -n "${ONLY:-}" ] && ! [[ $name =~ $ONLY ]]; then
    return 0
  fi
  local log="$WORK/logs/$ENGINE-$name.log"
  mkdir -p "$WORK/logs"
  set +e
  (
    set -euxo pipefail
    "$@"
  ) >"$log" 2>&1
  local rc=$?
  set -e
  if [ $rc -eq 0 ]; then
    echo "ok    $ENGINE: $name"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL  $ENGINE: $name"
    tail -n 40 "$log" | sed 's/^/      /'
    FAILED+=("$ENGINE: $name")
  fi
}

skip() {
  echo "skip  $ENGINE: $1 ($2)"
  SKIPPED+=("$ENGINE: $1 ($2)")
}

fail() {
  echo "assertion failed: $*" >&2
  exit 1
}

expect_eq() {
  [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

expect_contains() {
  case "$1" in
    *"$2"*) ;;
    *) fail "$3: '$2' not in: $1" ;;
  esac
}

expect_not_contains() {
  case "$1" in
    *"$2"*) fail "$3: '$2' found in: $1" ;;
    *) ;;
  esac
}

# The exit code of a command, without errexit tripping.
code_of() {
  set +e
  "$@" >/dev/null 2>&1
  local rc=$?
  set -e
  echo $rc
}

# wait_for SECONDS COMMAND...: until COMMAND succeeds.
wait_for() {
  local until=$((SECONDS + $1))
  shift
  while ! "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $until ] || return 1
    sleep 0.2
  done
}

# start_daemon VAR LOGFILE COMMAND...: in the background; its pid goes in VAR, and in the
# list of what cleanup_work stops.
start_daemon() {
  local var=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  DAEMON_PIDS+=("$!")
  printf -v "$var" %s "$!"
}

# stop_daemon PID: TERM, then KILL after 20 s; only processes this suite started.
stop_daemon() {
  local pid=$1 i
  # Never 0 or 1 (a process group, init): only a real pid of ours.
  [[ $pid =~ ^[0-9]+$ ]] && [ "$pid" -gt 1 ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# The host cgroup v1 directory of a process, for one controller.
cgroup_dir() {
  local pid=$1 controller=$2 path
  path=$(awk -F: -v c="$controller" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) print $3 }' "/proc/$pid/cgroup")
  echo "/sys/fs/cgroup/$controller$path"
}

# The parent cgroups the engines make for their containers (podman's cgroupfs default,
# CRI's, ctr's namespace, docker's --cgroup-parent): those not there before the suite are
# removed at the end, once empty (rmdir never removes a cgroup in use).
ENGINE_CGROUPS=(libpod_parent k8s.io runr-engines runr-engines-docker)
PREEXISTING_CGROUPS=()
for name in "${ENGINE_CGROUPS[@]}"; do
  [ ! -d "/sys/fs/cgroup/memory/$name" ] || PREEXISTING_CGROUPS+=("$name")
done

# podman passes no --root: runr keeps state (and its seccomp cache) in its default root.
# What is there before the suite stays; what the suite adds goes at the end.
RUNR_DEFAULT_ROOT=/run/runr
[ -e "$RUNR_DEFAULT_ROOT" ] && RUNR_ROOT_EXISTED=1 || RUNR_ROOT_EXISTED=0
[ -e "$RUNR_DEFAULT_ROOT/~seccomp" ] && RUNR_CACHE_EXISTED=1 || RUNR_CACHE_EXISTED=0
RUNR_CACHE_BEFORE=$'\n'$(ls -A "$RUNR_DEFAULT_ROOT/~seccomp" 2>/dev/null || true)$'\n'

remove_engine_cgroups() {
  local name dir
  for name in "${ENGINE_CGROUPS[@]}"; do
    case " ${PREEXISTING_CGROUPS[*]} " in *" $name "*) continue ;; esac
    for dir in /sys/fs/cgroup/*/"$name" /sys/fs/cgroup/unified/"$name"; do
      [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  done
}

# Undo every mount under $WORK (deepest first), remove it and the engines' cgroups.
cleanup_work() {
  local pid
  for pid in "${DAEMON_PIDS[@]}"; do
    stop_daemon "$pid"
  done
  local m
  for m in $(findmnt -rn -o TARGET | grep "^$WORK" | sort -r || true); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$WORK"
  remove_engine_cgroups
  remove_added_runr_state
}

# Remove from runr's default root what the suite added: the seccomp programs it cached, the
# cache directory and the root itself if the suite made them (a container's state directory
# that an engine left is not ours to judge: it stays, and `ls` shows it).
remove_added_runr_state() {
  local dir=$RUNR_DEFAULT_ROOT/~seccomp f
  if [ -d "$dir" ]; then
    for f in "$dir"/* "$dir"/.[!.]*; do
      [ -e "$f" ] || continue
      case $RUNR_CACHE_BEFORE in *$'\n'"${f##*/}"$'\n'*) ;; *) rm -f "$f" ;; esac
    done
    [ $RUNR_CACHE_EXISTED = 1 ] || rmdir "$dir" 2>/dev/null || true
  fi
  [ $RUNR_ROOT_EXISTED = 1 ] || rmdir "$RUNR_DEFAULT_ROOT" 2>/dev/null || true
}

# add_key(2) with a null type: the kernel answers EFAULT; every engine's default seccomp
# profile refuses it first (EPERM or ENOSYS).
ADD_KEY=248

# Whether we hold CAP_SYS_RESOURCE (bit 24 of the effective set).
cap_sys_resource() {
  local eff
  eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
  if (((0x$eff >> 24) & 1)); then echo yes; else echo no; fi
}

pty_run() {
  python3 "$ENGINES_DIR/pty_run.py" "$@"
}

# expect_shell_on_pty TTY EXIT COMMAND...: COMMAND starts a shell on a new pty; typed
# arithmetic comes back, `tty` names TTY (a prefix), and the shell's `exit 5` is COMMAND's
# exit code, unless EXIT is "any".
expect_shell_on_pty() {
  local tty=$1 want_rc=$2 out rc
  shift 2
  set +e
  out=$(pty_run 'echo $((6*7)); tty; exit 5\n' "$@")
  rc=$?
  set -e
  echo "$out"
  expect_contains "$out" "42" "arithmetic typed into the shell"
  expect_contains "$out" "$tty" "the terminal"
  [ "$want_rc" = any ] || expect_eq "$rc" "$want_rc" "exit code"
}
