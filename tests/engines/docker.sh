# docker 20.10 (dockerd with its own containerd and containerd-shim-runc-v2) running
# containers on runr: `dockerd --add-runtime runr=PATH --default-runtime runr`, with its own
# data root, exec root and socket, and no bridge (it would change the host's network).
# Sourced by run.sh; defines docker_suite.

D() {
  "${E_CMD[@]}" "$@"
}

docker_setup() {
  local runtime dir=$WORK/docker
  runtime=$(runtime_for docker)
  mkdir -p "$dir"
  # Debian's client, not a newer one elsewhere on PATH: it must speak this daemon's API.
  E_CMD=(/usr/bin/docker -H "unix://$dir/docker.sock")
  start_daemon DOCKERD_PID "$dir/dockerd.log" /usr/sbin/dockerd \
    --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
    -H "unix://$dir/docker.sock" --add-runtime "runr=$runtime" --default-runtime runr \
    --bridge none --iptables=false --ip6tables=false --ip-masq=false \
    --cgroup-parent runr-engines-docker --exec-opt native.cgroupdriver=cgroupfs
  wait_for 60 D version || { tail -20 "$dir/dockerd.log"; return 1; }
  D load -i "$IMAGE_TAR" >/dev/null
}

E_RUN_ULIMITS=()

# docker's built-in default profile answers EPERM.
E_SECCOMP_ERRNO=1

E_remove() {
  D rm -f "$1" >/dev/null
}

docker_teardown() {
  local ids
  ids=$(D ps -aq 2>/dev/null || true)
  [ -z "$ids" ] || D rm -f $ids >/dev/null 2>&1 || true
  stop_daemon "$DOCKERD_PID"
}

d_update() {
  local id pid
  id=$(D run -d --memory 64m --memory-swap 64m "$IMAGE" sleep 1000)
  D update --memory 128m --memory-swap 256m --pids-limit 30 --cpus 0.25 "$id" >/dev/null
  pid=$(D inspect -f '{{.State.Pid}}' "$id")
  expect_eq "$(cat "$(cgroup_dir "$pid" memory)/memory.limit_in_bytes")" 134217728 "memory limit"
  expect_eq "$(cat "$(cgroup_dir "$pid" memory)/memory.memsw.limit_in_bytes" 2>/dev/null || echo 268435456)" 268435456 "memory+swap limit"
  expect_eq "$(cat "$(cgroup_dir "$pid" pids)/pids.max")" 30 "pids limit"
  expect_eq "$(cat "$(cgroup_dir "$pid" cpu)/cpu.cfs_quota_us")" 25000 "cpu quota"
  expect_contains "$(cat "$WORK/calls/docker.log")" "update" "runr update was called"
  E_remove "$id"
}

# dockerd --userns-remap: a second daemon whose containers run in a user namespace, root
# mapped to the subordinate ids of a user this scenario creates (and deletes).
d_userns_remap() {
  local dir=$WORK/docker-remap range out
  # Globals: the EXIT trap runs after this function's locals are gone.
  REMAP_USER=runr-remap-$$
  REMAP_PID=""
  useradd --no-create-home --shell /usr/sbin/nologin "$REMAP_USER"
  trap 'stop_daemon "$REMAP_PID"; userdel "$REMAP_USER" 2>/dev/null || true' EXIT
  local user=$REMAP_USER
  range=$(awk -F: -v u="$user" '$1 == u { print $2 }' /etc/subuid)
  if [ -z "$range" ] || [ -z "$(awk -F: -v u="$user" '$1 == u { print $2 }' /etc/subgid)" ]; then
    range=3100000
    usermod --add-subuids "$range-$((range + 65535))" --add-subgids "$range-$((range + 65535))" "$user"
  fi
  mkdir -p "$dir"
  start_daemon REMAP_PID "$dir/dockerd.log" /usr/sbin/dockerd \
    --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/docker.pid" \
    -H "unix://$dir/docker.sock" --add-runtime "runr=$WORK/docker/bin/runr" --default-runtime runr \
    --bridge none --iptables=false --ip6tables=false --ip-masq=false \
    --cgroup-parent runr-engines-docker --exec-opt native.cgroupdriver=cgroupfs --userns-remap "$user"
  wait_for 60 /usr/bin/docker -H "unix://$dir/docker.sock" version || { tail -20 "$dir/dockerd.log"; return 1; }
  /usr/bin/docker -H "unix://$dir/docker.sock" load -i "$IMAGE_TAR" >/dev/null
  out=$(/usr/bin/docker -H "unix://$dir/docker.sock" run --rm "$IMAGE" \
    sh -c 'cat /proc/self/uid_map; touch /tmp/f && chown 1000 /tmp/f && stat -c %u /tmp/f')
  expect_eq "$(echo $out)" "0 $range 65536 1000" "uid map, and chown inside"
  out=$(/usr/bin/docker -H "unix://$dir/docker.sock" run --rm --userns host "$IMAGE" cat /proc/self/uid_map)
  expect_eq "$(echo $out)" "0 0 4294967295" "--userns host"
}

d_info() {
  local commit
  commit=$("$RUNR_BINARY" --version | awk '/^commit:/ { print $2 }')
  expect_eq "$(D info --format '{{.DefaultRuntime}} {{.RuncCommit.ID}}')" "runr $commit" "docker info: runr --version read"
}

docker_suite() {
  ENGINE=docker
  if ! docker_setup; then
    FAILED+=("docker: the daemon did not start")
    return
  fi
  scenario "info (runr --version)" d_info
  shared_scenarios
  scenario "update" d_update
  scenario "--userns-remap" d_userns_remap
  docker_teardown
}
