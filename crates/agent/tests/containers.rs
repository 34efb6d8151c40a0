//! The agent binary serving real busybox containers, driven over its unix socket with the
//! ttrpc clients generated from its protos, as Kata's shim drives it: output read back, a
//! shell on a pty, exec'd processes with their own user and env, signals and the statuses
//! of killed processes, stdin's end, pause and resume, update and stats in the cgroup
//! files, an OOM event, two clients, a hundred containers, bad specs, and clients that hang
//! up mid-call. Each test has an agent of its own and checks that nothing is left.

mod common;

use agent::protocols::{agent as pb, health, health_ttrpc::HealthClient, oci};
use common::{ctx, status, Agent};
use std::time::Duration;
use ttrpc::Code;

/// Output read back after the process has exited (nothing written just before its exit is
/// lost), its exit code kept for a second WaitProcess of the init, and nothing left of the
/// container once it is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_read_back_and_nothing_is_left() {
    let a = Agent::start().await;
    let id = "output";
    a.run(
        id,
        &["sh", "-c", "echo out; echo err >&2; echo late; exit 7"],
    )
    .await;
    assert_eq!(a.wait(id, "").await.unwrap(), 7);
    assert_eq!(
        a.wait(id, id).await.unwrap(),
        7,
        "the init's status is kept"
    );
    assert_eq!(a.read_all(id, id, false).await, "out\nlate\n");
    assert_eq!(a.read_all(id, "", true).await, "err\n");
    let cgroups = a.cgroup_dirs(id);
    assert!(cgroups.iter().all(|d| d.exists()), "{cgroups:?}");
    a.remove(id).await.unwrap();
    assert!(!cgroups.iter().any(|d| d.exists()), "{cgroups:?} left");
    assert_eq!(status(a.wait(id, "").await).code(), Code::NOT_FOUND);
    assert_eq!(status(a.remove(id).await).code(), Code::NOT_FOUND);
    a.assert_nothing_left();
    a.stop();
}

/// The spec reaches the library in memory: a bundle gets a config.json only when the spec
/// has hooks, which find it there (a prestart hook that reads its bundle's config.json
/// from the state on its stdin fails the create if it is missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_find_the_config_in_the_bundle() {
    let a = Agent::start().await;
    a.run("plain", &["true"]).await;
    assert!(a.bundles().join("plain").is_dir());
    assert!(!a.bundles().join("plain/config.json").exists());
    let check =
        r#"b=$(sed -n 's/.*"bundle":"\([^"]*\)".*/\1/p'); grep -q '"ociVersion"' "$b/config.json""#;
    let spec = a.spec(&["true"], |s| {
        s.Hooks = Some(oci::Hooks {
            Prestart: vec![oci::Hook {
                Path: "/bin/sh".into(),
                Args: vec!["sh".into(), "-c".into(), check.into()],
                ..Default::default()
            }],
            ..Default::default()
        })
        .into();
    });
    a.create("hooked", spec).await.expect("create with a hook");
    assert!(a.bundles().join("hooked/config.json").is_file());
    for id in ["plain", "hooked"] {
        a.remove(id).await.unwrap();
        assert!(!a.bundles().join(id).exists(), "bundle of {id} left");
    }
    a.assert_nothing_left();
    a.stop();
}

fn terminal(s: &mut oci::Spec) {
    s.Process.as_mut().unwrap().Terminal = true;
}

/// A shell on a pty: typed commands, their output, a resize seen by `stty size`, the exit
/// code; a pty has no separate stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_shell_on_a_pty() {
    let a = Agent::start().await;
    let id = "shell";
    a.create(id, a.spec(&["sh"], terminal)).await.unwrap();
    a.start_container(id).await;
    a.write(id, "", b"echo h''i\n").await.unwrap();
    a.read_until(id, "", "hi\r\n").await;
    let resize = pb::TtyWinResizeRequest {
        container_id: id.into(),
        exec_id: id.into(),
        row: 31,
        column: 101,
        ..Default::default()
    };
    a.agent().tty_win_resize(ctx(), &resize).await.unwrap();
    a.write(id, "", b"stty size\n").await.unwrap();
    a.read_until(id, "", "31 101").await;
    a.write(id, "", b"echo b''ye; exit 3\n").await.unwrap();
    let rest = a.read_all(id, "", false).await;
    assert!(rest.contains("bye\r\n"), "{rest:?}");
    assert_eq!(a.wait(id, "").await.unwrap(), 3);
    assert!(a.read(id, "", true).await.unwrap().is_empty());
    a.remove(id).await.unwrap();
    a.assert_nothing_left();
    a.stop();
}

