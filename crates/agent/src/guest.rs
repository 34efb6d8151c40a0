//! Running as PID 1 of a guest: the file systems a guest's init mounts, and the reaping of
//! orphans.
//!
//! Reaping design: PID 1 forks once, before anything else starts. The parent stays PID 1
//! and does only an init's work: it reaps every child it gets (`waitpid(-1)`) and forwards
//! SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the child; when the child ends,
//! it syncs and powers the guest off (exiting with the child's status if it may not). The
//! child is the agent, with its spawner, supervisor and server. The kernel reparents an
//! orphan to PID 1, never to the agent (which is no subreaper), and the agent's own children
//! (the spawner, its workers, every container process, each reaped through its pidfd) are
//! never PID 1's: so PID 1's `waitpid(-1)` takes nothing the supervisor waits for, and the
//! agent never needs one. The cost is one small process that shares the agent's pages.

use anyhow::{Context, Result};
use nix::mount::MsFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::collections::HashSet;
use std::path::Path;

/// One file system an init mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestMount {
    pub target: &'static str,
    pub fstype: &'static str,
    pub flags: MsFlags,
    pub data: &'static str,
    /// The agent cannot run without it; without the others, only what needs them fails
    /// (containers without cgroups, ptys or /dev/shm), so their failure is a warning.
    pub essential: bool,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// What a guest needs, in mount order (a parent before what is mounted under it): /proc,
/// /sys, /dev and /run, and what containers need beneath them (cgroup v2, ptys, shared
/// memory).
pub const GUEST_MOUNTS: &[GuestMount] = &[
    GuestMount {
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        essential: true,
    },
    GuestMount {
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        essential: true,
    },
    GuestMount {
        target: "/sys/fs/cgroup",
        fstype: "cgroup2",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
        essential: false,
    },
    GuestMount {
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: "mode=0755",
        essential: true,
    },
    GuestMount {
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: "gid=5,mode=0620,ptmxmode=0666",
        essential: false,
    },
    GuestMount {
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=1777",
        essential: false,
    },
    GuestMount {
        target: "/run",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=0755",
        essential: true,
    },
];

/// The mount points /proc/self/mountinfo lists (its fifth field, with the kernel's octal
/// escapes of space, tab, newline and backslash undone).
pub fn mount_points(mountinfo: &str) -> HashSet<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .collect()
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Those of [`GUEST_MOUNTS`] not mounted yet, given the mount points there are.
pub fn missing(mounted: &HashSet<String>) -> Vec<&'static GuestMount> {
    GUEST_MOUNTS
        .iter()
        .filter(|m| !mounted.contains(m.target))
        .collect()
}

/// Mount what a guest needs and is not mounted yet. /proc first, when /proc/self is not
/// there, so that the rest can be looked up in its mountinfo. A failure is an error for an
/// essential mount, a warning for the others.
pub fn mount_guest_filesystems() -> Result<()> {
    if !Path::new("/proc/self").exists() {
        mount(&GUEST_MOUNTS[0])?;
    }
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    for m in missing(&mount_points(&info)) {
        match mount(m) {
            Err(e) if !m.essential => tracing::warn!("{e:#}"),
            r => r?,
        }
    }
    Ok(())
}

fn mount(m: &GuestMount) -> Result<()> {
    std::fs::create_dir_all(m.target)
        .with_context(|| format!("create the mount point {}", m.target))?;
    let data = (!m.data.is_empty()).then_some(m.data);
    nix::mount::mount(Some(m.fstype), m.target, Some(m.fstype), m.flags, data)
        .with_context(|| format!("mount {} on {} ({})", m.fstype, m.target, m.data))?;
    tracing::info!(target = m.target, fstype = m.fstype, "mounted");
    Ok(())
}

/// The guest's resolver configuration: `lines` (as CreateSandbox sends them, e.g.
/// `nameserver 10.0.0.1`) written to `file`, which is bind-mounted on /etc/resolv.conf
/// (once; later calls rewrite it in place, so the mount shows the new lines). The guest's
/// root may be read-only: the file lives in the agent's state dir.
pub fn set_dns(file: &Path, lines: &[String]) -> Result<()> {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(file, text).with_context(|| format!("write {}", file.display()))?;
    let target = Path::new("/etc/resolv.conf");
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    if mount_points(&info).contains("/etc/resolv.conf") {
        return Ok(());
    }
    if !target.exists() {
        std::fs::write(target, "").with_context(|| format!("create {}", target.display()))?;
    }
    nix::mount::mount(
        Some(file),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("bind-mount {} on {}", file.display(), target.display()))
}

