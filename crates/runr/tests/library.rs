//! The library used in-process, as an embedding program uses it: its own stdio for the
//! init and for exec'd processes, and handles that wait for and signal one process only.
//! No test harness (`harness = false`): the library clones from the calling process, which
//! must be single-threaded, so these run one after another on the main thread.

mod common;

use common::Env;
use container::exec::{process_from_args, ExecOptions, ProcessOverrides};
use container::{Container, CreateOptions, Error, ProcessHandle, Status, Stdio, WrongStatus};
use std::io::{Read, Write};

fn options(env: &Env, id: &str, stdio: Stdio) -> CreateOptions {
    CreateOptions {
        root: env.root.clone(),
        id: id.into(),
        bundle: env.bundle.clone(),
        detached: true,
        stdio,
        ..Default::default()
    }
}

fn read_all(f: Option<std::fs::File>) -> String {
    let mut s = String::new();
    f.expect("a piped stream").read_to_string(&mut s).unwrap();
    s
}

fn exec(env: &Env, id: &str, args: &[&str], stdio: Stdio) -> ProcessHandle {
    let c = Container::load(&env.root, id).unwrap();
    let base = c.saved().config.process().clone().unwrap();
    let process = process_from_args(
        &base,
        &ProcessOverrides {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        },
    )
    .unwrap();
    c.exec(&ExecOptions {
        process,
        detached: true,
        stdio,
        ..Default::default()
    })
    .unwrap()
}

