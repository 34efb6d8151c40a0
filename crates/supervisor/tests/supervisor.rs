//! The supervisor in a multi-threaded tokio program, with real busybox containers: piped
//! and terminal stdio, exec'd processes, kept exit statuses, signals, events, pause and
//! resume, update, OOM, errors, and many containers at once. After every test nothing is
//! left: no container in the state root, no child of the program.
//! No test harness: the spawner must start while the program is single-threaded.

mod common;

use common::Env;
use oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder, Process, Spec};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use supervisor::{Error, Event, Output, Stdio, Supervisor};
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;

/// What every test gets: a supervisor of its own over the shared state root.
struct T {
    sup: Supervisor,
    spawner: Arc<container::Spawner>,
    env: Arc<Env>,
}

impl T {
    fn bundle(&self, name: &str, args: &[&str]) -> PathBuf {
        self.env.bundle(name, args, |_| {})
    }

    fn terminal_bundle(&self, name: &str, args: &[&str]) -> PathBuf {
        self.env.bundle(name, args, |s| {
            s.process_mut().as_mut().unwrap().set_terminal(Some(true));
        })
    }

    /// The container's own process with `args` instead, for an exec.
    fn process(&self, args: &[&str], terminal: bool) -> Process {
        let mut p = Spec::default().process().clone().unwrap();
        p.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
        p.set_terminal(Some(terminal));
        p
    }

    async fn run(&self, id: &str, bundle: &std::path::Path, stdio: Stdio) -> i32 {
        self.sup.create(id, bundle, stdio).await.expect("create");
        self.sup.start(id).await.expect("start")
    }

    /// Read `which` of a process until end-of-file, through read_output.
    async fn read_all(&self, id: &str, exec_id: &str, which: Output) -> String {
        let mut out = Vec::new();
        loop {
            let chunk = self
                .sup
                .read_output(id, exec_id, which, 4096)
                .await
                .expect("read output");
            if chunk.is_empty() {
                return String::from_utf8_lossy(&out).into_owned();
            }
            out.extend(chunk);
        }
    }

    /// Read the process's output until `want` shows up; all that was read.
    async fn read_until(&self, id: &str, exec_id: &str, want: &str) -> String {
        let mut out = String::new();
        while !out.contains(want) {
            let chunk = self
                .sup
                .read_output(id, exec_id, Output::Stdout, 4096)
                .await
                .unwrap();
            assert!(!chunk.is_empty(), "end-of-file before {want:?} in {out:?}");
            out.push_str(&String::from_utf8_lossy(&chunk));
        }
        out
    }
}

/// The events of container `id` from `rx` until (and with) its Deleted.
async fn events_until_deleted(rx: &mut broadcast::Receiver<Event>, id: &str) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let e = rx.recv().await.expect("an event");
        if event_id(&e) != id {
            continue;
        }
        let last = matches!(e, Event::Deleted { .. });
        out.push(e);
        if last {
            return out;
        }
    }
}

fn event_id(e: &Event) -> &str {
    match e {
        Event::Created { id, .. }
        | Event::Started { id, .. }
        | Event::ExecAdded { id, .. }
        | Event::ExecStarted { id, .. }
        | Event::Exit { id, .. }
        | Event::Oom { id }
        | Event::Paused { id }
        | Event::Resumed { id }
        | Event::Deleted { id, .. } => id,
    }
}

/// The events without their times, as text, to compare with what a test expects.
fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::Created { .. } => "created".into(),
            Event::Started { .. } => "started".into(),
            Event::ExecAdded { exec_id, .. } => format!("exec-added {exec_id}"),
            Event::ExecStarted { exec_id, .. } => format!("exec-started {exec_id}"),
            Event::Exit {
                exec_id, status, ..
            } => format!("exit {exec_id} {status}"),
            Event::Oom { .. } => "oom".into(),
            Event::Paused { .. } => "paused".into(),
            Event::Resumed { .. } => "resumed".into(),
            Event::Deleted { status, .. } => format!("deleted {status}"),
        })
        .collect()
}

