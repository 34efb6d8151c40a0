//! Process attributes the kernel keeps per task: scheduler, I/O priority, personality,
//! memory policy, OOM score and CPU affinity.
//!
//! [`Attrs::from_config`] turns the config into syscall arguments in the parent, so a bad
//! value is refused before anything exists; [`Attrs::apply`] makes the calls in the
//! container process, while it still has the capabilities some of them need
//! (CAP_SYS_NICE for a real-time scheduler, CAP_SYS_ADMIN for the real-time I/O class).

use crate::error::{Context, Error, Result};
use oci_spec::runtime::{
    IOPriorityClass, Linux, LinuxMemoryPolicy, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Process,
    Scheduler,
};

fn bad(msg: String) -> Error {
    Error::Config(msg)
}

/// The attributes of one container process, ready for their system calls.
#[derive(Debug, Clone, Default)]
pub(crate) struct Attrs {
    sched: Option<libc::sched_attr>,
    ioprio: Option<libc::c_int>,
    personality: Option<libc::c_ulong>,
    /// Mode (with flags) and node mask.
    mempolicy: Option<(libc::c_int, Vec<libc::c_ulong>)>,
    oom_score_adj: Option<i32>,
    /// exec only: the CPUs the process runs on once it is in the container's cgroup.
    cpus_final: Option<nix::sched::CpuSet>,
}

impl Attrs {
    /// Check and convert what `process` and `linux` ask for.
    pub(crate) fn from_config(process: &Process, linux: Option<&Linux>) -> Result<Attrs> {
        Ok(Attrs {
            sched: process.scheduler().as_ref().map(sched_attr).transpose()?,
            ioprio: process
                .io_priority()
                .as_ref()
                .map(|p| ioprio(p.class(), p.priority()))
                .transpose()?,
            personality: linux
                .and_then(|l| l.personality().as_ref())
                .map(personality)
                .transpose()?,
            mempolicy: linux
                .and_then(|l| l.memory_policy().as_ref())
                .map(mempolicy)
                .transpose()?,
            oom_score_adj: process.oom_score_adj().map(oom_score_adj).transpose()?,
            cpus_final: None,
        })
    }

    /// What the container process inherits: set in the parent just before the clone. The
    /// process itself could not write it once in a new user namespace: being non-dumpable,
    /// its /proc files belong to a root that namespace does not map.
    pub(crate) fn apply_inherited(&self) -> Result<()> {
        if let Some(adj) = self.oom_score_adj {
            std::fs::write("/proc/self/oom_score_adj", adj.to_string()).ctx(|| {
                format!(
                    "process.oomScoreAdj {adj}: write /proc/self/oom_score_adj (going below \
                     the current value needs CAP_SYS_RESOURCE)"
                )
            })?;
        }
        Ok(())
    }

    /// Make the other calls, in the process they are for.
    pub(crate) fn apply(&self) -> Result<()> {
        if let Some(p) = self.personality {
            // SAFETY: personality only changes how the kernel treats this process.
            if unsafe { libc::personality(p) } < 0 {
                return Err(std::io::Error::last_os_error())
                    .ctx(|| format!("personality({p:#x}) for linux.personality"));
            }
        }
        if let Some(prio) = self.ioprio {
            const IOPRIO_WHO_PROCESS: libc::c_int = 1;
            // SAFETY: plain integer arguments; 0 means the calling process.
            if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) } < 0 {
                return Err(std::io::Error::last_os_error())
                    .ctx(|| "ioprio_set for process.ioPriority");
            }
        }
        if let Some((mode, nodes)) = &self.mempolicy {
            let (mask, max) = if nodes.is_empty() {
                (std::ptr::null(), 0)
            } else {
                (
                    nodes.as_ptr(),
                    nodes.len() * libc::c_ulong::BITS as usize + 1,
                )
            };
            // SAFETY: mask points at `nodes`, which holds `max - 1` bits and outlives the call.
            if unsafe { libc::syscall(libc::SYS_set_mempolicy, *mode, mask, max) } < 0 {
                return Err(std::io::Error::last_os_error())
                    .ctx(|| "set_mempolicy for linux.memoryPolicy");
            }
        }
        if let Some(attr) = &self.sched {
            // SAFETY: attr is a complete sched_attr whose size field says how big it is.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_sched_setattr,
                    0,
                    attr as *const libc::sched_attr,
                    0,
                )
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error())
                    .ctx(|| "sched_setattr for process.scheduler");
            }
        }
        if let Some(cpus) = &self.cpus_final {
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), cpus)
                .ctx(|| "sched_setaffinity for process.execCPUAffinity.final")?;
        }
        Ok(())
    }
}

