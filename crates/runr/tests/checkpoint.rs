//! Checkpoint and restore with CRIU: real busybox containers dumped and brought back.
//!
//! CRIU comes from `$RUNR_CRIU` (scripts/test.sh sets it) or scripts/criu.sh (the host's
//! criu if `criu check` passes, else CRIU 4.2 built from ../shared/vendor). Without one the
//! tests print why and pass; CI always has one (scripts/test.sh fails without it).

mod common;

use common::{capture, read_until, Env, Run};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A working criu, or why there is none.
fn criu() -> Option<PathBuf> {
    static CRIU: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = CRIU.get_or_init(|| {
        if let Some(p) = std::env::var_os("RUNR_CRIU").filter(|p| !p.is_empty()) {
            return Ok(p.into());
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/criu.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().into())
    });
    match found {
        Ok(p) => Some(p.clone()),
        Err(why) => {
            eprintln!("SKIPPED: no working criu: {why}");
            None
        }
    }
}

/// The harness's command with runr pointed at `criu`.
fn runr(env: &Env, criu: &Path, args: &[&str]) -> Run {
    let mut c = env.cmd();
    c.env("RUNR_CRIU", criu).args(args);
    capture(c)
}

/// A container printing 1, 2, 3... every 50 ms, in the background; its stdout (a pipe, as
/// engines give) is returned. Waits until it has printed `upto`.
fn start_counter(env: &Env, id: &str, upto: u32) -> std::fs::File {
    env.args(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done",
    ]);
    let mut out = run_detached(env, id);
    let seen = read_until(&mut out, &format!("\n{upto}\n"));
    assert!(
        seen.contains(&format!("\n{upto}\n")),
        "counter printed {seen:?}"
    );
    out
}

/// `runr run -d ID` of the bundle as it is, which must succeed; the container's stdout (a
/// pipe, as engines give).
fn run_detached(env: &Env, id: &str) -> std::fs::File {
    let mut c = env.run_cmd(id);
    c.arg("--detach")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    assert!(child.wait().unwrap().success(), "runr run -d {id} failed");
    std::fs::File::from(OwnedFd::from(out))
}

/// `runr checkpoint FLAGS --image-path IMAGE ID`.
fn checkpoint(env: &Env, criu: &Path, id: &str, image: &Path, flags: &[&str]) -> Run {
    let mut args = vec!["checkpoint"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--image-path", image.to_str().unwrap(), id]);
    runr(env, criu, &args)
}

/// Like [`checkpoint`], which must succeed.
fn checkpoint_ok(env: &Env, criu: &Path, id: &str, image: &Path, flags: &[&str]) {
    let r = checkpoint(env, criu, id, image, flags);
    assert_eq!(r.code, 0, "checkpoint {id} {flags:?}: {}", r.stderr);
}

/// `runr restore FLAGS --bundle B --image-path IMAGE ID`, to spawn with the stdio a test
/// needs.
fn restore_cmd(env: &Env, criu: &Path, id: &str, image: &Path, flags: &[&str]) -> Command {
    let mut c = env.cmd();
    c.env("RUNR_CRIU", criu)
        .arg("restore")
        .args(flags)
        .arg("--bundle")
        .arg(&env.bundle)
        .arg("--image-path")
        .arg(image)
        .arg(id);
    c
}

/// `runr restore -d FLAGS` of `image` as `id`, which must succeed; the restored container's
/// new stdout.
fn restore_with(env: &Env, criu: &Path, id: &str, image: &Path, flags: &[&str]) -> std::fs::File {
    let mut c = restore_cmd(env, criu, id, image, flags);
    c.arg("--detach")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "restore {id} {flags:?} failed: {err}");
    std::fs::File::from(OwnedFd::from(out))
}

/// `runr restore -d` of `image` as `id`; the restored container's new stdout.
fn restore(env: &Env, criu: &Path, id: &str, image: &Path) -> std::fs::File {
    restore_with(env, criu, id, image, &[])
}

/// `runr restore -d` of `image` as `id`, which must fail; its stderr.
fn restore_fails(env: &Env, criu: &Path, id: &str, image: &Path, flags: &[&str]) -> String {
    let mut c = restore_cmd(env, criu, id, image, flags);
    c.arg("--detach");
    let r = capture(c);
    assert_ne!(r.code, 0, "restore {id} {flags:?} succeeded");
    r.stderr
}

