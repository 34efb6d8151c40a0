//! Test helpers: a runr-agent binary of the test's own on a unix socket in a temporary
//! directory (state there too), a busybox rootfs, specs as Kata's shim sends them, clients,
//! and the checks that nothing is left. Dropping an [`Agent`] stops it (SIGTERM: it removes
//! its containers) and force-deletes whatever is still under its state root, so a failing
//! test leaves nothing either.
#![allow(dead_code)]

use agent::protocols::{agent as pb, agent_ttrpc::AgentServiceClient, oci};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
pub use testkit::make_rootfs;
use ttrpc::r#async::Client;

/// A ttrpc context with a deadline long enough for any call of these tests.
pub fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(Duration::from_secs(30).as_nanos() as i64)
}

/// The status of a failed call.
pub fn status<T: std::fmt::Debug>(r: ttrpc::Result<T>) -> ttrpc::Status {
    match r {
        Err(ttrpc::Error::RpcStatus(s)) => s,
        other => panic!("not a status: {other:?}"),
    }
}

pub struct Agent {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub address: String,
    pub client: Client,
    pub rootfs: PathBuf,
}

impl Agent {
    /// A new agent of this test's own.
    pub async fn start() -> Agent {
        Agent::start_with(&[], "warn").await
    }

    /// A new agent logging at `log_level`, run by the command `prefix` if not empty (e.g.
    /// under unshare).
    pub async fn start_with(prefix: &[&str], log_level: &str) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("runr-agent-test-")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        make_rootfs(&rootfs);
        let sock = dir.path().join("agent.sock");
        let address = format!("unix://{}", sock.display());
        let mut child = spawn(dir.path(), prefix, log_level).await;
        let client = connect_or_kill(&address, &mut child).await;
        Agent {
            child: Some(child),
            dir,
            address,
            client,
            rootfs,
        }
    }

    /// Kill the agent with SIGKILL, as a crash would (its containers stay), and start a new
    /// one on the same state dir and socket.
    pub async fn crash_and_restart(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.child = Some(spawn(self.dir.path(), &[], "warn").await);
        self.client = connect_or_kill(&self.address, self.child.as_mut().unwrap()).await;
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn agent(&self) -> AgentServiceClient {
        AgentServiceClient::new(self.client.clone())
    }

    /// A second connection of its own.
    pub async fn connect(&self) -> AgentServiceClient {
        AgentServiceClient::new(Client::connect(&self.address).await.unwrap())
    }

    pub fn state_root(&self) -> PathBuf {
        self.dir.path().join("state/containers")
    }

    pub fn bundles(&self) -> PathBuf {
        self.dir.path().join("state/bundles")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// A spec running `args` in busybox, as Kata's shim sends it (its own PID, IPC, UTS
    /// and mount namespaces; the rest the agent's), edited by `edit`.
    pub fn spec(&self, args: &[&str], edit: impl FnOnce(&mut oci::Spec)) -> oci::Spec {
        let mut s = oci::Spec {
            Version: "1.1.0".into(),
            Process: Some(process(args)).into(),
            Root: Some(oci::Root {
                Path: self.rootfs.display().to_string(),
                ..Default::default()
            })
            .into(),
            Hostname: "runr".into(),
            Mounts: vec![
                mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
                mount(
                    "/dev",
                    "tmpfs",
                    "tmpfs",
                    &["nosuid", "strictatime", "mode=755"],
                ),
                mount(
                    "/dev/pts",
                    "devpts",
                    "devpts",
                    &[
                        "nosuid",
                        "noexec",
                        "newinstance",
                        "ptmxmode=0666",
                        "mode=0620",
                    ],
                ),
                mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev"]),
                mount(
                    "/sys",
                    "sysfs",
                    "sysfs",
                    &["nosuid", "noexec", "nodev", "ro"],
                ),
            ],
            Linux: Some(oci::Linux {
                Namespaces: ["pid", "ipc", "uts", "mount"]
                    .iter()
                    .map(|t| oci::LinuxNamespace {
                        Type: t.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                Resources: Some(oci::LinuxResources {
                    Devices: vec![oci::LinuxDeviceCgroup {
                        Allow: false,
                        Access: "rwm".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .into(),
                MaskedPaths: strings(&["/proc/kcore", "/sys/firmware"]),
                ReadonlyPaths: strings(&["/proc/sys", "/proc/sysrq-trigger"]),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        edit(&mut s);
        s
    }

    /// A CreateContainer request for `id`, its init named `exec_id`. Its cgroup is named
    /// after this agent's temporary directory too, so that tests (and other programs'
    /// tests) running at once never share a cgroup.
    pub fn request(
        &self,
        id: &str,
        exec_id: &str,
        mut spec: oci::Spec,
    ) -> pb::CreateContainerRequest {
        let tag = self.dir.path().file_name().unwrap().to_string_lossy();
        if let Some(linux) = spec.Linux.as_mut() {
            if linux.CgroupsPath.is_empty() {
                linux.CgroupsPath = format!("/{tag}-{id}");
            }
        }
        pb::CreateContainerRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            OCI: Some(spec).into(),
            ..Default::default()
        }
    }

    /// CreateContainer `id` from `spec` (the init's exec id is the container id).
    pub async fn create(&self, id: &str, spec: oci::Spec) -> ttrpc::Result<()> {
        let req = self.request(id, id, spec);
        self.agent().create_container(ctx(), &req).await.map(|_| ())
    }

    /// Create and start `id` running `args`.
    pub async fn run(&self, id: &str, args: &[&str]) {
        self.create(id, self.spec(args, |_| {}))
            .await
            .expect("create");
        self.start_container(id).await;
    }

    pub async fn start_container(&self, id: &str) {
        let req = pb::StartContainerRequest {
            container_id: id.into(),
            ..Default::default()
        };
        self.agent()
            .start_container(ctx(), &req)
            .await
            .expect("start");
    }

    pub async fn wait(&self, id: &str, exec_id: &str) -> ttrpc::Result<i32> {
        let req = pb::WaitProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        };
        self.agent()
            .wait_process(ctx(), &req)
            .await
            .map(|r| r.status)
    }

    pub async fn remove(&self, id: &str) -> ttrpc::Result<()> {
        let req = pb::RemoveContainerRequest {
            container_id: id.into(),
            timeout: 10,
            ..Default::default()
        };
        self.agent().remove_container(ctx(), &req).await.map(|_| ())
    }

    pub async fn signal(&self, id: &str, exec_id: &str, signal: i32) -> ttrpc::Result<()> {
        let req = pb::SignalProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            signal: signal as u32,
            ..Default::default()
        };
        self.agent().signal_process(ctx(), &req).await.map(|_| ())
    }

    pub async fn exec(&self, id: &str, exec_id: &str, p: oci::Process) -> ttrpc::Result<()> {
        let req = pb::ExecProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            process: Some(p).into(),
            ..Default::default()
        };
        self.agent().exec_process(ctx(), &req).await.map(|_| ())
    }

    pub async fn write(&self, id: &str, exec_id: &str, data: &[u8]) -> ttrpc::Result<u32> {
        let req = pb::WriteStreamRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            data: data.to_vec(),
            ..Default::default()
        };
        self.agent().write_stdin(ctx(), &req).await.map(|r| r.len)
    }

    pub async fn read(&self, id: &str, exec_id: &str, stderr: bool) -> ttrpc::Result<Vec<u8>> {
        read_with(&self.agent(), id, exec_id, stderr).await
    }

    /// Everything until end-of-file.
    pub async fn read_all(&self, id: &str, exec_id: &str, stderr: bool) -> String {
        let mut out = Vec::new();
        loop {
            let chunk = self.read(id, exec_id, stderr).await.expect("read");
            if chunk.is_empty() {
                return String::from_utf8_lossy(&out).into_owned();
            }
            out.extend(chunk);
        }
    }

    /// Stdout until `want` shows up; all that was read.
    pub async fn read_until(&self, id: &str, exec_id: &str, want: &str) -> String {
        let mut out = String::new();
        while !out.contains(want) {
            let chunk = self.read(id, exec_id, false).await.expect("read");
            assert!(!chunk.is_empty(), "end-of-file before {want:?} in {out:?}");
            out.push_str(&String::from_utf8_lossy(&chunk));
        }
        out
    }

    /// The container's cgroup directories, from its state.
    pub fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        let c = container::Container::load_unlocked(&self.state_root(), id).unwrap();
        c.saved()
            .cgroup_paths
            .iter()
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// The container's cgroup directory in `controller`'s hierarchy (or the v2 one).
    pub fn cgroup_dir(&self, id: &str, controller: &str) -> PathBuf {
        let c = container::Container::load_unlocked(&self.state_root(), id).unwrap();
        let paths = &c.saved().cgroup_paths;
        paths
            .iter()
            .find(|(name, _)| name.split(',').any(|n| n == controller))
            .or_else(|| paths.iter().find(|(name, _)| name.is_empty()))
            .map(|(_, dir)| dir.clone())
            .unwrap_or_else(|| panic!("container {id} has no {controller} cgroup"))
    }

    /// The agent's children but the spawner's helper.
    pub fn children(&self) -> Vec<i32> {
        children_of(self.pid())
            .into_iter()
            .filter(|pid| comm(*pid) != "runr-spawner")
            .collect()
    }

    /// Nothing left: no container state, no bundle, no child process of the agent.
    pub fn assert_nothing_left(&self) {
        let ids = container::state::list_ids(&self.state_root()).unwrap_or_default();
        assert!(ids.is_empty(), "containers left: {ids:?}");
        let bundles: Vec<_> = std::fs::read_dir(self.bundles())
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(bundles.is_empty(), "bundles left: {bundles:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let children = self.children();
            if children.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "children left: {children:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the process this test started to end by itself (after a signal sent
    /// elsewhere); its status and the agent's log.
    pub fn wait_for_exit(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the agent did not stop");
            std::thread::sleep(Duration::from_millis(10));
        };
        (status, self.log())
    }

    /// Stop it with SIGTERM; its exit status must be success.
    pub fn stop(mut self) -> String {
        let child = self.child.take().unwrap();
        let status = terminate(child);
        let log = self.log();
        assert!(status.success(), "runr-agent ended with {status}: {log}");
        log
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
        let root = self.state_root();
        for id in container::state::list_ids(&root).unwrap_or_default() {
            if let Err(e) = container::Container::load(&root, &id).and_then(|c| c.delete(true)) {
                eprintln!("cleanup: delete {id}: {e}");
            }
        }
    }
}

/// Start runr-agent (by the command `prefix` if not empty) on `dir`'s socket and state dir;
/// once it listens.
/// A connection to the agent `child` just spawned at `address`. Its socket file exists from
/// bind on, a moment before it listens: refused until then. If it never answers, the agent
/// is killed before the test fails (nothing else would end it).
async fn connect_or_kill(address: &str, child: &mut Child) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(address).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline && format!("{e:?}").contains("refused") => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("connect to the agent at {address}: {e:?}");
            }
        }
    }
}

async fn spawn(dir: &Path, prefix: &[&str], log_level: &str) -> Child {
    let sock = dir.join("agent.sock");
    let _ = std::fs::remove_file(&sock);
    let address = format!("unix://{}", sock.display());
    let agent = env!("CARGO_BIN_EXE_runr-agent");
    let mut cmd = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(agent);
            c
        }
        None => Command::new(agent),
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .unwrap();
    cmd.env_remove("KATA_AGENT_SERVER_ADDR")
        .args(["--server-address", &address, "--log-level", log_level])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stderr(log);
    let child = cmd.spawn().expect("spawn runr-agent");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "no socket at {}", sock.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child
}

/// SIGTERM to an agent this test started, and its exit status (SIGKILL after 20 s).
fn terminate(mut child: Child) -> std::process::ExitStatus {
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            eprintln!("runr-agent did not stop on SIGTERM: killed");
            let _ = child.kill();
            return child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub async fn read_with(
    a: &AgentServiceClient,
    id: &str,
    exec_id: &str,
    stderr: bool,
) -> ttrpc::Result<Vec<u8>> {
    let req = pb::ReadStreamRequest {
        container_id: id.into(),
        exec_id: exec_id.into(),
        len: 4096,
        ..Default::default()
    };
    let r = if stderr {
        a.read_stderr(ctx(), &req).await
    } else {
        a.read_stdout(ctx(), &req).await
    };
    r.map(|r| r.data)
}

pub fn strings(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> oci::Mount {
    oci::Mount {
        destination: dest.into(),
        type_: typ.into(),
        source: source.into(),
        options: strings(options),
        ..Default::default()
    }
}

/// A process running `args` as root, with the capabilities of a default container.
pub fn process(args: &[&str]) -> oci::Process {
    let caps = strings(&[
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_CHOWN",
        "CAP_SETUID",
        "CAP_SETGID",
    ]);
    oci::Process {
        Terminal: false,
        User: Some(oci::User::default()).into(),
        Args: strings(args),
        Env: strings(&["PATH=/bin", "TERM=xterm"]),
        Cwd: "/".into(),
        Capabilities: Some(oci::LinuxCapabilities {
            Bounding: caps.clone(),
            Effective: caps.clone(),
            Permitted: caps,
            ..Default::default()
        })
        .into(),
        NoNewPrivileges: true,
        ..Default::default()
    }
}

pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The children of `pid`, from every thread's list.
pub fn children_of(pid: i32) -> Vec<i32> {
    testkit::children_of(&pid.to_string())
}
