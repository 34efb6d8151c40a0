//! The library embedded in a multi-threaded tokio program, through its spawner: containers
//! created, started, fed, read and waited for concurrently from async tasks, exec'd processes
//! with their own pipes, failures that leave nothing behind, and the program itself left as
//! it was (dumpable, oom_score_adj, no child left once the spawner is gone).
//! No test harness: the spawner must start while the program is single-threaded.

mod common;

use common::Env;
use container::exec::{process_from_args, ExecOptions, ProcessOverrides};
use container::{Container, CreateOptions, Error, ProcessHandle, Spawner, Stdio, WrongStatus};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

const CONTAINERS: usize = 50;

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

/// Wait for the process to exit without blocking a runtime thread: its pidfd turns readable.
async fn exit_status(p: &ProcessHandle) -> i32 {
    let pidfd = p.pidfd().try_clone_to_owned().expect("dup the pidfd");
    // SAFETY: the AsyncFd owns this duplicate, so the descriptor stays open and refers to the
    // same pidfd for as long as the AsyncFd lives.
    let fd = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .expect("register the pidfd");
    let _ = fd.readable().await.expect("pidfd readable");
    p.try_wait()
        .unwrap()
        .expect("exited once its pidfd is readable")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// One container: `cat` as its init, fed a line of its own, read back, waited for, deleted.
async fn one_container(spawner: Arc<Spawner>, root: std::path::PathBuf, o: CreateOptions) {
    let id = o.id.clone();
    let mut init = blocking(move || {
        let mut c = spawner.create(o).expect("create");
        let init = c.init_handle().expect("the init runs");
        c.start().expect("start");
        init
    })
    .await;
    let mut stdin = pipe::Sender::from_file(init.io.stdin.take().unwrap()).unwrap();
    let mut stdout = pipe::Receiver::from_file(init.io.stdout.take().unwrap()).unwrap();
    stdin
        .write_all(format!("I am {id}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, format!("I am {id}\n"));
    assert_eq!(exit_status(&init).await, 0);
    blocking(move || Container::load(&root, &id).unwrap().delete(false).unwrap()).await;
}

fn exec_options(c: &Container, args: &[&str], stdio: Stdio) -> ExecOptions {
    let base = c.saved().config.process().clone().unwrap();
    let process = process_from_args(
        &base,
        &ProcessOverrides {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        },
    )
    .unwrap();
    ExecOptions {
        process,
        detached: true,
        stdio,
        ..Default::default()
    }
}

/// Fifty containers at once, each with its own pipes.
async fn many_containers_concurrently(spawner: &Arc<Spawner>, env: &Env, ids: Vec<String>) {
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let o = options(env, &id, Stdio::Piped);
            tokio::spawn(one_container(spawner.clone(), env.root.clone(), o))
        })
        .collect();
    for t in tasks {
        t.await.expect("a container's task");
    }
}

/// Processes exec'd through the spawner into one container, concurrently: each its own
/// output and exit status, one killed by a signal.
async fn execs_concurrently(spawner: &Arc<Spawner>, env: &Env, id: String) {
    let (s, o) = (spawner.clone(), options(env, &id, Stdio::Inherit));
    let init = blocking(move || {
        let mut c = s.create(o).unwrap();
        let init = c.init_handle().unwrap();
        c.start().unwrap();
        init
    })
    .await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let (s, root, id) = (spawner.clone(), env.root.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let script = format!("echo exec {n}; exit {n}");
            let mut p = blocking(move || {
                let c = Container::load(&root, &id).unwrap();
                let o = exec_options(&c, &["sh", "-c", &script], Stdio::Piped);
                s.exec(c, o).unwrap()
            })
            .await;
            drop(p.io.stdin.take());
            let mut out = String::new();
            pipe::Receiver::from_file(p.io.stdout.take().unwrap())
                .unwrap()
                .read_to_string(&mut out)
                .await
                .unwrap();
            assert_eq!(out, format!("exec {n}\n"));
            assert_eq!(exit_status(&p).await, n);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (s, root, id2) = (spawner.clone(), env.root.clone(), id.clone());
    let sleeper = blocking(move || {
        let c = Container::load(&root, &id2).unwrap();
        let o = exec_options(&c, &["sleep", "100"], Stdio::Inherit);
        s.exec(c, o).unwrap()
    })
    .await;
    sleeper.signal(libc::SIGTERM).unwrap();
    assert_eq!(exit_status(&sleeper).await, 128 + libc::SIGTERM);
    init.signal(libc::SIGKILL).unwrap();
    assert_eq!(exit_status(&init).await, 128 + libc::SIGKILL);
    // The worker's typed error reaches the caller as it was.
    let (s, root, id2) = (spawner.clone(), env.root.clone(), id.clone());
    let err = blocking(move || {
        let c = Container::load(&root, &id2).unwrap();
        let o = exec_options(&c, &["true"], Stdio::Inherit);
        s.exec(c, o).unwrap_err()
    })
    .await;
    assert!(
        matches!(err, Error::Status(WrongStatus::ExecStopped)),
        "{err:?}"
    );
    let root = env.root.clone();
    blocking(move || Container::load(&root, &id).unwrap().delete(false).unwrap()).await;
}

/// A create whose init fails during its setup: a clear error, and nothing left (the state
/// directory, and no zombie: the init was the program's child and was reaped).
async fn failed_create_leaves_nothing(spawner: &Arc<Spawner>, env: &Env, id: String) {
    let (s, o) = (spawner.clone(), options(env, &id, Stdio::Piped));
    let err = blocking(move || s.create(o).map(|_| ()).unwrap_err()).await;
    let text = err.to_string();
    assert!(text.contains("/no/such/source"), "unexpected error: {text}");
    // The init's failure names its step and errno.
    let Error::Init(failure) = &err else {
        panic!("not an init failure: {err:?}");
    };
    assert_eq!(failure.errno, Some(libc::ENOENT), "{failure:?}");
    assert!(
        failure
            .step
            .as_deref()
            .unwrap_or("")
            .contains("/no/such/source"),
        "{failure:?}"
    );
    assert_eq!(err.errno(), Some(libc::ENOENT));
    env.assert_gone(&id);
}

/// The spawner's worker among our children that `before` did not list (it has the
/// helper's name; the container processes it clones are in the container's pid namespace).
fn find_worker(before: &[i32], deadline: std::time::Instant) -> Option<i32> {
    while std::time::Instant::now() < deadline {
        for pid in children().into_iter().filter(|p| !before.contains(p)) {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let named = status.lines().any(|l| l == "Name:\trunr-spawner");
            let own_ns = status
                .lines()
                .find(|l| l.starts_with("NSpid:"))
                .is_some_and(|l| l.split_whitespace().count() == 2);
            if named && own_ns {
                return Some(pid);
            }
        }
        std::hint::spin_loop();
    }
    None
}

/// Run `call` on another thread, SIGKILL the worker `delay` after it appears, and return
/// what the call gave (it must not hang).
fn with_worker_killed<T: Send + 'static>(
    delay: std::time::Duration,
    call: impl FnOnce() -> container::Result<T> + Send + 'static,
) -> container::Result<T> {
    let before = children();
    let caller = std::thread::spawn(call);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    if let Some(worker) = find_worker(&before, deadline) {
        std::thread::sleep(delay);
        // SAFETY: kill(2) of the spawner's worker this call made, our own child, not yet
        // reaped (the call reaps it), so the pid is still its.
        unsafe { libc::kill(worker, libc::SIGKILL) };
    }
    caller.join().expect("the call panicked")
}

/// `delete --force` of a container made through the spawner, whose init is our child.
fn delete_and_reap(mut c: Container) {
    let init = c.init_handle();
    c.delete(true).unwrap();
    if let Some(init) = init {
        init.wait().unwrap();
    }
}

/// A worker SIGKILLed at moments swept across a create, then across an exec (as an OOM
/// killer or an impatient operator might): each call returns (an error or the thing made),
/// and what a dead worker made is gone: no state directory, cgroup, container process or
/// zombie of ours. The caller learns of each process a worker clones as it is cloned.
fn killed_workers_leave_nothing(spawner: &Arc<Spawner>, env: &Env, exec_env: &Env) {
    let baseline = children();
    let t0 = std::time::Instant::now();
    let id = env.id("probe");
    let c = spawner.create(options(env, &id, Stdio::Piped)).unwrap();
    let took = t0.elapsed();
    delete_and_reap(c);
    let (mut failed, mut made) = (0, 0);
    for step in 0..12u32 {
        let id = env.id(&format!("k{step}"));
        let (s, o) = (spawner.clone(), options(env, &id, Stdio::Piped));
        match with_worker_killed(took * step / 10, move || s.create(o)) {
            Ok(c) => {
                made += 1;
                delete_and_reap(c);
            }
            Err(e) => {
                failed += 1;
                assert!(!e.to_string().is_empty());
            }
        }
        env.assert_gone(&id);
        let left: Vec<String> = children()
            .iter()
            .filter(|p| !baseline.contains(p))
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default())
            .collect();
        assert!(
            left.is_empty(),
            "step {step}: left after a killed create: {left:?}"
        );
    }
    println!("creates with their worker killed: {failed} failed, {made} made; nothing left");

    let id = exec_env.id("k");
    let mut c = spawner
        .create(options(exec_env, &id, Stdio::Piped))
        .unwrap();
    let init = c.init_handle().unwrap();
    c.start().unwrap();
    // Let go of the lock the create handed back, or every load below waits for it.
    drop(c);
    let c = Container::load(&exec_env.root, &id).unwrap();
    let t0 = std::time::Instant::now();
    let o = exec_options(&c, &["true"], Stdio::Piped);
    let p = spawner.exec(c, o).unwrap();
    p.wait().unwrap();
    let took = t0.elapsed();
    let with_init = children();
    for step in 0..12u32 {
        let s = spawner.clone();
        let c = Container::load(&exec_env.root, &id).unwrap();
        let o = exec_options(&c, &["sleep", "100"], Stdio::Piped);
        if let Ok(p) = with_worker_killed(took * step / 10, move || s.exec(c, o)) {
            p.signal(libc::SIGKILL).unwrap();
            p.wait().unwrap();
        }
        let left: Vec<String> = children()
            .iter()
            .filter(|p| !with_init.contains(p))
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default())
            .collect();
        assert!(
            left.is_empty(),
            "step {step}: left after a killed exec: {left:?}"
        );
        let c = Container::load(&exec_env.root, &id).unwrap();
        assert_eq!(
            c.processes().unwrap(),
            vec![init.pid()],
            "a process left in the container"
        );
    }
    println!("execs with their worker killed: nothing left");
    let c = Container::load(&exec_env.root, &id).unwrap();
    c.kill(libc::SIGKILL, false).unwrap();
    init.wait().unwrap();
    c.delete(true).unwrap();
    exec_env.assert_gone(&id);
}

