use crate::Global;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
    /// Signal name or number (default SIGTERM).
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Signal every process in the container, not only its init.
    #[arg(short = 'a', long)]
    pub all: bool,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let signal = container::signal::parse(&a.signal)?;
    let c = container::Container::load(&g.root, &a.id)?;
    c.kill(signal, a.all)?;
    Ok(0)
}
