use crate::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
}

/// `pause`: freeze every process of the container.
pub fn pause(g: &Global, a: Args) -> anyhow::Result<i32> {
    container::Container::load(&g.root, &a.id)?.pause()?;
    Ok(0)
}

/// `resume`: thaw a paused container.
pub fn resume(g: &Global, a: Args) -> anyhow::Result<i32> {
    container::Container::load(&g.root, &a.id)?.resume()?;
    Ok(0)
}
