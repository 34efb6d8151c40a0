use crate::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let mut c = container::Container::load(&g.root, &a.id)?;
    let started = c.start()?;
    super::warn_all(&started.warnings);
    if let Some(relay) = &started.notify {
        c.wait_ready(relay)?;
    }
    Ok(0)
}
