//! Bad input: each gives a non-zero exit, one clear error line, and leaves nothing behind.

mod common;
use common::*;
use serde_json::json;

/// `create` must fail with one error line containing `needle`, and leave nothing behind.
fn create_fails(env: &Env, id: &str, needle: &str) {
    let r = env.create(id);
    assert_eq!(r.code, 1, "stdout {} stderr {}", r.stdout, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(needle),
        "expected {needle:?} in {}",
        r.stderr
    );
    env.assert_gone(id);
}

#[test]
fn malformed_json_gives_line_and_column() {
    let env = Env::new("badjson");
    std::fs::write(
        env.bundle.join("config.json"),
        "{\n  \"ociVersion\": \"1.0.2\",\n  oops\n}\n",
    )
    .unwrap();
    create_fails(&env, &env.id("c"), "line 3 column");
}

#[test]
fn wrong_type_names_the_field() {
    let env = Env::new("badtype");
    env.edit(|c| c["process"]["user"]["uid"] = json!("root"));
    create_fails(&env, &env.id("c"), "process.user.uid");
}

#[test]
fn missing_rootfs() {
    let env = Env::new("norootfs");
    env.edit(|c| c["root"]["path"] = json!("nothere"));
    create_fails(&env, &env.id("c"), "root.path");
}

#[test]
fn program_not_found_in_the_rootfs() {
    let env = Env::new("noprog");
    env.args(&["no-such-program"]);
    create_fails(&env, &env.id("c"), "executable file not found in $PATH");
}

#[test]
fn cwd_that_is_a_file() {
    let env = Env::new("cwdfile");
    env.edit(|c| c["process"]["cwd"] = json!("/etc/passwd"));
    create_fails(&env, &env.id("c"), "is not a directory");
}

#[test]
fn non_namespaced_sysctl() {
    let env = Env::new("sysctl");
    env.edit(|c| c["linux"]["sysctl"] = json!({"kernel.panic": "1"}));
    create_fails(&env, &env.id("c"), "not namespaced");
}

#[test]
fn unknown_capability() {
    let env = Env::new("badcap");
    env.edit(|c| c["process"]["capabilities"]["bounding"] = json!(["CAP_NOT_A_THING"]));
    create_fails(&env, &env.id("c"), "CAP_NOT_A_THING");
}

#[test]
fn invalid_ids() {
    let env = Env::new("badid");
    for id in ["../x", "a/b", "..", "a b", ""] {
        let r = env.create(id);
        assert_eq!(r.code, 1, "{id}");
        assert!(
            r.stderr.contains("invalid container ID format") || id.is_empty(),
            "{id}: {}",
            r.stderr
        );
    }
    assert!(!env.dir.path().join("x").exists());
    assert!(!env.root.exists() || std::fs::read_dir(&env.root).unwrap().next().is_none());
}

#[test]
fn duplicate_id() {
    let env = Env::new("dup");
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    let r = env.create(&id);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("container with given ID already exists"),
        "{}",
        r.stderr
    );
    // The first one is untouched.
    assert_eq!(env.state(&id)["status"], "created");
}

