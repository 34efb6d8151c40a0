//! Reading and writing cgroup files with errors that name them.

use crate::CgroupError;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.into(),
        source,
    })
}

/// Write one value with a single write(2), as cgroup files expect.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.into(),
        value: value.into(),
        source,
    })
}

pub(crate) fn parse_pids(text: &str) -> Vec<i32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// The sub-cgroups (child directories) of a cgroup; none if it does not exist.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.into(),
                source,
            })
        }
    };
    Ok(entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect())
}

/// Pids in a cgroup and every sub-cgroup of it; none if it does not exist.
pub(crate) fn procs_in_tree(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let file = dir.join("cgroup.procs");
    let mut pids = match std::fs::read_to_string(&file) {
        Ok(text) => parse_pids(&text),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(CgroupError::Read { path: file, source }),
    };
    for sub in subdirs(dir)? {
        pids.extend(procs_in_tree(&sub)?);
    }
    Ok(pids)
}

/// The middle parts of the names of files in `dir` named `{prefix}{middle}{suffix}`.
pub(crate) fn files_matching(dir: &Path, prefix: &str, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some(name.strip_prefix(prefix)?.strip_suffix(suffix)?.to_string())
        })
        .collect();
    out.sort();
    out
}

/// Remove a cgroup directory and the sub-cgroups made in it (by `exec --cgroup` users or
/// the container itself), deepest first. Right after its last task exits the kernel may
/// still hold a cgroup busy for a moment, so EBUSY is retried briefly, but only while no
/// process is listed in it: a cgroup that live processes still use (containers sharing one
/// cgroupsPath) is left in place at once, with a warning, for the last of them to remove.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    // The usual case, an empty cgroup without sub-cgroups, costs one rmdir; the kernel
    // refuses it (EBUSY) while a process or a sub-cgroup is in it, and we look closer.
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    if let Some(pids) = in_use(dir) {
        tracing::warn!(
            "cgroup {} is still used by other processes (pids {pids:?}); left in place",
            dir.display()
        );
        return Ok(());
    }
    for sub in subdirs(dir)? {
        remove_tree(&sub)?;
    }
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                if let Some(pids) = in_use(dir) {
                    tracing::warn!(
                        "cgroup {} is still used by other processes (pids {pids:?}); left in place",
                        dir.display()
                    );
                    return Ok(());
                }
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.into(),
                    source,
                })
            }
        }
    }
}

/// The processes listed in the cgroup tree at `dir`, if there are any. A process that has
/// exited is no longer listed, even while the kernel still counts the cgroup busy.
fn in_use(dir: &Path) -> Option<Vec<i32>> {
    procs_in_tree(dir).ok().filter(|p| !p.is_empty())
}

/// Move `pid` into the cgroup `dir`.
pub(crate) fn add_pid(dir: &Path, pid: i32) -> Result<(), CgroupError> {
    let file = dir.join("cgroup.procs");
    std::fs::write(&file, pid.to_string()).map_err(|source| CgroupError::Enter {
        pid,
        path: file,
        source,
    })
}

/// Freezing and thawing are asynchronous: check `done` every millisecond for up to a second;
/// if it never holds, an error saying `what` was not reached.
pub(crate) fn wait_until(
    what: impl FnOnce() -> String,
    mut done: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<(), CgroupError> {
    for _ in 0..1000 {
        if done()? {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(CgroupError::Invalid(format!("{} within a second", what())))
}

/// Hold an exclusive flock on the cgroup directory `dir` until the file is dropped:
/// commands that rewrite a cgroup's device rules (containers sharing one cgroupsPath,
/// created in parallel) do it one after the other, each from the state the last left.
pub(crate) fn lock(dir: &Path) -> Result<std::fs::File, CgroupError> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir).map_err(|source| CgroupError::Read {
        path: dir.into(),
        source,
    })?;
    // SAFETY: flock on a descriptor we own; it blocks until the lock is ours.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(CgroupError::Write {
            path: dir.into(),
            value: "(flock LOCK_EX)".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(f)
}

/// Containers may share one cgroupsPath (runc allows it, and engines' test suites do it):
/// say so when a new container's cgroup already holds processes, and go on.
pub(crate) fn warn_if_shared(pids: &[i32], dirs: &[(String, PathBuf)]) {
    if let (Some(_), Some((_, dir))) = (pids.first(), dirs.first()) {
        tracing::warn!(
            "cgroup {} already holds {} process(es) of others: it will be shared; limits set now apply to all of them",
            dir.display(),
            pids.len()
        );
    }
}