/// The signals PID 1 handles: SIGCHLD to reap, the others to forward to the agent.
fn init_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    set
}

/// Split into PID 1 and the agent (see the module's documentation). Call while the program
/// is single-threaded. Returns in the agent; PID 1 never returns.
pub fn split_init() -> Result<()> {
    container::require_single_thread("PID 1's fork of the agent")?;
    let set = init_signals();
    // Blocked before the fork, so that no SIGCHLD or SIGTERM reaches PID 1 unhandled.
    let old = set
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .context("sigprocmask: block PID 1's signals")?;
    // SAFETY: the program is single-threaded (the caller's promise), so the child is a
    // complete copy in which every lock is as this thread left it.
    match unsafe { nix::unistd::fork() }.context("fork the agent from PID 1")? {
        nix::unistd::ForkResult::Child => {
            old.thread_set_mask()
                .context("sigprocmask: restore the agent's signal mask")?;
            Ok(())
        }
        nix::unistd::ForkResult::Parent { child } => init_loop(child, &set),
    }
}

/// PID 1's loop: reap, forward, and once the agent has ended, power off.
fn init_loop(agent: Pid, set: &SigSet) -> ! {
    tracing::info!(agent = agent.as_raw(), "PID 1: reaping orphans");
    let mut agent_status = None;
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(signal) if agent_status.is_none() => {
                if let Err(e) = nix::sys::signal::kill(agent, signal) {
                    tracing::warn!("PID 1: forward {signal} to the agent: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("PID 1: sigwait: {e}"),
        }
        // A SIGCHLD may stand for several children: reap until none is left to reap.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == agent => agent_status = Some(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == agent => {
                    agent_status = Some(128 + sig as i32)
                }
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(other) => tracing::debug!("PID 1: reaped {other:?}"),
                Err(e) => {
                    tracing::warn!("PID 1: waitpid: {e}");
                    break;
                }
            }
        }
        if let Some(status) = agent_status {
            power_off(status);
        }
    }
}

/// The agent has ended: the guest has nothing left to do.
fn power_off(status: i32) -> ! {
    tracing::info!(status, "PID 1: the agent has ended; powering off");
    nix::unistd::sync();
    // SAFETY: reboot(2) takes no pointers; on success it does not return.
    let r = unsafe { libc::reboot(libc::RB_POWER_OFF) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        tracing::warn!("PID 1: reboot(RB_POWER_OFF): {e}; exiting instead");
    }
    std::process::exit(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:3 - sysfs sysfs rw
30 22 0:30 / /mnt/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn mount_points_come_from_the_fifth_field_unescaped() {
        let points = mount_points(MOUNTINFO);
        for p in ["/", "/proc", "/sys", "/mnt/with space"] {
            assert!(points.contains(p), "{p} in {points:?}");
        }
        assert_eq!(points.len(), 4);
        assert_eq!(unescape("a\\134b\\011c"), "a\\b\tc");
        assert_eq!(unescape("trailing\\"), "trailing\\");
    }

    #[test]
    fn only_what_is_missing_is_mounted_parents_first() {
        let targets = |m: Vec<&GuestMount>| m.iter().map(|m| m.target).collect::<Vec<_>>();
        assert_eq!(
            targets(missing(&mount_points(MOUNTINFO))),
            ["/sys/fs/cgroup", "/dev", "/dev/pts", "/dev/shm", "/run"]
        );
        assert_eq!(targets(missing(&HashSet::new())).len(), GUEST_MOUNTS.len());
        let all = GUEST_MOUNTS.iter().map(|m| m.target.to_string()).collect();
        assert!(missing(&all).is_empty());
        // Each mount point's parent comes before it.
        for (i, m) in GUEST_MOUNTS.iter().enumerate() {
            let parent = Path::new(m.target).parent().unwrap();
            if let Some(j) = GUEST_MOUNTS
                .iter()
                .position(|p| Path::new(p.target) == parent)
            {
                assert!(j < i, "{} before {}", parent.display(), m.target);
            }
        }
    }

    #[test]
    fn proc_sys_dev_and_run_are_essential() {
        let essential: Vec<_> = GUEST_MOUNTS
            .iter()
            .filter(|m| m.essential)
            .map(|m| m.target)
            .collect();
        assert_eq!(essential, ["/proc", "/sys", "/dev", "/run"]);
    }

    #[test]
    fn pid1_handles_the_signals_it_forwards_and_sigchld() {
        let set = init_signals();
        for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
            assert!(set.contains(s), "{s}");
        }
        assert!(!set.contains(Signal::SIGKILL));
    }
}