/// The numbers in `text`, in order.
fn numbers(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Read more of the counter until it has printed two numbers; them.
fn next_numbers(out: &mut std::fs::File) -> Vec<u32> {
    let mut seen = String::new();
    for _ in 0..50 {
        seen.push_str(&read_until(out, "\n"));
        if numbers(&seen).len() >= 2 {
            break;
        }
    }
    numbers(&seen)
}

/// The last number the counter printed before `text` ended (3 if none: it had printed 3).
fn last_count(text: &str) -> u32 {
    numbers(text).last().copied().unwrap_or(3).max(3)
}

/// The counter on `out` goes on from `last`: its next number is at most 3 steps on.
fn assert_counts_on(out: &mut std::fs::File, last: u32) {
    let after = next_numbers(out);
    assert!(
        after.first().is_some_and(|n| *n > last && *n <= last + 3),
        "the count did not go on from {last}: {after:?}"
    );
}

/// `runr delete --force ID`, which must succeed and leave nothing of it.
fn delete_ok(env: &Env, id: &str) {
    let del = env.runr(&["delete", "--force", id]);
    assert_eq!(del.code, 0, "delete {id}: {}", del.stderr);
    env.assert_gone(id);
}

fn assert_running(env: &Env, id: &str) {
    assert_eq!(env.state(id)["status"], "running", "{id} is not running");
}

#[test]
fn counter_goes_on_after_restore() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-counter");
    let id = env.id("c");
    let mut out = start_counter(&env, &id, 3);
    let image = env.dir.path().join("image");
    checkpoint_ok(&env, &criu, &id, &image, &[]);
    // As with runc: the checkpointed container is gone, its processes with it, and the
    // delete --force an engine sends next is no error.
    assert!(
        !env.root.join(&id).exists(),
        "state of {id} left after checkpoint"
    );
    let del = runr(&env, &criu, &["delete", "--force", &id]);
    assert_eq!(
        del.code, 0,
        "delete --force after checkpoint: {}",
        del.stderr
    );
    let last = last_count(&std::io::read_to_string(&mut out).unwrap());

    let mut out = restore(&env, &criu, &id, &image);
    assert_counts_on(&mut out, last);
    assert_running(&env, &id);
    let list = runr(&env, &criu, &["list", "--format", "json"]);
    assert!(
        list.stdout.contains(&id),
        "restored {id} not listed: {}",
        list.stdout
    );
    let exec = runr(&env, &criu, &["exec", &id, "echo", "inside"]);
    assert_eq!(
        (exec.code, exec.stdout.trim()),
        (0, "inside"),
        "{}",
        exec.stderr
    );
    // The restored init is the container's pid 1 still, in the container's cgroup.
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.lines().all(|l| l.ends_with(&format!("/{id}"))),
        "cgroup: {cg}"
    );
    let kill = runr(&env, &criu, &["kill", &id, "KILL"]);
    assert_eq!(kill.code, 0, "kill: {}", kill.stderr);
    delete_ok(&env, &id);
}

#[test]
fn leave_running_keeps_counting() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-leave");
    let id = env.id("c");
    let mut out = start_counter(&env, &id, 2);
    let image = env.dir.path().join("image");
    checkpoint_ok(&env, &criu, &id, &image, &["--leave-running"]);
    assert_running(&env, &id);
    assert!(next_numbers(&mut out).len() >= 2, "the counter stopped");
    assert!(image.join("pstree.img").exists(), "no image written");
    // A paused container is left paused.
    let r = runr(&env, &criu, &["pause", &id]);
    assert_eq!(r.code, 0, "pause: {}", r.stderr);
    let image2 = env.dir.path().join("image2");
    checkpoint_ok(&env, &criu, &id, &image2, &["--leave-running"]);
    assert_eq!(env.state(&id)["status"], "paused");
    let r = runr(&env, &criu, &["resume", &id]);
    assert_eq!(r.code, 0, "resume: {}", r.stderr);
    assert!(
        next_numbers(&mut out).len() >= 2,
        "the counter stopped after resume"
    );
    delete_ok(&env, &id);
}

#[test]
fn restore_under_a_new_id() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-newid");
    let old = env.id("old");
    let new = env.id("new");
    let _out = start_counter(&env, &old, 2);
    let image = env.dir.path().join("image");
    checkpoint_ok(&env, &criu, &old, &image, &[]);
    let mut out = restore(&env, &criu, &new, &image);
    assert!(
        next_numbers(&mut out).len() >= 2,
        "the restored counter is silent"
    );
    assert_running(&env, &new);
    env.assert_gone(&old);
    let pid = env.state(&new)["pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.lines().all(|l| l.ends_with(&format!("/{new}"))),
        "cgroup: {cg}"
    );
    delete_ok(&env, &new);
}

