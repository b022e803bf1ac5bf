//! Structured logs: `tracing-subscriber` with text or JSON output, filtered by `RUST_LOG`
//! (default `info`).
//!
//! Field values often come from alerts (pod names, rules, error messages quoting a body), so
//! text logs escape them ([`EscapedFields`]): a value cannot end a line and forge the next one,
//! nor carry terminal escape sequences. JSON logs are escaped by JSON itself.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::util::SubscriberInitExt;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?} (expected text or json)"
            )),
        }
    }
}

/// Install the global subscriber (logs go to stderr, in colour only when stderr is a
/// terminal). `default_filter` applies when `RUST_LOG` is unset. A second call does nothing.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = match format {
        LogFormat::Text => text_subscriber(std::io::stderr, filter, ansi)
            .try_init()
            .map_err(|_| ()),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
            .map_err(|_| ()),
    };
}

/// The text-log subscriber: escaped field values, written to `writer`.
pub fn text_subscriber<W>(
    writer: W,
    filter: EnvFilter,
    ansi: bool,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer)
        .fmt_fields(EscapedFields)
        .finish()
}

/// Formats event and span fields as `key=value`, escaped: control characters (newlines, ESC,
/// …) are written as `\n`, `\u{1b}`…; a value with spaces or `=` is quoted. The message is
/// escaped but not quoted.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'a> MakeVisitor<Writer<'a>> for EscapedFields {
    type Visitor = EscapingVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        EscapingVisitor {
            writer: target,
            first: true,
            result: Ok(()),
        }
    }
}

/// The visitor of [`EscapedFields`].
#[derive(Debug)]
pub struct EscapingVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: fmt::Result,
}

/// Write `text` with control characters escaped.
fn escape_controls(out: &mut dyn fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control() => write!(out, "\\u{{{:x}}}", u32::from(c))?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// Write `text` quoted, with quotes, backslashes and control characters escaped.
fn quoted(out: &mut dyn fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control() => write!(out, "\\u{{{:x}}}", u32::from(c))?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// Whether a value must be quoted to stay one unambiguous `key=value` token.
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '=')
}

impl EscapingVisitor<'_> {
    fn field(
        &mut self,
        field: &Field,
        write_value: impl FnOnce(&mut dyn fmt::Write) -> fmt::Result,
    ) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        let name = name.strip_prefix("r#").unwrap_or(name);
        let mut out = String::new();
        if !self.first {
            out.push(' ');
        }
        self.first = false;
        let styled = self.writer.has_ansi_escapes();
        if name != "message" {
            if styled {
                out.push_str("\x1b[3m");
            }
            out.push_str(name);
            if styled {
                out.push_str("\x1b[0m");
            }
            out.push('=');
        }
        self.result = write_value(&mut out).and_then(|()| self.writer.write_str(&out));
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let message = field.name() == "message";
        self.field(field, |out| {
            if message {
                escape_controls(out, value)
            } else if needs_quotes(value) {
                quoted(out, value)
            } else {
                out.write_str(value)
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let message = field.name() == "message";
        let text = format!("{value:?}");
        self.field(field, |out| {
            // `Debug` strings are quoted and escaped already.
            let debug_string = text.len() >= 2 && text.starts_with('"') && text.ends_with('"');
            if message || debug_string {
                escape_controls(out, &text)
            } else if needs_quotes(&text) {
                quoted(out, &text)
            } else {
                out.write_str(&text)
            }
        });
    }
}

impl VisitOutput<fmt::Result> for EscapingVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for EscapingVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(ansi: bool, log: impl FnOnce()) -> String {
        let buf = Buffer::default();
        let out = buf.clone();
        let subscriber = text_subscriber(move || out.clone(), EnvFilter::new("info"), ansi);
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn values_from_alerts_cannot_forge_lines_or_carry_terminal_escapes() {
        let pod = "web-1\n2026-12-01T00:00:00Z  INFO teflon: forged line";
        let rule = "\u{1b}[31mred\u{1b}[0m";
        let text = logged(false, || {
            let span = tracing::info_span!("alert", rule = %rule);
            let _enter = span.enter();
            tracing::info!(
                namespace = %"shop",
                pod = %pod,
                policy = "reap shells",
                path = ?Some("/tmp/a\nb"),
                "acting on {pod}"
            );
        });
        assert_eq!(text.matches('\n').count(), 1, "one line: {text:?}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains(r#"rule="\u{1b}[31mred\u{1b}[0m""#), "{text}");
        assert!(text.contains("namespace=shop "), "{text}");
        assert!(
            text.contains(r#"pod="web-1\n2026-12-01T00:00:00Z  INFO teflon: forged line""#),
            "{text}"
        );
        assert!(text.contains(r#"policy="reap shells""#), "{text}");
        assert!(text.contains(r#"path=Some("/tmp/a\nb")"#), "{text}");
        assert!(
            text.contains(r"acting on web-1\n2026-12-01T00:00:00Z  INFO teflon: forged line"),
            "{text}"
        );
    }

    #[test]
    fn plain_values_stay_plain_and_names_are_styled_only_on_terminals() {
        let text = logged(
            false,
            || tracing::info!(seq = 7, action = %"delete", "decided"),
        );
        assert!(text.ends_with("decided seq=7 action=delete\n"), "{text:?}");
        let text = logged(true, || tracing::info!(seq = 7, "decided"));
        assert!(text.contains("\u{1b}[3mseq\u{1b}[0m=7"), "{text:?}");
    }
}
