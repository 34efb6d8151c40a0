//! Resource usage of a container's cgroup, in the shape `runc events` prints it, and a
//! watch on its OOM kills.

use crate::CgroupError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// Nanoseconds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CpuUsage {
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Pids {
    pub current: u64,
    /// 0: no limit.
    pub limit: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Hugetlb {
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// A number from a cgroup file; "max" (no limit) and a missing file read as 0.
pub(crate) fn read_u64(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// "key value" lines (memory.stat, cpu.stat, ...) as a map; missing file: empty.
pub(crate) fn read_keyed(path: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Space-separated numbers (cpuacct.usage_percpu).
pub(crate) fn read_list(path: &Path) -> Vec<u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// blkio "MAJ:MIN Op value" lines; the "Total" line is left out.
pub(crate) fn read_blkio(path: &Path) -> Vec<BlkioEntry> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (dev, op, value) = (it.next()?, it.next()?, it.next()?);
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// A readable descriptor that fires when the OOM killer acts in a cgroup.
#[derive(Debug)]
pub struct OomWatch {
    fd: OwnedFd,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    /// v1: an eventfd registered through cgroup.event_control on memory.oom_control.
    EventFd,
    /// v2: inotify on memory.events, and the oom_kill count seen last.
    Inotify { events: PathBuf, seen: u64 },
}

impl OomWatch {
    /// v1: register an eventfd for OOM notifications of the memory cgroup `dir`.
    pub(crate) fn v1(dir: &Path) -> Result<OomWatch, CgroupError> {
        // SAFETY: eventfd with integer arguments; on success we own the returned fd.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(CgroupError::Read {
                path: dir.join("memory.oom_control"),
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let control_path = dir.join("memory.oom_control");
        let control = std::fs::File::open(&control_path).map_err(|source| CgroupError::Read {
            path: control_path,
            source,
        })?;
        // The registration lives as long as the eventfd; the control file may be closed.
        crate::fsutil::write(
            &dir.join("cgroup.event_control"),
            &format!("{} {}", fd.as_raw_fd(), control.as_raw_fd()),
        )?;
        Ok(OomWatch {
            fd,
            kind: Kind::EventFd,
        })
    }

    /// v2: watch memory.events of the cgroup `dir` for a rising oom_kill count.
    pub(crate) fn v2(dir: &Path) -> Result<OomWatch, CgroupError> {
        let events = dir.join("memory.events");
        let err = |source| CgroupError::Read {
            path: events.clone(),
            source,
        };
        // SAFETY: inotify_init1 with flags; on success we own the returned fd.
        let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        if raw < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let c_path = std::ffi::CString::new(events.as_os_str().as_encoded_bytes())
            .map_err(|_| err(std::io::ErrorKind::InvalidInput.into()))?;
        // SAFETY: a valid inotify fd and NUL-terminated path.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c_path.as_ptr(), libc::IN_MODIFY) } < 0
        {
            return Err(err(std::io::Error::last_os_error()));
        }
        let seen = oom_kills(&events);
        Ok(OomWatch {
            fd,
            kind: Kind::Inotify { events, seen },
        })
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// After the descriptor polled readable: how many OOM kills happened since last time.
    pub fn take(&mut self) -> u64 {
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a live buffer of the given size from our own descriptor.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match &mut self.kind {
            Kind::EventFd if n == 8 => u64::from_ne_bytes(buf[..8].try_into().expect("8 bytes")),
            Kind::EventFd => 0,
            Kind::Inotify { events, seen } => {
                let now = oom_kills(events);
                let new = now.saturating_sub(*seen);
                *seen = now;
                new
            }
        }
    }
}

fn oom_kills(events: &Path) -> u64 {
    read_keyed(events).get("oom_kill").copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_serialize_with_runcs_field_names() {
        let mut s = Stats::default();
        s.memory.kernel_tcp.limit = 5;
        s.blkio.io_service_bytes_recursive.push(BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 1,
        });
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["memory"]["kernelTCP"]["limit"], 5);
        assert_eq!(v["blkio"]["ioServiceBytesRecursive"][0]["op"], "Read");
        assert!(v["cpu"]["usage"].get("percpu").is_none());
        assert!(v.get("hugetlb").is_none());
    }
}
