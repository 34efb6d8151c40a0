//! The `start` action: containerd runs it (working directory: the container's bundle) and
//! reads the address of the shim that will serve the container from its stdout. A pod's
//! containers share one shim: if the pod's shim already listens, its address is the answer;
//! otherwise a new shim is started, detached from containerd (its own session), with the
//! socket already listening so that containerd can connect as soon as it reads the address.

use crate::address;
use crate::options::{self, RuntimeOptions};
use anyhow::{Context, Result};
use containerd_shim::Flags;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// The descriptor the new shim finds its listening socket on.
pub const LISTENER_FD: i32 = 3;
/// Set (to [`LISTENER_FD`]) in the environment of a shim started as a program of its own
/// (`-socket ADDRESS`, by hand or by a test) with its listening socket passed.
pub const LISTENER_ENV: &str = "RUNR_SHIM_LISTENER_FD";

pub fn run(flags: &Flags) -> Result<()> {
    let bundle = std::env::current_dir().context("read the working directory (the bundle)")?;
    // containerd sends the runtime options on stdin (the pod's, for its first container).
    let options = options::from_start_stdin(&read_stdin()).map_err(|e| anyhow::anyhow!(e))?;
    options::check_binary_name(&options.binary_name).map_err(|e| anyhow::anyhow!(e))?;
    let grouping = address::grouping(&bundle, &flags.id);
    let address = address::socket_address(&bundle, &flags.address, &flags.namespace, &grouping);
    let path = address::socket_path(&address);
    let listener = listen(path)?;
    // Everything that can fail comes before a new shim starts: a start that fails leaves
    // no shim behind, with no task and no Shutdown ever coming to it.
    let started = write_address(&bundle, &address)
        .and_then(|()| address::write_root(&bundle, &options, &flags.namespace))
        .and_then(|()| match &listener {
            Some(l) => spawn_shim(flags, &bundle, &address, l, &options),
            // The pod's shim serves this container too.
            None => {
                tracing::debug!("reusing the shim at {address}");
                Ok(())
            }
        });
    if let (Err(_), Some(_)) = (&started, &listener) {
        let _ = std::fs::remove_file(path);
    }
    started?;
    let mut out = std::io::stdout();
    out.write_all(address.as_bytes())
        .and_then(|()| out.flush())
        .context("write the address to stdout")?;
    Ok(())
}

/// All of stdin (nothing when it is a terminal: run by hand).
fn read_stdin() -> Vec<u8> {
    let mut stdin = std::io::stdin();
    let mut bytes = Vec::new();
    if !stdin.is_terminal() {
        let _ = stdin.read_to_end(&mut bytes);
    }
    bytes
}

/// A new listening socket at `path`, or `None` if a live shim already listens there.
fn listen(path: &str) -> Result<Option<UnixListener>> {
    let dir = Path::new(path).parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    match UnixListener::bind(path) {
        Ok(l) => return Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
        Err(e) => return Err(e).with_context(|| format!("listen on {path}")),
    }
    if UnixStream::connect(path).is_ok() {
        return Ok(None);
    }
    // Left by a shim that died.
    std::fs::remove_file(path).with_context(|| format!("remove the stale socket {path}"))?;
    let l = UnixListener::bind(path).with_context(|| format!("listen on {path}"))?;
    Ok(Some(l))
}

/// Start the long-lived shim: a fork of this process (no exec: this process is
/// single-threaded, and the fork has all it needs, the listening socket included), in its
/// own session (no signal meant for containerd's process group reaches it), its stdio on
/// /dev/null (containerd reads this process's output to its end), with an OOM score one
/// above containerd's and, if the options name one, in the shim cgroup.
fn spawn_shim(
    flags: &Flags,
    bundle: &Path,
    address: &str,
    listener: &UnixListener,
    options: &RuntimeOptions,
) -> Result<()> {
    let root = options::state_root(options, &flags.namespace)
        .unwrap_or_else(|| address::runr_root(bundle, &flags.namespace));
    let listener = listener
        .try_clone()
        .context("duplicate the listening socket for the shim")?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("open /dev/null")?;
    // SAFETY: this process is single-threaded (`start` starts no thread), so the child is
    // a whole copy of it in which no lock is held by a thread that does not exist there.
    let pid = match unsafe { nix::unistd::fork() }.context("fork the shim")? {
        nix::unistd::ForkResult::Child => {
            let detached = detach(&null);
            drop(null);
            let code = match detached
                .and_then(|()| crate::serve::serve_on(flags, address, listener, root))
            {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("{e:#}");
                    1
                }
            };
            std::process::exit(code);
        }
        nix::unistd::ForkResult::Parent { child } => child.as_raw() as u32,
    };
    drop(listener);
    let placed = adjust_oom_score(pid).and_then(|()| match options.shim_cgroup.as_str() {
        "" => Ok(()),
        cgroup => move_to_cgroup(pid, cgroup),
    });
    if let Err(e) = placed {
        // No shim outlives a failed start. (Our child, not waited for: its pid is still its.)
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        return Err(e);
    }
    Ok(())
}

