//! From the protobuf mirror of the OCI configuration (proto/oci.proto) to oci-spec's types,
//! and from the cgroups crate's statistics to StatsContainerResponse.
//!
//! The spec is converted through the OCI JSON form: each protobuf message becomes the JSON
//! object config.json would hold, and oci-spec's own deserializer builds and checks the
//! result (seccomp actions, architectures, rlimit types, ...). Before that, the spellings
//! Kata's clients send are made canonical: capabilities with or without `CAP_` (any case),
//! namespace types `net`/`network` and `mnt`/`mount`, rlimits with or without `RLIMIT_`.
//!
//! proto3 cannot say "not set": an absent optional number arrives as 0. A zero is therefore
//! taken as "not given" wherever zero is no meaningful setting (memory and CPU limits, the
//! pids limit, weights, oom_score_adj, a hook's timeout, a device's file mode), and a device
//! cgroup rule's major or minor of -1 means "any" (`*`), as does a rule of type "a" or "".
//!
//! Errors name the field as the protobuf message spells it (`OCI.Linux.Namespaces[2].Type`),
//! and answer INVALID_ARGUMENT.

use crate::protocols::{agent as pb_agent, oci as pb};
use oci_spec::runtime::{Capability, LinuxNamespaceType, LinuxResources, Process, Spec};
use serde_json::{json, Map, Value};

/// A protobuf field that has no OCI meaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ConvertError {
    /// The field as the request spells it, e.g. `OCI.Process.Capabilities.Bounding[0]`.
    pub field: String,
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> ConvertError {
    ConvertError {
        field: field.into(),
        reason: reason.into(),
    }
}

type Result<T> = std::result::Result<T, ConvertError>;

/// The container's configuration, as CreateContainerRequest.OCI carries it.
pub fn spec(s: &pb::Spec) -> Result<Spec> {
    deserialize("OCI", spec_json(s, "OCI")?)
}

/// A process to exec, as ExecProcessRequest.process carries it.
pub fn process(p: &pb::Process) -> Result<Process> {
    deserialize("process", process_json(p, "process")?)
}

/// New resources, as UpdateContainerRequest.resources carries them.
pub fn resources(r: &pb::LinuxResources) -> Result<LinuxResources> {
    deserialize("resources", resources_json(r, "resources")?)
}

/// The last step: oci-spec checks what is left (enumerations, required fields). Its error
/// names the place by the JSON path, after the protobuf message's name.
fn deserialize<T: serde::de::DeserializeOwned>(root: &str, v: Value) -> Result<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            root.to_string()
        } else {
            format!("{root} (OCI JSON {path})")
        };
        bad(field, e.into_inner().to_string())
    })
}

