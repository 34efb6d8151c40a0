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
    for h in [
        "memory", "pids", "cpu", "cpuset", "devices", "freezer", "blkio",
    ] {
        let procs = read(cgroup_dir(h, &id).join("cgroup.procs"));
        assert!(procs.lines().any(|l| l == pid), "{h}: {procs}");
    }
    assert_eq!(env.runr(&["delete", &id]).code, 0);
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
fn true_runs_under_one_pid_and_256k_of_memory() {
    let env = Env::new("tight");
    env.edit(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 256 * 1024});
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
