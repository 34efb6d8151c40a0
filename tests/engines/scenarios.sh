# Scenarios that read the same on podman and docker, whose command lines agree. Each
# engine file sets E_CMD (the engine's command, as an array) and E_remove (remove a
# container now) and E_SECCOMP_ERRNO (what its default seccomp profile answers to a
# syscall it does not list), optionally E_RUN_ULIMITS (--ulimit options that must come
# with any other), then calls these through `scenario`.

E() {
  "${E_CMD[@]}" "$@"
}

s_run_rm_exit_code() {
  local rc
  rc=$(code_of E run --rm "$IMAGE" sh -c 'exit 3')
  expect_eq "$rc" 3 "exit code of run --rm"
  expect_contains "$(cat "$WORK/calls/$ENGINE.log")" "create " "runr was called"
  expect_eq "$(E ps -aq | wc -l)" 0 "containers left after --rm"
  expect_eq "$(echo piped | E run -i --rm "$IMAGE" cat)" piped "stdin passed through"
}

s_detached_exec_stop_rm() {
  local id out
  id=$(E run -d "$IMAGE" sleep 1000)
  out=$(E exec "$id" sh -c 'echo from-exec; id -u')
  expect_eq "$out" "from-exec
0" "exec output"
  expect_eq "$(E inspect -f '{{.State.Status}}' "$id")" running "status"
  # sleep as pid 1 ignores SIGTERM: stop falls back to SIGKILL after the timeout.
  E stop -t 1 "$id" >/dev/null
  expect_eq "$(E inspect -f '{{.State.ExitCode}}' "$id")" 137 "exit code after stop"
  E rm "$id" >/dev/null
  expect_eq "$(E ps -aq | wc -l)" 0 "containers left"
}

s_run_it() {
  expect_shell_on_pty /dev/pts/0 5 "${E_CMD[@]}" run -it --rm "$IMAGE" sh
}

s_exec_it() {
  local id
  id=$(E run -d "$IMAGE" sleep 1000)
  expect_shell_on_pty /dev/pts/ any "${E_CMD[@]}" exec -it "$id" sh
  E_remove "$id"
}

s_pause_unpause() {
  local id pid
  id=$(E run -d "$IMAGE" sh -c 'while :; do date +%s%N > /tmp/tick; sleep 0.05; done')
  E pause "$id" >/dev/null
  expect_eq "$(E inspect -f '{{.State.Status}}' "$id")" paused "status when paused"
  pid=$(E inspect -f '{{.State.Pid}}' "$id")
  expect_eq "$(cat "$(cgroup_dir "$pid" freezer)/freezer.state")" FROZEN "freezer"
  E unpause "$id" >/dev/null
  expect_eq "$(E inspect -f '{{.State.Status}}' "$id")" running "status after unpause"
  expect_eq "$(echo typed | E exec -i "$id" cat)" typed "exec -i"
  # A paused container removed by force: its processes die, nothing is left.
  E pause "$id" >/dev/null
  E_remove "$id"
  ! kill -0 "$pid" 2>/dev/null || fail "pid $pid outlived its removed, paused container"
}

s_top_and_stats() {
  local id out
  id=$(E run -d "$IMAGE" sleep 1000)
  out=$(E top "$id")
  expect_contains "$out" "sleep 1000" "top"
  out=$(E stats --no-stream --format '{{.PIDs}} {{.MemUsage}}' "$id")
  echo "$out"
  expect_contains "$out" "1 " "stats: pids"
  E_remove "$id"
}

s_limits() {
  local id pid out rc
  id=$(E run -d --memory 64m --pids-limit 20 --cpus 0.5 "$IMAGE" sleep 1000)
  pid=$(E inspect -f '{{.State.Pid}}' "$id")
  expect_eq "$(cat "$(cgroup_dir "$pid" memory)/memory.limit_in_bytes")" 67108864 "memory limit"
  expect_eq "$(cat "$(cgroup_dir "$pid" pids)/pids.max")" 20 "pids limit"
  expect_eq "$(cat "$(cgroup_dir "$pid" cpu)/cpu.cfs_quota_us")" 50000 "cpu quota"
  E_remove "$id"
  # Trip them: an OOM kill is exit 137, a fork bomb stops at the limit.
  rc=$(code_of E run --rm --memory 32m --memory-swap 32m "$IMAGE" sh -c 'a=$(head -c 200000000 /dev/zero | tr "\0" x); echo survived')
  expect_eq "$rc" 137 "exit code of an OOM kill"
  # The shell gives up at the first fork the limit refuses.
  out=$(E run --rm --pids-limit 10 "$IMAGE" sh -c 'for i in $(seq 30); do sleep 30 & done' 2>&1 || true)
  echo "$out"
  expect_contains "$out" "can't fork" "fork refused at the limit"
}

