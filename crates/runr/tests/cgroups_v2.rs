//! cgroup v2, tested for real in a private mount namespace where a cgroup2 hierarchy is
//! mounted at /sys/fs/cgroup in place of the host's v1 mounts. On this host every
//! controller is bound to v1, so v2 has none: what needs no controller is tested here
//! (placement, device eBPF program, freezing, sub-cgroups, removal, errors for limits that
//! need a missing controller); the value conversions have unit tests in the cgroups crate.

mod common;
use common::*;
use serde_json::json;

/// Run `script` with sh in a private mount namespace that sees only cgroup2 at
/// /sys/fs/cgroup. `$R` is runr with this Env's state root.
fn in_v2(env: &Env, script: &str) -> Run {
    let full = format!(
        "set -e; umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup; \
         R='{} --root {}'; {script}",
        RUNR,
        env.root.display()
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &full]);
    c.stdin(std::process::Stdio::null());
    capture(c)
}

#[test]
fn v2_places_freezes_and_guards_devices() {
    let env = Env::new("v2");
    env.args(&["sleep", "1000"]);
    env.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/dev/kmsg", "source": "/dev/kmsg", "type": "bind", "options": ["bind"]}));
    });
    let id = env.id("c");
    let b = env.bundle.display();
    let script = format!(
        "$R run -d --bundle {b} {id}; \
         d=/sys/fs/cgroup/{id}; pid=$($R state {id} | sed -n 's/.*\"pid\": \\([0-9]*\\).*/\\1/p'); \
         grep -qx $pid $d/cgroup.procs && echo placed; \
         $R exec {id} sh -c 'echo x > /dev/null && echo null-ok'; \
         $R exec {id} sh -c 'head -c1 /dev/kmsg 2>&1 || true' | grep -q 'not permitted' && echo kmsg-denied; \
         $R pause {id}; $R state {id} | grep -q '\"paused\"' && echo paused; cat $d/cgroup.freeze; \
         $R resume {id}; $R state {id} | grep -q '\"running\"' && echo running; \
         mkdir $d/sub; $R exec -d --cgroup sub {id} sleep 1000; wc -l < $d/sub/cgroup.procs; \
         $R ps --format json {id} | tr ',' '\\n' | wc -l; \
         $R events --stats {id} | grep -q '\"type\":\"stats\"' && echo stats; \
         $R kill --all {id} KILL; $R delete -f {id}; test ! -e $d && echo removed"
    );
    let r = in_v2(&env, &script);
    assert_eq!(
        r.stdout, "placed\nnull-ok\nkmsg-denied\npaused\n1\nrunning\n1\n2\nstats\nremoved\n",
        "stderr: {}",
        r.stderr
    );
}

#[test]
fn v2_limit_without_its_controller_is_a_clear_error() {
    let env = Env::new("v2err");
    env.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 64 << 20}));
    let id = env.id("c");
    let script = format!(
        "$R create --bundle {} {id} 2>&1 || true; test ! -e /sys/fs/cgroup/{id} && echo clean",
        env.bundle.display()
    );
    let r = in_v2(&env, &script);
    assert!(
        r.stdout.contains("memory controller") && r.stdout.ends_with("clean\n"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    env.assert_gone(&id);
    env.edit(|c| {
        c["linux"]["resources"] = json!({"unified": {"nosuch.file": "1"}});
    });
    let r = in_v2(
        &env,
        &format!(
            "$R create --bundle {} {id} 2>&1 || true",
            env.bundle.display()
        ),
    );
    assert!(r.stdout.contains("nosuch"), "{}{}", r.stdout, r.stderr);
    env.assert_gone(&id);
}

/// Two containers in one cgroupsPath on v2: the second's device program replaces the
/// first's without breaking it, `delete -f` of one leaves the other and the cgroup, and
/// the last removes the cgroup.
#[test]
fn v2_containers_share_one_cgroups_path() {
    let env = Env::new("v2shared");
    let path = format!("/runr-test-v2shared-{}", std::process::id());
    env.args(&["sleep", "1000"]);
    env.edit(|c| c["linux"]["cgroupsPath"] = json!(path));
    let (a, b) = (env.id("a"), env.id("b"));
    let bundle = env.bundle.display();
    let script = format!(
        "d=/sys/fs/cgroup{path}; $R run -d --bundle {bundle} {a}; $R run -d --bundle {bundle} {b}; \
         $R exec {a} sh -c ': > /dev/null && echo a-ok'; $R exec {b} sh -c ': > /dev/null && echo b-ok'; \
         $R delete -f {a}; test -d $d && echo kept; $R state {b} | grep -q '\"running\"' && echo b-running; \
         $R delete -f {b}; test ! -e $d && echo removed"
    );
    let r = in_v2(&env, &script);
    assert_eq!(
        r.stdout, "a-ok\nb-ok\nkept\nb-running\nremoved\n",
        "stderr: {}",
        r.stderr
    );
    env.assert_gone(&a);
    env.assert_gone(&b);
}

/// A cgroup no process may enter (a child of a threaded cgroup is "domain invalid"): the
/// kernel refuses to clone the init into it, the init then tries to move itself in, and
/// the create fails with the file and the reason, leaving nothing.
#[test]
fn v2_a_cgroup_no_process_may_enter_is_a_clear_error() {
    let env = Env::new("v2invalid");
    let parent = format!("/runr-test-v2invalid-{}", std::process::id());
    env.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("{parent}/c")));
    let id = env.id("c");
    let script = format!(
        "p=/sys/fs/cgroup{parent}; mkdir $p; echo threaded > $p/cgroup.type; \
         $R create --bundle {} {id} 2>&1 || echo failed; \
         test ! -e $p/c && echo clean; rmdir $p",
        env.bundle.display()
    );
    let r = in_v2(&env, &script);
    assert!(
        r.stdout.contains(&format!("{parent}/c/cgroup.procs"))
            && r.stdout.contains("not supported")
            && r.stdout.ends_with("failed\nclean\n"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    env.assert_gone(&id);
}
