//! The agent's server on a unix socket, driven by a ttrpc client generated from the same
//! protos: health, the error statuses, an RPC of Kata's that runr does not register, and the
//! service's handling of each request over a recording backend. Also the binary itself.

use agent::address::ServerAddress;
use agent::backend::{Backend, CreateContainer, ProcessRef, Sandbox, SignalTarget, Unwired};
use agent::error::AgentError;
use agent::protocols::{
    agent as pb, agent_ttrpc::AgentServiceClient, health, health_ttrpc::HealthClient, oci,
};
use agent::server::AgentServer;
use async_trait::async_trait;
use oci_spec::runtime::{LinuxResources, Process};
use protobuf::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ttrpc::context;
use ttrpc::r#async::Client;
use ttrpc::Code;

fn ctx() -> ttrpc::context::Context {
    context::with_timeout(Duration::from_secs(10).as_nanos() as i64)
}

/// The status of a failed call.
fn status<T: std::fmt::Debug>(r: ttrpc::Result<T>) -> ttrpc::Status {
    match r {
        Err(ttrpc::Error::RpcStatus(s)) => s,
        other => panic!("not a status: {other:?}"),
    }
}

struct Running {
    server: AgentServer,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn start<B: Backend>(backend: Arc<B>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let address = ServerAddress::Unix(dir.path().join("agent.sock"));
    let server = AgentServer::start(&address, backend).await.unwrap();
    let client = Client::connect(&address.to_string()).await.unwrap();
    Running {
        server,
        client,
        _dir: dir,
    }
}

fn minimal_spec() -> oci::Spec {
    oci::Spec {
        Process: Some(oci::Process {
            Args: vec!["true".into()],
            ..Default::default()
        })
        .into(),
        Root: Some(oci::Root {
            Path: "/rootfs".into(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_and_version() {
    let r = start(Arc::new(Unwired)).await;
    let h = HealthClient::new(r.client.clone());
    let c = h.check(ctx(), &health::CheckRequest::new()).await.unwrap();
    assert_eq!(
        c.status.enum_value(),
        Ok(health::health_check_response::ServingStatus::SERVING)
    );
    let v = h
        .version(ctx(), &health::CheckRequest::new())
        .await
        .unwrap();
    assert_eq!(v.agent_version, env!("CARGO_PKG_VERSION"));
    assert!(!v.grpc_version.is_empty());
    r.server.shutdown().await.unwrap();
}

/// A raw call to any service and method, as a client with Kata's full proto would make it.
async fn raw_call(
    client: &Client,
    service: &str,
    method: &str,
    payload: Vec<u8>,
) -> ttrpc::Result<ttrpc::Response> {
    let mut req = ttrpc::Request::new();
    req.service = service.into();
    req.method = method.into();
    req.payload = payload;
    req.timeout_nano = Duration::from_secs(10).as_nanos() as i64;
    client.request(req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kata_rpcs_runr_does_not_serve_answer_unimplemented() {
    let r = start(Arc::new(Unwired)).await;
    let online = pb::StartContainerRequest::new().write_to_bytes().unwrap();
    // Every other method of Kata's AgentService.
    for method in [
        "UpdateEphemeralMounts",
        "RemoveStaleVirtiofsShareMounts",
        "UpdateInterface",
        "UpdateRoutes",
        "AddARPNeighbors",
        "GetIPTables",
        "SetIPTables",
        "GetMetrics",
        "MemAgentMemcgSet",
        "MemAgentCompactSet",
        "OnlineCPUMem",
        "ReseedRandomDev",
        "GetGuestDetails",
        "MemHotplugByProbe",
        "SetGuestDateTime",
        "CopyFile",
        "AddSwap",
        "GetVolumeStats",
        "ResizeVolume",
        "SetPolicy",
    ] {
        let s = status(raw_call(&r.client, "grpc.AgentService", method, online.clone()).await);
        assert_eq!(s.code(), Code::UNIMPLEMENTED, "{method}: {s:?}");
    }
    // An unknown service, by ttrpc's rule.
    let s = status(raw_call(&r.client, "grpc.NoSuchService", "Check", vec![]).await);
    assert_eq!(s.code(), Code::INVALID_ARGUMENT);
    // Still healthy afterwards, on the same connection.
    let h = HealthClient::new(r.client.clone());
    h.check(ctx(), &health::CheckRequest::new()).await.unwrap();
    // A payload that is no protobuf at all: an error, not a crash.
    let s = status(
        raw_call(
            &r.client,
            "grpc.AgentService",
            "StartContainer",
            vec![0xff, 0xff, 0xff],
        )
        .await,
    );
    assert_ne!(s.code(), Code::OK);
    h.check(ctx(), &health::CheckRequest::new()).await.unwrap();
    r.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwired_container_calls_say_why_and_bad_requests_are_invalid() {
    let r = start(Arc::new(Unwired)).await;
    let a = AgentServiceClient::new(r.client.clone());

    let req = pb::CreateContainerRequest {
        container_id: "c1".into(),
        exec_id: "c1".into(),
        OCI: Some(minimal_spec()).into(),
        ..Default::default()
    };
    let s = status(a.create_container(ctx(), &req).await);
    assert_eq!(s.code(), Code::UNIMPLEMENTED);
    assert!(
        s.message().contains("supervisor is not wired"),
        "{}",
        s.message()
    );

    // A bad spec is refused before any backend sees it, naming the field.
    let mut bad = req.clone();
    bad.OCI.as_mut().unwrap().Linux = Some(oci::Linux {
        Namespaces: vec![oci::LinuxNamespace {
            Type: "netns".into(),
            ..Default::default()
        }],
        ..Default::default()
    })
    .into();
    let s = status(a.create_container(ctx(), &bad).await);
    assert_eq!(s.code(), Code::INVALID_ARGUMENT);
    assert_eq!(
        s.message(),
        "CreateContainer c1: invalid OCI.Linux.Namespaces[0].Type: unknown namespace type \"netns\""
    );
    let mut passfd = req.clone();
    passfd.stdout_port = 1025;
    let s = status(a.create_container(ctx(), &passfd).await);
    assert_eq!(s.code(), Code::UNIMPLEMENTED);
    assert!(s.message().contains("stdout_port"), "{}", s.message());
    let mut no_oci = req.clone();
    no_oci.OCI = None.into();
    assert_eq!(
        status(a.create_container(ctx(), &no_oci).await).code(),
        Code::INVALID_ARGUMENT
    );
    let s = status(
        a.start_container(ctx(), &pb::StartContainerRequest::new())
            .await,
    );
    assert_eq!(s.code(), Code::INVALID_ARGUMENT);
    assert_eq!(s.message(), "StartContainer: container_id is empty");

    for s in [
        status(
            a.wait_process(
                ctx(),
                &pb::WaitProcessRequest {
                    container_id: "c1".into(),
                    ..Default::default()
                },
            )
            .await,
        ),
        status(a.get_oom_event(ctx(), &pb::GetOOMEventRequest::new()).await),
        status(
            a.stats_container(
                ctx(),
                &pb::StatsContainerRequest {
                    container_id: "c1".into(),
                    ..Default::default()
                },
            )
            .await,
        ),
    ] {
        assert_eq!(s.code(), Code::UNIMPLEMENTED, "{s:?}");
    }

    // The agent's own network.
    let l = a
        .list_interfaces(ctx(), &pb::ListInterfacesRequest::new())
        .await
        .unwrap();
    assert!(l.Interfaces.iter().any(|i| i.name == "lo"), "{l:?}");
    a.list_routes(ctx(), &pb::ListRoutesRequest::new())
        .await
        .unwrap();

    // One sandbox at a time.
    let sb = pb::CreateSandboxRequest {
        sandbox_id: "sb1".into(),
        hostname: "pod".into(),
        ..Default::default()
    };
    a.create_sandbox(ctx(), &sb).await.unwrap();
    let s = status(a.create_sandbox(ctx(), &sb).await);
    assert_eq!(s.code(), Code::INVALID_ARGUMENT);
    a.destroy_sandbox(ctx(), &pb::DestroySandboxRequest::new())
        .await
        .unwrap();
    a.create_sandbox(ctx(), &sb).await.unwrap();
    r.server.shutdown().await.unwrap();
}

/// A backend that records what the service asked of it and answers from a script.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Recorder {
    fn log(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
    fn known(&self, id: &str) -> Result<(), AgentError> {
        if id == "c1" {
            Ok(())
        } else {
            Err(AgentError::not_found(format!("container {id} not found")))
        }
    }
}

type R<T> = Result<T, AgentError>;

#[async_trait]
impl Backend for Recorder {
    async fn create_sandbox(&self, s: Sandbox) -> R<()> {
        self.log(format!("create_sandbox {} {}", s.id, s.hostname));
        Ok(())
    }
    async fn destroy_sandbox(&self) -> R<()> {
        self.log("destroy_sandbox".into());
        Ok(())
    }
    async fn create_container(&self, c: CreateContainer) -> R<()> {
        let args = c.spec.process().as_ref().unwrap().args().clone().unwrap();
        self.log(format!(
            "create {} {} {:?} {}",
            c.container_id, c.exec_id, args, c.sandbox_pidns
        ));
        Ok(())
    }
    async fn start_container(&self, id: &str) -> R<()> {
        self.known(id)?;
        self.log(format!("start {id}"));
        Ok(())
    }
    async fn remove_container(&self, id: &str, timeout: Option<Duration>) -> R<()> {
        self.log(format!("remove {id} {timeout:?}"));
        Ok(())
    }
    async fn exec_process(&self, p: ProcessRef, spec: Process) -> R<()> {
        self.known(&p.container_id)?;
        self.log(format!(
            "exec {} {} {:?}",
            p.container_id,
            p.exec_id,
            spec.args().clone().unwrap()
        ));
        Ok(())
    }
    async fn signal_process(&self, p: ProcessRef, signal: i32, target: SignalTarget) -> R<()> {
        self.log(format!(
            "signal {} {} {signal} {target:?}",
            p.container_id, p.exec_id
        ));
        Ok(())
    }
    async fn wait_process(&self, p: ProcessRef) -> R<i32> {
        self.known(&p.container_id)?;
        self.log(format!("wait {} {}", p.container_id, p.exec_id));
        Ok(137)
    }
    async fn update_container(&self, id: &str, r: LinuxResources) -> R<()> {
        let limit = r.memory().as_ref().and_then(|m| m.limit());
        self.log(format!("update {id} {limit:?}"));
        Ok(())
    }
    async fn stats_container(&self, id: &str) -> R<cgroups::Stats> {
        self.known(id)?;
        let mut s = cgroups::Stats::default();
        s.pids.current = 4;
        Ok(s)
    }
    async fn pause_container(&self, id: &str) -> R<()> {
        self.log(format!("pause {id}"));
        Ok(())
    }
    async fn resume_container(&self, id: &str) -> R<()> {
        self.log(format!("resume {id}"));
        Ok(())
    }
    async fn write_stdin(&self, p: ProcessRef, data: Vec<u8>) -> R<usize> {
        self.log(format!(
            "write {} {:?}",
            p.exec_id,
            String::from_utf8_lossy(&data)
        ));
        Ok(data.len())
    }
    async fn read_stdout(&self, p: ProcessRef, max: usize) -> R<Vec<u8>> {
        self.log(format!("stdout {} {max}", p.exec_id));
        Ok(b"out".to_vec())
    }
    async fn read_stderr(&self, p: ProcessRef, max: usize) -> R<Vec<u8>> {
        self.log(format!("stderr {} {max}", p.exec_id));
        Ok(Vec::new())
    }
    async fn close_stdin(&self, p: ProcessRef) -> R<()> {
        self.log(format!("close {}", p.exec_id));
        Ok(())
    }
    async fn tty_win_resize(&self, p: ProcessRef, rows: u16, columns: u16) -> R<()> {
        self.log(format!("resize {} {rows}x{columns}", p.exec_id));
        Ok(())
    }
    async fn get_oom_event(&self) -> R<String> {
        Err(AgentError::internal("the OOM watch failed: EBADF"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_hands_checked_requests_to_the_backend() {
    let rec = Arc::new(Recorder::default());
    let r = start(rec.clone()).await;
    let a = AgentServiceClient::new(r.client.clone());
    let id = |s: &str| s.to_string();

    a.create_sandbox(
        ctx(),
        &pb::CreateSandboxRequest {
            sandbox_id: id("sb"),
            hostname: id("pod"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Without an exec id the init's is the container id.
    a.create_container(
        ctx(),
        &pb::CreateContainerRequest {
            container_id: id("c1"),
            OCI: Some(minimal_spec()).into(),
            sandbox_pidns: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    a.start_container(
        ctx(),
        &pb::StartContainerRequest {
            container_id: id("c1"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = status(
        a.start_container(
            ctx(),
            &pb::StartContainerRequest {
                container_id: id("c9"),
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(
        (s.code(), s.message()),
        (Code::NOT_FOUND, "container c9 not found")
    );

    a.exec_process(
        ctx(),
        &pb::ExecProcessRequest {
            container_id: id("c1"),
            exec_id: id("e1"),
            process: Some(oci::Process {
                Args: vec![id("ls")],
                ..Default::default()
            })
            .into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = status(
        a.exec_process(
            ctx(),
            &pb::ExecProcessRequest {
                container_id: id("c1"),
                process: Some(oci::Process {
                    Args: vec![id("ls")],
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(s.code(), Code::INVALID_ARGUMENT, "an exec needs its own id");
    let s = status(
        a.exec_process(
            ctx(),
            &pb::ExecProcessRequest {
                container_id: id("c1"),
                exec_id: id("e2"),
                process: Some(oci::Process {
                    Args: vec![id("ls")],
                    Cwd: id("rel"),
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(s.code(), Code::INVALID_ARGUMENT);
    assert!(s.message().contains("process.Cwd"), "{}", s.message());

    let sig = |exec: &str, signal: u32| pb::SignalProcessRequest {
        container_id: id("c1"),
        exec_id: id(exec),
        signal,
        ..Default::default()
    };
    a.signal_process(ctx(), &sig("", 9)).await.unwrap();
    a.signal_process(ctx(), &sig("", 15)).await.unwrap();
    a.signal_process(ctx(), &sig("e1", 9)).await.unwrap();
    assert_eq!(
        status(a.signal_process(ctx(), &sig("e1", 0)).await).code(),
        Code::INVALID_ARGUMENT
    );
    assert_eq!(
        status(a.signal_process(ctx(), &sig("e1", 65)).await).code(),
        Code::INVALID_ARGUMENT
    );

    let w = a
        .wait_process(
            ctx(),
            &pb::WaitProcessRequest {
                container_id: id("c1"),
                exec_id: id("e1"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(w.status, 137);
    let s = status(
        a.wait_process(
            ctx(),
            &pb::WaitProcessRequest {
                container_id: id("nope"),
                exec_id: id("e1"),
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(s.code(), Code::NOT_FOUND);

    a.update_container(
        ctx(),
        &pb::UpdateContainerRequest {
            container_id: id("c1"),
            resources: Some(oci::LinuxResources {
                Memory: Some(oci::LinuxMemory {
                    Limit: 1 << 20,
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let st = a
        .stats_container(
            ctx(),
            &pb::StatsContainerRequest {
                container_id: id("c1"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(st.cgroup_stats.pids_stats.current, 4);
    a.pause_container(
        ctx(),
        &pb::PauseContainerRequest {
            container_id: id("c1"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    a.resume_container(
        ctx(),
        &pb::ResumeContainerRequest {
            container_id: id("c1"),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let n = a
        .write_stdin(
            ctx(),
            &pb::WriteStreamRequest {
                container_id: id("c1"),
                exec_id: id("e1"),
                data: b"hello".to_vec(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(n.len, 5);
    let rd = |exec: &str, len: u32| pb::ReadStreamRequest {
        container_id: id("c1"),
        exec_id: id(exec),
        len,
        ..Default::default()
    };
    assert_eq!(
        a.read_stdout(ctx(), &rd("e1", 0)).await.unwrap().data,
        b"out"
    );
    a.read_stdout(ctx(), &rd("e1", 100)).await.unwrap();
    a.read_stdout(ctx(), &rd("", u32::MAX)).await.unwrap();
    assert!(a
        .read_stderr(ctx(), &rd("e1", 10))
        .await
        .unwrap()
        .data
        .is_empty());
    a.close_stdin(
        ctx(),
        &pb::CloseStdinRequest {
            container_id: id("c1"),
            exec_id: id("e1"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    a.tty_win_resize(
        ctx(),
        &pb::TtyWinResizeRequest {
            container_id: id("c1"),
            exec_id: id("e1"),
            row: 24,
            column: 80,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = status(
        a.tty_win_resize(
            ctx(),
            &pb::TtyWinResizeRequest {
                container_id: id("c1"),
                exec_id: id("e1"),
                row: 70000,
                column: 80,
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!(s.code(), Code::INVALID_ARGUMENT);
    a.remove_container(
        ctx(),
        &pb::RemoveContainerRequest {
            container_id: id("c1"),
            timeout: 0,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    a.remove_container(
        ctx(),
        &pb::RemoveContainerRequest {
            container_id: id("c1"),
            timeout: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = status(a.get_oom_event(ctx(), &pb::GetOOMEventRequest::new()).await);
    assert_eq!(
        (s.code(), s.message()),
        (Code::INTERNAL, "the OOM watch failed: EBADF")
    );
    a.destroy_sandbox(ctx(), &pb::DestroySandboxRequest::new())
        .await
        .unwrap();

    assert_eq!(
        rec.take(),
        [
            "create_sandbox sb pod",
            "create c1 c1 [\"true\"] true",
            "start c1",
            "exec c1 e1 [\"ls\"]",
            "signal c1 c1 9 AllOfContainer",
            "signal c1 c1 15 Process",
            "signal c1 e1 9 Process",
            "wait c1 e1",
            "update c1 Some(1048576)",
            "pause c1",
            "resume c1",
            "write e1 \"hello\"",
            "stdout e1 32768",
            "stdout e1 100",
            "stdout c1 1048576",
            "stderr e1 10",
            "close e1",
            "resize e1 24x80",
            "remove c1 None",
            "remove c1 Some(5s)",
            "destroy_sandbox",
        ]
    );
    r.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abstract_socket_and_a_stale_socket_file() {
    let name = format!("runr-agent-test-{}", std::process::id());
    let address: ServerAddress = format!("unix://@{name}").parse().unwrap();
    let server = AgentServer::start(&address, Arc::new(Unwired))
        .await
        .unwrap();
    let client = Client::connect(&address.to_string()).await.unwrap();
    HealthClient::new(client)
        .check(ctx(), &health::CheckRequest::new())
        .await
        .unwrap();
    // A second server on the same name fails, saying where.
    let e = AgentServer::start(&address, Arc::new(Unwired))
        .await
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains(&name), "{e:#}");
    server.shutdown().await.unwrap();

    // A socket file nobody listens on is replaced; a live one is not.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let address = ServerAddress::Unix(path.clone());
    let server = AgentServer::start(&address, Arc::new(Unwired))
        .await
        .unwrap();
    let e = AgentServer::start(&address, Arc::new(Unwired))
        .await
        .err()
        .unwrap();
    assert!(format!("{e:#}").contains("another server"), "{e:#}");
    server.shutdown().await.unwrap();
    assert!(!path.exists(), "the socket file is removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_call_leaves_the_server_healthy() {
    struct Slow;
    #[async_trait]
    impl Backend for Slow {
        async fn create_sandbox(&self, _: Sandbox) -> R<()> {
            Ok(())
        }
        async fn destroy_sandbox(&self) -> R<()> {
            Ok(())
        }
        async fn create_container(&self, _: CreateContainer) -> R<()> {
            Ok(())
        }
        async fn start_container(&self, _: &str) -> R<()> {
            Ok(())
        }
        async fn remove_container(&self, _: &str, _: Option<Duration>) -> R<()> {
            Ok(())
        }
        async fn exec_process(&self, _: ProcessRef, _: Process) -> R<()> {
            Ok(())
        }
        async fn signal_process(&self, _: ProcessRef, _: i32, _: SignalTarget) -> R<()> {
            Ok(())
        }
        async fn wait_process(&self, _: ProcessRef) -> R<i32> {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(0)
        }
        async fn update_container(&self, _: &str, _: LinuxResources) -> R<()> {
            Ok(())
        }
        async fn stats_container(&self, _: &str) -> R<cgroups::Stats> {
            Ok(Default::default())
        }
        async fn pause_container(&self, _: &str) -> R<()> {
            Ok(())
        }
        async fn resume_container(&self, _: &str) -> R<()> {
            Ok(())
        }
        async fn write_stdin(&self, _: ProcessRef, d: Vec<u8>) -> R<usize> {
            Ok(d.len())
        }
        async fn read_stdout(&self, _: ProcessRef, _: usize) -> R<Vec<u8>> {
            Ok(vec![])
        }
        async fn read_stderr(&self, _: ProcessRef, _: usize) -> R<Vec<u8>> {
            Ok(vec![])
        }
        async fn close_stdin(&self, _: ProcessRef) -> R<()> {
            Ok(())
        }
        async fn tty_win_resize(&self, _: ProcessRef, _: u16, _: u16) -> R<()> {
            Ok(())
        }
        async fn get_oom_event(&self) -> R<String> {
            Ok(String::new())
        }
    }
    let r = start(Arc::new(Slow)).await;
    let address = r.server.address().to_string();
    {
        let gone = AgentServiceClient::new(Client::connect(&address).await.unwrap());
        let req = pb::WaitProcessRequest {
            container_id: "c".into(),
            ..Default::default()
        };
        let call = gone.wait_process(
            context::with_timeout(Duration::from_millis(200).as_nanos() as i64),
            &req,
        );
        assert!(call.await.is_err());
    }
    // Another client, and the first connection of the test, both still served.
    let other = HealthClient::new(Client::connect(&address).await.unwrap());
    other
        .check(ctx(), &health::CheckRequest::new())
        .await
        .unwrap();
    HealthClient::new(r.client.clone())
        .check(ctx(), &health::CheckRequest::new())
        .await
        .unwrap();
}

/// The binary: address from the flag or the environment, JSON logs, a clean stop on SIGTERM.
#[test]
fn the_binary_serves_until_sigterm() {
    for from_env in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let address = format!("unix://{}", path.display());
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_runr-agent"));
        if from_env {
            cmd.env("KATA_AGENT_SERVER_ADDR", &address);
        } else {
            cmd.env_remove("KATA_AGENT_SERVER_ADDR")
                .args(["--server-address", &address]);
        }
        let state = dir.path().join("state");
        let child = cmd
            .args(["--log-level", "debug", "--state-dir"])
            .arg(&state)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !path.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "no socket at {}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = Client::connect(&address).await.unwrap();
            let v = HealthClient::new(client.clone())
                .version(ctx(), &health::CheckRequest::new())
                .await
                .unwrap();
            assert_eq!(v.agent_version, env!("CARGO_PKG_VERSION"));
            let s = status(
                AgentServiceClient::new(client)
                    .start_container(
                        ctx(),
                        &pb::StartContainerRequest {
                            container_id: "x".into(),
                            ..Default::default()
                        },
                    )
                    .await,
            );
            // The binary serves its containers: there is no x.
            assert_eq!(s.code(), Code::NOT_FOUND, "{s:?}");
        });
        // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(!path.exists(), "the socket file is left");
        let logs = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<serde_json::Value> = logs
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l["msg"] == "serving" && l["address"] == address.as_str()),
            "{logs}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l["msg"] == "stopping" && l["signal"] == "SIGTERM"),
            "{logs}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l["rpc"] == "StartContainer" && l["level"] == "warning"),
            "{logs}"
        );
    }
}

#[test]
fn the_binary_refuses_a_bad_address() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runr-agent"))
        .args(["--server-address", "tcp://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown scheme") && err.contains("tcp://127.0.0.1:1"),
        "{err}"
    );
}

/// vsock, where the machine has it: bind any CID, connect over the local CID (1). A machine
/// without vsock, or without its loopback transport, skips (saying so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vsock_where_the_machine_has_it() {
    let port = 20000 + std::process::id() % 20000;
    let address: ServerAddress = format!("vsock://-1:{port}").parse().unwrap();
    let server = match AgentServer::start(&address, Arc::new(Unwired)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skipped: no vsock here ({e:#})");
            return;
        }
    };
    match Client::connect(&format!("vsock://1:{port}")).await {
        Ok(client) => {
            let c = HealthClient::new(client)
                .check(ctx(), &health::CheckRequest::new())
                .await
                .unwrap();
            assert_eq!(
                c.status.enum_value(),
                Ok(health::health_check_response::ServingStatus::SERVING)
            );
        }
        Err(e) => eprintln!("skipped the call: no vsock loopback here ({e})"),
    }
    server.shutdown().await.unwrap();
}
