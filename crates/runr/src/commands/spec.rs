use anyhow::Context;
use oci_spec::runtime::{LinuxDeviceCgroupBuilder, Spec};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to write config.json in.
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// A config for running as an unprivileged user.
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(a: Args) -> anyhow::Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        anyhow::bail!("File {} exists. Remove it first", path.display());
    }
    let mut spec = if a.rootless {
        // Maps the caller's own ids to root; no network namespace (it would have no
        // network), /sys bound from the host, no resources (no cgroup to put them in).
        Spec::rootless(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        Spec::default()
    };
    spec.set_hostname(Some("runr".into()));
    spec.set_annotations(None);
    if let Some(linux) = spec.linux_mut().as_mut().filter(|_| !a.rootless) {
        // Deny every device except those the runtime adds for the container itself.
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?;
        let mut resources = linux.resources().clone().unwrap_or_default();
        resources.set_devices(Some(vec![deny_all]));
        linux.set_resources(Some(resources));
    }
    if let Some(process) = spec.process_mut() {
        // Inheritable capabilities only matter to file capabilities; leave them empty.
        if let Some(mut caps) = process.capabilities().clone() {
            caps.set_inheritable(None);
            process.set_capabilities(Some(caps));
        }
    }
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text + "\n").with_context(|| format!("write {}", path.display()))?;
    Ok(0)
}
