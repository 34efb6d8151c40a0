#!/usr/bin/env bash
# Benchmark runr's native containerd shim (containerd-shim-runr-v2) against containerd's Go
# shim (containerd-shim-runc-v2) running runr and running runc, through a private containerd
# 1.6 (own root, state and sockets; stopped by pid at the end): `ctr run --rm` of /bin/true,
# `ctr task exec` of /bin/true into a running container, each shim's memory (RSS) while it
# serves one container, and PODS (default 50) pod sandboxes started and removed through CRI
# (with the shims' memory per pod: RSS, and PSS, which counts the pages the shims share,
# their binary's, once). Run as root. RUNS (default 30) runs per measure.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
bash scripts/deps.sh
need=()
for p in containerd runc hyperfine python3 python3-grpcio python3-protobuf protobuf-compiler; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Installing must not start containerd's system service: the benchmark runs its own.
  policy_existed=0
  [ -e /usr/sbin/policy-rc.d ] && policy_existed=1
  [ $policy_existed = 1 ] || printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  apt-get install -y -qq "${need[@]}" >/dev/null
  [ $policy_existed = 1 ] || rm -f /usr/sbin/policy-rc.d
fi
cargo build --release --locked --quiet -p runr -p shim
# A shim that runs nothing (crates/shim/examples/noop-shim.rs): what a `ctr run` costs
# containerd and ctr themselves.
cargo build --release --locked --quiet -p shim --example noop-shim
runs=${RUNS:-30}
work=$(mktemp -d /tmp/runr-bench-shim.XXXXXX)
chmod 755 "$work"
D=$work/cd
mkdir -p "$D/path"
# (CARGO_TARGET_DIR, when set, is where cargo put them.)
bin=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release
cp "$bin/runr" "$work/runr"
cp "$bin/containerd-shim-runr-v2" "$D/path/"
# (SHIM_TRACE=DIR, from scripts/hot-code/record.sh: every native shim runs under DIR/trace,
# which writes the functions it ran to DIR/hits.PID.)
if [ -n "${SHIM_TRACE:-}" ]; then
  mv "$D/path/containerd-shim-runr-v2" "$work/shim-traced"
  nm --defined-only "$work/shim-traced" | awk '$2 ~ /^[tT]$/ { print $1, $3 }' >"$work/shim.syms"
  printf '#!/bin/sh\nexec %s/trace %s %s/hits.$$ %s "$@"\n' \
    "$SHIM_TRACE" "$work/shim.syms" "$SHIM_TRACE" "$work/shim-traced" >"$D/path/containerd-shim-runr-v2"
  chmod 755 "$D/path/containerd-shim-runr-v2"
fi
cp "$bin/examples/noop-shim" "$D/path/containerd-shim-noop-v2"
RUNC=$(command -v runc)
CD_PID=
# The Go shim keeps its runtime's state under /run/containerd/runc, ctr its fifos under
# /run/containerd/fifo: removed at the end unless they were there before.
[ -e /run/containerd ] && run_existed=1 || run_existed=0
# The parent cgroups ctr (its namespace) and CRI make: removed at the end (once empty)
# unless they were there before.
declare -A cg_existed
for name in bench k8s.io; do
  [ -d "/sys/fs/cgroup/memory/$name" ] || [ -d "/sys/fs/cgroup/$name" ] && cg_existed[$name]=1 || cg_existed[$name]=0
