//! cgroup v2 (unified) driver: one directory, controllers enabled down the tree, device
//! access through an eBPF program, freezing through cgroup.freeze.

use crate::fsutil::{self, add_pid, write};
use crate::stats::{read_keyed, read_u64, BlkioEntry, Hugetlb, MemoryEntry};
use crate::{
    container_subpath, CgroupConfig, CgroupError, FreezerState, Layout, Manager, OomWatch,
    SelfEntry, Stats, SubCgroups,
};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct V2Manager {
    /// The mount point of the unified hierarchy, where enabling controllers starts; known
    /// to a manager made for a new container, not needed by one rebuilt from saved paths.
    root: Option<PathBuf>,
    dir: PathBuf,
    /// The controllers enabled for the container, read once.
    controllers: std::cell::OnceCell<Vec<String>>,
}

impl V2Manager {
    pub fn new(layout: &Layout, config: &CgroupConfig) -> Result<V2Manager, CgroupError> {
        let u = layout
            .unified()
            .ok_or_else(|| CgroupError::Layout("no cgroup2 hierarchy is mounted".into()))?;
        Ok(V2Manager {
            root: Some(u.mountpoint.clone()),
            dir: u.dir_of(&container_subpath(&u.own, config)),
            controllers: Default::default(),
        })
    }

    /// Rebuild a manager from the directory a previous command saved (for an existing
    /// cgroup: it does not create).
    pub fn from_dir(dir: PathBuf) -> V2Manager {
        V2Manager {
            root: None,
            dir,
            controllers: Default::default(),
        }
    }

    /// Make every controller available to the container: enable what each ancestor has in
    /// its parent's subtree_control, from the root down. A cgroup with processes of its own
    /// cannot delegate (EBUSY); the controllers it could not pass on are missing below, and
    /// a limit that needs one says so.
    fn enable_controllers(&self) {
        let Some(root) = &self.root else {
            return;
        };
        let rel = self.dir.strip_prefix(root).unwrap_or(&self.dir);
        let mut parent = root.clone();
        for part in rel.components() {
            let available =
                std::fs::read_to_string(parent.join("cgroup.controllers")).unwrap_or_default();
            let enabled =
                std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
            let missing: Vec<String> = available
                .split_whitespace()
                .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
                .map(|c| format!("+{c}"))
                .collect();
            if !missing.is_empty() {
                if let Err(e) = write(&parent.join("cgroup.subtree_control"), &missing.join(" ")) {
                    tracing::debug!("{e}");
                }
            }
            parent.push(part);
        }
    }

    fn controllers(&self) -> &[String] {
        self.controllers.get_or_init(|| {
            std::fs::read_to_string(self.dir.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        })
    }

    /// The file `name` of controller `controller`, which must be enabled for the container.
    fn file(&self, controller: &str, name: &str) -> Result<PathBuf, CgroupError> {
        if !self.controllers().iter().any(|c| c == controller) {
            return Err(CgroupError::Unsupported(format!(
                "the config needs the {controller} controller (for {name}), but it is not available in {} (cgroup.controllers)",
                self.dir.display()
            )));
        }
        Ok(self.dir.join(name))
    }

    fn set(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        if let Some(m) = r.memory() {
            self.set_memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.set_cpu(c)?;
        }
        if let Some(p) = r.pids() {
            match p.limit() {
                0 => {}
                l if l < 0 => write(&self.file("pids", "pids.max")?, "max")?,
                l => write(&self.file("pids", "pids.max")?, &l.to_string())?,
            }
        }
        if let Some(b) = r.block_io() {
            self.set_io(b)?;
        }
        for l in r.hugepage_limits().iter().flatten() {
            let f = self.file("hugetlb", &format!("hugetlb.{}.max", l.page_size()))?;
            write(&f, &l.limit().to_string())?;
        }
        for (device, l) in r.rdma().iter().flatten() {
            write(
                &self.file("rdma", "rdma.max")?,
                &crate::rdma_line(device, l),
            )?;
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(CgroupError::Unsupported(
                    "network classID and priorities are cgroup v1 controllers (net_cls, net_prio); cgroup v2 has none".into(),
                ));
            }
        }
        for (key, value) in r.unified().iter().flatten() {
            self.set_unified(key, value)?;
        }
        if let Some(rules) = r.devices() {
            crate::bpf::apply(&self.dir, rules)?;
        }
        Ok(())
    }

