#!/usr/bin/env bash
# runr-agent against the runr CLI (crates/agent/examples/bench.rs): a container of `true`
# created, started, waited for and removed over the agent's socket vs `runr run`; an exec of
# `true` vs `runr exec`; the agent's RSS idle and with 100 containers. Release builds; the
# state of both on one tmpfs (as under /run), in a private mount namespace.
# Run as root. RUNS=N sets the runs per measurement (default 100).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
cargo build --release --quiet -p runr -p agent --bins --example bench
bin=target/x86_64-unknown-linux-gnu/release
work=$(mktemp -d /tmp/runr-agent-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/proc" "$work/rootfs/dev" "$work/state"
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
for applet in true sleep sh; do ln -s busybox "$work/rootfs/bin/$applet"; done
cp "$bin/runr" "$bin/runr-agent" "$bin/examples/bench" "$work/"
unshare -m --propagation private bash -s "$work" "${RUNS:-100}" <<'INNER'
set -euo pipefail
work=$1 runs=$2
mount -t tmpfs -o mode=0700 runr-agent-bench-state "$work/state"
"$work/bench" --agent "$work/runr-agent" --runr "$work/runr" --rootfs "$work/rootfs" \
  --work "$work/state" --runs "$runs"
umount "$work/state"
INNER
