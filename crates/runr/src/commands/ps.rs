use crate::Global;
use anyhow::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
    /// table (ps output) or json (an array of host pids).
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// Options for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let c = container::Container::load(&g.root, &a.id)?;
    let pids = c.processes()?;
    if a.format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        anyhow::bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    print!(
        "{}",
        filter_ps(&String::from_utf8_lossy(&out.stdout), &pids)?
    );
    Ok(0)
}

/// Keep ps's header and the lines whose PID column is one of `pids`.
fn filter_ps(output: &str, pids: &[i32]) -> anyhow::Result<String> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .context("ps output has no PID column")?;
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_header_and_container_rows() {
        let ps = "UID PID PPID CMD\nroot 1 0 init\nroot 42 1 sleep\n";
        assert_eq!(
            super::filter_ps(ps, &[42]).unwrap(),
            "UID PID PPID CMD\nroot 42 1 sleep\n"
        );
    }
}
