//! The systemd cgroup driver against a real D-Bus daemon.
//!
//! This host has no systemd. The test starts a private `dbus-daemon` and, on it, a stand-in
//! for systemd's manager that answers the four calls runr makes (Subscribe,
//! StartTransientUnit, SetUnitProperties, StopUnit) the way systemd does: it moves the pid
//! into the scope's cgroup, and reports each job's end with a JobRemoved signal. So what is
//! real here is everything on runr's side: the wire format as the bus daemon parses it, the
//! properties sent, waiting for jobs, the unit saved in the state and stopped on delete.
//! What is not: systemd's own reading of the properties.

mod common;
use cgroups::dbus::{s, Connection, DbusError, Kind, Message, Value};
use common::*;
use serde_json::json;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A private bus, ended (by pid) when dropped.
struct Bus {
    daemon: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    fn start() -> Bus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={}/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
                dir.path().display()
            ),
        )
        .unwrap();
        let mut daemon = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdout(Stdio::piped())
            // It says it cannot raise its fd limit; that does not matter here.
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (scripts/deps.sh installs it)");
        let mut line = String::new();
        std::io::BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        Bus {
            daemon,
            address: line.trim().to_string(),
            _dir: dir,
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// What the stand-in was asked: method name and body.
type Calls = Arc<Mutex<Vec<(String, Vec<Value>)>>>;

/// The hierarchies the stand-in places a scope's processes in, as systemd does with the
/// ones it manages; runr must join the others itself.
const SYSTEMD_MANAGES: [&str; 2] = ["systemd", "pids"];

/// A stand-in for systemd's manager object on `address`, until `stop` is set.
fn fake_systemd(address: &str, stop: Arc<AtomicBool>) -> (std::thread::JoinHandle<()>, Calls) {
    let mut conn = Connection::open(address).unwrap();
    let claim = Message::method_call(
        "org.freedesktop.DBus",
        "/",
        "org.freedesktop.DBus",
        "RequestName",
    )
    .with_body(vec![s("org.freedesktop.systemd1"), Value::U32(0)]);
    conn.call(claim).unwrap();
    let calls: Calls = Default::default();
    let seen = calls.clone();
    let thread = std::thread::spawn(move || {
        let mut units: Vec<(String, PathBuf)> = Vec::new();
        let mut jobs = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let m = match conn.wait_for("a call", Duration::from_millis(100), |_| true) {
                Ok(m) if m.kind == Kind::MethodCall => m,
                Ok(_) | Err(DbusError::Timeout(_)) => continue,
                Err(e) => panic!("fake systemd: {e}"),
            };
            let member = m.member.clone().unwrap_or_default();
            seen.lock().unwrap().push((member.clone(), m.body.clone()));
            let unit = m
                .body
                .first()
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let reply = match member.as_str() {
                "StartTransientUnit" => {
                    let props = props(&m.body[2]);
                    let slice = props["Slice"].as_str().unwrap().to_string();
                    let Value::Array(_, pids) = &props["PIDs"] else {
                        panic!("PIDs is not an array")
                    };
                    let dir = cgroups::systemd::slice_path(&slice).unwrap().join(&unit);
                    for h in SYSTEMD_MANAGES {
                        let d = hierarchy_dir(h, &dir);
                        std::fs::create_dir_all(&d).unwrap();
                        for pid in pids {
                            let pid = pid.as_u64().unwrap().to_string();
                            std::fs::write(d.join("cgroup.procs"), pid).unwrap();
                        }
                    }
                    units.push((unit.clone(), dir));
                    Some(jobs + 1)
                }
                "StopUnit" => match units.iter().position(|(u, _)| *u == unit) {
                    Some(i) => {
                        let (_, dir) = units.remove(i);
                        for h in SYSTEMD_MANAGES {
                            kill_and_remove(&hierarchy_dir(h, &dir));
                        }
                        Some(jobs + 1)
                    }
                    None => {
                        let mut e = Message::reply(&m, Kind::Error)
                            .with_body(vec![s(format!("Unit {unit} not loaded."))]);
                        e.error_name = Some("org.freedesktop.systemd1.NoSuchUnit".into());
                        conn.send(&e).unwrap();
                        continue;
                    }
                },
                _ => None,
            };
            let Some(job) = reply else {
                conn.send(&Message::reply(&m, Kind::MethodReturn)).unwrap();
                continue;
            };
            jobs = job;
            let path = format!("/org/freedesktop/systemd1/job/{job}");
            let ret = Message::reply(&m, Kind::MethodReturn)
                .with_body(vec![Value::ObjectPath(path.clone())]);
            conn.send(&ret).unwrap();
            let done = Message::signal(
                "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager",
                "JobRemoved",
            )
            .with_body(vec![
                Value::U32(job),
                Value::ObjectPath(path),
                s(unit),
                s("done"),
            ]);
            conn.send(&done).unwrap();
        }
    });
    (thread, calls)
}

