//! `runr`: an OCI container runtime with runc's command line.
//!
//! Global flags and logging live here; each command is one file under `commands/`, a thin
//! layer over the `container` library; `relay` is the foreground wait of `run` and `exec`.

mod commands;
mod logging;
mod relay;

use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "runr",
    about = "runr: run OCI containers (runc-compatible command line)",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for container state [default: /run/runr; unprivileged:
    /// $XDG_RUNTIME_DIR/runr]
    #[arg(long)]
    root: Option<PathBuf>,
    /// Write logs to this file instead of stderr.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log debug messages.
    #[arg(long)]
    debug: bool,
    /// Manage cgroups with systemd (cgroupsPath as slice:prefix:name).
    #[arg(long = "systemd-cgroup")]
    systemd_cgroup: bool,
    /// Print the version.
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<commands::Command>,
}

/// What every command gets from the global flags.
pub struct Global {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}

fn main() {
    let cli = Cli::parse_from(go_style_flags(std::env::args_os()));
    if cli.version {
        print!("{}", commands::version_text());
        return;
    }
    let Some(command) = cli.command else {
        // Match runc: no command prints the help.
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        std::process::exit(1);
    };
    let log_to_file = cli.log.is_some();
    if let Err(e) = logging::init(cli.log.as_deref(), cli.log_format == "json", cli.debug) {
        eprintln!("runr: {e}");
        std::process::exit(1);
    }
    let global = Global {
        root: cli.root.unwrap_or_else(default_root),
        systemd_cgroup: cli.systemd_cgroup,
    };
    let prefix = command.error_prefix();
    let error_code = command.error_exit_code();
    match commands::run(&global, command) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let msg = format!("{prefix}{}", error_text(&e));
            tracing::error!("{msg}");
            // With --log the engine reads the file; a person at a terminal still sees why.
            if log_to_file {
                eprintln!("{msg}");
            }
            std::process::exit(error_code);
        }
    }
}

/// Where state lives when --root is not given: /run/runr for root; for an unprivileged
/// user (rootless), the user's runtime directory, as runc does.
fn default_root() -> PathBuf {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        return PathBuf::from("/run/runr");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("runr"),
        None => PathBuf::from(format!("/tmp/runr-{euid}")),
    }
}

/// The error and its causes, each cause once: our error types already include their source
/// in their own text, and anyhow's `{:#}` would repeat it.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// runc's flag parser takes long flags with one dash too, and engines use that: containerd's
/// runc shim restores with `-no-subreaper`. Those runr knows are rewritten with two, in the
/// flags of `restore` only (never in what `exec` or `run` pass on to a container's program).
fn go_style_flags(
    args: impl Iterator<Item = std::ffi::OsString>,
) -> impl Iterator<Item = std::ffi::OsString> {
    const ONE_DASH: &[&str] = &["-no-subreaper"];
    // The global flags that take a value (the subcommand is the first other word).
    const VALUED: &[&str] = &["--root", "--log", "--log-format"];
    let mut previous = String::new();
    let mut command: Option<String> = None;
    args.enumerate().map(move |(i, a)| {
        let s = a.to_str().unwrap_or_default().to_string();
        let out = match command.as_deref() {
            Some("restore") if ONE_DASH.contains(&s.as_str()) => format!("-{s}").into(),
            _ => a,
        };
        if i > 0 && command.is_none() && !s.starts_with('-') && !VALUED.contains(&previous.as_str())
        {
            command = Some(s.clone());
        }
        previous = s;
        out
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_style_flags_get_two_dashes() {
        let args = [
            "runr",
            "restore",
            "-no-subreaper",
            "-d",
            "--bundle",
            "-no-subreaper",
        ];
        let out: Vec<String> = super::go_style_flags(args.iter().map(|a| a.into()))
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            out,
            [
                "runr",
                "restore",
                "--no-subreaper",
                "-d",
                "--bundle",
                "--no-subreaper"
            ]
        );
        // What exec passes on to the container's program stays as it is.
        let args = ["runr", "--root", "/r", "exec", "c", "prog", "-no-subreaper"];
        let out: Vec<String> = super::go_style_flags(args.iter().map(|a| a.into()))
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(out, args);
    }
}
