//! The container's root filesystem: the mounts containerd passes with Create (an overlay
//! of the image's layers, or a bind mount of a snapshot) are stacked on `BUNDLE/rootfs`, in
//! order, and unmounted at Delete.

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::Path;

/// One mount as containerd describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

/// What a mount's options ask for: flags for mount(2), and the rest as its data.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    flags: MsFlags,
    data: String,
}

/// The flag options mount(8) knows (those containerd's snapshotters use), and whether each
/// sets or clears its flag.
const FLAG_OPTIONS: &[(&str, MsFlags, bool)] = &[
    ("ro", MsFlags::MS_RDONLY, true),
    ("rw", MsFlags::MS_RDONLY, false),
    ("nosuid", MsFlags::MS_NOSUID, true),
    ("suid", MsFlags::MS_NOSUID, false),
    ("nodev", MsFlags::MS_NODEV, true),
    ("dev", MsFlags::MS_NODEV, false),
    ("noexec", MsFlags::MS_NOEXEC, true),
    ("exec", MsFlags::MS_NOEXEC, false),
    ("sync", MsFlags::MS_SYNCHRONOUS, true),
    ("async", MsFlags::MS_SYNCHRONOUS, false),
    ("noatime", MsFlags::MS_NOATIME, true),
    ("atime", MsFlags::MS_NOATIME, false),
    ("nodiratime", MsFlags::MS_NODIRATIME, true),
    ("relatime", MsFlags::MS_RELATIME, true),
    ("strictatime", MsFlags::MS_STRICTATIME, true),
    ("bind", MsFlags::MS_BIND, true),
    ("rbind", MsFlags::MS_BIND.union(MsFlags::MS_REC), true),
    ("remount", MsFlags::MS_REMOUNT, true),
];

fn parse(options: &[String]) -> Parsed {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match FLAG_OPTIONS.iter().find(|(name, _, _)| name == o) {
            Some((_, f, true)) => flags |= *f,
            Some((_, f, false)) => flags &= !*f,
            None => data.push(o.as_str()),
        }
    }
    Parsed {
        flags,
        data: data.join(","),
    }
}

/// Mount each of `mounts` on `target` (created if missing), in order. On failure what was
/// mounted is undone.
pub fn mount_all(mounts: &[MountSpec], target: &Path) -> Result<()> {
    if mounts.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(target).with_context(|| format!("create {}", target.display()))?;
    for m in mounts {
        if let Err(e) = mount_one(m, target) {
            if let Err(undo) = unmount(target) {
                tracing::error!("{undo:#}");
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &MountSpec, target: &Path) -> Result<()> {
    let Parsed { flags, data } = parse(&m.options);
    // The kernel takes one page of mount data: an overlay of very many layers needs the
    // lowerdir shortened (relative paths from a common directory), which is not done here.
    if data.len() >= 4096 {
        bail!(
            "mount {} on {}: its options are {} bytes, more than the kernel's page for mount data",
            m.kind,
            target.display(),
            data.len()
        );
    }
    let what = || {
        format!(
            "mount {} {:?} on {} (options {:?})",
            m.kind,
            m.source,
            target.display(),
            m.options
        )
    };
    let data_arg = (!data.is_empty()).then_some(data.as_str());
    let kind = (!m.kind.is_empty() && !flags.contains(MsFlags::MS_BIND)).then_some(m.kind.as_str());
    mount(Some(m.source.as_str()), target, kind, flags, data_arg).with_context(what)?;
    // A bind mount ignores MS_RDONLY until it is remounted.
    if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
        let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, target, None::<&str>, remount, None::<&str>)
            .with_context(|| format!("remount {} read-only", target.display()))?;
    }
    Ok(())
}

/// Unmount everything stacked on `path` (nothing if it is not a mount point, or is gone).
pub fn unmount(path: &Path) -> Result<()> {
    for _ in 0..64 {
        match umount2(path, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            // Not a mount point (any more), or not there.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => return Ok(()),
            // Still in use by a process that lingers: detach it, the kernel finishes later.
            Err(nix::errno::Errno::EBUSY) => {
                umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)
                    .with_context(|| format!("unmount (detach) {}", path.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("unmount {}", path.display())),
        }
    }
    bail!(
        "unmount {}: still a mount point after 64 unmounts",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> Vec<String> {
        o.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_and_data_are_told_apart() {
        let p = parse(&opts(&[
            "index=off",
            "lowerdir=/a:/b",
            "upperdir=/u",
            "workdir=/w",
        ]));
        assert_eq!(p.flags, MsFlags::empty());
        assert_eq!(p.data, "index=off,lowerdir=/a:/b,upperdir=/u,workdir=/w");
        let p = parse(&opts(&["ro", "rbind", "nosuid"]));
        assert_eq!(
            p.flags,
            MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_NOSUID
        );
        assert_eq!(p.data, "");
        assert_eq!(parse(&opts(&["ro", "rw"])).flags, MsFlags::empty());
    }

    #[test]
    fn a_missing_or_plain_path_unmounts_as_nothing() {
        let dir = tempfile::tempdir().unwrap();
        unmount(dir.path()).unwrap();
        unmount(&dir.path().join("none")).unwrap();
    }

    #[test]
    fn an_overlay_is_mounted_and_unmounted() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = |n: &str| {
            let p = dir.path().join(n);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let (lower, upper, work, target) = (d("l"), d("u"), d("w"), dir.path().join("rootfs"));
        std::fs::write(lower.join("f"), "x").unwrap();
        let m = MountSpec {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={}", lower.display()),
                format!("upperdir={}", upper.display()),
                format!("workdir={}", work.display()),
            ],
        };
        mount_all(&[m], &target).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("f")).unwrap(), "x");
        unmount(&target).unwrap();
        assert!(!target.join("f").exists());
    }
}
