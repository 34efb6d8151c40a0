//! Moving a v1 devices cgroup from the rules it has to the rules a config wants without a
//! moment where the container is denied a device that both sets allow.
//!
//! Writing the rules one by one (`a` to devices.deny, then each allow) empties the list
//! first: a process of the cgroup that opens /dev/null at that moment gets EPERM. That is
//! harmless in a new, empty cgroup, but not on `update` of a running container or in a
//! cgroup that other containers share. So the wanted state is computed by replaying the
//! rules on the current one (as the kernel would), and only the difference is written:
//! what is newly allowed first, what is no longer allowed after.

use crate::CgroupError;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::collections::BTreeMap;

const READ: u8 = 1;
const WRITE: u8 = 2;
const MKNOD: u8 = 4;

/// Device type (`c` or `b`), major and minor (-1 for `*`).
type Key = (char, i64, i64);

/// What a v1 devices cgroup allows: a default and the exceptions to it, each with the
/// access it grants (deny default) or takes away (allow default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceState {
    allow_default: bool,
    exceptions: BTreeMap<Key, u8>,
}

impl DeviceState {
    /// Parse devices.list. In allow-default mode the kernel shows only `a *:* rwm` and
    /// hides its deny exceptions, so those are taken to be none.
    pub(crate) fn parse(list: &str) -> Result<DeviceState, CgroupError> {
        let mut st = DeviceState {
            allow_default: false,
            exceptions: BTreeMap::new(),
        };
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let bad =
                || CgroupError::Invalid(format!("devices.list line {line:?} is not understood"));
            let mut it = line.split_whitespace();
            let (typ, numbers, access) = match (it.next(), it.next(), it.next()) {
                (Some(t), Some(n), Some(a)) => (t, n, a),
                _ => return Err(bad()),
            };
            if typ == "a" {
                st.allow_default = true;
                st.exceptions.clear();
                return Ok(st);
            }
            let typ = match typ {
                "c" => 'c',
                "b" => 'b',
                _ => return Err(bad()),
            };
            let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
            let num = |s: &str| match s {
                "*" => Ok(-1),
                n => n.parse::<i64>().map_err(|_| bad()),
            };
            let bits = access_bits(access)?;
            *st.exceptions
                .entry((typ, num(major)?, num(minor)?))
                .or_insert(0) |= bits;
        }
        Ok(st)
    }

    /// Apply one rule as the kernel does: `a` sets the default and drops every exception;
    /// another rule adds to an exception when it goes against the default and takes access
    /// away from the exception with the very same type and numbers when it goes with it.
    fn apply(&mut self, rule: &LinuxDeviceCgroup) -> Result<(), CgroupError> {
        let Some(key) = rule_key(rule)? else {
            self.allow_default = rule.allow();
            self.exceptions.clear();
            return Ok(());
        };
        let bits = access_bits(rule.access().as_deref().unwrap_or("rwm"))?;
        if rule.allow() != self.allow_default {
            *self.exceptions.entry(key).or_insert(0) |= bits;
        } else if let Some(have) = self.exceptions.get_mut(&key) {
            *have &= !bits;
            if *have == 0 {
                self.exceptions.remove(&key);
            }
        }
        Ok(())
    }

    /// The state after `rules`, applied in order to this one.
    pub(crate) fn after(&self, rules: &[LinuxDeviceCgroup]) -> Result<DeviceState, CgroupError> {
        let mut st = self.clone();
        for r in rules {
            st.apply(r)?;
        }
        Ok(st)
    }

    /// The writes (file, line) that take the cgroup from `self` to `want`. With a deny
    /// default on both sides nothing both allow is ever denied: the new allows go first,
    /// then what is no longer allowed is taken away. Leaving an allow default for a deny
    /// default must start with `a` to devices.deny (the kernel has no other way); that
    /// only happens to a cgroup that was never restricted, normally a new one.
    pub(crate) fn writes_to(&self, want: &DeviceState) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let none = BTreeMap::new();
        let have = if want.allow_default {
            // The kernel hides an allow default's exceptions: reset to allow-all (which
            // only widens), then add the wanted denies.
            out.push(("devices.allow", "a *:* rwm".to_string()));
            &none
        } else if self.allow_default {
            out.push(("devices.deny", "a *:* rwm".to_string()));
            &none
        } else {
            &self.exceptions
        };
        let (grant, revoke) = if want.allow_default {
            ("devices.deny", "devices.allow")
        } else {
            ("devices.allow", "devices.deny")
        };
        // Exceptions to add to (for a deny default: allows) first...
        for (key, bits) in &want.exceptions {
            let missing = bits & !have.get(key).copied().unwrap_or(0);
            if missing != 0 {
                out.push((grant, line(key, missing)));
            }
        }
        // ...then those to take access away from.
        for (key, bits) in have {
            let extra = bits & !want.exceptions.get(key).copied().unwrap_or(0);
            if extra != 0 {
                out.push((revoke, line(key, extra)));
            }
        }
        out
    }
}

