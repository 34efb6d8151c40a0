//! The init's last steps before exec: resource limits, the user switch with capabilities
//! kept across it, the five capability sets, and no_new_privs.

use crate::error::{Context, Error, Result};
use caps::{CapSet, Capability as Cap, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, PosixRlimit, PosixRlimitType, Process};
use std::str::FromStr;

pub(crate) fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for r in rlimits {
        let (resource, name) = rlimit_resource(r.typ());
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads one valid rlimit struct.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(std::io::Error::last_os_error())
                .ctx(|| format!("setrlimit {name} soft {} hard {}", r.soft(), r.hard()));
        }
    }
    Ok(())
}

fn rlimit_resource(t: PosixRlimitType) -> (libc::__rlimit_resource_t, &'static str) {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => (libc::RLIMIT_CPU, "RLIMIT_CPU"),
        RlimitFsize => (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        RlimitData => (libc::RLIMIT_DATA, "RLIMIT_DATA"),
        RlimitStack => (libc::RLIMIT_STACK, "RLIMIT_STACK"),
        RlimitCore => (libc::RLIMIT_CORE, "RLIMIT_CORE"),
        RlimitRss => (libc::RLIMIT_RSS, "RLIMIT_RSS"),
        RlimitNproc => (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        RlimitNofile => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        RlimitMemlock => (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        RlimitAs => (libc::RLIMIT_AS, "RLIMIT_AS"),
        RlimitLocks => (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        RlimitSigpending => (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        RlimitNice => (libc::RLIMIT_NICE, "RLIMIT_NICE"),
        RlimitRtprio => (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        RlimitRttime => (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

/// Convert a config capability set to the `caps` crate's, dropping those this process
/// cannot grant, as runc does. A warning for each says why: the kernel does not know the
/// capability (beyond /proc/sys/kernel/cap_last_cap), or it does but runr's own bounding set
/// lacks it (a sandbox withheld it), so no process started from here can have it.
fn to_caps(
    set: Option<&Capabilities>,
    bounding: &CapsHashSet,
    kernel: &CapsHashSet,
    warnings: &mut Vec<String>,
) -> Result<CapsHashSet> {
    let mut out = CapsHashSet::new();
    for c in set.into_iter().flatten() {
        let name = format!("CAP_{c}");
        let cap = Cap::from_str(&name)
            .map_err(|_| Error::Config(format!("unknown capability {name}")))?;
        if bounding.contains(&cap) {
            out.insert(cap);
            continue;
        }
        let why = if kernel.contains(&cap) {
            "is not in runr's bounding set, so it cannot be granted"
        } else {
            "is not known to this kernel"
        };
        let warning = format!("capability {name} {why}; ignored");
        if !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
    Ok(out)
}

/// Switch to the process user and apply its capabilities.
///
/// Order matters: the bounding set is cut while we still have CAP_SETPCAP; KEEPCAPS keeps
/// the permitted set across setuid; then inheritable, effective, permitted and ambient are
/// set in an order where each step is allowed by the one before.
///
/// Returns warnings for the runtime to log: the container's stderr is not the place.
pub(crate) fn switch_user_and_caps(process: &Process) -> Result<Vec<String>> {
    let user = process.user();
    let known = caps::read(None, CapSet::Bounding).ctx(|| "read the bounding capability set")?;
    // PR_CAPBSET_READ tells a capability the kernel knows from one it does not, whatever
    // our bounding set holds.
    let kernel = caps::runtime::thread_all_supported();
    let wanted = process.capabilities().clone().unwrap_or_else(empty_caps);
    let mut warnings = Vec::new();
    let mut convert =
        |set: &Option<Capabilities>| to_caps(set.as_ref(), &known, &kernel, &mut warnings);
    let bounding = convert(wanted.bounding())?;
    let effective = convert(wanted.effective())?;
    let permitted = convert(wanted.permitted())?;
    let inheritable = convert(wanted.inheritable())?;
    let ambient = convert(wanted.ambient())?;

    for cap in known.difference(&bounding) {
        caps::drop(None, CapSet::Bounding, *cap)
            .ctx(|| format!("drop {cap} from the bounding set"))?;
    }
    nix::sys::prctl::set_keepcaps(true).ctx(|| "prctl(PR_SET_KEEPCAPS, 1)")?;
    let gids: Vec<nix::unistd::Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    match nix::unistd::setgroups(&gids) {
        Ok(()) => {}
        // In a user namespace whose setgroups is "deny" the host's groups are unmapped
        // anyway; only an explicit list is an error there.
        Err(nix::errno::Errno::EPERM) if gids.is_empty() => {}
        r => r.ctx(|| format!("setgroups {:?}", user.additional_gids()))?,
    }
    let gid = nix::unistd::Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid).ctx(|| format!("setresgid to {}", user.gid()))?;
    let uid = nix::unistd::Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid).ctx(|| format!("setresuid to {}", user.uid()))?;
    nix::sys::prctl::set_keepcaps(false).ctx(|| "prctl(PR_SET_KEEPCAPS, 0)")?;

    caps::set(None, CapSet::Inheritable, &inheritable)
        .ctx(|| "set the inheritable capabilities")?;
    caps::set(None, CapSet::Effective, &effective).map_err(|e| {
        Error::Config(format!("set the effective capabilities {effective:?}: {e} (effective must be a subset of permitted)"))
    })?;
    caps::set(None, CapSet::Permitted, &permitted).ctx(|| "set the permitted capabilities")?;
    // Only a capability that is both permitted and inheritable can be ambient; runc's own
    // default config lists ambient ones without inheritable, so skip those with a warning.
    caps::clear(None, CapSet::Ambient).ctx(|| "clear the ambient capabilities")?;
    for cap in &ambient {
        if permitted.contains(cap) && inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap)
                .ctx(|| format!("raise ambient capability {cap}"))?;
        } else {
            tracing::debug!(
                "ambient capability {cap} is not both permitted and inheritable; skipped"
            );
        }
    }
    Ok(warnings)
}

fn empty_caps() -> LinuxCapabilities {
    let none = Some(Capabilities::new());
    let mut c = LinuxCapabilities::default();
    c.set_bounding(none.clone())
        .set_effective(none.clone())
        .set_permitted(none.clone())
        .set_inheritable(none.clone())
        .set_ambient(none);
    c
}

pub(crate) fn set_no_new_privs() -> Result<()> {
    nix::sys::prctl::set_no_new_privs().ctx(|| "prctl(PR_SET_NO_NEW_PRIVS)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_to_kernel_is_dropped_known_is_kept() {
        let known: CapsHashSet = [Cap::CAP_CHOWN].into_iter().collect();
        let wanted: Capabilities = [
            oci_spec::runtime::Capability::Chown,
            oci_spec::runtime::Capability::Kill,
        ]
        .into_iter()
        .collect();
        let kernel: CapsHashSet = [Cap::CAP_CHOWN, Cap::CAP_KILL].into_iter().collect();
        let mut warnings = Vec::new();
        let out = to_caps(Some(&wanted), &known, &kernel, &mut warnings).unwrap();
        assert_eq!(out, known);
        assert_eq!(
            warnings,
            ["capability CAP_KILL is not in runr's bounding set, so it cannot be granted; ignored"]
        );
        let mut warnings = Vec::new();
        to_caps(Some(&wanted), &known, &known, &mut warnings).unwrap();
        assert_eq!(
            warnings,
            ["capability CAP_KILL is not known to this kernel; ignored"]
        );
    }

    #[test]
    fn every_rlimit_has_a_name() {
        assert_eq!(
            rlimit_resource(PosixRlimitType::RlimitNofile).1,
            "RLIMIT_NOFILE"
        );
    }
}
