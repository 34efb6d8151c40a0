//! Log lines in runc's two formats, because engines read them:
//! text: `time="2006-01-02T15:04:05Z" level=error msg="..."`;
//! json: `{"level":"error","msg":"...","time":"2006-01-02T15:04:05Z"}` (containerd's shim
//! shows the last error line's `msg` to the user).

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

struct RuncFormat {
    json: bool,
    max: Level,
    out: Mutex<Box<dyn Write + Send>>,
}

struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
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

/// One log line in the chosen format.
pub fn format_line(json: bool, level: &str, msg: &str, time: &str) -> String {
    if json {
        // serde_json's map is ordered by key: level, msg, time, as runc writes them.
        serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
    } else {
        format!("time={time:?} level={level} msg={msg:?}")
    }
}

impl<S: Subscriber> Layer<S> for RuncFormat {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.level() <= &self.max
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let line = format_line(self.json, level_name(event.metadata().level()), &m.0, &time);
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }
}

pub fn init(file: Option<&Path>, json: bool, debug: bool) -> Result<(), String> {
    let out: Box<dyn Write + Send> = match file {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("open log file {}: {e}", p.display()))?,
        ),
        None => Box::new(std::io::stderr()),
    };
    let layer = RuncFormat {
        json,
        max: if debug { Level::DEBUG } else { Level::INFO },
        out: Mutex::new(out),
    };
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_runcs_keys_in_order() {
        let l = format_line(true, "error", "bad \"x\"", "2026-01-01T00:00:00Z");
        assert_eq!(
            l,
            r#"{"level":"error","msg":"bad \"x\"","time":"2026-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn text_line_quotes_the_message() {
        let l = format_line(false, "error", "container does not exist", "T");
        assert_eq!(l, r#"time="T" level=error msg="container does not exist""#);
    }
}
