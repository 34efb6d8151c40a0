//! Test harness: a busybox bundle in a temporary directory, a private state root, and the
//! `runr` binary run against them. Every container a test names is force-deleted when the
//! harness is dropped, so a failing test leaves nothing behind either.
#![allow(dead_code)]

use serde_json::Value;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
pub use testkit::make_rootfs;

pub const RUNR: &str = env!("CARGO_BIN_EXE_runr");

pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The runr binary the commands run (the built one unless a test swaps in a copy).
    pub binary: PathBuf,
    name: String,
    ids: RefCell<Vec<String>>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Run `cmd` to completion with stdout and stderr in files, not pipes: a detached container
/// inherits them, and a pipe would keep us waiting for it. A command that takes more than
/// a minute is killed and the test fails.
pub fn capture(mut cmd: Command) -> Run {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir();
    let out_path = dir.join(format!("runr-test-out-{}-{n}", std::process::id()));
    let err_path = dir.join(format!("runr-test-err-{}-{n}", std::process::id()));
    cmd.stdout(std::fs::File::create(&out_path).unwrap());
    cmd.stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command timed out: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |p: &Path| {
        let s = std::fs::read_to_string(p).unwrap_or_default();
        let _ = std::fs::remove_file(p);
        s
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

impl Env {
    /// A new bundle with runr's default config, no terminal, running `args`.
    pub fn new(name: &str) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("runr-test-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("state");
        let bundle = dir.path().join("bundle");
        let rootfs = bundle.join("rootfs");
        make_rootfs(&rootfs);
        let out = Command::new(RUNR)
            .args(["spec", "--bundle"])
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(out.status.success(), "runr spec: {out:?}");
        let env = Env {
            dir,
            root,
            bundle,
            rootfs,
            binary: RUNR.into(),
            name: format!("{}-{}", name, std::process::id()),
            ids: RefCell::new(Vec::new()),
        };
        env.edit(|c| c["process"]["terminal"] = false.into());
        env
    }

    pub fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.bundle.join("config.json")).unwrap()).unwrap()
    }

    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut c = self.config();
        f(&mut c);
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&c).unwrap(),
        )
        .unwrap();
    }

    pub fn args(&self, args: &[&str]) {
        self.edit(|c| c["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect());
    }

    /// A container id unique to this test, deleted when the Env is dropped.
    pub fn id(&self, suffix: &str) -> String {
        let id = format!("{}-{}", self.name, suffix);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root);
        c.stdin(Stdio::null());
        c
    }

    /// `runr run` of the bundle as container `id`, to spawn with the stdio a test needs.
    pub fn run_cmd(&self, id: &str) -> Command {
        let mut c = self.cmd();
        c.args(["run", "--bundle"]).arg(&self.bundle).arg(id);
        c
    }

    pub fn runr(&self, args: &[&str]) -> Run {
        let mut c = self.cmd();
        c.args(args);
        capture(c)
    }

    /// `runr run` of `args` in the foreground; stdout, stderr and exit code.
    pub fn run(&self, args: &[&str]) -> Run {
        self.args(args);
        let id = self.id("run");
        let mut c = self.cmd();
        c.arg("run").arg("--bundle").arg(&self.bundle).arg(&id);
        capture(c)
    }

    /// Like `run`, but the command must succeed; returns its stdout.
    pub fn sh(&self, script: &str) -> String {
        let r = self.run(&["sh", "-c", script]);
        assert_eq!(
            r.code, 0,
            "container script failed: {script}\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    pub fn create(&self, id: &str) -> Run {
        let mut c = self.cmd();
        c.args(["create", "--bundle"]).arg(&self.bundle).arg(id);
        capture(c)
    }

    pub fn state(&self, id: &str) -> Value {
        let r = self.runr(&["state", id]);
        assert_eq!(r.code, 0, "state {id}: {}", r.stderr);
        serde_json::from_str(&r.stdout).unwrap()
    }

    /// Nothing of container `id` remains: no state directory, no cgroup.
    pub fn assert_gone(&self, id: &str) {
        assert!(
            !self.root.join(id).exists(),
            "state dir of {id} left behind"
        );
        for dir in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let own = own_cgroup(&dir.file_name().to_string_lossy());
            if let Some(own) = own {
                let p = dir.path().join(own.trim_start_matches('/')).join(id);
                assert!(!p.exists(), "cgroup {} left behind", p.display());
            }
        }
    }
}

/// This process's cgroup in the hierarchy mounted at /sys/fs/cgroup/<name>.
pub fn own_cgroup(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let key = if name == "systemd" {
        "name=systemd".to_string()
    } else if name == "unified" {
        String::new()
    } else {
        name.to_string()
    };
    text.lines().find_map(|l| {
        let mut it = l.splitn(3, ':');
        let _ = it.next()?;
        let ctl = it.next()?;
        let path = it.next()?;
        (ctl == key || ctl.split(',').any(|c| c == key)).then(|| path.to_string())
    })
}

/// The container's cgroup directory in `controller`'s hierarchy on the host.
pub fn cgroup_dir(controller: &str, id: &str) -> PathBuf {
    let own = own_cgroup(controller).expect("controller mounted");
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(own.trim_start_matches('/'))
        .join(id)
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            if self.root.join(id).exists() {
                let mut c = self.cmd();
                c.args(["delete", "--force", id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                let _ = c.status();
            }
        }
    }
}

/// Read from `f` until `want` shows up (or 10s pass); returns all that was read.
pub fn read_until(f: &mut std::fs::File, want: &str) -> String {
    use std::io::Read;
    let mut out = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !out.contains(want) && Instant::now() < deadline {
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(f),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 100) } <= 0 {
            continue;
        }
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    out
}

/// Accept one connection on a console socket and take the pty master sent over it, checking
/// the message is what runc sends with it.
pub fn recv_console(listener: &std::os::unix::net::UnixListener) -> std::fs::File {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 64];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let mut master = None;
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the descriptor was just received and is ours.
            master = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    let n = msg.bytes;
    assert_eq!(&buf[..n], b"/dev/ptmx", "console socket message");
    std::fs::File::from(master.expect("no descriptor received"))
}

/// Wait up to 10s for `child` to exit; its exit code.
pub fn wait_exit(child: &mut std::process::Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("runr did not exit within 10s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A test helper from tests/helpers/NAME.c, built static (so it runs in the busybox rootfs)
/// once per test binary run, and copied into `rootfs` as /NAME.
pub fn install_helper(name: &str, rootfs: &Path) {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("helper-{name}"));
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers")
        .join(format!("{name}.c"));
    let fresh = |o: &Path| {
        let (Ok(o), Ok(s)) = (std::fs::metadata(o), std::fs::metadata(&src)) else {
            return false;
        };
        o.modified().unwrap() >= s.modified().unwrap()
    };
    if !fresh(&out) {
        // Tests run in parallel: build to a private name, then rename into place.
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let status = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("run cc (scripts/deps.sh installs it)");
        assert!(status.success(), "building helper {name} failed");
        std::fs::rename(&tmp, &out).unwrap();
    }
    std::fs::copy(&out, rootfs.join(name)).unwrap();
}

/// Spawn `cmd` (a foreground run or exec of a shell that prints "ready" and traps TERM),
/// send runr SIGTERM once the shell is ready, and return what the shell printed after
/// "ready" and runr's exit code.
pub fn sigterm_is_forwarded(mut cmd: Command) -> (String, i32) {
    use std::io::Read;
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    stdout.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    // SAFETY: signalling the runr process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    (rest, status.code().unwrap_or(-1))
}
