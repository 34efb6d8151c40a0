#!/usr/bin/env bash
# Benchmark runr against runc and crun with hyperfine: `run` of /bin/true (back to back and
# 100 ms apart), create + start + delete, exec into a running container, and the same through
# the library in-process; the created init's RSS, threads and cgroup charge; each runtime's
# peak RSS during `run`.
# Run as root. All three run inside one private mount namespace where the host's cgroup2
# mount is hidden, because crun refuses this host's hybrid layout otherwise; runr and runc
# see the same view, so the comparison is fair.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
command -v hyperfine >/dev/null && command -v runc >/dev/null && command -v crun >/dev/null && [ -x /usr/bin/time ] || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine runc crun time >/dev/null
}
cargo build --release --quiet -p runr --bins --example inproc
work=$(mktemp -d /tmp/runr-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/bin"
cp "$(command -v busybox)" "$work/bundle/rootfs/bin/busybox"
ln -s busybox "$work/bundle/rootfs/bin/true"
ln -s busybox "$work/bundle/rootfs/bin/sleep"
cp "$PWD/target/x86_64-unknown-linux-gnu/release/runr" "$work/runr"
cp "$PWD/target/x86_64-unknown-linux-gnu/release/examples/inproc" "$work/inproc"
(cd "$work/bundle" && "$work/runr" spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/true"/' config.json)
runs=${RUNS:-50}
# The same container with CAP_SYS_PTRACE (as --privileged has it): runr then runs from a
# read-only view of its binary (CVE-2019-5736); what that costs.
mkdir "$work/pbundle"
ln -s ../bundle/rootfs "$work/pbundle/rootfs"
python3 - "$work" <<'PY'
import json, sys
c = json.load(open(f"{sys.argv[1]}/bundle/config.json"))
for s in ("bounding", "effective", "permitted"):
    c["process"]["capabilities"][s].append("CAP_SYS_PTRACE")
json.dump(c, open(f"{sys.argv[1]}/pbundle/config.json", "w"))
PY

unshare -m --propagation private bash -s "$work" "$runs" <<'INNER'
set -euo pipefail
work=$1 runs=$2
if mountpoint -q /sys/fs/cgroup/unified; then umount -l /sys/fs/cgroup/unified; fi
# State on tmpfs, as under /run where every runtime keeps it by default (on ext4, creating a
# state file costs a scan of recently deleted inodes that no real host pays).
mkdir "$work/state" && mount -t tmpfs -o mode=0700 runr-bench-state "$work/state"
cd "$work/bundle"
declare -A bin=([runr]="$work/runr" [runc]=runc [crun]=crun)
names=(runr runc crun)
run_cmds=() cycle_cmds=()
for n in "${names[@]}"; do
  b=${bin[$n]}; root="$work/state/root-$n"
  run_cmds+=(-n "$n" "$b --root $root run b-$n")
  cycle_cmds+=(-n "$n" "$b --root $root create b2-$n && $b --root $root start b2-$n && $b --root $root delete -f b2-$n")
done
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/run.json" "${run_cmds[@]}" >/dev/null || { hyperfine -N --runs 3 --show-output "${run_cmds[@]}" | tail -20; exit 1; }
# One at a time, as an operator runs them: 100 ms apart, the kernel's caches and RCU state
# go cold (the first cgroup.procs write then waits for a whole RCU grace period).
hyperfine -N --warmup 2 --runs 20 --prepare "sleep 0.1" --export-json "$work/spaced.json" "${run_cmds[@]}" >/dev/null
hyperfine --warmup 5 --runs "$runs" --export-json "$work/cycle.json" "${cycle_cmds[@]}" >/dev/null
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/ptrace.json" \
  -n plain "$work/runr --root $work/state/root-runr run b-plain" \
  -n ptrace "$work/runr --root $work/state/root-runr run --bundle $work/pbundle b-ptrace" >/dev/null

# The library from a long-lived program (crates/runr/examples/inproc.rs): no runr process
# per call.
"$work/inproc" --root "$work/state/root-inproc" --bundle "$work/bundle" --runs "$runs" >"$work/inproc.txt"

# Memory of an init waiting in the created state.
sed -i 's/"\/bin\/true"/"\/bin\/sleep", "1"/' config.json
echo "init in the created state:"
for n in "${names[@]}"; do
  b=${bin[$n]}; root="$work/state/root-$n"
  $b --root "$root" create "m-$n" >/dev/null 2>&1
  pid=$($b --root "$root" state "m-$n" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
  # What the container's memory cgroup is charged for it, with nothing run yet: the pages
  # charged (kernel memory + anonymous + page cache), and memory.usage_in_bytes, which the
  # kernel rounds up by its per-CPU charge batch (64 pages per CPU that charged, kept
  # until another cgroup charges there), so it reads 0, 256 or 512 kB for any small charge.
  cg=/sys/fs/cgroup/memory$(awk -F: '$2 == "memory" {print $3}' /proc/$pid/cgroup)
  pages=$(( ($(cat "$cg/memory.kmem.usage_in_bytes") + $(awk '$1 == "rss" || $1 == "cache" {s += $2} END {print s}' "$cg/memory.stat")) / 1024 ))
  printf '  %-5s RSS %6s kB, threads %s, cgroup charge %4s kB (usage_in_bytes %4s kB)\n' "$n" \
    "$(awk '/VmRSS/{print $2}' /proc/$pid/status)" "$(awk '/Threads/{print $2}' /proc/$pid/status)" \
    "$pages" "$(( $(cat "$cg/memory.usage_in_bytes") / 1024 ))"
  $b --root "$root" delete -f "m-$n" >/dev/null 2>&1
done

# The runtime's own peak memory during a `run` of /bin/true (max RSS of it and its children).
sed -i 's/"\/bin\/sleep", "1"/"\/bin\/true"/' config.json
echo "peak RSS during run:"
for n in "${names[@]}"; do
  b=${bin[$n]}; root="$work/state/root-$n"
  printf '  %-5s %6s kB\n' "$n" "$(/usr/bin/time -f %M $b --root "$root" run "p-$n" 2>&1 >/dev/null </dev/null | tail -1)"
done
sed -i 's/"\/bin\/true"/"\/bin\/sleep", "1"/' config.json

# exec of /bin/true into a running container.
sed -i 's/"\/bin\/sleep", "1"/"\/bin\/sleep", "1000"/' config.json
exec_cmds=()
for n in "${names[@]}"; do
  b=${bin[$n]}; root="$work/state/root-$n"
  $b --root "$root" run -d "e-$n" >/dev/null 2>&1 </dev/null
  exec_cmds+=(-n "$n" "$b --root $root exec e-$n /bin/true")
done
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/exec.json" "${exec_cmds[@]}" >/dev/null || { hyperfine -N --runs 2 --show-output "${exec_cmds[@]}" 2>&1 | tail -20; exit 1; }
for n in "${names[@]}"; do ${bin[$n]} --root "$work/state/root-$n" delete -f "e-$n" >/dev/null 2>&1; done
INNER

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
for name, title in (("run", "run /bin/true"), ("spaced", "run /bin/true, 100 ms apart"), ("cycle", "create + start + delete"), ("exec", "exec /bin/true"), ("ptrace", "")):
    res = {r["command"]: r for r in json.load(open(f"{work}/{name}.json"))["results"]}
    if name == "ptrace":
        p, t = res["plain"]["median"], res["ptrace"]["median"]
        print(f"runr run, container with CAP_SYS_PTRACE: {t*1000:.2f} ms vs {p*1000:.2f} ms ({(t-p)*1000:+.2f} ms, medians)")
        continue
    base = res["runr"]["median"]
    print(f"{title} (median, mean ± sd):")
    for cmd in ("runr", "runc", "crun"):
        r = res[cmd]
        print(f"  {cmd:5s} {r['median']*1000:7.2f} ms ({r['mean']*1000:6.2f} ± {r['stddev']*1000:5.2f})   {r['median']/base:5.2f}x runr's time")
    print(f"  runr / crun: {base/res['crun']['median']:.2f}")
PY
echo "runr as a library (the same work, in-process):"
sed 's/^/  /' "$work/inproc.txt"