#[test]
fn failed_checkpoints_leave_the_container_running() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-fail");
    let id = env.id("c");
    let mut out = start_counter(&env, &id, 2);
    let image = env.dir.path().join("image");

    let r = checkpoint(&env, Path::new("/nonexistent/criu"), &id, &image, &[]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("/nonexistent/criu"),
        "no criu named: {}",
        r.stderr
    );
    let mut c = env.cmd();
    c.env("RUNR_CRIU", "").env("PATH", "/nonexistent");
    c.args(["checkpoint", "--image-path", image.to_str().unwrap(), &id]);
    let r = capture(c);
    assert!(r.code != 0 && r.stderr.contains("criu"), "{}", r.stderr);

    // Each refused with its flag named.
    for (flags, named) in [
        (&["--pre-dump"][..], "--pre-dump"),
        (&["--empty-ns", "ipc"], "--empty-ns ipc"),
        // The port is what the restoring side's daemon needs.
        (&["--lazy-pages"], "--page-server"),
        // runc ignores it without --lazy-pages; its reader would wait for ever.
        (
            &["--status-fd", "2"],
            "--status-fd is only for --lazy-pages",
        ),
    ] {
        let r = checkpoint(&env, &criu, &id, &image, flags);
        assert!(
            r.code != 0 && r.stderr.contains(named),
            "{flags:?}: {}",
            r.stderr
        );
    }

    assert_running(&env, &id);
    assert!(next_numbers(&mut out).len() >= 2, "the counter stopped");
    let del = runr(&env, &criu, &["delete", "--force", &id]);
    assert_eq!(del.code, 0, "delete: {}", del.stderr);
}

/// A checkpoint ended by ^C (runr's process group: CRIU too) at any moment leaves the
/// container running as it was, counting on: runr outlives the signal and thaws what CRIU,
/// killed by it, left frozen. (SIGKILL of both leaves it paused: `runr resume` goes on.)
#[test]
fn interrupted_checkpoints_leave_the_container_running() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-interrupted");
    let id = env.id("c");
    let mut out = start_counter(&env, &id, 3);
    let image = env.dir.path().join("image");
    let started = std::time::Instant::now();
    checkpoint_ok(&env, &criu, &id, &image, &["--leave-running"]);
    let whole = started.elapsed();
    for step in 1..=6u32 {
        let delay = whole * step / 7;
        let _ = std::fs::remove_dir_all(&image);
        let mut c = env.cmd();
        c.env("RUNR_CRIU", &criu)
            .args(["checkpoint", "--leave-running", "--image-path"]);
        c.arg(&image).arg(&id);
        let finished = interrupt(c, delay, Interrupt::CtrlC);
        assert_eq!(
            env.state(&id)["status"],
            "running",
            "after a ^C at {delay:?} (finished {finished})"
        );
        // What it printed so far, then more: it counts on.
        let before = next_numbers(&mut out);
        let after = next_numbers(&mut out);
        assert!(
            after.last() > before.last(),
            "not counting after a ^C at {delay:?}: {before:?} then {after:?}"
        );
    }
    delete_ok(&env, &id);
}

#[test]
fn failed_restores_leave_nothing() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-badrestore");
    let id = env.id("c");
    env.args(&["sleep", "100"]);

    // No checkpoint there at all.
    let missing = env.dir.path().join("no-such-image");
    let err = restore_fails(&env, &criu, &id, &missing, &[]);
    assert!(err.contains("no-such-image"), "{err}");
    env.assert_gone(&id);

    // A checkpoint CRIU cannot read: CRIU fails with the state and cgroup made.
    let image = env.dir.path().join("image");
    let _out = start_counter(&env, &id, 2);
    checkpoint_ok(&env, &criu, &id, &image, &[]);
    assert!(
        std::fs::metadata(&image).unwrap().permissions().mode() & 0o077 == 0,
        "the images (the container's memory) are readable by others"
    );
    // An id in use: refused before anything is made, the other container untouched.
    let other = env.id("other");
    let _other_out = start_counter(&env, &other, 2);
    let err = restore_fails(&env, &criu, &other, &image, &[]);
    assert!(err.contains("already exists"), "{err}");
    assert_running(&env, &other);
    let del = runr(&env, &criu, &["delete", "--force", &other]);
    assert_eq!(del.code, 0, "delete: {}", del.stderr);
    // A config joining a user namespace by path: refused before anything is made.
    let holder = Background(
        Command::new("unshare")
            .args(["--user", "sleep", "100"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let userns = format!("/proc/{}/ns/user", holder.0.id());
    for _ in 0..200 {
        let theirs = std::fs::read_link(&userns).ok();
        if theirs.is_some() && theirs != std::fs::read_link("/proc/self/ns/user").ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let saved = env.config();
    env.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
        ns.push(serde_json::json!({"type": "user", "path": userns}));
    });
    let err = restore_fails(&env, &criu, &id, &image, &[]);
    drop(holder);
    env.edit(|c| *c = saved);
    assert!(err.contains("join a user namespace by path"), "{err}");
    env.assert_gone(&id);
    // --lazy-pages without a `criu lazy-pages` daemon: refused before anything is made.
    let err = restore_fails(&env, &criu, &id, &image, &["--lazy-pages"]);
    assert!(err.contains("no lazy-pages daemon"), "{err}");
    env.assert_gone(&id);
    // A pids limit with no room for CRIU's processes, which work in the container's cgroup
    // (as runc's): the error says so, and nothing is left.
    let saved = env.config();
    env.edit(|c| c["linux"]["resources"]["pids"] = serde_json::json!({"limit": 3}));
    let err = restore_fails(&env, &criu, &id, &image, &[]);
    env.edit(|c| *c = saved);
    assert!(err.contains("pids limit refused a fork"), "{err}");
    env.assert_gone(&id);
    std::fs::write(image.join("pstree.img"), b"not an image").unwrap();
    let err = restore_fails(&env, &criu, &id, &image, &[]);
    assert!(err.contains("criu RESTORE failed"), "{err}");
    env.assert_gone(&id);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(env.root.to_str().unwrap()),
        "a mount under the state root is left: {mounts}"
    );
}

