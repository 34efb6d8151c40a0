//! A process just cloned puts itself in its cgroups, instead of being moved in by its parent.
//!
//! Moving *another* process (its pid written to `cgroup.procs` or `tasks`) takes the
//! kernel's global threadgroup lock for writing, and taking that lock after it has been idle
//! waits for a whole RCU grace period: 7 ms on this project's idle test host, on the path of
//! every container started one at a time. Two ways in skip the lock: a single-threaded
//! process that writes `0` (itself) to a v1 `tasks` file (35 µs measured), and a clone3 with
//! CLONE_INTO_CGROUP, which makes the child in its cgroup2 directory from the start.
//!
//! The parent opens everything before the clone ([`Manager::self_entry`]); the kernel checks
//! a cgroup write against the credentials of whoever opened the file, so the child needs no
//! rights of its own (it may already be in a new user namespace) and resolves no path.
//!
//! [`Manager::self_entry`]: crate::Manager::self_entry

use crate::CgroupError;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Descriptors with which a child enters its cgroups by itself, first thing after it is
/// cloned: in every hierarchy, before it can fork.
#[derive(Debug)]
pub struct SelfEntry {
    /// The cgroup2 directory (to clone into) and its `cgroup.procs` (for a child that the
    /// kernel would not clone into it).
    unified: Option<(OwnedFd, File)>,
    /// The `tasks` file of each v1 hierarchy.
    tasks: Vec<File>,
}

#[derive(Debug)]
struct File {
    path: PathBuf,
    fd: OwnedFd,
}

impl File {
    fn open_for_write(path: PathBuf) -> Result<File, CgroupError> {
        use rustix::fs::{open, Mode, OFlags};
        match open(&path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => Ok(File { path, fd }),
            Err(e) => Err(CgroupError::Write {
                path,
                value: "0".into(),
                source: e.into(),
            }),
        }
    }

    /// Move the calling process (its calling thread, for a `tasks` file) in.
    fn write_self(&self) -> Result<(), CgroupError> {
        rustix::io::write(&self.fd, b"0")
            .map(drop)
            .map_err(|e| CgroupError::EnterSelf {
                path: self.path.clone(),
                source: e.into(),
            })
    }
}

impl SelfEntry {
    /// Open the way in to `hierarchies` (name and directory; `""` names the cgroup2 one).
    pub(crate) fn open(hierarchies: &[(String, PathBuf)]) -> Result<SelfEntry, CgroupError> {
        let mut entry = SelfEntry {
            unified: None,
            tasks: Vec::new(),
        };
        for (name, dir) in hierarchies {
            if name.is_empty() {
                let fd = open_dir(dir)?;
                let procs = File::open_for_write(dir.join("cgroup.procs"))?;
                entry.unified = Some((fd, procs));
            } else {
                entry.tasks.push(File::open_for_write(dir.join("tasks"))?);
            }
        }
        Ok(entry)
    }

    /// The cgroup2 directory to clone the child into, if there is one.
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        self.unified.as_ref().map(|(fd, _)| fd.as_fd())
    }

    /// Every descriptor held (for the child to close once it has entered).
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let unified = self
            .unified
            .iter()
            .flat_map(|(d, p)| [d.as_fd(), p.fd.as_fd()]);
        unified
            .chain(self.tasks.iter().map(|t| t.fd.as_fd()))
            .collect()
    }

    /// In the child, single-threaded, before anything else: enter every hierarchy.
    /// `cloned_into`: the clone already put it in [`SelfEntry::clone_into`]'s directory.
    /// Resolves no path.
    pub fn join(&self, cloned_into: bool) -> Result<(), CgroupError> {
        for file in &self.tasks {
            file.write_self()?;
        }
        match &self.unified {
            Some((_, procs)) if !cloned_into => procs.write_self(),
            _ => Ok(()),
        }
    }
}

fn open_dir(dir: &Path) -> Result<OwnedFd, CgroupError> {
    use rustix::fs::{open, Mode, OFlags};
    open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| CgroupError::Read {
        path: dir.into(),
        source: e.into(),
    })
}
