//! ListInterfaces and ListRoutes, answered from the agent's own network namespace: links
//! from /sys/class/net, addresses from getifaddrs(3), routes from /proc/net/route and
//! /proc/net/ipv6_route. Read only: the agent changes no interface or route.

use crate::error::AgentError;
use crate::protocols::types::{IPAddress, IPFamily, Interface, Route};
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// RT_SCOPE_UNIVERSE and RT_SCOPE_LINK of rtnetlink(7).
const SCOPE_UNIVERSE: u32 = 0;
const SCOPE_LINK: u32 = 253;

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Every link with its addresses, ordered by name.
pub fn interfaces() -> Result<Vec<Interface>, AgentError> {
    let dir = Path::new("/sys/class/net");
    let entries = std::fs::read_dir(dir).map_err(|e| {
        AgentError::internal(format!("ListInterfaces: read {}: {e}", dir.display()))
    })?;
    let mut addresses = addresses()?;
    let mut out = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let link = entry.path();
        let flags = read_trim(&link.join("flags"));
        let devtype = read_trim(&link.join("uevent"))
            .lines()
            .find_map(|l| l.strip_prefix("DEVTYPE=").map(str::to_string))
            .unwrap_or_default();
        let iface = Interface {
            device: name.clone(),
            name: name.clone(),
            IPAddresses: addresses.remove(&name).unwrap_or_default(),
            mtu: read_trim(&link.join("mtu")).parse().unwrap_or(0),
            hwAddr: read_trim(&link.join("address")),
            type_: devtype,
            raw_flags: u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0),
            ..Default::default()
        };
        out.insert(name, iface);
    }
    Ok(out.into_values().collect())
}

/// The number of leading one bits of a netmask.
fn prefix_len(mask: IpAddr) -> u32 {
    match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones(),
        IpAddr::V6(m) => u128::from(m).leading_ones(),
    }
}

/// An address from a sockaddr of family AF_INET or AF_INET6; None for any other.
///
/// # Safety
/// `sa` is null or points to a sockaddr whose length fits its family.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null, and the caller promises a sockaddr.
    match i32::from(unsafe { (*sa).sa_family }) {
        libc::AF_INET => {
            // SAFETY: the family says it is a sockaddr_in.
            let sin = unsafe { &*sa.cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says it is a sockaddr_in6.
            let sin6 = unsafe { &*sa.cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// The IP addresses of each link, by link name.
fn addresses() -> Result<BTreeMap<String, Vec<IPAddress>>, AgentError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(AgentError::internal(format!(
            "ListInterfaces: getifaddrs: {}",
            std::io::Error::last_os_error()
        )));
    }
    let mut out: BTreeMap<String, Vec<IPAddress>> = BTreeMap::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: the list's addresses are null or sockaddrs of their family's size.
        let (addr, mask) = unsafe { (sockaddr_ip(ifa.ifa_addr), sockaddr_ip(ifa.ifa_netmask)) };
        let Some(addr) = addr else { continue };
        // SAFETY: ifa_name is a NUL-terminated string of the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let family = if addr.is_ipv4() {
            IPFamily::v4
        } else {
            IPFamily::v6
        };
        out.entry(name).or_default().push(IPAddress {
            family: family.into(),
            address: addr.to_string(),
            mask: mask.map(prefix_len).unwrap_or(0).to_string(),
            ..Default::default()
        });
    }
    // SAFETY: the head getifaddrs returned, freed once; no node is used after this.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The routes of the main table, IPv4 then IPv6 (the loopback's left out).
pub fn routes() -> Result<Vec<Route>, AgentError> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map_err(|e| AgentError::internal(format!("ListRoutes: read {p}: {e}")))
    };
    let mut out = parse_ipv4_routes(&read("/proc/net/route")?);
    // A kernel without IPv6 has no such file.
    if let Ok(v6) = std::fs::read_to_string("/proc/net/ipv6_route") {
        out.extend(parse_ipv6_routes(&v6));
    }
    Ok(out)
}