/// In the forked shim: a session of its own, stdio on /dev/null.
fn detach(null: &std::fs::File) -> Result<()> {
    nix::unistd::setsid().context("setsid")?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which this process owns; the
        // standard streams' buffers are empty (nothing was written yet).
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("put /dev/null on descriptor {fd}"));
        }
    }
    Ok(())
}

/// Give the shim an OOM score one above containerd's (this process's parent), as
/// containerd's own shims have: under memory pressure a shim goes before containerd.
fn adjust_oom_score(pid: u32) -> Result<()> {
    let parent = format!(
        "/proc/{}/oom_score_adj",
        std::os::unix::process::parent_id()
    );
    let score: i32 = std::fs::read_to_string(&parent)
        .with_context(|| format!("read {parent}"))?
        .trim()
        .parse()
        .with_context(|| format!("parse {parent}"))?;
    let path = format!("/proc/{pid}/oom_score_adj");
    let score = (score + 1).min(1000);
    std::fs::write(&path, score.to_string()).with_context(|| format!("write {score} to {path}"))
}

/// Move the shim into `cgroup` (the runtime options' `ShimCgroup`, a path from the
/// hierarchies' roots), as containerd's runc shim is moved: into each hierarchy of the host
/// where that cgroup exists (on a cgroup v1 or hybrid host every v1 controller's, and the
/// unified one's), and it must exist in one at least.
fn move_to_cgroup(pid: u32, cgroup: &str) -> Result<()> {
    let layout = cgroups::Layout::detect().context("find the host's cgroup hierarchies")?;
    let relative = cgroup.trim_start_matches('/');
    let mountpoints = layout
        .v1()
        .iter()
        .map(|h| h.mountpoint.clone())
        .chain(layout.unified().map(|h| h.mountpoint.clone()));
    let mut moved = 0;
    let mut seen = std::collections::HashSet::new();
    for mountpoint in mountpoints {
        // Controllers mounted together (cpu,cpuacct) share one directory.
        if !seen.insert(mountpoint.clone()) {
            continue;
        }
        let dir = mountpoint.join(relative);
        if !dir.is_dir() {
            continue;
        }
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .with_context(|| format!("move the shim (pid {pid}) into {}", procs.display()))?;
        moved += 1;
    }
    if moved == 0 {
        anyhow::bail!("ShimCgroup {cgroup}: no cgroup hierarchy of this host has it");
    }
    tracing::debug!("shim {pid} moved into {cgroup} ({moved} hierarchies)");
    Ok(())
}

/// containerd (on restart) and `delete` find the shim's address in the bundle.
fn write_address(bundle: &Path, address: &str) -> Result<()> {
    let path = bundle.join("address");
    let tmp = bundle.join(".address.tmp");
    std::fs::write(&tmp, address).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path)
        .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    #[test]
    fn the_shim_is_moved_into_its_cgroup() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let layout = cgroups::Layout::detect().unwrap();
        let name = format!("runr-shim-test-{}", std::process::id());
        let mountpoints: std::collections::BTreeSet<PathBuf> = layout
            .v1()
            .iter()
            .map(|h| h.mountpoint.clone())
            .chain(layout.unified().map(|h| h.mountpoint.clone()))
            .collect();
        let dirs: Vec<PathBuf> = mountpoints.iter().map(|m| m.join(&name)).collect();
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
            // A new v1 cpuset has no cpus or memory nodes: no process may join it until it
            // gets its parent's.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(d.parent().unwrap().join(f)) {
                    std::fs::write(d.join(f), v.trim()).unwrap();
                }
            }
        }
        let mut child = Command::new("sleep").arg("100").spawn().unwrap();
        let moved = move_to_cgroup(child.id(), &format!("/{name}"));
        let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        for d in &dirs {
            let _ = std::fs::remove_dir(d);
        }
        moved.unwrap();
        for line in cgroups.lines() {
            assert!(line.ends_with(&format!(":/{name}")), "{line}");
        }
        assert!(move_to_cgroup(std::process::id(), "/no/such/runr-cgroup").is_err());
    }
}
