//! Namespaces: new ones differ from the host's, joined ones are the same, user namespaces
//! map ids, and time namespaces shift clocks.

mod common;
use common::*;
use serde_json::json;

fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn new_namespaces_are_not_the_hosts() {
    let env = Env::new("nsnew");
    let out = env.sh("for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done");
    let names = ["pid", "net", "ipc", "uts", "mnt", "cgroup"];
    for (line, name) in out.lines().zip(names) {
        assert_ne!(line, host_ns(name), "{name} namespace is the host's");
    }
    // Not asked for: shared with the host.
    let user = env.sh("readlink /proc/self/ns/user");
    assert_eq!(user.trim(), host_ns("user"));
}

/// In its own cgroup namespace a container sees its cgroup as the root, in every
/// hierarchy: the init was in all of them when it unshared the namespace.
#[test]
fn a_cgroup_namespace_is_rooted_at_the_containers_cgroup() {
    let env = Env::new("cgns");
    let out = env.sh("cat /proc/self/cgroup");
    for line in out.lines() {
        assert!(line.ends_with(":/"), "{out}");
    }
    assert!(out.contains(":memory:/"), "{out}");
}

#[test]
fn joining_another_containers_namespaces_by_path() {
    let env = Env::new("nsjoin");
    env.args(&["sleep", "1000"]);
    let a = env.id("a");
    assert_eq!(
        env.runr(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &a])
            .code,
        0
    );
    let pid = env.state(&a)["pid"].as_i64().unwrap();
    let target: Vec<String> = ["net", "ipc", "uts", "pid"]
        .iter()
        .map(|n| {
            std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    env.edit(|c| {
        c["linux"]["namespaces"] = json!([
            {"type": "mount"},
            {"type": "network", "path": format!("/proc/{pid}/ns/net")},
            {"type": "ipc", "path": format!("/proc/{pid}/ns/ipc")},
            {"type": "uts", "path": format!("/proc/{pid}/ns/uts")},
            {"type": "pid", "path": format!("/proc/{pid}/ns/pid")}
        ]);
        c["hostname"] = json!(null);
    });
    let out = env.sh("for n in net ipc uts pid; do readlink /proc/self/ns/$n; done");
    assert_eq!(out.lines().collect::<Vec<_>>(), target);
    assert_eq!(env.runr(&["delete", "-f", &a]).code, 0);
}

/// A new user namespace mapping container ids 0-65535 to host ids 100000-165535.
fn in_user_namespace(c: &mut serde_json::Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
}

#[test]
fn user_namespace_maps_ids() {
    let env = Env::new("userns");
    env.edit(|c| {
        in_user_namespace(c);
        c["root"]["readonly"] = false.into();
    });
    // The rootfs must be owned by the mapped root to be usable as "root" inside.
    chown_tree(&env.rootfs, 100000);
    let out = env.sh("id -u; cat /proc/self/uid_map | tr -s ' '; ls -ln /dev/null | cut -c1; echo x > /dev/null && echo devnull-ok");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(lines[1].trim(), "0 100000 65536");
    assert_eq!(lines[2], "c");
    assert_eq!(lines[3], "devnull-ok");
}

/// oomScoreAdj reaches the init and exec'd processes of a container in a user namespace
/// (docker --userns-remap passes it), though neither may write its own /proc files there.
#[test]
fn oom_score_in_a_user_namespace() {
    let env = Env::new("usernsoom");
    env.args(&["sleep", "1000"]);
    env.edit(|c| {
        in_user_namespace(c);
        c["process"]["oomScoreAdj"] = 0.into();
    });
    chown_tree(&env.rootfs, 100000);
    let id = env.id("c");
    let r = env.runr(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let adj = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    assert_eq!(adj.trim(), "0");
    let process = env.dir.path().join("process.json");
    let mut p = env.config()["process"].clone();
    p["args"] = json!(["cat", "/proc/self/oom_score_adj"]);
    p["oomScoreAdj"] = 321.into();
    std::fs::write(&process, p.to_string()).unwrap();
    let r = env.runr(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert_eq!((r.code, r.stdout.trim()), (0, "321"), "{}", r.stderr);
    assert_eq!(env.runr(&["delete", "-f", &id]).code, 0);
}

/// Idmapped bind mounts: a host directory owned by uid 1234 (and a file owned by root) seen
/// through the container's own mapping, through a mapping of the mount's own, and not
/// mapped at all; what the container writes lands with the on-disk owner the map gives.
#[test]
fn idmapped_bind_mounts() {
    let env = Env::new("idmapped");
    let vol = env.dir.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::fs::write(vol.join("f"), "x").unwrap();
    std::os::unix::fs::chown(vol.join("f"), Some(1234), Some(1234)).unwrap();
    std::fs::write(vol.join("r"), "x").unwrap();
    env.edit(|c| {
        in_user_namespace(c);
        let mounts = c["mounts"].as_array_mut().unwrap();
        let source = vol.to_str().unwrap();
        mounts.push(
            json!({"destination": "/plain", "type": "bind", "source": source,
                           "options": ["bind"]}),
        );
        mounts.push(
            json!({"destination": "/same", "type": "bind", "source": source,
                           "options": ["bind", "idmap"]}),
        );
        mounts.push(
            json!({"destination": "/own", "type": "bind", "source": source,
                           "options": ["rbind", "ridmap", "ro"],
                           "uidMappings": [{"containerID": 1234, "hostID": 101000, "size": 1}],
                           "gidMappings": [{"containerID": 1234, "hostID": 102000, "size": 1}]}),
        );
    });
    chown_tree(&env.rootfs, 100000);
    let out = env.sh(
        "for d in plain same own; do stat -c \"$d %u:%g\" /$d/f /$d/r; done; \
         touch /same/new && echo wrote; touch /own/x 2>/dev/null || echo own-ro",
    );
    assert_eq!(
        out,
        "plain 65534:65534\nplain 65534:65534\n\
         same 1234:1234\nsame 0:0\n\
         own 1000:2000\nown 65534:65534\n\
         wrote\nown-ro\n"
    );
    // Container root wrote through the container's own map: host root owns the file.
    let meta = std::fs::metadata(vol.join("new")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);

    // Only bind mounts can be idmapped.
    env.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["type"] != "bind");
        mounts.push(
            json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                           "options": ["idmap"]}),
        );
    });
    let r = env.run(&["true"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("for bind mounts only"), "{}", r.stderr);
}

