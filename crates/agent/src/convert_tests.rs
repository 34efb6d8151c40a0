//! Tests of convert.rs: a spec as Kata's shim sends it, each spelling Kata's clients use,
//! proto3's zeros, every error naming its field, and the stats.

use super::*;
use crate::protocols::oci as pb;
use oci_spec::runtime::{
    Capability, LinuxDeviceType, LinuxNamespaceType, LinuxSeccompAction, LinuxSeccompOperator,
    PosixRlimitType,
};
use std::collections::HashSet;
use std::path::PathBuf;

fn strings(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> pb::Mount {
    pb::Mount {
        destination: dest.into(),
        type_: typ.into(),
        source: source.into(),
        options: strings(options),
        ..Default::default()
    }
}

fn ns(typ: &str, path: &str) -> pb::LinuxNamespace {
    pb::LinuxNamespace {
        Type: typ.into(),
        Path: path.into(),
        ..Default::default()
    }
}

fn dev_rule(allow: bool, typ: &str, major: i64, minor: i64, access: &str) -> pb::LinuxDeviceCgroup {
    pb::LinuxDeviceCgroup {
        Allow: allow,
        Type: typ.into(),
        Major: major,
        Minor: minor,
        Access: access.into(),
        ..Default::default()
    }
}

const CID: &str = "0123456789abcdef";

/// The process of a container as Kata's shim sends it for a Kubernetes pod's container.
fn shim_process() -> pb::Process {
    let caps = strings(&[
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]);
    pb::Process {
        Terminal: false,
        User: Some(pb::User {
            UID: 1000,
            GID: 1000,
            AdditionalGids: vec![1000, 10],
            ..Default::default()
        })
        .into(),
        Args: strings(&["/bin/sh", "-c", "echo hello; sleep 1"]),
        Env: strings(&[
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME=busybox-pod",
            "KUBERNETES_SERVICE_HOST=10.96.0.1",
        ]),
        Cwd: "/".into(),
        Capabilities: Some(pb::LinuxCapabilities {
            Bounding: caps.clone(),
            Effective: caps.clone(),
            Permitted: caps,
            ..Default::default()
        })
        .into(),
        Rlimits: vec![pb::POSIXRlimit {
            Type: "RLIMIT_NOFILE".into(),
            Hard: 1048576,
            Soft: 1048576,
            ..Default::default()
        }],
        NoNewPrivileges: false,
        OOMScoreAdj: 1000,
        ..Default::default()
    }
}

/// A whole container spec as Kata's shim sends it in CreateContainer: the rootfs and volumes
/// under the shared directory, the pod's namespaces (network without a path: the VM's),
/// the pod's cgroup, containerd's default seccomp profile cut short.
fn shim_spec() -> pb::Spec {
    let shared = format!("/run/kata-containers/shared/containers/{CID}");
    pb::Spec {
        Version: "1.1.0".into(),
        Process: Some(shim_process()).into(),
        Root: Some(pb::Root {
            Path: format!("/run/kata-containers/{CID}/rootfs"),
            Readonly: false,
            ..Default::default()
        })
        .into(),
        Hostname: "busybox-pod".into(),
        Mounts: vec![
            mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
            mount(
                "/dev",
                "tmpfs",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            ),
            mount(
                "/dev/pts",
                "devpts",
                "devpts",
                &[
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            ),
            mount(
                "/dev/mqueue",
                "mqueue",
                "mqueue",
                &["nosuid", "noexec", "nodev"],
            ),
            mount(
                "/sys",
                "sysfs",
                "sysfs",
                &["nosuid", "noexec", "nodev", "ro"],
            ),
            mount(
                "/sys/fs/cgroup",
                "cgroup",
                "cgroup",
                &["nosuid", "noexec", "nodev", "relatime", "ro"],
            ),
            mount(
                "/etc/hosts",
                "bind",
                &format!("{shared}-hosts"),
                &["rbind", "rprivate", "rw"],
            ),
            mount(
                "/dev/shm",
                "bind",
                "/run/kata-containers/sandbox/shm",
                &["rbind"],
            ),
        ],
        Hooks: Some(pb::Hooks::default()).into(),
        Annotations: [
            ("io.kubernetes.cri.container-type", "container"),
            ("io.kubernetes.cri.sandbox-id", "fedcba9876543210"),
            ("io.katacontainers.pkg.oci.container_type", "pod_container"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        Linux: Some(pb::Linux {
            Resources: Some(pb::LinuxResources {
                Devices: vec![
                    dev_rule(false, "", 0, 0, "rwm"),
                    dev_rule(true, "c", 1, 3, "rwm"),
                    dev_rule(true, "c", 136, -1, "rwm"),
                    dev_rule(true, "b", -1, -1, "m"),
                ],
                Memory: Some(pb::LinuxMemory {
                    Limit: 256 << 20,
                    ..Default::default()
                })
                .into(),
                CPU: Some(pb::LinuxCPU {
                    Shares: 512,
                    Quota: 50_000,
                    Period: 100_000,
                    ..Default::default()
                })
                .into(),
                Pids: Some(pb::LinuxPids {
                    Limit: 0,
                    ..Default::default()
                })
                .into(),
                HugepageLimits: vec![pb::LinuxHugepageLimit {
                    Pagesize: "2MB".into(),
                    Limit: 0,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .into(),
            CgroupsPath: format!("/kubepods/burstable/pod1234/{CID}"),
            Namespaces: vec![
                ns("ipc", ""),
                ns("uts", ""),
                ns("mount", ""),
                ns("network", ""),
                ns("pid", "/proc/42/ns/pid"),
            ],
            Seccomp: Some(pb::LinuxSeccomp {
                DefaultAction: "SCMP_ACT_ERRNO".into(),
                Architectures: strings(&["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
                Syscalls: vec![
                    pb::LinuxSyscall {
                        Names: strings(&["read", "write", "exit_group"]),
                        Action: "SCMP_ACT_ALLOW".into(),
                        ..Default::default()
                    },
                    pb::LinuxSyscall {
                        Names: strings(&["personality"]),
                        Action: "SCMP_ACT_ALLOW".into(),
                        Args: vec![pb::LinuxSeccompArg {
                            Index: 0,
                            Value: 0xffffffff,
                            Op: "SCMP_CMP_EQ".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                    pb::LinuxSyscall {
                        Names: strings(&["mount"]),
                        Action: "SCMP_ACT_ERRNO".into(),
                        ErrnoRet: Some(pb::linux_syscall::ErrnoRet::Errnoret(1)),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            })
            .into(),
            MaskedPaths: strings(&["/proc/acpi", "/proc/kcore", "/sys/firmware"]),
            ReadonlyPaths: strings(&["/proc/bus", "/proc/sys"]),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

fn caps_set(l: &[Capability]) -> HashSet<Capability> {
    l.iter().copied().collect()
}

#[test]
fn a_spec_as_the_kata_shim_sends_it() {
    let s = spec(&shim_spec()).unwrap();
    assert_eq!(s.version(), "1.1.0");
    assert_eq!(s.hostname().as_deref(), Some("busybox-pod"));

    let root = s.root().as_ref().unwrap();
    assert_eq!(
        root.path(),
        &PathBuf::from(format!("/run/kata-containers/{CID}/rootfs"))
    );
    assert_eq!(root.readonly(), Some(false));

    let p = s.process().as_ref().unwrap();
    assert_eq!(p.terminal(), Some(false));
    assert_eq!(p.user().uid(), 1000);
    assert_eq!(p.user().gid(), 1000);
    assert_eq!(p.user().additional_gids().as_deref(), Some(&[1000, 10][..]));
    assert_eq!(p.args().as_ref().unwrap()[2], "echo hello; sleep 1");
    assert_eq!(p.env().as_ref().unwrap().len(), 3);
    assert_eq!(p.cwd(), &PathBuf::from("/"));
    assert_eq!(p.no_new_privileges(), Some(false));
    assert_eq!(p.oom_score_adj(), Some(1000));
    assert_eq!(p.console_size(), None);
    let caps = p.capabilities().as_ref().unwrap();
    let bounding = caps.bounding().as_ref().unwrap();
    assert_eq!(bounding.len(), 14);
    assert!(bounding.contains(&Capability::NetBindService));
    assert!(bounding.contains(&Capability::AuditWrite));
    assert_eq!(caps.effective(), caps.bounding());
    assert_eq!(caps.inheritable().as_ref().map(|c| c.len()), Some(0));
    assert_eq!(caps.ambient().as_ref().map(|c| c.len()), Some(0));
    let rl = &p.rlimits().as_ref().unwrap()[0];
    assert_eq!(rl.typ(), PosixRlimitType::RlimitNofile);
    assert_eq!((rl.hard(), rl.soft()), (1048576, 1048576));

    let mounts = s.mounts().as_ref().unwrap();
    assert_eq!(mounts.len(), 8);
    assert_eq!(mounts[0].destination(), &PathBuf::from("/proc"));
    assert_eq!(mounts[0].typ().as_deref(), Some("proc"));
    let hosts = &mounts[6];
    assert_eq!(hosts.typ().as_deref(), Some("bind"));
    assert_eq!(
        hosts.source().as_ref().unwrap(),
        &PathBuf::from(format!(
            "/run/kata-containers/shared/containers/{CID}-hosts"
        ))
    );
    assert_eq!(
        hosts.options().as_deref().unwrap(),
        &strings(&["rbind", "rprivate", "rw"])[..]
    );

    // An empty Hooks message is no hooks.
    let hooks = s.hooks().as_ref().unwrap();
    assert!(hooks.prestart().is_none() && hooks.poststop().is_none());
    assert_eq!(
        s.annotations().as_ref().unwrap()["io.kubernetes.cri.container-type"],
        "container"
    );

    let l = s.linux().as_ref().unwrap();
    assert_eq!(
        l.cgroups_path().as_ref().unwrap(),
        &PathBuf::from(format!("/kubepods/burstable/pod1234/{CID}"))
    );
    let types: Vec<_> = l
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    assert_eq!(
        types,
        [
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Pid
        ]
    );
    let pid_ns = &l.namespaces().as_ref().unwrap()[4];
    assert_eq!(
        pid_ns.path().as_ref().unwrap(),
        &PathBuf::from("/proc/42/ns/pid")
    );
    assert!(l.namespaces().as_ref().unwrap()[3].path().is_none());
    assert_eq!(l.masked_paths().as_ref().unwrap().len(), 3);
    assert_eq!(l.readonly_paths().as_ref().unwrap().len(), 2);
    assert!(l.uid_mappings().is_none());
    assert!(l.devices().is_none());
    assert!(l.rootfs_propagation().is_none());

    let r = l.resources().as_ref().unwrap();
    let devs = r.devices().as_ref().unwrap();
    // Deny everything: type a, no numbers (not 0:0, which would deny one device only).
    assert!(!devs[0].allow());
    assert_eq!(devs[0].typ(), Some(LinuxDeviceType::A));
    assert_eq!((devs[0].major(), devs[0].minor()), (None, None));
    assert_eq!(devs[0].access().as_deref(), Some("rwm"));
    assert_eq!((devs[1].major(), devs[1].minor()), (Some(1), Some(3)));
    assert_eq!((devs[2].major(), devs[2].minor()), (Some(136), None));
    assert_eq!(devs[3].typ(), Some(LinuxDeviceType::B));
    assert_eq!((devs[3].major(), devs[3].minor()), (None, None));
    let mem = r.memory().as_ref().unwrap();
    assert_eq!(mem.limit(), Some(256 << 20));
    assert_eq!(
        (mem.reservation(), mem.swap(), mem.kernel()),
        (None, None, None)
    );
    assert_eq!(mem.swappiness(), None);
    assert_eq!(mem.disable_oom_killer(), None);
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!(
        (cpu.shares(), cpu.quota(), cpu.period()),
        (Some(512), Some(50_000), Some(100_000))
    );
    assert_eq!(cpu.cpus(), &None);
    // A pids limit of 0 is "not given".
    assert!(r.pids().is_none());
    let huge = &r.hugepage_limits().as_ref().unwrap()[0];
    assert_eq!((huge.page_size().as_str(), huge.limit()), ("2MB", 0));

    let sc = l.seccomp().as_ref().unwrap();
    assert_eq!(sc.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(sc.architectures().as_ref().unwrap().len(), 3);
    let calls = sc.syscalls().as_ref().unwrap();
    assert_eq!(calls[0].names(), &strings(&["read", "write", "exit_group"]));
    assert_eq!(calls[0].action(), LinuxSeccompAction::ScmpActAllow);
    assert_eq!(calls[0].errno_ret(), None);
    let arg = &calls[1].args().as_ref().unwrap()[0];
    assert_eq!(
        (arg.index(), arg.value(), arg.op()),
        (0, 0xffffffff, LinuxSeccompOperator::ScmpCmpEq)
    );
    assert_eq!(calls[2].errno_ret(), Some(1));
}

#[test]
fn the_shim_spec_survives_the_wire() {
    use protobuf::Message;
    let bytes = shim_spec().write_to_bytes().unwrap();
    let back = pb::Spec::parse_from_bytes(&bytes).unwrap();
    assert_eq!(spec(&back).unwrap(), spec(&shim_spec()).unwrap());
}

#[test]
fn an_empty_spec_gets_no_defaults_of_its_own() {
    let s = spec(&pb::Spec::default()).unwrap();
    assert_eq!(s.version(), "");
    assert!(s.process().is_none());
    assert!(s.root().is_none());
    assert!(s.hostname().is_none());
    assert!(s.mounts().is_none());
    assert!(s.hooks().is_none());
    assert!(s.annotations().is_none());
    assert!(s.linux().is_none());
    // An empty Linux message: no namespaces, no masked paths (not oci-spec's defaults).
    let s = spec(&pb::Spec {
        Linux: Some(pb::Linux::default()).into(),
        ..Default::default()
    })
    .unwrap();
    let l = s.linux().as_ref().unwrap();
    assert!(l.namespaces().is_none());
    assert!(l.masked_paths().is_none());
    assert!(l.resources().is_none());
    assert!(l.seccomp().is_none());
}

fn spec_with_namespaces(types: &[&str]) -> std::result::Result<Spec, ConvertError> {
    spec(&pb::Spec {
        Linux: Some(pb::Linux {
            Namespaces: types.iter().map(|t| ns(t, "")).collect(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    })
}

#[test]
fn namespace_types_in_both_spellings() {
    let s = spec_with_namespaces(&[
        "net", "network", "mnt", "mount", "pid", "ipc", "uts", "user", "cgroup", "time", "NET",
    ])
    .unwrap();
    let types: Vec<_> = s
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    use LinuxNamespaceType::*;
    assert_eq!(
        types,
        [Network, Network, Mount, Mount, Pid, Ipc, Uts, User, Cgroup, Time, Network]
    );

    let e = spec_with_namespaces(&["pid", "netns"]).unwrap_err();
    assert_eq!(e.field, "OCI.Linux.Namespaces[1].Type");
    assert!(e.reason.contains("\"netns\""), "{e}");
    assert!(spec_with_namespaces(&[""]).is_err());
}

fn process_with_bounding(caps: &[&str]) -> pb::Process {
    pb::Process {
        Args: strings(&["true"]),
        Capabilities: Some(pb::LinuxCapabilities {
            Bounding: strings(caps),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

#[test]
fn capabilities_with_and_without_cap_in_any_case() {
    for name in [
        "CAP_SYS_ADMIN",
        "SYS_ADMIN",
        "cap_sys_admin",
        "sys_admin",
        " Cap_Sys_Admin ",
    ] {
        assert_eq!(
            capability(name, "f").unwrap(),
            Capability::SysAdmin,
            "{name}"
        );
    }
    let p = process(&process_with_bounding(&[
        "CAP_CHOWN",
        "KILL",
        "net_raw",
        "CAP_KILL",
    ]))
    .unwrap();
    let b = p
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap();
    assert_eq!(
        b,
        caps_set(&[Capability::Chown, Capability::Kill, Capability::NetRaw])
    );

    let e = process(&process_with_bounding(&["CAP_CHOWN", "CAP_FLY"])).unwrap_err();
    assert_eq!(e.field, "process.Capabilities.Bounding[1]");
    assert_eq!(e.reason, "unknown capability \"CAP_FLY\"");
    for bad in ["", "CAP_", "CAP_CAP_"] {
        assert!(process(&process_with_bounding(&[bad])).is_err(), "{bad:?}");
    }
    // The error travels in the spec with the full path.
    let mut s = shim_spec();
    s.Process
        .as_mut()
        .unwrap()
        .Capabilities
        .as_mut()
        .unwrap()
        .Ambient = strings(&["bogus"]);
    let e = spec(&s).unwrap_err();
    assert_eq!(e.field, "OCI.Process.Capabilities.Ambient[0]");
    assert_eq!(
        e.to_string(),
        "invalid OCI.Process.Capabilities.Ambient[0]: unknown capability \"bogus\""
    );
}

#[test]
fn an_exec_process_as_the_shim_sends_it() {
    let exec = pb::Process {
        Terminal: true,
        ConsoleSize: Some(pb::Box {
            Height: 24,
            Width: 80,
            ..Default::default()
        })
        .into(),
        User: Some(pb::User {
            UID: 0,
            GID: 0,
            Username: "root".into(),
            ..Default::default()
        })
        .into(),
        Args: strings(&["sh"]),
        Env: strings(&["TERM=xterm"]),
        Cwd: "/root".into(),
        NoNewPrivileges: true,
        ApparmorProfile: "runtime/default".into(),
        SelinuxLabel: "system_u:system_r:container_t:s0".into(),
        ..Default::default()
    };
    let p = process(&exec).unwrap();
    assert_eq!(p.terminal(), Some(true));
    let size = p.console_size().unwrap();
    assert_eq!((size.height(), size.width()), (24, 80));
    assert_eq!(p.user().username().as_deref(), Some("root"));
    assert_eq!(p.user().additional_gids(), &None);
    assert_eq!(p.cwd(), &PathBuf::from("/root"));
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.apparmor_profile().as_deref(), Some("runtime/default"));
    assert_eq!(
        p.selinux_label().as_deref(),
        Some("system_u:system_r:container_t:s0")
    );
    // No capabilities message: none given (not oci-spec's default three).
    assert!(p.capabilities().is_none());
    assert!(p.rlimits().is_none());
    assert!(p.oom_score_adj().is_none());
}

#[test]
fn process_fields_checked() {
    let ok = || pb::Process {
        Args: strings(&["true"]),
        ..Default::default()
    };
    // No user message: root. No cwd: the root directory.
    let p = process(&ok()).unwrap();
    assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
    assert_eq!(p.cwd(), &PathBuf::from("/"));

    let e = process(&pb::Process::default()).unwrap_err();
    assert_eq!(e.field, "process.Args");

    let e = process(&pb::Process {
        Cwd: "tmp".into(),
        ..ok()
    })
    .unwrap_err();
    assert_eq!(e.field, "process.Cwd");

    for adj in [1001, -1001, i64::MAX] {
        let e = process(&pb::Process {
            OOMScoreAdj: adj,
            ..ok()
        })
        .unwrap_err();
        assert_eq!(e.field, "process.OOMScoreAdj");
    }
    assert_eq!(
        process(&pb::Process {
            OOMScoreAdj: -999,
            ..ok()
        })
        .unwrap()
        .oom_score_adj(),
        Some(-999)
    );
}

#[test]
fn rlimit_types_in_several_spellings() {
    let with = |t: &str| pb::Process {
        Args: strings(&["true"]),
        Rlimits: vec![pb::POSIXRlimit {
            Type: t.into(),
            Hard: 20,
            Soft: 10,
            ..Default::default()
        }],
        ..Default::default()
    };
    for (t, want) in [
        ("RLIMIT_NOFILE", PosixRlimitType::RlimitNofile),
        ("nofile", PosixRlimitType::RlimitNofile),
        ("rlimit_core", PosixRlimitType::RlimitCore),
        ("NPROC", PosixRlimitType::RlimitNproc),
    ] {
        let p = process(&with(t)).unwrap();
        let r = &p.rlimits().as_ref().unwrap()[0];
        assert_eq!((r.typ(), r.hard(), r.soft()), (want, 20, 10), "{t}");
    }
    let e = process(&with("RLIMIT_BOGUS")).unwrap_err();
    assert_eq!(e.field, "process.Rlimits[0].Type");
    assert_eq!(e.reason, "unknown rlimit \"RLIMIT_BOGUS\"");
    assert_eq!(
        process(&with("")).unwrap_err().field,
        "process.Rlimits[0].Type"
    );
}

#[test]
fn spec_fields_checked_by_name() {
    let mut s = shim_spec();
    s.Root.as_mut().unwrap().Path.clear();
    assert_eq!(spec(&s).unwrap_err().field, "OCI.Root.Path");

    let mut s = shim_spec();
    s.Mounts[3].destination.clear();
    assert_eq!(spec(&s).unwrap_err().field, "OCI.Mounts[3].destination");

    let mut s = shim_spec();
    s.Hooks.as_mut().unwrap().Poststop.push(pb::Hook {
        Path: "/bin/hook".into(),
        Timeout: -1,
        ..Default::default()
    });
    assert_eq!(spec(&s).unwrap_err().field, "OCI.Hooks.Poststop[0].Timeout");

    let mut s = shim_spec();
    s.Hooks
        .as_mut()
        .unwrap()
        .CreateRuntime
        .push(pb::Hook::default());
    assert_eq!(
        spec(&s).unwrap_err().field,
        "OCI.Hooks.CreateRuntime[0].Path"
    );

    let mut s = shim_spec();
    s.Linux.as_mut().unwrap().Devices.push(pb::LinuxDevice {
        Path: "/dev/fuse".into(),
        Type: "x".into(),
        ..Default::default()
    });
    assert_eq!(spec(&s).unwrap_err().field, "OCI.Linux.Devices[0].Type");

    let mut s = shim_spec();
    s.Process.as_mut().unwrap().Args.clear();
    assert_eq!(spec(&s).unwrap_err().field, "OCI.Process.Args");

    let mut s = shim_spec();
    s.Linux
        .as_mut()
        .unwrap()
        .Resources
        .as_mut()
        .unwrap()
        .Devices[1]
        .Type = "z".into();
    assert_eq!(
        spec(&s).unwrap_err().field,
        "OCI.Linux.Resources.Devices[1].Type"
    );

    let mut s = shim_spec();
    s.Linux.as_mut().unwrap().Seccomp.as_mut().unwrap().Syscalls[1]
        .Names
        .clear();
    assert_eq!(
        spec(&s).unwrap_err().field,
        "OCI.Linux.Seccomp.Syscalls[1].Names"
    );
}

#[test]
fn what_oci_spec_refuses_is_named_by_its_json_path() {
    let mut s = shim_spec();
    s.Linux.as_mut().unwrap().Seccomp.as_mut().unwrap().Syscalls[2].Action =
        "SCMP_ACT_EXPLODE".into();
    let e = spec(&s).unwrap_err();
    assert_eq!(e.field, "OCI (OCI JSON linux.seccomp.syscalls[2].action)");
    assert!(e.reason.contains("SCMP_ACT_EXPLODE"), "{e}");

    let mut s = shim_spec();
    s.Linux
        .as_mut()
        .unwrap()
        .Seccomp
        .as_mut()
        .unwrap()
        .Architectures
        .push("SCMP_ARCH_Z80".into());
    let e = spec(&s).unwrap_err();
    assert!(e.field.contains("linux.seccomp.architectures[3]"), "{e}");
}

#[test]
fn devices_of_the_spec() {
    let mut s = shim_spec();
    s.Linux.as_mut().unwrap().Devices.push(pb::LinuxDevice {
        Path: "/dev/fuse".into(),
        Type: "c".into(),
        Major: 10,
        Minor: 229,
        FileMode: 0o666,
        UID: 0,
        GID: 0,
        ..Default::default()
    });
    s.Linux.as_mut().unwrap().Devices.push(pb::LinuxDevice {
        Path: "/dev/null2".into(),
        Type: "c".into(),
        Major: 1,
        Minor: 3,
        ..Default::default()
    });
    let s = spec(&s).unwrap();
    let d = s.linux().as_ref().unwrap().devices().clone().unwrap();
    assert_eq!(d[0].path(), &PathBuf::from("/dev/fuse"));
    assert_eq!(d[0].typ(), LinuxDeviceType::C);
    assert_eq!((d[0].major(), d[0].minor()), (10, 229));
    assert_eq!(d[0].file_mode(), Some(0o666));
    assert_eq!((d[0].uid(), d[0].gid()), (Some(0), Some(0)));
    // A file mode of 0 is "not given".
    assert_eq!(d[1].file_mode(), None);
}

#[test]
fn empty_seccomp_message_is_no_seccomp() {
    let mut s = shim_spec();
    s.Linux.as_mut().unwrap().Seccomp = Some(pb::LinuxSeccomp::default()).into();
    assert!(spec(&s)
        .unwrap()
        .linux()
        .as_ref()
        .unwrap()
        .seccomp()
        .is_none());
}

#[test]
fn id_mappings_sysctl_and_the_rest_of_linux() {
    let map = |c, h, n| pb::LinuxIDMapping {
        ContainerID: c,
        HostID: h,
        Size: n,
        ..Default::default()
    };
    let s = spec(&pb::Spec {
        Linux: Some(pb::Linux {
            UIDMappings: vec![map(0, 100000, 65536)],
            GIDMappings: vec![map(0, 200000, 65536), map(65536, 1000, 1)],
            Sysctl: [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
            RootfsPropagation: "rslave".into(),
            MountLabel: "system_u:object_r:container_file_t:s0".into(),
            IntelRdt: Some(pb::LinuxIntelRdt {
                L3CacheSchema: "L3:0=ff".into(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    })
    .unwrap();
    let l = s.linux().as_ref().unwrap();
    let u = &l.uid_mappings().as_ref().unwrap()[0];
    assert_eq!(
        (u.container_id(), u.host_id(), u.size()),
        (0, 100000, 65536)
    );
    let g = &l.gid_mappings().as_ref().unwrap()[1];
    assert_eq!((g.container_id(), g.host_id(), g.size()), (65536, 1000, 1));
    assert_eq!(l.sysctl().as_ref().unwrap()["net.ipv4.ip_forward"], "1");
    assert_eq!(l.rootfs_propagation().as_deref(), Some("rslave"));
    assert_eq!(
        l.mount_label().as_deref(),
        Some("system_u:object_r:container_file_t:s0")
    );
    assert_eq!(
        l.intel_rdt().as_ref().unwrap().l3_cache_schema().as_deref(),
        Some("L3:0=ff")
    );
}

#[test]
fn hooks_of_every_kind() {
    let hook = |p: &str| pb::Hook {
        Path: p.into(),
        Args: strings(&[p, "arg"]),
        Env: strings(&["A=1"]),
        Timeout: 5,
        ..Default::default()
    };
    let s = spec(&pb::Spec {
        Hooks: Some(pb::Hooks {
            Prestart: vec![hook("/h/prestart")],
            CreateRuntime: vec![hook("/h/createruntime")],
            CreateContainer: vec![hook("/h/createcontainer")],
            StartContainer: vec![hook("/h/startcontainer")],
            Poststart: vec![hook("/h/poststart")],
            Poststop: vec![
                hook("/h/poststop"),
                pb::Hook {
                    Path: "/h/no-timeout".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
        .into(),
        ..Default::default()
    })
    .unwrap();
    let h = s.hooks().as_ref().unwrap();
    let path = |l: &Option<Vec<oci_spec::runtime::Hook>>| l.as_ref().unwrap()[0].path().clone();
    assert_eq!(path(h.prestart()), PathBuf::from("/h/prestart"));
    assert_eq!(path(h.create_runtime()), PathBuf::from("/h/createruntime"));
    assert_eq!(
        path(h.create_container()),
        PathBuf::from("/h/createcontainer")
    );
    assert_eq!(
        path(h.start_container()),
        PathBuf::from("/h/startcontainer")
    );
    assert_eq!(path(h.poststart()), PathBuf::from("/h/poststart"));
    let post = h.poststop().as_ref().unwrap();
    assert_eq!(post[0].timeout(), Some(5));
    assert_eq!(post[0].args().as_ref().unwrap()[1], "arg");
    assert_eq!(post[0].env().as_ref().unwrap()[0], "A=1");
    assert_eq!(post[1].timeout(), None);
}

#[test]
fn resources_for_update_container() {
    let r = resources(&pb::LinuxResources {
        Memory: Some(pb::LinuxMemory {
            Limit: 512 << 20,
            Reservation: 256 << 20,
            Swap: 1 << 30,
            Swappiness: 60,
            DisableOOMKiller: true,
            ..Default::default()
        })
        .into(),
        CPU: Some(pb::LinuxCPU {
            Quota: -1,
            Cpus: "0-1".into(),
            Mems: "0".into(),
            RealtimeRuntime: 950,
            RealtimePeriod: 1000,
            ..Default::default()
        })
        .into(),
        Pids: Some(pb::LinuxPids {
            Limit: -1,
            ..Default::default()
        })
        .into(),
        BlockIO: Some(pb::LinuxBlockIO {
            Weight: 500,
            WeightDevice: vec![pb::LinuxWeightDevice {
                Major: 8,
                Minor: 0,
                Weight: 300,
                ..Default::default()
            }],
            ThrottleReadBpsDevice: vec![pb::LinuxThrottleDevice {
                Major: 8,
                Minor: 0,
                Rate: 1 << 20,
                ..Default::default()
            }],
            ThrottleWriteIOPSDevice: vec![pb::LinuxThrottleDevice {
                Major: 8,
                Minor: 16,
                Rate: 100,
                ..Default::default()
            }],
            ..Default::default()
        })
        .into(),
        Network: Some(pb::LinuxNetwork {
            ClassID: 0x100001,
            Priorities: vec![pb::LinuxInterfacePriority {
                Name: "eth0".into(),
                Priority: 5,
                ..Default::default()
            }],
            ..Default::default()
        })
        .into(),
        ..Default::default()
    })
    .unwrap();
    let m = r.memory().as_ref().unwrap();
    assert_eq!(
        (m.limit(), m.reservation(), m.swap()),
        (Some(512 << 20), Some(256 << 20), Some(1 << 30))
    );
    assert_eq!(
        (m.swappiness(), m.disable_oom_killer()),
        (Some(60), Some(true))
    );
    let c = r.cpu().as_ref().unwrap();
    // -1 is "no quota", a setting, not "not given".
    assert_eq!((c.quota(), c.shares(), c.period()), (Some(-1), None, None));
    assert_eq!(
        (c.cpus().as_deref(), c.mems().as_deref()),
        (Some("0-1"), Some("0"))
    );
    assert_eq!(
        (c.realtime_runtime(), c.realtime_period()),
        (Some(950), Some(1000))
    );
    assert_eq!(r.pids().as_ref().unwrap().limit(), -1);
    let b = r.block_io().as_ref().unwrap();
    assert_eq!((b.weight(), b.leaf_weight()), (Some(500), None));
    let w = &b.weight_device().as_ref().unwrap()[0];
    assert_eq!(
        (w.major(), w.minor(), w.weight(), w.leaf_weight()),
        (8, 0, Some(300), None)
    );
    let t = &b.throttle_read_bps_device().as_ref().unwrap()[0];
    assert_eq!((t.major(), t.minor(), t.rate()), (8, 0, 1 << 20));
    assert_eq!(
        b.throttle_write_iops_device().as_ref().unwrap()[0].rate(),
        100
    );
    assert!(b.throttle_write_bps_device().is_none());
    let n = r.network().as_ref().unwrap();
    assert_eq!(n.class_id(), Some(0x100001));
    assert_eq!(n.priorities().as_ref().unwrap()[0].priority(), 5);
    assert!(r.devices().is_none());
    assert!(r.hugepage_limits().is_none());
}

#[test]
fn resources_all_zero_set_nothing() {
    let r = resources(&pb::LinuxResources {
        Memory: Some(pb::LinuxMemory::default()).into(),
        CPU: Some(pb::LinuxCPU::default()).into(),
        BlockIO: Some(pb::LinuxBlockIO::default()).into(),
        ..Default::default()
    })
    .unwrap();
    let m = r.memory().as_ref().unwrap();
    assert_eq!(
        (
            m.limit(),
            m.reservation(),
            m.swap(),
            m.kernel(),
            m.kernel_tcp(),
            m.swappiness(),
            m.disable_oom_killer()
        ),
        (None, None, None, None, None, None, None)
    );
    let c = r.cpu().as_ref().unwrap();
    assert_eq!(
        (c.shares(), c.quota(), c.period(), c.cpus().clone()),
        (None, None, None, None)
    );
    assert_eq!(r.block_io().as_ref().unwrap().weight(), None);
    assert!(r.pids().is_none());
    let none = resources(&pb::LinuxResources::default()).unwrap();
    assert!(none.memory().is_none() && none.cpu().is_none() && none.block_io().is_none());
}

#[test]
fn resources_checked_by_name() {
    let with = |f: &dyn Fn(&mut pb::LinuxResources)| {
        let mut r = pb::LinuxResources::default();
        f(&mut r);
        resources(&r)
    };
    let e = with(&|r| r.Devices.push(dev_rule(true, "q", 1, 1, "r"))).unwrap_err();
    assert_eq!(e.field, "resources.Devices[0].Type");
    let e = with(&|r| {
        r.Devices.push(dev_rule(true, "c", 1, 1, "r"));
        r.Devices.push(dev_rule(true, "c", 1, 1, "rwx"));
    })
    .unwrap_err();
    assert_eq!(e.field, "resources.Devices[1].Access");
    let e = with(&|r| {
        r.Memory = Some(pb::LinuxMemory {
            Swappiness: 101,
            ..Default::default()
        })
        .into()
    })
    .unwrap_err();
    assert_eq!(e.field, "resources.Memory.Swappiness");
    let e = with(&|r| {
        r.HugepageLimits.push(pb::LinuxHugepageLimit {
            Pagesize: "1GB".into(),
            Limit: u64::MAX,
            ..Default::default()
        })
    })
    .unwrap_err();
    assert_eq!(e.field, "resources.HugepageLimits[0].Limit");
    let e = with(&|r| r.HugepageLimits.push(pb::LinuxHugepageLimit::default())).unwrap_err();
    assert_eq!(e.field, "resources.HugepageLimits[0].Pagesize");
}

#[test]
fn stats_of_a_cgroup() {
    let mut s = cgroups::Stats::default();
    s.cpu.usage.total = 1_000_000;
    s.cpu.usage.percpu = vec![600_000, 400_000];
    s.cpu.usage.kernel = 300_000;
    s.cpu.usage.user = 700_000;
    s.cpu.throttling.periods = 10;
    s.cpu.throttling.throttled_periods = 2;
    s.cpu.throttling.throttled_time = 5000;
    s.memory.cache = 4096;
    s.memory.usage = cgroups::stats::MemoryEntry {
        limit: 256 << 20,
        usage: 10 << 20,
        max: 12 << 20,
        failcnt: 1,
    };
    s.memory.swap.usage = 7;
    s.memory.kernel.usage = 9;
    s.memory.raw.insert("anon".into(), 1234);
    s.pids.current = 3;
    s.pids.limit = 100;
    s.blkio
        .io_service_bytes_recursive
        .push(cgroups::stats::BlkioEntry {
            major: 8,
            minor: 0,
            op: "Read".into(),
            value: 4096,
        });
    s.blkio
        .io_serviced_recursive
        .push(cgroups::stats::BlkioEntry {
            major: 8,
            minor: 0,
            op: "Write".into(),
            value: 2,
        });
    s.hugetlb.insert(
        "2MB".into(),
        cgroups::stats::Hugetlb {
            usage: 2 << 20,
            max: 4 << 20,
            failcnt: 0,
        },
    );

    let r = stats(&s);
    assert!(r.network_stats.is_empty());
    let c = r.cgroup_stats.as_ref().unwrap();
    let cpu = c.cpu_stats.as_ref().unwrap();
    let u = cpu.cpu_usage.as_ref().unwrap();
    assert_eq!(
        (
            u.total_usage,
            u.percpu_usage.clone(),
            u.usage_in_kernelmode,
            u.usage_in_usermode
        ),
        (1_000_000, vec![600_000, 400_000], 300_000, 700_000)
    );
    let t = cpu.throttling_data.as_ref().unwrap();
    assert_eq!(
        (t.periods, t.throttled_periods, t.throttled_time),
        (10, 2, 5000)
    );
    let m = c.memory_stats.as_ref().unwrap();
    assert_eq!(m.cache, 4096);
    let mu = m.usage.as_ref().unwrap();
    assert_eq!(
        (mu.usage, mu.max_usage, mu.failcnt, mu.limit),
        (10 << 20, 12 << 20, 1, 256 << 20)
    );
    assert_eq!(m.swap_usage.as_ref().unwrap().usage, 7);
    assert_eq!(m.kernel_usage.as_ref().unwrap().usage, 9);
    assert_eq!(m.stats["anon"], 1234);
    assert!(m.use_hierarchy);
    let p = c.pids_stats.as_ref().unwrap();
    assert_eq!((p.current, p.limit), (3, 100));
    let b = c.blkio_stats.as_ref().unwrap();
    let e = &b.io_service_bytes_recursive[0];
    assert_eq!(
        (e.major, e.minor, e.op.as_str(), e.value),
        (8, 0, "Read", 4096)
    );
    assert_eq!(b.io_serviced_recursive[0].op, "Write");
    assert!(b.io_queued_recursive.is_empty());
    let h = &c.hugetlb_stats["2MB"];
    assert_eq!((h.usage, h.max_usage, h.failcnt), (2 << 20, 4 << 20, 0));
}

/// Field numbers as Kata's clients put them on the wire, written out by hand: a message
/// encoded with them must land in the fields of the same names here.
mod wire {
    use crate::protocols::{agent, health, oci};
    use protobuf::Message;

    /// A length-delimited field (wire type 2).
    fn field(n: u32, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![((n << 3) | 2) as u8, bytes.len() as u8];
        v.extend_from_slice(bytes);
        v
    }

    /// A varint field (wire type 0), small values only.
    fn varint(n: u32, value: u8) -> Vec<u8> {
        vec![(n << 3) as u8, value]
    }

    #[test]
    fn create_container_request() {
        // Spec.Process(2){Args(4), Cwd(6), Terminal(1)}, Spec.Root(3){Path(1)},
        // Spec.Linux(8){Namespaces(6){Type(1)}}, Spec.Hostname(4).
        let process = [field(4, b"sh"), field(6, b"/"), varint(1, 1)].concat();
        let linux = field(6, &field(1, b"net"));
        let spec = [
            field(2, &process),
            field(3, &field(1, b"/rootfs")),
            field(4, b"h"),
            field(8, &linux),
        ]
        .concat();
        let req = [
            field(1, b"c1"),
            field(2, b"c1"),
            field(6, &spec),
            varint(7, 1),
        ]
        .concat();
        let r = agent::CreateContainerRequest::parse_from_bytes(&req).unwrap();
        assert_eq!((r.container_id.as_str(), r.exec_id.as_str()), ("c1", "c1"));
        assert!(r.sandbox_pidns);
        let s = r.OCI.as_ref().unwrap();
        assert_eq!(s.Hostname, "h");
        assert_eq!(s.Root.Path, "/rootfs");
        let p = s.Process.as_ref().unwrap();
        assert_eq!(
            (p.Args.clone(), p.Cwd.as_str(), p.Terminal),
            (vec!["sh".to_string()], "/", true)
        );
        assert_eq!(s.Linux.Namespaces[0].Type, "net");
        assert!(r.special_fields.unknown_fields().iter().next().is_none());
    }

    #[test]
    fn process_rpcs() {
        let r = agent::SignalProcessRequest::parse_from_bytes(
            &[field(1, b"c"), field(2, b"e"), varint(3, 9)].concat(),
        )
        .unwrap();
        assert_eq!(
            (r.container_id.as_str(), r.exec_id.as_str(), r.signal),
            ("c", "e", 9)
        );
        let r =
            agent::ReadStreamRequest::parse_from_bytes(&[field(1, b"c"), varint(3, 100)].concat())
                .unwrap();
        assert_eq!(r.len, 100);
        let r =
            agent::TtyWinResizeRequest::parse_from_bytes(&[varint(3, 24), varint(4, 80)].concat())
                .unwrap();
        assert_eq!((r.row, r.column), (24, 80));
        let r = agent::WriteStreamRequest::parse_from_bytes(&field(3, b"hi")).unwrap();
        assert_eq!(r.data, b"hi");
        let r = agent::RemoveContainerRequest::parse_from_bytes(&varint(2, 10)).unwrap();
        assert_eq!(r.timeout, 10);
        let w = agent::WaitProcessResponse {
            status: 3,
            ..Default::default()
        };
        assert_eq!(w.write_to_bytes().unwrap(), varint(1, 3));
        let e = agent::OOMEvent {
            container_id: "c".into(),
            ..Default::default()
        };
        assert_eq!(e.write_to_bytes().unwrap(), field(1, b"c"));
        let u =
            agent::UpdateContainerRequest::parse_from_bytes(&field(2, &field(2, &varint(6, 60))))
                .unwrap();
        assert_eq!(u.resources.Memory.Swappiness, 60);
        let x = agent::ExecProcessRequest::parse_from_bytes(&field(4, &field(4, b"ls"))).unwrap();
        assert_eq!(x.process.Args, ["ls"]);
    }

    #[test]
    fn sandbox_and_health() {
        let r = agent::CreateSandboxRequest::parse_from_bytes(
            &[
                field(1, b"host"),
                field(2, b"nameserver 1.1.1.1"),
                field(5, b"sb"),
            ]
            .concat(),
        )
        .unwrap();
        assert_eq!((r.hostname.as_str(), r.sandbox_id.as_str()), ("host", "sb"));
        assert_eq!(r.dns, ["nameserver 1.1.1.1"]);
        let h = health::HealthCheckResponse {
            status: health::health_check_response::ServingStatus::SERVING.into(),
            ..Default::default()
        };
        assert_eq!(h.write_to_bytes().unwrap(), varint(1, 1));
        let v = health::VersionCheckResponse {
            agent_version: "1".into(),
            ..Default::default()
        };
        assert_eq!(v.write_to_bytes().unwrap(), field(2, b"1"));
    }

    #[test]
    fn seccomp_errno_is_field_3() {
        let sc = oci::LinuxSyscall::parse_from_bytes(&[field(1, b"mount"), varint(3, 38)].concat())
            .unwrap();
        assert_eq!(
            sc.ErrnoRet,
            Some(oci::linux_syscall::ErrnoRet::Errnoret(38))
        );
    }
}
