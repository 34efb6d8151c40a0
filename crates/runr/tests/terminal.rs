//! Terminals: a foreground `run` relaying a pty to our own terminal (driven here through a
//! pty the test opens), and a detached create sending the pty master over a console socket.

mod common;
use common::*;
use serde_json::json;
use std::io::Write;
use std::os::fd::AsRawFd;

#[test]
fn foreground_run_relays_a_new_pty() {
    let env = Env::new("ttyfg");
    env.edit(|c| {
        c["process"]["terminal"] = true.into();
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "tty; stty size; ls -l /dev/console | cut -c1; read x; echo got $x; exit 5"
        ]);
    });
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: 40,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .unwrap();
    let id = env.id("c");
    let mut cmd = env.run_cmd(&id);
    let slave = pty.slave.as_raw_fd();
    cmd.stdin(std::fs::File::from(pty.slave.try_clone().unwrap()))
        .stdout(std::fs::File::from(pty.slave.try_clone().unwrap()))
        .stderr(std::fs::File::from(pty.slave.try_clone().unwrap()));
    let _ = slave;
    let mut child = cmd.spawn().unwrap();
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let out = read_until(&mut master, "c\r\n");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("40 100"), "window size not passed on: {out}");
    master.write_all(b"hello\r").unwrap();
    let out = read_until(&mut master, "got hello");
    assert!(out.contains("got hello"), "{out}");
    assert_eq!(wait_exit(&mut child), 5);
}

#[test]
fn detached_create_sends_the_master_over_the_console_socket() {
    let env = Env::new("ttysock");
    env.edit(|c| {
        c["process"]["terminal"] = true.into();
        c["process"]["consoleSize"] = json!({"height": 30, "width": 90});
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "tty; stty size; stat -c %u /dev/pts/0; echo done; sleep 1000"
        ]);
    });
    let sock_path = env.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let id = env.id("c");
    let create = {
        let mut c = env.cmd();
        c.args(["create", "--console-socket"])
            .arg(&sock_path)
            .arg("--bundle")
            .arg(&env.bundle)
            .arg(&id);
        std::thread::spawn(move || capture(c))
    };
    let mut master = recv_console(&listener);
    let r = create.join().unwrap();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.runr(&["start", &id]).code, 0);
    let out = read_until(&mut master, "done");
    assert!(
        out.contains("/dev/pts/0") && out.contains("30 90") && out.contains("1000\r\n"),
        "{out}"
    );
    assert_eq!(env.runr(&["delete", "--force", &id]).code, 0);
}

#[test]
fn console_socket_that_does_not_exist_fails_cleanly() {
    let env = Env::new("ttynosock");
    env.edit(|c| c["process"]["terminal"] = true.into());
    let id = env.id("c");
    let r = env.runr(&[
        "create",
        "--console-socket",
        "/nonexistent/sock",
        "--bundle",
        env.bundle.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("console socket /nonexistent/sock"),
        "{}",
        r.stderr
    );
    env.assert_gone(&id);
}

#[test]
fn foreground_terminal_without_a_terminal_is_refused() {
    let env = Env::new("ttynotty");
    env.edit(|c| c["process"]["terminal"] = true.into());
    let id = env.id("c");
    // Our stdin is /dev/null: there is nothing to relay the pty to.
    let r = env.runr(&["run", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("stdin is not a terminal"), "{}", r.stderr);
    env.assert_gone(&id);
    // A console socket makes sense only when detached.
    let r = env.runr(&[
        "run",
        "--console-socket",
        "/tmp/s",
        "--bundle",
        env.bundle.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("console socket"), "{}", r.stderr);
    env.assert_gone(&id);
}
