//! Starting the kernel's wait for a cgroup migration early (see [`AttachWarmup`]).

use std::path::Path;

/// The first write to a `cgroup.procs` after a quiet moment waits for an RCU grace period
/// (the kernel switches its lock on every process's cgroup membership to writer mode):
/// 7-25 ms on an idle host, more than the rest of a `run`. A write of a pid that cannot exist
/// takes that lock, and so makes the wait, before the kernel looks the pid up and refuses it
/// (ESRCH), with nothing moved; the next writes within a grace period find the lock ready.
/// So a command that will soon put a process in a cgroup starts this first, in a thread of
/// its own, and does its other work meanwhile. Nothing depends on it succeeding.
pub struct AttachWarmup(Option<std::thread::JoinHandle<()>>);

impl AttachWarmup {
    /// Start the wait with a write to `dir`'s cgroup.procs (any cgroup directory: nothing
    /// is written to it). Only root can write there; for others this does nothing.
    pub fn start(dir: &Path) -> AttachWarmup {
        if !nix::unistd::geteuid().is_root() {
            return AttachWarmup(None);
        }
        let procs = dir.join("cgroup.procs");
        let thread = std::thread::Builder::new()
            .name("cgroup-warmup".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                // Above PID_MAX_LIMIT (2^22): no process has this pid.
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&procs)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, b"2147483647"));
            });
        AttachWarmup(thread.ok())
    }

    /// Wait for the thread to end: before a clone, which needs a single-threaded process.
    pub fn finish(mut self) {
        self.join();
    }

    fn join(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AttachWarmup {
    fn drop(&mut self) {
        self.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warmup_moves_nothing() {
        let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let layout = crate::Layout::detect().unwrap();
        let started = std::time::Instant::now();
        AttachWarmup::start(layout.any_mountpoint()).finish();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(std::fs::read_to_string("/proc/self/cgroup").unwrap(), before);
    }
}