/// How a test ends a runr command that runs CRIU.
#[derive(Debug, Clone, Copy)]
enum Interrupt {
    /// SIGKILL to runr alone.
    KillRunr,
    /// SIGKILL to its process group: CRIU and what CRIU forked too, as a supervisor would.
    KillGroup,
    /// SIGINT to its process group, as a terminal's ^C.
    CtrlC,
}

/// Spawn `c` in a process group of its own and `how` it after `delay`. Whether the command
/// succeeded anyway (it had finished).
fn interrupt(mut c: Command, delay: std::time::Duration, how: Interrupt) -> bool {
    use std::os::unix::process::CommandExt;
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = c.spawn().unwrap();
    std::thread::sleep(delay);
    let pid = child.id() as i32;
    let (target, sig) = match how {
        Interrupt::KillRunr => (pid, libc::SIGKILL),
        Interrupt::KillGroup => (-pid, libc::SIGKILL),
        Interrupt::CtrlC => (-pid, libc::SIGINT),
    };
    // SAFETY: a signal to the child (and its own process group) this test started.
    unsafe { libc::kill(target, sig) };
    child.wait().unwrap().success()
}

/// No mount left under `dir` (in this mount namespace).
fn assert_no_mount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = dir.to_str().unwrap();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(dir)).collect();
    assert!(left.is_empty(), "mounts left under {dir}: {left:#?}");
}

/// A restore SIGKILLed at any moment, alone or with CRIU, leaves what `delete` removes
/// entirely: CRIU's processes and the tree it was restoring, its cgroup mounts, the rootfs
/// bind, the cgroup and the state; and the id can be restored again.
#[test]
fn killed_restores_leave_nothing_after_delete() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-killed");
    let id = env.id("c");
    // A read-only root (as `runr spec` writes it) without a /tmp: CRIU needs one to move
    // into the root, and the restore makes it.
    assert_eq!(env.config()["root"]["readonly"], true);
    let _ = std::fs::remove_dir(env.rootfs.join("tmp"));
    let mut out = start_counter(&env, &id, 3);
    let image = env.dir.path().join("image");
    checkpoint_ok(&env, &criu, &id, &image, &[]);
    let last = last_count(&std::io::read_to_string(&mut out).unwrap());
    // How long a whole restore takes here, to kill the others all through theirs.
    let started = std::time::Instant::now();
    drop(restore(&env, &criu, &id, &image));
    let whole = started.elapsed();
    assert!(env.rootfs.join("tmp").is_dir(), "no /tmp made for CRIU");
    delete_ok(&env, &id);
    let ways = [Interrupt::KillGroup, Interrupt::KillRunr, Interrupt::CtrlC];
    for step in 1..=9u32 {
        let delay = whole * step / 10;
        let how = ways[step as usize % 3];
        let cmd = restore_cmd(&env, &criu, &id, &image, &["--detach"]);
        let finished = interrupt(cmd, delay, how);
        if matches!(how, Interrupt::CtrlC) && !finished {
            // runr outlives a ^C and undoes the restore itself.
            env.assert_gone(&id);
        }
        let del = runr(&env, &criu, &["delete", "--force", &id]);
        assert_eq!(
            del.code, 0,
            "delete after a restore ended ({how:?}) at {delay:?} (finished {finished}): {}",
            del.stderr
        );
        env.assert_gone(&id);
        assert_no_mount_under(&env.root);
        assert_no_mount_under(&image);
    }
    let mut out = restore(&env, &criu, &id, &image);
    assert_counts_on(&mut out, last);
    delete_ok(&env, &id);
}

