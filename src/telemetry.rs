//! Logging: `tracing` to stdout through a non-blocking writer (the request path never waits on the
//! terminal), as logfmt or JSON. The access log is the target `edgesplit::access`, one event per request.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. Keep the guard alive: dropping it flushes the last lines.
pub fn init(log: &LogConfig) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(false);
    let result = match log.format {
        // No `target` key in JSON: the access log owns a `target` field (primary/staging).
        LogFormat::Json => builder.json().flatten_event(true).with_target(false).try_init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
    };
    if let Err(e) = result {
        eprintln!("edgesplit: logging was already set up: {e}");
    }
    guard
}

/// `ts=… level=info logger=… msg="…" key=value …`, one line per event.
pub(crate) struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("ts=")?;
        SystemTime.format_time(&mut w)?;
        // `logger`, not `target`: the access log has a `target` field of its own (primary/staging).
        write!(w, " level={} logger={}", meta.level().as_str().to_ascii_lowercase(), meta.target())?;
        let mut visitor = Visitor { w: &mut w, result: Ok(()) };
        event.record(&mut visitor);
        visitor.result?;
        writeln!(w)
    }
}

struct Visitor<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Visitor<'_, '_> {
    fn pair(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let key = if field.name() == "message" { "msg" } else { field.name() };
        self.result = write!(self.w, " {key}=").and_then(|_| write_value(self.w, value));
    }
}

impl Visit for Visitor<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field, &format!("{value:?}"));
    }
}

/// Writes a logfmt value, quoted when it has to be, with `"`, `\` and control characters escaped (so a
/// hostile Host header cannot forge a log line).
fn write_value(w: &mut Writer<'_>, v: &str) -> fmt::Result {
    let plain = !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if plain {
        return w.write_str(v);
    }
    w.write_char('"')?;
    for c in v.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            '\n' => w.write_str("\\n")?,
            '\r' => w.write_str("\\r")?,
            '\t' => w.write_str("\\t")?,
            c if c.is_control() => write!(w, "\\u{{{:x}}}", c as u32)?,
            c => w.write_char(c)?,
        }
    }
    w.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(v: &str) -> String {
        let mut s = String::new();
        write_value(&mut Writer::new(&mut s), v).unwrap();
        s
    }

    #[test]
    fn logfmt_values_are_quoted_and_escaped() {
        assert_eq!(quoted("primary"), "primary");
        assert_eq!(quoted(""), "\"\"");
        assert_eq!(quoted("a b"), "\"a b\"");
        assert_eq!(quoted("x=1"), "\"x=1\"");
        assert_eq!(quoted("evil\nlevel=error"), "\"evil\\nlevel=error\"");
        assert_eq!(quoted("say \"hi\""), "\"say \\\"hi\\\"\"");
    }
}
