//! Records the commit runr is built from, for `runr --version`: $RUNR_COMMIT if set, else
//! what git says of the checkout, else "unknown" (a build outside a git checkout).
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=RUNR_COMMIT");
    println!("cargo:rerun-if-changed=../../.git/HEAD");
    println!("cargo:rerun-if-changed=../../.git/refs/heads");
    let commit = std::env::var("RUNR_COMMIT").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    println!(
        "cargo:rustc-env=RUNR_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
}
