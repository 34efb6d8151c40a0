//! The shim's log: containerd opens a fifo named `log` in the bundle before it starts the
//! shim and copies what comes through into its own log. One line per event, logfmt
//! (`time=… level=… msg="…" key=value`), as containerd's own lines look.

use std::fmt::Write as _;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

struct Logfmt {
    max: Level,
    out: Mutex<std::fs::File>,
}

#[derive(Default)]
struct Line {
    msg: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            let _ = write!(
                self.fields,
                " {}={}",
                field.name(),
                quote(&format!("{value:?}"))
            );
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), quote(value));
        }
    }
}

/// A logfmt value: quoted (with `"` and `\` escaped) when it has spaces or quotes.
fn quote(v: &str) -> String {
    if !v.is_empty() && !v.contains([' ', '"', '=', '\\', '\n']) {
        return v.to_string();
    }
    let mut q = String::with_capacity(v.len() + 2);
    q.push('"');
    for c in v.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl<S: Subscriber> Layer<S> for Logfmt {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.level() <= &self.max
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut line = Line::default();
        event.record(&mut line);
        let time = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        let text = format!(
            "time=\"{time}\" level={} msg={} runtime={}{}\n",
            level_name(event.metadata().level()),
            quote(&line.msg),
            crate::RUNTIME_NAME,
            line.fields
        );
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(text.as_bytes());
        }
    }
}

/// Log to the `log` fifo in `bundle` (nowhere if containerd did not make one).
pub fn init(bundle: &Path, debug: bool) {
    let path = bundle.join("log");
    // Non-blocking open: a fifo nobody reads would block a plain open for good.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path);
    let Ok(file) = file else { return };
    // Blocking writes from now on: a full fifo waits for containerd rather than losing lines.
    if let Ok(flags) = rustix::fs::fcntl_getfl(&file) {
        let _ = rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK);
    }
    let max = if debug { Level::DEBUG } else { Level::INFO };
    let layer = Logfmt {
        max,
        out: Mutex::new(file),
    };
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_when_they_need_it() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("two words"), "\"two words\"");
        assert_eq!(quote("say \"x\"\n"), "\"say \\\"x\\\"\\n\"");
        assert_eq!(quote(""), "\"\"");
    }
}
