//! Turning a mount's `options` list into mount(2) flags, propagation changes, recursive
//! attributes for mount_setattr(2), and the leftover filesystem data string.

use nix::mount::MsFlags;

/// MOUNT_ATTR_* bits (linux/mount.h).
pub(crate) mod attr {
    pub const RDONLY: u64 = 0x1;
    pub const NOSUID: u64 = 0x2;
    pub const NODEV: u64 = 0x4;
    pub const NOEXEC: u64 = 0x8;
    pub const ATIME_MASK: u64 = 0x70;
    pub const RELATIME: u64 = 0x0;
    pub const NOATIME: u64 = 0x10;
    pub const STRICTATIME: u64 = 0x20;
    pub const NODIRATIME: u64 = 0x80;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// What a mount's `options` list (as an OCI config's mounts, or containerd's rootfs mounts,
/// give it) asks of mount(2): [`MountOptions::parse`] sorts each option into flags to set
/// or clear, a propagation change, a recursive attribute, a runr extension, or the
/// filesystem's data (whatever is none of those).
#[derive(Debug, Clone, PartialEq)]
pub struct MountOptions {
    /// Flags to set.
    pub flags: MsFlags,
    /// Flags the options explicitly clear (e.g. `rw`, `suid`): they must not be carried over
    /// from the existing mount when remounting.
    pub cleared: MsFlags,
    /// Propagation changes, in order.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes (`rro`, `rnosuid`, ...): to set and to clear.
    pub attr_set: u64,
    pub attr_clr: u64,
    /// `bind` or `rbind`.
    pub bind: bool,
    /// Options the kernel's filesystem gets as data (`mode=755`, `size=65536k`, ...).
    pub data: Vec<String>,
    /// `idmap` / `ridmap`: an idmapped mount, the mapping applied to submounts too (ridmap).
    pub idmap: bool,
    pub idmap_recursive: bool,
    /// runc's `tmpcopyup` extension: fill a new tmpfs with what the target held.
    pub tmpcopyup: bool,
}

impl Default for MountOptions {
    fn default() -> MountOptions {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            attr_set: 0,
            attr_clr: 0,
            bind: false,
            data: Vec::new(),
            idmap: false,
            idmap_recursive: false,
            tmpcopyup: false,
        }
    }
}

impl MountOptions {
    /// Sort `options`, in order (a later option overrides an earlier one it contradicts:
    /// `ro` then `rw` leaves the mount writable).
    pub fn parse(options: &[String]) -> MountOptions {
        let mut o = MountOptions::default();
        for opt in options {
            let s = opt.as_str();
            if let Some((set, flag)) = flag_option(s) {
                if set {
                    o.flags |= flag;
                    o.cleared.remove(flag);
                } else {
                    o.flags.remove(flag);
                    o.cleared |= flag;
                }
                continue;
            }
            if let Some(p) = propagation_option(s) {
                o.propagation.push(p);
                continue;
            }
            if let Some((set, clr)) = recursive_option(s) {
                o.attr_set = (o.attr_set & !clr) | set;
                o.attr_clr |= clr;
                continue;
            }
            match s {
                "bind" => {
                    o.bind = true;
                    o.flags |= MsFlags::MS_BIND;
                }
                "rbind" => {
                    o.bind = true;
                    o.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
                }
                "idmap" => o.idmap = true,
                "ridmap" => {
                    o.idmap = true;
                    o.idmap_recursive = true;
                }
                "tmpcopyup" => o.tmpcopyup = true,
                _ => o.data.push(opt.clone()),
            }
        }
        o
    }

    /// The filesystem's data, as mount(2) takes it: the data options joined by commas.
    pub fn data_string(&self) -> String {
        self.data.join(",")
    }
}

/// Flags beyond the bind itself, which a bind mount must apply by remounting.
pub(crate) fn remount_flags(flags: MsFlags) -> MsFlags {
    flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
}

