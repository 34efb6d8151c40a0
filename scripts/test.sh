#!/usr/bin/env bash
# Run every runr test: unit tests and the integration tests that create real containers.
# Run as root (containers, mounts and cgroups need it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
# A working CRIU for the checkpoint tests: the host's if `criu check` passes, else CRIU 4.2
# built from ../shared/vendor (cached under /opt/runr-criu). CI must have one: fail here if not.
RUNR_CRIU="$(bash scripts/criu.sh)"
export RUNR_CRIU
cargo test --workspace --locked
# The created init's memory target (under 1 MiB, one thread) holds for the optimised build.
cargo test --release --locked -p runr --test lifecycle created_init_is_one_small_thread
# Unmodified podman, docker, containerd and Kubernetes' CRI running containers on runr.
bash tests/engines/run.sh