/// RTF_UP and RTF_GATEWAY of route(8).
const RTF_UP: u32 = 0x1;
const RTF_GATEWAY: u32 = 0x2;
/// RTF_LOCAL (an address of this host) in ipv6_route.
const RTF_LOCAL: u32 = 0x8000_0000;

/// /proc/net/route: addresses in hexadecimal, in the host's byte order.
pub fn parse_ipv4_routes(text: &str) -> Vec<Route> {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    let ip = |n: u32| Ipv4Addr::from(u32::from_be(n));
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 || f[0] == "lo" {
                return None;
            }
            let (dest, gw, flags, mask) = (hex(f[1])?, hex(f[2])?, hex(f[3])?, hex(f[7])?);
            if flags & RTF_UP == 0 {
                return None;
            }
            let len = u32::from(ip(mask)).leading_ones();
            Some(Route {
                dest: if dest == 0 && len == 0 {
                    String::new()
                } else {
                    format!("{}/{len}", ip(dest))
                },
                gateway: if flags & RTF_GATEWAY != 0 {
                    ip(gw).to_string()
                } else {
                    String::new()
                },
                device: f[0].to_string(),
                scope: if flags & RTF_GATEWAY != 0 {
                    SCOPE_UNIVERSE
                } else {
                    SCOPE_LINK
                },
                family: IPFamily::v4.into(),
                ..Default::default()
            })
        })
        .collect()
}

/// /proc/net/ipv6_route: dest, its prefix length, source, its length, next hop, metric,
/// refcount, use, flags, device.
pub fn parse_ipv6_routes(text: &str) -> Vec<Route> {
    let addr = |s: &str| u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from);
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[9] == "lo" {
                return None;
            }
            let dest = addr(f[0])?;
            let len = u32::from_str_radix(f[1], 16).ok()?;
            let gw = addr(f[4])?;
            let flags = u32::from_str_radix(f[8], 16).ok()?;
            // Multicast and this host's own addresses are not routes a client set.
            if flags & RTF_UP == 0
                || flags & RTF_LOCAL != 0
                || dest.segments()[0] & 0xff00 == 0xff00
            {
                return None;
            }
            let via = flags & RTF_GATEWAY != 0;
            Some(Route {
                dest: if len == 0 {
                    String::new()
                } else {
                    format!("{dest}/{len}")
                },
                gateway: if via { gw.to_string() } else { String::new() },
                device: f[9].to_string(),
                scope: if via { SCOPE_UNIVERSE } else { SCOPE_LINK },
                family: IPFamily::v6.into(),
                ..Default::default()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_routes_from_proc() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            eth1\t0000A8C0\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n";
        let r = parse_ipv4_routes(text);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].dest, "");
        assert_eq!(r[0].gateway, "10.0.0.1");
        assert_eq!(r[0].device, "eth0");
        assert_eq!(r[0].scope, SCOPE_UNIVERSE);
        assert_eq!(r[1].dest, "10.0.0.0/24");
        assert_eq!(r[1].gateway, "");
        assert_eq!(r[1].scope, SCOPE_LINK);
        assert_eq!(r[1].family, IPFamily::v4.into());
    }

    #[test]
    fn ipv6_routes_from_proc() {
        let text = "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n\
            00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n\
            fe800000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001     eth0\n\
            ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000004 00000000 00000001     eth0\n\
            00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n";
        let r = parse_ipv6_routes(text);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].dest, "fe80::/64");
        assert_eq!(r[0].scope, SCOPE_LINK);
        assert_eq!(r[1].dest, "");
        assert_eq!(r[1].gateway, "fe80::1");
        assert_eq!(r[1].family, IPFamily::v6.into());
    }

    #[test]
    fn this_namespace_has_a_loopback_with_its_address() {
        let l = interfaces().unwrap();
        let lo = l.iter().find(|i| i.name == "lo").expect("a loopback");
        assert_eq!(lo.device, "lo");
        assert!(lo.mtu > 0);
        assert!(lo.raw_flags & libc::IFF_LOOPBACK as u32 != 0);
        if let Some(a) = lo.IPAddresses.iter().find(|a| a.address == "127.0.0.1") {
            assert_eq!(a.mask, "8");
        }
        routes().unwrap();
    }
}
