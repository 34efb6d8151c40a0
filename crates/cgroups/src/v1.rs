//! cgroup v1 (cgroupfs) driver: one directory per hierarchy.
//!
//! On a hybrid host the container also gets a directory in the controller-less cgroup2
//! hierarchy, as runc does, so tools that look there find it.

use crate::devrules::DeviceState;
use crate::fsutil::{self, add_pid, parse_pids, read, write};
use crate::stats::{read_blkio, read_keyed, read_list, read_u64, Hugetlb, MemoryEntry};
use crate::{
    container_subpath, CgroupConfig, CgroupError, FreezerState, Layout, Manager, SelfEntry,
    SubCgroups,
};
use crate::{OomWatch, Stats};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxResources};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// A container's cgroup: its directory in each hierarchy.
#[derive(Debug, Clone)]
pub struct V1Manager {
    dirs: Vec<(String, PathBuf)>,
}

impl V1Manager {
    /// The directories a container with `config` gets on this host.
    pub fn new(layout: &Layout, config: &CgroupConfig) -> Result<V1Manager, CgroupError> {
        let mut dirs: Vec<(String, PathBuf)> = layout
            .v1()
            .iter()
            .map(|h| (h.name.clone(), h.dir_of(&container_subpath(&h.own, config))))
            .collect();
        if let Some(u) = layout.unified() {
            dirs.push((String::new(), u.dir_of(&container_subpath(&u.own, config))));
        }
        Ok(V1Manager { dirs })
    }

    /// Rebuild a manager from the paths a previous command saved.
    pub fn from_paths(dirs: Vec<(String, PathBuf)>) -> V1Manager {
        V1Manager { dirs }
    }

