//! The container's root filesystem: the mounts containerd passes with Create (an overlay
//! of the image's layers, or a bind mount of a snapshot) are stacked on `BUNDLE/rootfs`, in
//! order, and unmounted at Delete.

use anyhow::{bail, Context, Result};
use container::MountOptions;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::Path;

/// One mount as containerd describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
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
    let what = || {
        format!(
            "mount {} {:?} on {} (options {:?})",
            m.kind,
            m.source,
            target.display(),
            m.options
        )
    };
    // runr's own parser, as for a config's mounts.
    let o = MountOptions::parse(&m.options);
    if o.idmap || o.tmpcopyup || o.attr_set != 0 || o.attr_clr != 0 {
        bail!(
            "{}: idmap, tmpcopyup and recursive (r...) options are not supported for the rootfs",
            what()
        );
    }
    let data = o.data_string();
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
    let data_arg = (!data.is_empty()).then_some(data.as_str());
    let kind = (!m.kind.is_empty() && !o.bind).then_some(m.kind.as_str());
    mount(Some(m.source.as_str()), target, kind, o.flags, data_arg).with_context(what)?;
    // A bind mount ignores the other flags (ro, nosuid, ...) until it is remounted.
    let extra = o.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if o.bind && !extra.is_empty() {
        let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra;
        mount(None::<&str>, target, None::<&str>, remount, None::<&str>)
            .with_context(|| format!("remount {} with {extra:?}", target.display()))?;
    }
    for p in &o.propagation {
        mount(None::<&str>, target, None::<&str>, *p, None::<&str>)
            .with_context(|| format!("change the propagation of {} ({p:?})", target.display()))?;
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
    fn a_read_only_bind_is_remounted_read_only() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("snapshot"), dir.path().join("rootfs"));
        std::fs::create_dir(&source).unwrap();
        let m = MountSpec {
            kind: "bind".into(),
            source: source.to_str().unwrap().into(),
            options: opts(&["rbind", "ro", "nosuid"]),
        };
        mount_all(&[m], &target).unwrap();
        let written = std::fs::write(target.join("f"), "x");
        let st = nix::sys::statvfs::statvfs(&target).unwrap();
        unmount(&target).unwrap();
        assert!(written.is_err(), "a read-only bind took a write");
        assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID));
        let bad = MountSpec {
            kind: "bind".into(),
            source: source.to_str().unwrap().into(),
            options: opts(&["rbind", "idmap"]),
        };
        assert!(mount_all(&[bad], &target).is_err());
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
