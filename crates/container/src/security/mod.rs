//! What confines a container's processes, one concern per file: capabilities, the user
//! switch, rlimits and no_new_privs (`caps`); seccomp filters and their notify agents
//! (`seccomp`); AppArmor and SELinux labels (`lsm`); personality, scheduling, I/O priority
//! and CPU affinity (`attrs`); and runr's own binary kept out of a container's reach
//! (`exe_guard`, CVE-2019-5736).

pub(crate) mod attrs;
pub(crate) mod caps;
pub(crate) mod exe_guard;
pub(crate) mod lsm;
pub(crate) mod seccomp;
