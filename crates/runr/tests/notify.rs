//! systemd integration: the container's program notifies readiness through the socket runr
//! bind mounts in, and runr passes it on to its own NOTIFY_SOCKET with the init's host pid.

mod common;
use common::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within 10s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn readiness_is_relayed_with_the_host_pid() {
    let env = Env::new("notify");
    install_helper("sdnotify", &env.rootfs);
    env.args(&[
        "sh",
        "-c",
        "sleep 0.3; /sdnotify STATUS=starting; /sdnotify MAINPID=1; /sdnotify READY=1; sleep 1000",
    ]);
    let host_sock = env.dir.path().join("host-notify.sock");
    let host = UnixDatagram::bind(&host_sock).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let id = env.id("c");
    let mut c = env.cmd();
    c.env("NOTIFY_SOCKET", &host_sock)
        .args(["run", "-d", "--bundle"])
        .arg(&env.bundle)
        .arg(&id);
    let t0 = Instant::now();
    let r = capture(c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // run -d (like start) returns only once the program is ready.
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "returned before READY=1"
    );
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(recv(&host), "STATUS=starting\n");
    // The container's own MAINPID means nothing outside; it is not passed on.
    assert_eq!(recv(&host), format!("READY=1\nMAINPID={pid}\n"));
    assert_eq!(env.runr(&["delete", "-f", &id]).code, 0);
    env.assert_gone(&id);
}

#[test]
fn foreground_run_mounts_the_socket_and_ends_without_readiness() {
    let env = Env::new("notifyexit");
    env.args(&[
        "sh",
        "-c",
        "ls -ld /run/notify | cut -c1-10; echo $NOTIFY_SOCKET",
    ]);
    let host_sock = env.dir.path().join("host-notify.sock");
    let _host = UnixDatagram::bind(&host_sock).unwrap();
    let id = env.id("c");
    let mut c = env.cmd();
    c.env("NOTIFY_SOCKET", &host_sock)
        .args(["run", "--bundle"])
        .arg(&env.bundle)
        .arg(&id);
    let r = capture(c);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "drwxr-xr-x\n/run/notify/notify.sock\n");
    env.assert_gone(&id);
}
