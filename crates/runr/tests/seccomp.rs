//! seccomp: each action, argument comparisons, both load points (with and without
//! no_new_privs), exec'd processes, the notify agent, a real engine profile, and bad
//! profiles refused before anything exists.

mod common;
use common::*;
use serde_json::{json, Value};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn with_seccomp(env: &Env, seccomp: Value) {
    env.edit(|c| c["linux"]["seccomp"] = seccomp);
}

fn errno_rule(names: &[&str], errno: i32) -> Value {
    json!({"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": errno})
}

#[test]
fn errno_rules_with_and_without_no_new_privs() {
    for nnp in [true, false] {
        let env = Env::new("scerrno");
        env.edit(|c| c["process"]["noNewPrivileges"] = json!(nnp));
        with_seccomp(
            &env,
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                errno_rule(&["mkdir", "mkdirat"], libc::EXDEV),
                {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
            ]}),
        );
        let out =
            env.sh("mkdir /tmp/a 2>&1; rmdir /tmp 2>&1; cat /proc/self/status | grep Seccomp:");
        assert!(
            out.contains("Invalid cross-device link"),
            "nnp={nnp}: {out}"
        );
        // errnoRet left out: EPERM.
        assert!(out.contains("Operation not permitted"), "nnp={nnp}: {out}");
        assert!(out.contains("Seccomp:\t2"), "nnp={nnp}: {out}");
    }
}

#[test]
fn argument_comparisons() {
    let env = Env::new("scargs");
    // kill(pid, SIGUSR1) refused by value, kill(pid, SIGUSR2) by mask; signal 0 allowed.
    with_seccomp(
        &env,
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EDOM,
             "args": [{"index": 1, "value": libc::SIGUSR1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ERANGE,
             "args": [{"index": 1, "value": 0xff, "valueTwo": libc::SIGUSR2, "op": "SCMP_CMP_MASKED_EQ"}]},
        ]}),
    );
    let out = env.sh(
        "trap '' USR1 USR2; kill -USR1 $$ 2>&1; kill -USR2 $$ 2>&1; kill -0 $$ && echo zero-ok",
    );
    assert!(out.contains("Numerical argument out of domain"), "{out}");
    assert!(out.contains("Numerical result out of range"), "{out}");
    assert!(out.contains("zero-ok"), "{out}");
}

#[test]
fn kill_process_and_log_actions() {
    let env = Env::new("sckill");
    with_seccomp(
        &env,
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["getcwd"], "action": "SCMP_ACT_LOG"},
            {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"},
        ]}),
    );
    // The subshell dies of SIGSYS (31): 128 + 31. Logged calls go through.
    let out = env.sh("(mkdir /tmp/k); echo status=$?; pwd");
    assert!(out.contains("status=159"), "{out}");
    assert!(out.contains('/'), "{out}");
}

#[test]
fn trap_trace_and_kill_thread_actions() {
    let env = Env::new("sctrap");
    with_seccomp(
        &env,
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRAP"},
            {"names": ["rmdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 1},
            {"names": ["symlink", "symlinkat"], "action": "SCMP_ACT_KILL_THREAD"},
            {"names": ["link", "linkat"], "action": "SCMP_ACT_KILL"},
        ]}),
    );
    // A trapped call raises SIGSYS, which kills a process with no handler (128 + 31); a
    // traced call with no tracer fails with ENOSYS; killing the only thread ends the process.
    let out = env.sh(
        "(mkdir /tmp/t); echo trap=$?; rmdir /tmp 2>&1; (ln -s a /tmp/s); echo thread=$?; \
         (ln /bin/sh /tmp/h); echo kill=$?",
    );
    assert!(out.contains("trap=159"), "{out}");
    assert!(out.contains("Function not implemented"), "{out}");
    assert!(out.contains("thread=159"), "{out}");
    assert!(out.contains("kill=159"), "{out}");
    // defaultAction ERRNO with defaultErrnoRet: an_engines_default_profile_loads_and_confines.
}

