#!/usr/bin/env python3
"""A small CRI client: drives containerd's CRI plugin (Kubernetes' view of a runtime) over
gRPC, the way the kubelet does, for the engine suite.

usage: cri.py PROTO_PY_DIR SOCKET IMAGE SCENARIO
  SCENARIO pod:   run a host-network pod sandbox and a container in it, exec into it, read
                  its stats, update its resources, stop and remove both
  SCENARIO error: a container whose program does not exist: the error names it
  SCENARIO pod3:  three containers in one pod share one shim (the native shim, whose path
                  is $RUNR_SHIM_PATH), which exits once the pod is gone
  SCENARIO bench: (scripts/bench-shim.sh) $PODS pod sandboxes (default 50) on the runtime
                  handler $HANDLER: started one after the other, the RSS and PSS of the
                  shims (the processes whose command name is $SHIM_COMM, and the native
                  shim's spawner helpers), then stopped and removed; prints the figures as
                  JSON

PROTO_PY_DIR holds cri_pb2.py, made by `protoc --python_out` from cri.proto. Messages are
sent with plain unary gRPC calls, so no generated service code is needed.
"""
import json
import os
import sys
import time

import grpc

sys.path.insert(0, sys.argv[1])
import cri_pb2 as pb  # noqa: E402

SOCKET, IMAGE, SCENARIO = sys.argv[2:5]
channel = grpc.insecure_channel("unix://" + SOCKET)


def call(method, request, response_type, timeout=60):
    rpc = channel.unary_unary(
        "/runtime.v1.RuntimeService/" + method,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response_type.FromString,
    )
    return rpc(request, timeout=timeout)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("  ok:", what.split(":")[0])


def host_ns(name):
    return os.readlink(f"/proc/self/ns/{name}")


def cgroup_file(pid, controller, name):
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                with open(f"/sys/fs/cgroup/{controller}{path}/{name}") as g:
                    return g.read().strip()
    raise AssertionError(f"no {controller} cgroup for pid {pid}")


def sandbox_config(name):
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=name + "-uid", namespace="default"),
        log_directory=os.path.join(os.path.dirname(SOCKET), "pod-logs", name),
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER, ipc=pb.POD)
            )
        ),
    )


def container_config(name, command, resources=None):
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=IMAGE),
        command=command,
        log_path=name + ".log",
        linux=pb.LinuxContainerConfig(
            resources=resources,
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER, ipc=pb.POD)
            ),
        ),
    )


def status(cid):
    return call("ContainerStatus", pb.ContainerStatusRequest(container_id=cid, verbose=True),
                pb.ContainerStatusResponse)


def exec_sync(cid, cmd):
    return call("ExecSync", pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=30),
                pb.ExecSyncResponse)