/// Exec'd processes: one with its own user, groups and environment, one on a pty; each
/// answers its own status, then is forgotten; a resize of a process without a pty is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_its_own_user_and_env() {
    let a = Agent::start().await;
    let id = "execs";
    a.run(id, &["sleep", "1000"]).await;
    let mut p = common::process(&["sh", "-c", "id -u; id -g; echo $GREETING; exit 5"]);
    p.User = Some(oci::User {
        UID: 1000,
        GID: 1000,
        ..Default::default()
    })
    .into();
    p.Env.push("GREETING=hello from exec".into());
    a.exec(id, "e1", p).await.unwrap();
    assert_eq!(a.wait(id, "e1").await.unwrap(), 5);
    // Waited for, yet its output is still there to be read.
    assert_eq!(
        a.read_all(id, "e1", false).await,
        "1000\n1000\nhello from exec\n"
    );
    assert_eq!(a.read_all(id, "e1", true).await, "");
    assert_eq!(status(a.wait(id, "e1").await).code(), Code::NOT_FOUND);
    assert_eq!(
        status(a.signal(id, "e1", libc::SIGTERM).await).code(),
        Code::NOT_FOUND
    );
    // Waited for and drained: gone, its exec id free again.
    assert_eq!(
        status(a.read(id, "e1", false).await).code(),
        Code::NOT_FOUND
    );
    a.exec(id, "e1", common::process(&["true"])).await.unwrap();
    assert_eq!(a.wait(id, "e1").await.unwrap(), 0);
    let mut tty = common::process(&["sh", "-c", "tty; exit 4"]);
    tty.Terminal = true;
    a.exec(id, "tty", tty).await.unwrap();
    assert!(a.read_all(id, "tty", false).await.contains("/dev/pts/"));
    assert_eq!(a.wait(id, "tty").await.unwrap(), 4);
    let sleep = common::process(&["sleep", "1000"]);
    a.exec(id, "sleep", sleep.clone()).await.unwrap();
    let s = status(a.exec(id, "sleep", sleep).await);
    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");
    let resize = pb::TtyWinResizeRequest {
        container_id: id.into(),
        exec_id: "sleep".into(),
        row: 1,
        column: 1,
        ..Default::default()
    };
    let s = status(a.agent().tty_win_resize(ctx(), &resize).await);
    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");
    assert!(s.message().contains("no terminal"), "{s:?}");
    let s = status(a.wait(id, "no-such-exec").await);
    assert_eq!(s.code(), Code::NOT_FOUND, "{s:?}");
    a.remove(id).await.unwrap();
    a.assert_nothing_left();
    a.stop();
}