#[test]
fn unknown_signal_and_missing_container() {
    let env = Env::new("nosuch");
    let r = env.runr(&["kill", "nosuch", "FOO"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unknown signal \\\"FOO\\\"") || r.stderr.contains("unknown signal"),
        "{}",
        r.stderr
    );
    for cmd in [
        vec!["state", "nosuch"],
        vec!["start", "nosuch"],
        vec!["kill", "nosuch"],
        vec!["delete", "nosuch"],
        vec!["ps", "nosuch"],
    ] {
        let r = env.runr(&cmd);
        assert_eq!(r.code, 1, "{cmd:?}");
        assert!(
            r.stderr.contains("container does not exist"),
            "{cmd:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn json_log_lines_carry_the_error_in_msg() {
    let env = Env::new("jsonlog");
    env.args(&["no-such-program"]);
    let log = env.dir.path().join("log.json");
    let id = env.id("c");
    let r = env.runr(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        env.bundle.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(r.code, 1);
    let text = std::fs::read_to_string(&log).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"]
            .as_str()
            .unwrap()
            .starts_with("runr create failed: exec: \"no-such-program\""),
        "{last}"
    );
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
    // A person at the terminal still sees it.
    assert!(r.stderr.contains("no-such-program"));
    env.assert_gone(&id);
    // Without --log the json line goes to stderr.
    let r = env.runr(&["--log-format", "json", "state", "nosuch"]);
    let line: serde_json::Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(line["msg"], "container does not exist");
}

#[test]
fn terminal_without_console_socket_when_detached() {
    let env = Env::new("tty");
    env.edit(|c| c["process"]["terminal"] = true.into());
    create_fails(
        &env,
        &env.id("c"),
        "cannot allocate tty if runr will detach without setting console socket",
    );
}

/// This host has neither AppArmor nor SELinux: a profile or label asked for cannot be
/// applied, and running without it would be silently weaker, so create (and exec) fail with
/// runc's words. A mount label alone means nothing without SELinux and is ignored (runc).
#[test]
fn lsm_labels_the_host_cannot_apply() {
    let env = Env::new("lsm");
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'));
    let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
    if !apparmor {
        env.edit(|c| c["process"]["apparmorProfile"] = json!("runr-test"));
        create_fails(
            &env,
            &env.id("c"),
            "config provided but apparmor not supported",
        );
    }
    env.edit(|c| {
        c["process"]["apparmorProfile"] = json!("");
        c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
    });
    if !selinux {
        create_fails(&env, &env.id("s"), "selinux is disabled or not supported");
        env.edit(|c| {
            c["process"]["selinuxLabel"] = json!("");
            c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0:c1,c2");
        });
        assert_eq!(env.sh("grep -c context= /proc/mounts; true"), "0\n");

        env.args(&["sleep", "100"]);
        let id = env.id("e");
        assert_eq!(env.create(&id).code, 0);
        let r = env.runr(&[
            "exec",
            "--process-label",
            "system_u:system_r:container_t:s0",
            &id,
            "true",
        ]);
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains("selinux is disabled"), "{}", r.stderr);
    }
}

/// This host runs no systemd: --systemd-cgroup says so, and a malformed slice:prefix:name
/// is reported as such first.
#[test]
fn systemd_cgroup_without_systemd() {
    if std::path::Path::new("/run/systemd/system").exists() {
        return;
    }
    let env = Env::new("sdcg");
    let id = env.id("c");
    let run = |env: &Env| {
        let mut c = env.cmd();
        c.args(["--systemd-cgroup", "create", "--bundle"])
            .arg(&env.bundle)
            .arg(&id);
        capture(c)
    };
    let r = run(&env);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("systemd is not running"), "{}", r.stderr);
    env.assert_gone(&id);
    env.edit(|c| c["linux"]["cgroupsPath"] = json!("/not/a/slice"));
    let r = run(&env);
    assert!(r.stderr.contains("slice:prefix:name"), "{}", r.stderr);
    env.assert_gone(&id);
}

#[test]
fn bad_process_attributes() {
    let env = Env::new("badattrs");
    let id = env.id("c");
    let cases = [
        (
            "/process/ioPriority",
            json!({"class": "IOPRIO_CLASS_BE", "priority": 9}),
            "ioPriority.priority 9",
        ),
        (
            "/process/scheduler",
            json!({"policy": "SCHED_FIFO", "priority": 0}),
            "scheduler.priority 0",
        ),
        (
            "/process/scheduler",
            json!({"policy": "SCHED_OTHER", "nice": 30}),
            "nice 30",
        ),
        ("/process/oomScoreAdj", json!(-1001), "oomScoreAdj -1001"),
        (
            "/linux/memoryPolicy",
            json!({"mode": "MPOL_BIND"}),
            "needs nodes",
        ),
        (
            "/linux/personality",
            json!({"domain": "LINUX", "flags": ["X"]}),
            "personality.flags",
        ),
    ];
    for (path, value, needle) in cases {
        let original = env.config();
        env.edit(|c| {
            *c.pointer_mut(path.rsplit_once('/').unwrap().0)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .entry(path.rsplit_once('/').unwrap().1)
                .or_insert(json!(null)) = value
        });
        create_fails(&env, &id, needle);
        env.edit(|c| *c = original);
    }
}

