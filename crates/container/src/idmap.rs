//! uid and gid mappings: checked before anything is created, and written into a new user
//! namespace by whoever may write them.
//!
//! Root writes /proc/PID/{uid,gid}_map itself. An unprivileged user may write only a map of
//! its own uid and gid (after `deny` in /proc/PID/setgroups); any other range goes through
//! the setuid helpers newuidmap and newgidmap, which allow what /etc/subuid and /etc/subgid
//! grant the user. runr checks that itself first, so the error names what the user owns.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::LinuxIdMapping;
use std::path::Path;

/// The kernel takes at most this many lines per map (since Linux 4.15).
const MAX_LINES: usize = 340;

/// A contiguous id range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: u64,
    len: u64,
}

impl Range {
    fn end(&self) -> u64 {
        self.start + self.len
    }
    fn overlaps(&self, o: &Range) -> bool {
        self.start < o.end() && o.start < self.end()
    }
    fn show(&self) -> String {
        format!("{}-{}", self.start, self.end() - 1)
    }
}

/// Check one map (`what` names it: `uidMappings`) for the mistakes the kernel would only
/// answer with EINVAL: empty or overflowing ranges, overlaps, too many lines.
pub(crate) fn validate(what: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    if maps.len() > MAX_LINES {
        return Err(Error::Config(format!(
            "{what}: {} ranges; the kernel takes at most {MAX_LINES}",
            maps.len()
        )));
    }
    let mut inside: Vec<Range> = Vec::new();
    let mut outside: Vec<Range> = Vec::new();
    for m in maps {
        let (c, h, n) = (m.container_id() as u64, m.host_id() as u64, m.size() as u64);
        if n == 0 {
            return Err(Error::Config(format!(
                "{what}: the range at containerID {c} has size 0"
            )));
        }
        // Id 2^32-1 is the kernel's "no id" and can be in no range.
        if c + n > u32::MAX as u64 || h + n > u32::MAX as u64 {
            return Err(Error::Config(format!(
                "{what}: containerID {c} / hostID {h} + size {n} goes past the largest id"
            )));
        }
        let (ci, ho) = (Range { start: c, len: n }, Range { start: h, len: n });
        if let Some(o) = inside.iter().find(|o| o.overlaps(&ci)) {
            return Err(Error::Config(format!(
                "{what}: container ids {} and {} overlap",
                o.show(),
                ci.show()
            )));
        }
        if let Some(o) = outside.iter().find(|o| o.overlaps(&ho)) {
            return Err(Error::Config(format!(
                "{what}: host ids {} and {} overlap",
                o.show(),
                ho.show()
            )));
        }
        inside.push(ci);
        outside.push(ho);
    }
    Ok(())
}

/// How the maps of a new user namespace get written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Writer {
    /// Root: any map, written directly.
    Root,
    /// An unprivileged user mapping only its own ids: written directly, setgroups denied.
    OwnIds,
    /// An unprivileged user mapping subordinate ids: newuidmap and newgidmap.
    Helpers,
}