def pod():
    v = call("Version", pb.VersionRequest(version="v1"), pb.VersionResponse)
    print(f"  CRI server: {v.runtime_name} {v.runtime_version} (API {v.runtime_api_version})")
    sconf = sandbox_config("runr-pod")
    os.makedirs(sconf.log_directory, exist_ok=True)
    sid = call("RunPodSandbox", pb.RunPodSandboxRequest(config=sconf),
               pb.RunPodSandboxResponse).pod_sandbox_id
    limits = pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20, cpu_period=100000,
                                        cpu_quota=50000, cpu_shares=512)
    cid = call("CreateContainer",
               pb.CreateContainerRequest(
                   pod_sandbox_id=sid,
                   config=container_config("box", ["sh", "-c", "echo started; sleep 1000"], limits),
                   sandbox_config=sconf),
               pb.CreateContainerResponse).container_id
    call("StartContainer", pb.StartContainerRequest(container_id=cid), pb.StartContainerResponse)
    st = status(cid)
    check(st.status.state == pb.CONTAINER_RUNNING, f"running: {st.status}")
    pid = json.loads(st.info["info"])["pid"]

    r = exec_sync(cid, ["sh", "-c", "echo from-exec; id -u; readlink /proc/self/ns/net"])
    out = r.stdout.decode()
    check(r.exit_code == 0 and out.split() == ["from-exec", "0", host_ns("net")],
          f"exec, in the host's network namespace: {r}")
    r = exec_sync(cid, ["sh", "-c", "exit 3"])
    check(r.exit_code == 3, f"exec exit code: {r.exit_code}")

    check(cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20),
          "memory limit in the host's cgroup")
    check(cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "50000", "cpu quota")

    # Some work to show up in the stats.
    exec_sync(cid, ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"])
    stats = call("ContainerStats", pb.ContainerStatsRequest(container_id=cid),
                 pb.ContainerStatsResponse).stats
    check(stats.memory.working_set_bytes.value > 0 and stats.cpu.usage_core_nano_seconds.value > 0,
          f"stats: {stats}")

    call("UpdateContainerResources",
         pb.UpdateContainerResourcesRequest(
             container_id=cid,
             linux=pb.LinuxContainerResources(memory_limit_in_bytes=128 << 20, cpu_period=100000,
                                              cpu_quota=25000, cpu_shares=256)),
         pb.UpdateContainerResourcesResponse)
    check(cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(128 << 20), "updated memory limit")
    check(cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "25000", "updated cpu quota")

    call("StopContainer", pb.StopContainerRequest(container_id=cid, timeout=2),
         pb.StopContainerResponse, timeout=60)
    st = status(cid)
    check(st.status.state == pb.CONTAINER_EXITED and st.status.exit_code == 137,
          f"stopped (sleep ignores SIGTERM, so SIGKILL after the grace period): {st.status}")
    call("RemoveContainer", pb.RemoveContainerRequest(container_id=cid), pb.RemoveContainerResponse)
    call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid), pb.StopPodSandboxResponse)
    call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid),
         pb.RemovePodSandboxResponse)
    check(not os.path.exists(f"/proc/{pid}"), "the container's process is gone")


def error():
    sconf = sandbox_config("runr-error-pod")
    os.makedirs(sconf.log_directory, exist_ok=True)
    sid = call("RunPodSandbox", pb.RunPodSandboxRequest(config=sconf),
               pb.RunPodSandboxResponse).pod_sandbox_id
    try:
        cid = call("CreateContainer",
                   pb.CreateContainerRequest(pod_sandbox_id=sid,
                                             config=container_config("bad", ["/no/such/program"]),
                                             sandbox_config=sconf),
                   pb.CreateContainerResponse).container_id
        try:
            call("StartContainer", pb.StartContainerRequest(container_id=cid),
                 pb.StartContainerResponse)
            raise AssertionError("a program that does not exist started")
        except grpc.RpcError as e:
            print("  StartContainer:", e.details())
            check("/no/such/program" in e.details() and "runr" in e.details(),
                  f"runr's error reaches the CRI client: {e.details()}")
        call("RemoveContainer", pb.RemoveContainerRequest(container_id=cid),
             pb.RemoveContainerResponse)
    finally:
        call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid),
             pb.StopPodSandboxResponse)
        call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid),
             pb.RemovePodSandboxResponse)


def parent_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def shims():
    """The pids of live native shims (by the path of their binary)."""
    path = os.environ["RUNR_SHIM_PATH"]
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0", 1)[0].decode()
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if argv0 == path and state != "Z":
            found.append(int(d))
    return found


