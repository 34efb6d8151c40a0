use crate::Global;
use anyhow::Context;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
    /// JSON resources to apply (a file, or - for stdin); the flags below are then ignored.
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g, t allowed; -1: none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Kernel TCP buffer memory limit.
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// CFS quota in microseconds per period (-1: none).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// Realtime runtime in microseconds per period.
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// Realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPUs to run on (e.g. 0-1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Maximum number of processes (-1: no limit).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block I/O weight (10 to 1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let resources = match &a.resources {
        Some(path) => read_resources(path)?,
        None => from_flags(&a)?,
    };
    let mut c = container::Container::load(&g.root, &a.id)?;
    c.update(&resources)?;
    Ok(0)
}

fn read_resources(path: &PathBuf) -> anyhow::Result<LinuxResources> {
    let text = if path.as_os_str() == "-" {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut s).context("read stdin")?;
        s
    } else {
        std::fs::read(path).with_context(|| format!("read {}", path.display()))?
    };
    container::config::parse(&text)
        .map_err(|e| anyhow::anyhow!("{}: invalid resources: {e}", path.display()))
}

fn from_flags(a: &Args) -> anyhow::Result<LinuxResources> {
    let mut memory = Map::new();
    for (key, flag, value) in [
        ("limit", "memory", &a.memory),
        ("swap", "memory-swap", &a.memory_swap),
        ("reservation", "memory-reservation", &a.memory_reservation),
        ("kernelTCP", "kernel-memory-tcp", &a.kernel_memory_tcp),
    ] {
        if let Some(v) = value {
            let bytes = parse_size(v).with_context(|| format!("invalid value for {flag}"))?;
            memory.insert(key.into(), json!(bytes));
        }
    }
    let mut cpu = Map::new();
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            cpu.insert(key.into(), v);
        }
    };
    put("shares", a.cpu_share.map(Value::from));
    put("quota", a.cpu_quota.map(Value::from));
    put("period", a.cpu_period.map(Value::from));
    put("realtimeRuntime", a.cpu_rt_runtime.map(Value::from));
    put("realtimePeriod", a.cpu_rt_period.map(Value::from));
    put("cpus", a.cpuset_cpus.clone().map(Value::from));
    put("mems", a.cpuset_mems.clone().map(Value::from));
    let mut r = Map::new();
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = a.pids_limit {
        r.insert("pids".into(), json!({ "limit": p }));
    }
    if let Some(w) = a.blkio_weight {
        if !(10..=1000).contains(&w) {
            anyhow::bail!("invalid value for blkio-weight: {w} is not between 10 and 1000");
        }
        r.insert("blockIO".into(), json!({ "weight": w }));
    }
    Ok(serde_json::from_value(Value::Object(r))?)
}

/// A byte count as docker and runc take it: a number with an optional binary suffix
/// (b, k, m, g, t, p, with or without a trailing b), or -1 for no limit.
fn parse_size(s: &str) -> anyhow::Result<i64> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    let lower = s.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => anyhow::bail!("invalid size: '{s}'"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: '{s}'"))?;
    Ok((n * mult) as i64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("2kb").unwrap(), 2048);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("1x").is_err());
        assert!(parse_size("m").is_err());
        assert!(parse_size("-5").is_err());
    }
}
