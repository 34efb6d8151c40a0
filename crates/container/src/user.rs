//! Users as the container's image knows them (its /etc/passwd), read after pivot_root.

use std::path::Path;

/// The home directory of `uid` in `passwd` text, if listed.
pub(crate) fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 7 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
    })
}

/// HOME for the process: its env's if set, else the passwd entry's, else `/`.
pub(crate) fn home_for(env: &[String], uid: u32) -> Option<String> {
    if env.iter().any(|e| e.starts_with("HOME=")) {
        return None;
    }
    let passwd = std::fs::read_to_string(Path::new("/etc/passwd")).unwrap_or_default();
    Some(home_of(&passwd, uid).unwrap_or_else(|| "/".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_home() {
        let p = "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\nbroken\n";
        assert_eq!(home_of(p, 1000).as_deref(), Some("/home/bob"));
        assert_eq!(home_of(p, 0).as_deref(), Some("/root"));
        assert_eq!(home_of(p, 5), None);
    }
}
