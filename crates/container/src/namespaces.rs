//! Which namespaces a container gets and how: created by the clone flags, joined by path in
//! the child, or (pid and time, which only affect children) arranged by the parent around
//! the clone.

use crate::error::{Context, Error, Result};
use crate::sys::Forked;
use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxNamespaceType};
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The namespace work of one container, decided before the clone.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// CLONE_NEW* flags for clone3.
    pub clone_flags: CloneFlags,
    /// Namespaces the child joins by path, user first, mount last.
    pub join: Vec<(CloneFlags, PathBuf)>,
    /// The child unshares a new cgroup namespace once it is in its cgroup.
    pub new_cgroup: bool,
    /// The parent joins this pid namespace for its children before the clone.
    pub join_pid: Option<PathBuf>,
    /// The parent unshares a time namespace and writes these offsets before the clone.
    pub new_time: Option<String>,
    pub new_user: bool,
    pub join_user: bool,
    /// The container has a new pid namespace of its own, which ends every process in it when
    /// the init exits. (A joined one outlives the init: what else of the container runs in
    /// it goes on.)
    pub own_pid: bool,
    /// The container has a mount namespace (new or joined). Without one it shares the
    /// runtime's, and its mounts are made there, under its rootfs.
    pub own_mount: bool,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            clone_flags: CloneFlags::empty(),
            join: Vec::new(),
            new_cgroup: false,
            join_pid: None,
            new_time: None,
            new_user: false,
            join_user: false,
            own_pid: false,
            own_mount: false,
        }
    }
}

pub(crate) fn flag_of(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

impl Plan {
    pub(crate) fn new(linux: &Linux) -> Result<Plan> {
        let mut plan = Plan::default();
        let mut join = Vec::new();
        for ns in linux.namespaces().iter().flatten() {
            let t = ns.typ();
            match (t, ns.path()) {
                (LinuxNamespaceType::Pid, Some(p)) => plan.join_pid = Some(p.clone()),
                (LinuxNamespaceType::Time, Some(p)) => {
                    return Err(Error::Config(format!(
                        "joining a time namespace ({}) is not supported; time namespaces can only be new",
                        p.display()
                    )))
                }
                (LinuxNamespaceType::Time, None) => {
                    plan.new_time = Some(time_offsets(linux));
                }
                (LinuxNamespaceType::Cgroup, None) => plan.new_cgroup = true,
                (_, Some(p)) => join.push((flag_of(t), p.clone())),
                (_, None) => plan.clone_flags |= flag_of(t),
            }
            match t {
                LinuxNamespaceType::User => {
                    plan.new_user = ns.path().is_none();
                    plan.join_user = ns.path().is_some();
                }
                LinuxNamespaceType::Pid => plan.own_pid = ns.path().is_none(),
                LinuxNamespaceType::Mount => plan.own_mount = true,
                _ => {}
            }
        }
        // setns order: the user namespace first (it grants the rights to join the others),
        // the mount namespace last (it changes our root).
        join.sort_by_key(|(f, _)| match *f {
            CloneFlags::CLONE_NEWUSER => 0,
            CloneFlags::CLONE_NEWNS => 2,
            _ => 1,
        });
        plan.join = join;
        if plan.new_user && !plan.join.is_empty() {
            return Err(Error::Config(
                "joining namespaces by path together with a new user namespace is not supported: \
                 the joined namespaces would not be owned by it"
                    .into(),
            ));
        }
        if plan.join_user && plan.clone_flags.contains(CloneFlags::CLONE_NEWPID) {
            return Err(Error::Config(
                "a new pid namespace inside a user namespace joined by path is not supported yet"
                    .into(),
            ));
        }
        if plan.join_user {
            // The child joins the user namespace first, then creates the rest inside it.
            plan.clone_flags.remove(CloneFlags::CLONE_NEWPID);
        }
        Ok(plan)
    }

    /// Namespaces the child must unshare itself after joining a user namespace by path.
    pub(crate) fn unshare_in_child(&self) -> CloneFlags {
        if self.join_user {
            self.clone_flags
        } else {
            CloneFlags::empty()
        }
    }

    /// The container's processes will be in our own user namespace: none is made, and a
    /// joined one is ours.
    pub(crate) fn shares_our_user_ns(&self) -> Result<bool> {
        if self.new_user {
            return Ok(false);
        }
        let Some((_, path)) = self
            .join
            .iter()
            .find(|(f, _)| *f == CloneFlags::CLONE_NEWUSER)
        else {
            return Ok(true);
        };
        let id = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| (m.dev(), m.ino()))
                .ctx(|| format!("stat {}", p.display()))
        };
        Ok(id(path)? == id(Path::new("/proc/self/ns/user"))?)
    }

    /// The container has a cgroup namespace of its own (new or joined).
    pub(crate) fn has_cgroup_ns(&self) -> bool {
        self.new_cgroup
            || self
                .join
                .iter()
                .any(|(f, _)| *f == CloneFlags::CLONE_NEWCGROUP)
    }

    /// Flags for clone3 itself.
    pub(crate) fn flags_for_clone(&self) -> CloneFlags {
        if self.join_user {
            CloneFlags::empty()
        } else {
            self.clone_flags
        }
    }
}

