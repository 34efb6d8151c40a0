//! Where a spawner's worker records the container processes it clones, so that the caller
//! can end them if the worker dies before it answers (killed by an operator or the OOM
//! killer, say).
//!
//! A message sent after the clone would leave a window: a worker killed between clone3's
//! return and its send takes the pid with it, and the process stays, a child of the caller
//! nobody knows of. Instead the caller shares a page with the worker (a memfd, mapped by
//! both), and the worker clones with CLONE_PARENT_SETTID pointing into it: the kernel
//! writes the new pid there before clone3 returns, so no signal can come in between.
//! The worker's mapping is MADV_DONTFORK, so no container process inherits it.

use crate::error::{Context, Result};
use rustix::mm::{MapFlags, ProtFlags};
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// One page of pid slots, zero until the kernel writes a pid in.
pub(crate) struct Ledger {
    slots: NonNull<AtomicI32>,
    /// Kept by the caller to hand to the worker.
    fd: Option<OwnedFd>,
    /// The worker's next free slot.
    next: AtomicUsize,
}

const SIZE: usize = 4096;
const SLOTS: usize = SIZE / std::mem::size_of::<AtomicI32>();

// SAFETY: the mapping is only read and written through atomics, from any thread.
unsafe impl Send for Ledger {}
// SAFETY: as above.
unsafe impl Sync for Ledger {}

impl Ledger {
    /// The caller's: a new zeroed page, with the descriptor to send the worker.
    pub(crate) fn new() -> Result<Ledger> {
        let fd = rustix::fs::memfd_create("runr-spawner-ledger", rustix::fs::MemfdFlags::CLOEXEC)
            .ctx(|| "memfd_create for the spawner's ledger")?;
        rustix::fs::ftruncate(&fd, SIZE as u64).ctx(|| "ftruncate the spawner's ledger")?;
        let mut ledger = Ledger::map(fd.as_fd())?;
        ledger.fd = Some(fd);
        Ok(ledger)
    }

    /// The worker's: the caller's page, kept from any process the worker clones.
    pub(crate) fn open(fd: OwnedFd) -> Result<Ledger> {
        let ledger = Ledger::map(fd.as_fd())?;
        // SAFETY: advice on the whole of our own mapping, which stays mapped.
        unsafe {
            rustix::mm::madvise(
                ledger.slots.as_ptr().cast(),
                SIZE,
                rustix::mm::Advice::LinuxDontFork,
            )
        }
        .ctx(|| "madvise(MADV_DONTFORK) the spawner's ledger")?;
        Ok(ledger)
    }

    fn map(fd: std::os::fd::BorrowedFd) -> Result<Ledger> {
        // SAFETY: a new shared mapping of a memfd at least SIZE long, at an address the
        // kernel picks; nothing else is mapped over.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                SIZE,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .ctx(|| "mmap the spawner's ledger")?;
        let slots = NonNull::new(ptr.cast()).expect("mmap does not return null on success");
        Ok(Ledger {
            slots,
            fd: None,
            next: AtomicUsize::new(0),
        })
    }

    /// The descriptor for the worker (the caller's ledger only).
    pub(crate) fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }

    fn slots(&self) -> &[AtomicI32] {
        // SAFETY: SIZE bytes are mapped read-write at `slots` for as long as `self` lives,
        // zero-filled or holding pids; AtomicI32 has the layout of i32.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr(), SLOTS) }
    }

    /// The pids the worker's clones recorded, in order. A clone that failed leaves its
    /// slot at zero (spawn retries one refused by the cgroup), so every slot is read.
    pub(crate) fn pids(&self) -> Vec<i32> {
        self.slots()
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&pid| pid != 0)
            .collect()
    }

    /// The worker's next free slot, for CLONE_PARENT_SETTID; None once all are used (the
    /// clone then goes unrecorded, which no request comes near).
    pub(crate) fn next_slot(&self) -> Option<&AtomicI32> {
        self.slots().get(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // SAFETY: our own mapping of SIZE bytes, which no reference outlives (slots()
        // borrows self).
        let _ = unsafe { rustix::mm::munmap(self.slots.as_ptr().cast(), SIZE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_one_side_records_the_other_reads() {
        let ours = Ledger::new().unwrap();
        let fd = ours.fd().unwrap().try_clone_to_owned().unwrap();
        let theirs = Ledger::open(fd).unwrap();
        assert!(ours.pids().is_empty());
        theirs.slots()[0].store(41, Ordering::Release);
        theirs.slots()[1].store(42, Ordering::Release);
        // A failed clone's slot stays zero; the pids after it still count.
        theirs.slots()[3].store(43, Ordering::Release);
        assert_eq!(ours.pids(), vec![41, 42, 43]);
    }
}
