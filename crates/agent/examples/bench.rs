//! The agent against the runr CLI, on the same busybox bundle (scripts/bench-agent.sh runs
//! it with release builds and the state on tmpfs):
//! - CreateContainer + StartContainer + WaitProcess + RemoveContainer of `true` over the
//!   agent's unix socket, against `runr run` of the same config;
//! - ExecProcess + WaitProcess of `true` (and its output read to the end, as a shim does),
//!   against `runr exec`, both into a running `sleep`;
//! - the agent's RSS idle, with 100 containers running, and after they are removed; the
//!   spawner helper's beside it.
//!
//! Usage: bench --agent BIN --runr BIN --rootfs DIR --work DIR [--runs N]

use agent::protocols::{agent as pb, agent_ttrpc::AgentServiceClient, health, health_ttrpc, oci};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use ttrpc::r#async::Client;

struct Args {
    agent: PathBuf,
    runr: PathBuf,
    rootfs: PathBuf,
    work: PathBuf,
    runs: usize,
}

fn args() -> Args {
    let mut a = std::env::args().skip(1);
    let (mut agent, mut runr, mut rootfs, mut work, mut runs) = (None, None, None, None, 100);
    while let Some(flag) = a.next() {
        let value = a.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--agent" => agent = Some(value.into()),
            "--runr" => runr = Some(value.into()),
            "--rootfs" => rootfs = Some(value.into()),
            "--work" => work = Some(value.into()),
            "--runs" => runs = value.parse().expect("--runs N"),
            other => panic!("unknown flag {other}"),
        }
    }
    let need = |v: Option<PathBuf>, f: &str| v.unwrap_or_else(|| panic!("{f} is needed"));
    Args {
        agent: need(agent, "--agent"),
        runr: need(runr, "--runr"),
        rootfs: need(rootfs, "--rootfs"),
        work: need(work, "--work"),
        runs,
    }
}

fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_timeout(Duration::from_secs(30).as_nanos() as i64)
}

