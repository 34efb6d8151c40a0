//! `exec`: another process in a running container joins every namespace and the cgroup of
//! the init, gets the same confinement, its own user, env, cwd and terminal; its exit code
//! comes back; bad input leaves no stray process.

mod common;
use common::*;
use serde_json::json;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::Duration;

/// A detached container whose init sleeps; its id and host pid.
fn sleeping(env: &Env, suffix: &str) -> (String, i32) {
    env.args(&["sleep", "1000"]);
    let id = env.id(suffix);
    let r = env.runr(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert_eq!(r.code, 0, "run -d: {}", r.stderr);
    let pid = env.state(&id)["pid"].as_i64().unwrap() as i32;
    (id, pid)
}

/// `exec -d` of `sleep 1000` with `flags`; the host pid from --pid-file.
fn exec_detached(env: &Env, id: &str, flags: &[&str]) -> i32 {
    let pid_file = env.dir.path().join("exec.pid");
    let mut args = vec!["exec", "-d", "--pid-file", pid_file.to_str().unwrap()];
    args.extend(flags);
    args.extend([id, "sleep", "1000"]);
    let r = env.runr(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn pids(env: &Env, id: &str) -> Vec<i64> {
    let r = env.runr(&["ps", "--format", "json", id]);
    assert_eq!(r.code, 0, "ps: {}", r.stderr);
    let mut v: Vec<i64> = serde_json::from_str(&r.stdout).unwrap();
    v.sort();
    v
}

fn ns_links(pid: i32) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/ns"))
        .unwrap()
        .flatten()
        .map(|e| {
            let link = std::fs::read_link(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                link.to_string_lossy().into_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn exec_joins_the_namespaces_and_cgroup_of_the_init() {
    let env = Env::new("exns");
    let (id, init) = sleeping(&env, "c");
    let pid = exec_detached(&env, &id, &[]);
    assert_eq!(ns_links(pid), ns_links(init));
    let cgroup = |p: i32| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cgroup(pid), cgroup(init));
    let mut want = vec![init as i64, pid as i64];
    want.sort();
    assert_eq!(pids(&env, &id), want, "ps must show the exec'd process");
    // Inside, it is not pid 1 but sees the init as pid 1.
    let r = env.runr(&["exec", &id, "sh", "-c", "echo $$; cat /proc/1/cmdline"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut lines = r.stdout.lines();
    assert_ne!(lines.next(), Some("1"));
    assert_eq!(lines.next(), Some("sleep\u{0}1000\u{0}"));
    assert_eq!(env.runr(&["delete", "-f", &id]).code, 0);
    env.assert_gone(&id);
}

#[test]
fn exec_joins_a_user_and_time_namespace() {
    let env = Env::new("exuser");
    env.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "user"}));
        ns.push(json!({"type": "time"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 86400, "nanosecs": 0}});
        c["root"]["readonly"] = false.into();
    });
    let status = std::process::Command::new("chown")
        .args(["-R", "-h", "100000:100000"])
        .arg(&env.rootfs)
        .status()
        .unwrap();
    assert!(status.success());
    let (id, init) = sleeping(&env, "c");
    let pid = exec_detached(&env, &id, &[]);
    assert_eq!(ns_links(pid), ns_links(init));
    let r = env.runr(&[
        "exec",
        "-u",
        "5",
        &id,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out: Vec<String> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(out, ["5", "0 100000 65536"]);
    let host_uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(host_uid, "100000");
}

#[test]
fn exec_returns_the_exit_code_and_fails_cleanly() {
    let env = Env::new("excode");
    let (id, init) = sleeping(&env, "c");
    let r = env.runr(&["exec", &id, "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (7, "out\n", "err\n")
    );
    let r = env.runr(&["exec", &id, "sh", "-c", "kill -9 $$"]);
    assert_eq!(r.code, 137);
    let r = env.runr(&["exec", &id, "no-such-program"]);
    assert_eq!(r.code, 255);
    assert!(
        r.stderr.contains("exec failed")
            && r.stderr.contains("no-such-program")
            && r.stderr.contains("not found"),
        "{}",
        r.stderr
    );
    for (args, want) in [
        (vec!["-u", "nobody"], "is not a number"),
        (vec!["--cwd", "relative"], "absolute"),
        (vec!["-t"], "stdin is not a terminal"),
        (vec!["--console-socket", "/tmp/x.sock"], "console socket"),
        (vec!["-c", "CAP_NOPE"], "unknown capability"),
        (vec!["-e", "NOEQUALS"], "KEY=VALUE"),
        (vec!["--cgroup", "../escape"], "--cgroup"),
        (vec!["--cgroup", "pids:nonexistent"], "does not exist"),
    ] {
        let mut all = vec!["exec"];
        all.extend(args.iter());
        all.extend([id.as_str(), "true"]);
        let r = env.runr(&all);
        assert_eq!(r.code, 255, "{args:?}");
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
    // Nothing was left running in the container.
    assert_eq!(pids(&env, &id), vec![init as i64]);
    let r = env.runr(&["exec", "no-such-container", "true"]);
    assert_eq!(r.code, 255);
    assert!(
        r.stderr.contains("container does not exist"),
        "{}",
        r.stderr
    );
}

#[test]
fn exec_applies_its_flags_and_the_containers_confinement() {
    let env = Env::new("exflags");
    env.edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 555, "soft": 555}]);
        c["process"]["env"] = json!(["PATH=/bin", "KEEP=config", "FOO=config"]);
    });
    let (id, _) = sleeping(&env, "c");
    let script = "id -u; id -g; id -G; pwd; echo $KEEP $FOO; ulimit -n; \
                  grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status; \
                  wc -c < /proc/timer_list; grep ' /proc/sys ' /proc/self/mounts | grep -c ' ro,'";
    let r = env.runr(&[
        "exec",
        "-u",
        "1000:1001",
        "-g",
        "10",
        "-g",
        "20",
        "--cwd",
        "/tmp",
        "-e",
        "FOO=flag",
        "--cap",
        "CAP_SYS_TIME",
        "--no-new-privs",
        &id,
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        &lines[..6],
        ["1000", "1001", "1001 10 20", "/tmp", "config flag", "555"]
    );
    // Bounding: the config's three plus CAP_SYS_TIME (bit 25); effective: none for uid 1000.
    let caps =
        |line: &str| u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
    // (/proc/self/status lists CapEff before CapBnd.)
    assert_eq!(caps(lines[6]), 0);
    let bnd = caps(lines[7]);
    assert_eq!(
        bnd,
        (1 << 29) | (1 << 10) | (1 << 5) | (1 << 25),
        "{}",
        lines[6]
    );
    assert_eq!(lines[8], "NoNewPrivs:\t1");
    // Masked and read-only paths are the init's: the mount namespace is shared.
    assert_eq!(lines[9].trim(), "0");
    assert_eq!(lines[10].trim(), "1");

    // --process: a whole process.json.
    let process = json!({
        "args": ["sh", "-c", "id -u; pwd; echo $A"],
        "env": ["A=from-json", "PATH=/bin"],
        "cwd": "/etc",
        "user": {"uid": 7, "gid": 7},
    });
    let path = env.dir.path().join("process.json");
    std::fs::write(&path, process.to_string()).unwrap();
    let r = env.runr(&["exec", "--process", path.to_str().unwrap(), &id]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "7\n/etc\nfrom-json\n"),
        "{}",
        r.stderr
    );
    std::fs::write(&path, r#"{"args": ["true"], "cwd": 5}"#).unwrap();
    let r = env.runr(&["exec", "--process", path.to_str().unwrap(), &id]);
    assert_eq!(r.code, 255);
    assert!(
        r.stderr.contains("malformed process") && r.stderr.contains("cwd"),
        "{}",
        r.stderr
    );
}

#[test]
fn exec_into_a_paused_or_stopped_container() {
    let env = Env::new("expause");
    let (id, init) = sleeping(&env, "c");
    let freezer = cgroup_dir("freezer", &id).join("freezer.state");
    std::fs::write(&freezer, "FROZEN").unwrap();
    let r = env.runr(&["exec", &id, "true"]);
    assert_eq!(r.code, 255);
    assert!(
        r.stderr.contains("paused") && r.stderr.contains("--ignore-paused"),
        "{}",
        r.stderr
    );
    // With --ignore-paused the process starts frozen and runs once the container thaws.
    let mut c = env.cmd();
    c.args(["exec", "--ignore-paused", &id, "sh", "-c", "exit 4"]);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "a frozen exec finished"
    );
    // Other commands are not held up meanwhile.
    assert_eq!(env.state(&id)["status"], "paused");
    std::fs::write(&freezer, "THAWED").unwrap();
    assert_eq!(wait_exit(&mut child), 4);

    // SAFETY: killing the init of the container this test made.
    unsafe { libc::kill(init, libc::SIGKILL) };
    for _ in 0..100 {
        if env.state(&id)["status"] == "stopped" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = env.runr(&["exec", &id, "true"]);
    assert_eq!(r.code, 255);
    assert!(
        r.stderr.contains("cannot exec in a stopped container"),
        "{}",
        r.stderr
    );
}

#[test]
fn exec_can_use_a_sub_cgroup() {
    let env = Env::new("exsub");
    let (id, _) = sleeping(&env, "c");
    let sub = cgroup_dir("pids", &id).join("sub");
    std::fs::create_dir(&sub).unwrap();
    let pid = exec_detached(&env, &id, &["--cgroup", "pids:sub"]);
    let procs = std::fs::read_to_string(sub.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.to_string());
    assert_eq!(pids(&env, &id).len(), 2, "ps counts sub-cgroups");
    // delete kills what is in the sub-cgroup and removes it too.
    assert_eq!(env.runr(&["delete", "-f", &id]).code, 0);
    env.assert_gone(&id);
}

#[test]
fn foreground_exec_forwards_signals() {
    let env = Env::new("exsig");
    let (id, _) = sleeping(&env, "c");
    let mut c = env.cmd();
    c.args(["exec", &id, "sh", "-c"])
        .arg("trap 'echo caught; exit 3' TERM; echo ready; while true; do sleep 0.1; done");
    assert_eq!(sigterm_is_forwarded(c), ("caught\n".to_string(), 3));
}

#[test]
fn exec_with_a_terminal_in_the_foreground_relays_and_resizes() {
    let env = Env::new("extty");
    let (id, _) = sleeping(&env, "c");
    let size = |rows, cols| nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size(40, 100)), None).unwrap();
    let mut c = env.cmd();
    c.args(["exec", "-t", &id, "sh", "-c"])
        .arg("trap 'stty size' WINCH; tty; stty size; echo ready; until read x; do :; done; echo got $x; exit 6");
    let slave = || std::fs::File::from(pty.slave.try_clone().unwrap());
    c.stdin(slave()).stdout(slave()).stderr(slave());
    let mut child = c.spawn().unwrap();
    let mut master = std::fs::File::from(pty.master);
    let out = read_until(&mut master, "ready");
    assert!(out.contains("/dev/pts/") && out.contains("40 100"), "{out}");
    let new = size(33, 77);
    // SAFETY: TIOCSWINSZ reads one winsize from a live struct, on a pty we own.
    assert_eq!(
        unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCSWINSZ, &new) },
        0
    );
    // SAFETY: signalling the runr process this test started, as a terminal would.
    unsafe { libc::kill(child.id() as i32, libc::SIGWINCH) };
    let out = read_until(&mut master, "33 77");
    assert!(out.contains("33 77"), "resize not passed on: {out}");
    master.write_all(b"hi\r").unwrap();
    let out = read_until(&mut master, "got hi");
    assert!(out.contains("got hi"), "{out}");
    assert_eq!(wait_exit(&mut child), 6);
}