/// The init's own pipes: what the program writes comes back on them, and its handle
/// reports its exit status.
fn init_output_and_status_come_back() {
    let env = Env::new("lib-init");
    env.args(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let id = env.id("a");
    let mut c = container::create(&options(&env, &id, Stdio::Piped)).unwrap();
    let mut init = c.init_handle().expect("the init runs");
    drop(init.io.stdin.take());
    c.start().unwrap();
    drop(c);
    assert_eq!(read_all(init.io.stdout.take()), "out\n");
    assert_eq!(read_all(init.io.stderr.take()), "err\n");
    assert_eq!(init.wait().unwrap(), 3);
    Container::load(&env.root, &id)
        .unwrap()
        .delete(false)
        .unwrap();
}

/// An exec'd process with its own stdio while the init keeps running; another killed by a
/// signal reports 128 + N.
fn exec_has_its_own_stdio_and_status() {
    let env = Env::new("lib-exec");
    env.args(&["sleep", "100"]);
    let id = env.id("a");
    let mut c = container::create(&options(&env, &id, Stdio::Inherit)).unwrap();
    let init = c.init_handle().expect("the init runs");
    c.start().unwrap();
    drop(c);

    let mut cat = exec(&env, &id, &["cat"], Stdio::Piped);
    cat.io.stdin.take().unwrap().write_all(b"ping\n").unwrap();
    assert_eq!(read_all(cat.io.stdout.take()), "ping\n");
    assert_eq!(cat.wait().unwrap(), 0);

    let sleeper = exec(&env, &id, &["sleep", "100"], Stdio::Inherit);
    assert_eq!(sleeper.try_wait().unwrap(), None);
    sleeper.signal(libc::SIGKILL).unwrap();
    assert_eq!(sleeper.wait().unwrap(), 128 + libc::SIGKILL);

    // The init was not reaped by any of these waits.
    assert_eq!(init.try_wait().unwrap(), None);
    init.signal(libc::SIGKILL).unwrap();
    assert_eq!(init.wait().unwrap(), 128 + libc::SIGKILL);
    Container::load(&env.root, &id)
        .unwrap()
        .delete(false)
        .unwrap();
}

/// A terminal process has the pty as its stdio: asking for pipes too is refused, and
/// nothing is left behind.
fn pipes_and_a_terminal_are_refused() {
    let env = Env::new("lib-tty");
    env.edit(|c| c["process"]["terminal"] = true.into());
    let id = env.id("a");
    let mut o = options(&env, &id, Stdio::Piped);
    o.console_in_process = true;
    let Err(e) = container::create(&o) else {
        panic!("a terminal with pipes was accepted");
    };
    assert!(e.to_string().contains("pty as its stdio"), "{e}");
    env.assert_gone(&id);
}

/// An interactive shell on a pty whose master the caller holds in-process: what is typed
/// is echoed, a resize is seen, and the exit status comes back.
fn shell_on_an_in_process_pty() {
    let env = Env::new("lib-pty");
    env.edit(|c| c["process"]["terminal"] = true.into());
    env.args(&["sh"]);
    let id = env.id("a");
    let mut o = options(&env, &id, Stdio::Inherit);
    o.console_in_process = true;
    let mut c = container::create(&o).unwrap();
    let mut init = c.init_handle().expect("the init runs");
    let master = init.console.take().expect("the pty master comes back");
    c.start().unwrap();
    drop(c);
    let mut pty = std::fs::File::from(master);
    let size = rustix::termios::Winsize {
        ws_row: 33,
        ws_col: 111,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&pty, size).unwrap();
    pty.write_all(b"echo hi-$((6*7)); stty size; exit 5\n")
        .unwrap();
    let seen = common::read_until(&mut pty, "33 111");
    assert!(seen.contains("hi-42"), "{seen:?}");
    assert_eq!(init.wait().unwrap(), 5);
    Container::load(&env.root, &id)
        .unwrap()
        .delete(false)
        .unwrap();
}

/// Errors a service maps to its status codes: an unknown id, a wrong status, an init that
/// failed at a named step with an errno.
fn errors_are_typed() {
    let env = Env::new("lib-errors");
    let missing = env.id("missing");
    assert!(matches!(
        Container::load(&env.root, &missing),
        Err(Error::NotExist)
    ));
    assert!(matches!(
        Container::load_unlocked(&env.root, &missing),
        Err(Error::NotExist)
    ));
    assert!(matches!(
        container::remnant::load_for_delete(&env.root, &missing),
        Err(Error::NotExist)
    ));
    assert!(matches!(
        Container::load(&env.root, "../x"),
        Err(Error::InvalidId)
    ));

    env.args(&["sleep", "100"]);
    let id = env.id("a");
    let c = container::create(&options(&env, &id, Stdio::Inherit)).unwrap();
    assert!(matches!(
        c.resume(),
        Err(Error::Status(WrongStatus::NotPaused))
    ));
    c.start().unwrap();
    assert!(matches!(
        c.start(),
        Err(Error::Status(WrongStatus::StartRunning))
    ));
    let err = c.delete(false).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Status(WrongStatus::DeleteNotStopped {
                status: Status::Running,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("cannot delete container {id} that is not stopped: running")
    );
    Container::load(&env.root, &id)
        .unwrap()
        .delete(true)
        .unwrap();

    env.args(&["true"]);
    // No such filesystem type: mount(2) fails with ENODEV.
    env.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/mnt", "type": "nosuchfs", "source": "none"
        }))
    });
    let bad = env.id("b");
    let err = container::create(&options(&env, &bad, Stdio::Inherit))
        .map(|_| ())
        .unwrap_err();
    let Error::Init(failure) = &err else {
        panic!("not an init failure: {err:?}");
    };
    assert_eq!(failure.errno, Some(libc::ENODEV), "{failure:?}");
    assert!(failure.step.is_some(), "{failure:?}");
    env.assert_gone(&bad);
}

fn main() {
    let tests: [(&str, fn()); 5] = [
        ("errors_are_typed", errors_are_typed),
        ("shell_on_an_in_process_pty", shell_on_an_in_process_pty),
        (
            "init_output_and_status_come_back",
            init_output_and_status_come_back,
        ),
        (
            "exec_has_its_own_stdio_and_status",
            exec_has_its_own_stdio_and_status,
        ),
        (
            "pipes_and_a_terminal_are_refused",
            pipes_and_a_terminal_are_refused,
        ),
    ];
    for (name, test) in tests {
        test();
        println!("test {name} ... ok");
    }
}
