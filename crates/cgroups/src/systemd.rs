//! The systemd driver (`--systemd-cgroup`): the container lives in a transient scope that
//! systemd creates over D-Bus, so systemd knows the cgroup is taken and does not undo our
//! limits when it realizes its own units.
//!
//! cgroupsPath is `slice:prefix:name`; the scope is `prefix-name.scope` under that slice.
//! The steps, as runc takes them:
//! - [`SystemdManager::new`] connects to the system bus, so "systemd is not running" is
//!   reported before anything is made.
//! - `create`: write the limits into the scope's directories, which we make ourselves while
//!   they are empty, as the cgroupfs drivers do.
//! - `enter`: `StartTransientUnit` with the init's pid, `Delegate=yes` and the limits as unit
//!   properties; wait for the job to finish; then write every limit again (systemd writes
//!   its defaults when it realizes the unit) and join the hierarchies systemd does not
//!   manage.
//! - `update`: `SetUnitProperties`, then the files.
//! - `destroy`: `StopUnit`, then remove what is left.
//!
//! Everything but the unit itself (freezing, stats, pids, OOM events) goes through the
//! cgroupfs driver of the host's layout, on the scope's directories.

use crate::dbus::{self, s, Connection, DbusError, Message, Value};
use crate::{
    v1, v2, CgroupConfig, CgroupError, FreezerState, Layout, Manager, OomWatch, Stats, SubCgroups,
};
use oci_spec::runtime::LinuxResources;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const SYSTEMD_PATH: &str = "/org/freedesktop/systemd1";
const SYSTEMD_MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long systemd may take to start or stop a scope.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// The slice and the scope unit a container gets from its cgroupsPath (or the defaults:
/// `system.slice`, `runr-<id>.scope`).
pub fn unit_names(cgroups_path: Option<&Path>, id: &str) -> Result<(String, String), CgroupError> {
    let Some(path) = cgroups_path
        .and_then(|p| p.to_str())
        .filter(|p| !p.is_empty())
    else {
        return Ok(("system.slice".into(), format!("runr-{id}.scope")));
    };
    let parts: Vec<&str> = path.split(':').collect();
    let [slice, prefix, name] = parts.as_slice() else {
        return Err(CgroupError::Invalid(format!(
            "cgroupsPath {path:?} with --systemd-cgroup must be slice:prefix:name"
        )));
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    if !slice.ends_with(".slice") || slice.contains('/') {
        return Err(CgroupError::Invalid(format!(
            "cgroupsPath {path:?}: {slice:?} is not a slice name (NAME.slice)"
        )));
    }
    if name.is_empty() || name.contains('/') {
        return Err(CgroupError::Invalid(format!(
            "cgroupsPath {path:?}: the name part must be non-empty, without '/'"
        )));
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok((slice.to_string(), unit))
}

/// The cgroup path of a unit in `slice`: systemd nests slices by their dash-separated
/// prefixes (`a-b.slice` lives in `a.slice/a-b.slice`); `-.slice` is the root.
pub fn slice_path(slice: &str) -> Result<PathBuf, CgroupError> {
    let bad = || CgroupError::Invalid(format!("{slice:?} is not a valid systemd slice name"));
    if slice == "-.slice" {
        return Ok(PathBuf::from("/"));
    }
    let stem = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(bad());
    }
    let mut path = PathBuf::from("/");
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

/// A container cgroup that systemd owns as a transient scope.
pub struct SystemdManager {
    /// The cgroupfs driver for the scope's directories.
    fs: Box<dyn Manager>,
    unit: String,
    slice: String,
    id: String,
    unified: bool,
    bus: RefCell<Option<Connection>>,
    resources: RefCell<Option<LinuxResources>>,
}

impl SystemdManager {
    /// The manager for a new container.
    pub fn new(layout: &Layout, config: &CgroupConfig) -> Result<SystemdManager, CgroupError> {
        let (slice, unit) = unit_names(config.path.as_deref(), &config.id)?;
        let path = slice_path(&slice)?.join(&unit);
        let fs_config = CgroupConfig {
            path: Some(path),
            id: config.id.clone(),
            systemd: false,
        };
        let unified = matches!(layout, Layout::Unified { .. });
        let fs: Box<dyn Manager> = if unified {
            Box::new(v2::V2Manager::new(layout, &fs_config)?)
        } else {
            Box::new(v1::V1Manager::new(layout, &fs_config)?)
        };
        Ok(SystemdManager {
            fs,
            unit,
            slice,
            id: config.id.clone(),
            unified,
            // Connected now, so "systemd is not running" comes before anything is made.
            bus: RefCell::new(Some(connect()?)),
            resources: RefCell::new(None),
        })
    }

    /// The manager for an existing container: its unit and the directories saved for it.
    pub fn from_saved(fs: Box<dyn Manager>, unit: String) -> SystemdManager {
        let unified = matches!(fs.paths().as_slice(), [(name, _)] if name.is_empty());
        SystemdManager {
            fs,
            unit,
            slice: String::new(),
            id: String::new(),
            unified,
            bus: RefCell::new(None),
            resources: RefCell::new(None),
        }
    }

    /// The connection to systemd, made on first use.
    fn with_bus<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DbusError>,
    ) -> Result<T, CgroupError> {
        let mut bus = self.bus.borrow_mut();
        if bus.is_none() {
            *bus = Some(connect()?);
        }
        let conn = bus.as_mut().expect("connected above");
        f(conn).map_err(|e| bus_error(&self.unit, e))
    }

    /// Ask systemd for a job (`StartTransientUnit`, `StopUnit`) and wait until it is done.
    fn run_job(conn: &mut Connection, call: Message) -> Result<(), DbusError> {
        let what = call.member.clone().unwrap_or_default();
        let reply = conn.call(call)?;
        let job = reply
            .body
            .first()
            .and_then(Value::as_str)
            .ok_or_else(|| DbusError::Protocol(format!("{what} returned no job")))?
            .to_string();
        let done = conn.wait_for(&format!("the {what} job"), JOB_TIMEOUT, |m| {
            m.kind == dbus::Kind::Signal
                && m.member.as_deref() == Some("JobRemoved")
                && m.body.get(1).and_then(Value::as_str) == Some(job.as_str())
        })?;
        match done.body.get(3).and_then(Value::as_str) {
            Some("done") => Ok(()),
            result => Err(DbusError::Remote {
                name: format!("systemd job {job}"),
                message: format!("{what} ended with result {:?}", result.unwrap_or("?")),
            }),
        }
    }
}

/// Connect to the system bus and make sure systemd is on it. An explicit
/// `DBUS_SYSTEM_BUS_ADDRESS` is trusted; otherwise systemd must be the init system.
fn connect() -> Result<Connection, CgroupError> {
    let explicit = std::env::var_os("DBUS_SYSTEM_BUS_ADDRESS").is_some();
    if !explicit && !Path::new("/run/systemd/system").exists() {
        return Err(not_running("/run/systemd/system is missing"));
    }
    let address = dbus::system_bus_address();
    let mut conn = Connection::open(&address)
        .map_err(|e| not_running(&format!("no system bus at {address}: {e}")))?;
    let owner = Message::method_call(dbus::BUS_NAME, "/", dbus::BUS_NAME, "GetNameOwner")
        .with_body(vec![s(SYSTEMD)]);
    conn.call(owner)
        .map_err(|e| not_running(&format!("{SYSTEMD} is not on the bus at {address}: {e}")))?;
    // JobRemoved tells when a job is done; systemd sends it only once someone subscribed.
    let rule = format!(
        "type='signal',sender='{SYSTEMD}',interface='{SYSTEMD_MANAGER}',member='JobRemoved'"
    );
    let add_match = Message::method_call(dbus::BUS_NAME, "/", dbus::BUS_NAME, "AddMatch")
        .with_body(vec![s(rule)]);
    let subscribe = Message::method_call(SYSTEMD, SYSTEMD_PATH, SYSTEMD_MANAGER, "Subscribe");
    conn.call(add_match)
        .and_then(|_| conn.call(subscribe))
        .map_err(|e| bus_error("the manager", e))?;
    Ok(conn)
}

fn not_running(why: &str) -> CgroupError {
    CgroupError::Unsupported(format!(
        "--systemd-cgroup needs systemd as the init system, and systemd is not running on this host ({why}); run without --systemd-cgroup"
    ))
}

fn bus_error(unit: &str, e: DbusError) -> CgroupError {
    CgroupError::Unsupported(format!("systemd, for unit {unit}: {e}"))
}

fn prop(name: &str, v: Value) -> Value {
    Value::Struct(vec![s(name), Value::Variant(Box::new(v))])
}

/// systemd's "no limit".
const INFINITY: u64 = u64::MAX;

fn limit(v: i64) -> u64 {
    if v < 0 {
        INFINITY
    } else {
        v as u64
    }
}

/// The properties of a new scope: what it is, where it goes, who is in it, and its limits.
pub fn scope_properties(
    id: &str,
    slice: &str,
    pid: i32,
    resources: Option<&LinuxResources>,
    unified: bool,
) -> Result<Vec<Value>, CgroupError> {
    let io_accounting = if unified {
        "IOAccounting"
    } else {
        "BlockIOAccounting"
    };
    let mut props = vec![
        prop("Description", s(format!("runr container {id}"))),
        prop("Slice", s(slice)),
        prop("Delegate", Value::Bool(true)),
        prop("DefaultDependencies", Value::Bool(false)),
        prop(
            "PIDs",
            Value::Array("u".into(), vec![Value::U32(pid as u32)]),
        ),
        prop("MemoryAccounting", Value::Bool(true)),
        prop("CPUAccounting", Value::Bool(true)),
        prop("TasksAccounting", Value::Bool(true)),
        prop(io_accounting, Value::Bool(true)),
    ];
    if let Some(r) = resources {
        props.extend(resource_properties(r, unified)?);
    }
    Ok(props)
}

/// The limits systemd itself writes when it realizes a unit, as unit properties, so that
/// it writes ours and not its defaults. The rest (devices, hugetlb, v1 cpuset, ...) only
/// the cgroupfs driver writes.
pub fn resource_properties(r: &LinuxResources, unified: bool) -> Result<Vec<Value>, CgroupError> {
    let mut props = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            let name = if unified { "MemoryMax" } else { "MemoryLimit" };
            props.push(prop(name, Value::U64(limit(l))));
        }
        if unified {
            if let Some(l) = m.reservation() {
                props.push(prop("MemoryLow", Value::U64(limit(l))));
            }
            if let Some(swap) = v2::swap_max(m.limit(), m.swap())? {
                let v = swap.parse().unwrap_or(INFINITY);
                props.push(prop("MemorySwapMax", Value::U64(v)));
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(shares) = c.shares().filter(|&n| n > 0) {
            props.push(if unified {
                prop("CPUWeight", Value::U64(v2::cpu_weight(shares)?))
            } else {
                prop("CPUShares", Value::U64(shares))
            });
        }
        if let Some(period) = c.period().filter(|&p| p > 0) {
            props.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
        }
        if let Some(quota) = c.quota().filter(|&q| q != 0) {
            props.push(prop(
                "CPUQuotaPerSecUSec",
                Value::U64(quota_per_sec(quota, c.period())),
            ));
        }
        if unified {
            if let Some(cpus) = c.cpus().as_deref().filter(|v| !v.is_empty()) {
                props.push(prop("AllowedCPUs", mask(cpus)?));
            }
            if let Some(mems) = c.mems().as_deref().filter(|v| !v.is_empty()) {
                props.push(prop("AllowedMemoryNodes", mask(mems)?));
            }
        }
    }
    if let Some(p) = r.pids() {
        let max = if p.limit() > 0 {
            p.limit() as u64
        } else {
            INFINITY
        };
        props.push(prop("TasksMax", Value::U64(max)));
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        props.push(if unified {
            prop("IOWeight", Value::U64(v2::io_weight(w)?))
        } else {
            prop("BlockIOWeight", Value::U64(w.into()))
        });
    }
    Ok(props)
}

/// CPU time per second of wall time, from a quota per period (default 100 ms), rounded up
/// to whole percent: systemd keeps only 10 ms steps, and rounding down could make a small
/// quota zero, which means no limit.
fn quota_per_sec(quota: i64, period: Option<u64>) -> u64 {
    if quota < 0 {
        return INFINITY;
    }
    let period = period.filter(|&p| p > 0).unwrap_or(100_000);
    let per_sec = (quota as u64).saturating_mul(1_000_000) / period;
    per_sec.div_ceil(10_000) * 10_000
}

/// A cpu or memory-node list (`0-3,8`) as systemd's byte mask: bit n of byte n/8.
fn mask(list: &str) -> Result<Value, CgroupError> {
    let bad = || CgroupError::Invalid(format!("cpuset list {list:?} is invalid"));
    let mut bytes: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let lo: usize = lo.parse().map_err(|_| bad())?;
        let hi: usize = hi.parse().map_err(|_| bad())?;
        if lo > hi || hi >= 8192 {
            return Err(bad());
        }
        for n in lo..=hi {
            if bytes.len() <= n / 8 {
                bytes.resize(n / 8 + 1, 0);
            }
            bytes[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(Value::Array(
        "y".into(),
        bytes.into_iter().map(Value::Byte).collect(),
    ))
}

impl Manager for SystemdManager {
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        // Properties first: a value systemd cannot take is an error before anything exists.
        if let Some(r) = resources {
            resource_properties(r, self.unified)?;
        }
        *self.resources.borrow_mut() = resources.cloned();
        self.fs.create(resources)
    }

    fn enter(&self, pid: i32) -> Result<(), CgroupError> {
        let resources = self.resources.borrow().clone();
        let props = scope_properties(&self.id, &self.slice, pid, resources.as_ref(), self.unified)?;
        let call =
            Message::method_call(SYSTEMD, SYSTEMD_PATH, SYSTEMD_MANAGER, "StartTransientUnit")
                .with_body(vec![
                    s(self.unit.as_str()),
                    s("replace"),
                    Value::Array("(sv)".into(), props),
                    Value::Array("(sa(sv))".into(), vec![]),
                ]);
        self.with_bus(|conn| Self::run_job(conn, call))?;
        if let Some(r) = &resources {
            self.fs.update(r)?;
        }
        self.fs.enter(pid)
    }

    fn enter_exec(&self, pid: i32, sub: &SubCgroups) -> Result<(), CgroupError> {
        self.fs.enter_exec(pid, sub)
    }

    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        let props = resource_properties(resources, self.unified)?;
        if !props.is_empty() {
            let call =
                Message::method_call(SYSTEMD, SYSTEMD_PATH, SYSTEMD_MANAGER, "SetUnitProperties")
                    .with_body(vec![
                        s(self.unit.as_str()),
                        Value::Bool(true),
                        Value::Array("(sv)".into(), props),
                    ]);
            self.with_bus(|conn| conn.call(call).map(drop))?;
        }
        self.fs.update(resources)
    }

    fn set_freezer(&self, state: FreezerState) -> Result<(), CgroupError> {
        self.fs.set_freezer(state)
    }

    fn has_freezer(&self) -> bool {
        self.fs.has_freezer()
    }

    fn freezer(&self) -> Result<FreezerState, CgroupError> {
        self.fs.freezer()
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        self.fs.pids()
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        self.fs.stats()
    }

    fn oom_watch(&self) -> Result<OomWatch, CgroupError> {
        self.fs.oom_watch()
    }

    fn oom_kill_count(&self) -> u64 {
        self.fs.oom_kill_count()
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let call = Message::method_call(SYSTEMD, SYSTEMD_PATH, SYSTEMD_MANAGER, "StopUnit")
            .with_body(vec![s(self.unit.as_str()), s("replace")]);
        let stopped = self.with_bus(|conn| match Self::run_job(conn, call) {
            // A scope whose processes are all gone is collected by systemd on its own.
            Err(DbusError::Remote { name, .. }) if name.ends_with(".NoSuchUnit") => Ok(()),
            other => other,
        });
        // What systemd left (sub-cgroups of ours, hierarchies it does not manage) goes
        // either way; a failed stop is reported after.
        let removed = self.fs.destroy();
        stopped.and(removed)
    }

    fn paths(&self) -> Vec<(String, PathBuf)> {
        self.fs.paths()
    }

    fn systemd_unit(&self) -> Option<String> {
        Some(self.unit.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_names_slice_and_scope() {
        let names = |p: Option<&str>| unit_names(p.map(Path::new), "c1");
        assert_eq!(
            names(None).unwrap(),
            ("system.slice".into(), "runr-c1.scope".into())
        );
        assert_eq!(
            names(Some("machine.slice:libpod:abc")).unwrap(),
            ("machine.slice".into(), "libpod-abc.scope".into())
        );
        assert_eq!(
            names(Some(":cri-containerd:xyz")).unwrap(),
            ("system.slice".into(), "cri-containerd-xyz.scope".into())
        );
        assert_eq!(
            names(Some("kubepods.slice::pod.slice")).unwrap().1,
            "pod.slice"
        );
        assert!(names(Some("/abs/path")).is_err());
        assert!(names(Some("a:b:c")).is_err());
        assert!(names(Some("x.slice:p:")).is_err());
    }

    #[test]
    fn slices_nest_by_their_prefixes() {
        assert_eq!(slice_path("-.slice").unwrap(), Path::new("/"));
        assert_eq!(
            slice_path("system.slice").unwrap(),
            Path::new("/system.slice")
        );
        assert_eq!(
            slice_path("kubepods-besteffort-pod1.slice").unwrap(),
            Path::new("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice")
        );
        for bad in ["a", "-a.slice", "a-.slice", "a--b.slice", ".slice"] {
            assert!(slice_path(bad).is_err(), "{bad}");
        }
    }

    fn find<'a>(props: &'a [Value], name: &str) -> Option<&'a Value> {
        props.iter().find_map(|p| match p {
            Value::Struct(f) if f[0] == s(name) => match &f[1] {
                Value::Variant(v) => Some(v.as_ref()),
                _ => None,
            },
            _ => None,
        })
    }

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn scope_properties_carry_pid_slice_and_limits() {
        let r = resources(
            r#"{"memory":{"limit":1048576,"reservation":4096,"swap":2097152},
                "cpu":{"shares":1024,"quota":25000,"period":100000,"cpus":"0-2,9"},
                "pids":{"limit":20},"blockIO":{"weight":500}}"#,
        );
        let v1 = scope_properties("c1", "a.slice", 42, Some(&r), false).unwrap();
        assert_eq!(find(&v1, "Slice"), Some(&s("a.slice")));
        assert_eq!(
            find(&v1, "PIDs"),
            Some(&Value::Array("u".into(), vec![Value::U32(42)]))
        );
        assert_eq!(find(&v1, "Delegate"), Some(&Value::Bool(true)));
        assert_eq!(find(&v1, "MemoryLimit"), Some(&Value::U64(1048576)));
        assert_eq!(find(&v1, "CPUShares"), Some(&Value::U64(1024)));
        assert_eq!(find(&v1, "CPUQuotaPerSecUSec"), Some(&Value::U64(250_000)));
        assert_eq!(find(&v1, "TasksMax"), Some(&Value::U64(20)));
        assert_eq!(find(&v1, "BlockIOWeight"), Some(&Value::U64(500)));
        assert!(find(&v1, "BlockIOAccounting").is_some());
        assert!(
            find(&v1, "AllowedCPUs").is_none(),
            "no cpuset in systemd on v1"
        );

        let v2 = scope_properties("c1", "a.slice", 42, Some(&r), true).unwrap();
        assert_eq!(find(&v2, "MemoryMax"), Some(&Value::U64(1048576)));
        assert_eq!(find(&v2, "MemoryLow"), Some(&Value::U64(4096)));
        assert_eq!(find(&v2, "MemorySwapMax"), Some(&Value::U64(1048576)));
        assert_eq!(find(&v2, "CPUWeight"), Some(&Value::U64(39)));
        assert_eq!(find(&v2, "IOWeight"), Some(&Value::U64(4950)));
        assert_eq!(
            find(&v2, "AllowedCPUs"),
            Some(&Value::Array(
                "y".into(),
                vec![Value::Byte(7), Value::Byte(2)]
            ))
        );
        assert!(find(&v2, "IOAccounting").is_some());
    }

    #[test]
    fn unlimited_and_odd_values() {
        let r = resources(r#"{"memory":{"limit":-1},"pids":{"limit":-1},"cpu":{"quota":1000}}"#);
        let p = resource_properties(&r, false).unwrap();
        assert_eq!(find(&p, "MemoryLimit"), Some(&Value::U64(u64::MAX)));
        assert_eq!(find(&p, "TasksMax"), Some(&Value::U64(u64::MAX)));
        // 1 ms per 100 ms is 10 ms per second: a whole percent, kept.
        assert_eq!(find(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(10_000)));
        assert_eq!(quota_per_sec(1500, Some(100_000)), 20_000, "rounded up");
        assert_eq!(quota_per_sec(-1, None), u64::MAX);
        let bad = resources(r#"{"cpu":{"cpus":"3-1"}}"#);
        assert!(resource_properties(&bad, true).is_err());
        let bad = resources(r#"{"memory":{"limit":100,"swap":50}}"#);
        assert!(resource_properties(&bad, true).is_err());
    }
}