impl Writer {
    /// Decide, and for an unprivileged caller check that every host id is its own: its
    /// uid/gid or a range /etc/subuid and /etc/subgid give it.
    pub(crate) fn choose(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<Writer> {
        let uid = nix::unistd::geteuid().as_raw();
        if uid == 0 {
            return Ok(Writer::Root);
        }
        let gid = nix::unistd::getegid().as_raw();
        let only = |maps: &[LinuxIdMapping], id: u32| matches!(maps, [m] if m.host_id() == id && m.size() == 1);
        if only(uids, uid) && only(gids, gid) {
            return Ok(Writer::OwnIds);
        }
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map(|u| u.name);
        let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
            .ok()
            .flatten()
            .map(|g| g.name);
        let sub_uids = subordinate(Path::new("/etc/subuid"), uid, name.as_deref())?;
        let sub_gids = subordinate(Path::new("/etc/subgid"), uid, name.as_deref())?;
        owned(
            "uidMappings",
            uids,
            uid,
            &sub_uids,
            "/etc/subuid",
            name.as_deref(),
        )?;
        owned(
            "gidMappings",
            gids,
            gid,
            &sub_gids,
            "/etc/subgid",
            group.as_deref(),
        )?;
        for helper in ["newuidmap", "newgidmap"] {
            if crate::sys::find_executable(helper).is_none() {
                return Err(Error::Config(format!(
                    "mapping ids other than your own needs {helper}, which is not installed \
                     (Debian: apt-get install uidmap)"
                )));
            }
        }
        Ok(Writer::Helpers)
    }

    /// Parent side: write the maps of `pid`'s new user namespace.
    pub(crate) fn write(
        &self,
        pid: i32,
        uids: &[LinuxIdMapping],
        gids: &[LinuxIdMapping],
    ) -> Result<()> {
        match self {
            Writer::Root => {
                write_map(pid, "uid_map", uids)?;
                write_map(pid, "gid_map", gids)
            }
            Writer::OwnIds => {
                write_map(pid, "uid_map", uids)?;
                // Without CAP_SETGID outside, the kernel takes a gid map only once the
                // namespace may no longer drop groups with setgroups(2).
                let path = format!("/proc/{pid}/setgroups");
                std::fs::write(&path, "deny").ctx(|| format!("write deny to {path}"))?;
                write_map(pid, "gid_map", gids)
            }
            Writer::Helpers => {
                run_helper("newuidmap", pid, uids)?;
                run_helper("newgidmap", pid, gids)
            }
        }
    }
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

fn write_map(pid: i32, file: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    let path = format!("/proc/{pid}/{file}");
    let text = map_text(maps);
    std::fs::write(&path, &text)
        .ctx(|| format!("write {path} ({})", text.trim().replace('\n', ", ")))
}

fn run_helper(helper: &str, pid: i32, maps: &[LinuxIdMapping]) -> Result<()> {
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([m.container_id(), m.host_id(), m.size()].map(|n| n.to_string()));
    }
    let out = cmd.output().ctx(|| format!("run {helper}"))?;
    if !out.status.success() {
        return Err(Error::Config(format!(
            "{helper} {pid} {}: {}",
            map_text(maps).trim().replace('\n', ", "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The ranges `/etc/subuid`-style `file` gives the user (by name or uid).
fn subordinate(file: &Path, uid: u32, name: Option<&str>) -> Result<Vec<Range>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| format!("read {}", file.display())),
    };
    Ok(parse_subordinate(&text, uid, name))
}

fn parse_subordinate(text: &str, uid: u32, name: Option<&str>) -> Vec<Range> {
    let uid = uid.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, len) = (f.next()?, f.next()?, f.next()?);
            if who != uid && Some(who) != name {
                return None;
            }
            Some(Range {
                start: start.parse().ok()?,
                len: len.parse().ok()?,
            })
        })
        .collect()
}

/// Every host range of `maps` must lie within `own` (a single id) or one subordinate range.
fn owned(
    what: &str,
    maps: &[LinuxIdMapping],
    own: u32,
    sub: &[Range],
    file: &str,
    name: Option<&str>,
) -> Result<()> {
    let mut allowed = vec![Range {
        start: own as u64,
        len: 1,
    }];
    allowed.extend_from_slice(sub);
    for m in maps {
        let want = Range {
            start: m.host_id() as u64,
            len: m.size() as u64,
        };
        if !allowed
            .iter()
            .any(|a| a.start <= want.start && want.end() <= a.end())
        {
            let granted: Vec<String> = sub.iter().map(Range::show).collect();
            return Err(Error::Config(format!(
                "{what}: host ids {} are not yours to map: you are {own}{} and {file} gives \
                 you {}",
                want.show(),
                name.map(|n| format!(" ({n})")).unwrap_or_default(),
                if granted.is_empty() {
                    "nothing".to_string()
                } else {
                    granted.join(", ")
                }
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxIdMappingBuilder;

    fn map(c: u32, h: u32, n: u32) -> LinuxIdMapping {
        LinuxIdMappingBuilder::default()
            .container_id(c)
            .host_id(h)
            .size(n)
            .build()
            .unwrap()
    }

    #[test]
    fn overlaps_and_bad_sizes_are_refused() {
        assert!(validate("uidMappings", &[map(0, 1000, 1), map(1, 100000, 65536)]).is_ok());
        let e = validate("uidMappings", &[map(0, 1000, 10), map(5, 2000, 1)]).unwrap_err();
        assert!(
            e.to_string().contains("container ids 0-9 and 5-5 overlap"),
            "{e}"
        );
        let e = validate("gidMappings", &[map(0, 1000, 10), map(20, 1005, 1)]).unwrap_err();
        assert!(
            e.to_string()
                .contains("host ids 1000-1009 and 1005-1005 overlap"),
            "{e}"
        );
        assert!(validate("uidMappings", &[map(0, 0, 0)]).is_err());
        assert!(validate("uidMappings", &[map(0, u32::MAX - 1, 2)]).is_err());
        assert!(validate("uidMappings", &vec![map(0, 0, 1); 341]).is_err());
    }

    #[test]
    fn subordinate_ranges_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:300000:10\nbob:200000:65536\nbad line\n";
        assert_eq!(
            parse_subordinate(text, 1001, Some("alice")),
            vec![
                Range {
                    start: 100000,
                    len: 65536
                },
                Range {
                    start: 300000,
                    len: 10
                }
            ]
        );
        let sub = parse_subordinate(text, 1001, Some("alice"));
        assert!(owned(
            "u",
            &[map(0, 1001, 1), map(1, 100000, 65536)],
            1001,
            &sub,
            "f",
            None
        )
        .is_ok());
        let e = owned(
            "uidMappings",
            &[map(1, 100000, 65537)],
            1001,
            &sub,
            "/etc/subuid",
            Some("alice"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("host ids 100000-165536 are not yours"), "{e}");
        assert!(e.contains("you are 1001 (alice)"), "{e}");
        assert!(e.contains("100000-165535, 300000-300009"), "{e}");
    }
}