def pod3():
    sconf = sandbox_config("runr-pod3")
    os.makedirs(sconf.log_directory, exist_ok=True)
    sid = call("RunPodSandbox", pb.RunPodSandboxRequest(config=sconf),
               pb.RunPodSandboxResponse).pod_sandbox_id
    cids = []
    for name in ("one", "two", "three"):
        cid = call("CreateContainer",
                   pb.CreateContainerRequest(
                       pod_sandbox_id=sid,
                       config=container_config(name, ["sh", "-c", f"echo from-{name}; sleep 1000"]),
                       sandbox_config=sconf),
                   pb.CreateContainerResponse).container_id
        call("StartContainer", pb.StartContainerRequest(container_id=cid), pb.StartContainerResponse)
        cids.append(cid)
    pids = [json.loads(status(c).info["info"])["pid"] for c in cids]
    # The helper (runr-spawner) of the shim is a shim process too, by its command line.
    serving = [p for p in shims() if parent_of(p) not in shims()]
    check(len(serving) == 1, f"one shim serves the pod and its sandbox: {serving}")
    parents = {parent_of(p) for p in pids}
    check(parents == set(serving), f"every container is the shim's child: {parents} {serving}")
    for cid, name in zip(cids, ("one", "two", "three")):
        r = exec_sync(cid, ["sh", "-c", f"echo exec-in-{name}"])
        check(r.exit_code == 0 and r.stdout.decode().strip() == f"exec-in-{name}",
              f"exec in {name}: {r}")
    for name in ("one", "two", "three"):
        with open(os.path.join(sconf.log_directory, name + ".log")) as f:
            log = f.read()
        check(f"stdout F from-{name}" in log, f"{name}'s output in its CRI log: {log!r}")
    for cid in cids:
        call("StopContainer", pb.StopContainerRequest(container_id=cid, timeout=0),
             pb.StopContainerResponse, timeout=60)
        st = status(cid)
        check(st.status.state == pb.CONTAINER_EXITED and st.status.exit_code == 137,
              f"stopped: {st.status}")
        call("RemoveContainer", pb.RemoveContainerRequest(container_id=cid),
             pb.RemoveContainerResponse)
    check(serving[0] in shims(), "the shim outlives its containers while the sandbox runs")
    call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid), pb.StopPodSandboxResponse)
    call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid),
         pb.RemovePodSandboxResponse)
    until = time.time() + 10
    while serving[0] in shims() and time.time() < until:
        time.sleep(0.1)
    check(serving[0] not in shims(), "the shim exited with the pod")
    check(all(not os.path.exists(f"/proc/{p}") for p in pids), "the containers' processes are gone")


def memory_kb(pid):
    """A process's RSS and PSS (its share of pages it shares with others), in kB."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def shim_memory_kb(comm):
    """The RSS and PSS of every process named `comm` and of the native shim's spawner
    helpers, in kB."""
    total = [0, 0]
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name in (comm, "runr-spawner"):
            rss, pss = memory_kb(d)
            total[0] += rss
            total[1] += pss
    return total


def bench():
    n = int(os.environ.get("PODS", "50"))
    handler = os.environ["HANDLER"]
    comm = os.environ["SHIM_COMM"]
    before = shim_memory_kb(comm)
    ids = []
    t0 = time.monotonic()
    for i in range(n):
        conf = sandbox_config(f"bench-{handler}-{i}")
        os.makedirs(conf.log_directory, exist_ok=True)
        ids.append(call("RunPodSandbox", pb.RunPodSandboxRequest(config=conf, runtime_handler=handler),
                        pb.RunPodSandboxResponse).pod_sandbox_id)
    started = time.monotonic() - t0
    time.sleep(1)
    after = shim_memory_kb(comm)
    t0 = time.monotonic()
    for sid in ids:
        call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sid), pb.StopPodSandboxResponse)
        call("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sid),
             pb.RemovePodSandboxResponse)
    removed = time.monotonic() - t0
    print(json.dumps({"handler": handler, "pods": n, "start_s": started, "remove_s": removed,
                      "shim_rss_kb_per_pod": (after[0] - before[0]) / n,
                      "shim_pss_kb_per_pod": (after[1] - before[1]) / n}))


{"pod": pod, "error": error, "pod3": pod3, "bench": bench}[SCENARIO]()
