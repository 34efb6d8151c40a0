//! The binary's actions as containerd runs them, without containerd: `delete` after a dead
//! shim, `-v`, and a refused action. (The Task API itself is exercised against containerd
//! by the engine suite, tests/engines/shim.sh.)

use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;
use std::process::Command;

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-runr-v2");

#[test]
fn delete_after_a_dead_shim_answers_killed() {
    let state = tempfile::tempdir().unwrap();
    // Where containerd puts a bundle: STATE/io.containerd.runtime.v2.task/NAMESPACE/ID.
    let bundle = state.path().join("io.containerd.runtime.v2.task/ns1/c1");
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    let out = Command::new(SHIM)
        .args([
            "-namespace",
            "ns1",
            "-id",
            "c1",
            "-address",
            "/none.sock",
            "delete",
        ])
        .current_dir(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response = DeleteResponse::parse_from_bytes(&out.stdout).unwrap();
    assert_eq!(response.exit_status, 128 + 9);
    assert!(response.exited_at.seconds > 0);
}

#[test]
fn version_and_unknown_actions() {
    let out = Command::new(SHIM).arg("-v").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("io.containerd.runr.v2"));
    let out = Command::new(SHIM).arg("frobnicate").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown action \"frobnicate\""));
}

#[test]
fn serving_needs_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(SHIM)
        .args(["-namespace", "ns1", "-id", "c1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no -socket given"));
}
