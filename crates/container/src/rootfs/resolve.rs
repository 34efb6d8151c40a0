//! Resolving paths inside the container's root filesystem so that no symlink in it can lead
//! a mount, a device or a directory we create out of it: every lookup is done by
//! openat2(2) with RESOLVE_IN_ROOT against a descriptor of the rootfs.

use crate::error::{Context, Error, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The container's root directory, open.
pub(crate) struct Root {
    fd: OwnedFd,
}

/// What to create when a path does not exist yet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Dir,
    File,
}

/// The path through /proc that the mount-family syscalls can take for an O_PATH descriptor.
pub(crate) fn fd_path(fd: &impl AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect()
}

impl Root {
    pub(crate) fn open(path: &Path) -> Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open rootfs {}", path.display()))?;
        Ok(Root { fd })
    }

    /// Open `path` (container-absolute) as an O_PATH descriptor, resolved inside the root.
    /// With `no_symlinks`, any symlink on the way is refused.
    pub(crate) fn resolve(&self, path: &Path, no_symlinks: bool) -> std::io::Result<OwnedFd> {
        let mut how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        if no_symlinks {
            how |= ResolveFlags::NO_SYMLINKS;
        }
        let rel = relative(path);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &rel
        };
        Ok(rustix::fs::openat2(
            self.fd.as_fd(),
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        )?)
    }

    /// Make sure `path` exists inside the root (creating missing directories, and the last
    /// component as `kind`), and return it open. A dangling symlink on the way is followed
    /// inside the root and what it points to is created, as a path lookup would expect.
    pub(crate) fn ensure(&self, path: &Path, kind: Kind, no_symlinks: bool) -> Result<OwnedFd> {
        self.ensure_at_depth(path, kind, no_symlinks, 0)
    }

    fn ensure_at_depth(
        &self,
        path: &Path,
        kind: Kind,
        no_symlinks: bool,
        depth: u32,
    ) -> Result<OwnedFd> {
        match self.resolve(path, no_symlinks) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).ctx(|| format!("resolve {} in the rootfs", path.display())),
        }
        if depth > 40 {
            return Err(Error::Config(format!(
                "{}: too many levels of symbolic links in the rootfs",
                path.display()
            )));
        }
        let rel = relative(path);
        let components: Vec<_> = rel.components().collect();
        let mut parent = self.resolve(Path::new("/"), false).ctx(|| "open rootfs")?;
        let mut so_far = PathBuf::from("/");
        for (i, c) in components.iter().enumerate() {
            let parent_path = so_far.clone();
            so_far.push(c);
            match self.resolve(&so_far, no_symlinks) {
                Ok(fd) => {
                    parent = fd;
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).ctx(|| format!("resolve {} in the rootfs", so_far.display()))
                }
            }
            let name = c.as_os_str();
            let last = i + 1 == components.len();
            // The parent was resolved inside the root, and mkdirat/openat on one plain name
            // never follow a symlink at that name (O_NOFOLLOW|O_EXCL for files).
            let dir = self.reopen_dir(&parent, &so_far)?;
            let created = if last && kind == Kind::File {
                rustix::fs::openat(
                    dir.as_fd(),
                    name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::WRONLY
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map(drop)
            } else {
                rustix::fs::mkdirat(dir.as_fd(), name, Mode::from_raw_mode(0o755))
            };
            match created {
                // EEXIST: someone else made it meanwhile (another container on the same
                // rootfs), or it is a dangling symlink. The lookup below tells which.
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => {
                    return Err(e).ctx(|| format!("create {} in the rootfs", so_far.display()))
                }
            }
            match self.resolve(&so_far, no_symlinks) {
                Ok(fd) => parent = fd,
                // Something is there yet does not resolve: a dangling symlink. Follow it
                // (inside the root) and create the rest from where it points.
                Err(e) if e.kind() == ErrorKind::NotFound && !no_symlinks => {
                    let target = rustix::fs::readlinkat(dir.as_fd(), name, Vec::new())
                        .ctx(|| format!("read symlink {} in the rootfs", so_far.display()))?;
                    let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                    let mut next = parent_path.join(target);
                    for rest in &components[i + 1..] {
                        next.push(rest);
                    }
                    return self.ensure_at_depth(&next, kind, no_symlinks, depth + 1);
                }
                Err(e) => {
                    return Err(e).ctx(|| {
                        format!(
                            "resolve {} in the rootfs after creating it",
                            so_far.display()
                        )
                    })
                }
            }
        }
        Ok(parent)
    }

    /// A real directory descriptor for an O_PATH one (the *at calls that create need it).
    fn reopen_dir(&self, fd: &OwnedFd, shown: &Path) -> Result<OwnedFd> {
        rustix::fs::openat(
            fd.as_fd(),
            ".",
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| {
            format!(
                "open directory {} in the rootfs",
                parent_of(shown).display()
            )
        })
    }

    /// The parent directory of `path` (created if missing), open for *at calls, and the
    /// last component's name.
    pub(crate) fn parent_dir(&self, path: &Path) -> Result<(OwnedFd, std::ffi::OsString)> {
        let rel = relative(path);
        let name = rel
            .file_name()
            .ok_or_else(|| Error::Config(format!("{} has no file name", path.display())))?
            .to_owned();
        let parent = Path::new("/").join(rel.parent().unwrap_or(Path::new("")));
        let pfd = self.ensure(&parent, Kind::Dir, false)?;
        let dir = self.reopen_dir(&pfd, &parent.join(&name))?;
        Ok((dir, name))
    }
}

fn parent_of(p: &Path) -> &Path {
    p.parent().unwrap_or(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlink_pointing_out_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        // /evil -> <absolute host path>: inside the root that path does not exist.
        symlink(&outside, root.join("evil")).unwrap();
        symlink("../../../..", root.join("up")).unwrap();
        let r = Root::open(&root).unwrap();
        r.ensure(Path::new("/evil/x"), Kind::Dir, false).unwrap();
        assert!(!outside.join("x").exists());
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("x")
            .is_dir());
        r.ensure(Path::new("/up/file"), Kind::File, false).unwrap();
        assert!(root.join("file").is_file());
    }

    #[test]
    fn no_symlinks_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        symlink("real", dir.path().join("proc")).unwrap();
        let r = Root::open(dir.path()).unwrap();
        assert!(r.resolve(Path::new("/proc"), true).is_err());
        assert!(r.resolve(Path::new("/proc"), false).is_ok());
    }

    #[test]
    fn concurrent_creators_of_one_path_all_succeed() {
        // Containers sharing a rootfs race to create the same mount targets.
        for _ in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let path = dir.path().to_path_buf();
                    std::thread::spawn(move || {
                        let r = Root::open(&path).unwrap();
                        r.ensure(Path::new("/proc"), Kind::Dir, true).unwrap();
                        r.ensure(Path::new("/a/b/c"), Kind::File, false).unwrap();
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
    }

    #[test]
    fn parent_dir_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let r = Root::open(dir.path()).unwrap();
        let (_fd, name) = r.parent_dir(Path::new("/dev/a/b")).unwrap();
        assert_eq!(name, "b");
        assert!(dir.path().join("dev/a").is_dir());
    }
}
