#!/usr/bin/env bash
# Checkpoint and restore times of a small busybox container (a shell counting in a loop),
# runr against runc with the same CRIU, and the size of the images. Run as root, after
# `cargo build --release`. Usage: scripts/bench-criu.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-10}"
criu="$(bash scripts/criu.sh)"
runr="${RUNR:-$PWD/target/x86_64-unknown-linux-gnu/release/runr}"
runc="${RUNC:-$(command -v runc)}"
work="$(mktemp -d /tmp/bench-criu.XXXXXX)"
trap 'rm -rf "$work"' EXIT
bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin"
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
for a in sh sleep; do ln -s busybox "$bundle/rootfs/bin/$a"; done
mkdir -p "$bundle/rootfs/"{proc,sys,dev,tmp}
(cd "$bundle" && "$runr" spec)
python3 - "$bundle/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "i=0; while true; do i=$((i+1)); sleep 0.1; done"]
json.dump(c, open(p, "w"))
EOF

ms() { date +%s%N; }
# bench NAME FLAGS CMD...: CMD is the runtime with its global flags, FLAGS (one word, may
# be empty) go to both checkpoint and restore.
bench() {
  local name="$1" flags="$2"; shift 2
  local id="bench-criu-$name" img="$work/img-$name" cps=() rss=()
  "$@" run -d --bundle "$bundle" "$id" </dev/null >/dev/null 2>&1
  for _ in $(seq "$rounds"); do
    rm -rf "$img"
    local t0; t0=$(ms)
    "$@" checkpoint $flags --image-path "$img" "$id" </dev/null >/dev/null
    local t1; t1=$(ms)
    "$@" restore -d $flags --bundle "$bundle" --image-path "$img" "$id" </dev/null >/dev/null 2>&1
    local t2; t2=$(ms)
    cps+=($(( (t1 - t0) / 1000 ))); rss+=($(( (t2 - t1) / 1000 )))
  done
  local size; size=$(du -sk --exclude='*.log' "$img" | cut -f1)
  "$@" delete -f "$id" >/dev/null 2>&1 || true
  median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  printf '%-20s checkpoint %6.1f ms  restore %6.1f ms  images %s KiB  (median of %s)\n' "$name" \
    "$(echo "$(median "${cps[@]}") / 1000" | bc -l)" "$(echo "$(median "${rss[@]}") / 1000" | bc -l)" \
    "$size" "$rounds"
}
# bench_lazy CMD...: restore --lazy-pages with a `criu lazy-pages` daemon serving a plain
# checkpoint's images (post-copy from local images; a lazy checkpoint's page server needs
# CAP_SYS_RESOURCE or a 4 MiB fs.pipe-max-size). Only the restore is timed: until it returns.
bench_lazy() {
  local id="bench-criu-lazy" img="$work/img-lazy" rss=()
  "$@" run -d --bundle "$bundle" "$id" </dev/null >/dev/null 2>&1
  for _ in $(seq "$rounds"); do
    rm -rf "$img"
    "$@" checkpoint --image-path "$img" "$id" </dev/null >/dev/null
    "$criu" lazy-pages -o lazy-pages.log -D "$img" </dev/null >/dev/null 2>&1 &
    local daemon=$!
    for _ in $(seq 500); do [ -S "$img/lazy-pages.socket" ] && break; sleep 0.01; done
    local t1; t1=$(ms)
    "$@" restore -d --lazy-pages --bundle "$bundle" --image-path "$img" "$id" </dev/null >/dev/null 2>&1
    local t2; t2=$(ms)
    wait "$daemon" || true
    rss+=($(( (t2 - t1) / 1000 )))
  done
  "$@" delete -f "$id" >/dev/null 2>&1 || true
  median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  printf '%-20s restore --lazy-pages %6.1f ms  (median of %s)\n' "runr-lazy" \
    "$(echo "$(median "${rss[@]}") / 1000" | bc -l)" "$rounds"
}
echo "criu: $criu ($("$criu" --version | head -1))"
RUNR_CRIU="$criu" bench runr "" "$runr" --root "$work/runr-state"
# The network namespace made empty on restore, not dumped (runc 1.1's images hold no netns).
RUNR_CRIU="$criu" bench_lazy "$runr" --root "$work/runr-state"
RUNR_CRIU="$criu" bench runr-empty-netns "--empty-ns=network" "$runr" --root "$work/runr-state"
bench runc "" "$runc" --root "$work/runc-state" --criu "$criu"