/// Our children, from every thread's list.
fn children() -> Vec<i32> {
    testkit::children_of("self")
}

fn dumpable() -> i32 {
    // SAFETY: prctl(PR_GET_DUMPABLE) only reads a flag of this process.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }
}

fn oom_score_adj() -> String {
    std::fs::read_to_string("/proc/self/oom_score_adj").unwrap()
}

fn main() {
    let spawner = Arc::new(Spawner::start().expect("start the spawner"));
    let (dumpable_before, oom_before) = (dumpable(), oom_score_adj());

    let env = Env::new("spawn");
    env.args(&["cat"]);
    // The worker raises its own oom_score_adj for the container; the program's stays.
    env.edit(|c| c["process"]["oomScoreAdj"] = 500.into());
    let ids: Vec<String> = (0..CONTAINERS).map(|n| env.id(&n.to_string())).collect();
    let exec_env = Env::new("spawn-exec");
    exec_env.args(&["sleep", "100"]);
    let exec_id = exec_env.id("a");
    let bad_env = Env::new("spawn-bad");
    bad_env.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/mnt", "type": "bind", "source": "/no/such/source",
            "options": ["rbind"]
        }))
    });
    let bad_id = bad_env.id("a");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    runtime.block_on(many_containers_concurrently(&spawner, &env, ids.clone()));
    println!(
        "{CONTAINERS} containers created, fed, read, waited for and deleted concurrently in {:?}",
        started.elapsed()
    );
    runtime.block_on(execs_concurrently(&spawner, &exec_env, exec_id.clone()));
    println!("execs with their own pipes and statuses: ok");
    runtime.block_on(failed_create_leaves_nothing(&spawner, &bad_env, bad_id));
    println!("a failed create leaves nothing: ok");
    drop(runtime);
    let kill_env = Env::new("spawn-kill");
    kill_env.args(&["sleep", "100"]);
    killed_workers_leave_nothing(&spawner, &kill_env, &exec_env);

    for id in ids.iter().chain([&exec_id]) {
        env.assert_gone(id);
    }
    assert_eq!(
        dumpable(),
        dumpable_before,
        "the program's dumpable flag changed"
    );
    assert_eq!(
        oom_score_adj(),
        oom_before,
        "the program's oom_score_adj changed"
    );
    let spawner = Arc::into_inner(spawner).expect("no task holds the spawner any more");
    drop(spawner);
    assert_eq!(children(), Vec::<i32>::new(), "children left behind");
    println!("the program is as it was: ok");
}