/// A container's output read back through both kinds of access, its status from wait,
/// twice (kept), from delete, and its events in order.
async fn piped_output_and_kept_status(t: T) {
    let id = "piped";
    let mut events = t.sup.subscribe();
    let bundle = t.bundle(id, &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let pid = t.run(id, &bundle, Stdio::Piped).await;
    let mut stdout = t.sup.take_output(id, id, Output::Stdout).unwrap();
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "out\n");
    assert_eq!(t.read_all(id, id, Output::Stderr).await, "err\n");
    let first = t.sup.wait(id, id).await.unwrap();
    assert_eq!((first.status, first.signal), (7, None));
    let again = t.sup.wait(id, id).await.unwrap();
    assert_eq!(again, first, "the status is kept");
    let state = t.sup.state(id).await.unwrap();
    assert_eq!(state.status, container::Status::Stopped);
    assert_eq!((state.pid, state.exit), (pid, Some(first)));
    let cgroups = t.env.cgroup_dirs(id);
    assert!(cgroups.iter().all(|d| d.exists()), "{cgroups:?}");
    assert_eq!(t.sup.delete(id, false).await.unwrap(), first);
    assert!(!cgroups.iter().any(|d| d.exists()), "{cgroups:?} left");
    let events = events_until_deleted(&mut events, id).await;
    assert_eq!(
        summary(&events),
        ["created", "started", &format!("exit {id} 7"), "deleted 7"]
    );
    assert!(matches!(
        t.sup.wait(id, id).await,
        Err(Error::NotFound { .. })
    ));
}

/// An interactive shell on a pty: commands written, output read back, a resize seen by
/// `stty size`, its exit status.
async fn interactive_shell_on_a_pty(t: T) {
    let id = "pty";
    let bundle = t.terminal_bundle(id, &["sh"]);
    t.run(id, &bundle, Stdio::Terminal).await;
    t.sup.write_stdin(id, id, b"echo h''i\n").await.unwrap();
    t.read_until(id, id, "hi\r\n").await;
    t.sup.resize_pty(id, id, 31, 101).unwrap();
    t.sup.write_stdin(id, id, b"stty size\n").await.unwrap();
    t.read_until(id, id, "31 101").await;
    // What the shell writes just before it exits is still read.
    t.sup
        .write_stdin(id, id, b"echo b''ye; exit 3\n")
        .await
        .unwrap();
    let rest = t.read_all(id, id, Output::Stdout).await;
    assert!(rest.contains("\r\nbye\r\n"), "{rest:?}");
    assert_eq!(t.sup.wait(id, id).await.unwrap().status, 3);
    t.sup.delete(id, false).await.unwrap();
}

/// Exec'd processes with their own pipes beside a running init, each its own status; one
/// on a pty; `cat` sees end-of-file once its stdin is closed.
async fn execs_with_their_own_stdio(t: T) {
    let id = "execs";
    let mut events = t.sup.subscribe();
    let bundle = t.bundle(id, &["sleep", "1000"]);
    let null = || std::fs::File::open("/dev/null").unwrap().into();
    let stdio = Stdio::Fds {
        stdin: null(),
        stdout: std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap()
            .into(),
        stderr: null(),
    };
    let init = t.run(id, &bundle, stdio).await;
    let script = t.process(&["sh", "-c", "echo exec; exit 5"], false);
    let pid = t.sup.exec(id, "e1", script, Stdio::Piped).await.unwrap();
    assert_ne!(pid, init);
    assert_eq!(t.read_all(id, "e1", Output::Stdout).await, "exec\n");
    assert_eq!(t.sup.wait(id, "e1").await.unwrap().status, 5);
    let cat = t.process(&["cat"], false);
    t.sup.exec(id, "cat", cat, Stdio::Piped).await.unwrap();
    t.sup.write_stdin(id, "cat", b"hello\n").await.unwrap();
    t.sup.close_stdin(id, "cat").await.unwrap();
    assert_eq!(t.read_all(id, "cat", Output::Stdout).await, "hello\n");
    assert_eq!(t.sup.wait(id, "cat").await.unwrap().status, 0);
    assert!(matches!(
        t.sup.write_stdin(id, "cat", b"more").await,
        Err(Error::FailedPrecondition(_))
    ));
    let tty = t.process(&["sh", "-c", "tty; exit 4"], true);
    t.sup.exec(id, "tty", tty, Stdio::Terminal).await.unwrap();
    assert!(t
        .read_all(id, "tty", Output::Stdout)
        .await
        .contains("/dev/pts/"));
    assert_eq!(t.sup.wait(id, "tty").await.unwrap().status, 4);
    let cat = t.process(&["cat"], true);
    t.sup
        .exec(id, "tty-cat", cat, Stdio::Terminal)
        .await
        .unwrap();
    t.sup.write_stdin(id, "tty-cat", b"abc\n").await.unwrap();
    t.read_until(id, "tty-cat", "abc\r\nabc\r\n").await;
    t.sup.close_stdin(id, "tty-cat").await.unwrap();
    assert_eq!(t.sup.wait(id, "tty-cat").await.unwrap().status, 0);
    let mut state = t.sup.state(id).await.unwrap();
    assert_eq!(state.status, container::Status::Running);
    assert_eq!(state.exec_ids, ["cat", "e1", "tty", "tty-cat"]);
    assert_eq!(t.sup.remove_process(id, "e1").unwrap().status, 5);
    state = t.sup.state(id).await.unwrap();
    assert_eq!(state.exec_ids, ["cat", "tty", "tty-cat"]);
    assert_eq!(t.sup.delete(id, true).await.unwrap().status, 137);
    let got = summary(&events_until_deleted(&mut events, id).await);
    assert_eq!(
        got,
        [
            "created",
            "started",
            "exec-added e1",
            "exec-started e1",
            "exit e1 5",
            "exec-added cat",
            "exec-started cat",
            "exit cat 0",
            "exec-added tty",
            "exec-started tty",
            "exit tty 4",
            "exec-added tty-cat",
            "exec-started tty-cat",
            "exit tty-cat 0",
            &format!("exit {id} 137"),
            "deleted 137",
        ]
    );
}

