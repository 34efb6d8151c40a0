# podman (with conmon) running containers on runr: `podman --runtime PATH`, with its own
# storage, run root and configuration. Sourced by run.sh; defines podman_suite.

P() {
  "${E_CMD[@]}" "$@"
}

podman_setup() {
  local runtime
  runtime=$(runtime_for podman)
  mkdir -p "$WORK/podman/root" "$WORK/podman/run" "$WORK/podman/tmp" "$WORK/podman/networks"
  E_CMD=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --tmpdir "$WORK/podman/tmp"
    --runtime "$runtime" --cgroup-manager cgroupfs --events-backend file)
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
  # A --ulimit given on the command line replaces all these defaults.
  E_RUN_ULIMITS=(--ulimit "nproc=$nproc:$nproc")
  # No network by default: podman's bridge would add a bridge and firewall rules to the
  # host, and its network configuration (and lock) stays in the work directory. Host
  # networking and joined namespaces are tested explicitly.
  cat >"$CONTAINERS_CONF" <<CONF
[containers]
netns = "none"
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime_supports_json = ["runr"]
[network]
network_config_dir = "$WORK/podman/networks"
CONF
  P load -i "$IMAGE_TAR" >/dev/null
}

# podman's default profile (containers-common) answers ENOSYS.
E_SECCOMP_ERRNO=38

E_remove() {
  P rm -f -t 0 "$1" >/dev/null
}

podman_teardown() {
  P pod rm -af -t 0 >/dev/null 2>&1 || true
  P rm -af -t 0 >/dev/null 2>&1 || true
  P system reset -f >/dev/null 2>&1 || true
  unset CONTAINERS_CONF
}

p_pod() {
  local net hostname out
  P pod create --name pod1 >/dev/null
  P run -d --pod pod1 --name pod1-a "$IMAGE" sleep 1000 >/dev/null
  net=$(P exec pod1-a readlink /proc/self/ns/net)
  hostname=$(P exec pod1-a hostname)
  out=$(P run --rm --pod pod1 "$IMAGE" sh -c 'readlink /proc/self/ns/net; hostname')
  expect_eq "$out" "$net
$hostname" "the pod's network namespace and host name"
  P pod rm -f -t 0 pod1 >/dev/null
}

p_userns() {
  local out
  out=$(P run --rm --uidmap 0:200000:65536 --gidmap 0:200000:65536 "$IMAGE" cat /proc/self/uid_map)
  expect_eq "$(echo $out)" "0 200000 65536" "uid map"
  out=$(P run --rm --uidmap 0:200000:65536 --gidmap 0:200000:65536 "$IMAGE" sh -c 'touch /tmp/f && chown 1000 /tmp/f && stat -c %u /tmp/f')
  expect_eq "$out" 1000 "chown inside the user namespace"
}

# podman container checkpoint / restore on runr. podman checks CRIU's version itself with
# the criu on PATH, and runr finds the same one there: PATH starts with the one
# scripts/criu.sh gives (Debian 12's criu 3.17 does not start on 6.x kernels).
p_checkpoint() {
  mkdir -p "$WORK/criu-bin"
  ln -sf "$1" "$WORK/criu-bin/criu"
  export PATH="$WORK/criu-bin:$PATH"
  P run -d --name ckpt "$IMAGE" sh -c 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done' >/dev/null
  sleep 2
  P container checkpoint ckpt
  expect_eq "$(P inspect -f '{{.State.Status}}' ckpt)" exited "status after checkpoint"
  local before after
  before=$(P logs ckpt | tail -n 1)
  P container restore ckpt
  sleep 1
  expect_eq "$(P inspect -f '{{.State.Status}}' ckpt)" running "status after restore"
  after=$(P logs ckpt | tail -n 1)
  # Restarted rather than restored, it would have counted to about 10 by now.
  [ "$after" -gt "$before" ] || fail "the count did not go on: $before, then $after"
  expect_eq "$(P exec ckpt echo inside)" inside "exec after restore"
  P rm -f -t 0 ckpt >/dev/null
}

podman_suite() {
  ENGINE=podman
  if ! podman_setup; then
    FAILED+=("podman: setup failed")
    return
  fi
  shared_scenarios
  scenario "--uidmap (user namespace)" p_userns
  scenario "pod" p_pod
  local criu
  if criu=$(bash "$REPO/scripts/criu.sh" 2>/dev/null); then
    scenario "container checkpoint and restore (CRIU)" p_checkpoint "$criu"
  else
    skip "container checkpoint and restore" "no working criu (scripts/criu.sh failed)"
  fi
  podman_teardown
}