/// A container with a terminal: dumped with its pty's slave side, restored onto a new pty
/// whose master goes to the new console socket.
#[test]
fn terminal_restores_onto_a_new_console_socket() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-tty");
    let id = env.id("c");
    env.edit(|c| c["process"]["terminal"] = true.into());
    env.args(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo n$i; sleep 0.05; done",
    ]);
    let sock = env.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut c = env.run_cmd(&id);
    c.arg("--detach").arg("--console-socket").arg(&sock);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut master = common::recv_console(&listener);
    assert!(child.wait().unwrap().success(), "runr run -d {id} failed");
    let seen = read_until(&mut master, "n3");
    assert!(seen.contains("n3"), "terminal showed {seen:?}");

    let image = env.dir.path().join("image");
    checkpoint_ok(&env, &criu, &id, &image, &[]);
    drop(master);

    let sock2 = env.dir.path().join("console2.sock");
    let listener2 = std::os::unix::net::UnixListener::bind(&sock2).unwrap();
    let sock2_flag = sock2.to_str().unwrap();
    let mut c = restore_cmd(
        &env,
        &criu,
        &id,
        &image,
        &["-d", "--console-socket", sock2_flag],
    );
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut master = common::recv_console(&listener2);
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "restore: {err}");
    let seen = read_until(&mut master, "\n");
    let seen = seen + &read_until(&mut master, "\n");
    let counts: Vec<u32> = seen
        .split('n')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    assert!(
        counts.first().is_some_and(|n| *n > 3),
        "the restored terminal did not count on: {seen:?}"
    );
    assert_running(&env, &id);
    delete_ok(&env, &id);
}

/// A bind mount from the host and a tmpfs: the bind is found again at its source, the
/// tmpfs comes back with its contents; masked paths and /dev are as they were.
#[test]
fn mounts_come_back() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-mounts");
    let id = env.id("c");
    let host_dir = env.dir.path().join("host-data");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("from-host"), "host\n").unwrap();
    env.edit(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({
            "destination": "/data", "type": "bind",
            "source": host_dir, "options": ["rbind", "rw"]
        }));
        mounts.push(serde_json::json!({
            "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "size=1m"]
        }));
        // No cgroup namespace (as podman on a v1 host): the cgroup directories are binds
        // from the host, external to CRIU.
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "cgroup");
    });
    let _out = start_counter(&env, &id, 2);
    let w = runr(
        &env,
        &criu,
        &["exec", &id, "sh", "-c", "echo kept > /scratch/f"],
    );
    assert_eq!(w.code, 0, "exec: {}", w.stderr);
    let image = env.dir.path().join("image");
    checkpoint_ok(&env, &criu, &id, &image, &[]);
    let mut out = restore(&env, &criu, &id, &image);
    assert!(
        next_numbers(&mut out).len() >= 2,
        "the restored counter is silent"
    );
    let check = "cat /scratch/f /data/from-host; echo after > /data/from-container; \
                 test -c /proc/timer_list && echo masked; test -c /dev/null && echo devnull; \
                 grep -c ' /proc/sys ' /proc/self/mountinfo; \
                 cat $(find /sys/fs/cgroup/ -maxdepth 2 -name cgroup.procs | head -1)";
    let r = runr(&env, &criu, &["exec", &id, "sh", "-c", check]);
    assert_eq!(r.code, 0, "exec: {}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines[..5],
        ["kept", "host", "masked", "devnull", "1"],
        "{}",
        r.stdout
    );
    assert!(
        lines[5..].contains(&"1"),
        "the init is not in the cgroup shown: {}",
        r.stdout
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("from-container")).unwrap(),
        "after\n"
    );
    delete_ok(&env, &id);
}

