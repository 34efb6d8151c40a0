//! The long-lived shim: one thread. It serves the Task API on its socket with a
//! current-thread tokio runtime, and calls runr's library in that thread (a shim serves one
//! pod: its calls are few, and a library call takes milliseconds): with no other thread,
//! it may clone the containers' processes itself (the library's in-process spawner), no
//! helper process needed. It exits once Shutdown finds no task left. Nothing in it may
//! start a thread (tokio's blocking pool, its fs module): the next create would refuse.
//!
//! The service is registered under `containerd.task.v2.Task` (containerd 1.6 and 1.7) and
//! `containerd.task.v3.Task` (containerd 2.x): v3 is v2 renamed, the same messages.

use crate::events::{CreateInfo, Publisher};
use crate::service::Service;
use crate::{address, logging, reaper, start};
use anyhow::{anyhow, Context, Result};
use containerd_shim::Flags;
use containerd_shim_protos::shim_async::create_task;
use containerd_shim_protos::ttrpc::r#async::transport::Listener;
use containerd_shim_protos::ttrpc::r#async::Server;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;
use supervisor::Supervisor;

/// The names containerd calls the Task service by.
const TASK_SERVICE_V3: &str = "containerd.task.v3.Task";
const TASK_SERVICE_V2: &str = "containerd.task.v2.Task";

/// The shim run as its own program (`-socket ADDRESS`, no action): on the socket passed as
/// descriptor 3 (see [`start::LISTENER_ENV`]), or a new one.
pub fn run(flags: &Flags) -> Result<()> {
    let bundle = std::env::current_dir().context("read the working directory (the bundle)")?;
    if flags.socket.is_empty() {
        return Err(anyhow!("no -socket given: the shim is started by `start`"));
    }
    let listener = listener(&flags.socket)?;
    // The runtime options' Root, as `start` recorded it in the bundle, else under
    // containerd's state dir.
    let root = address::recorded_root(&bundle, &flags.namespace);
    serve_on(flags, &flags.socket, listener, root)
}

/// Serve on `listener` (its address is `socket`) with runr's state under `root`, until
/// Shutdown finds no task left. `start` runs it in the child it forks.
pub fn serve_on(
    flags: &Flags,
    socket: &str,
    listener: UnixListener,
    root: std::path::PathBuf,
) -> Result<()> {
    // The socket goes however this ends: after a failure a `start` for the pod must not
    // find a socket nobody serves.
    let outcome = serve_until_shutdown(flags, socket, listener, root);
    let _ = std::fs::remove_file(address::socket_path(socket));
    outcome
}

fn serve_until_shutdown(
    flags: &Flags,
    socket: &str,
    listener: UnixListener,
    root: std::path::PathBuf,
) -> Result<()> {
    let bundle = std::env::current_dir().context("read the working directory (the bundle)")?;
    logging::init(&bundle, flags.debug);
    // SAFETY: prctl with integer arguments, changing only this process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("prctl(PR_SET_CHILD_SUBREAPER)");
    }
    let spawner = Arc::new(container::Spawner::in_process());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build the async runtime")?;
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").context("read $TTRPC_ADDRESS")?;
    let outcome = runtime.block_on(serve(listener, socket, spawner, root, ttrpc_address, flags));
    drop(runtime);
    outcome
}

/// The socket `start` opened and passed as descriptor 3, or (run by hand) a new one.
fn listener(socket: &str) -> Result<UnixListener> {
    if std::env::var(start::LISTENER_ENV).as_deref() == Ok(&start::LISTENER_FD.to_string()) {
        // Not for our own children.
        std::env::remove_var(start::LISTENER_ENV);
        // SAFETY: `start` put the listening socket at this descriptor for this process,
        // and nothing else in this process owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(start::LISTENER_FD) };
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)
            .context("set close-on-exec on the passed socket")?;
        return Ok(UnixListener::from(fd));
    }
    let path = address::socket_path(socket);
    UnixListener::bind(path).with_context(|| format!("listen on {path}"))
}

async fn serve(
    listener: UnixListener,
    socket: &str,
    spawner: Arc<container::Spawner>,
    root: std::path::PathBuf,
    ttrpc_address: String,
    flags: &Flags,
) -> Result<()> {
    listener
        .set_nonblocking(true)
        .context("make the shim socket non-blocking")?;
    let listener = Listener::try_from(listener).context("register the shim socket")?;
    // As containerd's runc shim: what an init without a pid namespace of its own leaves
    // is killed as it exits.
    let sup = Supervisor::new(spawner, root.clone()).kill_leftovers_on_exit();
    let create_info = CreateInfo::default();
    let publisher = Publisher::start(
        ttrpc_address,
        flags.namespace.clone(),
        sup.subscribe(),
        create_info.clone(),
    );
    let service = Arc::new(Service::new(
        sup,
        root,
        flags.namespace.clone(),
        publisher,
        create_info,
    ));
    let exit = service.exit.clone();
    let mut services = create_task(service.clone());
    let v3 = services
        .remove(TASK_SERVICE_V3)
        .ok_or_else(|| anyhow!("the generated Task service is not {TASK_SERVICE_V3}"))?;
    let v2 = create_task(service.clone())
        .remove(TASK_SERVICE_V3)
        .ok_or_else(|| anyhow!("the generated Task service is not {TASK_SERVICE_V3}"))?;
    services.insert(TASK_SERVICE_V3.to_string(), v3);
    services.insert(TASK_SERVICE_V2.to_string(), v2);
    let mut server = Server::new()
        .add_listener(listener)
        .register_service(services);
    server
        .start()
        .await
        .map_err(|e| anyhow!("start the ttrpc server: {e:?}"))?;
    let known = {
        let service = service.clone();
        Arc::new(move || service.known_pids())
    };
    tokio::spawn(reaper::reap_orphans(known));
    tracing::info!(pid = std::process::id(), socket, "serving");
    exit.notified().await;
    tracing::info!("shutting down: no task left");
    // At once: a `start` for a new container of this pod must not find this shim, which is
    // going, but start a new one.
    let _ = std::fs::remove_file(address::socket_path(socket));
    // The last events (the delete) reach containerd before the shim goes.
    service.publisher().flush(Duration::from_secs(5)).await;
    // Let the Shutdown call's answer go out.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = server.shutdown().await;
    Ok(())
}
