//! The `delete` action: containerd runs it (working directory: the bundle) when a shim
//! died or never answered, to remove what the shim left: the container (killed), its
//! rootfs mount. It prints a DeleteResponse: the container was killed.

use crate::{address, rootfs};
use anyhow::{Context, Result};
use containerd_shim::Flags;
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;
use std::io::Write;
use std::time::SystemTime;

pub fn run(flags: &Flags) -> Result<()> {
    let bundle = std::env::current_dir().context("read the working directory (the bundle)")?;
    let root = address::recorded_root(&bundle, &flags.namespace);
    let mut pid = 0;
    use container::remnant::{load_for_delete, Loaded};
    // A create cut short by the shim's death leaves no readable state.json: its remnant
    // (init, cgroups, directory) goes too, as `runr delete --force` removes it.
    let deleted = match load_for_delete(&root, &flags.id) {
        Ok(Loaded::Container(c)) => {
            pid = c.saved().init_pid;
            c.delete(true)
        }
        Ok(Loaded::Remnant(r)) => r.delete(),
        Err(container::Error::NotExist) => Ok(vec![]),
        Err(e) => Err(e),
    }
    .map(|warnings| {
        for w in warnings {
            eprintln!("containerd-shim-runr-v2: delete {}: {w}", flags.id);
        }
    })
    .with_context(|| format!("delete container {} under {}", flags.id, root.display()));
    // The rootfs goes whatever became of the container: containerd will not ask again.
    let unmounted = rootfs::unmount(&bundle.join("rootfs"));
    deleted?;
    unmounted?;
    let response = DeleteResponse {
        pid: u32::try_from(pid).unwrap_or(0),
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: Some(SystemTime::now().into()).into(),
        ..Default::default()
    };
    let bytes = response
        .write_to_bytes()
        .context("encode the DeleteResponse")?;
    let mut out = std::io::stdout();
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .context("write the DeleteResponse to stdout")?;
    Ok(())
}