#[test]
fn an_exec_d_process_gets_the_containers_filter() {
    let env = Env::new("scexec");
    env.args(&["sleep", "1000"]);
    with_seccomp(
        &env,
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [errno_rule(&["mkdir", "mkdirat"], libc::EXDEV)]}),
    );
    let id = env.id("c");
    let r = env.runr(&["run", "-d", "--bundle", env.bundle.to_str().unwrap(), &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = env.runr(&["exec", &id, "mkdir", "/tmp/e"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("Invalid cross-device link"),
        "{}",
        r.stderr
    );
    assert_eq!(env.runr(&["delete", "-f", &id]).code, 0);
}

/// podman's default profile (from Debian's containers-common, in Docker's profile format),
/// turned into the OCI form the way an engine does for a container with `caps`.
fn engine_profile(caps: &[String]) -> Value {
    let path = "/usr/share/containers/seccomp.json";
    let text = std::fs::read(path).unwrap_or_else(|e| {
        panic!("{path}: {e} (scripts/deps.sh installs golang-github-containers-common)")
    });
    let p: Value = serde_json::from_slice(&text).unwrap();
    let arches: Vec<Value> = p["archMap"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["architecture"] == "SCMP_ARCH_X86_64")
        .map(|a| {
            let mut v = vec![a["architecture"].clone()];
            v.extend(a["subArchitectures"].as_array().unwrap().iter().cloned());
            v
        })
        .unwrap();
    let has = |v: &Value| {
        v.as_array().is_some_and(|l| {
            l.iter()
                .any(|c| caps.iter().any(|x| x == c.as_str().unwrap()))
        })
    };
    let mut syscalls = Vec::new();
    for s in p["syscalls"].as_array().unwrap() {
        let inc = &s["includes"];
        if inc["caps"].as_array().is_some_and(|l| {
            !l.iter()
                .all(|c| caps.iter().any(|x| x == c.as_str().unwrap()))
        }) {
            continue;
        }
        if inc["arches"].as_array().is_some_and(|l| {
            !l.iter()
                .any(|a| a == "amd64" || a == "x86_64" || a == "x32")
        }) {
            continue;
        }
        if has(&s["excludes"]["caps"]) {
            continue;
        }
        let mut rule = json!({"names": s["names"], "action": s["action"]});
        if let Some(n) = s.get("errnoRet").filter(|v| !v.is_null()) {
            rule["errnoRet"] = n.clone();
        }
        if let Some(a) = s["args"].as_array().filter(|a| !a.is_empty()) {
            rule["args"] = json!(a);
        }
        syscalls.push(rule);
    }
    json!({
        "defaultAction": p["defaultAction"],
        "defaultErrnoRet": p["defaultErrnoRet"],
        "architectures": arches,
        "syscalls": syscalls,
    })
}

#[test]
fn an_engines_default_profile_loads_and_confines() {
    let env = Env::new("scpodman");
    let caps: Vec<String> = env.config()["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert!(!caps.contains(&"CAP_SYS_ADMIN".to_string()));
    with_seccomp(&env, engine_profile(&caps));
    helper("syscall", &env.rootfs);
    // An ordinary shell works. add_key is not on the profile's list: the default action
    // answers ENOSYS, where the kernel itself says EFAULT (a null key type).
    let add_key = libc::SYS_add_key.to_string();
    let out = env.sh(&format!(
        "ls / >/dev/null && echo ls-ok; /syscall {add_key}"
    ));
    assert!(out.contains("ls-ok"), "{out}");
    assert!(out.contains(&format!("errno {}", libc::ENOSYS)), "{out}");
    env.edit(|c| c["linux"]["seccomp"] = Value::Null);
    let out = env.sh(&format!("/syscall {add_key}"));
    assert!(out.contains(&format!("errno {}", libc::EFAULT)), "{out}");
}

/// A seccomp agent: takes one connection, checks the container state it is sent, and
/// answers the container's mkdir with EXDEV.
fn agent(listener: std::os::unix::net::UnixListener) -> std::thread::JoinHandle<Value> {
    std::thread::spawn(move || {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let (sock, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .unwrap();
        let mut fd = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the descriptor was just received and belongs to nobody else.
                fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
            }
        }
        let n = msg.bytes;
        let state: Value = serde_json::from_slice(&buf[..n]).unwrap();
        let fd = fd.expect("the seccomp fd came with the state");
        let req = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()).unwrap();
        libseccomp::ScmpNotifResp::new_error(
            req.id,
            -libc::EXDEV,
            libseccomp::ScmpNotifRespFlags::empty(),
        )
        .respond(fd.as_raw_fd())
        .unwrap();
        state
    })
}

#[test]
fn notify_hands_the_listener_to_the_agent() {
    let env = Env::new("scnotify");
    let socket = env.bundle.join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let thread = agent(listener);
    with_seccomp(
        &env,
        json!({"defaultAction": "SCMP_ACT_ALLOW",
               "listenerPath": socket, "listenerMetadata": "hello-agent",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    let out = env.sh("mkdir /tmp/n 2>&1; echo done");
    assert!(out.contains("Invalid cross-device link"), "{out}");
    let state = thread.join().unwrap();
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "hello-agent");
    assert_eq!(
        state["state"]["id"],
        format!("scnotify-{}-run", std::process::id())
    );
    assert_eq!(state["state"]["status"], "creating");
    assert!(state["pid"].as_i64().unwrap() > 0);
}

#[test]
fn bad_profiles_are_refused_before_anything_exists() {
    let env = Env::new("scbad");
    let id = env.id("c");
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_SOMETIMES"}),
            "SCMP_ACT_SOMETIMES",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}),
            "SCMP_ARCH_VAX",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                   "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]}]}),
            "SCMP_CMP_ALMOST",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_MAGIC"]}),
            "SECCOMP_FILTER_FLAG_MAGIC",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}),
            "listenerPath",
        ),
    ];
    for (seccomp, needle) in cases {
        with_seccomp(&env, seccomp);
        let r = env.create(&id);
        assert_eq!(r.code, 1, "{needle}");
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
        env.assert_gone(&id);
    }
}