/// Content for /proc/self/timens_offsets.
fn time_offsets(linux: &Linux) -> String {
    let mut out = String::new();
    for (clock, off) in linux.time_offsets().iter().flatten() {
        out.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    out
}

/// Parent side, before the clone: point our children at the right pid and time namespaces.
/// Returns what restores ours afterwards.
pub(crate) fn prepare_parent(plan: &Plan) -> Result<ParentRestore> {
    let mut restore = ParentRestore::default();
    if let Some(path) = &plan.join_pid {
        let target = File::open(path).ctx(|| format!("open pid namespace {}", path.display()))?;
        restore.pid = Some(pid_ns_for_children(&target, &path.display().to_string())?);
    }
    if let Some(offsets) = &plan.new_time {
        let own = File::open("/proc/self/ns/time").ctx(|| "open /proc/self/ns/time")?;
        nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            .ctx(|| "unshare a time namespace")?;
        restore.time = Some(own);
        if !offsets.is_empty() {
            crate::sys::write_file("/proc/self/timens_offsets", offsets)?;
        }
    }
    Ok(restore)
}

/// Parent side of an exec: our children are born in the pid namespace of the process
/// behind `pidfd`. Returns what restores ours afterwards.
pub(crate) fn join_pid_for_children(pidfd: &impl AsFd) -> Result<ParentRestore> {
    Ok(ParentRestore {
        pid: Some(pid_ns_for_children(pidfd, "the container's init")?),
        time: None,
    })
}

/// The same for an unprivileged caller (rootless) whose container has a user namespace:
/// only from inside it may we enter the pid namespace it owns, so we join it first, for
/// good. Neither can be undone without privileges; this process starts no other children,
/// and its credentials outside the namespace are unchanged.
pub(crate) fn join_user_and_pid_for_children(pidfd: &impl AsFd) -> Result<ParentRestore> {
    nix::sched::setns(pidfd, CloneFlags::CLONE_NEWUSER)
        .ctx(|| "setns to the user namespace of the container's init")?;
    nix::sched::setns(pidfd, CloneFlags::CLONE_NEWPID)
        .ctx(|| "setns to the pid namespace of the container's init")?;
    Ok(ParentRestore::default())
}

/// Point our children at the pid namespace `target` (a namespace file or a pidfd of `what`);
/// returns our own, to go back to.
fn pid_ns_for_children(target: &impl AsFd, what: &str) -> Result<File> {
    let own = File::open("/proc/self/ns/pid").ctx(|| "open /proc/self/ns/pid")?;
    nix::sched::setns(target, CloneFlags::CLONE_NEWPID)
        .ctx(|| format!("setns to the pid namespace of {what}"))?;
    Ok(own)
}

/// Our own pid and time namespaces for children, to return to after the clone.
#[derive(Default)]
pub(crate) struct ParentRestore {
    pid: Option<File>,
    time: Option<File>,
}

impl ParentRestore {
    /// Right after a clone: the parent returns to its own namespaces (killing the new child
    /// if it cannot, so nothing is left half-made); the child stays where it was born.
    pub(crate) fn after_clone(self, forked: Result<Forked>) -> Result<Forked> {
        match forked {
            Ok(Forked::Child) => Ok(Forked::Child),
            Ok(Forked::Parent { pid }) => match self.restore() {
                Ok(()) => Ok(Forked::Parent { pid }),
                Err(e) => {
                    crate::process::children::kill_and_reap(pid);
                    Err(e)
                }
            },
            Err(e) => {
                // The clone's failure is what the user needs to see; ours is secondary.
                if let Err(r) = self.restore() {
                    tracing::warn!("after a failed clone: {r}");
                }
                Err(e)
            }
        }
    }

    fn restore(self) -> Result<()> {
        if let Some(f) = self.pid {
            nix::sched::setns(f.as_fd(), CloneFlags::CLONE_NEWPID)
                .ctx(|| "setns back to our own pid namespace")?;
        }
        if let Some(f) = self.time {
            nix::sched::setns(f.as_fd(), CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
                .ctx(|| "setns back to our own time namespace")?;
        }
        Ok(())
    }
}

/// Child side: join the namespaces given by path.
pub(crate) fn join(plan: &Plan) -> Result<()> {
    for (flag, path) in &plan.join {
        let f = File::open(path).ctx(|| format!("open namespace {}", path.display()))?;
        nix::sched::setns(f.as_fd(), *flag)
            .ctx(|| format!("setns to {} ({flag:?})", path.display()))?;
    }
    Ok(())
}

/// Child side of an exec: join the namespaces `flags` of the process `pid` (behind
/// `pidfd`), all at once through the pidfd; on a kernel without that (before 5.8), one by one
/// through /proc, the user namespace first and the mount namespace last.
pub(crate) fn join_process(pidfd: &impl AsFd, pid: i32, flags: CloneFlags) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    match nix::sched::setns(pidfd, flags) {
        Ok(()) => return Ok(()),
        Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => {
            return Err(e).ctx(|| {
                format!("setns to the namespaces ({flags:?}) of the container's init (pid {pid})")
            })
        }
    }
    const ORDER: [(CloneFlags, &str); 8] = [
        (CloneFlags::CLONE_NEWUSER, "user"),
        (CloneFlags::CLONE_NEWIPC, "ipc"),
        (CloneFlags::CLONE_NEWUTS, "uts"),
        (CloneFlags::CLONE_NEWNET, "net"),
        (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
        (CloneFlags::from_bits_retain(libc::CLONE_NEWTIME), "time"),
        (CloneFlags::CLONE_NEWPID, "pid"),
        (CloneFlags::CLONE_NEWNS, "mnt"),
    ];
    // Open them all first: after the mount namespace, /proc may be another one.
    let mut files = Vec::new();
    for (flag, name) in ORDER.iter().filter(|(f, _)| flags.contains(*f)) {
        let path = format!("/proc/{pid}/ns/{name}");
        files.push((
            *flag,
            File::open(&path).ctx(|| format!("open {path}"))?,
            path,
        ));
    }
    for (flag, f, path) in files {
        nix::sched::setns(f.as_fd(), flag).ctx(|| format!("setns to {path}"))?;
    }
    Ok(())
}

/// Child side, right after entering a user namespace: until now we were the unmapped host
/// root; become the namespace's root.
pub(crate) fn become_root_in_user_ns() -> Result<()> {
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid)
        .ctx(|| "setresgid to root of the user namespace")?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid)
        .ctx(|| "setresuid to root of the user namespace")
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder};
    use std::path::Path;

    fn ns(t: LinuxNamespaceType, path: Option<&str>) -> oci_spec::runtime::LinuxNamespace {
        let mut b = LinuxNamespaceBuilder::default().typ(t);
        if let Some(p) = path {
            b = b.path(p);
        }
        b.build().unwrap()
    }

    #[test]
    fn new_namespaces_go_to_clone_and_joined_ones_are_ordered() {
        let linux = LinuxBuilder::default()
            .namespaces(vec![
                ns(LinuxNamespaceType::Mount, Some("/proc/1/ns/mnt")),
                ns(LinuxNamespaceType::Network, Some("/proc/1/ns/net")),
                ns(LinuxNamespaceType::Pid, None),
                ns(LinuxNamespaceType::Cgroup, None),
                ns(LinuxNamespaceType::Uts, None),
            ])
            .build()
            .unwrap();
        let plan = Plan::new(&linux).unwrap();
        assert_eq!(
            plan.flags_for_clone(),
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS
        );
        assert!(plan.new_cgroup);
        assert_eq!(plan.join[0].0, CloneFlags::CLONE_NEWNET);
        assert_eq!(plan.join[1].0, CloneFlags::CLONE_NEWNS);
        assert!(plan.own_pid);
    }

    #[test]
    fn joined_pid_namespace_is_the_parents_job() {
        let linux = LinuxBuilder::default()
            .namespaces(vec![ns(LinuxNamespaceType::Pid, Some("/proc/9/ns/pid"))])
            .build()
            .unwrap();
        let plan = Plan::new(&linux).unwrap();
        assert_eq!(plan.join_pid.as_deref(), Some(Path::new("/proc/9/ns/pid")));
        assert!(plan.join.is_empty());
        assert!(
            !plan.own_pid,
            "the init's exit does not end a joined namespace"
        );
    }

    #[test]
    fn new_user_namespace_with_joined_ones_is_refused() {
        let linux = LinuxBuilder::default()
            .namespaces(vec![
                ns(LinuxNamespaceType::User, None),
                ns(LinuxNamespaceType::Network, Some("/proc/1/ns/net")),
            ])
            .build()
            .unwrap();
        assert!(Plan::new(&linux).is_err());
    }
}