/// Signals: SIGTERM to an init without a handler (PID 1 of its namespace) kills it, as
/// Kata's agent makes it; a handled SIGTERM runs the handler; SIGINT and SIGKILL to exec'd
/// processes; SIGKILL with no exec id reaches every process. WaitProcess answers the exit
/// code, or the signal's number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_and_the_statuses_of_killed_processes() {
    let a = Agent::start().await;
    a.run("plain", &["sleep", "1000"]).await;
    a.signal("plain", "", libc::SIGTERM).await.unwrap();
    assert_eq!(a.wait("plain", "").await.unwrap(), libc::SIGKILL);

    let trap = "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done";
    a.run("trap", &["sh", "-c", trap]).await;
    a.read_until("trap", "", "ready").await;
    a.signal("trap", "", libc::SIGTERM).await.unwrap();
    assert_eq!(a.wait("trap", "").await.unwrap(), 42);

    let id = "all";
    a.run(id, &["sleep", "1000"]).await;
    a.exec(id, "int", common::process(&["sleep", "1000"]))
        .await
        .unwrap();
    a.signal(id, "int", libc::SIGINT).await.unwrap();
    assert_eq!(a.wait(id, "int").await.unwrap(), libc::SIGINT);
    a.exec(id, "other", common::process(&["sleep", "1000"]))
        .await
        .unwrap();
    a.signal(id, "", libc::SIGKILL).await.unwrap();
    assert_eq!(a.wait(id, "other").await.unwrap(), libc::SIGKILL);
    assert_eq!(a.wait(id, "").await.unwrap(), libc::SIGKILL);
    // No exec into a container whose init has exited.
    let s = status(a.exec("trap", "x", common::process(&["true"])).await);
    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");
    // An exit code that looks like a signal's status is still an exit code.
    a.run("code", &["sh", "-c", "exit 137"]).await;
    assert_eq!(a.wait("code", "").await.unwrap(), 137);
    let s = status(a.signal("no-such", "", libc::SIGTERM).await);
    assert_eq!(s.code(), Code::NOT_FOUND, "{s:?}");
    for id in ["plain", "trap", "all", "code"] {
        a.remove(id).await.unwrap();
    }
    a.assert_nothing_left();
    a.stop();
}

/// Stdin: empty data in WriteStdin closes it, as CloseStdin does; `cat` sees end-of-file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_closed_gives_eof() {
    let a = Agent::start().await;
    let id = "cat";
    a.run(id, &["cat"]).await;
    assert_eq!(a.write(id, "", b"abc").await.unwrap(), 3);
    assert_eq!(a.write(id, "", b"").await.unwrap(), 0);
    assert_eq!(a.read_all(id, "", false).await, "abc");
    assert_eq!(a.wait(id, "").await.unwrap(), 0);
    let s = status(a.write(id, "", b"more").await);
    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");

    let id2 = "cat2";
    a.run(id2, &["sleep", "1000"]).await;
    a.exec(id2, "wc", common::process(&["wc", "-c"]))
        .await
        .unwrap();
    a.write(id2, "wc", b"12345").await.unwrap();
    let close = pb::CloseStdinRequest {
        container_id: id2.into(),
        exec_id: "wc".into(),
        ..Default::default()
    };
    a.agent().close_stdin(ctx(), &close).await.unwrap();
    assert_eq!(a.read_all(id2, "wc", false).await.trim(), "5");
    assert_eq!(a.wait(id2, "wc").await.unwrap(), 0);
    a.remove(id).await.unwrap();
    a.remove(id2).await.unwrap();
    a.assert_nothing_left();
    a.stop();
}

fn frozen(a: &Agent, id: &str) -> bool {
    let dir = a.cgroup_dir(id, "freezer");
    match std::fs::read_to_string(dir.join("freezer.state")) {
        Ok(s) => s.trim() == "FROZEN",
        Err(_) => {
            std::fs::read_to_string(dir.join("cgroup.freeze"))
                .unwrap()
                .trim()
                == "1"
        }
    }
}

/// Pause and resume reach the cgroup's freezer; a paused container can be removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume() {
    let a = Agent::start().await;
    let id = "pause";
    a.run(id, &["sleep", "1000"]).await;
    let pause = pb::PauseContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    let resume = pb::ResumeContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    a.agent().pause_container(ctx(), &pause).await.unwrap();
    assert!(frozen(&a, id));
    a.agent().resume_container(ctx(), &resume).await.unwrap();
    assert!(!frozen(&a, id));
    let s = status(a.agent().resume_container(ctx(), &resume).await);
    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");
    a.agent().pause_container(ctx(), &pause).await.unwrap();
    a.remove(id).await.unwrap();
    let unknown = pb::PauseContainerRequest {
        container_id: "no-such".into(),
        ..Default::default()
    };
    let s = status(a.agent().pause_container(ctx(), &unknown).await);
    assert_eq!(s.code(), Code::NOT_FOUND, "{s:?}");
    a.assert_nothing_left();
    a.stop();
}

