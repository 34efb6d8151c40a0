//! Orphans: the shim is a child subreaper, so a process of a container that shares the
//! host's pid namespace, and whose parent died, becomes the shim's child. Nobody waits for
//! it: this does. It must not reap what the supervisor or the spawner waits for (their
//! exit statuses would be lost): those it knows by pid, and they are reaped as soon as they
//! end, so a zombie child still there on a second look, two seconds later, that is not one
//! of them is an orphan.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// How long a zombie must stay before it is taken for an orphan.
const GRACE: Duration = Duration::from_secs(2);

/// Reap orphaned children as they end, until the runtime stops. `known` lists the pids
/// others wait for.
pub async fn reap_orphans(known: Arc<dyn Fn() -> Vec<i32> + Send + Sync>) {
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("handle SIGCHLD: {e}; orphans will not be reaped");
            return;
        }
    };
    let mut seen: HashMap<i32, Instant> = HashMap::new();
    loop {
        if seen.is_empty() {
            sigchld.recv().await;
        } else {
            tokio::select! {
                _ = sigchld.recv() => {}
                _ = tokio::time::sleep(GRACE) => {}
            }
        }
        let zombies = zombie_children();
        let known = known();
        seen.retain(|pid, _| zombies.contains(pid));
        for pid in zombies.into_iter().filter(|p| !known.contains(p)) {
            let first = *seen.entry(pid).or_insert_with(Instant::now);
            if first.elapsed() >= GRACE {
                reap(pid);
                seen.remove(&pid);
            }
        }
    }
}

fn reap(pid: i32) {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(status) => tracing::debug!("reaped orphan {pid}: {status:?}"),
        Err(e) => tracing::debug!("reap orphan {pid}: {e}"),
    }
}

/// This process's children that are zombies.
fn zombie_children() -> Vec<i32> {
    children().into_iter().filter(|p| is_zombie(*p)).collect()
}

/// This process's children: from each thread's `children` list, or, where the kernel has
/// none, from every process's parent pid.
fn children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let mut listed = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                listed = true;
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    if listed {
        return out;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if stat_fields(pid).is_some_and(|(_, ppid)| ppid == me) {
            out.push(pid);
        }
    }
    out
}

fn is_zombie(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|(state, _)| state == 'Z')
}

/// The state and parent pid in /proc/PID/stat (after the command name, which may hold
/// spaces and parentheses).
fn stat_fields(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_the_command_name() {
        assert_eq!(parse_stat("12 (a b) c) Z 7 12 12 0"), Some(('Z', 7)));
        assert_eq!(parse_stat("1 (init) S 0 1 1"), Some(('S', 0)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    // Reaped by `reap`, the function under test.
    #[allow(clippy::zombie_processes)]
    fn a_dead_child_is_seen_as_a_zombie() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let until = Instant::now() + Duration::from_secs(5);
        while !zombie_children().contains(&pid) {
            assert!(Instant::now() < until, "no zombie {pid}");
            std::thread::sleep(Duration::from_millis(10));
        }
        reap(pid);
        assert!(!children().contains(&pid));
    }
}