fn props(v: &Value) -> std::collections::HashMap<String, Value> {
    let Value::Array(_, items) = v else {
        panic!("properties are not an array: {v:?}")
    };
    items
        .iter()
        .map(|p| match p {
            Value::Struct(f) => match (&f[0], &f[1]) {
                (Value::Str(k), Value::Variant(v)) => (k.clone(), (**v).clone()),
                other => panic!("bad property {other:?}"),
            },
            other => panic!("bad property {other:?}"),
        })
        .collect()
}

fn hierarchy_dir(h: &str, cgroup: &Path) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(h)
        .join(cgroup.strip_prefix("/").unwrap())
}

fn kill_and_remove(dir: &Path) {
    for _ in 0..200 {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if procs.trim().is_empty() {
            break;
        }
        for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
            // SAFETY: kill has no memory effects; these pids are in the test's own cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = std::fs::remove_dir(dir);
}

/// Remove the test's slices (deepest first) from every hierarchy, where they are empty.
fn remove_slices(slices: &[&str]) {
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for slice in slices.iter().rev() {
            let _ = std::fs::remove_dir(h.path().join(slice.trim_start_matches('/')));
        }
    }
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn transient_scope_over_dbus() {
    let bus = Bus::start();
    let env = Env::new("sd");
    let id = env.id("c");
    let tag = format!("runrtest-{}", std::process::id());
    let slice = format!("{tag}.slice");
    env.args(&["sleep", "1000"]);
    env.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("{slice}:runr:{id}"));
        c["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        c["linux"]["resources"]["pids"] = json!({"limit": 40});
    });
    let runr = |args: &[&str]| {
        let mut c = env.cmd();
        c.env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .arg("--systemd-cgroup")
            .args(args);
        capture(c)
    };
    let bundle = env.bundle.to_str().unwrap().to_string();

    // Nobody owns org.freedesktop.systemd1 yet: systemd is "not running", nothing is made.
    let r = runr(&["create", "--bundle", &bundle, &id]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("org.freedesktop.systemd1 is not on the bus"),
        "{}",
        r.stderr
    );
    env.assert_gone(&id);

    let stop = Arc::new(AtomicBool::new(false));
    let (thread, calls) = fake_systemd(&bus.address, stop.clone());
    let scope = PathBuf::from(format!("/runrtest.slice/{slice}/runr-{id}.scope"));
    let r = runr(&["create", "--bundle", &bundle, &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pid = env.state(&id)["pid"].as_i64().unwrap();

    // The unit as systemd was asked for it.
    let started = calls.lock().unwrap()[1].clone();
    assert_eq!(calls.lock().unwrap()[0].0, "Subscribe");
    assert_eq!(started.0, "StartTransientUnit");
    assert_eq!(started.1[0], s(format!("runr-{id}.scope")));
    assert_eq!(started.1[1], s("replace"));
    let p = props(&started.1[2]);
    assert_eq!(p["Slice"], s(slice.as_str()));
    assert_eq!(
        p["PIDs"],
        Value::Array("u".into(), vec![Value::U32(pid as u32)])
    );
    assert_eq!(p["Delegate"], Value::Bool(true));
    assert_eq!(p["MemoryLimit"], Value::U64(64 << 20));
    assert_eq!(p["TasksMax"], Value::U64(40));

    // The init is in the scope in every hierarchy, those "systemd" manages and the rest.
    let cgroup = read(PathBuf::from(format!("/proc/{pid}/cgroup")));
    for h in ["pids", "memory", "name=systemd", "cpu", "freezer"] {
        let line = cgroup
            .lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|n| n.split(',').any(|c| c == h))
            })
            .unwrap_or_else(|| panic!("{h} missing in {cgroup}"));
        assert!(line.ends_with(scope.to_str().unwrap()), "{line}");
    }
    assert_eq!(
        read(hierarchy_dir("memory", &scope).join("memory.limit_in_bytes")),
        (64 << 20).to_string()
    );
    assert_eq!(read(hierarchy_dir("pids", &scope).join("pids.max")), "40");

    // update: the unit's properties, then the files.
    let r = runr(&["update", "--pids-limit", "7", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let set = calls.lock().unwrap().last().unwrap().clone();
    assert_eq!(set.0, "SetUnitProperties");
    assert_eq!(props(&set.1[2])["TasksMax"], Value::U64(7));
    assert_eq!(read(hierarchy_dir("pids", &scope).join("pids.max")), "7");

    // pause and resume work on the scope's directories.
    assert_eq!(runr(&["pause", &id]).code, 0);
    assert_eq!(env.state(&id)["status"], "paused");
    assert_eq!(runr(&["resume", &id]).code, 0);

    // delete stops the unit; nothing is left.
    let r = runr(&["delete", "-f", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stopped = calls.lock().unwrap().last().unwrap().clone();
    assert_eq!(stopped.0, "StopUnit");
    assert_eq!(stopped.1[0], s(format!("runr-{id}.scope")));
    for h in ["pids", "memory", "systemd", "cpu", "freezer"] {
        assert!(!hierarchy_dir(h, &scope).exists(), "{h} left behind");
    }
    env.assert_gone(&id);

    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    remove_slices(&["/runrtest.slice", &format!("/runrtest.slice/{slice}")]);
}
