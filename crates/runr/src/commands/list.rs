use crate::Global;
use container::Container;
use std::os::unix::fs::MetadataExt;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// table or json.
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Print only the ids.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let mut states = Vec::new();
    for id in container::state::list_ids(&g.root)? {
        let mut s = match Container::load_unlocked(&g.root, &id) {
            Ok(c) => c.oci_state(),
            // Half-made (or its state.json unreadable): shown so that it can be deleted. One
            // being deleted right now is gone, and simply not listed.
            Err(_) => match container::remnant::load_remnant_unlocked(&g.root, &id) {
                Ok(r) => r.oci_state(),
                Err(_) => continue,
            },
        };
        s.owner = owner_of(&g.root.join(&id));
        states.push(s);
    }
    if a.quiet {
        for s in &states {
            println!("{}", s.id);
        }
    } else if a.format == "json" {
        // runc prints null, not [], when there is nothing.
        if states.is_empty() {
            println!("null");
        } else {
            println!("{}", serde_json::to_string(&states)?);
        }
    } else {
        let rows: Vec<[String; 6]> = states
            .iter()
            .map(|s| {
                [
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], &rows)
        );
    }
    Ok(0)
}

/// Columns as Go's tabwriter lays them out for runc: at least 12 wide, 3 spaces of padding,
/// the last column unpadded.
fn table(header: [&str; 6], rows: &[[String; 6]]) -> String {
    let mut widths = header.map(|h| h.len());
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 5 {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}", w = (widths[i] + 3).max(12)));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header);
    for r in rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
    out
}

/// The user that owns a state directory, by name if /etc/passwd has it.
fn owner_of(dir: &std::path::Path) -> String {
    let Ok(uid) = std::fs::metadata(dir).map(|m| m.uid()) else {
        return String::new();
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_runc_layout() {
        let rows = [[
            "t1".to_string(),
            "2102".into(),
            "created".into(),
            "/tmp/rb".into(),
            "2026-11-24T11:40:03.327114576Z".into(),
            "root".into(),
        ]];
        let t = table(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], &rows);
        assert_eq!(
            t,
            "ID          PID         STATUS      BUNDLE      CREATED                          OWNER\n\
             t1          2102        created     /tmp/rb     2026-11-24T11:40:03.327114576Z   root\n"
        );
    }
}
