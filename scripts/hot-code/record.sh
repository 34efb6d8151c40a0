#!/usr/bin/env bash
# Record which functions containerd-shim-runr-v2 runs, into crates/shim/hot-code.txt, which
# scripts/linker-gcc puts first in the shim's code. The kernel maps a binary's code in 64 KiB
# windows around each page a process touches, and the code a shim runs is spread over most of
# the binary otherwise: every shim holds more of it (RSS) than it runs. Run as root, on a
# quiet host, after changes that move much of what the shim runs (the list is by name, so it
# survives the rest; a name it lacks only goes unordered):
#
#   bash scripts/hot-code/record.sh
#
# It runs scripts/bench-shim.sh (few runs) with each native shim under trace.c, a breakpoint
# on every function, and keeps the names hit by the shims' long-lived processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$(mktemp -d /tmp/runr-hot-code.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cc -O2 -Wall -o "$dir/trace" scripts/hot-code/trace.c
SHIM_TRACE=$dir RUNS=${RUNS:-3} PODS=${PODS:-10} bash scripts/bench-shim.sh >"$dir/bench.out"
# The shims are gone once their containers are; the tracers write as their last shim ends.
for _ in $(seq 100); do
  pgrep -f "^$dir/trace" >/dev/null || break
  sleep 0.1
done
ls "$dir"/hits.* >/dev/null
# In order of first hit.
cat "$dir"/hits.* | awk '!seen[$0]++' >crates/shim/hot-code.txt
echo "$(wc -l <crates/shim/hot-code.txt) functions in crates/shim/hot-code.txt"
