//! What the container's process sees of the config's `process` and of hostname, sysctls.

mod common;
use common::*;
use serde_json::json;

#[test]
fn user_groups_umask_cwd_env_home() {
    let env = Env::new("user");
    env.edit(|c| {
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 6], "umask": 63});
        c["process"]["cwd"] = "/work/here".into();
        c["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
    });
    let out = env.sh("id -u; id -g; id -G; umask; pwd; echo $FOO; echo $HOME");
    assert_eq!(
        out,
        "1000\n1000\n1000 5 6\n0077\n/work/here\nbar baz\n/home/user\n"
    );
}

#[test]
fn capabilities_and_no_new_privileges() {
    let env = Env::new("caps");
    env.edit(|c| {
        let set = json!(["CAP_CHOWN", "CAP_KILL"]);
        c["process"]["capabilities"] = json!({"bounding": set, "effective": set, "permitted": set, "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]});
        c["process"]["noNewPrivileges"] = true.into();
    });
    let out = env.sh("grep -E '^(Cap|NoNewPrivs)' /proc/self/status");
    // CAP_CHOWN = bit 0, CAP_KILL = bit 5.
    assert!(out.contains("CapBnd:\t0000000000000021"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000021"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000021"), "{out}");
    assert!(out.contains("CapInh:\t0000000000000020"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000020"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}

#[test]
fn capabilities_survive_a_switch_to_a_non_root_user() {
    let env = Env::new("capsuser");
    env.edit(|c| {
        let set = json!(["CAP_NET_BIND_SERVICE"]);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        // A non-root process keeps capabilities across exec only as ambient ones.
        c["process"]["capabilities"] = json!({"bounding": set, "effective": set, "permitted": set, "inheritable": set, "ambient": set});
        c["process"]["noNewPrivileges"] = false.into();
    });
    let out =
        env.sh("grep -E '^Cap(Eff|Prm)' /proc/self/status; grep NoNewPrivs /proc/self/status");
    assert!(out.contains("CapEff:\t0000000000000400"), "{out}");
    assert!(out.contains("CapPrm:\t0000000000000400"), "{out}");
    assert!(out.contains("NoNewPrivs:\t0"), "{out}");
}

#[test]
fn rlimits_and_oom_score() {
    let env = Env::new("rlimits");
    env.edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 2048, "soft": 1000}, {"type": "RLIMIT_NPROC", "hard": 500, "soft": 400}]);
        c["process"]["oomScoreAdj"] = 123.into();
    });
    let out = env.sh("ulimit -n; ulimit -Hn; ulimit -u; cat /proc/self/oom_score_adj");
    assert_eq!(out, "1000\n2048\n400\n123\n");
}

#[test]
fn hostname_domainname_and_sysctls() {
    let env = Env::new("names");
    env.edit(|c| {
        c["hostname"] = "box1".into();
        c["domainname"] = "example.org".into();
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    });
    let out = env.sh("hostname; cat /proc/sys/kernel/domainname; cat /proc/sys/net/ipv4/ip_forward; cat /proc/sys/kernel/shmmni");
    assert_eq!(out, "box1\nexample.org\n1\n1234\n");
}

#[test]
fn init_is_pid_one_and_single() {
    let env = Env::new("pid1");
    let out = env.sh("echo $$; ls /proc | grep -c '^[0-9]'");
    // The shell is pid 1; the other number is ls and grep in the pipeline, nothing of runr's.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1");
    assert!(lines[1].parse::<u32>().unwrap() <= 3, "{out}");
}

#[test]
fn signals_are_default_in_the_container() {
    let env = Env::new("sigs");
    // Rust ignores SIGPIPE; the container must not inherit that.
    let out = env.sh("grep -E '^Sig(Ign|Blk)' /proc/self/status");
    assert!(out.contains("SigBlk:\t0000000000000000"), "{out}");
    assert!(!out.contains("SigIgn:\t0000000000001000"), "{out}");
}

/// Scheduler, I/O priority, personality and memory policy, as the process sees them.
#[test]
fn scheduler_io_priority_personality_memory_policy() {
    let env = Env::new("attrs");
    env.edit(|c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
        c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"});
    });
    let out = env.sh(
        "grep '^policy' /proc/self/sched; cut -d' ' -f19 /proc/self/stat; ionice; uname -m; grep -c bind:0 /proc/self/numa_maps",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].ends_with(": 3") || lines[0].ends_with(" 3"),
        "{out}"
    );
    assert_eq!(lines[1], "7", "{out}");
    assert_eq!(lines[2], "idle", "{out}");
    assert_eq!(lines[3], "i686", "{out}");
    assert_ne!(lines[4], "0", "{out}");
}

/// An exec'd process gets execCPUAffinity.final once it is in the container's cgroup.
#[test]
fn exec_cpu_affinity() {
    let env = Env::new("affinity");
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    let r = env.runr(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let process = env.bundle.join("exec.json");
    std::fs::write(
        &process,
        serde_json::to_vec(&json!({
            "cwd": "/", "user": {"uid": 0, "gid": 0},
            "args": ["grep", "Cpus_allowed_list", "/proc/self/status"],
            "env": ["PATH=/bin"],
            "execCPUAffinity": {"initial": "0", "final": "0"},
        }))
        .unwrap(),
    )
    .unwrap();
    let r = env.runr(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.trim().ends_with("\t0"), "{}", r.stdout);
    assert_eq!(env.runr(&["delete", "-f", &id]).code, 0);
}