s_read_only_tmpfs_bind() {
  local out
  out=$(E run --rm --read-only --tmpfs /tmp "$IMAGE" sh -c 'touch /x 2>&1; touch /tmp/ok && echo tmp-writable')
  expect_contains "$out" "Read-only file system" "--read-only"
  expect_contains "$out" "tmp-writable" "a tmpfs on /tmp of a read-only root"
  mkdir -p "$WORK/$ENGINE/host"
  out=$(E run --rm --tmpfs /scratch:size=1m -v "$WORK/$ENGINE/host:/data" "$IMAGE" \
    sh -c 'grep " /scratch " /proc/mounts; echo hi > /data/f')
  expect_contains "$out" "tmpfs /scratch tmpfs" "tmpfs mount"
  expect_eq "$(cat "$WORK/$ENGINE/host/f")" hi "file written through the bind mount"
}

s_user_and_caps() {
  expect_eq "$(E run --rm --user 1000:1000 "$IMAGE" id -u)" 1000 "--user uid"
  expect_eq "$(E run --rm --user app "$IMAGE" id -un)" app "--user name"
  local out
  out=$(E run --rm --cap-drop CHOWN "$IMAGE" sh -c 'chown 1 /tmp 2>&1 || echo refused')
  expect_contains "$out" "refused" "--cap-drop CHOWN"
  out=$(E run --rm --cap-add NET_ADMIN "$IMAGE" sh -c 'ip link set lo down && echo net-admin')
  expect_contains "$out" "net-admin" "--cap-add NET_ADMIN"
}

s_seccomp() {
  local out
  out=$(E run --rm "$IMAGE" sh -c "grep Seccomp: /proc/self/status; syscall $ADD_KEY")
  expect_contains "$out" "Seccomp:	2" "filter mode"
  expect_contains "$out" "errno $E_SECCOMP_ERRNO" "add_key refused by the default profile"
  out=$(E run --rm --security-opt seccomp=unconfined "$IMAGE" syscall $ADD_KEY)
  expect_contains "$out" "errno 14" "unconfined: the kernel's own answer (EFAULT)"
}


s_network() {
  local out host
  out=$(E run --rm --network none "$IMAGE" ls /sys/class/net)
  expect_eq "$(echo $out)" "lo" "--network none"
  host=$(readlink /proc/self/ns/net)
  out=$(E run --rm --network host "$IMAGE" readlink /proc/self/ns/net)
  expect_eq "$out" "$host" "--network host"
}


s_restart_and_logs() {
  local id pid1 pid2
  id=$(E run -d "$IMAGE" sh -c 'echo hello-log; sleep 1000')
  pid1=$(E inspect -f '{{.State.Pid}}' "$id")
  E restart -t 0 "$id" >/dev/null
  pid2=$(E inspect -f '{{.State.Pid}}' "$id")
  [ "$pid1" != "$pid2" ] || fail "restart kept pid $pid1"
  expect_eq "$(E inspect -f '{{.State.Status}}' "$id")" running "status after restart"
  expect_contains "$(E logs "$id")" "hello-log" "logs"
  E_remove "$id"
  # A restart policy: the engine creates the same container again on runr after each exit.
  id=$(E run -d --restart on-failure:2 "$IMAGE" sh -c 'echo run; exit 1')
  wait_for 30 sh -c "[ \"\$(${E_CMD[*]} inspect -f '{{.RestartCount}} {{.State.Status}}' $id)\" = '2 exited' ]" ||
    fail "restarts: $(E inspect -f '{{.RestartCount}} {{.State.Status}}' "$id")"
  expect_eq "$(E logs "$id" | grep -c run)" 3 "three runs logged"
  E_remove "$id"
}

s_stop_signals() {
  local id start
  id=$(E run -d "$IMAGE" sh -c 'trap "echo got-term; exit 0" TERM; while :; do sleep 0.1; done')
  start=$SECONDS
  E stop -t 20 "$id" >/dev/null
  [ $((SECONDS - start)) -lt 10 ] || fail "stop waited for the timeout despite the TERM handler"
  expect_eq "$(E inspect -f '{{.State.ExitCode}}' "$id")" 0 "exit code after a handled TERM"
  expect_contains "$(E logs "$id")" "got-term" "TERM reached the handler"
  E rm "$id" >/dev/null
}

s_error_reaches_user() {
  local out
  set +e
  out=$(E run --rm "$IMAGE" /no/such/program 2>&1)
  set -e
  echo "$out"
  expect_contains "$out" "/no/such/program" "runr's error shown by the engine"
}

s_joined_namespaces() {
  local a out
  a=$(E run -d --name joined-a --ipc shareable "$IMAGE" sleep 1000)
  out=$(E run --rm --pid container:joined-a --network container:joined-a --ipc container:joined-a "$IMAGE" ps)
  expect_contains "$out" "sleep 1000" "joined pid namespace"
  E_remove "$a"
}