/// `execCPUAffinity` of an exec'd process: the CPUs for the parent to give the child before
/// it joins the container's cgroup (`initial`), and those the child takes after (`final`).
pub(crate) fn exec_affinity(
    process: &Process,
    attrs: &mut Attrs,
) -> Result<Option<nix::sched::CpuSet>> {
    let Some(a) = process.exec_cpu_affinity() else {
        return Ok(None);
    };
    attrs.cpus_final = a
        .cpu_affinity_final()
        .as_deref()
        .map(|l| cpu_set(l, "final"))
        .transpose()?;
    a.initial()
        .as_deref()
        .map(|l| cpu_set(l, "initial"))
        .transpose()
}

fn cpu_set(list: &str, which: &str) -> Result<nix::sched::CpuSet> {
    let mut set = nix::sched::CpuSet::new();
    for n in parse_list(list)
        .map_err(|e| bad(format!("process.execCPUAffinity.{which} {list:?}: {e}")))?
    {
        set.set(n).map_err(|_| {
            bad(format!(
                "process.execCPUAffinity.{which}: CPU {n} is beyond what this system can name"
            ))
        })?;
    }
    Ok(set)
}

/// A list like `0-3,7`, as numbers.
fn parse_list(list: &str) -> std::result::Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let num = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?} is not a number"))
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi || hi >= 65536 {
            return Err(format!("{part:?} is not a valid range"));
        }
        out.extend(lo..=hi);
    }
    if out.is_empty() {
        return Err("the list is empty".into());
    }
    Ok(out)
}

fn sched_attr(s: &Scheduler) -> Result<libc::sched_attr> {
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => libc::SCHED_OTHER,
        LinuxSchedulerPolicy::SchedFifo => libc::SCHED_FIFO,
        LinuxSchedulerPolicy::SchedRr => libc::SCHED_RR,
        LinuxSchedulerPolicy::SchedBatch => libc::SCHED_BATCH,
        LinuxSchedulerPolicy::SchedIso => {
            return Err(bad(
                "process.scheduler: SCHED_ISO is not implemented by Linux".into(),
            ))
        }
        LinuxSchedulerPolicy::SchedIdle => libc::SCHED_IDLE,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(bad(format!(
            "process.scheduler.nice {nice} is out of range (-20 to 19)"
        )));
    }
    let priority = s.priority().unwrap_or(0);
    let realtime = policy == libc::SCHED_FIFO || policy == libc::SCHED_RR;
    if realtime && !(1..=99).contains(&priority) {
        return Err(bad(format!(
            "process.scheduler.priority {priority} is out of range for a real-time policy (1 to 99)"
        )));
    }
    if !realtime && priority != 0 {
        return Err(bad(format!(
            "process.scheduler.priority must be 0 for {:?}",
            s.policy()
        )));
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if policy == 6 {
        let period = if period == 0 { deadline } else { period };
        if runtime == 0 || runtime > deadline || deadline > period {
            return Err(bad(format!(
                "process.scheduler: SCHED_DEADLINE needs 0 < runtime ({runtime}) <= deadline ({deadline}) <= period ({period})"
            )));
        }
    }
    let flags = s
        .flags()
        .iter()
        .flatten()
        .map(|f| match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        })
        .fold(0u64, |a, b| a | b);
    Ok(libc::sched_attr {
        size: std::mem::size_of::<libc::sched_attr>() as u32,
        sched_policy: policy as u32,
        sched_flags: flags,
        sched_nice: nice,
        sched_priority: priority as u32,
        sched_runtime: runtime,
        sched_deadline: deadline,
        sched_period: period,
    })
}

fn ioprio(class: IOPriorityClass, priority: i64) -> Result<libc::c_int> {
    if !(0..=7).contains(&priority) {
        return Err(bad(format!(
            "process.ioPriority.priority {priority} is out of range (0 to 7)"
        )));
    }
    let class = match class {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    Ok((class << 13) | priority as libc::c_int)
}

fn personality(p: &LinuxPersonality) -> Result<libc::c_ulong> {
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(bad(
            "linux.personality.flags: no flags are defined by the runtime spec".into(),
        ));
    }
    Ok(match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    })
}

