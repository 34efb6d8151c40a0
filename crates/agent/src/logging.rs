//! Logs as JSON lines on stderr: one object per event with `time`, `level`, `msg`,
//! `source` ("agent") and the event's own fields (keys in alphabetical order).

use serde_json::{Map, Value};
use std::io::Write;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

struct JsonLines {
    max: Level,
    out: Mutex<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(name(field), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(name(field), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(name(field), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(name(field), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(name(field), Value::from(format!("{value:?}")));
    }
}

fn name(field: &Field) -> String {
    match field.name() {
        "message" => "msg".to_string(),
        n => n.to_string(),
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

/// One log line, without its newline.
pub fn line(time: &str, level: &Level, fields: Map<String, Value>) -> String {
    let mut m = Map::new();
    m.insert("time".into(), time.into());
    m.insert("level".into(), level_name(level).into());
    m.insert("source".into(), "agent".into());
    m.extend(fields);
    Value::Object(m).to_string()
}

impl<S: Subscriber> Layer<S> for JsonLines {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.level() <= &self.max
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let l = line(&time, event.metadata().level(), f.0);
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{l}");
        }
    }
}

/// Installs the logger; `level` is error, warn, info, debug or trace.
pub fn init(level: &str) -> Result<(), String> {
    let max = match level.to_ascii_lowercase().as_str() {
        "error" => Level::ERROR,
        "warn" | "warning" => Level::WARN,
        "info" => Level::INFO,
        "debug" => Level::DEBUG,
        "trace" => Level::TRACE,
        other => return Err(format!("unknown log level {other:?}")),
    };
    let layer = JsonLines {
        max,
        out: Mutex::new(Box::new(std::io::stderr())),
    };
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .map_err(|e| format!("install the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_one_json_object_with_time_level_message_and_fields() {
        let mut f = Map::new();
        f.insert("msg".into(), "serving".into());
        f.insert("address".into(), "unix:///a \"b\"".into());
        let l = line("2026-01-01T00:00:00.000Z", &Level::WARN, f);
        assert!(!l.contains('\n'));
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "warning");
        assert_eq!(v["msg"], "serving");
        assert_eq!(v["source"], "agent");
        assert_eq!(v["address"], "unix:///a \"b\"");
        assert_eq!(v["time"], "2026-01-01T00:00:00.000Z");
    }
}
