//! The agent as PID 1, as in a guest: run as the first process of a new PID and mount
//! namespace (`unshare --pid --fork --mount-proc --uts`). PID 1 stays behind as the init and the
//! agent runs as its child: an orphan that a container leaves in the agent's PID namespace
//! is reaped by PID 1 while the supervisor still gets its own processes' statuses; SIGTERM
//! to PID 1 reaches the agent, which removes its containers; PID 1 then powers off (in a
//! PID namespace the kernel ends it with SIGINT). CreateSandbox sets the guest's hostname
//! (that of a UTS namespace of the test's own).

mod common;

use common::{children_of, comm, Agent};
use std::time::{Duration, Instant};

fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Until `f` holds, for at most 10 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_pid1_orphans_are_reaped_and_sigterm_stops_all() {
    let has_unshare = std::process::Command::new("unshare")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_unshare {
        eprintln!("skipped: no unshare(1) here (util-linux)");
        return;
    }
    // --kill-child: should the test fail, its cleanup's SIGTERM to unshare ends the
    // namespace too, instead of leaving the agent running there.
    let prefix = [
        "unshare",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--uts",
    ];
    let a = Agent::start_with(&prefix, "info").await;
    // unshare → PID 1 (this binary) → the agent.
    let init = children_of(a.pid());
    assert_eq!(init.len(), 1, "unshare's child: {init:?}");
    let init = init[0];
    let agent = children_of(init);
    assert_eq!(agent.len(), 1, "PID 1's child, the agent: {agent:?}");
    let agent = agent[0];
    assert_eq!(comm(agent), "runr-agent");

    // Without a PID namespace of its own, the container's orphan is the agent's
    // namespace's: PID 1's.
    let id = "orphans";
    let spec = a.spec(&["sh", "-c", "sleep 1000 & echo started"], |s| {
        s.Linux
            .as_mut()
            .unwrap()
            .Namespaces
            .retain(|n| n.Type != "pid")
    });
    a.create(id, spec).await.unwrap();
    a.start_container(id).await;
    assert_eq!(a.read_until(id, "", "started").await, "started\n");
    assert_eq!(
        a.wait(id, "").await.unwrap(),
        0,
        "the supervisor reaped its init"
    );
    let orphan = || children_of(init).into_iter().find(|p| comm(*p) == "sleep");
    eventually("the sleep is reparented to PID 1", || orphan().is_some());
    let sleep = orphan().unwrap();
    // Removing the container kills what is left in its cgroup: PID 1 reaps the sleep.
    a.remove(id).await.unwrap();
    eventually("PID 1 reaps the killed orphan", || {
        state(sleep).is_none() && children_of(init) == [agent]
    });
    assert!(
        children_of(agent).iter().all(|p| state(*p) != Some('Z')),
        "no zombie under the agent"
    );

    // In a guest, CreateSandbox sets the hostname (here, of the test's UTS namespace), as a
    // container without a UTS namespace of its own shows, and the DNS servers (on the mount
    // namespace's /etc/resolv.conf), as one that mounts it shows.
    let sandbox = agent::protocols::agent::CreateSandboxRequest {
        sandbox_id: "pod".into(),
        hostname: "pod-hostname".into(),
        dns: common::strings(&["nameserver 192.0.2.53", "search pod.example"]),
        ..Default::default()
    };
    a.agent()
        .create_sandbox(common::ctx(), &sandbox)
        .await
        .unwrap();
    let spec = a.spec(&["sh", "-c", "hostname; cat /etc/resolv.conf"], |s| {
        s.Linux
            .as_mut()
            .unwrap()
            .Namespaces
            .retain(|n| n.Type != "uts");
        s.Hostname.clear();
        // As Kata's shim mounts the guest's resolv.conf into a container.
        s.Mounts.push(agent::protocols::oci::Mount {
            destination: "/etc/resolv.conf".into(),
            type_: "bind".into(),
            source: "/etc/resolv.conf".into(),
            options: common::strings(&["rbind", "ro"]),
            ..Default::default()
        });
    });
    a.create("hostname", spec).await.unwrap();
    a.start_container("hostname").await;
    assert_eq!(
        a.read_all("hostname", "", false).await,
        "pod-hostname\nnameserver 192.0.2.53\nsearch pod.example\n"
    );
    a.remove("hostname").await.unwrap();

    // SIGTERM to PID 1 is forwarded to the agent, which stops; then PID 1 ends.
    // SAFETY: kill(2) on PID 1 of the namespace this test created; it has not been reaped
    // (unshare, this test's child, waits for it).
    assert_eq!(unsafe { libc::kill(init, libc::SIGTERM) }, 0);
    let (status, log) = a.wait_for_exit();
    assert!(log.contains("\"stopping\""), "{log}");
    assert!(log.contains("the agent has ended"), "{log}");
    assert!(log.contains("\"status\":0"), "{log}");
    // PID 1's power-off ends a PID namespace with SIGINT; unshare passes that on.
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.code() == Some(0) || status.signal() == Some(libc::SIGINT),
        "{status:?}"
    );
}