/// Parent side, before the init goes on: move each of `linux.netDevices` (host name → new
/// name) into the container's network namespace, renamed on the way, by one netlink
/// RTM_NEWLINK each with IFLA_NET_NS_FD (and IFLA_IFNAME). A physical device goes back to
/// the host when the namespace ends; a virtual one ends with it.
pub(crate) fn move_net_devices(plan: &Plan, linux: &Linux, init_pid: i32) -> Result<()> {
    let Some(devices) = linux.net_devices().as_ref().filter(|d| !d.is_empty()) else {
        return Ok(());
    };
    let ns_path =
        match plan
            .join
            .iter()
            .find(|(f, _)| *f == CloneFlags::CLONE_NEWNET)
        {
            Some((_, path)) => path.clone(),
            None if plan.flags_for_clone().contains(CloneFlags::CLONE_NEWNET) => {
                PathBuf::from(format!("/proc/{init_pid}/ns/net"))
            }
            None => return Err(Error::Config(
                "linux.netDevices: the container's network namespace is made after the runtime \
                 could move devices into it (a user namespace joined by path)"
                    .into(),
            )),
        };
    let ns = File::open(&ns_path).ctx(|| {
        format!(
            "open the container's network namespace {}",
            ns_path.display()
        )
    })?;
    let sock = netlink::Socket::open()?;
    for (host, dev) in devices {
        let name = dev.name().as_deref().unwrap_or(host);
        sock.move_link(host, &ns, name).ctx(|| {
            format!("linux.netDevices: move {host:?} into the container's network namespace as {name:?}")
        })?;
    }
    Ok(())
}

