use super::create::CreateFlags;
use crate::Global;
use container::Container;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Return once the container has started instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits (no delete).
    #[arg(long)]
    pub keep: bool,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let mut opts = a.flags.options(g, &a.id, a.detach);
    if !a.detach {
        // Signals that arrive from now on are forwarded to the container, not lost.
        opts.init_sigmask = Some(crate::relay::block_forwarded_signals()?);
    }
    let mut c = container::create(&opts)?;
    let started = match c.start() {
        Ok(started) => started,
        Err(e) => {
            if let Err(cleanup) = c.delete(true) {
                tracing::warn!("cleanup after a failed start: {cleanup}");
            }
            return Err(e.into());
        }
    };
    super::warn_all(&started.warnings);
    if a.detach {
        if let Some(relay) = &started.notify {
            c.wait_ready(relay)?;
        }
        return Ok(0);
    }
    let pid = c.saved().init_pid;
    let console = c.take_console();
    c.unlock();
    drop(c);
    let code = crate::relay::wait_forwarding_signals(pid, console, started.notify)?;
    if !a.keep {
        super::warn_all(&Container::load(&g.root, &a.id)?.delete(true)?);
    }
    Ok(code)
}
