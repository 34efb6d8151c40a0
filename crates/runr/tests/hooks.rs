//! OCI hooks: each runs at its moment, in its namespace, with the state (right status) on
//! stdin; failures of create-time hooks fail create and leave nothing; poststart and
//! poststop failures are warnings.

mod common;
use common::*;
use serde_json::{json, Value};

/// A hook that records its name, the state it read, and its mount namespace.
fn recorder(dir: &std::path::Path, name: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {0}/{1}.json; readlink /proc/self/ns/mnt > {0}/{1}.mnt; echo {1} >> {0}/order", dir.display(), name)],
    })
}

fn read_state(dir: &std::path::Path, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap()
}

#[test]
fn every_hook_runs_in_order_with_the_right_state() {
    let env = Env::new("hooks");
    let out = env.dir.path().join("hookout");
    std::fs::create_dir(&out).unwrap();
    env.edit(|c| {
        c["root"]["readonly"] = false.into();
        c["hooks"] = json!({
            "prestart": [recorder(&out, "prestart")],
            "createRuntime": [recorder(&out, "createRuntime")],
            "createContainer": [recorder(&out, "createContainer")],
            // Runs inside the container after pivot_root: paths are the container's.
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /startContainer.json"]}],
            "poststart": [recorder(&out, "poststart")],
            "poststop": [recorder(&out, "poststop")],
        });
    });
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let container_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("order")).unwrap(),
        "prestart\ncreateRuntime\ncreateContainer\n"
    );
    for (name, in_container) in [
        ("prestart", false),
        ("createRuntime", false),
        ("createContainer", true),
    ] {
        let s = read_state(&out, name);
        assert_eq!(s["status"], "creating", "{name}");
        assert_eq!(s["pid"], pid, "{name}");
        assert_eq!(s["id"], id.as_str());
        let mnt = std::fs::read_to_string(out.join(format!("{name}.mnt"))).unwrap();
        let expected = if in_container {
            &container_mnt
        } else {
            &host_mnt
        };
        assert_eq!(
            mnt.trim(),
            expected.to_str().unwrap(),
            "{name} ran in the wrong mount namespace"
        );
    }
    assert_eq!(env.runr(&["start", &id]).code, 0);
    let start: Value =
        serde_json::from_slice(&std::fs::read(env.rootfs.join("startContainer.json")).unwrap())
            .unwrap();
    assert_eq!(start["status"], "created");
    assert_eq!(read_state(&out, "poststart")["status"], "running");
    assert_eq!(env.runr(&["delete", "--force", &id]).code, 0);
    assert_eq!(read_state(&out, "poststop")["status"], "stopped");
    assert_eq!(
        std::fs::read_to_string(out.join("order")).unwrap(),
        "prestart\ncreateRuntime\ncreateContainer\npoststart\npoststop\n"
    );
}

#[test]
fn failing_prestart_hook_fails_create_and_leaves_nothing() {
    let env = Env::new("hookfail");
    env.edit(|c| c["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no way >&2; exit 4"]}]}));
    let id = env.id("c");
    let r = env.create(&id);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("prestart hook")
            && r.stderr.contains("exit status 4")
            && r.stderr.contains("no way"),
        "{}",
        r.stderr
    );
    env.assert_gone(&id);
}

#[test]
fn hook_timeout_fails_create() {
    let env = Env::new("hooktimeout");
    env.edit(|c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}));
    let id = env.id("c");
    let t = std::time::Instant::now();
    let r = env.create(&id);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("timed out"), "{}", r.stderr);
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    env.assert_gone(&id);
}

#[test]
fn failing_create_container_hook_fails_create() {
    let env = Env::new("cchook");
    env.edit(|c| c["hooks"] = json!({"createContainer": [{"path": "/bin/false"}]}));
    let id = env.id("c");
    let r = env.create(&id);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("createContainer hook"), "{}", r.stderr);
    env.assert_gone(&id);
}

#[test]
fn failing_poststart_and_poststop_hooks_are_warnings() {
    let env = Env::new("posthooks");
    env.edit(|c| {
        c["hooks"] =
            json!({"poststart": [{"path": "/bin/false"}], "poststop": [{"path": "/bin/false"}]})
    });
    let r = env.run(&["true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("level=warning") && r.stderr.contains("poststart hook"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("poststop hook"), "{}", r.stderr);
}

/// A hook that appends `name` to `dir/order` and keeps the state it read as `dir/name.json`.
fn numbered(dir: &std::path::Path, name: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {0}/{1}.json; echo {1} >> {0}/order", dir.display(), name)],
    })
}