/// Mappings the kernel would refuse with a bare EINVAL are refused first, by name.
#[test]
fn overlapping_or_empty_id_mappings() {
    let env = Env::new("idmaps");
    env.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": 100000, "size": 65536},
            {"containerID": 1000, "hostID": 300000, "size": 1}
        ]);
    });
    create_fails(
        &env,
        &env.id("a"),
        "container ids 0-65535 and 1000-1000 overlap",
    );
    env.edit(|c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": 100000, "size": 10},
            {"containerID": 10, "hostID": 100005, "size": 10}
        ])
    });
    create_fails(
        &env,
        &env.id("b"),
        "host ids 100000-100009 and 100005-100014 overlap",
    );
    env.edit(|c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 0}])
    });
    create_fails(&env, &env.id("c"), "has size 0");
}

/// The spec wants absolute paths in maskedPaths and readonlyPaths; a relative one names a
/// place the runtime would have to guess at.
#[test]
fn relative_masked_or_readonly_paths() {
    let env = Env::new("relpaths");
    env.edit(|c| c["linux"]["maskedPaths"] = json!(["/proc/kcore", "../x"]));
    create_fails(
        &env,
        &env.id("m"),
        "linux.maskedPaths: \\\"../x\\\" is not an absolute path",
    );
    env.edit(|c| {
        c["linux"]["maskedPaths"] = json!([]);
        c["linux"]["readonlyPaths"] = json!(["proc/sys"]);
    });
    create_fails(&env, &env.id("r"), "linux.readonlyPaths: \\\"proc/sys\\\"");
}

/// A network device to move must be named properly and exist on the host, checked before
/// anything is created.
#[test]
fn invalid_net_devices() {
    let env = Env::new("netdev");
    let cases = [
        (json!({"": {}}), "host interface name \\\"\\\" is empty"),
        (
            json!({"runr-nosuch0": {"name": "eth1"}}),
            "host interface \\\"runr-nosuch0\\\" does not exist",
        ),
        (
            json!({"lo": {"name": ""}}),
            "linux.netDevices[\\\"lo\\\"].name \\\"\\\" is empty",
        ),
        (json!({"lo": {"name": "a/b"}}), "contains '/'"),
        (
            json!({"lo": {"name": "a234567890123456"}}),
            "is longer than 15 bytes",
        ),
        (json!({"a/b": {}}), "host interface name \\\"a/b\\\""),
    ];
    for (devices, needle) in cases {
        env.edit(|c| c["linux"]["netDevices"] = devices);
        create_fails(&env, &env.id("c"), needle);
    }
    // Without a network namespace of its own there is nowhere to move a device to.
    env.edit(|c| {
        c["linux"]["netDevices"] = json!({"lo": {}});
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "network");
    });
    create_fails(
        &env,
        &env.id("c"),
        "linux.netDevices needs a network namespace",
    );
}

/// A capability the kernel knows but runr's bounding set lacks (this host withholds
/// CAP_SYS_RESOURCE from root) is dropped with a warning that says so, logged by runr, not
/// written by the init on the container's stderr.
#[test]
fn capability_missing_from_the_bounding_set() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    if bnd & (1 << 24) != 0 {
        return; // CAP_SYS_RESOURCE is there: nothing to warn about.
    }
    let env = Env::new("capbnd");
    env.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_RESOURCE"));
        }
    });
    env.args(&["sh", "-c", "echo err >&2"]);
    let log = env.dir.path().join("log");
    let id = env.id("c");
    let r = env.runr(&[
        "--log",
        log.to_str().unwrap(),
        "run",
        "--bundle",
        env.bundle.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "err\n");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(
            "capability CAP_SYS_RESOURCE is not in runr's bounding set, so it cannot be granted"
        ),
        "{text}"
    );
    assert!(!text.contains("not known to this kernel"), "{text}");
}
