//! The library from a long-lived program: creates, starts and waits for containers of one
//! bundle in a loop, in-process (no runr process per call), then execs into one; prints the
//! median times, called directly (as a single-threaded program does) and through a
//! `Spawner` (as a multi-threaded one must). scripts/bench.sh runs it next to the CLI's
//! figures.
//!
//! Usage: inproc --root DIR --bundle DIR [--runs N]   (the bundle runs /bin/true)

use container::exec::{process_from_args, ExecOptions, ProcessOverrides};
use container::{Container, CreateOptions, ProcessHandle, Spawner, Stdio};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

fn options(root: &Path, bundle: &Path, id: &str) -> CreateOptions {
    CreateOptions {
        root: root.to_path_buf(),
        id: id.into(),
        bundle: bundle.to_path_buf(),
        detached: true,
        stdio: Stdio::Inherit,
        ..Default::default()
    }
}

/// How the program reaches the library.
enum Via {
    Direct,
    Spawner(Spawner),
}

impl Via {
    fn name(&self) -> &'static str {
        match self {
            Via::Direct => "in-process",
            Via::Spawner(_) => "in-process through a spawner",
        }
    }

    fn create(&self, o: CreateOptions) -> container::Result<Container> {
        match self {
            Via::Direct => container::create(&o),
            Via::Spawner(s) => s.create(o),
        }
    }

    fn exec(&self, c: Container, o: ExecOptions) -> container::Result<ProcessHandle> {
        match self {
            Via::Direct => c.exec(&o),
            Via::Spawner(s) => s.exec(c, o),
        }
    }
}

/// create + start + wait + delete of the bundle's process.
fn run_once(via: &Via, root: &Path, bundle: &Path, id: &str) -> container::Result<i32> {
    let mut c = via.create(options(root, bundle, id))?;
    let init = c.init_handle().expect("the init runs");
    c.start()?;
    drop(c);
    let code = init.wait()?;
    Container::load(root, id)?.delete(false)?;
    Ok(code)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(arg("--root").ok_or("--root DIR is needed")?);
    let bundle = PathBuf::from(arg("--bundle").ok_or("--bundle DIR is needed")?);
    let runs: usize = arg("--runs").map_or(Ok(50), |r| r.parse())?;
    let spawner = Spawner::start()?;
    for via in [Via::Direct, Via::Spawner(spawner)] {
        measure(&via, &root, &bundle, runs)?;
    }
    Ok(())
}

fn measure(
    via: &Via,
    root: &Path,
    bundle: &Path,
    runs: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut times = Vec::new();
    for i in 0..runs + 5 {
        let t = Instant::now();
        run_once(via, root, bundle, &format!("inproc-{i}"))?;
        if i >= 5 {
            times.push(t.elapsed());
        }
    }
    println!(
        "{} create+start+wait+delete: {:.2} ms",
        via.name(),
        median(times)
    );

    // exec into a running container: its process comes from the saved config with the
    // args replaced.
    let id = "inproc-exec";
    let mut c = via.create(options(root, bundle, id))?;
    let init = c.init_handle().expect("the init runs");
    let base = c.saved().config.process().clone().unwrap_or_default();
    let process = process_from_args(
        &base,
        &ProcessOverrides {
            args: vec!["sleep".into(), "1000".into()],
            ..Default::default()
        },
    )?;
    drop(c);
    // The init stays created (started, it would run the bundle's /bin/true and end the
    // container); an exec'd `sleep` keeps the container busy, and /bin/true is exec'd beside.
    let sleeper = via.exec(Container::load(root, id)?, exec_options(process))?;
    let mut times = Vec::new();
    for i in 0..runs + 5 {
        let p = process_from_args(
            &base,
            &ProcessOverrides {
                args: vec!["/bin/true".into()],
                ..Default::default()
            },
        )?;
        let t = Instant::now();
        let h = via.exec(Container::load(root, id)?, exec_options(p))?;
        h.wait()?;
        if i >= 5 {
            times.push(t.elapsed());
        }
    }
    println!("{} exec+wait: {:.2} ms", via.name(), median(times));
    sleeper.signal(libc::SIGKILL)?;
    sleeper.wait()?;
    init.signal(libc::SIGKILL)?;
    init.wait()?;
    Container::load(root, id)?.delete(true)?;
    Ok(())
}

fn exec_options(process: oci_spec::runtime::Process) -> ExecOptions {
    ExecOptions {
        process,
        ..Default::default()
    }
}
