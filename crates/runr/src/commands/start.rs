use crate::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let c = container::Container::load(&g.root, &a.id)?;
    super::warn_all(&c.start()?);
    Ok(0)
}
