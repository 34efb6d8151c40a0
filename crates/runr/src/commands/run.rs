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
        opts.init_sigmask = Some(container::process::block_forwarded_signals()?);
    }
    let mut c = container::create(&opts)?;
    match c.start() {
        Ok(warnings) => super::warn_all(&warnings),
        Err(e) => {
            if let Err(cleanup) = c.delete(true) {
                tracing::warn!("cleanup after a failed start: {cleanup}");
            }
            return Err(e.into());
        }
    }
    if a.detach {
        return Ok(0);
    }
    let pid = c.saved().init_pid;
    let console = c.take_console();
    c.unlock();
    drop(c);
    let code = container::process::wait_forwarding_signals(pid, console)?;
    if !a.keep {
        super::warn_all(&Container::load(&g.root, &a.id)?.delete(true)?);
    }
    Ok(code)
}
