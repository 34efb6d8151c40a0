//! Signal names and numbers as `kill` accepts them: `KILL`, `SIGKILL`, `kill`, `9`, and the
//! real-time ones as `RTMIN+3` or `SIGRTMAX-1`.

use crate::error::{Error, Result};
use nix::sys::signal::Signal;

/// Parse a signal given on the command line into its number.
pub fn parse(raw: &str) -> Result<i32> {
    let unknown = || Error::Invalid(format!("unknown signal {raw:?}"));
    if let Ok(n) = raw.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    let upper = raw.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let n = libc::SIGRTMIN() + rt_offset(rest, '+').ok_or_else(unknown)?;
        return if n <= libc::SIGRTMAX() {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let n = libc::SIGRTMAX() - rt_offset(rest, '-').ok_or_else(unknown)?;
        return if n >= libc::SIGRTMIN() {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    Signal::iterator()
        .find(|s| s.as_str().strip_prefix("SIG") == Some(name))
        .map(|s| s as i32)
        .ok_or_else(unknown)
}

fn rt_offset(rest: &str, sign: char) -> Option<i32> {
    if rest.is_empty() {
        return Some(0);
    }
    rest.strip_prefix(sign)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("term").unwrap(), 15);
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert_eq!(parse("SIGRTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
    }

    #[test]
    fn bad_ones() {
        for bad in ["FOO", "0", "-1", "999", "RTMIN+999", "SIG", ""] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("unknown signal"), "{bad}: {e}");
        }
    }
}
