//! runr run by an unprivileged user: a user this test creates (and deletes), with the
//! subordinate ids useradd grants it. State goes under its $XDG_RUNTIME_DIR; the host's
//! cgroups are not the user's, so the container runs without one.
mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// A throwaway user; deleted (with its /etc/subuid and /etc/subgid lines) when dropped.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    /// A subordinate id range, the same in /etc/subuid and /etc/subgid.
    sub: (u32, u32),
}

impl User {
    fn new(tag: &str) -> User {
        let name = format!("runr-{tag}-{}", std::process::id());
        let ok = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", &name])
            .status()
            .expect("useradd (package passwd)")
            .success();
        assert!(ok, "useradd {name}");
        let pw = nix::unistd::User::from_name(&name).unwrap().unwrap();
        let mut user = User {
            name,
            uid: pw.uid.as_raw(),
            gid: pw.gid.as_raw(),
            sub: (0, 0),
        };
        // useradd grants a range where /etc/login.defs says so; otherwise add one.
        user.sub = match (
            user.subordinate("/etc/subuid"),
            user.subordinate("/etc/subgid"),
        ) {
            (Some(u), Some(g)) if u == g => u,
            _ => {
                let start = 3_000_000 + user.uid * 65536;
                let range = format!("{start}-{}", start + 65535);
                let ok = Command::new("usermod")
                    .args(["--add-subuids", &range, "--add-subgids", &range, &user.name])
                    .status()
                    .unwrap()
                    .success();
                assert!(ok, "usermod --add-subuids {range}");
                (start, 65536)
            }
        };
        user
    }

    fn subordinate(&self, file: &str) -> Option<(u32, u32)> {
        let text = std::fs::read_to_string(file).ok()?;
        text.lines().find_map(|l| {
            let mut f = l.split(':');
            if f.next()? != self.name {
                return None;
            }
            Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
        })
    }

    /// `runr args` as this user, with only PATH and XDG_RUNTIME_DIR in the environment.
    fn runr(&self, env: &Env, args: &[&str]) -> Run {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid",
            &self.uid.to_string(),
            "--regid",
            &self.gid.to_string(),
        ])
        .args([
            "--clear-groups",
            "env",
            "-i",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        ])
        .arg(format!("XDG_RUNTIME_DIR={}", xdg(env).display()))
        .arg(&env.binary)
        .args(args)
        .current_dir(&env.bundle)
        .stdin(std::process::Stdio::null());
        capture(c)
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

fn xdg(env: &Env) -> std::path::PathBuf {
    env.dir.path().join("xdg")
}