# The run options of everyday workloads, each checked from inside.
s_run_options() {
  local out pid id
  out=$(E run --rm --hostname box1 -e FOO=bar -w /tmp --entrypoint sh --group-add 1234 \
    --ulimit nofile=1024:2048 ${E_RUN_ULIMITS[@]+"${E_RUN_ULIMITS[@]}"} --oom-score-adj 500 --cpuset-cpus 0 --shm-size 8m \
    --security-opt no-new-privileges --sysctl net.ipv4.ip_forward=1 \
    --device /dev/zero:/dev/myzero "$IMAGE" -c 'hostname; echo $FOO; pwd; id -G; ulimit -n; ulimit -Hn
      cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status; grep Cpus_allowed_list /proc/self/status
      cat /proc/sys/net/ipv4/ip_forward; head -c 3 /dev/myzero | wc -c; df -k /dev/shm | tail -1')
  echo "$out"
  local want
  for want in box1 bar /tmp "0 1234" 1024 2048 500 "NoNewPrivs:	1" "Cpus_allowed_list:	0"; do
    expect_contains "$out" "$want" "run options"
  done
  expect_eq "$(echo "$out" | sed -n 10p)" 1 "sysctl"
  expect_eq "$(echo "$out" | sed -n 11p)" 3 "device"
  expect_contains "$(echo "$out" | sed -n 12p)" " 8192 " "shm size"
  # exec with its own user, directory and environment.
  id=$(E run -d "$IMAGE" sleep 1000)
  out=$(E exec -u 1000:1000 -w /tmp -e BAZ=qux "$id" sh -c 'id -u; pwd; echo $BAZ')
  expect_eq "$out" "1000
/tmp
qux" "exec -u -w -e"
  # A signal of the user's choosing reaches the init.
  E_remove "$id"
  id=$(E run -d "$IMAGE" sh -c 'trap "echo got-usr1" USR1; while :; do sleep 0.1; done')
  sleep 0.5
  E kill -s USR1 "$id" >/dev/null
  wait_for 10 sh -c "${E_CMD[*]} logs $id | grep -q got-usr1" || fail "USR1 not delivered: $(E logs "$id")"
  E_remove "$id"
}

s_privileged() {
  local out
  out=$(E run --rm --privileged "$IMAGE" sh -c 'grep Seccomp: /proc/self/status; ls /dev | wc -l
    eff=0x$(awk "/^CapEff/ { print \$2 }" /proc/self/status)
    [ $(((eff >> 21) & (eff >> 12) & 1)) = 1 ] && echo sys-admin-and-net-admin
    mount -o remount,rw /sys 2>&1 && echo sys-rw; mount -t tmpfs none /tmp && echo mount-ok')
  echo "$out"
  expect_contains "$out" "Seccomp:	0" "no seccomp filter"
  expect_contains "$out" "sys-admin-and-net-admin" "capabilities"
  expect_contains "$out" "sys-rw" "/sys writable"
  expect_contains "$out" "mount-ok" "mount"
  [ "$(echo "$out" | sed -n 2p)" -gt 20 ] || fail "the host's devices: $(echo "$out" | sed -n 2p)"
}

s_init() {
  local out
  out=$(E run --rm --init "$IMAGE" sh -c 'cat /proc/1/cmdline | tr "\0" " "; echo; echo $$')
  echo "$out"
  expect_contains "$(echo "$out" | head -1 | cut -d" " -f1)" "init" "pid 1 is the engine's init"
  [ "$(echo "$out" | tail -1)" != 1 ] || fail "the shell is pid 1"
}

# Every scenario above, on the current engine.
shared_scenarios() {
  scenario "run --rm, exit code" s_run_rm_exit_code
  scenario "run -d, exec, stop, rm" s_detached_exec_stop_rm
  scenario "run -it" s_run_it
  scenario "exec -it" s_exec_it
  scenario "pause, unpause" s_pause_unpause
  scenario "top, stats" s_top_and_stats
  scenario "--memory, --pids-limit, --cpus" s_limits
  scenario "--read-only, tmpfs, bind" s_read_only_tmpfs_bind
  scenario "run options (hostname, env, ulimit, sysctl, device, …), exec -u -w -e, kill -s" s_run_options
  scenario "--privileged" s_privileged
  scenario "--init" s_init
  scenario "--user, --cap-add, --cap-drop" s_user_and_caps
  scenario "default seccomp profile" s_seccomp
  scenario "--network none, host" s_network
  scenario "joined namespaces" s_joined_namespaces
  scenario "restart, logs" s_restart_and_logs
  scenario "stop: SIGTERM, then SIGKILL" s_stop_signals
  scenario "create error reaches the user" s_error_reaches_user
}
