//! Attacks from inside a container on the known ways out of one, each of which must fail:
//! CVE-2019-5736 (rewrite the runtime's binary), CVE-2024-21626 (a leaked descriptor as the
//! working directory), masked and read-only paths that exec'd processes must see too, and
//! the session keyring. Mount targets through symlinks (CVE-2019-16884 class) are in
//! rootfs.rs.
mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// The container's processes scan /proc for any process whose executable is not their own
/// busybox and try to open it, while runr execs into the container, over and over.
const ATTACKER: &str = r#"
while [ ! -e /tmp/stop ]; do
  for d in /proc/[0-9]*; do
    l=$(readlink $d/exe 2>/dev/null)
    case "$l" in */busybox|"") ;; *) echo "SAW $d $l" >> /tmp/found;; esac
    cmp -s $d/exe /bin/busybox 2>/dev/null; [ $? = 1 ] && echo "READ $d" >> /tmp/found
    echo -n X 2>/dev/null >> $d/exe && echo "WROTE $d" >> /tmp/found
  done
done
touch /tmp/done
"#;

/// CVE-2019-5736: a container must never get a writable handle on the runr binary.
/// runr runs here as a copy, so a failed defence cannot damage the build.
#[test]
fn the_runr_binary_is_out_of_the_containers_reach() {
    let mut env = Env::new("cve5736");
    let copy = env.dir.path().join("runr");
    std::fs::copy(RUNR, &copy).unwrap();
    env.binary = copy.clone();
    let original = std::fs::read(&copy).unwrap();
    // The classic entry points: the program, or its #! interpreter, is /proc/self/exe,
    // which during the exec is runr itself.
    std::os::unix::fs::symlink("/proc/self/exe", env.rootfs.join("bin/evil")).unwrap();
    write_script(&env, "bin/evil2", "#!/proc/self/exe\n");
    write_script(&env, "bin/evil3", "#!/bin/evil2\n");
    write_script(&env, "bin/evil4", "#!/proc/self/fd/0\n");
    // Default capabilities plus the file ones engines grant; never CAP_SYS_PTRACE.
    env.edit(|c| {
        // The attacker keeps its findings in /tmp, for the test to read from the host.
        c["root"]["readonly"] = json!(false);
        for set in ["bounding", "effective", "permitted"] {
            let caps = c["process"]["capabilities"][set].as_array_mut().unwrap();
            caps.extend(["CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_CHOWN"].map(|c| json!(c)));
        }
    });
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);

    // Created, not started: the container's pid 1 is still runr, waiting for `start`.
    let r = env.runr(&[
        "exec",
        &id,
        "sh",
        "-c",
        "readlink /proc/1/exe; echo link=$?; cat /proc/1/exe >/dev/null; echo read=$?; \
         echo -n X >> /proc/1/exe; echo write=$?; readlink /proc/1/fd/0; echo fds=$?; \
         cat /proc/1/environ >/dev/null; echo environ=$?",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for step in ["link", "read", "write", "fds", "environ"] {
        assert!(
            r.stdout.contains(&format!("{step}=1")),
            "{step} of the waiting init succeeded:\n{}{}",
            r.stdout,
            r.stderr
        );
    }

    for evil in ["/bin/evil", "/bin/evil2", "/bin/evil3", "/bin/evil4"] {
        let r = env.runr(&["exec", &id, evil]);
        assert_ne!(r.code, 0, "{evil} ran");
        assert!(r.stderr.contains("magic links"), "{evil}: {}", r.stderr);
    }
    assert_eq!(env.runr(&["start", &id]).code, 0);
    let r = env.runr(&["exec", "-d", &id, "sh", "-c", ATTACKER]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for _ in 0..30 {
        assert_eq!(env.runr(&["exec", &id, "true"]).code, 0);
    }
    // As the init of a new container, too.
    env.args(&["/bin/evil2"]);
    let r = env.runr(&[
        "run",
        "--bundle",
        env.bundle.to_str().unwrap(),
        &env.id("i"),
    ]);
    assert!(r.stderr.contains("magic links"), "{}", r.stderr);

    std::fs::write(env.rootfs.join("tmp/stop"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !env.rootfs.join("tmp/done").exists() {
        assert!(Instant::now() < deadline, "the attacker did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let found = std::fs::read_to_string(env.rootfs.join("tmp/found")).unwrap_or_default();
    assert_eq!(found, "", "the container reached runr's executable");
    assert!(
        std::fs::read(&copy).unwrap() == original,
        "the runr binary changed"
    );
}

/// CVE-2019-5736 where non-dumpable is no defence: a container with CAP_SYS_PTRACE in our
/// user namespace (every --privileged one) may open /proc/PID/exe and map_files of runr's
/// processes in it, and reopen them for writing once no runr runs. A watcher in the
/// container (tests/helpers/exewatch.c) does exactly that while runr creates, execs and
/// runs; it first proves it catches a plainly exposed binary.
#[test]
fn a_container_that_can_ptrace_cannot_reopen_the_runr_binary() {
    let mut env = Env::new("cve5736p");
    let copy = env.dir.path().join("runr");
    std::fs::copy(RUNR, &copy).unwrap();
    env.binary = copy.clone();
    let original = std::fs::read(&copy).unwrap();
    install_helper("exewatch", &env.rootfs);
    env.edit(|c| {
        c["root"]["readonly"] = json!(false);
        for set in ["bounding", "effective", "permitted"] {
            let caps = c["process"]["capabilities"][set].as_array_mut().unwrap();
            caps.extend(
                [
                    "CAP_SYS_PTRACE",
                    "CAP_SYS_ADMIN",
                    "CAP_DAC_OVERRIDE",
                    "CAP_DAC_READ_SEARCH",
                ]
                .map(|c| json!(c)),
            );
        }
    });
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    let tmp = env.rootfs.join("tmp");
    let read = |f: &str| std::fs::read_to_string(tmp.join(f)).unwrap_or_default();
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // The container's pid 1 is runr's init, waiting for start: the watcher takes it.
    let r = env.runr(&["exec", "-d", &id, "/exewatch"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    wait_for("the watcher to take the init", &|| {
        read("grabbed").lines().any(|l| l.starts_with("1 "))
    });

    // Self-test: a binary of the container's own, executed and then left alone, is caught.
    std::fs::copy(env.rootfs.join("bin/busybox"), tmp.join("sleep")).unwrap();
    let r = env.runr(&["exec", &id, "/tmp/sleep", "0.3"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    wait_for("the watcher to catch its own victim", &|| {
        read("found").contains("/tmp/sleep")
    });

    for _ in 0..20 {
        let r = env.runr(&["exec", &id, "true"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    // The init of another container in the same pid namespace, created and then run.
    let init = env.state(&id)["pid"].as_i64().unwrap();
    env.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        for n in ns.iter_mut() {
            if n["type"] == "pid" {
                n["path"] = json!(format!("/proc/{init}/ns/pid"));
            }
        }
    });
    env.args(&["true"]);
    let other = env.id("o");
    assert_eq!(env.create(&other).code, 0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.runr(&["start", &other]).code, 0);
    let third = env.id("r");
    let r = env.runr(&["run", "--bundle", env.bundle.to_str().unwrap(), &third]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.runr(&["start", &id]).code, 0);
    // No runr runs now: a handle on its binary would open for writing.
    std::thread::sleep(Duration::from_millis(500));

    std::fs::write(tmp.join("stop"), "").unwrap();
    wait_for("the watcher to stop", &|| tmp.join("done").exists());
    let grabbed = read("grabbed");
    let of_runr = grabbed
        .lines()
        .filter(|l| !l.contains("/tmp/sleep"))
        .count();
    assert!(
        of_runr >= 10,
        "the watcher took too few handles of runr's processes to prove anything:\n{grabbed}"
    );
    let found = read("found");
    let escaped: Vec<&str> = found
        .lines()
        .filter(|l| !l.contains("/tmp/sleep"))
        .collect();
    assert!(
        escaped.is_empty(),
        "the container reopened runr's binary for writing: {escaped:?}\n(all handles taken:\n{grabbed})"
    );
    assert!(
        std::fs::read(&copy).unwrap() == original,
        "the runr binary changed"
    );
}

fn write_script(env: &Env, path: &str, text: &str) {
    let p = env.rootfs.join(path);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// CVE-2024-21626: whatever descriptor the runtime might hold, none may serve as a working
/// directory or path out of the container; only 0-2 (and preserved ones) reach it.
#[test]
fn no_descriptor_leads_out_of_the_container() {
    let env = Env::new("cve21626");
    for n in 3..12 {
        let fd_dir = format!("/proc/self/fd/{n}");
        env.edit(|c| c["process"]["cwd"] = json!(fd_dir));
        let r = env.run(&["sh", "-c", "ls ..; pwd"]);
        assert_ne!(r.code, 0, "cwd {fd_dir} worked: {}", r.stdout);
        env.assert_gone(&env.id("run"));
        env.edit(|c| c["process"]["cwd"] = json!(format!("{fd_dir}/..")));
        let r = env.run(&["true"]);
        assert_ne!(r.code, 0, "cwd {fd_dir}/.. worked");
        env.edit(|c| c["process"]["cwd"] = json!("/"));
        let r = env.run(&[&format!("{fd_dir}/../../../../bin/sh"), "-c", "true"]);
        assert_ne!(r.code, 0, "{fd_dir}/../../../../bin/sh ran");
    }
    env.edit(|c| c["process"]["cwd"] = json!("/"));
    // Exactly 0, 1 and 2 are open in the container's process.
    assert_eq!(env.sh("ls /proc/$$/fd; true"), "0\n1\n2\n");

    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    assert_eq!(env.runr(&["start", &id]).code, 0);
    for n in 3..12 {
        let r = env.runr(&["exec", "--cwd", &format!("/proc/self/fd/{n}"), &id, "pwd"]);
        assert_ne!(
            r.code, 0,
            "exec --cwd /proc/self/fd/{n} worked: {}",
            r.stdout
        );
    }
    let r = env.runr(&["exec", &id, "sh", "-c", "ls /proc/$$/fd; true"]);
    assert_eq!(r.stdout, "0\n1\n2\n", "{}", r.stderr);
}

/// Masked and read-only paths are mounts in the container's mount namespace, so an exec'd
/// process, which joins it, is held by them as the init is; and it cannot undo them.
#[test]
fn masked_and_readonly_paths_hold_for_exec() {
    let env = Env::new("maskexec");
    for d in ["secret", "ro"] {
        std::fs::create_dir(env.rootfs.join(d)).unwrap();
        std::fs::write(env.rootfs.join(d).join("f"), "data").unwrap();
    }
    env.edit(|c| {
        c["linux"]["maskedPaths"] = json!(["/secret", "/proc/kcore"]);
        c["linux"]["readonlyPaths"] = json!(["/ro", "/proc/sys"]);
    });
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    assert_eq!(env.runr(&["start", &id]).code, 0);
    for user in ["0:0", "1000:1000"] {
        let r = env.runr(&[
            "exec",
            "--user",
            user,
            &id,
            "sh",
            "-c",
            "ls /secret | wc -l; cat /proc/kcore | wc -c; \
             echo x > /ro/f && echo WROTE; echo 1 > /proc/sys/kernel/domainname && echo SYSCTL; \
             umount /secret && echo UNMOUNTED; umount /ro && echo UNMOUNTED; \
             mount -o remount,rw /ro && echo REMOUNTED; true",
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout, "0\n0\n", "as {user}: {}", r.stderr);
    }
    assert_eq!(
        std::fs::read_to_string(env.rootfs.join("ro/f")).unwrap(),
        "data"
    );
}

/// Each container (and each exec'd process) gets a session keyring of its own, so keys the
/// host or another container holds are not in reach; `--no-new-keyring` keeps the caller's.
#[test]
fn a_new_session_keyring_per_container_unless_asked_not_to() {
    let env = Env::new("keyring");
    install_helper("syscall", &env.rootfs);
    const KEYCTL_GET_KEYRING_ID: i64 = 0;
    const KEY_SPEC_SESSION_KEYRING: i64 = -3;
    let ask = format!(
        "/syscall {} {KEYCTL_GET_KEYRING_ID} {KEY_SPEC_SESSION_KEYRING}",
        libc::SYS_keyctl
    );
    // SAFETY: keyctl reads three integer arguments.
    let host = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            0,
        )
    };
    assert!(host > 0, "this test process has no session keyring");
    let serial = |out: &str| -> i64 {
        out.trim()
            .rsplit_once(" ok ")
            .unwrap_or_else(|| panic!("keyctl failed: {out}"))
            .1
            .parse()
            .unwrap()
    };
    let a = serial(&env.sh(&ask));
    let b = serial(&env.sh(&ask));
    assert_ne!(a, host);
    assert_ne!(a, b);

    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    let r = env.runr(&["exec", &id, "sh", "-c", &ask]);
    assert_ne!(serial(&r.stdout), host);

    env.args(&["sh", "-c", &ask]);
    let mut c = env.cmd();
    c.args(["run", "--no-new-keyring", "--bundle"])
        .arg(&env.bundle)
        .arg(env.id("shared"));
    let r = capture(c);
    assert_eq!(serial(&r.stdout), host, "{}", r.stderr);
}

/// A process given CAP_SYS_PTRACE that the container's config lacks could open the created
/// init (which still runs runr's binary, unprotected) and write the binary once it execs:
/// such an exec waits for start.
#[test]
fn a_tracer_is_not_exec_into_a_created_container() {
    let env = Env::new("tracer");
    env.args(&["sleep", "1000"]);
    let id = env.id("c");
    assert_eq!(env.create(&id).code, 0);
    let r = env.runr(&["exec", "--cap", "CAP_SYS_PTRACE", &id, "true"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("before the container is started"),
        "{}",
        r.stderr
    );
    assert_eq!(env.runr(&["start", &id]).code, 0);
    let r = env.runr(&["exec", "--cap", "CAP_SYS_PTRACE", &id, "true"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