/// Just enough rtnetlink to move a link to another network namespace.
mod netlink {
    use crate::error::{Context, Result};
    use std::fs::File;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    const RTM_NEWLINK: u16 = 16;
    const NLMSG_ERROR: u16 = 2;
    const IFLA_IFNAME: u16 = 3;
    const IFLA_NET_NS_FD: u16 = 28;

    pub(super) struct Socket(OwnedFd);

    fn push_attr(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
        let len = 4 + data.len();
        buf.extend_from_slice(&(len as u16).to_ne_bytes());
        buf.extend_from_slice(&typ.to_ne_bytes());
        buf.extend_from_slice(data);
        buf.resize(buf.len().next_multiple_of(4), 0);
    }

    impl Socket {
        pub(super) fn open() -> Result<Socket> {
            // SAFETY: plain socket(2); the descriptor is owned below.
            let fd = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::NETLINK_ROUTE,
                )
            };
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).ctx(|| "open a NETLINK_ROUTE socket");
            }
            // SAFETY: a new descriptor that nothing else owns.
            Ok(Socket(unsafe { OwnedFd::from_raw_fd(fd) }))
        }

        /// RTM_NEWLINK on the link `host`: into the namespace `ns`, named `name` there.
        pub(super) fn move_link(&self, host: &str, ns: &File, name: &str) -> std::io::Result<()> {
            let cname = std::ffi::CString::new(host)
                .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: a NUL-terminated name.
            let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
            if index == 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut msg = vec![0u8; 16]; // nlmsghdr, filled in last
                                         // ifinfomsg: family, pad, type, index, flags, change.
            msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
            msg.extend_from_slice(&(index as i32).to_ne_bytes());
            msg.extend_from_slice(&0u32.to_ne_bytes());
            msg.extend_from_slice(&0u32.to_ne_bytes());
            push_attr(
                &mut msg,
                IFLA_NET_NS_FD,
                &(ns.as_raw_fd() as u32).to_ne_bytes(),
            );
            let mut ifname = name.as_bytes().to_vec();
            ifname.push(0);
            push_attr(&mut msg, IFLA_IFNAME, &ifname);
            let len = msg.len() as u32;
            let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
            msg[0..4].copy_from_slice(&len.to_ne_bytes());
            msg[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
            msg[6..8].copy_from_slice(&flags.to_ne_bytes());
            msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
            nix::unistd::write(&self.0, &msg)?;
            let mut reply = [0u8; 4096];
            let n = nix::unistd::read(&self.0, &mut reply)?;
            // The ack: an nlmsghdr of type NLMSG_ERROR, then the (negated) errno, 0 on success.
            let typ = (n >= 20).then(|| u16::from_ne_bytes([reply[4], reply[5]]));
            if typ != Some(NLMSG_ERROR) {
                return Err(std::io::Error::other("unexpected netlink reply"));
            }
            let err = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
            if err != 0 {
                return Err(std::io::Error::from_raw_os_error(-err));
            }
            Ok(())
        }
    }
}