/// Plain mount flags: (name, sets it?, flag).
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("ro", true, MsFlags::MS_RDONLY),
    ("rw", false, MsFlags::MS_RDONLY),
    ("nosuid", true, MsFlags::MS_NOSUID),
    ("suid", false, MsFlags::MS_NOSUID),
    ("nodev", true, MsFlags::MS_NODEV),
    ("dev", false, MsFlags::MS_NODEV),
    ("noexec", true, MsFlags::MS_NOEXEC),
    ("exec", false, MsFlags::MS_NOEXEC),
    ("sync", true, MsFlags::MS_SYNCHRONOUS),
    ("async", false, MsFlags::MS_SYNCHRONOUS),
    ("dirsync", true, MsFlags::MS_DIRSYNC),
    ("remount", true, MsFlags::MS_REMOUNT),
    ("mand", true, MsFlags::MS_MANDLOCK),
    ("nomand", false, MsFlags::MS_MANDLOCK),
    ("atime", false, MsFlags::MS_NOATIME),
    ("noatime", true, MsFlags::MS_NOATIME),
    ("diratime", false, MsFlags::MS_NODIRATIME),
    ("nodiratime", true, MsFlags::MS_NODIRATIME),
    ("relatime", true, MsFlags::MS_RELATIME),
    ("norelatime", false, MsFlags::MS_RELATIME),
    ("strictatime", true, MsFlags::MS_STRICTATIME),
    ("nostrictatime", false, MsFlags::MS_STRICTATIME),
    ("lazytime", true, MsFlags::MS_LAZYTIME),
    ("nolazytime", false, MsFlags::MS_LAZYTIME),
    ("silent", true, MsFlags::MS_SILENT),
    ("loud", false, MsFlags::MS_SILENT),
    (
        "nosymfollow",
        true,
        MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
    ),
    (
        "symfollow",
        false,
        MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW),
    ),
];

/// Propagation types.
const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Recursive attributes for mount_setattr(2): (name, attr_set, attr_clr). The atime modes
/// are one field: clearing the mask and setting one mode.
const RECURSIVE: &[(&str, u64, u64)] = {
    use attr::*;
    &[
        ("rro", RDONLY, 0),
        ("rrw", 0, RDONLY),
        ("rnosuid", NOSUID, 0),
        ("rsuid", 0, NOSUID),
        ("rnodev", NODEV, 0),
        ("rdev", 0, NODEV),
        ("rnoexec", NOEXEC, 0),
        ("rexec", 0, NOEXEC),
        ("rnodiratime", NODIRATIME, 0),
        ("rdiratime", 0, NODIRATIME),
        ("rrelatime", RELATIME, ATIME_MASK),
        ("rnorelatime", 0, ATIME_MASK),
        ("rnoatime", NOATIME, ATIME_MASK),
        ("ratime", 0, ATIME_MASK),
        ("rstrictatime", STRICTATIME, ATIME_MASK),
        ("rnostrictatime", 0, ATIME_MASK),
        ("rnosymfollow", NOSYMFOLLOW, 0),
        ("rsymfollow", 0, NOSYMFOLLOW),
    ]
};

/// Options with a meaning of their own beyond flags.
const OTHER: &[&str] = &["bind", "rbind", "tmpcopyup"];

fn flag_option(s: &str) -> Option<(bool, MsFlags)> {
    FLAGS
        .iter()
        .find(|(n, _, _)| *n == s)
        .map(|(_, set, f)| (*set, *f))
}

pub(crate) fn propagation_option(s: &str) -> Option<MsFlags> {
    PROPAGATION.iter().find(|(n, _)| *n == s).map(|(_, f)| *f)
}

fn recursive_option(s: &str) -> Option<(u64, u64)> {
    RECURSIVE
        .iter()
        .find(|(n, _, _)| *n == s)
        .map(|(_, set, clr)| (*set, *clr))
}

/// Every option name runr understands (for `features`), sorted.
pub(crate) fn known_options() -> Vec<&'static str> {
    let mut all: Vec<&str> = FLAGS
        .iter()
        .map(|f| f.0)
        .chain(PROPAGATION.iter().map(|p| p.0))
        .chain(RECURSIVE.iter().map(|r| r.0))
        .chain(OTHER.iter().copied())
        .collect();
    all.sort_unstable();
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(opts: &[&str]) -> MountOptions {
        MountOptions::parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_and_data_are_split() {
        let o = parse(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data_string(), "mode=755,size=65536k");
        assert!(!o.bind);
    }

    #[test]
    fn later_options_win() {
        let o = parse(&["ro", "rw"]);
        assert!(!o.flags.contains(MsFlags::MS_RDONLY));
        assert!(o.cleared.contains(MsFlags::MS_RDONLY));
    }

    #[test]
    fn rbind_with_readonly_needs_a_remount() {
        let o = parse(&["rbind", "ro", "rprivate"]);
        assert!(o.bind);
        assert_eq!(remount_flags(o.flags), MsFlags::MS_RDONLY);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
    }

    #[test]
    fn recursive_attributes() {
        let o = parse(&["rro", "rnoatime", "rnosuid"]);
        assert_eq!(o.attr_set, attr::RDONLY | attr::NOATIME | attr::NOSUID);
        assert_eq!(o.attr_clr, attr::ATIME_MASK);
        assert!(o.flags.is_empty());
        let o = parse(&["rbind", "rnosymfollow"]);
        assert_eq!(o.attr_set, attr::NOSYMFOLLOW);
        assert!(o.data.is_empty());
    }

    #[test]
    fn extensions_are_recognised() {
        let o = parse(&["tmpcopyup", "idmap"]);
        assert!(o.tmpcopyup && o.idmap && o.data.is_empty());
    }
}
