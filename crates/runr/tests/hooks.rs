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