    /// The directory of the hierarchy that holds `controller`.
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(name, _)| name.split(',').any(|c| c == controller))
            .map(|(_, d)| d.as_path())
    }

    fn require(&self, controller: &str) -> Result<&Path, CgroupError> {
        self.dir(controller).ok_or_else(|| {
            CgroupError::Unsupported(format!(
                "the config sets {controller} limits but this host has no {controller} cgroup controller mounted"
            ))
        })
    }

    fn set(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(m) = r.memory() {
            self.set_memory(m)?;
        }
        if let Some(p) = r.pids() {
            // 0 leaves the limit alone; a negative value means no limit.
            match p.limit() {
                0 => {}
                l if l < 0 => write(&self.require("pids")?.join("pids.max"), "max")?,
                l => write(&self.require("pids")?.join("pids.max"), &l.to_string())?,
            }
        }
        if let Some(c) = r.cpu() {
            self.set_cpu(c)?;
        }
        if let Some(rules) = r.devices() {
            set_devices(self.require("devices")?, rules)?;
        }
        if let Some(b) = r.block_io() {
            self.set_blkio(b)?;
        }
        if let Some(limits) = r.hugepage_limits() {
            let dir = self.require("hugetlb")?;
            for l in limits {
                let file = dir.join(format!("hugetlb.{}.limit_in_bytes", l.page_size()));
                write(&file, &l.limit().to_string())?;
            }
        }
        if let Some(rdma) = r.rdma() {
            let dir = self.require("rdma")?;
            for (device, l) in rdma {
                write(&dir.join("rdma.max"), &crate::rdma_line(device, l))?;
            }
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                write(
                    &self.require("net_cls")?.join("net_cls.classid"),
                    &id.to_string(),
                )?;
            }
            for p in n.priorities().iter().flatten() {
                let line = format!("{} {}", p.name(), p.priority());
                write(&self.require("net_prio")?.join("net_prio.ifpriomap"), &line)?;
            }
        }
        Ok(())
    }

    fn set_memory(&self, m: &oci_spec::runtime::LinuxMemory) -> Result<(), CgroupError> {
        let has_values = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some()
            || m.use_hierarchy().is_some();
        if !has_values {
            if m.kernel().is_some() {
                tracing::warn!("memory.kernel is not supported by current kernels; ignored");
            }
            return Ok(());
        }
        let dir = self.require("memory")?;
        if let Some(use_hierarchy) = m.use_hierarchy() {
            write(&dir.join("memory.use_hierarchy"), bool_str(use_hierarchy))?;
        }
        // memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes: when raising both,
        // memsw must go first, when lowering, the limit must. Try the limit first and, if the
        // kernel refuses it, write memsw and then the limit.
        let limit_file = dir.join("memory.limit_in_bytes");
        let memsw_file = dir.join("memory.memsw.limit_in_bytes");
        if let (Some(true), Some(limit)) = (m.check_before_update(), m.limit()) {
            let usage_file = dir.join("memory.usage_in_bytes");
            let usage: i64 = read(&usage_file)?.trim().parse().unwrap_or(0);
            if limit >= 0 && limit < usage {
                return Err(CgroupError::Invalid(format!(
                    "memory limit {limit} is below the current usage {usage} ({})",
                    usage_file.display()
                )));
            }
        }
        let limit = m.limit().map(limit_str);
        match m.swap().map(limit_str) {
            Some(memsw) if memsw_file.exists() => match &limit {
                Some(l) if write(&limit_file, l).is_err() => {
                    write(&memsw_file, &memsw)?;
                    write(&limit_file, l)?;
                }
                _ => write(&memsw_file, &memsw)?,
            },
            Some(_) if m.swap() != m.limit() && m.swap() != Some(-1) => {
                return Err(CgroupError::Unsupported(format!(
                    "the config sets memory.swap but {} does not exist (swap accounting is off on this host)",
                    memsw_file.display()
                )));
            }
            _ => {
                if let Some(l) = &limit {
                    write(&limit_file, l)?;
                }
            }
        }
        if let Some(r) = m.reservation() {
            write(&dir.join("memory.soft_limit_in_bytes"), &limit_str(r))?;
        }
        if m.kernel().is_some() {
            tracing::warn!("memory.kernel is not supported by current kernels; ignored");
        }
        if let Some(t) = m.kernel_tcp() {
            write(&dir.join("memory.kmem.tcp.limit_in_bytes"), &limit_str(t))?;
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(CgroupError::Invalid(format!(
                    "memory.swappiness {s} is out of range (0-100)"
                )));
            }
            write(&dir.join("memory.swappiness"), &s.to_string())?;
        }
        if let Some(d) = m.disable_oom_killer() {
            write(&dir.join("memory.oom_control"), bool_str(d))?;
        }
        Ok(())
    }

    fn set_cpu(&self, c: &oci_spec::runtime::LinuxCpu) -> Result<(), CgroupError> {
        let cpu = || self.require("cpu");
        if let Some(s) = c.shares() {
            write(&cpu()?.join("cpu.shares"), &s.to_string())?;
        }
        // The period first: a quota is checked against the current period.
        if let Some(p) = c.period() {
            write(&cpu()?.join("cpu.cfs_period_us"), &p.to_string())?;
        }
        if let Some(q) = c.quota() {
            write(&cpu()?.join("cpu.cfs_quota_us"), &q.to_string())?;
        }
        if let Some(p) = c.realtime_period() {
            write(&cpu()?.join("cpu.rt_period_us"), &p.to_string())?;
        }
        if let Some(r) = c.realtime_runtime() {
            write(&cpu()?.join("cpu.rt_runtime_us"), &r.to_string())?;
        }
        if let Some(i) = c.idle() {
            write(&cpu()?.join("cpu.idle"), &i.to_string())?;
        }
        if let Some(b) = c.burst() {
            write(&cpu()?.join("cpu.cfs_burst_us"), &b.to_string())?;
        }
        if let Some(cpus) = c.cpus() {
            write(&self.require("cpuset")?.join("cpuset.cpus"), cpus)?;
        }
        if let Some(mems) = c.mems() {
            write(&self.require("cpuset")?.join("cpuset.mems"), mems)?;
        }
        Ok(())
    }

    fn set_blkio(&self, b: &oci_spec::runtime::LinuxBlockIo) -> Result<(), CgroupError> {
        let blkio = || self.require("blkio");
        // CFQ's files, or BFQ's (the only weighted scheduler of current kernels).
        let weight_file = |name: &str| -> Result<PathBuf, CgroupError> {
            let dir = blkio()?;
            let cfq = dir.join(format!("blkio.{name}"));
            let bfq = dir.join(format!("blkio.bfq.{name}"));
            match (cfq.exists(), bfq.exists()) {
                (true, _) => Ok(cfq),
                (false, true) => Ok(bfq),
                _ => Err(CgroupError::Unsupported(format!(
                    "the config sets blkio {name}, but neither {} nor {} exists (no weighted I/O scheduler on this host)",
                    cfq.display(),
                    bfq.display()
                ))),
            }
        };
        if let Some(w) = b.weight() {
            write(&weight_file("weight")?, &w.to_string())?;
        }
        if let Some(w) = b.leaf_weight() {
            write(&blkio()?.join("blkio.leaf_weight"), &w.to_string())?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                let line = format!("{}:{} {}", d.major(), d.minor(), w);
                write(&weight_file("weight_device")?, &line)?;
            }
            if let Some(w) = d.leaf_weight() {
                let line = format!("{}:{} {}", d.major(), d.minor(), w);
                write(&blkio()?.join("blkio.leaf_weight_device"), &line)?;
            }
        }
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                b.throttle_read_bps_device(),
            ),
            (
                "blkio.throttle.write_bps_device",
                b.throttle_write_bps_device(),
            ),
            (
                "blkio.throttle.read_iops_device",
                b.throttle_read_iops_device(),
            ),
            (
                "blkio.throttle.write_iops_device",
                b.throttle_write_iops_device(),
            ),
        ];
        for (file, devices) in throttles {
            for d in devices.iter().flatten() {
                let line = format!("{}:{} {}", d.major(), d.minor(), d.rate());
                write(&blkio()?.join(file), &line)?;
            }
        }
        Ok(())
    }
}

