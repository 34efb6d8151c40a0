#!/usr/bin/env bash
# The engine suite: unmodified podman, docker and containerd (and Kubernetes' CRI through
# containerd) run containers on runr. Run as root on Debian:
#
#   bash tests/engines/run.sh [podman] [docker] [containerd] [cri] [shim]    (default: all)
#
# (ONLY=REGEX runs only the scenarios whose name matches.)
# (shim: runr's native containerd shim, through ctr and CRI.)
# It installs the engines from Debian, builds runr and its shim (release) and a local busybox image,
# starts each daemon privately (own root, state and socket, stopped by pid at the end) and
# points it at runr by path. Each engine's calls to runr are logged under the work
# directory (kept with KEEP=1).
set -euo pipefail
ENGINES_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$ENGINES_DIR/../.." && pwd)

need=()
for p in podman conmon containerd docker.io python3 python3-grpcio python3-protobuf protobuf-compiler; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Installing must not start the engines' system services: the suite runs its own.
  policy_existed=0
  [ -e /usr/sbin/policy-rc.d ] && policy_existed=1
  [ $policy_existed = 1 ] || printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  apt-get install -y -qq "${need[@]}" >/dev/null
  [ $policy_existed = 1 ] || rm -f /usr/sbin/policy-rc.d
fi
bash "$REPO/scripts/deps.sh"
(cd "$REPO" && cargo build --release --locked --quiet -p runr -p shim)
# (CARGO_TARGET_DIR, when set, is where cargo put them.)
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
RUNR_BINARY=$TARGET_DIR/x86_64-unknown-linux-gnu/release/runr
SHIM_BINARY=$TARGET_DIR/x86_64-unknown-linux-gnu/release/containerd-shim-runr-v2

# shellcheck source=lib.sh
. "$ENGINES_DIR/lib.sh"
# shellcheck source=scenarios.sh
. "$ENGINES_DIR/scenarios.sh"
trap '[ "${KEEP:-0}" = 1 ] && echo "kept $WORK" || cleanup_work' EXIT
# The image: busybox, and a helper that makes one raw system call (to tell a seccomp
# filter's answer from the kernel's).
cc -static -O2 -o "$WORK/syscall" "$REPO/crates/runr/tests/helpers/syscall.c"
python3 "$ENGINES_DIR/image.py" "$(command -v busybox)" "$IMAGE_TAR" "$IMAGE" "bin/syscall=$WORK/syscall"
python3 "$ENGINES_DIR/image.py" "$(command -v busybox)" "$PAUSE_IMAGE_TAR" "$PAUSE_IMAGE" '--cmd=["sleep", "2147483647"]'

engines=("$@")
[ ${#engines[@]} -gt 0 ] || engines=(podman docker containerd cri shim)
# The CRI suite runs containerd as the containerd suite does; the shim suite runs both.
# shellcheck source=containerd.sh
. "$ENGINES_DIR/containerd.sh"
# shellcheck source=cri.sh
. "$ENGINES_DIR/cri.sh"
for e in "${engines[@]}"; do
  # shellcheck source=/dev/null
  . "$ENGINES_DIR/$e.sh"
  "${e}_suite"
done

echo
echo "passed: $PASSED, failed: ${#FAILED[@]}, skipped: ${#SKIPPED[@]}"
for f in "${FAILED[@]}"; do echo "  failed: $f"; done
for e in "${engines[@]}"; do
  [ -s "$WORK/calls/$e.log" ] || continue
  echo "runr calls made by $e:"
  # The command and its flags, without values: what the engine passes.
  awk '{ line = ""
         for (i = 1; i <= NF; i++) {
           w = $i; sub(/=.*/, "", w)
           if (w ~ /^-/ || w ~ /^(create|start|run|exec|kill|delete|state|list|ps|pause|resume|update|events|features|spec|checkpoint|restore)$/)
             line = line " " w
         }
         print line }' "$WORK/calls/$e.log" | sort | uniq -c | sort -rn | sed 's/^/  /'
done
[ ${#FAILED[@]} -eq 0 ]
