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
    /// Parent side: a profile or label the host cannot apply is an error, worded as runc's,
    /// since the process would otherwise run less confined than its config says.
    pub(crate) fn for_process(p: &Process) -> Result<ExecLabels> {
        let apparmor = p.apparmor_profile().clone().filter(|s| !s.is_empty());
        if let Some(profile) = &apparmor {
            if !apparmor_enabled() {
                return Err(Error::Config(format!(
                    "apparmor: config provided but apparmor not supported \
                     (profile {profile:?}; AppArmor is not enabled on this host)"
                )));
            }
        }
        let selinux = p.selinux_label().clone().filter(|s| !s.is_empty());
        if let Some(label) = &selinux {
            if !selinux_enabled() {
                return Err(Error::Config(format!(
                    "selinux label {label:?} is specified in config, \
                     but selinux is disabled or not supported"
                )));
            }
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

/// The mount option that labels a new filesystem with `linux.mountLabel`, where SELinux is
/// enabled; elsewhere the label means nothing and is ignored, as runc does. Filesystems that
/// carry their own labels (proc, sysfs, cgroup) or take none (mqueue) get no option.
pub(crate) fn mount_label_option(label: Option<&str>, fstype: &str) -> Option<String> {
    let label = label.filter(|l| !l.is_empty())?;
    if matches!(fstype, "proc" | "sysfs" | "cgroup" | "cgroup2" | "mqueue") || !selinux_enabled() {
        return None;
    }
    Some(context_option(label))
}

fn context_option(label: &str) -> String {
    format!("context=\"{label}\"")
}

fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_mount_label_is_quoted_for_its_commas() {
        assert_eq!(
            super::context_option("system_u:object_r:container_file_t:s0:c1,c2"),
            "context=\"system_u:object_r:container_file_t:s0:c1,c2\""
        );
        assert_eq!(super::mount_label_option(Some("x"), "proc"), None);
        assert_eq!(super::mount_label_option(Some(""), "tmpfs"), None);
    }
}