/// SIGKILL to the init: 137 from wait and in its Exit event; a signal to a process that
/// has exited is refused.
async fn killed_by_a_signal(t: T) {
    let id = "killed";
    let mut events = t.sup.subscribe();
    let bundle = t.bundle(id, &["sleep", "1000"]);
    let pid = t.run(id, &bundle, Stdio::Piped).await;
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let sup = t.sup.clone();
            tokio::spawn(async move { sup.wait(id, id).await.unwrap() })
        })
        .collect();
    t.sup.signal(id, id, libc::SIGKILL, false).await.unwrap();
    let exit = t.sup.wait(id, id).await.unwrap();
    assert_eq!(exit.status, 137);
    assert_eq!(exit.signal, Some(libc::SIGKILL));
    for w in waiters {
        assert_eq!(w.await.unwrap(), exit, "every waiter gets the same exit");
    }
    assert!(matches!(
        t.sup.signal(id, id, libc::SIGTERM, false).await,
        Err(Error::FailedPrecondition(_))
    ));
    t.sup.delete(id, false).await.unwrap();

    let id2 = "killed-all";
    t.run(id2, &bundle, Stdio::Piped).await;
    let sleep = t.process(&["sleep", "1000"], false);
    t.sup.exec(id2, "sleep", sleep, Stdio::Piped).await.unwrap();
    t.sup.signal(id2, id2, libc::SIGTERM, true).await.unwrap();
    assert_eq!(
        t.sup.wait(id2, "sleep").await.unwrap().status,
        128 + libc::SIGTERM
    );
    t.sup.delete(id2, true).await.unwrap();

    let events = events_until_deleted(&mut events, id).await;
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Exit { pid: p, status: 137, exec_id, .. }
            if *p == pid && exec_id == id)
        ),
        "no Exit with 137 in {events:?}"
    );
}

/// The init is `cat`: fed, its stdin closed, it ends with 0.
async fn stdin_closed_gives_eof(t: T) {
    let id = "cat";
    let bundle = t.bundle(id, &["cat"]);
    t.run(id, &bundle, Stdio::Piped).await;
    t.sup.write_stdin(id, id, b"x").await.unwrap();
    t.sup.close_stdin(id, id).await.unwrap();
    assert_eq!(t.read_all(id, id, Output::Stdout).await, "x");
    assert_eq!(t.sup.wait(id, id).await.unwrap().status, 0);
    t.sup.delete(id, false).await.unwrap();
}

fn freezer_state(t: &T, id: &str) -> String {
    let dir = t.env.cgroup_dir(id, "freezer");
    std::fs::read_to_string(dir.join("freezer.state"))
        .unwrap()
        .trim()
        .to_string()
}