#[test]
fn detached_exec_with_a_terminal_uses_the_console_socket() {
    let env = Env::new("exsock");
    let (id, init) = sleeping(&env, "c");
    let sock_path = env.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let exec = {
        let mut c = env.cmd();
        c.args(["exec", "-d", "-t", "-u", "1000:1000", "--console-socket"])
            .arg(&sock_path)
            .args([
                &id,
                "sh",
                "-c",
                "tty; stat -c %u $(tty); echo done; sleep 1000",
            ]);
        std::thread::spawn(move || capture(c))
    };
    let mut master = recv_console(&listener);
    let r = exec.join().unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = read_until(&mut master, "done");
    assert!(
        out.contains("/dev/pts/") && out.contains("1000\r\n"),
        "{out}"
    );
    // A console socket that is not there: an error, and no process left behind.
    let r = env.runr(&[
        "exec",
        "-d",
        "-t",
        "--console-socket",
        "/nonexistent/sock",
        &id,
        "true",
    ]);
    assert_eq!(r.code, 255);
    assert!(
        r.stderr.contains("console socket /nonexistent/sock"),
        "{}",
        r.stderr
    );
    assert_eq!(pids(&env, &id).len(), 2);
    assert!(pids(&env, &id).contains(&(init as i64)));
}

#[test]
fn exec_passes_preserved_and_socket_activation_fds() {
    let env = Env::new("exfds");
    let (id, _) = sleeping(&env, "c");
    let file = env.dir.path().join("data");
    std::fs::write(&file, "hello").unwrap();
    let runr = format!("{RUNR} --root {}", env.root.display());
    let has = |fd: u32| format!("test -e /proc/$$/fd/{fd} && echo has{fd} || echo no{fd}");
    let script = format!(
        "exec 3<{f} 4<{f} 5<{f}; \
         {runr} exec --preserve-fds 1 {id} sh -c 'cat <&3; {has3}; {has4}'; \
         export LISTEN_FDS=2 LISTEN_PID=$$; \
         exec {runr} exec --preserve-fds 1 {id} sh -c 'echo $LISTEN_FDS $LISTEN_PID; cat <&5; {has5}; {has6}'",
        f = file.display(),
        has3 = has(3),
        has4 = has(4),
        has5 = has(5),
        has6 = has(6),
    );
    let mut c = std::process::Command::new("sh");
    c.arg("-c").arg(&script);
    let r = capture(c);
    assert_eq!(
        r.stdout, "hellohas3\nno4\n2 1\nhellohas5\nno6\n",
        "{}",
        r.stderr
    );
}

#[test]
fn exec_into_a_created_container() {
    let env = Env::new("excreated");
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    let r = env.runr(&["exec", &id, "sh", "-c", "cat /proc/1/cmdline | head -c 4"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The init has not exec'd the program yet: it is still runr's init.
    assert_ne!(r.stdout, "slee");
    assert_eq!(env.state(&id)["status"], "created");
    assert_eq!(env.runr(&["start", &id]).code, 0);
    assert_eq!(env.state(&id)["status"], "running");
}

#[test]
fn exec_apparmor_profile_without_apparmor_is_refused() {
    if std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
    {
        return;
    }
    let env = Env::new("exaa");
    let (id, init) = sleeping(&env, "c");
    let r = env.runr(&["exec", "--apparmor", "x", &id, "true"]);
    assert_eq!(r.code, 255);
    assert!(r.stderr.contains("AppArmor is not enabled"), "{}", r.stderr);
    assert_eq!(pids(&env, &id), vec![init as i64]);
}
