//! Which cgroup hierarchies this host has, where they are mounted, and where we are in them.

use crate::fsutil;
use crate::CgroupError;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Name as /proc/self/cgroup gives it: `cpu,cpuacct`, `name=systemd`, `""` for cgroup2.
    pub name: String,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// The cgroup that is the root of this mount (`/` unless mounted inside a cgroup ns).
    pub mount_root: PathBuf,
    /// Our own cgroup in it, as /proc/self/cgroup gives it.
    pub own: PathBuf,
}

impl Hierarchy {
    /// The directory of `cgroup` (a path relative to the hierarchy's root) on the host.
    pub fn dir_of(&self, cgroup: &Path) -> PathBuf {
        let rel = cgroup.strip_prefix(&self.mount_root).unwrap_or(cgroup);
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        self.mountpoint.join(rel)
    }

    /// Controllers of a v1 hierarchy (`name=...` entries are not controllers).
    pub fn controllers(&self) -> impl Iterator<Item = &str> {
        self.name
            .split(',')
            .filter(|c| !c.is_empty() && !c.starts_with("name="))
    }
}

/// The host's cgroup layout.
#[derive(Debug, Clone)]
pub enum Layout {
    /// cgroup v1 only.
    Legacy { v1: Vec<Hierarchy> },
    /// v1 controllers plus a cgroup2 mount without controllers (e.g. /sys/fs/cgroup/unified).
    Hybrid {
        v1: Vec<Hierarchy>,
        unified: Hierarchy,
    },
    /// cgroup2 only.
    Unified { unified: Hierarchy },
}

impl Layout {
    /// Read the layout of the calling process's view.
    pub fn detect() -> Result<Layout, CgroupError> {
        let mountinfo = fsutil::read(Path::new("/proc/self/mountinfo"))?;
        let cgroup = fsutil::read(Path::new("/proc/self/cgroup"))?;
        Layout::parse(&mountinfo, &cgroup)
    }

    /// Build a layout from the text of mountinfo and /proc/self/cgroup.
    pub fn parse(mountinfo: &str, proc_cgroup: &str) -> Result<Layout, CgroupError> {
        // /proc/self/cgroup: "ID:controllers:path"; controllers empty for cgroup2.
        let own: HashMap<&str, &str> = proc_cgroup
            .lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, ':');
                let _id = it.next()?;
                Some((it.next()?, it.next()?))
            })
            .collect();
        let mut v1 = Vec::new();
        let mut unified = None;
        for line in mountinfo.lines() {
            let Some(m) = parse_mountinfo_line(line) else {
                continue;
            };
            match m.fstype {
                "cgroup" => {
                    // The super options list the controllers, plus flags we ignore.
                    let mut names: Vec<&str> = m
                        .super_opts
                        .split(',')
                        .filter(|o| is_v1_controller_option(o))
                        .collect();
                    names.sort_unstable();
                    let Some((name, own_path)) = own.iter().find(|(k, _)| {
                        let mut ks: Vec<&str> = k.split(',').collect();
                        ks.sort_unstable();
                        ks == names
                    }) else {
                        continue;
                    };
                    if v1.iter().any(|h: &Hierarchy| h.name == *name) {
                        continue; // mounted twice; the first mount is enough
                    }
                    v1.push(Hierarchy {
                        name: name.to_string(),
                        mountpoint: m.mountpoint.into(),
                        mount_root: m.root.into(),
                        own: PathBuf::from(own_path),
                    });
                }
                "cgroup2" if unified.is_none() => {
                    unified = Some(Hierarchy {
                        name: String::new(),
                        mountpoint: m.mountpoint.into(),
                        mount_root: m.root.into(),
                        own: PathBuf::from(own.get("").copied().unwrap_or("/")),
                    });
                }
                _ => {}
            }
        }
        match (v1.is_empty(), unified) {
            (false, None) => Ok(Layout::Legacy { v1 }),
            (false, Some(unified)) => Ok(Layout::Hybrid { v1, unified }),
            (true, Some(unified)) => Ok(Layout::Unified { unified }),
            (true, None) => Err(CgroupError::Layout(
                "no cgroup filesystem is mounted (looked in /proc/self/mountinfo)".into(),
            )),
        }
    }

    /// The v1 hierarchies (empty on a unified host).
    pub fn v1(&self) -> &[Hierarchy] {
        match self {
            Layout::Legacy { v1 } | Layout::Hybrid { v1, .. } => v1,
            Layout::Unified { .. } => &[],
        }
    }

    /// The cgroup2 hierarchy, if mounted.
    pub fn unified(&self) -> Option<&Hierarchy> {
        match self {
            Layout::Hybrid { unified, .. } | Layout::Unified { unified } => Some(unified),
            Layout::Legacy { .. } => None,
        }
    }
}

fn is_v1_controller_option(o: &str) -> bool {
    const NOT_CONTROLLERS: &[&str] = &[
        "rw",
        "ro",
        "noprefix",
        "clone_children",
        "xattr",
        "cpuset_v2_mode",
        "favordynmods",
    ];
    !o.is_empty() && !NOT_CONTROLLERS.contains(&o) && !o.starts_with("release_agent=")
}

struct MountinfoLine<'a> {
    root: &'a str,
    mountpoint: &'a str,
    fstype: &'a str,
    super_opts: &'a str,
}

/// Split one mountinfo line: "id parent maj:min root mountpoint opts [optional...] - fstype source superopts".
fn parse_mountinfo_line(line: &str) -> Option<MountinfoLine<'_>> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let root = l.nth(3)?;
    let mountpoint = l.next()?;
    let mut r = right.split(' ');
    let fstype = r.next()?;
    let _source = r.next()?;
    let super_opts = r.next().unwrap_or("");
    Some(MountinfoLine {
        root,
        mountpoint,
        fstype,
        super_opts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 22 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
";
    const CGROUP: &str = "\
4:memory:/a/b
3:cpu,cpuacct:/
1:name=systemd:/init.scope
0::/init.scope
";

    #[test]
    fn hybrid_layout_is_recognised() {
        let l = Layout::parse(MOUNTINFO, CGROUP).unwrap();
        assert!(matches!(l, Layout::Hybrid { .. }));
        let names: Vec<_> = l.v1().iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["name=systemd", "cpu,cpuacct", "memory"]);
        let mem = &l.v1()[2];
        assert_eq!(mem.own, Path::new("/a/b"));
        assert_eq!(
            mem.dir_of(Path::new("/a/b/c")),
            Path::new("/sys/fs/cgroup/memory/a/b/c")
        );
        assert_eq!(
            l.v1()[1].controllers().collect::<Vec<_>>(),
            ["cpu", "cpuacct"]
        );
        assert_eq!(l.unified().unwrap().own, Path::new("/init.scope"));
    }

    #[test]
    fn unified_only() {
        let l = Layout::parse(
            "31 22 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/user.slice\n",
        )
        .unwrap();
        assert!(matches!(l, Layout::Unified { .. }));
    }

    #[test]
    fn nested_mount_root_is_stripped() {
        let h = Hierarchy {
            name: "memory".into(),
            mountpoint: "/sys/fs/cgroup/memory".into(),
            mount_root: "/docker/abc".into(),
            own: "/docker/abc".into(),
        };
        assert_eq!(
            h.dir_of(Path::new("/docker/abc/x")),
            Path::new("/sys/fs/cgroup/memory/x")
        );
    }

    #[test]
    fn nothing_mounted_is_an_error() {
        assert!(Layout::parse("", "").is_err());
    }
}