#[test]
fn hooks_of_one_stage_run_in_the_listed_order_each_with_the_state() {
    let env = Env::new("hookorder");
    let out = env.dir.path().join("hookout");
    std::fs::create_dir(&out).unwrap();
    env.edit(|c| {
        c["hooks"] = json!({
            "prestart": [numbered(&out, "pre3"), numbered(&out, "pre1"), numbered(&out, "pre2")],
            "poststart": [numbered(&out, "post2"), numbered(&out, "post1")],
            "poststop": [numbered(&out, "stop1"), numbered(&out, "stop3"), numbered(&out, "stop2")],
        });
    });
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    assert_eq!(env.runr(&["start", &id]).code, 0);
    assert_eq!(env.runr(&["delete", "--force", &id]).code, 0);
    assert_eq!(
        std::fs::read_to_string(out.join("order")).unwrap(),
        "pre3\npre1\npre2\npost2\npost1\nstop1\nstop3\nstop2\n"
    );
    for (name, status) in [
        ("pre3", "creating"),
        ("pre2", "creating"),
        ("post2", "running"),
        ("post1", "running"),
        ("stop1", "stopped"),
        ("stop2", "stopped"),
    ] {
        let s = read_state(&out, name);
        assert_eq!(s["status"], status, "{name}");
        assert_eq!(s["id"], id.as_str(), "{name}");
    }
}

#[test]
fn start_container_hook_without_env_gets_the_process_environment() {
    let env = Env::new("hookenv");
    env.edit(|c| {
        c["root"]["readonly"] = false.into();
        c["process"]["env"] = json!(["PATH=/bin", "FOO=from-process"]);
        c["hooks"] = json!({"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "env > /no-env.txt"]},
            {"path": "/bin/sh", "args": ["sh", "-c", "env > /with-env.txt"], "env": ["BAR=given"]},
        ]});
    });
    let r = env.run(&["true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let inherited = std::fs::read_to_string(env.rootfs.join("no-env.txt")).unwrap();
    assert!(inherited.contains("FOO=from-process"), "{inherited}");
    let given = std::fs::read_to_string(env.rootfs.join("with-env.txt")).unwrap();
    assert!(
        given.contains("BAR=given") && !given.contains("FOO"),
        "{given}"
    );
}

#[test]
fn failing_poststart_hook_is_a_warning_and_the_rest_run() {
    let env = Env::new("poststartfail");
    let out = env.dir.path().join("hookout");
    std::fs::create_dir(&out).unwrap();
    env.edit(|c| {
        c["hooks"] = json!({
            "poststart": [{"path": "/bin/false"}, numbered(&out, "post")],
            "poststop": [{"path": "/bin/false"}, numbered(&out, "stop")],
        })
    });
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    let r = env.runr(&["start", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("level=warning") && r.stderr.contains("poststart hook #0"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr.matches("poststart hook #0").count(),
        1,
        "{}",
        r.stderr
    );
    assert_eq!(env.state(&id)["status"], "running");
    let r = env.runr(&["delete", "--force", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("poststop hook #0"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(out.join("order")).unwrap(),
        "post\nstop\n"
    );
    env.assert_gone(&id);
}

#[test]
fn failing_start_container_hook_stops_the_container_but_start_goes_on() {
    let env = Env::new("starthookfail");
    let out = env.dir.path().join("hookout");
    std::fs::create_dir(&out).unwrap();
    env.edit(|c| {
        c["hooks"] = json!({
            // Runs inside the container: the host path it writes to is not there.
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", format!("echo x > {}/start", out.display())]}],
            "poststart": [numbered(&out, "post")],
            "poststop": [numbered(&out, "stop")],
        })
    });
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    let r = env.runr(&["start", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("level=error") && r.stderr.contains("startContainer hook"),
        "{}",
        r.stderr
    );
    assert_eq!(read_state(&out, "post")["status"], "running");
    for _ in 0..200 {
        if env.state(&id)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(env.state(&id)["status"], "stopped");
    let r = env.runr(&["delete", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read_state(&out, "stop")["status"], "stopped");
    env.assert_gone(&id);
}