done
cleanup() {
  if [ -n "$CD_PID" ]; then
    for ns in bench k8s.io; do
      for id in $(ctr -a "$D/containerd.sock" -n $ns task ls -q 2>/dev/null); do
        ctr -a "$D/containerd.sock" -n $ns task kill -s KILL "$id" >/dev/null 2>&1 || true
      done
      sleep 0.5
      for id in $(ctr -a "$D/containerd.sock" -n $ns c ls -q 2>/dev/null); do
        ctr -a "$D/containerd.sock" -n $ns task rm -f "$id" >/dev/null 2>&1 || true
        ctr -a "$D/containerd.sock" -n $ns c rm "$id" >/dev/null 2>&1 || true
      done
    done
    kill -TERM "$CD_PID" 2>/dev/null || true
    wait "$CD_PID" 2>/dev/null || true
  fi
  for m in $(findmnt -rn -o TARGET | grep "^$work" | sort -r || true); do umount -l "$m" || true; done
  rm -rf "$work"
  [ $run_existed = 1 ] || rm -rf /run/containerd
  for name in bench k8s.io; do
    [ "${cg_existed[$name]}" = 1 ] && continue
    for dir in /sys/fs/cgroup/*/"$name" /sys/fs/cgroup/unified/"$name"; do
      [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  done
}
trap cleanup EXIT

eff=$(awk '/^CapEff:/ { print $2 }' /proc/self/status)
if (((0x$eff >> 24) & 1)); then restrict_oom=false; else restrict_oom=true; fi
cat >"$D/config.toml" <<CONF
version = 2
root = "$D/root"
state = "$D/state"
[grpc]
  address = "$D/containerd.sock"
[ttrpc]
  address = "$D/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/runr-pause:latest"
  enable_selinux = false
  # Pod sandboxes ask for oom_score_adj -998, which needs CAP_SYS_RESOURCE to go below our
  # own; some hosts withhold it from root.
  restrict_oom_score_adj = $restrict_oom
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$D/cni-bin"
    conf_dir = "$D/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "native"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.native]
      runtime_type = "io.containerd.runr.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.gorunr]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.gorunr.options]
        BinaryName = "$work/runr"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.gorunc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.gorunc.options]
        BinaryName = "$RUNC"
CONF
mkdir -p "$D/cni-bin" "$D/cni-conf"
PATH="$D/path:$PATH" containerd --config "$D/config.toml" >"$work/containerd.log" 2>&1 &
CD_PID=$!
for _ in $(seq 100); do ctr -a "$D/containerd.sock" version >/dev/null 2>&1 && break; sleep 0.1; done
image=runr-busybox:latest
python3 tests/engines/image.py "$(command -v busybox)" "$work/busybox.tar" "$image" >/dev/null
C="ctr -a $D/containerd.sock -n bench"
$C images import "$work/busybox.tar" >/dev/null
ref=docker.io/library/$image
python3 tests/engines/image.py "$(command -v busybox)" "$work/pause.tar" runr-pause:latest '--cmd=["sleep", "2147483647"]' >/dev/null
ctr -a "$D/containerd.sock" -n k8s.io images import "$work/pause.tar" >/dev/null

names=(native go+runr go+runc)
declare -A how=(
  [native]="--runtime io.containerd.runr.v2"
  [go+runr]="--runc-binary $work/runr"
  [go+runc]="--runc-binary $RUNC"
)
run_cmds=() exec_cmds=()
for n in "${names[@]}"; do
  run_cmds+=(-n "$n" "$C run --rm ${how[$n]} $ref b-${n/+/-} /bin/true")
  $C run -d ${how[$n]} "$ref" "e-${n/+/-}" sleep 100000 >/dev/null
  exec_cmds+=(-n "$n" "$C task exec --exec-id x\$RANDOM\$RANDOM e-${n/+/-} /bin/true")
done
run_cmds+=(-n noop "$C run --rm --runtime io.containerd.noop.v2 $ref b-noop /bin/true")
hyperfine --warmup 3 --runs "$runs" --export-json "$work/run.json" "${run_cmds[@]}" >/dev/null
hyperfine --shell bash --warmup 3 --runs "$runs" --export-json "$work/exec.json" "${exec_cmds[@]}" >/dev/null

# Each shim's memory while it serves one running container: the shim process, and for the
# native shim its spawner helper (a child of the shim, which creates the containers).
echo "memory of the shim serving one container (VmRSS):"
for n in "${names[@]}"; do
  pid=$($C task ls | awk -v id="e-${n/+/-}" '$1 == id { print $2 }')
  shim=$(ps -o ppid= -p "$pid" | tr -d ' ')
  rss=$(awk '/VmRSS/ { print $2 }' "/proc/$shim/status")
  helpers=""
  for c in $(ps --ppid "$shim" -o pid=); do
    [ "$c" = "$pid" ] && continue
    helpers+=" + $(awk '/VmRSS/ { print $2 }' "/proc/$c/status") kB ($(cat "/proc/$c/comm"))"
  done
  printf '  %-8s %6s kB (%s)%s\n' "$n" "$rss" "$(cat "/proc/$shim/comm")" "$helpers"
done

# Pods through CRI, one runtime after the other.
for n in "${names[@]}"; do $C task kill -s KILL "e-${n/+/-}" >/dev/null; done
sleep 1
for n in "${names[@]}"; do $C task rm -f "e-${n/+/-}" >/dev/null; $C c rm "e-${n/+/-}" >/dev/null; done
mkdir -p "$work/py"
protoc -I tests/engines --python_out="$work/py" tests/engines/cri.proto
declare -A handler=([native]=native [go+runr]=gorunr [go+runc]=gorunc)
for n in "${names[@]}"; do
  PODS=${PODS:-50} HANDLER=${handler[$n]} SHIM_COMM=containerd-shim \
    /usr/bin/python3 tests/engines/cri.py "$work/py" "$D/containerd.sock" unused bench >>"$work/pods.jsonl"
done

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
for name, title in (("run", "ctr run --rm /bin/true"), ("exec", "ctr task exec /bin/true")):
    res = {r["command"]: r for r in json.load(open(f"{work}/{name}.json"))["results"]}
    base = res["native"]["median"]
    print(f"{title} (median, mean ± sd):")
    for cmd in ("native", "go+runr", "go+runc", "noop"):
        if cmd not in res:
            continue
        r = res[cmd]
        print(f"  {cmd:8} {r['median']*1000:7.1f} ms  {r['mean']*1000:7.1f} ± {r['stddev']*1000:5.1f} ms"
              f"  ({r['median']/base:.2f}x the native shim)")
rows = [json.loads(l) for l in open(f"{work}/pods.jsonl")]
print(f"{rows[0]['pods']} pod sandboxes through CRI, one after the other:")
for r, name in zip(rows, ("native", "go+runr", "go+runc")):
    print(f"  {name:8} start {r['start_s']:6.2f} s ({r['start_s']/r['pods']*1000:5.0f} ms/pod), "
          f"stop+remove {r['remove_s']:6.2f} s, shims' memory per pod: RSS "
          f"{r['shim_rss_kb_per_pod']/1024:4.1f} MiB, PSS {r['shim_pss_kb_per_pod']/1024:4.1f} MiB")
PY