/// Pause and resume: their events, the freezer's state, the status; pids and stats.
async fn pause_and_resume(t: T) {
    let id = "pause";
    let mut events = t.sup.subscribe();
    let bundle = t.bundle(id, &["sleep", "1000"]);
    let pid = t.run(id, &bundle, Stdio::Piped).await;
    assert_eq!(t.sup.pids(id).await.unwrap(), [pid]);
    assert!(t.sup.stats(id).await.unwrap().pids.current >= 1);
    t.sup.pause(id).await.unwrap();
    assert_eq!(freezer_state(&t, id), "FROZEN");
    assert_eq!(
        t.sup.state(id).await.unwrap().status,
        container::Status::Paused
    );
    t.sup.resume(id).await.unwrap();
    assert_eq!(freezer_state(&t, id), "THAWED");
    assert!(matches!(
        t.sup.resume(id).await,
        Err(Error::FailedPrecondition(_))
    ));
    t.sup.pause(id).await.unwrap();
    let cgroups = t.env.cgroup_dirs(id);
    // A paused container is thawed to die.
    t.sup.delete(id, true).await.unwrap();
    assert!(!cgroups.iter().any(|d| d.exists()), "{cgroups:?} left");
    let got = summary(&events_until_deleted(&mut events, id).await);
    assert_eq!(
        got,
        [
            "created",
            "started",
            "paused",
            "resumed",
            "paused",
            &format!("exit {id} 137"),
            "deleted 137"
        ]
    );
}

/// An update's memory limit lands in the cgroup.
async fn update_sets_the_cgroup(t: T) {
    let id = "update";
    let bundle = t.bundle(id, &["sleep", "1000"]);
    t.run(id, &bundle, Stdio::Piped).await;
    let limit = 48 * 1024 * 1024;
    let resources = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(limit).build().unwrap())
        .build()
        .unwrap();
    t.sup.update(id, resources).await.unwrap();
    let file = t.env.cgroup_dir(id, "memory").join("memory.limit_in_bytes");
    let text = std::fs::read_to_string(file).unwrap();
    assert_eq!(text.trim(), limit.to_string());
    t.sup.delete(id, true).await.unwrap();
}

/// Processes over the container's memory limit: an Oom event as the kill happens (for a
/// process the supervisor does not reap, from the cgroup's OOM notification), and for one
/// it reaps, before that process's Exit.
async fn oom_kills_are_reported(t: T) {
    let id = "oom";
    let mut events = t.sup.subscribe();
    let script = "tail /dev/zero; echo survived; exec sleep 1000";
    let bundle = t.env.bundle(id, &["sh", "-c", script], |s| {
        let limit = 16 * 1024 * 1024;
        let memory = LinuxMemoryBuilder::default()
            .limit(limit)
            .swap(limit)
            .build()
            .unwrap();
        let linux = s.linux_mut().as_mut().unwrap();
        let mut resources = linux.resources().clone().unwrap_or_default();
        resources.set_memory(Some(memory));
        linux.set_resources(Some(resources));
    });
    t.run(id, &bundle, Stdio::Piped).await;
    assert_eq!(t.read_until(id, id, "survived").await, "survived\n");
    let tail = t.process(&["tail", "/dev/zero"], false);
    t.sup.exec(id, "tail", tail, Stdio::Piped).await.unwrap();
    assert_eq!(t.sup.wait(id, "tail").await.unwrap().status, 137);
    assert_eq!(t.sup.delete(id, true).await.unwrap().status, 137);
    let got = summary(&events_until_deleted(&mut events, id).await);
    assert_eq!(
        got,
        [
            "created",
            "started",
            "oom",
            "exec-added tail",
            "exec-started tail",
            "oom",
            "exit tail 137",
            &format!("exit {id} 137"),
            "deleted 137"
        ]
    );
}

