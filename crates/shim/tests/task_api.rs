//! The shim binary serving the Task API as containerd drives it, without containerd: a
//! stand-in for containerd's events service records what the shim publishes, and the test
//! calls the Task service over the shim's socket (under both of its names). A busybox
//! container runs; an exec'd process is added, waited for before it starts, started;
//! exit statuses, output through a fifo, the events in order, and the shim's exit at
//! Shutdown are checked. Needs root (it creates real containers) and busybox.

use async_trait::async_trait;
use containerd_shim_protos::api;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use containerd_shim_protos::shim_async::{create_events, Client, Events, TaskClient};
use containerd_shim_protos::ttrpc::r#async::{Server, TtrpcContext};
use containerd_shim_protos::ttrpc::{self, context::Context};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-runr-v2");
const NAMESPACE: &str = "shim-test";

/// containerd's events service, as far as a shim sees it: it records each topic.
#[derive(Default)]
struct FakeEvents {
    topics: Mutex<Vec<String>>,
}

#[async_trait]
impl Events for FakeEvents {
    async fn forward(&self, _: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        assert_eq!(req.envelope.namespace, NAMESPACE);
        self.topics.lock().unwrap().push(req.envelope.topic.clone());
        Ok(Empty::new())
    }
}

fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A bundle where containerd puts one (STATE/io.containerd.runtime.v2.task/NS/ID), whose
/// config runs `args` in a busybox rootfs beside it.
fn bundle(state: &Path, id: &str, args: &[&str]) -> PathBuf {
    let rootfs = state.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    let bb = busybox().unwrap();
    std::fs::copy(&bb, rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "sleep", "echo", "cat"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let bundle = state.join(format!("io.containerd.runtime.v2.task/{NAMESPACE}/{id}"));
    std::fs::create_dir_all(&bundle).unwrap();
    let mut spec = oci_spec::runtime::Spec::default();
    spec.root_mut().as_mut().unwrap().set_path(rootfs);
    let process = spec.process_mut().as_mut().unwrap();
    process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
    process.set_terminal(Some(false));
    spec.linux_mut()
        .as_mut()
        .unwrap()
        .set_cgroups_path(Some(format!("/runr-{NAMESPACE}-{id}").into()));
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&spec).unwrap(),
    )
    .unwrap();
    bundle
}

fn ctx() -> Context {
    ttrpc::context::with_timeout(Duration::from_secs(30).as_nanos() as i64)
}