fn chown_tree(path: &Path, u: &User) {
    let ok = Command::new("chown")
        .args(["-R", &format!("{}:{}", u.uid, u.gid)])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn an_unprivileged_user_runs_containers() {
    let user = User::new("rl");
    let mut env = Env::new("rootless");
    // The user's own copy of runr, its runtime directory, and its bundle.
    let copy = env.dir.path().join("runr");
    std::fs::copy(RUNR, &copy).unwrap();
    env.binary = copy;
    std::fs::create_dir(xdg(&env)).unwrap();
    // The harness cleans up (as root) where the user's containers live.
    env.root = xdg(&env).join("runr");
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    chown_tree(env.dir.path(), &user);
    // runr's binary belongs to root, as when installed: the user cannot write it.
    std::os::unix::fs::chown(&env.binary, Some(0), Some(0)).unwrap();
    let binary_before = std::fs::read(&env.binary).unwrap();
    std::fs::set_permissions(
        env.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let r = user.runr(&env, &["spec", "--rootless"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let spec = env.config();
    assert_eq!(
        spec["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": user.uid, "size": 1}])
    );
    assert!(spec["linux"]["resources"].is_null());
    env.edit(|c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(["sleep", "1000"]);
    });

    // create / state / exec / kill / delete, state under $XDG_RUNTIME_DIR/runr.
    let id = env.id("c");
    let r = user.runr(&env, &["create", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let state_file = xdg(&env).join("runr").join(&id).join("state.json");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&state_file).unwrap());
    assert_eq!(owner, user.uid);
    let state: Value = serde_json::from_str(&user.runr(&env, &["state", &id]).stdout).unwrap();
    assert_eq!(state["status"], "created");
    // exec works before start too, as with runc; the init's /proc/1/exe (runr's binary)
    // is then visible to the container, but not writable.
    let r = user.runr(
        &env,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "echo x >> /proc/1/exe && echo WROTE; true",
        ],
    );
    assert_eq!(r.code, 0, "exec into the created container: {}", r.stderr);
    assert!(!r.stdout.contains("WROTE"), "{}", r.stdout);
    assert_eq!(std::fs::read(&env.binary).unwrap(), binary_before);
    assert_eq!(user.runr(&env, &["start", &id]).code, 0);
    let r = user.runr(
        &env,
        &["exec", &id, "sh", "-c", "id -u; cat /proc/self/uid_map"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let words: Vec<&str> = r.stdout.split_whitespace().collect();
    assert_eq!(words, ["0", "0", &user.uid.to_string(), "1"]);
    let r = user.runr(&env, &["pause", &id]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no cgroup"), "{}", r.stderr);
    assert_eq!(user.runr(&env, &["kill", &id, "KILL"]).code, 0);
    let r = user.runr(&env, &["delete", "--force", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!xdg(&env).join("runr").join(&id).exists());

    // Devices are bound from the host, /sys is the host's, read-only.
    env.edit(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "echo x > /dev/null && echo null; head -c 1 /dev/zero | wc -c; \
             touch /sys/x 2>/dev/null || echo sys-ro"
        ])
    });
    let run_id = env.id("run");
    let r = user.runr(&env, &["run", &run_id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "null\n1\nsys-ro\n");

    // Subordinate ids through newuidmap/newgidmap: container uid 1000 is a real, distinct
    // id, so root in the container can chown to it.
    let (start, len) = user.sub;
    let maps = |extra_start: u32| {
        json!([
            {"containerID": 0, "hostID": user.uid, "size": 1},
            {"containerID": 1, "hostID": extra_start, "size": len}
        ])
    };
    env.edit(|c| {
        c["linux"]["uidMappings"] = maps(start);
        c["linux"]["gidMappings"] = json!([
            {"containerID": 0, "hostID": user.gid, "size": 1},
            {"containerID": 1, "hostID": start, "size": len}
        ]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_CHOWN"));
        }
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "wc -l < /proc/self/uid_map; wc -l < /proc/self/gid_map; touch /dev/shm/f; \
             chown 1000:1000 /dev/shm/f && stat -c '%u %g' /dev/shm/f"
        ]);
    });
    let r = user.runr(&env, &["run", &run_id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "2\n2\n1000 1000\n");

    // What the user may not do: map ids it was not given, ask for limits without a cgroup,
    // run without a user namespace. Each a clear error, with nothing left behind.
    let nothing_left = || {
        let left: Vec<_> = std::fs::read_dir(xdg(&env).join("runr"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_str().is_some_and(|n| !n.starts_with('~')))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    };
    env.edit(|c| c["linux"]["uidMappings"] = maps(start + 1));
    let r = user.runr(&env, &["run", &run_id]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("are not yours to map"), "{}", r.stderr);
    nothing_left();

    env.edit(|c| {
        c["linux"]["uidMappings"] = maps(start);
        c["linux"]["resources"] = json!({"memory": {"limit": 100_000_000}});
    });
    let r = user.runr(&env, &["run", &run_id]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("resource limits need a cgroup"),
        "{}",
        r.stderr
    );
    nothing_left();

    env.edit(|c| {
        c["linux"]["resources"] = Value::Null;
        c["linux"]["uidMappings"] = Value::Null;
        c["linux"]["gidMappings"] = Value::Null;
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "user");
    });
    let r = user.runr(&env, &["run", &run_id]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("needs a user namespace"), "{}", r.stderr);
    nothing_left();

    // A runr binary the user can write: the created init stays closed to the container,
    // and so to an unprivileged exec, until it runs the container's program.
    std::os::unix::fs::chown(&env.binary, Some(user.uid), Some(user.gid)).unwrap();
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    assert_eq!(user.runr(&env, &["spec", "--rootless"]).code, 0);
    env.edit(|c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(["sleep", "1000"]);
    });
    let id = env.id("w");
    assert_eq!(user.runr(&env, &["create", &id]).code, 0);
    let r = user.runr(&env, &["exec", &id, "true"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("start the container first"),
        "{}",
        r.stderr
    );
    assert_eq!(user.runr(&env, &["start", &id]).code, 0);
    let r = user.runr(&env, &["exec", &id, "true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(user.runr(&env, &["delete", "--force", &id]).code, 0);

    // CVE-2019-5736 by the watcher of escapes.rs, from a container whose root holds
    // CAP_SYS_PTRACE (in its own user namespace), against that writable binary: runr's
    // processes in the container stay non-dumpable, owned by a namespace above it.
    install_helper("exewatch", &env.rootfs);
    let binary_before = std::fs::read(&env.binary).unwrap();
    env.edit(|c| {
        c["root"]["readonly"] = json!(false);
        for set in ["bounding", "effective", "permitted"] {
            let caps = c["process"]["capabilities"][set].as_array_mut().unwrap();
            caps.push(json!("CAP_SYS_PTRACE"));
        }
    });
    let id = env.id("p");
    assert_eq!(user.runr(&env, &["create", &id]).code, 0);
    assert_eq!(user.runr(&env, &["start", &id]).code, 0);
    let r = user.runr(&env, &["exec", "-d", &id, "/exewatch"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for _ in 0..20 {
        let r = user.runr(&env, &["exec", &id, "true"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let tmp = env.rootfs.join("tmp");
    std::fs::write(tmp.join("stop"), "").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !tmp.join("done").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let found = std::fs::read_to_string(tmp.join("found")).unwrap_or_default();
    assert_eq!(
        found, "",
        "the container reopened runr's binary for writing"
    );
    assert_eq!(std::fs::read(&env.binary).unwrap(), binary_before);
    assert_eq!(user.runr(&env, &["delete", "--force", &id]).code, 0);
}
