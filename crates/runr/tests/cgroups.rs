//! cgroup v1 on the host: where the container's cgroup is, what limits land in it, and
//! that a container starts under the tightest limits because runr's own setup is not
//! charged to it.

mod common;
use common::*;
use serde_json::json;

fn read(p: std::path::PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn limits_land_in_the_hosts_cgroup_files_and_go_away_on_delete() {
    let env = Env::new("limits");
    env.args(&["sleep", "1000"]);
    env.edit(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024, "reservation": 32 * 1024 * 1024, "swappiness": 10, "disableOOMKiller": false});
        c["linux"]["resources"]["pids"] = json!({"limit": 42});
        c["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"});
    });
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    assert_eq!(
        read(cgroup_dir("memory", &id).join("memory.limit_in_bytes")),
        (64 * 1024 * 1024).to_string()
    );
    assert_eq!(
        read(cgroup_dir("memory", &id).join("memory.soft_limit_in_bytes")),
        (32 * 1024 * 1024).to_string()
    );
    assert_eq!(
        read(cgroup_dir("memory", &id).join("memory.swappiness")),
        "10"
    );
    assert_eq!(read(cgroup_dir("pids", &id).join("pids.max")), "42");
    assert_eq!(read(cgroup_dir("cpu", &id).join("cpu.shares")), "512");
    assert_eq!(
        read(cgroup_dir("cpu", &id).join("cpu.cfs_quota_us")),
        "50000"
    );
    assert_eq!(read(cgroup_dir("cpuset", &id).join("cpuset.cpus")), "0");
    let pid = env.state(&id)["pid"].as_i64().unwrap().to_string();
    // In every hierarchy, memory included, once create has returned.
    // The init moves itself in (v1 `tasks`, and a clone into the cgroup2 directory).
    let hierarchies = [
        "memory", "pids", "cpu", "cpuset", "devices", "freezer", "blkio", "systemd", "unified",
    ];
    for h in hierarchies {
        let procs = read(cgroup_dir(h, &id).join("cgroup.procs"));
        assert!(procs.lines().any(|l| l == pid), "{h}: {procs}");
    }
    // So does a process exec'd into it: the same cgroup in every hierarchy as the init's.
    assert_eq!(env.runr(&["start", &id]).code, 0);
    let pid_file = env.bundle.join("exec.pid");
    let pf = pid_file.to_str().unwrap();
    let r = env.runr(&["exec", "-d", "--pid-file", pf, &id, "sleep", "1000"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let exec_pid = read(pid_file);
    let init = read(format!("/proc/{pid}/cgroup").into());
    assert_eq!(read(format!("/proc/{exec_pid}/cgroup").into()), init);
    assert_eq!(env.runr(&["kill", "--all", &id, "KILL"]).code, 0);
    assert_eq!(env.runr(&["delete", "-f", &id]).code, 0);
    env.assert_gone(&id);
}

#[test]
fn absolute_cgroups_path() {
    let env = Env::new("cgabs");
    let path = format!("/runr-test-abs-{}", std::process::id());
    env.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    let dir = std::path::Path::new("/sys/fs/cgroup/pids").join(path.trim_start_matches('/'));
    assert!(dir.is_dir());
    assert_eq!(env.runr(&["delete", &id]).code, 0);
    assert!(!dir.exists());
}

#[test]
fn true_runs_under_one_pid_and_512k_of_memory() {
    let env = Env::new("tight");
    // What the container is charged for from the moment it joins its cgroup: the init's
    // kernel memory (mounts, /dev, page tables) and the pages it writes, then the exec of
    // `true` while the init's memory still exists: 256 KiB once created, and a peak of
    // 428-512 KiB (memory.max_usage_in_bytes under a 4 MiB limit, 8 runs of the debug
    // build). 384 KiB failed about one CI run in four, with the host loaded.
    env.edit(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 512 * 1024});
        c["linux"]["resources"]["pids"] = json!({"limit": 1});
    });
    let r = env.run(&["true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn fork_beyond_the_pids_limit_fails() {
    let env = Env::new("pidslimit");
    env.edit(|c| c["linux"]["resources"]["pids"] = json!({"limit": 2}));
    let r = env.run(&["sh", "-c", "sleep 1 & sleep 1 & echo $?"]);
    assert!(
        r.stderr.contains("can't fork") || r.stderr.contains("Resource temporarily unavailable"),
        "{} {}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn a_memory_limit_too_low_says_so() {
    let env = Env::new("oom");
    env.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 4096}));
    let r = env.run(&["sh", "-c", "echo hi"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("killed by the OOM killer")
            && r.stderr.contains("memory limit is too low"),
        "{}",
        r.stderr
    );
    env.assert_gone(&format!("oom-{}-run", std::process::id()));
}