/// A JSON object under construction that leaves out what proto3 sends for "unset".
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn put(&mut self, key: &str, v: impl Into<Value>) -> &mut Self {
        self.0.insert(key.to_string(), v.into());
        self
    }

    fn some(&mut self, key: &str, v: Option<Value>) -> &mut Self {
        if let Some(v) = v {
            self.0.insert(key.to_string(), v);
        }
        self
    }

    fn text(&mut self, key: &str, s: &str) -> &mut Self {
        if !s.is_empty() {
            self.put(key, s);
        }
        self
    }

    fn strings(&mut self, key: &str, l: &[String]) -> &mut Self {
        if !l.is_empty() {
            self.put(key, l.to_vec());
        }
        self
    }

    fn nonzero_u(&mut self, key: &str, n: u64) -> &mut Self {
        if n != 0 {
            self.put(key, n);
        }
        self
    }

    fn nonzero_i(&mut self, key: &str, n: i64) -> &mut Self {
        if n != 0 {
            self.put(key, n);
        }
        self
    }

    fn list<T>(
        &mut self,
        key: &str,
        items: &[T],
        field: &str,
        f: impl Fn(&T, &str) -> Result<Value>,
    ) -> Result<&mut Self> {
        if !items.is_empty() {
            let v = items
                .iter()
                .enumerate()
                .map(|(i, it)| f(it, &format!("{field}[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            self.put(key, v);
        }
        Ok(self)
    }

    fn done(&mut self) -> Value {
        Value::Object(std::mem::take(&mut self.0))
    }
}

fn spec_json(s: &pb::Spec, f: &str) -> Result<Value> {
    let mut o = Obj::default();
    o.put("ociVersion", s.Version.as_str());
    if let Some(p) = s.Process.as_ref() {
        o.put("process", process_json(p, &format!("{f}.Process"))?);
    }
    if let Some(r) = s.Root.as_ref() {
        if r.Path.is_empty() {
            return Err(bad(format!("{f}.Root.Path"), "empty"));
        }
        o.put("root", json!({ "path": r.Path, "readonly": r.Readonly }));
    }
    o.text("hostname", &s.Hostname);
    o.list("mounts", &s.Mounts, &format!("{f}.Mounts"), mount_json)?;
    if let Some(h) = s.Hooks.as_ref() {
        o.put("hooks", hooks_json(h, &format!("{f}.Hooks"))?);
    }
    if !s.Annotations.is_empty() {
        o.put("annotations", json!(s.Annotations));
    }
    if let Some(l) = s.Linux.as_ref() {
        o.put("linux", linux_json(l, &format!("{f}.Linux"))?);
    }
    // Solaris and Windows carry nothing for a Linux guest.
    Ok(o.done())
}

fn process_json(p: &pb::Process, f: &str) -> Result<Value> {
    let mut o = Obj::default();
    o.put("terminal", p.Terminal);
    if let Some(b) = p.ConsoleSize.as_ref() {
        if b.Height != 0 || b.Width != 0 {
            o.put(
                "consoleSize",
                json!({ "height": b.Height, "width": b.Width }),
            );
        }
    }
    let u = p.User.as_ref();
    let mut user = Obj::default();
    user.put("uid", u.map_or(0, |u| u.UID))
        .put("gid", u.map_or(0, |u| u.GID));
    if let Some(u) = u {
        if !u.AdditionalGids.is_empty() {
            user.put("additionalGids", u.AdditionalGids.clone());
        }
        user.text("username", &u.Username);
    }
    o.put("user", user.done());
    if p.Args.is_empty() {
        return Err(bad(format!("{f}.Args"), "empty: no program to run"));
    }
    o.strings("args", &p.Args);
    o.strings("env", &p.Env);
    // An empty working directory is the root, as runc takes it.
    o.put("cwd", if p.Cwd.is_empty() { "/" } else { &p.Cwd });
    if !p.Cwd.is_empty() && !p.Cwd.starts_with('/') {
        return Err(bad(
            format!("{f}.Cwd"),
            format!("{:?} is not absolute", p.Cwd),
        ));
    }
    if let Some(c) = p.Capabilities.as_ref() {
        o.put(
            "capabilities",
            capabilities_json(c, &format!("{f}.Capabilities"))?,
        );
    }
    o.list("rlimits", &p.Rlimits, &format!("{f}.Rlimits"), rlimit_json)?;
    o.put("noNewPrivileges", p.NoNewPrivileges);
    o.text("apparmorProfile", &p.ApparmorProfile);
    if p.OOMScoreAdj != 0 {
        let adj = i32::try_from(p.OOMScoreAdj)
            .ok()
            .filter(|a| (-1000..=1000).contains(a))
            .ok_or_else(|| {
                bad(
                    format!("{f}.OOMScoreAdj"),
                    format!("{} is outside -1000..1000", p.OOMScoreAdj),
                )
            })?;
        o.put("oomScoreAdj", adj);
    }
    o.text("selinuxLabel", &p.SelinuxLabel);
    Ok(o.done())
}

/// `CAP_SYS_ADMIN`, `SYS_ADMIN`, `cap_sys_admin` and `sys_admin` all name one capability.
pub fn capability(name: &str, field: &str) -> Result<Capability> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if bare.is_empty() {
        return Err(bad(field, format!("{name:?} is no capability")));
    }
    serde_json::from_value(Value::String(format!("CAP_{bare}")))
        .map_err(|_| bad(field, format!("unknown capability {name:?}")))
}

fn capabilities_json(c: &pb::LinuxCapabilities, f: &str) -> Result<Value> {
    let set = |names: &[String], which: &str| -> Result<Value> {
        let caps = names
            .iter()
            .enumerate()
            .map(|(i, n)| capability(n, &format!("{f}.{which}[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        serde_json::to_value(caps).map_err(|e| bad(format!("{f}.{which}"), e.to_string()))
    };
    Ok(json!({
        "bounding": set(&c.Bounding, "Bounding")?,
        "effective": set(&c.Effective, "Effective")?,
        "inheritable": set(&c.Inheritable, "Inheritable")?,
        "permitted": set(&c.Permitted, "Permitted")?,
        "ambient": set(&c.Ambient, "Ambient")?,
    }))
}

fn rlimit_json(r: &pb::POSIXRlimit, f: &str) -> Result<Value> {
    let upper = r.Type.trim().to_ascii_uppercase();
    if upper.is_empty() {
        return Err(bad(format!("{f}.Type"), "empty"));
    }
    let typ = if upper.starts_with("RLIMIT_") {
        upper
    } else {
        format!("RLIMIT_{upper}")
    };
    // oci-spec names an unknown type itself, but with the whole list: say it shortly.
    if serde_json::from_value::<oci_spec::runtime::PosixRlimitType>(json!(typ)).is_err() {
        return Err(bad(
            format!("{f}.Type"),
            format!("unknown rlimit {:?}", r.Type),
        ));
    }
    Ok(json!({ "type": typ, "hard": r.Hard, "soft": r.Soft }))
}

fn mount_json(m: &pb::Mount, f: &str) -> Result<Value> {
    if m.destination.is_empty() {
        return Err(bad(format!("{f}.destination"), "empty"));
    }
    let mut o = Obj::default();
    o.put("destination", m.destination.as_str())
        .text("type", &m.type_)
        .text("source", &m.source)
        .strings("options", &m.options);
    Ok(o.done())
}

fn hooks_json(h: &pb::Hooks, f: &str) -> Result<Value> {
    let mut o = Obj::default();
    o.list("prestart", &h.Prestart, &format!("{f}.Prestart"), hook_json)?
        .list(
            "createRuntime",
            &h.CreateRuntime,
            &format!("{f}.CreateRuntime"),
            hook_json,
        )?
        .list(
            "createContainer",
            &h.CreateContainer,
            &format!("{f}.CreateContainer"),
            hook_json,
        )?
        .list(
            "startContainer",
            &h.StartContainer,
            &format!("{f}.StartContainer"),
            hook_json,
        )?
        .list(
            "poststart",
            &h.Poststart,
            &format!("{f}.Poststart"),
            hook_json,
        )?
        .list("poststop", &h.Poststop, &format!("{f}.Poststop"), hook_json)?;
    Ok(o.done())
}

fn hook_json(h: &pb::Hook, f: &str) -> Result<Value> {
    if h.Path.is_empty() {
        return Err(bad(format!("{f}.Path"), "empty"));
    }
    if h.Timeout < 0 {
        return Err(bad(
            format!("{f}.Timeout"),
            format!("{} is negative", h.Timeout),
        ));
    }
    let mut o = Obj::default();
    o.put("path", h.Path.as_str())
        .strings("args", &h.Args)
        .strings("env", &h.Env)
        .nonzero_i("timeout", h.Timeout);
    Ok(o.done())
}

fn id_mapping_json(m: &pb::LinuxIDMapping, _: &str) -> Result<Value> {
    Ok(json!({ "hostID": m.HostID, "containerID": m.ContainerID, "size": m.Size }))
}

/// `net` and `network`, `mnt` and `mount` name one namespace type.
pub fn namespace_type(typ: &str, field: &str) -> Result<LinuxNamespaceType> {
    LinuxNamespaceType::try_from(typ.trim().to_ascii_lowercase().as_str())
        .map_err(|_| bad(field, format!("unknown namespace type {typ:?}")))
}

fn namespace_json(n: &pb::LinuxNamespace, f: &str) -> Result<Value> {
    let typ = namespace_type(&n.Type, &format!("{f}.Type"))?;
    let mut o = Obj::default();
    o.put(
        "type",
        serde_json::to_value(typ).expect("a namespace type serializes"),
    )
    .text("path", &n.Path);
    Ok(o.done())
}

fn device_json(d: &pb::LinuxDevice, f: &str) -> Result<Value> {
    if d.Path.is_empty() {
        return Err(bad(format!("{f}.Path"), "empty"));
    }
    if !matches!(d.Type.as_str(), "c" | "b" | "u" | "p") {
        return Err(bad(
            format!("{f}.Type"),
            format!("{:?} is not c, b, u or p", d.Type),
        ));
    }
    let mut o = Obj::default();
    o.put("path", d.Path.as_str())
        .put("type", d.Type.as_str())
        .put("major", d.Major)
        .put("minor", d.Minor)
        .nonzero_u("fileMode", d.FileMode.into())
        .put("uid", d.UID)
        .put("gid", d.GID);
    Ok(o.done())
}

fn seccomp_json(s: &pb::LinuxSeccomp, f: &str) -> Result<Value> {
    let mut o = Obj::default();
    o.put("defaultAction", s.DefaultAction.as_str())
        .strings("architectures", &s.Architectures)
        .strings("flags", &s.Flags)
        .list(
            "syscalls",
            &s.Syscalls,
            &format!("{f}.Syscalls"),
            |sc, f| {
                if sc.Names.is_empty() {
                    return Err(bad(format!("{f}.Names"), "empty"));
                }
                let mut o = Obj::default();
                o.put("names", sc.Names.clone())
                    .put("action", sc.Action.as_str())
                    .some(
                        "errnoRet",
                        sc.ErrnoRet.as_ref().map(|e| match e {
                            pb::linux_syscall::ErrnoRet::Errnoret(n) => json!(n),
                        }),
                    )
                    .list("args", &sc.Args, &format!("{f}.Args"), |a, _| {
                        Ok(json!({
                            "index": a.Index,
                            "value": a.Value,
                            "valueTwo": a.ValueTwo,
                            "op": a.Op,
                        }))
                    })?;
                Ok(o.done())
            },
        )?;
    Ok(o.done())
}

fn linux_json(l: &pb::Linux, f: &str) -> Result<Value> {
    let mut o = Obj::default();
    o.list(
        "uidMappings",
        &l.UIDMappings,
        &format!("{f}.UIDMappings"),
        id_mapping_json,
    )?
    .list(
        "gidMappings",
        &l.GIDMappings,
        &format!("{f}.GIDMappings"),
        id_mapping_json,
    )?;
    if !l.Sysctl.is_empty() {
        o.put("sysctl", json!(l.Sysctl));
    }
    if let Some(r) = l.Resources.as_ref() {
        o.put("resources", resources_json(r, &format!("{f}.Resources"))?);
    }
    o.text("cgroupsPath", &l.CgroupsPath);
    o.list(
        "namespaces",
        &l.Namespaces,
        &format!("{f}.Namespaces"),
        namespace_json,
    )?;
    o.list("devices", &l.Devices, &format!("{f}.Devices"), device_json)?;
    if let Some(s) = l.Seccomp.as_ref() {
        // An empty message is how a client without seccomp may still fill the field.
        if !(s.DefaultAction.is_empty() && s.Syscalls.is_empty()) {
            o.put("seccomp", seccomp_json(s, &format!("{f}.Seccomp"))?);
        }
    }
    o.text("rootfsPropagation", &l.RootfsPropagation)
        .strings("maskedPaths", &l.MaskedPaths)
        .strings("readonlyPaths", &l.ReadonlyPaths)
        .text("mountLabel", &l.MountLabel);
    if let Some(r) = l.IntelRdt.as_ref() {
        if !r.L3CacheSchema.is_empty() {
            o.put("intelRdt", json!({ "l3CacheSchema": r.L3CacheSchema }));
        }
    }
    Ok(o.done())
}

/// A device rule's major or minor: -1 (or any negative) is `*`.
fn device_number(n: i64) -> Option<Value> {
    (n >= 0).then(|| json!(n))
}

fn device_cgroup_json(d: &pb::LinuxDeviceCgroup, f: &str) -> Result<Value> {
    let mut o = Obj::default();
    o.put("allow", d.Allow);
    match d.Type.as_str() {
        // Every device: major and minor mean nothing (and arrive as 0).
        "" | "a" => {
            o.put("type", "a");
        }
        t @ ("c" | "b") => {
            o.put("type", t)
                .some("major", device_number(d.Major))
                .some("minor", device_number(d.Minor));
        }
        t => {
            return Err(bad(format!("{f}.Type"), format!("{t:?} is not a, c or b")));
        }
    }
    if !d.Access.is_empty() && !d.Access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(bad(
            format!("{f}.Access"),
            format!("{:?} is not made of r, w and m", d.Access),
        ));
    }
    o.text("access", &d.Access);
    Ok(o.done())
}

fn resources_json(r: &pb::LinuxResources, f: &str) -> Result<Value> {
    let mut o = Obj::default();
    o.list(
        "devices",
        &r.Devices,
        &format!("{f}.Devices"),
        device_cgroup_json,
    )?;
    if let Some(m) = r.Memory.as_ref() {
        let mut mem = Obj::default();
        mem.nonzero_i("limit", m.Limit)
            .nonzero_i("reservation", m.Reservation)
            .nonzero_i("swap", m.Swap)
            .nonzero_i("kernel", m.Kernel)
            .nonzero_i("kernelTCP", m.KernelTCP);
        if m.Swappiness > 100 {
            return Err(bad(
                format!("{f}.Memory.Swappiness"),
                format!("{} is over 100", m.Swappiness),
            ));
        }
        mem.nonzero_u("swappiness", m.Swappiness);
        if m.DisableOOMKiller {
            mem.put("disableOOMKiller", true);
        }
        o.put("memory", mem.done());
    }
    if let Some(c) = r.CPU.as_ref() {
        let mut cpu = Obj::default();
        cpu.nonzero_u("shares", c.Shares)
            .nonzero_i("quota", c.Quota)
            .nonzero_u("period", c.Period)
            .nonzero_i("realtimeRuntime", c.RealtimeRuntime)
            .nonzero_u("realtimePeriod", c.RealtimePeriod)
            .text("cpus", &c.Cpus)
            .text("mems", &c.Mems);
        o.put("cpu", cpu.done());
    }
    if let Some(p) = r.Pids.as_ref() {
        // 0 is "not given"; a negative limit is "no limit", as in runc.
        if p.Limit != 0 {
            o.put("pids", json!({ "limit": p.Limit }));
        }
    }
    if let Some(b) = r.BlockIO.as_ref() {
        let throttle = |t: &pb::LinuxThrottleDevice, _: &str| -> Result<Value> {
            Ok(json!({ "major": t.Major, "minor": t.Minor, "rate": t.Rate }))
        };
        let bf = format!("{f}.BlockIO");
        let mut bio = Obj::default();
        bio.nonzero_u("weight", b.Weight.into())
            .nonzero_u("leafWeight", b.LeafWeight.into())
            .list(
                "weightDevice",
                &b.WeightDevice,
                &format!("{bf}.WeightDevice"),
                |w, _| {
                    let mut o = Obj::default();
                    o.put("major", w.Major)
                        .put("minor", w.Minor)
                        .nonzero_u("weight", w.Weight.into())
                        .nonzero_u("leafWeight", w.LeafWeight.into());
                    Ok(o.done())
                },
            )?
            .list(
                "throttleReadBpsDevice",
                &b.ThrottleReadBpsDevice,
                &format!("{bf}.ThrottleReadBpsDevice"),
                throttle,
            )?
            .list(
                "throttleWriteBpsDevice",
                &b.ThrottleWriteBpsDevice,
                &format!("{bf}.ThrottleWriteBpsDevice"),
                throttle,
            )?
            .list(
                "throttleReadIOPSDevice",
                &b.ThrottleReadIOPSDevice,
                &format!("{bf}.ThrottleReadIOPSDevice"),
                throttle,
            )?
            .list(
                "throttleWriteIOPSDevice",
                &b.ThrottleWriteIOPSDevice,
                &format!("{bf}.ThrottleWriteIOPSDevice"),
                throttle,
            )?;
        o.put("blockIO", bio.done());
    }
    o.list(
        "hugepageLimits",
        &r.HugepageLimits,
        &format!("{f}.HugepageLimits"),
        |h, f| {
            if h.Pagesize.is_empty() {
                return Err(bad(format!("{f}.Pagesize"), "empty"));
            }
            let limit = i64::try_from(h.Limit)
                .map_err(|_| bad(format!("{f}.Limit"), format!("{} is too large", h.Limit)))?;
            Ok(json!({ "pageSize": h.Pagesize, "limit": limit }))
        },
    )?;
    if let Some(n) = r.Network.as_ref() {
        let mut net = Obj::default();
        net.nonzero_u("classID", n.ClassID.into()).list(
            "priorities",
            &n.Priorities,
            &format!("{f}.Network.Priorities"),
            |p, _| Ok(json!({ "name": p.Name, "priority": p.Priority })),
        )?;
        o.put("network", net.done());
    }
    Ok(o.done())
}

/// A container's cgroup statistics as StatsContainer answers them. Network statistics are
/// not the cgroup's: the caller adds them.
pub fn stats(s: &cgroups::Stats) -> pb_agent::StatsContainerResponse {
    let memory_data = |m: &cgroups::stats::MemoryEntry| pb_agent::MemoryData {
        usage: m.usage,
        max_usage: m.max,
        failcnt: m.failcnt,
        limit: m.limit,
        ..Default::default()
    };
    let blkio = |l: &[cgroups::stats::BlkioEntry]| -> Vec<pb_agent::BlkioStatsEntry> {
        l.iter()
            .map(|e| pb_agent::BlkioStatsEntry {
                major: e.major,
                minor: e.minor,
                op: e.op.clone(),
                value: e.value,
                ..Default::default()
            })
            .collect()
    };
    let cgroup = pb_agent::CgroupStats {
        cpu_stats: Some(pb_agent::CpuStats {
            cpu_usage: Some(pb_agent::CpuUsage {
                total_usage: s.cpu.usage.total,
                percpu_usage: s.cpu.usage.percpu.clone(),
                usage_in_kernelmode: s.cpu.usage.kernel,
                usage_in_usermode: s.cpu.usage.user,
                ..Default::default()
            })
            .into(),
            throttling_data: Some(pb_agent::ThrottlingData {
                periods: s.cpu.throttling.periods,
                throttled_periods: s.cpu.throttling.throttled_periods,
                throttled_time: s.cpu.throttling.throttled_time,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
        .into(),
        memory_stats: Some(pb_agent::MemoryStats {
            cache: s.memory.cache,
            usage: Some(memory_data(&s.memory.usage)).into(),
            swap_usage: Some(memory_data(&s.memory.swap)).into(),
            kernel_usage: Some(memory_data(&s.memory.kernel)).into(),
            // cgroup v2 is hierarchical, and so is v1 on every kernel since 5.x.
            use_hierarchy: true,
            stats: s.memory.raw.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            ..Default::default()
        })
        .into(),
        pids_stats: Some(pb_agent::PidsStats {
            current: s.pids.current,
            limit: s.pids.limit,
            ..Default::default()
        })
        .into(),
        blkio_stats: Some(pb_agent::BlkioStats {
            io_service_bytes_recursive: blkio(&s.blkio.io_service_bytes_recursive),
            io_serviced_recursive: blkio(&s.blkio.io_serviced_recursive),
            ..Default::default()
        })
        .into(),
        hugetlb_stats: s
            .hugetlb
            .iter()
            .map(|(size, h)| {
                (
                    size.clone(),
                    pb_agent::HugetlbStats {
                        usage: h.usage,
                        max_usage: h.max,
                        failcnt: h.failcnt,
                        ..Default::default()
                    },
                )
            })
            .collect(),
        ..Default::default()
    };
    pb_agent::StatsContainerResponse {
        cgroup_stats: Some(cgroup).into(),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
