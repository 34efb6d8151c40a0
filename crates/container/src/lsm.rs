//! Linux security modules: the AppArmor profile and SELinux label a container process execs
//! into. Decided in the parent, where the host is visible (is the module enabled?), and
//! applied by the child just before its exec through /proc/thread-self/attr.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::Process;

/// What the child must write before it execs.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecLabels {
    apparmor: Option<String>,
    selinux: Option<String>,
}

impl ExecLabels {
    /// Parent side: a requested AppArmor profile on a host without AppArmor is an error (the
    /// process would run unconfined); an SELinux label where SELinux is off is ignored, as
    /// runc does, since there is nothing to label.
    pub(crate) fn for_process(p: &Process) -> Result<ExecLabels> {
        let apparmor = p.apparmor_profile().clone().filter(|s| !s.is_empty());
        if let Some(profile) = &apparmor {
            if !apparmor_enabled() {
                return Err(Error::Config(format!(
                    "apparmor profile {profile:?} requested, but AppArmor is not enabled on this host"
                )));
            }
        }
        let mut selinux = p.selinux_label().clone().filter(|s| !s.is_empty());
        if let Some(label) = selinux.take_if(|_| !selinux_enabled()) {
            tracing::debug!("SELinux is not enabled on this host; label {label:?} ignored");
        }
        Ok(ExecLabels { apparmor, selinux })
    }

    /// Child side, before no_new_privs and the exec: ask for the transitions at exec.
    pub(crate) fn apply(&self) -> Result<()> {
        if let Some(profile) = &self.apparmor {
            write_attr("apparmor/exec", &format!("exec {profile}"))
                .or_else(|_| write_attr("exec", &format!("exec {profile}")))
                .ctx(|| format!("apply apparmor profile {profile:?}"))?;
        }
        if let Some(label) = &self.selinux {
            write_attr("exec", label).ctx(|| format!("set SELinux exec label {label:?}"))?;
        }
        Ok(())
    }
}

fn write_attr(name: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(format!("/proc/thread-self/attr/{name}"), value)
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'))
}

fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}