/// An established TCP connection over loopback, inside the container's own network
/// namespace, survives checkpoint and restore with --tcp-established: the numbers the
/// client sends keep arriving at the server, which prints them.
#[test]
fn established_tcp_connection_survives() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-tcp");
    let id = env.id("c");
    env.args(&[
        "sh",
        "-c",
        "ip link set lo up; sleep 1000 | nc -l -p 5000 & sleep 0.3; \
         i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done | nc 127.0.0.1 5000",
    ]);
    // Bringing the namespace's loopback up needs CAP_NET_ADMIN.
    env.edit(|c| {
        for set in ["bounding", "effective", "permitted"] {
            let caps = c["process"]["capabilities"][set].as_array_mut().unwrap();
            caps.push("CAP_NET_ADMIN".into());
        }
    });
    let mut out = run_detached(&env, &id);
    let seen = read_until(&mut out, "\n3\n");
    assert!(seen.contains("\n3\n"), "server printed {seen:?}");

    let image = env.dir.path().join("image");
    checkpoint_ok(&env, &criu, &id, &image, &["--tcp-established"]);
    let last = last_count(&std::io::read_to_string(&mut out).unwrap());

    let mut out = restore_with(&env, &criu, &id, &image, &["--tcp-established"]);
    let after = next_numbers(&mut out);
    assert!(
        after.first().is_some_and(|n| *n > last && *n <= last + 5),
        "the connection did not carry on from {last}: {after:?}"
    );
    delete_ok(&env, &id);
}

/// Restore runs the prestart and createRuntime hooks, with the restored init's pid, once
/// CRIU has made the namespaces (where create runs them), and the checkpoint's removal of
/// the container runs poststop.
#[test]
fn hooks_run_on_restore() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-hooks");
    let id = env.id("c");
    let log = env.dir.path().join("hooks.log");
    let hook = |name: &str| {
        let script = format!(
            "cat >> {}; echo ' {name}' >> {}",
            log.display(),
            log.display()
        );
        serde_json::json!([{ "path": "/bin/sh", "args": ["sh", "-c", script] }])
    };
    env.edit(|c| {
        c["hooks"] = serde_json::json!({
            "prestart": hook("prestart"),
            "createRuntime": hook("createRuntime"),
            "poststop": hook("poststop"),
        })
    });
    let _out = start_counter(&env, &id, 2);
    let image = env.dir.path().join("image");
    checkpoint_ok(&env, &criu, &id, &image, &[]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.trim_end().ends_with("poststop"),
        "hooks at checkpoint: {text}"
    );
    std::fs::remove_file(&log).unwrap();

    let mut out = restore(&env, &criu, &id, &image);
    assert!(
        next_numbers(&mut out).len() >= 2,
        "the restored counter is silent"
    );
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let ran: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(' ').or(l.rsplit_once("} ").map(|(_, n)| n)))
        .collect();
    assert_eq!(ran, ["prestart", "createRuntime"], "{text}");
    assert!(
        text.contains(&format!("\"pid\":{pid}")),
        "hooks did not get pid {pid}: {text}"
    );
    delete_ok(&env, &id);
}

/// Without --detach, restore waits for the container, passes its exit status on, and
/// removes it; a paused container is checkpointed too.
#[test]
fn foreground_restore_of_a_paused_container() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-fg");
    let id = env.id("c");
    let _out = start_counter(&env, &id, 2);
    let r = runr(&env, &criu, &["pause", &id]);
    assert_eq!(r.code, 0, "pause: {}", r.stderr);
    let image = env.dir.path().join("image");
    checkpoint_ok(&env, &criu, &id, &image, &[]);
    env.assert_gone(&id);

    let mut c = restore_cmd(&env, &criu, &id, &image, &[]);
    c.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut out = std::fs::File::from(OwnedFd::from(child.stdout.take().unwrap()));
    assert!(
        next_numbers(&mut out).len() >= 2,
        "the restored counter is silent"
    );
    assert_running(&env, &id);
    let r = runr(&env, &criu, &["kill", &id, "KILL"]);
    assert_eq!(r.code, 0, "kill: {}", r.stderr);
    assert_eq!(common::wait_exit(&mut child), 137);
    env.assert_gone(&id);
}

/// A process of the test's own, killed (by its pid) and reaped when dropped unless it
/// exited already.
struct Background(std::process::Child);

