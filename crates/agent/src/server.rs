//! The ttrpc server: binds the address and serves `grpc.Health` and `grpc.AgentService`.

use crate::address::ServerAddress;
use crate::backend::Backend;
use crate::protocols::{agent_ttrpc, health_ttrpc};
use crate::service::{AgentService, HealthService};
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::os::unix::fs::FileTypeExt;
use std::sync::Arc;
use ttrpc::r#async::{Server, Service};

/// The services the agent registers, by fully qualified name (`grpc.Health`,
/// `grpc.AgentService`). A method of a registered service that is not in the map answers
/// UNIMPLEMENTED; an unknown service answers INVALID_ARGUMENT (ttrpc's own rules).
pub fn services<B: Backend>(backend: Arc<B>) -> HashMap<String, Service> {
    let mut s = health_ttrpc::create_health(Arc::new(HealthService));
    s.extend(agent_ttrpc::create_agent_service(Arc::new(
        AgentService::new(backend),
    )));
    s
}

/// A running server; it stops on [`AgentServer::shutdown`] (or when dropped, abruptly).
pub struct AgentServer {
    server: Server,
    address: ServerAddress,
}

impl AgentServer {
    /// Binds `address` and starts serving on the current tokio runtime.
    pub async fn start<B: Backend>(address: &ServerAddress, backend: Arc<B>) -> Result<Self> {
        if let ServerAddress::Unix(path) = address {
            remove_stale_socket(path)?;
        }
        let mut server = Server::new()
            .bind(&address.to_string())
            .with_context(|| format!("listen on {address}"))?
            .register_service(services(backend));
        server
            .start()
            .await
            .with_context(|| format!("start serving on {address}"))?;
        tracing::info!(address = %address, "serving");
        Ok(AgentServer {
            server,
            address: address.clone(),
        })
    }

    pub fn address(&self) -> &ServerAddress {
        &self.address
    }

    /// Stops accepting, lets the requests under way finish (up to ttrpc's timeout), closes
    /// the connections, and removes the socket file.
    pub async fn shutdown(mut self) -> Result<()> {
        self.server
            .shutdown()
            .await
            .with_context(|| format!("shut down the server on {}", self.address))?;
        if let ServerAddress::Unix(path) = &self.address {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!(address = %self.address, "stopped");
        Ok(())
    }
}

/// A socket file left by an agent that is gone would make bind fail: remove it. Anything
/// else at the path is left alone (bind then fails, saying so).
fn remove_stale_socket(path: &std::path::Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                anyhow::bail!("{}: another server is listening there", path.display());
            }
            std::fs::remove_file(path)
                .with_context(|| format!("remove the stale socket {}", path.display()))
        }
        _ => Ok(()),
    }
}