    fn set_unified(&self, key: &str, value: &str) -> Result<(), CgroupError> {
        if key.contains('/') || key.starts_with('.') {
            return Err(CgroupError::Invalid(format!(
                "unified key {key:?} is not a file name"
            )));
        }
        let controller = key.split('.').next().unwrap_or_default();
        let path = if controller == "cgroup" {
            self.dir.join(key)
        } else {
            self.file(controller, key)?
        };
        if !path.exists() {
            return Err(CgroupError::Invalid(format!(
                "unified key {key:?}: {} does not exist",
                path.display()
            )));
        }
        write(&path, value)
    }

    fn set_memory(&self, m: &LinuxMemory) -> Result<(), CgroupError> {
        if m.kernel().is_some() || m.kernel_tcp().is_some() {
            tracing::warn!("memory.kernel and memory.kernelTCP do not exist on cgroup v2; ignored");
        }
        if m.swappiness().is_some_and(|s| s != 0) {
            return Err(CgroupError::Unsupported(
                "memory.swappiness cannot be set per cgroup on cgroup v2".into(),
            ));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(CgroupError::Unsupported(
                "memory.disableOOMKiller is not available on cgroup v2".into(),
            ));
        }
        if let Some(limit) = m.limit() {
            write(&self.file("memory", "memory.max")?, &max_str(limit))?;
        }
        if let Some(swap) = swap_max(m.limit(), m.swap())? {
            write(&self.file("memory", "memory.swap.max")?, &swap)?;
        }
        if let Some(r) = m.reservation() {
            write(&self.file("memory", "memory.low")?, &max_str(r))?;
        }
        Ok(())
    }

    fn set_cpu(&self, c: &LinuxCpu) -> Result<(), CgroupError> {
        if let Some(shares) = c.shares() {
            let w = cpu_weight(shares)?;
            write(&self.file("cpu", "cpu.weight")?, &w.to_string())?;
        }
        if let Some(v) = cpu_max(c.quota(), c.period()) {
            write(&self.file("cpu", "cpu.max")?, &v)?;
        }
        if let Some(i) = c.idle() {
            write(&self.file("cpu", "cpu.idle")?, &i.to_string())?;
        }
        if let Some(b) = c.burst() {
            write(&self.file("cpu", "cpu.max.burst")?, &b.to_string())?;
        }
        if c.realtime_runtime().is_some_and(|r| r != 0)
            || c.realtime_period().is_some_and(|p| p != 0)
        {
            return Err(CgroupError::Unsupported(
                "realtime CPU limits (realtimeRuntime, realtimePeriod) do not exist on cgroup v2"
                    .into(),
            ));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(&self.file("cpuset", "cpuset.cpus")?, cpus)?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            write(&self.file("cpuset", "cpuset.mems")?, mems)?;
        }
        Ok(())
    }

    fn set_io(&self, b: &LinuxBlockIo) -> Result<(), CgroupError> {
        if let Some(w) = b.weight() {
            write(
                &self.file("io", "io.weight")?,
                &format!("default {}", io_weight(w)?),
            )?;
        }
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                let line = format!("{}:{} {}", d.major(), d.minor(), io_weight(w)?);
                write(&self.file("io", "io.weight")?, &line)?;
            }
        }
        let throttles = [
            ("rbps", b.throttle_read_bps_device()),
            ("wbps", b.throttle_write_bps_device()),
            ("riops", b.throttle_read_iops_device()),
            ("wiops", b.throttle_write_iops_device()),
        ];
        for (key, devices) in throttles {
            for d in devices.iter().flatten() {
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                let line = format!("{}:{} {key}={rate}", d.major(), d.minor());
                write(&self.file("io", "io.max")?, &line)?;
            }
        }
        Ok(())
    }
}