/// A container deleted before it was started (its init killed), one removed behind the
/// supervisor's back, and a create that fails: nothing left of any, the id free again.
async fn deletes_and_failed_creates(t: T) {
    let id = "never-started";
    let mut events = t.sup.subscribe();
    let bundle = t.bundle(id, &["sleep", "1000"]);
    let pid = t.sup.create(id, &bundle, Stdio::Piped).await.unwrap();
    assert_eq!(
        t.sup.state(id).await.unwrap().status,
        container::Status::Created
    );
    assert_eq!(t.sup.delete(id, false).await.unwrap().status, 137);
    let got = summary(&events_until_deleted(&mut events, id).await);
    assert_eq!(got, ["created", &format!("exit {id} 137"), "deleted 137"]);
    assert!(pid > 0);

    let id = "behind-its-back";
    t.run(id, &bundle, Stdio::Piped).await;
    let (root, cid) = (t.env.root.clone(), id.to_string());
    tokio::task::spawn_blocking(move || {
        container::Container::load(&root, &cid)
            .unwrap()
            .delete(true)
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(t.sup.delete(id, false).await.unwrap().status, 137);

    let id = "fails";
    let bad = t.env.bundle(id, &["true"], |s| {
        let mut mounts = s.mounts().clone().unwrap_or_default();
        mounts.push(
            oci_spec::runtime::MountBuilder::default()
                .destination("/mnt")
                .typ("bind")
                .source("/no/such/source")
                .options(vec!["rbind".to_string()])
                .build()
                .unwrap(),
        );
        s.set_mounts(Some(mounts));
    });
    let err = t.sup.create(id, &bad, Stdio::Piped).await.unwrap_err();
    assert!(matches!(err, Error::Library { .. }), "{err:?}");
    assert!(err.to_string().contains("/no/such/source"), "{err}");
    assert!(t.env.leftovers().is_empty());
    t.run(id, &bundle, Stdio::Piped).await;
    t.sup.delete(id, true).await.unwrap();

    let id = "no-program";
    let missing = t.bundle(id, &["/no/such/program"]);
    let err = t.sup.create(id, &missing, Stdio::Piped).await.unwrap_err();
    assert!(matches!(err, Error::Library { .. }), "{err:?}");
    assert!(err.to_string().contains("/no/such/program"), "{err}");
}

/// Unknown ids, duplicate ids, and stdio that does not fit the process.
async fn errors_are_typed(t: T) {
    let nope = "no-such";
    assert!(matches!(
        t.sup.wait(nope, nope).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.sup.start(nope).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.sup.state(nope).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.sup.delete(nope, true).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.sup.signal(nope, nope, libc::SIGTERM, false).await,
        Err(Error::NotFound { .. })
    ));
    let id = "dup";
    let bundle = t.bundle(id, &["sleep", "1000"]);
    let err = t
        .sup
        .create(id, &bundle, Stdio::Terminal)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    t.run(id, &bundle, Stdio::Piped).await;
    let err = t.sup.create(id, &bundle, Stdio::Piped).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(matches!(
        t.sup.wait(id, "no-exec").await,
        Err(Error::NotFound { .. })
    ));
    let sleep = || t.process(&["sleep", "1000"], false);
    t.sup.exec(id, "x", sleep(), Stdio::Piped).await.unwrap();
    let err = t
        .sup
        .exec(id, "x", sleep(), Stdio::Piped)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists { exec_id, .. } if exec_id == "x"),
        "{err}"
    );
    let err = t.sup.exec(id, id, sleep(), Stdio::Piped).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let err = t
        .sup
        .exec(id, "y", sleep(), Stdio::Terminal)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let err = t.sup.resize_pty(id, "x", 10, 10).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    let err = t.sup.remove_process(id, "x").unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
    let err = t.sup.delete(id, false).await.unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
    t.sup.signal(id, "x", libc::SIGTERM, false).await.unwrap();
    assert_eq!(
        t.sup.wait(id, "x").await.unwrap().status,
        128 + libc::SIGTERM
    );
    t.sup.remove_process(id, "x").unwrap();
    assert!(matches!(
        t.sup.wait(id, "x").await,
        Err(Error::NotFound { .. })
    ));
    t.sup.signal(id, id, libc::SIGKILL, false).await.unwrap();
    t.sup.wait(id, id).await.unwrap();
    let err = t
        .sup
        .exec(id, "late", sleep(), Stdio::Piped)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
    t.sup.delete(id, false).await.unwrap();

    // A container of another supervisor (or left by an earlier program) under the root.
    let other = Supervisor::new(t.spawner.clone(), t.env.root.clone());
    other.create("theirs", &bundle, Stdio::Piped).await.unwrap();
    let err = t
        .sup
        .create("theirs", &bundle, Stdio::Piped)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    other.delete("theirs", false).await.unwrap();
    let err = t
        .sup
        .create("../x", &bundle, Stdio::Piped)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

const CONCURRENT: usize = 20;

/// A create whose caller stops waiting still completes: the container is in the table
/// and can be deleted.
async fn an_abandoned_create_completes(t: T) {
    let id = "abandoned";
    let mut events = t.sup.subscribe();
    let bundle = t.bundle(id, &["sleep", "1000"]);
    let create = t.sup.create(id, &bundle, Stdio::Piped);
    assert!(tokio::time::timeout(Duration::from_micros(10), create)
        .await
        .is_err());
    let created = events.recv().await.unwrap();
    assert!(
        matches!(&created, Event::Created { id: i, .. } if i == id),
        "{created:?}"
    );
    assert_eq!(t.sup.delete(id, false).await.unwrap().status, 137);
}

/// Twenty containers created, fed, read, exec'd into, waited for and deleted at once.
async fn many_containers_at_once(t: T) {
    let bundle = t.bundle("many", &["cat"]);
    let tasks: Vec<_> = (0..CONCURRENT)
        .map(|n| {
            let (sup, bundle) = (t.sup.clone(), bundle.clone());
            tokio::spawn(async move {
                let id = format!("many-{n}");
                sup.create(&id, &bundle, Stdio::Piped).await.unwrap();
                sup.start(&id).await.unwrap();
                let mut p = Spec::default().process().clone().unwrap();
                p.set_args(Some(vec!["sh".into(), "-c".into(), format!("exit {n}")]));
                p.set_terminal(Some(false));
                sup.exec(&id, "exec", p, Stdio::Piped).await.unwrap();
                assert_eq!(sup.wait(&id, "exec").await.unwrap().status, n as i32);
                let line = format!("I am {id}\n");
                sup.write_stdin(&id, &id, line.as_bytes()).await.unwrap();
                sup.close_stdin(&id, &id).await.unwrap();
                let mut out = String::new();
                let mut stdout = sup.take_output(&id, &id, Output::Stdout).unwrap();
                stdout.read_to_string(&mut out).await.unwrap();
                assert_eq!(out, line);
                assert_eq!(sup.wait(&id, &id).await.unwrap().status, 0);
                sup.delete(&id, false).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a container's task");
    }
    assert!(t.sup.list().await.unwrap().is_empty());
}

type Test = fn(T) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        [$((stringify!($name), (|t| Box::pin($name(t))) as Test)),*]
    };
}

fn main() {
    let spawner = Arc::new(container::Spawner::start().expect("start the spawner"));
    let env = Arc::new(Env::new());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut failed = Vec::new();
    let fds_before = open_fds();
    for (name, test) in tests![
        piped_output_and_kept_status,
        interactive_shell_on_a_pty,
        execs_with_their_own_stdio,
        killed_by_a_signal,
        stdin_closed_gives_eof,
        pause_and_resume,
        update_sets_the_cgroup,
        oom_kills_are_reported,
        deletes_and_failed_creates,
        errors_are_typed,
        an_abandoned_create_completes,
        many_containers_at_once,
    ] {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let t = {
            let _in_runtime = runtime.enter();
            T {
                sup: Supervisor::new(spawner.clone(), env.root.clone()),
                spawner: spawner.clone(),
                env: env.clone(),
            }
        };
        let started = std::time::Instant::now();
        let outcome = runtime.block_on(async {
            let run = tokio::spawn(tokio::time::timeout(Duration::from_secs(60), test(t)));
            match run.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err("timed out".to_string()),
                Err(e) => Err(format!("panicked: {e}")),
            }
        });
        let outcome = outcome.and_then(|()| nothing_left(&env, fds_before));
        match outcome {
            Ok(()) => println!("{name}: ok ({:?})", started.elapsed()),
            Err(why) => {
                println!("{name}: FAILED: {why}");
                failed.push(name);
                env.clean();
            }
        }
    }
    drop(runtime);
    drop(env);
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// No container in the state root, no child of the program (but the spawner's helper), no
/// descriptor more than before the tests.
fn nothing_left(env: &Env, fds_before: usize) -> Result<(), String> {
    let fds = open_fds();
    if fds > fds_before {
        let list: Vec<_> = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .collect();
        return Err(format!(
            "{fds} descriptors open, {fds_before} before: {list:?}"
        ));
    }
    let left = env.leftovers();
    if !left.is_empty() {
        return Err(format!("containers left: {left:?}"));
    }
    let children = common::children();
    if !children.is_empty() {
        return Err(format!("children left: {children:?}"));
    }
    Ok(())
}