impl Background {
    /// Its exit code, once it exits within `secs`; None if it is still running.
    fn wait_for(&mut self, secs: u64) -> Option<i32> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if let Some(s) = self.0.try_wait().unwrap() {
                return Some(s.code().unwrap_or(-1));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A TCP port on loopback that nothing listens on just now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Start `criu lazy-pages ARGS -D IMAGE` and wait for its socket in IMAGE (its work
/// directory, as restore's).
fn lazy_pages_daemon(criu: &Path, image: &Path, args: &[&str]) -> Background {
    let daemon = Background(
        Command::new(criu)
            .arg("lazy-pages")
            .args(args)
            .args(["-v4", "-o", "lazy-pages.log", "-D"])
            .arg(image)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sock = image.join("lazy-pages.socket");
    for _ in 0..500 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        sock.exists(),
        "criu lazy-pages made no socket in {}",
        image.display()
    );
    daemon
}

/// Its stderr, once it has exited.
fn stderr_of(p: &mut Background) -> String {
    let mut err = String::new();
    if let Some(e) = p.0.stderr.as_mut() {
        let _ = std::io::Read::read_to_string(e, &mut err);
    }
    err
}

/// `restore --lazy-pages` of `image` (a `criu lazy-pages` daemon serving it) as `new`: the
/// count goes on from `last`, the daemon hands over every page and exits, and the container
/// runs commands; then it is deleted.
fn lazy_restore(env: &Env, criu: &Path, new: &str, image: &Path, last: u32, daemon: Background) {
    let mut daemon = daemon;
    let t = std::time::Instant::now();
    let mut restored = restore_with(env, criu, new, image, &["--lazy-pages"]);
    eprintln!("restore --lazy-pages took {:?}", t.elapsed());
    assert_counts_on(&mut restored, last);
    assert_running(env, new);
    assert_eq!(
        daemon.wait_for(20),
        Some(0),
        "criu lazy-pages did not finish (log: {})",
        image.join("lazy-pages.log").display()
    );
    // All its memory is there: it keeps counting, and runs a command.
    assert!(
        next_numbers(&mut restored).len() >= 2,
        "the counter stopped"
    );
    let exec = runr(env, criu, &["exec", new, "echo", "inside"]);
    assert_eq!(exec.stdout.trim(), "inside", "{}", exec.stderr);
    delete_ok(env, new);
}

/// Lazy migration as runc users do it: `checkpoint --lazy-pages --page-server --status-fd`
/// in the background, the NUL byte on the status pipe, `criu lazy-pages --page-server`
/// started against its port, `restore --lazy-pages` (under a new id: the checkpointed
/// container is there until its pages are fetched); the count goes on, and the checkpoint
/// exits 0 with the old container gone once the daemon has pulled every page.
///
/// Where CRIU's page server cannot size its pipe (no CAP_SYS_RESOURCE and a small
/// fs.pipe-max-size, as in this sandbox) the lazy checkpoint is refused before anything is
/// frozen and without a byte on the status pipe; the restoring side is then tested with a
/// daemon serving a plain checkpoint's images.
#[test]
fn lazy_migration_counts_on() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-lazy");
    let old = env.id("old");
    let new = env.id("new");
    let mut out = start_counter(&env, &old, 3);
    let image = env.dir.path().join("image");
    let port = free_port().to_string();

    let (status_r, status_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut c = env.cmd();
    c.env("RUNR_CRIU", &criu)
        .args(["checkpoint", "--lazy-pages", "--page-server"])
        .arg(format!("0.0.0.0:{port}"))
        .args(["--status-fd", "3", "--image-path"])
        .arg(&image)
        .arg(&old)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let w = std::os::fd::AsRawFd::as_raw_fd(&status_w);
    // SAFETY: between fork and exec only dup2, async-signal-safe, on a descriptor the
    // parent keeps open until the spawn returns.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            if libc::dup2(w, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut dump = Background(c.spawn().unwrap());
    drop(status_w);
    let mut status = std::fs::File::from(status_r);
    let byte = read_until(&mut status, "\0");
    if byte != "\0" {
        let code = dump.wait_for(10);
        let err = stderr_of(&mut dump);
        assert!(
            code.is_some_and(|c| c != 0) && err.contains("fs.pipe-max-size"),
            "no NUL byte on --status-fd ({byte:?}); checkpoint exited {code:?}: {err}"
        );
        eprintln!("lazy checkpoint refused here: {err}");
        assert_running(&env, &old);
        assert!(next_numbers(&mut out).len() >= 2, "the counter stopped");
        checkpoint_ok(&env, &criu, &old, &image, &[]);
        let last = last_count(&std::io::read_to_string(&mut out).unwrap());
        let daemon = lazy_pages_daemon(&criu, &image, &[]);
        lazy_restore(&env, &criu, &new, &image, last, daemon);
        return;
    }
    assert_eq!(
        dump.wait_for(0),
        None,
        "checkpoint exited before the pages went"
    );
    // The old container is frozen: all it printed is in the pipe.
    let last = last_count(&drain(&mut out));
    let daemon = lazy_pages_daemon(
        &criu,
        &image,
        &["--page-server", "--address", "127.0.0.1", "--port", &port],
    );
    lazy_restore(&env, &criu, &new, &image, last, daemon);
    let code = dump.wait_for(30);
    assert_eq!(code, Some(0), "lazy checkpoint: {}", stderr_of(&mut dump));
    env.assert_gone(&old);
}

/// What `f` holds now (reading until nothing comes for 200 ms).
fn drain(f: &mut std::fs::File) -> String {
    use std::io::Read;
    let mut out = String::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(f),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 200) } <= 0 {
            return out;
        }
        match f.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
}

/// A container in a user namespace of its own (ids 0-65535 mapped to 100000-165535, its
/// rootfs owned by the mapped root): checkpointed and restored, it counts on with the same
/// mapping.
#[test]
fn user_namespace_container_counts_on() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-userns");
    let id = env.id("c");
    env.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    let status = Command::new("chown")
        .args(["-R", "-h", "100000:100000"])
        .arg(&env.rootfs)
        .status()
        .unwrap();
    assert!(status.success(), "chown the rootfs");
    let mut out = start_counter(&env, &id, 3);
    let image = env.dir.path().join("image");
    checkpoint_ok(&env, &criu, &id, &image, &[]);
    env.assert_gone(&id);
    let last = last_count(&std::io::read_to_string(&mut out).unwrap());
    // A restore killed while CRIU works: `delete` takes its ACL back too (checked below).
    let delay = std::time::Duration::from_millis(80);
    let cmd = restore_cmd(&env, &criu, &id, &image, &["--detach"]);
    interrupt(cmd, delay, Interrupt::KillGroup);
    delete_ok(&env, &id);
    env.assert_gone(&id);
    let mut out = restore(&env, &criu, &id, &image);
    assert_counts_on(&mut out, last);
    // The restore let the mapped root search the images for the time CRIU ran, and no more.
    let mode = std::fs::metadata(&image).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "the image directory's mode after restore"
    );
    let path = std::ffi::CString::new(image.to_str().unwrap()).unwrap();
    // SAFETY: two NUL-terminated strings, and a null buffer of size 0 (asking the size).
    let acl = unsafe {
        libc::getxattr(
            path.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    assert!(acl < 0, "an ACL is left on the image directory");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let map: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(
        map,
        ["0", "100000", "65536"],
        "uid_map of the restored init"
    );
    let exec = runr(&env, &criu, &["exec", &id, "id", "-u"]);
    assert_eq!(exec.stdout.trim(), "0", "{}", exec.stderr);
    delete_ok(&env, &id);
}

/// A network namespace made for a test (`unshare --net=FILE`), bound on a file of the
/// test's directory; unmounted when dropped.
struct NetnsFile(PathBuf);

impl NetnsFile {
    fn new(path: PathBuf) -> NetnsFile {
        std::fs::File::create(&path).unwrap();
        let ns = NetnsFile(path);
        let status = Command::new("unshare")
            .arg(format!("--net={}", ns.0.display()))
            .arg("true")
            .status()
            .unwrap();
        assert!(status.success(), "unshare --net={}", ns.0.display());
        ns
    }

    fn inode(&self) -> u64 {
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&self.0).unwrap())
    }
}