async fn connect(address: &str) -> Client {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match Client::connect(address).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > until => panic!("connect to the shim at {address}: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Read a fifo until every writer has closed it.
fn read_fifo(f: &mut std::fs::File) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match f.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("read the stdout fifo: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_and_an_exec_through_the_task_api() {
    if !nix::unistd::geteuid().is_root() || busybox().is_none() {
        eprintln!("skipped: needs root and busybox");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("runr-shim-test-")
        .tempdir()
        .unwrap();
    let state = dir.path();
    let id = format!("c{}", std::process::id());
    let bundle = bundle(state, &id, &["sh", "-c", "echo hello; exec sleep 1000"]);

    // containerd's side: the events service, and a stdout fifo it reads.
    let events = Arc::new(FakeEvents::default());
    let events_address = format!("unix://{}/events.sock", state.display());
    let mut events_server = Server::new()
        .bind(&events_address)
        .unwrap()
        .register_service(create_events(events.clone()));
    events_server.start().await.unwrap();
    let stdout = state.join("stdout");
    nix::unistd::mkfifo(&stdout, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut stdout_reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&stdout)
        .unwrap();

    let socket = format!("unix://{}/shim.sock", state.display());
    let mut shim = Command::new(SHIM)
        .args(["-namespace", NAMESPACE, "-id", &id, "-address", "/none"])
        .args(["-socket", &socket])
        .env("TTRPC_ADDRESS", format!("{}/events.sock", state.display()))
        .current_dir(&bundle)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let client = connect(&socket).await;
    let task = TaskClient::new(client.clone());

    // Options this shim cannot honour are refused before anything is made: another runtime
    // binary, another state root than the shim's.
    for (options, what) in [
        (
            RuncOptions {
                binary_name: "/usr/bin/runc".into(),
                ..Default::default()
            },
            "BinaryName",
        ),
        (
            RuncOptions {
                root: "/run/another-root".into(),
                ..Default::default()
            },
            "Root",
        ),
    ] {
        let refused = task
            .create(
                ctx(),
                &api::CreateTaskRequest {
                    id: id.clone(),
                    bundle: bundle.display().to_string(),
                    options: Some(Any {
                        type_url: "containerd.runc.v1.Options".into(),
                        value: options.write_to_bytes().unwrap(),
                        ..Default::default()
                    })
                    .into(),
                    ..Default::default()
                },
            )
            .await;
        match refused {
            Err(ttrpc::Error::RpcStatus(s)) => {
                assert_eq!(s.code(), ttrpc::Code::INVALID_ARGUMENT, "{what}: {s:?}");
                assert!(s.message.contains(what), "{what}: {}", s.message);
            }
            other => panic!("{what}: not refused: {other:?}"),
        }
    }
    // runr's own name is accepted (and the options' other fields honoured).
    let runr_options = RuncOptions {
        binary_name: "runr".into(),
        ..Default::default()
    };
    let created = task
        .create(
            ctx(),
            &api::CreateTaskRequest {
                id: id.clone(),
                bundle: bundle.display().to_string(),
                stdout: stdout.display().to_string(),
                options: Some(Any {
                    type_url: "containerd.runc.v1.Options".into(),
                    value: runr_options.write_to_bytes().unwrap(),
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            },
        )
        .await
        .expect("Create");
    assert!(created.pid > 0);
    let started = task
        .start(
            ctx(),
            &api::StartRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("Start");
    assert_eq!(started.pid, created.pid);

    // An exec: waited for before it is started, as containerd does.
    let spec = serde_json::json!({"args": ["sh", "-c", "exit 5"], "cwd": "/", "user": {"uid": 0, "gid": 0}});
    let exec = api::ExecProcessRequest {
        id: id.clone(),
        exec_id: "e1".into(),
        spec: Some(Any {
            type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
            value: serde_json::to_vec(&spec).unwrap(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    task.exec(ctx(), &exec).await.expect("Exec");
    let waiter = {
        let task = task.clone();
        let req = api::WaitRequest {
            id: id.clone(),
            exec_id: "e1".into(),
            ..Default::default()
        };
        tokio::spawn(async move { task.wait(ctx(), &req).await })
    };
    let start_exec = api::StartRequest {
        id: id.clone(),
        exec_id: "e1".into(),
        ..Default::default()
    };
    task.start(ctx(), &start_exec)
        .await
        .expect("Start of the exec");
    let exited = waiter.await.unwrap().expect("Wait for the exec");
    assert_eq!(exited.exit_status, 5);
    let deleted = task
        .delete(
            ctx(),
            &api::DeleteRequest {
                id: id.clone(),
                exec_id: "e1".into(),
                ..Default::default()
            },
        )
        .await
        .expect("Delete of the exec");
    assert_eq!(deleted.exit_status, 5);

    // The service answers under containerd 1.6's name too.
    let request = ttrpc::Request {
        service: "containerd.task.v2.Task".into(),
        method: "Connect".into(),
        payload: api::ConnectRequest {
            id: id.clone(),
            ..Default::default()
        }
        .write_to_bytes()
        .unwrap(),
        timeout_nano: Duration::from_secs(10).as_nanos() as i64,
        ..Default::default()
    };
    let response = client.request(request).await.expect("v2 Connect");
    let connected = api::ConnectResponse::parse_from_bytes(&response.payload).unwrap();
    assert_eq!(connected.shim_pid, shim.id());
    assert_eq!(connected.task_pid, created.pid);

    let kill = api::KillRequest {
        id: id.clone(),
        signal: 9,
        ..Default::default()
    };
    task.kill(ctx(), &kill).await.expect("Kill");
    let wait = api::WaitRequest {
        id: id.clone(),
        ..Default::default()
    };
    let exited = task.wait(ctx(), &wait).await.expect("Wait");
    assert_eq!(exited.exit_status, 137);
    assert!(exited.exited_at.seconds > 0);
    let state_req = api::StateRequest {
        id: id.clone(),
        ..Default::default()
    };
    let st = task.state(ctx(), &state_req).await.expect("State");
    assert_eq!(st.status.enum_value(), Ok(api::Status::STOPPED));
    assert_eq!(st.exit_status, 137);
    // Killed again: containerd's clean-up expects NotFound.
    let again = task.kill(ctx(), &kill).await.unwrap_err();
    assert!(format!("{again:?}").contains("NOT_FOUND"), "{again:?}");
    assert_eq!(read_fifo(&mut stdout_reader), "hello\n");

    let deleted = task
        .delete(
            ctx(),
            &api::DeleteRequest {
                id: id.clone(),
                ..Default::default()
            },
        )
        .await
        .expect("Delete");
    assert_eq!((deleted.pid, deleted.exit_status), (created.pid, 137));
    let shutdown = api::ShutdownRequest {
        id: id.clone(),
        ..Default::default()
    };
    let _ = task.shutdown(ctx(), &shutdown).await;

    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = shim.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < until,
            "the shim did not exit after Shutdown"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the shim exited with {status}");
    assert!(
        !state.join("shim.sock").exists(),
        "the shim's socket is left"
    );
    let topics = events.topics.lock().unwrap().clone();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/exit",
            "/tasks/delete"
        ]
    );
    let _ = events_server.shutdown().await;
    // Nothing left of the container: runr's state under containerd's state dir is empty.
    let root = state.join("runr").join(NAMESPACE);
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n.to_string_lossy().starts_with('~')),
        "left in {}: {left:?}",
        root.display()
    );
}
