use crate::Global;
use container::Event;
use serde_json::json;
use std::io::Write;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
    /// Print the resource usage once and exit.
    #[arg(long)]
    pub stats: bool,
    /// How often to print the usage (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
}

/// `events`: JSON lines as runc prints them: `{"type":"stats","id":..,"data":{..}}` every
/// interval and `{"type":"oom","id":..}` on each OOM kill, until the container stops.
pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let c = container::Container::load_unlocked(&g.root, &a.id)?;
    let line = |event: Event| {
        let v = match event {
            Event::Stats(s) => json!({"type": "stats", "id": a.id, "data": s}),
            Event::Oom => json!({"type": "oom", "id": a.id}),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{v}")
            .and_then(|()| out.flush())
            .map_err(|e| container::Error::Os {
                what: "write an event to stdout".into(),
                source: e,
            })
    };
    if a.stats {
        line(Event::Stats(Box::new(c.stats()?)))?;
        return Ok(0);
    }
    c.watch_events(a.interval, line)?;
    Ok(0)
}
