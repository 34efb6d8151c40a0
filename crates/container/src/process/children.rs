//! The container processes the library clones (a container's init, an exec'd process), and
//! their end when a create or an exec fails part-way: one place that kills and reaps them.
//!
//! Cloned by the CLI, they are its children. Cloned in a [`crate::Spawner`]'s worker, they
//! are born with CLONE_PARENT: children of the program that embeds the library (so that its
//! [`crate::ProcessHandle`] can wait for them), not of the short-lived worker. The worker
//! cannot wait for those; what it had to kill it reports back, and the embedding program
//! reaps them.

use crate::error::Result;
use crate::process::ledger::Ledger;
use crate::sys::{self, Dumpable, Forked};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

/// Set once in a spawner's worker, which is single-threaded and short-lived.
static FOR_OUR_PARENT: AtomicBool = AtomicBool::new(false);
/// The worker's answer socket: a container process must not hold it (an init waiting for
/// `start` would keep the caller from seeing the worker's end).
static CLOSE_IN_CHILD: AtomicI32 = AtomicI32::new(-1);
/// Pids the worker killed and could not reap.
static TO_REAP: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// Where the worker's clones record their pids for the caller.
static LEDGER: OnceLock<Ledger> = OnceLock::new();

/// From now on, container processes are cloned as children of our parent, close `answer`
/// first thing, and have their pids recorded in `ledger` as they are cloned.
pub(crate) fn hand_to_parent(answer: RawFd, ledger: Ledger) {
    FOR_OUR_PARENT.store(true, Ordering::Relaxed);
    CLOSE_IN_CHILD.store(answer, Ordering::Relaxed);
    let _ = LEDGER.set(ledger);
}

/// The pids our parent must reap (ours were killed, or died, and are zombies of its).
pub(crate) fn take_to_reap() -> Vec<i32> {
    std::mem::take(&mut *TO_REAP.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Clone a container process (see [`sys::clone_process`] for `flags` and `dumpable`), in
/// the cgroup2 directory `cgroup` if one is given.
pub(crate) fn clone(
    flags: u64,
    cgroup: Option<BorrowedFd>,
    dumpable: Dumpable,
    what: &str,
) -> Result<Forked> {
    let flags = match FOR_OUR_PARENT.load(Ordering::Relaxed) {
        true => flags | libc::CLONE_PARENT as u64,
        false => flags,
    };
    let record = LEDGER.get().and_then(Ledger::next_slot);
    let forked = sys::clone_process_into(flags, cgroup, record, dumpable, what)?;
    let answer = CLOSE_IN_CHILD.load(Ordering::Relaxed);
    if answer >= 0 && matches!(forked, Forked::Child) {
        // SAFETY: our copy of the worker's answer socket, which nothing here uses.
        unsafe { libc::close(answer) };
    }
    Ok(forked)
}

/// End a container process cloned by [`clone`] that nobody has waited for yet (so its pid
/// cannot have been recycled): SIGKILL, and reap it.
pub(crate) fn kill_and_reap(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    let _ = wait_exit(pid);
}

/// Wait until container process `pid` (cloned by [`clone`], not yet waited for) has ended,
/// and how. `None` if that cannot be told.
pub(crate) fn wait_exit(pid: i32) -> Option<WaitStatus> {
    match waitpid(Pid::from_raw(pid), None) {
        Err(Errno::ECHILD) if FOR_OUR_PARENT.load(Ordering::Relaxed) => {
            let status = zombie_status(pid);
            TO_REAP.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
            status
        }
        r => r.ok(),
    }
}

/// How a process that is not our child ended: once it is a zombie (which it stays until
/// its parent, waiting for our answer, reaps it), field 52 of its /proc stat holds the
/// status as waitpid reports it.
fn zombie_status(pid: i32) -> Option<WaitStatus> {
    let pidfd = sys::pidfd_open(pid).ok()?;
    sys::pidfd_wait_exit(&pidfd, None).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let raw = exit_code_field(&stat)?;
    WaitStatus::from_raw(Pid::from_raw(pid), raw).ok()
}

/// Field 52 (exit_code) of a /proc/PID/stat line.
fn exit_code_field(stat: &str) -> Option<i32> {
    // The command name (field 2) may hold spaces and ')': fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // `rest` starts at field 3; field 52 is 49 further on.
    rest.split_ascii_whitespace().nth(49)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_read_past_a_command_name_with_spaces_and_parens() {
        let mut stat = String::from("42 (a) b) Z 1");
        // Fields 5 to 51, then the exit code (status 3 << 8, as waitpid gives it).
        for _ in 5..=51 {
            stat.push_str(" 0");
        }
        stat.push_str(" 768\n");
        assert_eq!(exit_code_field(&stat), Some(768));
        assert_eq!(exit_code_field("42 (short) Z 1 0"), None);
    }

    #[test]
    fn a_zombie_of_another_parent_tells_how_it_ended() {
        // A child of ours is, for the purpose, as good as another's: read before reaping.
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert_eq!(
            zombie_status(pid),
            Some(WaitStatus::Exited(Pid::from_raw(pid), 3))
        );
        let _ = child.wait();
    }
}