/// A detached container whose init sleeps.
fn sleeping(env: &Env, suffix: &str) -> String {
    env.args(&["sleep", "1000"]);
    let id = env.id(suffix);
    let r = env.runr(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert_eq!(r.code, 0, "run -d: {}", r.stderr);
    id
}

fn list_status(env: &Env, id: &str) -> String {
    let r = env.runr(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["status"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn pause_and_resume() {
    let env = Env::new("pause");
    let id = sleeping(&env, "c");
    let freezer = cgroup_dir("freezer", &id).join("freezer.state");
    assert_eq!(env.runr(&["pause", &id]).code, 0);
    assert_eq!(read(freezer.clone()), "FROZEN");
    assert_eq!(env.state(&id)["status"], "paused");
    assert_eq!(list_status(&env, &id), "paused");
    let r = env.runr(&["pause", &id]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("container not running"), "{}", r.stderr);
    assert_eq!(env.runr(&["resume", &id]).code, 0);
    assert_eq!(read(freezer.clone()), "THAWED");
    assert_eq!(env.state(&id)["status"], "running");
    let r = env.runr(&["resume", &id]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("container not paused"), "{}", r.stderr);
    // SIGKILL reaches a paused container: it is thawed so the signal lands.
    assert_eq!(env.runr(&["pause", &id]).code, 0);
    assert_eq!(env.runr(&["kill", &id, "KILL"]).code, 0);
    for _ in 0..200 {
        if env.state(&id)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(env.state(&id)["status"], "stopped");
    let r = env.runr(&["pause", &id]);
    assert_eq!(r.code, 1);
    assert_eq!(env.runr(&["delete", &id]).code, 0);
    env.assert_gone(&id);

    // A created container can be paused too; start waits for resume.
    let id = env.id("created");
    assert_eq!(env.create(&id).code, 0);
    assert_eq!(env.runr(&["pause", &id]).code, 0);
    assert_eq!(env.state(&id)["status"], "paused");
    let r = env.runr(&["start", &id]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("paused"), "{}", r.stderr);
    assert_eq!(env.runr(&["resume", &id]).code, 0);
    assert_eq!(env.state(&id)["status"], "created");
}

/// `runr ps`: the container's host pids.
fn ps(env: &Env, id: &str) -> Vec<i64> {
    serde_json::from_str(&env.runr(&["ps", "--format", "json", id]).stdout).unwrap()
}

/// Wait (two seconds at most) until the container has no process left.
fn wait_until_empty(env: &Env, id: &str) {
    for _ in 0..200 {
        if ps(env, id).is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{id} still has processes: {:?}", ps(env, id));
}

#[test]
fn kill_all_signals_every_process_and_leaves_a_paused_container_paused() {
    let env = Env::new("killall");
    // No pid namespace: the init dying does not take the others with it.
    env.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    let id = sleeping(&env, "c");
    for _ in 0..3 {
        let r = env.runr(&["exec", "-d", &id, "sleep", "1000"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let pids = |env: &Env| ps(env, &id);
    assert_eq!(pids(&env).len(), 4);
    assert_eq!(env.runr(&["kill", "--all", &id, "STOP"]).code, 0);
    assert_eq!(
        read(cgroup_dir("freezer", &id).join("freezer.state")),
        "THAWED"
    );
    for pid in pids(&env) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        assert_eq!(state, "T", "pid {pid} not stopped");
    }
    assert_eq!(env.runr(&["kill", "--all", &id, "KILL"]).code, 0);
    wait_until_empty(&env, &id);
    assert_eq!(env.runr(&["delete", &id]).code, 0);
    env.assert_gone(&id);
}

/// Without a pid namespace of its own, what the init leaves runs on after it exits: the
/// stopped container refuses a signal for its init (as runc does) but `kill --all` reaches
/// what is left (as containerd's shim relies on), and delete leaves nothing.
#[test]
fn kill_all_reaches_what_a_stopped_container_left() {
    let env = Env::new("killstopped");
    env.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    let id = sleeping(&env, "c");
    let r = env.runr(&["exec", "-d", &id, "sleep", "1000"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pids = |env: &Env| ps(env, &id);
    let init = env.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(env.runr(&["kill", &id, "KILL"]).code, 0);
    for _ in 0..200 {
        if env.state(&id)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(env.state(&id)["status"], "stopped");
    let left = pids(&env);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0], init);
    let r = env.runr(&["kill", &id, "KILL"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not running"), "{}", r.stderr);
    assert_eq!(env.runr(&["kill", "--all", &id, "KILL"]).code, 0);
    wait_until_empty(&env, &id);
    // Nothing left: nothing to do, and no error (engines send it after every exit).
    let r = env.runr(&["kill", "--all", &id, "KILL"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.runr(&["delete", &id]).code, 0);
    env.assert_gone(&id);
}

/// docker and containerd send 0 for the limits they leave unset, in create and update alike.
#[test]
fn zeros_from_engines_mean_unset() {
    let env = Env::new("zeros");
    env.edit(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 64 << 20, "reservation": 0, "swap": 0});
        c["linux"]["resources"]["cpu"] =
            json!({"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""});
        c["linux"]["resources"]["blockIO"] = json!({"weight": 0, "leafWeight": 0});
        c["linux"]["resources"]["pids"] = json!({"limit": 0});
    });
    let id = sleeping(&env, "c");
    let mem = cgroup_dir("memory", &id).join("memory.limit_in_bytes");
    assert_eq!(read(mem.clone()), (64 << 20).to_string());
    assert_eq!(read(cgroup_dir("pids", &id).join("pids.max")), "max");
    assert_eq!(read(cgroup_dir("cpu", &id).join("cpu.cfs_quota_us")), "-1");
    let file = env.dir.path().join("resources.json");
    std::fs::write(
        &file,
        r#"{"memory": {"limit": 0}, "cpu": {"shares": 0}, "blockIO": {"weight": 0}, "pids": {"limit": 25}}"#,
    )
    .unwrap();
    let r = env.runr(&["update", "-r", file.to_str().unwrap(), &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read(mem), (64 << 20).to_string());
    assert_eq!(read(cgroup_dir("pids", &id).join("pids.max")), "25");
    assert_eq!(env.runr(&["delete", "-f", &id]).code, 0);
}

#[test]
fn update_changes_live_limits_and_refuses_bad_values() {
    let env = Env::new("update");
    env.edit(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        c["linux"]["resources"]["pids"] = json!({"limit": 50});
    });
    let id = sleeping(&env, "c");
    let mem = cgroup_dir("memory", &id).join("memory.limit_in_bytes");
    let pids = cgroup_dir("pids", &id).join("pids.max");
    let mut args = vec![
        "update",
        "--memory",
        "32m",
        "--pids-limit",
        "20",
        "--cpu-share",
        "300",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
    ];
    // A weight needs a weighted I/O scheduler (BFQ); without one, runr must say so.
    let blkio = cgroup_dir("blkio", &id);
    let weighted = ["blkio.weight", "blkio.bfq.weight"]
        .iter()
        .any(|f| blkio.join(f).exists());
    if weighted {
        args.extend(["--blkio-weight", "300"]);
    } else {
        let r = env.runr(&["update", "--blkio-weight", "300", &id]);
        assert!(
            r.code == 1 && r.stderr.contains("no weighted I/O scheduler"),
            "{}",
            r.stderr
        );
    }
    args.push(&id);
    let r = env.runr(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read(mem.clone()), (32 << 20).to_string());
    assert_eq!(read(pids.clone()), "20");
    assert_eq!(read(cgroup_dir("cpu", &id).join("cpu.shares")), "300");
    assert_eq!(
        read(cgroup_dir("cpu", &id).join("cpu.cfs_quota_us")),
        "20000"
    );
    // From a file: only what it names changes.
    let file = env.dir.path().join("resources.json");
    std::fs::write(&file, r#"{"pids": {"limit": 30}}"#).unwrap();
    assert_eq!(
        env.runr(&["update", "-r", file.to_str().unwrap(), &id])
            .code,
        0
    );
    assert_eq!(read(pids.clone()), "30");
    assert_eq!(read(mem.clone()), (32 << 20).to_string());
    // Bad values: a clear error naming the file and value, nothing changed.
    for (args, want) in [
        (vec!["--memory", "1x"], "invalid size"),
        (vec!["--cpuset-cpus", "99"], "cpuset.cpus"),
        (vec!["--blkio-weight", "5"], "between 10 and 1000"),
    ] {
        let mut all = vec!["update"];
        all.extend(args.iter());
        all.push(&id);
        let r = env.runr(&all);
        assert_eq!(r.code, 1, "{args:?}");
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
    std::fs::write(&file, r#"{"pids": {"limit": "many"}}"#).unwrap();
    let r = env.runr(&["update", "-r", file.to_str().unwrap(), &id]);
    assert!(
        r.code == 1 && r.stderr.contains("pids.limit"),
        "{}",
        r.stderr
    );
    assert_eq!(read(pids.clone()), "30");
    assert!(!read(cgroup_dir("cpuset", &id).join("cpuset.cpus")).is_empty());
    // The new limits are the container's from now on: a sub-process sees them.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.root.join(&id).join("state.json")).unwrap())
            .unwrap();
    assert_eq!(saved["config"]["linux"]["resources"]["pids"]["limit"], 30);
    assert_eq!(
        saved["config"]["linux"]["resources"]["memory"]["limit"],
        32 << 20
    );
    assert_eq!(env.runr(&["kill", &id, "KILL"]).code, 0);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let r = env.runr(&["update", "--pids-limit", "10", &id]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("container not running"), "{}", r.stderr);
}

#[test]
fn events_report_stats_and_oom_kills() {
    let env = Env::new("events");
    env.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 16 << 20}));
    let id = sleeping(&env, "c");
    let r = env.runr(&["events", "--stats", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["data"]["memory"]["usage"]["limit"], 16 << 20);
    assert_eq!(v["data"]["pids"]["current"], 1);
    assert!(v["data"]["cpu"]["usage"]["total"].as_u64().unwrap() > 0);

    // Watch, then make the OOM killer act inside.
    let out = env.dir.path().join("events.out");
    let mut watch = env.cmd();
    watch
        .args(["events", "--interval", "200ms", &id])
        .stdout(std::fs::File::create(&out).unwrap());
    let mut watcher = watch.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let r = env.runr(&["exec", &id, "tail", "/dev/zero"]);
    assert_eq!(r.code, 137, "tail should be OOM-killed: {}", r.stderr);
    std::thread::sleep(std::time::Duration::from_millis(400));
    // The watch ends by itself when the container stops.
    assert_eq!(env.runr(&["kill", &id, "KILL"]).code, 0);
    assert_eq!(wait_exit(&mut watcher), 0);
    let text = std::fs::read_to_string(&out).unwrap();
    let types: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(types.iter().any(|t| t == "oom"), "{text}");
    assert!(
        types.iter().filter(|t| *t == "stats").count() >= 2,
        "{text}"
    );
    let r = env.runr(&["events", "--stats", &id]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is not running"), "{}", r.stderr);
}

/// A container whose init opens /dev/null in a loop and notes each failure in /tmp/fails.
const OPEN_NULL_LOOP: &str =
    "while :; do if ! : > /dev/null; then echo fail >> /tmp/fails; fi; done";

/// Containers sharing one cgroupsPath (runc allows it, with a warning): parallel creates
/// all succeed, none ever denies a device another container is using, and `delete -f` of
/// one is quick, leaves the others running and the cgroup to the last.
#[test]
fn containers_share_one_cgroups_path() {
    let env = Env::new("shared");
    let path = format!("/runr-test-shared-{}", std::process::id());
    let dir = std::path::Path::new("/sys/fs/cgroup/devices").join(path.trim_start_matches('/'));
    env.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    // The first keeps opening /dev/null while the others are created into its cgroup.
    env.args(&["sh", "-c", OPEN_NULL_LOOP]);
    let first = env.id("0");
    let r = env.runr(&[
        "run",
        "-d",
        "--bundle",
        env.bundle.to_str().unwrap(),
        &first,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    env.args(&["sleep", "1000"]);
    let ids: Vec<String> = (1..=8).map(|i| env.id(&i.to_string())).collect();
    let results: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut c = env.cmd();
                c.args(["run", "-d", "--bundle"]).arg(&env.bundle).arg(id);
                s.spawn(move || capture(c))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (id, r) in ids.iter().zip(&results) {
        assert_eq!(r.code, 0, "{id}: {}", r.stderr);
    }
    assert!(
        results.iter().any(|r| r.stderr.contains("shared")),
        "no warning about the shared cgroup"
    );
    for id in &ids {
        let r = env.runr(&[
            "exec",
            id,
            "sh",
            "-c",
            "head -c1 /dev/zero > /dev/null && echo ok",
        ]);
        assert_eq!(r.stdout, "ok\n", "{id}: {}", r.stderr);
    }
    assert!(
        !env.rootfs.join("tmp/fails").exists(),
        "/dev/null was denied to a running container while others were created"
    );
    // delete -f of one: quick, its state gone, the others untouched.
    let t = std::time::Instant::now();
    let r = env.runr(&["delete", "-f", &ids[0]]);
    let took = t.elapsed();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        took < std::time::Duration::from_secs(2),
        "delete -f took {took:?}"
    );
    assert!(!env.root.join(&ids[0]).exists());
    for id in ids[1..].iter().chain([&first]) {
        assert_eq!(env.state(id)["status"], "running", "{id}");
    }
    // The last one out removes the cgroup.
    for id in ids[1..].iter().chain([&first]) {
        let r = env.runr(&["delete", "-f", id]);
        assert_eq!(r.code, 0, "{id}: {}", r.stderr);
        assert!(!env.root.join(id).exists());
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// `update` of the device rules of a running container never denies, even for a moment,
/// what both the old and the new rules allow.
#[test]
fn device_rules_update_without_a_window() {
    let env = Env::new("devupdate");
    env.args(&["sh", "-c", OPEN_NULL_LOOP]);
    let id = env.id("c");
    let r = env.runr(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let base = r#"{"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}"#;
    let file = env.dir.path().join("resources.json");
    let list = cgroup_dir("devices", &id).join("devices.list");
    for i in 0..20 {
        let extra = if i % 2 == 0 {
            r#", {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "r"}"#
        } else {
            ""
        };
        std::fs::write(&file, format!(r#"{{"devices": [{base}{extra}]}}"#)).unwrap();
        let r = env.runr(&["update", "-r", file.to_str().unwrap(), &id]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let want = if i % 2 == 0 {
            "c 1:3 rwm\nc 1:5 rwm\nc 1:9 r"
        } else {
            "c 1:3 rwm\nc 1:5 rwm"
        };
        assert_eq!(read(list.clone()), want);
    }
    assert!(
        !env.rootfs.join("tmp/fails").exists(),
        "/dev/null was denied during an update of the device rules"
    );
    assert_eq!(env.runr(&["delete", "-f", &id]).code, 0);
    env.assert_gone(&id);
}

/// A fifo in linux.devices is made (it needs no device number and no cgroup rule).
#[test]
fn a_fifo_in_linux_devices_is_made() {
    let env = Env::new("fifo");
    env.edit(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/myfifo", "type": "p", "fileMode": 0o620}]);
    });
    let out = env.sh("test -p /dev/myfifo && stat -c %a /dev/myfifo");
    assert_eq!(out, "620\n");
}