/// The exception a rule names, or None for a rule of type `a` (whatever its numbers: the
/// kernel takes `a` as every device).
fn rule_key(rule: &LinuxDeviceCgroup) -> Result<Option<Key>, CgroupError> {
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => return Ok(None),
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::P => {
            return Err(CgroupError::Invalid(
                "device rule of type 'p' (fifo) cannot be expressed in the devices cgroup (a fifo needs no rule)".into(),
            ))
        }
    };
    let num = |n: Option<i64>| n.filter(|n| *n >= 0).unwrap_or(-1);
    Ok(Some((typ, num(rule.major()), num(rule.minor()))))
}

fn access_bits(access: &str) -> Result<u8, CgroupError> {
    if access.is_empty() {
        return Err(CgroupError::Invalid(
            "device rule access is empty; it must be made of r, w and m".into(),
        ));
    }
    access.chars().try_fold(0, |bits, c| {
        Ok(bits
            | match c {
                'r' => READ,
                'w' => WRITE,
                'm' => MKNOD,
                _ => {
                    return Err(CgroupError::Invalid(format!(
                        "device rule access {access:?} must be made of r, w and m"
                    )))
                }
            })
    })
}

fn line(&(typ, major, minor): &Key, bits: u8) -> String {
    let num = |n: i64| {
        if n < 0 {
            "*".to_string()
        } else {
            n.to_string()
        }
    };
    let mut access = String::new();
    for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
        if bits & bit != 0 {
            access.push(c);
        }
    }
    format!("{typ} {}:{} {access}", num(major), num(minor))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    /// A device rule; a negative major or minor is left out (every number).
    pub(crate) fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: i64,
        minor: i64,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if major >= 0 {
            b = b.major(major);
        }
        if minor >= 0 {
            b = b.minor(minor);
        }
        b.build().unwrap()
    }

    fn deny_default() -> Vec<LinuxDeviceCgroup> {
        use LinuxDeviceType::*;
        vec![
            rule(false, A, -1, -1, "rwm"),
            rule(true, C, 1, 3, "rwm"),
            rule(true, C, 1, 5, "rwm"),
            rule(true, C, 136, -1, "rwm"),
        ]
    }

    #[test]
    fn a_new_cgroup_gets_deny_all_then_its_allows() {
        let cur = DeviceState::parse("a *:* rwm\n").unwrap();
        let want = cur.after(&deny_default()).unwrap();
        assert_eq!(
            cur.writes_to(&want),
            vec![
                ("devices.deny", "a *:* rwm".to_string()),
                ("devices.allow", "c 1:3 rwm".to_string()),
                ("devices.allow", "c 1:5 rwm".to_string()),
                ("devices.allow", "c 136:* rwm".to_string()),
            ]
        );
    }

    #[test]
    fn the_same_rules_again_write_nothing() {
        // A second container in a shared cgroup, or an update that repeats the rules.
        let cur = DeviceState::parse("c 1:3 rwm\nc 1:5 rwm\nc 136:* rwm\n").unwrap();
        let want = cur.after(&deny_default()).unwrap();
        assert_eq!(want, cur);
        assert!(cur.writes_to(&want).is_empty());
    }

    #[test]
    fn a_change_adds_before_it_takes_away_and_never_denies_all() {
        use LinuxDeviceType::*;
        let cur = DeviceState::parse("c 1:3 rwm\nc 1:5 rwm\nc 136:* rwm\n").unwrap();
        let mut rules = deny_default();
        rules.retain(|r| r.minor() != Some(5));
        rules.push(rule(true, C, 1, 9, "r"));
        rules.push(rule(false, C, 1, 3, "m"));
        let want = cur.after(&rules).unwrap();
        assert_eq!(
            cur.writes_to(&want),
            vec![
                ("devices.allow", "c 1:9 r".to_string()),
                ("devices.deny", "c 1:3 m".to_string()),
                ("devices.deny", "c 1:5 rwm".to_string()),
            ]
        );
    }

    #[test]
    fn allow_all_resets_then_denies() {
        use LinuxDeviceType::*;
        let cur = DeviceState::parse("c 1:3 rwm\n").unwrap();
        let want = cur
            .after(&[rule(true, A, -1, -1, "rwm"), rule(false, B, 8, -1, "w")])
            .unwrap();
        assert_eq!(
            cur.writes_to(&want),
            vec![
                ("devices.allow", "a *:* rwm".to_string()),
                ("devices.deny", "b 8:* w".to_string()),
            ]
        );
        assert!(DeviceState::parse("x 1 2").is_err());
        assert!(cur.after(&[rule(true, P, 0, 0, "rwm")]).is_err());
        assert!(cur.after(&[rule(true, C, 1, 3, "rx")]).is_err());
    }

    #[test]
    fn device_rules_are_formatted_like_the_kernel_wants() {
        assert_eq!(line(&('a', -1, -1), READ | WRITE | MKNOD), "a *:* rwm");
        assert_eq!(line(&('c', 1, 3), READ | WRITE), "c 1:3 rw");
    }

    #[test]
    fn bad_access_string_is_refused() {
        assert!(access_bits("rwx").is_err());
        assert!(access_bits("").is_err());
    }
}
