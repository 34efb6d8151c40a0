//! The program a container process becomes, opened so that nothing in the container can
//! make that exec land on a file outside it, the runr binary above all (CVE-2019-5736).
//!
//! Three rules do it:
//! - every path (program, `#!` interpreter, working directory) is resolved with
//!   RESOLVE_NO_MAGICLINKS, so `/proc/self/exe` or `/proc/self/fd/N` cannot be followed;
//! - the exec is `execveat(fd, "", AT_EMPTY_PATH)` on that close-on-exec descriptor, so the
//!   file checked is the file run, and the kernel refuses to run it as a script itself;
//! - `#!` scripts are therefore run by us as the kernel would: the interpreter opened under
//!   the same rules and given `[interpreter, optional-arg, script, args...]`.

use crate::error::{Context, Error, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How many `#!` interpreters may follow one another (the kernel allows as many).
const MAX_INTERPRETERS: usize = 4;
/// The kernel reads this much of a script to find its `#!` line.
const SCRIPT_HEADER: usize = 256;

/// A program ready to exec: the open file, and the argv it gets.
#[derive(Debug)]
pub(crate) struct Program {
    fd: OwnedFd,
    /// What the program was looked up as, for messages and for the fallback exec.
    path: CString,
    argv: Vec<CString>,
}

impl Program {
    /// Open `path` (found by [`find_executable`]) to be run with `argv`, following `#!`
    /// lines to the interpreter that will really run.
    pub(crate) fn open(path: &Path, argv: Vec<CString>) -> Result<Program> {
        let mut path = cstring(path.as_os_str().as_bytes())?;
        let mut argv = argv;
        for _ in 0..=MAX_INTERPRETERS {
            let fd = open_no_magiclinks(&path, OFlags::RDONLY)
                .or_else(|e| match e {
                    // Execute-only: it can still be a binary, but not a script we could read.
                    rustix::io::Errno::ACCESS => open_no_magiclinks(&path, OFlags::PATH),
                    e => Err(e),
                })
                .map_err(|e| open_error(&path, e))?;
            let Some((interpreter, arg)) = shebang(&fd, &path)? else {
                return Ok(Program { fd, path, argv });
            };
            // As the kernel builds it: the script's own argv[0] gives way to its path.
            let mut next = vec![interpreter.clone()];
            next.extend(arg);
            next.push(path);
            next.extend(argv.into_iter().skip(1));
            argv = next;
            path = interpreter;
        }
        Err(Error::Config(format!(
            "exec {:?}: more than {MAX_INTERPRETERS} #! interpreters in a row",
            path
        )))
    }

    /// Exec; returns only on failure.
    pub(crate) fn exec(&self, env: &[CString]) -> Error {
        let e = nix::unistd::execveat(
            self.fd.as_fd(),
            c"",
            &self.argv,
            env,
            nix::fcntl::AtFlags::AT_EMPTY_PATH,
        )
        .unwrap_err();
        // A kernel before 3.19, or a seccomp profile that denies execveat (with any errno),
        // leaves only execve: of the checked descriptor through /proc, so that nothing
        // swapped in at the path since is run; by path only where /proc is missing.
        let e = if !execveat_reaches_kernel() {
            let pinned = CString::new(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
                .expect("no NUL in a number");
            match nix::unistd::execve(&pinned, &self.argv, env).unwrap_err() {
                nix::errno::Errno::ENOENT => {
                    nix::unistd::execve(&self.path, &self.argv, env).unwrap_err()
                }
                e => e,
            }
        } else {
            e
        };
        Error::Os {
            what: format!("exec {:?}", self.path),
            source: std::io::Error::from_raw_os_error(e as i32),
        }
    }
}

/// Whether execveat gets to the kernel: with a null path it answers EFAULT, a seccomp
/// filter (or a kernel without it) something else.
fn execveat_reaches_kernel() -> bool {
    // SAFETY: the kernel fails on the null path before it looks at anything else.
    let r = unsafe {
        libc::syscall(
            libc::SYS_execveat,
            libc::AT_FDCWD,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<*const libc::c_char>(),
            std::ptr::null::<*const libc::c_char>(),
            0,
        )
    };
    r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// Change to the process's working directory, refusing magic links on the way: a
/// descriptor leaked into the container must not become a way out of it (CVE-2024-21626).
pub(crate) fn chdir(cwd: &Path) -> Result<()> {
    let what = || format!("chdir to process.cwd {}", cwd.display());
    let c = cstring(cwd.as_os_str().as_bytes())?;
    let fd = open_no_magiclinks(&c, OFlags::PATH | OFlags::DIRECTORY).ctx(what)?;
    rustix::process::fchdir(&fd).ctx(what)
}

fn open_no_magiclinks(path: &CStr, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    match rustix::fs::openat2(
        rustix::fs::CWD,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_MAGICLINKS,
    ) {
        // Before Linux 5.6 there is no openat2, and a seccomp profile may deny it with any
        // errno (the filter is loaded before the program is opened when no_new_privs is
        // off): the descriptor rules still hold.
        // Without RESOLVE_NO_MAGICLINKS, the one file such a link must never reach is
        // checked by identity: runr's own binary (CVE-2019-5736).
        Err(e) if e != rustix::io::Errno::LOOP && !openat2_reaches_kernel() => {
            let fd = rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty())?;
            match is_own_binary(&fd) {
                true => Err(rustix::io::Errno::LOOP),
                false => Ok(fd),
            }
        }
        r => r,
    }
}

/// Whether `fd` is the file this process runs from. Plain fstat (no statx): an old seccomp
/// profile may deny the newer calls.
fn is_own_binary(fd: &OwnedFd) -> bool {
    let id = |fd: i32| {
        // SAFETY: all-zero bytes are a valid libc::stat (integers only).
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes into the stat we own; `fd` is open for the call. The raw
        // fstat(2): glibc's fstat is newfstatat, which an old profile may not name.
        (unsafe { libc::syscall(libc::SYS_fstat, fd, &mut st) } == 0)
            .then_some((st.st_dev, st.st_ino))
    };
    let Ok(exe) = rustix::fs::open(
        "/proc/self/exe",
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        // No /proc: then no magic link of it can have led anywhere either.
        return false;
    };
    match (id(fd.as_raw_fd()), id(exe.as_raw_fd())) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Whether openat2 gets to the kernel: with a zero-sized `how` the kernel answers EINVAL,
/// a seccomp filter (or a kernel without it) something else.
fn openat2_reaches_kernel() -> bool {
    // SAFETY: with size 0 the kernel reads neither the path nor `how`; nothing is opened.
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0usize,
        )
    };
    r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
}

fn open_error(path: &CStr, e: rustix::io::Errno) -> Error {
    let why = if e == rustix::io::Errno::LOOP {
        " (a path through /proc magic links such as /proc/self/exe is refused)"
    } else {
        ""
    };
    Error::Os {
        what: format!("exec {path:?}: open{why}"),
        source: e.into(),
    }
}

/// The interpreter and optional argument of a `#!` file, parsed as the kernel does: up to
/// [`SCRIPT_HEADER`] bytes, blanks around the interpreter, the rest of the line (trimmed)
/// as one argument.
fn shebang(fd: &OwnedFd, path: &CStr) -> Result<Option<(CString, Option<CString>)>> {
    let mut buf = [0u8; SCRIPT_HEADER];
    let n = match rustix::io::pread(fd, &mut buf, 0) {
        Ok(n) => n,
        // An O_PATH (execute-only) descriptor: the kernel will say what it is.
        Err(rustix::io::Errno::BADF) => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("read the start of {path:?}")),
    };
    let parsed = parse_shebang(&buf[..n])
        .map_err(|why| Error::Config(format!("exec {path:?}: bad #! line: {why}")))?;
    let Some((interpreter, arg)) = parsed else {
        return Ok(None);
    };
    // The kernel also refuses a script on a noexec mount, though its interpreter would run.
    let vfs = rustix::fs::fstatvfs(fd).ctx(|| format!("statvfs {path:?}"))?;
    if vfs.f_flag.contains(rustix::fs::StatVfsMountFlags::NOEXEC) {
        return Err(Error::Os {
            what: format!("exec {path:?}: on a noexec mount"),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        });
    }
    Ok(Some((cstring(interpreter)?, arg.map(cstring).transpose()?)))
}