/// The allow list of a profile written before 2020 (in the shape `oci-runtime-tool
/// generate` writes): what a container needs, nothing newer than statx and rseq.
const OLD_ALLOW_LIST: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "clone",
    "close",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "fadvise64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flock",
    "fork",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "ioctl",
    "kill",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "lseek",
    "lstat",
    "madvise",
    "memfd_create",
    "mknod",
    "mknodat",
    "mmap",
    "mprotect",
    "mremap",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "pause",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "prlimit64",
    "pselect6",
    "pwrite64",
    "pwritev",
    "read",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmsg",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "sched_getaffinity",
    "sched_yield",
    "seccomp",
    "select",
    "sendfile",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_tid_address",
    "setuid",
    "sigaltstack",
    "socket",
    "socketpair",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sysinfo",
    "tgkill",
    "time",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utimensat",
    "vfork",
    "wait4",
    "waitid",
    "write",
    "writev",
];

/// `install_helper` builds under one temporary name per process: one test at a time.
fn helper(name: &str, rootfs: &std::path::Path) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    install_helper(name, rootfs);
}

/// The old profile, allowing `extra` too; mkdir answers EXDEV (named and denied).
fn old_profile(extra: &[&str]) -> Value {
    let mut allow: Vec<&str> = OLD_ALLOW_LIST.to_vec();
    allow.extend(extra);
    json!({"defaultAction": "SCMP_ACT_ERRNO",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [
        {"names": allow, "action": "SCMP_ACT_ALLOW"},
        errno_rule(&["mkdir", "mkdirat"], libc::EXDEV),
    ]})
}

#[test]
fn an_old_profile_runs_programs_and_newer_syscalls_answer_enosys() {
    for nnp in [false, true] {
        let env = Env::new("scold");
        env.edit(|c| c["process"]["noNewPrivileges"] = json!(nnp));
        with_seccomp(&env, old_profile(&[]));
        helper("syscall", &env.rootfs);
        let r = env.run(&["true"]);
        assert_eq!(r.code, 0, "nnp={nnp}: {}", r.stderr);
        let calls = [
            libc::SYS_clone3,
            libc::SYS_openat2,
            libc::SYS_faccessat2,
            libc::SYS_close_range,
            libc::SYS_pidfd_open,
            libc::SYS_add_key,
        ];
        let script: Vec<String> = calls.iter().map(|n| format!("/syscall {n};")).collect();
        let out = env.sh(&format!(
            "{} mkdir /tmp/d 2>&1; echo sh-ok",
            script.concat()
        ));
        for n in &calls[..5] {
            let want = format!("syscall {n}: errno {}", libc::ENOSYS);
            assert!(out.contains(&want), "nnp={nnp}: {want}: {out}");
        }
        // Older than the newest named call: the default; a named one: its own errno.
        let want = format!("syscall {}: errno {}", libc::SYS_add_key, libc::EPERM);
        assert!(out.contains(&want), "nnp={nnp}: {out}");
        assert!(
            out.contains("Invalid cross-device link"),
            "nnp={nnp}: {out}"
        );
        assert!(out.contains("sh-ok"), "nnp={nnp}: {out}");
    }
}

#[test]
fn a_profile_denying_openat2_with_eperm_still_runs_programs() {
    // Naming faccessat2 makes openat2 an older unnamed call: the default EPERM, which the
    // runtime's own open of the program (after the filter without no_new_privs) survives.
    for nnp in [false, true] {
        let env = Env::new("scoldat2");
        env.edit(|c| c["process"]["noNewPrivileges"] = json!(nnp));
        with_seccomp(&env, old_profile(&["faccessat2"]));
        helper("syscall", &env.rootfs);
        let out = env.sh(&format!("/syscall {}", libc::SYS_openat2));
        assert!(
            out.contains(&format!("errno {}", libc::EPERM)),
            "nnp={nnp}: {out}"
        );
        // Without openat2's RESOLVE_NO_MAGICLINKS, runr's own binary is still refused
        // as a program (CVE-2019-5736).
        std::os::unix::fs::symlink("/proc/self/exe", env.rootfs.join("bin/evil")).unwrap();
        let r = env.run(&["/bin/evil"]);
        assert_ne!(r.code, 0, "nnp={nnp}: runr's binary ran as the program");
        assert!(r.stderr.contains("magic links"), "nnp={nnp}: {}", r.stderr);
    }
}

#[test]
fn the_cache_of_compiled_programs_stays_bounded() {
    let env = Env::new("sccache");
    let cache = env.root.join("~seccomp");
    std::fs::create_dir_all(&cache).unwrap();
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    for i in 0..80 {
        let f = std::fs::File::create(cache.join(format!("stale{i:02}"))).unwrap();
        f.set_modified(old).unwrap();
    }
    with_seccomp(
        &env,
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [errno_rule(&["mkdir"], libc::EXDEV)]}),
    );
    assert_eq!(env.run(&["true"]).code, 0);
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 64, "{names:?}");
    assert!(names.iter().any(|n| !n.starts_with("stale")), "{names:?}");
}