fn chown_tree(path: &std::path::Path, id: u32) {
    let status = std::process::Command::new("chown")
        .args(["-R", "-h", &format!("{id}:{id}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn time_namespace_offsets() {
    let env = Env::new("timens");
    env.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400000, "nanosecs": 0}});
    });
    let out = env.sh("cut -d. -f1 /proc/uptime; readlink /proc/self/ns/time");
    let mut lines = out.lines();
    let uptime: u64 = lines.next().unwrap().parse().unwrap();
    assert!(uptime >= 86_400_000, "uptime {uptime}");
    assert_ne!(lines.next().unwrap(), host_ns("time"));
}

/// Mount points (field 5 of /proc/self/mountinfo) at or under `dir` in our namespace.
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|m| m == dir || m.starts_with(&format!("{dir}/")))
        .collect()
}

/// A mount namespace left out of the config is inherited from the runtime (the spec): the
/// rootfs is set up in runr's namespace, and delete (or a failed create) removes every mount
/// made under it, and nothing else.
#[test]
fn no_mount_namespace_leaves_no_mount_behind() {
    let env = Env::new("nomntns");
    env.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "mount");
    });
    let out = env.dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    env.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/out", "type": "bind", "source": out, "options": ["rbind"]
        }));
    });
    env.args(&[
        "sh",
        "-c",
        "ls /proc/1/ns >/dev/null && echo proc-ok > /out/seen",
    ]);
    std::fs::write(env.rootfs.join("etc/marker"), "in the rootfs\n").unwrap();
    let id = env.id("c");
    let r = env.create(&id);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // An exec'd process is in the container's root too, not the host's.
    let r = env.runr(&["exec", &id, "cat", "/etc/marker"]);
    assert_eq!(r.stdout, "in the rootfs\n", "{}", r.stderr);
    assert!(
        mounts_under(&env.rootfs).len() > 3,
        "{:?}",
        mounts_under(&env.rootfs)
    );
    assert_eq!(env.runr(&["start", &id]).code, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while env.state(&id)["status"] != "stopped" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        std::fs::read_to_string(out.join("seen")).unwrap(),
        "proc-ok\n"
    );
    let r = env.runr(&["delete", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mounts_under(&env.rootfs), Vec::<String>::new());

    // A create that fails after the mounts are made leaves none either.
    env.args(&["no-such-program"]);
    let r = env.create(&env.id("f"));
    assert_eq!(r.code, 1);
    assert_eq!(mounts_under(&env.rootfs), Vec::<String>::new());

    // Nor one killed while its mounts exist (held by a slow prestart hook): delete -f
    // finds them through the init record.
    env.args(&["true"]);
    env.edit(|c| {
        c["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 2"]}]});
    });
    let id = env.id("k");
    let mut create = env.cmd();
    create
        .args(["create", "--bundle"])
        .arg(&env.bundle)
        .arg(&id);
    let mut child = create.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while mounts_under(&env.rootfs).len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the create made no mounts"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let r = env.runr(&["delete", "--force", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mounts_under(&env.rootfs), Vec::<String>::new());
    assert!(!env.root.join(&id).exists());
}

/// linux.netDevices: a host interface moves into the container's network namespace under
/// its new name, and is no longer the host's.
#[test]
fn net_devices_move_into_the_container() {
    let a = format!("rnr{}a", std::process::id() % 100_000);
    let b = format!("rnr{}b", std::process::id() % 100_000);
    let ip = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .status()
            .unwrap()
    };
    assert!(ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]).success());
    let env = Env::new("netdevs");
    env.edit(|c| c["linux"]["netDevices"] = json!({ a.clone(): {"name": "eth5"} }));
    let r = env.run(&["sh", "-c", "ls /sys/class/net | sort | tr '\\n' ' '"]);
    let host_has_a = std::path::Path::new("/sys/class/net").join(&a).exists();
    // The veth ended with the container's namespace (its peer with it); if not, remove it.
    let _ = ip(&["link", "del", &b]);
    let _ = ip(&["link", "del", &a]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "eth5 lo ");
    assert!(!host_has_a);
}