impl Manager for V1Manager {
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        fsutil::warn_if_shared(&self.pids()?, &self.dirs);
        for (name, dir) in &self.dirs {
            let is_cpuset = name.split(',').any(|c| c == "cpuset");
            create_dirs(dir, is_cpuset)?;
        }
        match resources {
            Some(r) => self.set(r),
            None => Ok(()),
        }
    }

    fn enter(&self, pid: i32) -> Result<(), CgroupError> {
        for (_, dir) in &self.dirs {
            add_pid(dir, pid)?;
        }
        Ok(())
    }

    fn enter_exec(&self, pid: i32, sub: &SubCgroups) -> Result<(), CgroupError> {
        sub.enter(pid, &self.dirs)
    }

    fn self_entry(&self, sub: &SubCgroups) -> Result<Option<SelfEntry>, CgroupError> {
        SelfEntry::open(&sub.targets(&self.dirs)?).map(Some)
    }

    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.set(resources)
    }

    fn set_freezer(&self, state: FreezerState) -> Result<(), CgroupError> {
        let file = self.require("freezer")?.join("freezer.state");
        let want = match state {
            FreezerState::Frozen => "FROZEN",
            FreezerState::Thawed => "THAWED",
        };
        write(&file, want)?;
        // The state reads FREEZING until every task has stopped.
        fsutil::wait_until(
            || format!("{} did not reach {want}", file.display()),
            || Ok(read(&file)?.trim() == want),
        )
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let mut st = Stats::default();
        if let Some(dir) = self.dir("cpuacct") {
            let u = &mut st.cpu.usage;
            u.total = read_u64(&dir.join("cpuacct.usage"));
            u.percpu = read_list(&dir.join("cpuacct.usage_percpu"));
            u.percpu_kernel = read_list(&dir.join("cpuacct.usage_percpu_sys"));
            u.percpu_user = read_list(&dir.join("cpuacct.usage_percpu_user"));
            // cpuacct.stat counts clock ticks.
            // SAFETY: sysconf with a constant name.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            let ticks = read_keyed(&dir.join("cpuacct.stat"));
            u.user = ticks.get("user").copied().unwrap_or(0) * (1_000_000_000 / hz);
            u.kernel = ticks.get("system").copied().unwrap_or(0) * (1_000_000_000 / hz);
        }
        if let Some(dir) = self.dir("cpu") {
            let s = read_keyed(&dir.join("cpu.stat"));
            let t = &mut st.cpu.throttling;
            t.periods = s.get("nr_periods").copied().unwrap_or(0);
            t.throttled_periods = s.get("nr_throttled").copied().unwrap_or(0);
            t.throttled_time = s.get("throttled_time").copied().unwrap_or(0);
        }
        if let Some(dir) = self.dir("memory") {
            let m = &mut st.memory;
            m.raw = read_keyed(&dir.join("memory.stat"));
            m.cache = m.raw.get("cache").copied().unwrap_or(0);
            let entry = |prefix: &str| MemoryEntry {
                limit: read_u64(&dir.join(format!("{prefix}limit_in_bytes"))),
                usage: read_u64(&dir.join(format!("{prefix}usage_in_bytes"))),
                max: read_u64(&dir.join(format!("{prefix}max_usage_in_bytes"))),
                failcnt: read_u64(&dir.join(format!("{prefix}failcnt"))),
            };
            m.usage = entry("memory.");
            m.swap = entry("memory.memsw.");
            m.kernel = entry("memory.kmem.");
            m.kernel_tcp = entry("memory.kmem.tcp.");
        }
        if let Some(dir) = self.dir("pids") {
            st.pids.current = read_u64(&dir.join("pids.current"));
            st.pids.limit = read_u64(&dir.join("pids.max"));
        }
        if let Some(dir) = self.dir("blkio") {
            // Whichever I/O scheduler's files have figures (CFQ, BFQ), else the throttle ones.
            let first = |name: &str| {
                ["blkio.", "blkio.bfq.", "blkio.throttle."]
                    .iter()
                    .map(|p| read_blkio(&dir.join(format!("{p}{name}"))))
                    .find(|v| !v.is_empty())
                    .unwrap_or_default()
            };
            st.blkio.io_service_bytes_recursive = first("io_service_bytes_recursive");
            st.blkio.io_serviced_recursive = first("io_serviced_recursive");
        }
        if let Some(dir) = self.dir("hugetlb") {
            for sub in fsutil::files_matching(dir, "hugetlb.", ".usage_in_bytes") {
                let f = |what: &str| read_u64(&dir.join(format!("hugetlb.{sub}.{what}")));
                st.hugetlb.insert(
                    sub.clone(),
                    Hugetlb {
                        usage: f("usage_in_bytes"),
                        max: f("max_usage_in_bytes"),
                        failcnt: f("failcnt"),
                    },
                );
            }
        }
        Ok(st)
    }

    fn oom_watch(&self) -> Result<OomWatch, CgroupError> {
        OomWatch::v1(self.require("memory")?)
    }

    fn has_freezer(&self) -> bool {
        self.dir("freezer").is_some()
    }

    fn freezer(&self) -> Result<FreezerState, CgroupError> {
        let Some(dir) = self.dir("freezer") else {
            return Ok(FreezerState::Thawed);
        };
        match std::fs::read_to_string(dir.join("freezer.state")) {
            Ok(s) if s.trim() == "THAWED" => Ok(FreezerState::Thawed),
            Ok(_) => Ok(FreezerState::Frozen),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(FreezerState::Thawed),
            Err(source) => Err(CgroupError::Read {
                path: dir.join("freezer.state"),
                source,
            }),
        }
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        // Every process is in every hierarchy; pick a v1 one (the unified one may be shared).
        let Some((_, dir)) = self.dirs.iter().find(|(n, _)| !n.is_empty()) else {
            return Ok(Vec::new());
        };
        fsutil::procs_in_tree(dir)
    }

    fn oom_kill_count(&self) -> u64 {
        let Some(dir) = self.dir("memory") else {
            return 0;
        };
        std::fs::read_to_string(dir.join("memory.oom_control"))
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse().ok())
                })
            })
            .unwrap_or(0)
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        for (_, dir) in &self.dirs {
            if let Err(e) = fsutil::remove_tree(dir) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn paths(&self) -> Vec<(String, PathBuf)> {
        self.dirs.clone()
    }
}

