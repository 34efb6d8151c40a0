//! The address the agent listens on: `vsock://CID:PORT` (CID -1: any, the Kata agent's
//! default `vsock://-1:1024`), `unix:///path` or `unix://@abstract-name`.

use std::fmt;
use std::path::PathBuf;

/// The Kata agent's default: any CID, port 1024.
pub const DEFAULT_ADDRESS: &str = "vsock://-1:1024";

/// The environment variable Kata's agent reads its address from.
pub const ADDRESS_ENV: &str = "KATA_AGENT_SERVER_ADDR";

/// VMADDR_CID_ANY: listen on every CID of the guest.
pub const VSOCK_CID_ANY: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerAddress {
    Vsock {
        cid: u32,
        port: u32,
    },
    /// A socket file.
    Unix(PathBuf),
    /// A name in the abstract namespace, without its leading `@`.
    Abstract(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server address {address:?}: {reason} (expected vsock://CID:PORT, unix:///path or unix://@name)")]
pub struct AddressError {
    pub address: String,
    pub reason: String,
}

impl std::str::FromStr for ServerAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        let err = |reason: &str| AddressError {
            address: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = s.strip_prefix("vsock://") {
            let (cid, port) = rest
                .split_once(':')
                .ok_or_else(|| err("no ':' before the port"))?;
            let cid = match cid {
                "-1" => VSOCK_CID_ANY,
                c => c
                    .parse()
                    .map_err(|_| err("the CID is not -1 or a number"))?,
            };
            let port = port.parse().map_err(|_| err("the port is not a number"))?;
            return Ok(ServerAddress::Vsock { cid, port });
        }
        if let Some(rest) = s.strip_prefix("unix://") {
            if let Some(name) = rest.strip_prefix('@') {
                if name.is_empty() {
                    return Err(err("empty abstract socket name"));
                }
                // sun_path holds 108 bytes, the first of which is the NUL.
                if name.len() > 107 {
                    return Err(err("abstract socket name longer than 107 bytes"));
                }
                return Ok(ServerAddress::Abstract(name.to_string()));
            }
            if !rest.starts_with('/') {
                return Err(err("the socket path is not absolute"));
            }
            if rest.len() > 107 {
                return Err(err("socket path longer than 107 bytes"));
            }
            return Ok(ServerAddress::Unix(PathBuf::from(rest)));
        }
        Err(err("unknown scheme"))
    }
}

impl fmt::Display for ServerAddress {
    /// The address in the form ttrpc's `Server::bind` and `Client::connect` take.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerAddress::Vsock { cid, port } if *cid == VSOCK_CID_ANY => {
                write!(f, "vsock://-1:{port}")
            }
            ServerAddress::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
            ServerAddress::Unix(p) => write!(f, "unix://{}", p.display()),
            ServerAddress::Abstract(name) => write!(f, "unix://@{name}"),
        }
    }
}

/// The address to serve on: the command line's, else the environment's, else the default.
pub fn choose(flag: Option<&str>, env: Option<&str>) -> Result<ServerAddress, AddressError> {
    flag.or(env.filter(|e| !e.is_empty()))
        .unwrap_or(DEFAULT_ADDRESS)
        .parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ServerAddress, AddressError> {
        s.parse()
    }

    #[test]
    fn vsock_addresses() {
        assert_eq!(
            parse("vsock://-1:1024").unwrap(),
            ServerAddress::Vsock {
                cid: VSOCK_CID_ANY,
                port: 1024
            }
        );
        assert_eq!(
            parse("vsock://3:5000").unwrap(),
            ServerAddress::Vsock { cid: 3, port: 5000 }
        );
        for bad in [
            "vsock://",
            "vsock://3",
            "vsock://x:1",
            "vsock://3:",
            "vsock://3:port",
            "vsock://-2:1",
            "vsock://1:99999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn unix_addresses() {
        assert_eq!(
            parse("unix:///run/agent.sock").unwrap(),
            ServerAddress::Unix("/run/agent.sock".into())
        );
        assert_eq!(
            parse("unix://@kata-agent").unwrap(),
            ServerAddress::Abstract("kata-agent".into())
        );
        assert!(parse("unix://").is_err());
        assert!(parse("unix://@").is_err());
        assert!(parse("unix://relative.sock").is_err());
        let long = format!("unix:///{}", "a".repeat(120));
        assert!(parse(&long).unwrap_err().reason.contains("longer"));
    }

    #[test]
    fn other_schemes_are_refused_with_the_address_in_the_message() {
        let e = parse("tcp://127.0.0.1:80").unwrap_err();
        assert_eq!(e.reason, "unknown scheme");
        assert!(e.to_string().contains("tcp://127.0.0.1:80"));
        assert!(parse("/run/agent.sock").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "vsock://-1:1024",
            "vsock://3:5000",
            "unix:///run/a.sock",
            "unix://@abs",
        ] {
            assert_eq!(parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn flag_then_environment_then_default() {
        let any = ServerAddress::Vsock {
            cid: VSOCK_CID_ANY,
            port: 1024,
        };
        assert_eq!(choose(None, None).unwrap(), any);
        assert_eq!(choose(None, Some("")).unwrap(), any);
        assert_eq!(
            choose(None, Some("unix://@e")).unwrap(),
            ServerAddress::Abstract("e".into())
        );
        assert_eq!(
            choose(Some("unix:///f"), Some("unix://@e")).unwrap(),
            ServerAddress::Unix("/f".into())
        );
        assert!(choose(Some("bad"), None).is_err());
    }
}