fn mempolicy(m: &LinuxMemoryPolicy) -> Result<(libc::c_int, Vec<libc::c_ulong>)> {
    let mode = match m.mode() {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    let flags = m
        .flags()
        .iter()
        .flatten()
        .map(|f| match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        })
        .fold(0, |a, b| a | b);
    let nodes = m.nodes().as_deref().filter(|n| !n.is_empty());
    let needs_nodes = !matches!(
        m.mode(),
        MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal
    );
    let mut mask: Vec<libc::c_ulong> = Vec::new();
    match (nodes, needs_nodes) {
        (Some(list), true) => {
            let bits = libc::c_ulong::BITS as usize;
            for n in parse_list(list)
                .map_err(|e| bad(format!("linux.memoryPolicy.nodes {list:?}: {e}")))?
            {
                if mask.len() <= n / bits {
                    mask.resize(n / bits + 1, 0);
                }
                mask[n / bits] |= 1 << (n % bits);
            }
        }
        (None, true) => {
            return Err(bad(format!(
                "linux.memoryPolicy: mode {:?} needs nodes",
                m.mode()
            )))
        }
        (Some(_), false) => {
            return Err(bad(format!(
                "linux.memoryPolicy: mode {:?} takes no nodes",
                m.mode()
            )))
        }
        (None, false) => {}
    }
    Ok((mode | flags, mask))
}

fn oom_score_adj(value: i32) -> Result<i32> {
    if !(-1000..=1000).contains(&value) {
        return Err(bad(format!(
            "process.oomScoreAdj {value} is out of range (-1000 to 1000)"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: &str) -> Process {
        let mut p: serde_json::Value = serde_json::from_str(json).unwrap();
        p["cwd"] = "/".into();
        p["user"] = serde_json::json!({"uid": 0, "gid": 0});
        serde_json::from_value(p).unwrap()
    }

    #[test]
    fn scheduler_values_are_checked() {
        let ok = process(
            r#"{"scheduler":{"policy":"SCHED_FIFO","priority":10,"flags":["SCHED_RESET_ON_FORK"]}}"#,
        );
        let a = Attrs::from_config(&ok, None).unwrap().sched.unwrap();
        assert_eq!(
            (a.sched_policy, a.sched_priority, a.sched_flags),
            (1, 10, 1)
        );
        for bad in [
            r#"{"scheduler":{"policy":"SCHED_FIFO","priority":0}}"#,
            r#"{"scheduler":{"policy":"SCHED_OTHER","priority":5}}"#,
            r#"{"scheduler":{"policy":"SCHED_OTHER","nice":20}}"#,
            r#"{"scheduler":{"policy":"SCHED_DEADLINE","runtime":10,"deadline":5,"period":20}}"#,
        ] {
            assert!(Attrs::from_config(&process(bad), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn io_priority_and_oom_score() {
        let p = process(
            r#"{"ioPriority":{"class":"IOPRIO_CLASS_IDLE","priority":7},"oomScoreAdj":500}"#,
        );
        let a = Attrs::from_config(&p, None).unwrap();
        assert_eq!(a.ioprio, Some((3 << 13) | 7));
        assert_eq!(a.oom_score_adj, Some(500));
        assert!(Attrs::from_config(
            &process(r#"{"ioPriority":{"class":"IOPRIO_CLASS_BE","priority":8}}"#),
            None
        )
        .is_err());
        assert!(Attrs::from_config(&process(r#"{"oomScoreAdj":1001}"#), None).is_err());
    }

    #[test]
    fn memory_policy_nodes() {
        let m: LinuxMemoryPolicy = serde_json::from_str(
            r#"{"mode":"MPOL_BIND","nodes":"0,2-3,64","flags":["MPOL_F_STATIC_NODES"]}"#,
        )
        .unwrap();
        let (mode, mask) = mempolicy(&m).unwrap();
        assert_eq!(mode, 2 | (1 << 15));
        assert_eq!(mask, vec![0b1101, 1]);
        let no_nodes: LinuxMemoryPolicy = serde_json::from_str(r#"{"mode":"MPOL_BIND"}"#).unwrap();
        assert!(mempolicy(&no_nodes).is_err());
        let local: LinuxMemoryPolicy =
            serde_json::from_str(r#"{"mode":"MPOL_LOCAL","nodes":"0"}"#).unwrap();
        assert!(mempolicy(&local).is_err());
    }

    #[test]
    fn lists() {
        assert_eq!(parse_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_list("3-1").is_err());
        assert!(parse_list("").is_err());
        assert!(parse_list("x").is_err());
    }
}