fn max_str(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// cpu.weight (1-10000) from v1 cpu.shares (2-262144), mapped linearly end to end.
pub fn cpu_weight(shares: u64) -> Result<u64, CgroupError> {
    if !(2..=262144).contains(&shares) {
        return Err(CgroupError::Invalid(format!(
            "cpu.shares {shares} is out of range (2 to 262144)"
        )));
    }
    Ok(1 + (shares - 2) * 9999 / 262142)
}

/// io.weight (1-10000) from v1 blkio.weight (10-1000), mapped linearly end to end.
pub fn io_weight(weight: u16) -> Result<u64, CgroupError> {
    if !(10..=1000).contains(&weight) {
        return Err(CgroupError::Invalid(format!(
            "blkio weight {weight} is out of range (10 to 1000)"
        )));
    }
    Ok(1 + (u64::from(weight) - 10) * 9999 / 990)
}

/// cpu.max ("QUOTA PERIOD", "max" for no quota) from the v1 pair; None if neither is set.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    if quota.is_none() && period.is_none() {
        return None;
    }
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        _ => "max".into(),
    };
    Some(match period {
        Some(p) if p > 0 => format!("{q} {p}"),
        _ => q,
    })
}

/// memory.swap.max from the v1 values: v1's swap is memory plus swap, v2's is swap alone.
pub fn swap_max(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>, CgroupError> {
    match (limit, swap) {
        (_, None) => Ok(None),
        (_, Some(-1)) => Ok(Some("max".into())),
        (Some(l), Some(s)) if l >= 0 => {
            if s < l {
                return Err(CgroupError::Invalid(format!(
                    "memory.swap {s} is below memory.limit {l}: swap counts memory plus swap"
                )));
            }
            Ok(Some((s - l).to_string()))
        }
        (_, Some(s)) if s >= 0 => Err(CgroupError::Invalid(
            "memory.swap needs a memory.limit on cgroup v2 (it is memory plus swap)".into(),
        )),
        (_, Some(s)) => Err(CgroupError::Invalid(format!("memory.swap {s} is invalid"))),
    }
}

impl Manager for V2Manager {
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError> {
        fsutil::warn_if_shared(&self.pids()?, &self.paths());
        std::fs::create_dir_all(&self.dir).map_err(|source| CgroupError::Create {
            path: self.dir.clone(),
            source,
        })?;
        self.enable_controllers();
        match resources {
            Some(r) => self.set(r),
            None => Ok(()),
        }
    }

    fn enter(&self, pid: i32) -> Result<(), CgroupError> {
        add_pid(&self.dir, pid)
    }

    fn enter_exec(&self, pid: i32, sub: &SubCgroups) -> Result<(), CgroupError> {
        sub.enter(pid, &self.paths())
    }

    fn self_entry(&self, sub: &SubCgroups) -> Result<Option<SelfEntry>, CgroupError> {
        SelfEntry::open(&sub.targets(&self.paths())?).map(Some)
    }

    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        self.set(resources)
    }

    fn set_freezer(&self, state: FreezerState) -> Result<(), CgroupError> {
        let want = matches!(state, FreezerState::Frozen);
        write(
            &self.dir.join("cgroup.freeze"),
            if want { "1" } else { "0" },
        )?;
        // cgroup.events says when it is done.
        fsutil::wait_until(
            || {
                format!(
                    "{} did not reach frozen={}",
                    self.dir.display(),
                    u8::from(want)
                )
            },
            || Ok((self.freezer()? == FreezerState::Frozen) == want),
        )
    }

    fn has_freezer(&self) -> bool {
        self.dir.join("cgroup.freeze").exists()
    }

    fn freezer(&self) -> Result<FreezerState, CgroupError> {
        let events = read_keyed(&self.dir.join("cgroup.events"));
        Ok(if events.get("frozen") == Some(&1) {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        })
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        fsutil::procs_in_tree(&self.dir)
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let mut st = Stats::default();
        let d = &self.dir;
        let cpu = read_keyed(&d.join("cpu.stat"));
        let us = |k: &str| cpu.get(k).copied().unwrap_or(0);
        st.cpu.usage.total = us("usage_usec") * 1000;
        st.cpu.usage.user = us("user_usec") * 1000;
        st.cpu.usage.kernel = us("system_usec") * 1000;
        st.cpu.throttling.periods = us("nr_periods");
        st.cpu.throttling.throttled_periods = us("nr_throttled");
        st.cpu.throttling.throttled_time = us("throttled_usec") * 1000;
        let m = &mut st.memory;
        m.raw = read_keyed(&d.join("memory.stat"));
        m.cache = m.raw.get("file").copied().unwrap_or(0);
        let events = read_keyed(&d.join("memory.events"));
        m.usage = MemoryEntry {
            limit: read_u64(&d.join("memory.max")),
            usage: read_u64(&d.join("memory.current")),
            max: read_u64(&d.join("memory.peak")),
            failcnt: events.get("max").copied().unwrap_or(0),
        };
        m.swap = MemoryEntry {
            limit: read_u64(&d.join("memory.swap.max")),
            usage: read_u64(&d.join("memory.swap.current")),
            max: read_u64(&d.join("memory.swap.peak")),
            failcnt: 0,
        };
        st.pids.current = read_u64(&d.join("pids.current"));
        st.pids.limit = read_u64(&d.join("pids.max"));
        for line in std::fs::read_to_string(d.join("io.stat"))
            .unwrap_or_default()
            .lines()
        {
            let mut it = line.split_whitespace();
            let Some((major, minor)) = it.next().and_then(|dev| dev.split_once(':')) else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
                continue;
            };
            for kv in it {
                let Some((k, v)) = kv.split_once('=') else {
                    continue;
                };
                let Ok(value) = v.parse() else { continue };
                let (list, op) = match k {
                    "rbytes" => (&mut st.blkio.io_service_bytes_recursive, "Read"),
                    "wbytes" => (&mut st.blkio.io_service_bytes_recursive, "Write"),
                    "rios" => (&mut st.blkio.io_serviced_recursive, "Read"),
                    "wios" => (&mut st.blkio.io_serviced_recursive, "Write"),
                    _ => continue,
                };
                list.push(BlkioEntry {
                    major,
                    minor,
                    op: op.into(),
                    value,
                });
            }
        }
        for size in fsutil::files_matching(d, "hugetlb.", ".current") {
            let f = |what: &str| read_u64(&d.join(format!("hugetlb.{size}.{what}")));
            let failcnt = read_keyed(&d.join(format!("hugetlb.{size}.events")))
                .get("max")
                .copied()
                .unwrap_or(0);
            st.hugetlb.insert(
                size.clone(),
                Hugetlb {
                    usage: f("current"),
                    max: 0,
                    failcnt,
                },
            );
        }
        Ok(st)
    }

    fn oom_watch(&self) -> Result<OomWatch, CgroupError> {
        self.file("memory", "memory.events")?;
        OomWatch::v2(&self.dir)
    }

    fn oom_kill_count(&self) -> u64 {
        read_keyed(&self.dir.join("memory.events"))
            .get("oom_kill")
            .copied()
            .unwrap_or(0)
    }

    fn destroy(&self) -> Result<(), CgroupError> {
        fsutil::remove_tree(&self.dir)
    }

    fn paths(&self) -> Vec<(String, PathBuf)> {
        vec![(String::new(), self.dir.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_weights_map_end_to_end() {
        assert_eq!(cpu_weight(2).unwrap(), 1);
        assert_eq!(cpu_weight(262144).unwrap(), 10000);
        assert_eq!(cpu_weight(1024).unwrap(), 39);
        assert!(cpu_weight(1).is_err());
        assert_eq!(io_weight(10).unwrap(), 1);
        assert_eq!(io_weight(1000).unwrap(), 10000);
        assert_eq!(io_weight(500).unwrap(), 4950);
        assert!(io_weight(5).is_err());
    }

    #[test]
    fn cpu_max_and_swap_conversions() {
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(cpu_max(Some(50000), Some(100000)).unwrap(), "50000 100000");
        assert_eq!(cpu_max(Some(-1), Some(100000)).unwrap(), "max 100000");
        assert_eq!(cpu_max(None, Some(20000)).unwrap(), "max 20000");
        assert_eq!(cpu_max(Some(1000), None).unwrap(), "1000");
        assert_eq!(swap_max(Some(100), Some(300)).unwrap().unwrap(), "200");
        assert_eq!(swap_max(Some(100), Some(100)).unwrap().unwrap(), "0");
        assert_eq!(swap_max(Some(100), Some(-1)).unwrap().unwrap(), "max");
        assert_eq!(swap_max(Some(100), None).unwrap(), None);
        assert!(swap_max(Some(300), Some(100)).is_err());
        assert!(swap_max(None, Some(100)).is_err());
    }
}