impl Drop for NetnsFile {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A container that joins a network namespace by path: CRIU leaves the namespace alone at
/// the dump (external) and the restored container is in it again, counting on.
#[test]
fn joined_network_namespace_is_joined_again() {
    let Some(criu) = criu() else { return };
    let env = Env::new("cr-netns");
    let id = env.id("c");
    let ns = NetnsFile::new(env.dir.path().join("netns"));
    env.edit(|c| {
        for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if n["type"] == "network" {
                n["path"] = ns.0.to_str().unwrap().into();
            }
        }
    });
    let netns_of = |pid: i64| {
        std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap(),
        )
    };
    let mut out = start_counter(&env, &id, 3);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(
        netns_of(pid),
        ns.inode(),
        "the container is not in the namespace"
    );
    let image = env.dir.path().join("image");
    checkpoint_ok(&env, &criu, &id, &image, &[]);
    env.assert_gone(&id);
    // The namespace's image is only its external key: no links, addresses or rules.
    for e in std::fs::read_dir(&image).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("netns-") {
            let text = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
            assert!(text.contains("runr-joined-netns"), "{name} has no key");
        }
        assert!(
            !name.starts_with("netdev-"),
            "the joined namespace was dumped: {name}"
        );
    }
    let last = last_count(&std::io::read_to_string(&mut out).unwrap());
    let mut out = restore(&env, &criu, &id, &image);
    assert_counts_on(&mut out, last);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(netns_of(pid), ns.inode(), "restored outside the namespace");
    delete_ok(&env, &id);
}
