use crate::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
    /// Kill a running container first.
    #[arg(short = 'f', long)]
    pub force: bool,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    use container::remnant::{load_for_delete, Loaded};
    let loaded = match load_for_delete(&g.root, &a.id) {
        // As runc: forcing the removal of what is not there is no error. Engines delete
        // after a checkpoint, which has removed the container already.
        Err(container::Error::NotExist) if a.force => return Ok(0),
        loaded => loaded?,
    };
    let warnings = match loaded {
        Loaded::Container(c) => c.delete(a.force)?,
        Loaded::Remnant(r) if !a.force && r.has_live_committed_init() => anyhow::bail!(
            "container {} has a live init but its state cannot be read; use delete --force",
            a.id
        ),
        // Nothing of it ever ran the user's program: removed with or without --force.
        Loaded::Remnant(r) => r.delete()?,
    };
    super::warn_all(&warnings);
    Ok(0)
}
