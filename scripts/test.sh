#!/usr/bin/env bash
# Run every runr test: unit tests and the integration tests that create real containers.
# Run as root (containers, mounts and cgroups need it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo test --workspace --locked