fn strings(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

fn process(args: &[&str]) -> oci::Process {
    oci::Process {
        User: Some(oci::User::default()).into(),
        Args: strings(args),
        Env: strings(&["PATH=/bin"]),
        Cwd: "/".into(),
        NoNewPrivileges: true,
        ..Default::default()
    }
}

/// A container as Kata's shim sends it, cut to what runs `args` in busybox.
fn spec(rootfs: &Path, args: &[&str]) -> oci::Spec {
    let mount = |dest: &str, typ: &str, options: &[&str]| oci::Mount {
        destination: dest.into(),
        type_: typ.into(),
        source: typ.into(),
        options: strings(options),
        ..Default::default()
    };
    oci::Spec {
        Version: "1.1.0".into(),
        Process: Some(process(args)).into(),
        Root: Some(oci::Root {
            Path: rootfs.display().to_string(),
            ..Default::default()
        })
        .into(),
        Mounts: vec![
            mount("/proc", "proc", &["nosuid", "noexec", "nodev"]),
            mount("/dev", "tmpfs", &["nosuid", "strictatime", "mode=755"]),
        ],
        Linux: Some(oci::Linux {
            Namespaces: ["pid", "ipc", "uts", "mount"]
                .iter()
                .map(|t| oci::LinuxNamespace {
                    Type: t.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

/// Milliseconds: median, mean and standard deviation.
fn summary(samples: &mut [f64]) -> String {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = samples.len() as f64;
    let mean = samples.iter().sum::<f64>() / n;
    let sd = (samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt();
    let median = samples[samples.len() / 2];
    format!("{median:7.2} ms (mean {mean:6.2} ± {sd:5.2})")
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn run_cli(runr: &Path, root: &Path, args: &[&str]) {
    let status = Command::new(runr)
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run runr");
    assert!(status.success(), "runr {args:?}: {status}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The agent's spawner helper.
fn spawner_of(pid: u32) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .find(|p: &u32| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "runr-spawner")
        })
}

struct Bench {
    a: AgentServiceClient,
    rootfs: PathBuf,
}

impl Bench {
    async fn create_start(&self, id: &str, args: &[&str]) {
        let req = pb::CreateContainerRequest {
            container_id: id.into(),
            exec_id: id.into(),
            OCI: Some(spec(&self.rootfs, args)).into(),
            ..Default::default()
        };
        self.a.create_container(ctx(), &req).await.unwrap();
        let req = pb::StartContainerRequest {
            container_id: id.into(),
            ..Default::default()
        };
        self.a.start_container(ctx(), &req).await.unwrap();
    }

    async fn wait(&self, id: &str, exec_id: &str) -> i32 {
        let req = pb::WaitProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        };
        self.a.wait_process(ctx(), &req).await.unwrap().status
    }

    async fn remove(&self, id: &str) {
        let req = pb::RemoveContainerRequest {
            container_id: id.into(),
            ..Default::default()
        };
        self.a.remove_container(ctx(), &req).await.unwrap();
    }

    async fn drain(&self, id: &str, exec_id: &str) {
        let req = pb::ReadStreamRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
            ..Default::default()
        };
        while !self
            .a
            .read_stdout(ctx(), &req)
            .await
            .unwrap()
            .data
            .is_empty()
        {}
        while !self
            .a
            .read_stderr(ctx(), &req)
            .await
            .unwrap()
            .data
            .is_empty()
        {}
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = args();
    let work = &args.work;
    let cli_root = work.join("cli-state");
    let bundle = work.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    // The CLI's bundle has the config the agent is sent.
    let config = agent::convert::spec(&spec(&args.rootfs, &["true"])).unwrap();
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
    let mut sleeper = config.clone();
    sleeper
        .process_mut()
        .as_mut()
        .unwrap()
        .set_args(Some(strings(&["sleep", "1000"])));

    let sock = work.join("agent.sock");
    let address = format!("unix://{}", sock.display());
    let mut child = Command::new(&args.agent)
        .args([
            "--server-address",
            &address,
            "--log-level",
            "warn",
            "--state-dir",
        ])
        .arg(work.join("agent-state"))
        .spawn()
        .expect("start the agent");
    while !sock.exists() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let client = Client::connect(&address).await.unwrap();
    health_ttrpc::HealthClient::new(client.clone())
        .check(ctx(), &health::CheckRequest::new())
        .await
        .unwrap();
    let pid = child.id();
    let idle = rss_kib(pid);
    let spawner_idle = spawner_of(pid).map(rss_kib).unwrap_or(0);
    let b = Bench {
        a: AgentServiceClient::new(client.clone()),
        rootfs: args.rootfs.clone(),
    };
    let runs = args.runs;
    const WARMUP: usize = 5;
    println!("{runs} runs each, after {WARMUP} warm-up runs; median (mean ± sd)");
    // What one RPC costs by itself.
    let health = health_ttrpc::HealthClient::new(client.clone());
    let mut check = Vec::new();
    for i in 0..runs + WARMUP {
        let t = Instant::now();
        health
            .check(ctx(), &health::CheckRequest::new())
            .await
            .unwrap();
        if i >= WARMUP {
            check.push(ms(t));
        }
    }
    println!(
        "an RPC's round trip (Check)                 {}",
        summary(&mut check)
    );

    let mut agent_run = Vec::new();
    // Create+Start, Wait, Remove apart.
    let mut phases = [Vec::new(), Vec::new(), Vec::new()];
    for i in 0..runs + WARMUP {
        let id = format!("run-{i}");
        let t = Instant::now();
        b.create_start(&id, &["true"]).await;
        let created = ms(t);
        assert_eq!(b.wait(&id, "").await, 0);
        let waited = ms(t);
        b.remove(&id).await;
        if i >= WARMUP {
            agent_run.push(ms(t));
            phases[0].push(created);
            phases[1].push(waited - created);
            phases[2].push(ms(t) - waited);
        }
    }
    let mut cli_run = Vec::new();
    for i in 0..runs + WARMUP {
        let id = format!("cli-run-{i}");
        let t = Instant::now();
        run_cli(
            &args.runr,
            &cli_root,
            &["run", "--bundle", bundle.to_str().unwrap(), &id],
        );
        if i >= WARMUP {
            cli_run.push(ms(t));
        }
    }
    println!("container of `true`, created, started, waited for, removed:");
    println!(
        "  agent (Create+Start+Wait+RemoveContainer) {}",
        summary(&mut agent_run)
    );
    println!(
        "  runr run                                  {}",
        summary(&mut cli_run)
    );
    let [create, wait, remove] = &mut phases;
    println!(
        "  agent, Create+StartContainer              {}",
        summary(create)
    );
    println!(
        "  agent, WaitProcess                        {}",
        summary(wait)
    );
    println!(
        "  agent, RemoveContainer                    {}",
        summary(remove)
    );

    b.create_start("sleeper", &["sleep", "1000"]).await;
    let mut agent_exec = Vec::new();
    for i in 0..runs + WARMUP {
        let exec = format!("exec-{i}");
        let t = Instant::now();
        let req = pb::ExecProcessRequest {
            container_id: "sleeper".into(),
            exec_id: exec.clone(),
            process: Some(process(&["true"])).into(),
            ..Default::default()
        };
        b.a.exec_process(ctx(), &req).await.unwrap();
        assert_eq!(b.wait("sleeper", &exec).await, 0);
        b.drain("sleeper", &exec).await;
        if i >= WARMUP {
            agent_exec.push(ms(t));
        }
    }
    b.remove("sleeper").await;
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&sleeper).unwrap(),
    )
    .unwrap();
    run_cli(
        &args.runr,
        &cli_root,
        &[
            "run",
            "-d",
            "--bundle",
            bundle.to_str().unwrap(),
            "cli-sleeper",
        ],
    );
    let mut cli_exec = Vec::new();
    for i in 0..runs + WARMUP {
        let t = Instant::now();
        run_cli(&args.runr, &cli_root, &["exec", "cli-sleeper", "true"]);
        if i >= WARMUP {
            cli_exec.push(ms(t));
        }
    }
    run_cli(&args.runr, &cli_root, &["delete", "-f", "cli-sleeper"]);
    println!("exec of `true` into a running container:");
    println!(
        "  agent (ExecProcess+WaitProcess+reads to EOF) {}",
        summary(&mut agent_exec)
    );
    println!(
        "  runr exec                                    {}",
        summary(&mut cli_exec)
    );

    const MANY: usize = 100;
    let t = Instant::now();
    for i in 0..MANY {
        b.create_start(&format!("many-{i}"), &["sleep", "1000"])
            .await;
    }
    let create_many = t.elapsed();
    let many = rss_kib(pid);
    let spawner_many = spawner_of(pid).map(rss_kib).unwrap_or(0);
    let t = Instant::now();
    for i in 0..MANY {
        b.remove(&format!("many-{i}")).await;
    }
    let remove_many = t.elapsed();
    let after = rss_kib(pid);
    println!("runr-agent RSS (the spawner helper's beside it):");
    println!("  idle                      {idle:6} KiB ({spawner_idle} KiB)");
    println!("  {MANY} containers running    {many:6} KiB ({spawner_many} KiB)");
    println!("  after removing them       {after:6} KiB");
    println!(
        "  per container             {:6.1} KiB",
        (many as f64 - idle as f64) / MANY as f64
    );
    println!(
        "{MANY} containers of `sleep` created and started in {:.0} ms, removed in {:.0} ms",
        create_many.as_secs_f64() * 1000.0,
        remove_many.as_secs_f64() * 1000.0
    );

    // SAFETY: kill(2) on the agent this program started and has not reaped.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "the agent ended with {status}");
}