/// UpdateContainer's limits land in the cgroup files; StatsContainer reads them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_stats_in_the_cgroup() {
    let a = Agent::start().await;
    let id = "update";
    a.run(
        id,
        &["sh", "-c", "sleep 1000 & echo ready; exec sleep 1000"],
    )
    .await;
    // Two processes from here on: the shell (then its sleep) and the other sleep.
    a.read_until(id, "", "ready").await;
    let limit: i64 = 48 << 20;
    let req = pb::UpdateContainerRequest {
        container_id: id.into(),
        resources: Some(oci::LinuxResources {
            Memory: Some(oci::LinuxMemory {
                Limit: limit,
                ..Default::default()
            })
            .into(),
            Pids: Some(oci::LinuxPids {
                Limit: 50,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    a.agent().update_container(ctx(), &req).await.unwrap();
    let memory = a.cgroup_dir(id, "memory");
    let text = std::fs::read_to_string(memory.join("memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(memory.join("memory.max")))
        .unwrap();
    assert_eq!(text.trim(), limit.to_string());
    let pids = std::fs::read_to_string(a.cgroup_dir(id, "pids").join("pids.max")).unwrap();
    assert_eq!(pids.trim(), "50");
    let req = pb::StatsContainerRequest {
        container_id: id.into(),
        ..Default::default()
    };
    let stats = a.agent().stats_container(ctx(), &req).await.unwrap();
    let cg = stats.cgroup_stats.unwrap();
    let p = cg.pids_stats.unwrap();
    let current = std::fs::read_to_string(a.cgroup_dir(id, "pids").join("pids.current")).unwrap();
    assert_eq!(p.current.to_string(), current.trim());
    assert_eq!(p.current, 2, "{p:?}");
    assert_eq!(p.limit, 50);
    let m = cg.memory_stats.unwrap();
    let usage = m.usage.unwrap();
    assert_eq!(usage.limit, limit as u64);
    assert!(usage.usage > 0, "{usage:?}");
    let bad = pb::StatsContainerRequest {
        container_id: "no-such".into(),
        ..Default::default()
    };
    let s = status(a.agent().stats_container(ctx(), &bad).await);
    assert_eq!(s.code(), Code::NOT_FOUND, "{s:?}");
    a.remove(id).await.unwrap();
    a.assert_nothing_left();
    a.stop();
}

/// A process over the container's memory limit: GetOOMEvent, waiting beforehand, answers
/// the container's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_event() {
    let a = Agent::start().await;
    let id = "oom";
    let poll = {
        let client = a.connect().await;
        tokio::spawn(async move {
            client
                .get_oom_event(ctx(), &pb::GetOOMEventRequest::new())
                .await
        })
    };
    let spec = a.spec(&["sh", "-c", "tail /dev/zero; echo survived"], |s| {
        let limit = 16 << 20;
        let r = s.Linux.as_mut().unwrap().Resources.as_mut().unwrap();
        r.Memory = Some(oci::LinuxMemory {
            Limit: limit,
            Swap: limit,
            ..Default::default()
        })
        .into();
    });
    a.create(id, spec).await.unwrap();
    a.start_container(id).await;
    assert_eq!(a.read_all(id, "", false).await, "survived\n");
    let event = tokio::time::timeout(Duration::from_secs(20), poll)
        .await
        .expect("an OOM event")
        .unwrap()
        .unwrap();
    assert_eq!(event.container_id, id);
    assert_eq!(a.wait(id, "").await.unwrap(), 0);
    a.remove(id).await.unwrap();
    a.assert_nothing_left();
    a.stop();
}

/// Two clients on two connections: one blocks reading a container's output while the
/// other feeds it, and each creates a container of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_at_once() {
    let a = Agent::start().await;
    let (one, two) = (a.connect().await, a.connect().await);
    a.run("shared", &["cat"]).await;
    let reader = tokio::spawn(async move {
        let data = common::read_with(&one, "shared", "", false).await.unwrap();
        (one, data)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!reader.is_finished(), "the read waits for data");
    let req = pb::WriteStreamRequest {
        container_id: "shared".into(),
        data: b"from two\n".to_vec(),
        ..Default::default()
    };
    two.write_stdin(ctx(), &req).await.unwrap();
    let (one, data) = reader.await.unwrap();
    assert_eq!(data, b"from two\n");
    let run = |client: agent::protocols::agent_ttrpc::AgentServiceClient, id: &'static str| {
        let req = a.request(id, id, a.spec(&["sh", "-c", &format!("echo {id}")], |_| {}));
        async move {
            client.create_container(ctx(), &req).await.unwrap();
            let start = pb::StartContainerRequest {
                container_id: id.into(),
                ..Default::default()
            };
            client.start_container(ctx(), &start).await.unwrap();
            let out = common::read_with(&client, id, "", false).await.unwrap();
            assert_eq!(out, format!("{id}\n").as_bytes());
        }
    };
    tokio::join!(run(one, "by-one"), run(two, "by-two"));
    for id in ["shared", "by-one", "by-two"] {
        a.remove(id).await.unwrap();
    }
    a.assert_nothing_left();
    a.stop();
}

const MANY: usize = 100;
const AT_ONCE: usize = 10;

/// A hundred containers created, started, waited for and removed, ten at a time: no
/// state, bundle, cgroup or process left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_containers_leave_nothing() {
    let a = std::sync::Arc::new(Agent::start().await);
    let mut cgroups = Vec::new();
    for batch in 0..MANY / AT_ONCE {
        let tasks: Vec<_> = (0..AT_ONCE)
            .map(|n| {
                let a = a.clone();
                tokio::spawn(async move {
                    let id = format!("many-{}", batch * AT_ONCE + n);
                    a.run(&id, &["true"]).await;
                    let dirs = a.cgroup_dirs(&id);
                    assert_eq!(a.wait(&id, "").await.unwrap(), 0);
                    a.remove(&id).await.unwrap();
                    dirs
                })
            })
            .collect();
        for t in tasks {
            cgroups.extend(t.await.unwrap());
        }
    }
    assert_eq!(cgroups.len() % MANY, 0);
    let left: Vec<_> = cgroups.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    a.assert_nothing_left();
    std::sync::Arc::into_inner(a).unwrap().stop();
}

/// Bad specs: refused with a status and a message naming what is wrong, nothing left, the
/// id free for a good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_spec_is_answered_and_leaves_nothing() {
    let a = Agent::start().await;
    let id = "bad";
    let s = status(
        a.create(
            id,
            a.spec(&["true"], |s| {
                s.Linux.as_mut().unwrap().Namespaces[0].Type = "netns".into()
            }),
        )
        .await,
    );
    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");
    assert!(
        s.message().contains("OCI.Linux.Namespaces[0].Type"),
        "{s:?}"
    );
    let s = status(
        a.create(
            id,
            a.spec(&["true"], |s| {
                s.Root.as_mut().unwrap().Path = "rootfs".into()
            }),
        )
        .await,
    );
    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");
    assert!(s.message().contains("absolute"), "{s:?}");
    let s = status(a.create(id, a.spec(&["/no/such/program"], |_| {})).await);
    assert_eq!(s.code(), Code::INTERNAL, "{s:?}");
    assert!(s.message().contains("/no/such/program"), "{s:?}");
    let s = status(
        a.create(
            id,
            a.spec(&["true"], |s| {
                s.Mounts.push(oci::Mount {
                    destination: "/mnt".into(),
                    type_: "bind".into(),
                    source: "/no/such/source".into(),
                    options: common::strings(&["rbind"]),
                    ..Default::default()
                })
            }),
        )
        .await,
    );
    assert_ne!(s.code(), Code::OK);
    assert!(s.message().contains("/no/such/source"), "{s:?}");
    let s = status(a.create("../escape", a.spec(&["true"], |_| {})).await);
    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");
    a.assert_nothing_left();
    a.run(id, &["true"]).await;
    assert_eq!(a.wait(id, "").await.unwrap(), 0);
    let s = status(a.create(id, a.spec(&["true"], |_| {})).await);
    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");
    assert!(s.message().contains("exists"), "{s:?}");
    a.remove(id).await.unwrap();
    a.assert_nothing_left();
    a.stop();
}

/// Send `method` with `payload` on a connection of its own, and hang up `after` later
/// with the call still under way: the server sees the connection close.
async fn call_and_hang_up(a: &Agent, method: &str, payload: Vec<u8>, after: Duration) {
    use protobuf::Message;
    use std::io::Write;
    let path = a.address.strip_prefix("unix://").unwrap();
    let mut conn = std::os::unix::net::UnixStream::connect(path).unwrap();
    let req = ttrpc::Request {
        service: "grpc.AgentService".into(),
        method: method.into(),
        payload,
        ..Default::default()
    };
    let body = req.write_to_bytes().unwrap();
    let header: Vec<u8> = ttrpc::MessageHeader::new_request(1, body.len() as u32).into();
    conn.write_all(&header).unwrap();
    conn.write_all(&body).unwrap();
    tokio::time::sleep(after).await;
    drop(conn);
}

/// Clients that hang up in the middle of a blocking ReadStdout, WaitProcess and
/// GetOOMEvent: the agent stays healthy, and the output and statuses are there for the
/// next client. One that hangs up right after sending CreateContainer: the container is
/// either never made or made whole, and removable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_call_leaves_the_agent_healthy() {
    use protobuf::Message;
    let a = Agent::start().await;
    let id = "hangup";
    a.run(id, &["cat"]).await;
    let read = pb::ReadStreamRequest {
        container_id: id.into(),
        len: 4096,
        ..Default::default()
    };
    let wait = pb::WaitProcessRequest {
        container_id: id.into(),
        ..Default::default()
    };
    let calls = [
        ("ReadStdout", read.write_to_bytes().unwrap()),
        ("WaitProcess", wait.write_to_bytes().unwrap()),
        (
            "GetOOMEvent",
            pb::GetOOMEventRequest::new().write_to_bytes().unwrap(),
        ),
    ];
    for (method, payload) in calls {
        call_and_hang_up(&a, method, payload, Duration::from_millis(100)).await;
    }
    // Give the agent a moment to see the connections close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    HealthClient::new(a.client.clone())
        .check(ctx(), &health::CheckRequest::new())
        .await
        .unwrap();
    // The abandoned read took nothing.
    a.write(id, "", b"still here\n").await.unwrap();
    assert_eq!(a.read_until(id, "", "\n").await, "still here\n");
    a.write(id, "", b"").await.unwrap();
    assert_eq!(a.read_all(id, "", false).await, "");
    assert_eq!(a.wait(id, "").await.unwrap(), 0);
    a.remove(id).await.unwrap();

    let created = "hung-up-create";
    let req = a.request(created, created, a.spec(&["sleep", "1000"], |_| {}));
    call_and_hang_up(
        &a,
        "CreateContainer",
        req.write_to_bytes().unwrap(),
        Duration::ZERO,
    )
    .await;
    let stats = pb::StatsContainerRequest {
        container_id: created.into(),
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if a.agent().stats_container(ctx(), &stats).await.is_ok() {
            a.remove(created).await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.assert_nothing_left();
    a.stop();
}

/// Containers created with sandbox_pidns share the PID namespace of the first of them (the
/// pod's pause container); an init created with an exec id of its own answers to it; a
/// RemoveContainer with a timeout; DestroySandbox removes every container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_pid_namespace_exec_id_alias_and_destroy_sandbox() {
    let a = Agent::start().await;
    let sandbox = pb::CreateSandboxRequest {
        sandbox_id: "pod".into(),
        sandbox_pidns: true,
        ..Default::default()
    };
    a.agent().create_sandbox(ctx(), &sandbox).await.unwrap();
    let create = |id: &str, exec_id: &str, args: &[&str]| pb::CreateContainerRequest {
        sandbox_pidns: true,
        ..a.request(id, exec_id, a.spec(args, |_| {}))
    };
    // Two at once: one makes the namespace; the other is refused while it is being made,
    // or joins it.
    let (one, two) = (a.connect().await, a.connect().await);
    let (p1, p2) = (
        create("pause", "pause", &["sleep", "1000"]),
        create("pause2", "pause2", &["sleep", "1000"]),
    );
    let (r1, r2) = tokio::join!(
        one.create_container(ctx(), &p1),
        two.create_container(ctx(), &p2)
    );
    let mut pauses = Vec::new();
    for (id, r) in [("pause", r1), ("pause2", r2)] {
        match r {
            Ok(_) => pauses.push(id),
            Err(e) => {
                let s = status::<()>(Err(e));
                assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");
                assert!(s.message().contains("still being made"), "{s:?}");
            }
        }
    }
    assert!(!pauses.is_empty());
    for id in &pauses {
        a.start_container(id).await;
    }
    let app = create("app", "app-init", &["cat", "/proc/1/cmdline"]);
    a.agent().create_container(ctx(), &app).await.unwrap();
    a.start_container("app").await;
    // PID 1 of the app's namespace is the pause container's sleep.
    assert_eq!(
        a.read_all("app", "app-init", false).await,
        "sleep\x001000\x00"
    );
    assert_eq!(a.wait("app", "app-init").await.unwrap(), 0);
    assert_eq!(
        a.wait("app", "").await.unwrap(),
        0,
        "the init by either name"
    );
    // An init in the sandbox's namespace leaves its exec'd processes running when it
    // exits; SIGKILL for the whole container (an empty exec id) still reaches them.
    let joined = create("joined", "joined", &["sleep", "1000"]);
    a.agent().create_container(ctx(), &joined).await.unwrap();
    a.start_container("joined").await;
    a.exec("joined", "left", common::process(&["sleep", "1000"]))
        .await
        .unwrap();
    a.signal("joined", "joined", libc::SIGKILL).await.unwrap();
    assert_eq!(a.wait("joined", "").await.unwrap(), libc::SIGKILL);
    a.signal("joined", "", libc::SIGKILL).await.unwrap();
    assert_eq!(a.wait("joined", "left").await.unwrap(), libc::SIGKILL);
    a.remove("joined").await.unwrap();
    let remove = pb::RemoveContainerRequest {
        container_id: "app".into(),
        timeout: 5,
        ..Default::default()
    };
    a.agent().remove_container(ctx(), &remove).await.unwrap();
    // Once the pause container's init has exited, its namespace cannot be joined.
    for id in &pauses {
        // One that joined the other's namespace may be dead with it already.
        let _ = a.signal(id, "", libc::SIGKILL).await;
        assert_eq!(a.wait(id, "").await.unwrap(), libc::SIGKILL);
    }
    let late = create("late", "late", &["true"]);
    let s = status(a.agent().create_container(ctx(), &late).await);
    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "{s:?}");
    assert!(s.message().contains("PID namespace is gone"), "{s:?}");
    a.run("left-running", &["sleep", "1000"]).await;
    a.agent()
        .destroy_sandbox(ctx(), &pb::DestroySandboxRequest::new())
        .await
        .unwrap();
    for id in pauses.into_iter().chain(["left-running"]) {
        assert_eq!(status(a.wait(id, "").await).code(), Code::NOT_FOUND);
    }
    a.assert_nothing_left();
    a.stop();
}

/// An agent killed with SIGKILL leaves its containers; the next agent on the same state dir
/// removes them (and their bundles) before it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_agent_removes_what_a_crashed_one_left() {
    let mut a = Agent::start().await;
    a.run("left", &["sleep", "1000"]).await;
    let cgroups = a.cgroup_dirs("left");
    a.crash_and_restart().await;
    let s = status(a.wait("left", "").await);
    assert_eq!(s.code(), Code::NOT_FOUND, "{s:?}");
    assert!(!cgroups.iter().any(|d| d.exists()), "{cgroups:?} left");
    assert!(a.log().contains("removed what an earlier agent left"));
    a.run("left", &["true"]).await;
    assert_eq!(a.wait("left", "").await.unwrap(), 0);
    a.remove("left").await.unwrap();
    a.assert_nothing_left();
    a.stop();
}