type Shebang<'a> = Option<(&'a [u8], Option<&'a [u8]>)>;

fn parse_shebang(head: &[u8]) -> std::result::Result<Shebang<'_>, &'static str> {
    let Some(rest) = head.strip_prefix(b"#!") else {
        return Ok(None);
    };
    let line_end = rest.iter().position(|&b| b == b'\n');
    let line = &rest[..line_end.unwrap_or(rest.len())];
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = line.iter().position(|b| !blank(b)).unwrap_or(line.len());
    let line = &line[start..];
    let name_len = line.iter().position(blank).unwrap_or(line.len());
    if name_len == 0 {
        return Err("no interpreter");
    }
    if line_end.is_none() && name_len == line.len() && head.len() == SCRIPT_HEADER {
        // The interpreter's name runs past what the kernel reads.
        return Err("interpreter name too long");
    }
    let (name, rest) = line.split_at(name_len);
    let arg = rest.trim_ascii();
    Ok(Some((name, (!arg.is_empty()).then_some(arg))))
}

fn cstring(b: &[u8]) -> Result<CString> {
    CString::new(b).map_err(|_| {
        Error::Config(format!(
            "{:?} contains a NUL byte",
            String::from_utf8_lossy(b)
        ))
    })
}

/// Look `name` up the way execvp would, in the container, with the container's PATH.
pub(crate) fn find_executable(name: &str, path_var: &str) -> Result<PathBuf> {
    let executable =
        |p: &Path| p.is_file() && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok();
    if name.contains('/') {
        let p = PathBuf::from(name);
        return match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => Err(Error::Config(format!("exec: {name:?}: is a directory"))),
            Ok(_) if !executable(&p) => {
                Err(Error::Config(format!("exec: {name:?}: permission denied")))
            }
            Ok(_) => Ok(p),
            Err(e) => Err(Error::Config(format!("exec: {name:?}: stat {name}: {e}"))),
        };
    }
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(Error::Config(format!(
        "exec: {name:?}: executable file not found in $PATH"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_parse_as_the_kernel_reads_them() {
        let p = parse_shebang;
        assert_eq!(p(b"\x7fELF...").unwrap(), None);
        assert_eq!(
            p(b"#!/bin/sh\necho").unwrap(),
            Some((&b"/bin/sh"[..], None))
        );
        assert_eq!(
            p(b"#! \t/usr/bin/env  python3 -u \nx").unwrap(),
            Some((&b"/usr/bin/env"[..], Some(&b"python3 -u"[..])))
        );
        assert_eq!(p(b"#!/bin/sh").unwrap(), Some((&b"/bin/sh"[..], None)));
        assert!(p(b"#!\n").is_err());
        assert!(p(b"#!   \n").is_err());
        let mut long = b"#!/".to_vec();
        long.resize(SCRIPT_HEADER, b'a');
        assert!(p(&long).is_err());
        // A long argument is only cut, as the kernel does.
        let mut long_arg = b"#!/bin/sh -".to_vec();
        long_arg.resize(SCRIPT_HEADER, b'x');
        assert_eq!(p(&long_arg).unwrap().unwrap().0, b"/bin/sh");
    }

    #[test]
    fn lookup_follows_path() {
        assert_eq!(
            find_executable("sh", "/nonexistent:/bin").unwrap(),
            Path::new("/bin/sh")
        );
        let e = find_executable("no-such-program-xyz", "/bin")
            .unwrap_err()
            .to_string();
        assert!(e.contains("executable file not found in $PATH"), "{e}");
        let e = find_executable("/no/such", "/bin").unwrap_err().to_string();
        assert!(e.contains("No such file"), "{e}");
        assert!(find_executable("/bin", "")
            .unwrap_err()
            .to_string()
            .contains("is a directory"));
    }

    #[test]
    fn scripts_run_through_their_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh -e\necho hi\n").unwrap();
        let argv = vec![c"s".to_owned(), c"a".to_owned()];
        let p = Program::open(&script, argv).unwrap();
        let want: Vec<CString> = ["/bin/sh", "-e", script.to_str().unwrap(), "a"]
            .iter()
            .map(|s| CString::new(*s).unwrap())
            .collect();
        assert_eq!(p.argv, want);
        assert_eq!(p.path.as_bytes(), b"/bin/sh");

        std::os::unix::fs::symlink("/proc/self/exe", dir.path().join("exe")).unwrap();
        let e = Program::open(&dir.path().join("exe"), vec![]).unwrap_err();
        assert!(e.to_string().contains("magic links"), "{e}");
        std::fs::write(&script, "#!/proc/self/exe\n").unwrap();
        let e = Program::open(&script, vec![]).unwrap_err();
        assert!(e.to_string().contains("magic links"), "{e}");
    }
}
