//! Terminals: the container's pty, made inside the container, and what the runtime does with
//! its master (send it to a console socket, or relay it to the user's terminal).

use crate::error::{Context, Error, Result};
use nix::sys::socket::{
    connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};
use oci_spec::runtime::Process;
use rustix::pty::OpenptFlags;
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

/// The terminal flags of a create, run or exec fit together, as runc requires: a console
/// socket only for a detached process with a terminal, a terminal in the background only
/// with a console socket, and one in the foreground only if our stdin is a terminal to relay.
///
/// With `in_process`, the caller (a program embedding the library) takes the master itself:
/// then only no console socket may be given as well.
pub(crate) fn check_flags(
    terminal: bool,
    detached: bool,
    socket: Option<&Path>,
    in_process: bool,
) -> Result<()> {
    if in_process {
        if socket.is_some() {
            return Err(Error::Invalid(
                "a console socket and an in-process console exclude each other".into(),
            ));
        }
        return Ok(());
    }
    if socket.is_some() && !(detached && terminal) {
        return Err(Error::Invalid(
            "cannot use console socket if runr will not detach or allocate tty".into(),
        ));
    }
    if terminal && detached && socket.is_none() {
        return Err(Error::Invalid(
            "cannot allocate tty if runr will detach without setting console socket".into(),
        ));
    }
    if terminal && !detached && !rustix::termios::isatty(std::io::stdin()) {
        return Err(Error::Invalid(
            "cannot allocate tty in the foreground: stdin is not a terminal to relay it to".into(),
        ));
    }
    Ok(())
}

/// Inside the container (after pivot_root, or after joining an existing container's mount
/// namespace): open a pty on the container's own devpts, make its slave our controlling
/// terminal and stdio (and, for the init, /dev/console), and return the master for the
/// runtime.
pub(crate) fn setup_in_container(process: &Process, is_console: bool) -> Result<OwnedFd> {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .ctx(|| "open /dev/ptmx in the container")?;
    rustix::pty::unlockpt(&master).ctx(|| "unlock the pty")?;
    let name = rustix::pty::ptsname(&master, Vec::new()).ctx(|| "get the pty's name")?;
    let name = name.to_string_lossy().into_owned();
    let slave = rustix::fs::open(
        name.as_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
    )
    .ctx(|| format!("open {name}"))?;
    // The size asked for; else that of the terminal runr was started on, if any (its stdin
    // is still ours), so the program sees the right size from its first instruction.
    let size = match process.console_size() {
        Some(size) => Some(rustix::termios::Winsize {
            ws_row: size.height() as u16,
            ws_col: size.width() as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None => rustix::termios::tcgetwinsize(std::io::stdin()).ok(),
    };
    if let Some(ws) = size {
        rustix::termios::tcsetwinsize(&slave, ws).ctx(|| "set the console size")?;
    }
    // The process's user must own its terminal.
    let user = process.user();
    rustix::fs::fchown(
        &slave,
        Some(rustix::fs::Uid::from_raw(user.uid())),
        Some(rustix::fs::Gid::from_raw(user.gid())),
    )
    .ctx(|| format!("chown {name} to {}:{}", user.uid(), user.gid()))?;
    if is_console {
        bind_console(&name)?;
    }
    rustix::process::ioctl_tiocsctty(&slave)
        .ctx(|| format!("make {name} the controlling terminal"))?;
    for target in 0..=2 {
        // SAFETY: replacing fds 0-2 is the point: the init owns no Rust handle to them, and
        // dup2 keeps them open (without close-on-exec) for the container's program.
        unsafe { nix::unistd::dup2_raw(&slave, target) }
            .map(std::mem::forget)
            .ctx(|| format!("dup {name} onto fd {target}"))?;
    }
    Ok(master)
}

/// /dev/console is the container's pty.
fn bind_console(pts: &str) -> Result<()> {
    let console = Path::new("/dev/console");
    if !console.exists() {
        std::fs::File::create(console).ctx(|| "create /dev/console")?;
    }
    nix::mount::mount(
        Some(pts),
        console,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind mount {pts} on /dev/console"))
}

/// Send the pty master to the engine's console socket (SCM_RIGHTS), as runc does.
pub(crate) fn send_to_socket(path: &Path, master: &OwnedFd) -> Result<()> {
    let sock = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ctx(|| "create a socket for the console")?;
    let addr = UnixAddr::new(path)
        .map_err(|e| Error::Invalid(format!("console socket {}: {e}", path.display())))?;
    connect(sock.as_raw_fd(), &addr)
        .ctx(|| format!("connect to console socket {}", path.display()))?;
    let fds = [master.as_fd().as_raw_fd()];
    let name = b"/dev/ptmx";
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(name)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| format!("send the pty master to console socket {}", path.display()))?;
    Ok(())
}