/// Create `dir` and its missing parents. A new cpuset cgroup starts with no cpus and no mems,
/// and a task cannot join it until both are set: copy them down from the parent at each level.
fn create_dirs(dir: &Path, is_cpuset: bool) -> Result<(), CgroupError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, is_cpuset)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Create {
                path: dir.into(),
                source,
            })
        }
    }
    if is_cpuset {
        if let Some(parent) = dir.parent() {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let value = read(&parent.join(file))?;
                if !value.trim().is_empty() {
                    write(&dir.join(file), value.trim())?;
                }
            }
        }
    }
    Ok(())
}

fn limit_str(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// Take the devices cgroup `dir` to `rules` (applied on top of what it has), writing only
/// what changes so that a live process is never denied what both the old and the new rules
/// allow.
fn set_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let _lock = fsutil::lock(dir)?;
    let list = dir.join("devices.list");
    let current = DeviceState::parse(&read(&list)?)
        .map_err(|e| CgroupError::Invalid(format!("{}: {e}", list.display())))?;
    let wanted = current.after(rules)?;
    for (file, line) in current.writes_to(&wanted) {
        write(&dir.join(file), &line)?;
    }
    Ok(())
}

/// Pids listed in one cgroup directory (used by tests and the CLI's `ps`).
pub fn procs_in(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    Ok(parse_pids(&fsutil::read(&dir.join("cgroup.procs"))?))
}
