//! No cgroup at all: what a rootless container gets when the user was delegated none. It
//! runs unconfined by cgroups (it asked for no limits, or create would have failed), and
//! what needs a cgroup (pause, update, stats, listing its processes) says so.

use crate::{CgroupError, FreezerState, Manager, OomWatch, Stats, SubCgroups};
use oci_spec::runtime::LinuxResources;
use std::path::PathBuf;

pub struct NoCgroup;

fn missing(what: &str) -> CgroupError {
    CgroupError::Unsupported(format!(
        "cannot {what}: this container has no cgroup (runr ran unprivileged and no cgroup \
         was delegated to the user)"
    ))
}

impl Manager for NoCgroup {
    fn create(&self, _: Option<&LinuxResources>) -> Result<(), CgroupError> {
        Ok(())
    }
    fn enter(&self, _: i32) -> Result<(), CgroupError> {
        Ok(())
    }
    fn enter_exec(&self, _: i32, sub: &SubCgroups) -> Result<(), CgroupError> {
        if *sub != SubCgroups::default() {
            return Err(missing("use --cgroup"));
        }
        Ok(())
    }
    fn update(&self, _: &LinuxResources) -> Result<(), CgroupError> {
        Err(missing("update its resources"))
    }
    fn set_freezer(&self, _: FreezerState) -> Result<(), CgroupError> {
        Err(missing("freeze or thaw it"))
    }
    fn has_freezer(&self) -> bool {
        false
    }
    fn freezer(&self) -> Result<FreezerState, CgroupError> {
        Ok(FreezerState::Thawed)
    }
    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        Err(missing("list its processes"))
    }
    fn stats(&self) -> Result<Stats, CgroupError> {
        Err(missing("read its resource usage"))
    }
    fn oom_watch(&self) -> Result<OomWatch, CgroupError> {
        Err(missing("watch it for OOM kills"))
    }
    fn oom_kill_count(&self) -> u64 {
        0
    }
    fn destroy(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    fn paths(&self) -> Vec<(String, PathBuf)> {
        Vec::new()
    }
}
