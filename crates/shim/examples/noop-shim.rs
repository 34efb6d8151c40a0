//! A shim that runs nothing: containerd's floor for `ctr run`, which scripts/bench-shim.sh
//! measures as the runtime `io.containerd.noop.v2` (install it on containerd's PATH as
//! `containerd-shim-noop-v2`). Every call containerd and ctr make for `ctr run --rm` is
//! answered at once: Create opens and closes the output fifos (ctr waits for their
//! end-of-file), the "process" has exited with status 0 by the time anyone asks. What a
//! `ctr run --rm` through it costs is ctr's and containerd's own work, plus the shim
//! protocol's process starts (`start`, the server, `delete`) at their cheapest.
//!
//! Not a shim to run containers with: a measuring stick.

use async_trait::async_trait;
use containerd_shim_protos::api;
use containerd_shim_protos::protobuf;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim_async::{create_task, Task};
use containerd_shim_protos::ttrpc;
use containerd_shim_protos::ttrpc::r#async::transport::Listener;
use containerd_shim_protos::ttrpc::r#async::{Server, TtrpcContext};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::SystemTime;

struct Noop {
    exit: Arc<tokio::sync::Notify>,
}

fn exited() -> protobuf::MessageField<protobuf::well_known_types::timestamp::Timestamp> {
    Some(SystemTime::now().into()).into()
}

#[async_trait]
impl Task for Noop {
    async fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> ttrpc::Result<api::CreateTaskResponse> {
        // Writers come and go: ctr's readers see end-of-file.
        for path in [&req.stdout, &req.stderr] {
            if !path.is_empty() {
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path);
            }
        }
        Ok(api::CreateTaskResponse {
            pid: std::process::id(),
            ..Default::default()
        })
    }

    async fn start(
        &self,
        _: &TtrpcContext,
        _: api::StartRequest,
    ) -> ttrpc::Result<api::StartResponse> {
        Ok(api::StartResponse {
            pid: std::process::id(),
            ..Default::default()
        })
    }

    async fn state(
        &self,
        _: &TtrpcContext,
        req: api::StateRequest,
    ) -> ttrpc::Result<api::StateResponse> {
        Ok(api::StateResponse {
            id: req.id,
            pid: std::process::id(),
            status: api::Status::STOPPED.into(),
            exited_at: exited(),
            ..Default::default()
        })
    }

    async fn wait(
        &self,
        _: &TtrpcContext,
        _: api::WaitRequest,
    ) -> ttrpc::Result<api::WaitResponse> {
        Ok(api::WaitResponse {
            exit_status: 0,
            exited_at: exited(),
            ..Default::default()
        })
    }

    async fn delete(
        &self,
        _: &TtrpcContext,
        _: api::DeleteRequest,
    ) -> ttrpc::Result<api::DeleteResponse> {
        Ok(api::DeleteResponse {
            pid: std::process::id(),
            exit_status: 0,
            exited_at: exited(),
            ..Default::default()
        })
    }

    async fn connect(
        &self,
        _: &TtrpcContext,
        _: api::ConnectRequest,
    ) -> ttrpc::Result<api::ConnectResponse> {
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: std::process::id(),
            ..Default::default()
        })
    }

    async fn shutdown(&self, _: &TtrpcContext, _: api::ShutdownRequest) -> ttrpc::Result<Empty> {
        self.exit.notify_one();
        Ok(Empty::new())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flags = containerd_shim::parse(&args[1..]).expect("containerd's flags");
    match flags.action.as_str() {
        "start" => start(&flags),
        "delete" => {
            let r = api::DeleteResponse {
                exited_at: exited(),
                ..Default::default()
            };
            std::io::stdout()
                .write_all(&r.write_to_bytes().expect("encode"))
                .expect("write the DeleteResponse");
        }
        other => panic!("noop-shim: unknown action {other:?}"),
    }
}

/// Bind the socket, fork the server (no exec: the cheapest start there is), print the
/// address.
fn start(_flags: &containerd_shim::Flags) {
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    // In the bundle (the working directory), which containerd removes after the task.
    let bundle = std::env::current_dir().expect("the bundle");
    let path = bundle.join("noop.sock").to_string_lossy().into_owned();
    assert!(path.len() < 108, "{path}: too long for a unix socket");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).expect("bind the socket");
    // SAFETY: this process is single-threaded: the child is a whole copy.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: plain system calls on descriptors this process owns.
            unsafe {
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
            }
            serve(listener, &path);
            std::process::exit(0);
        }
        pid if pid < 0 => panic!("fork: {}", std::io::Error::last_os_error()),
        _ => print!("unix://{path}"),
    }
}

fn serve(listener: UnixListener, path: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        listener.set_nonblocking(true).expect("non-blocking");
        let exit = Arc::new(tokio::sync::Notify::new());
        let service = Arc::new(Noop { exit: exit.clone() });
        let mut services = create_task(service.clone());
        let v3 = services
            .remove("containerd.task.v3.Task")
            .expect("the Task service");
        services.insert("containerd.task.v2.Task".to_string(), v3);
        let mut server = Server::new()
            .add_listener(Listener::try_from(listener).expect("listener"))
            .register_service(services);
        server.start().await.expect("serve");
        exit.notified().await;
        let _ = std::fs::remove_file(path);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let _ = server.shutdown().await;
    });
}
