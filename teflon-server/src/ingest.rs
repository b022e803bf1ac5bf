//! Request bodies into alerts, all or nothing: the first problem refuses the whole body with
//! its line and column (SPEC §6).

use serde::Serialize;
use teflon_core::Alert;

/// Which wire format a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Falco `json_output` / `http_output`, falcosidekick: object, array or JSON Lines.
    Falco,
    /// Tetragon JSON export lines.
    Tetragon,
}

/// A body that could not be read as alerts; the 400 response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}, column {column}: {error}")]
pub struct IngestError {
    /// What is wrong.
    pub error: String,
    /// 1-based line of the first problem (0 when the body is empty).
    pub line: usize,
    /// 1-based column (0 when the body is empty).
    pub column: usize,
}

impl From<teflon_falco::ParseError> for IngestError {
    fn from(e: teflon_falco::ParseError) -> Self {
        let error = match &e {
            teflon_falco::ParseError::Invalid { message, .. } => message.clone(),
            other => other.to_string(),
        };
        IngestError {
            error,
            line: e.line(),
            column: e.column(),
        }
    }
}

/// Every alert of `body`, or the first problem.
pub fn parse(format: Format, body: &[u8]) -> Result<Vec<Alert>, IngestError> {
    match format {
        Format::Falco => teflon_falco::parse_batch(body).map_err(|e| {
            let mut e = IngestError::from(e);
            if looks_like_tetragon(body, e.line) {
                e.error.push_str(
                    " (this is a Tetragon event: send Tetragon export lines to /v1/tetragon)",
                );
            }
            e
        }),
        Format::Tetragon => parse_tetragon(body),
    }
}

/// True when the item on which the Falco parse failed (at `line`) is a Tetragon event, by the
/// one per-item sniffer (for the hint of a misrouted line).
fn looks_like_tetragon(body: &[u8], line: usize) -> bool {
    teflon_falco::framing::SliceFrames::new(body)
        .take_while(|(first, _)| *first <= line)
        .last()
        .is_some_and(|(_, item)| {
            teflon_tetragon::any::sniff(item) == Some(teflon_tetragon::any::Format::Tetragon)
        })
}

/// Tetragon events Teflon does not act on (valid, but no alert) are dropped here. A body in
/// which nothing is a Tetragon event (a Falco alert, `{"foo":1}`) is refused, so that a sender
/// wired to the wrong endpoint learns it instead of being told its lines were accepted.
fn parse_tetragon(body: &[u8]) -> Result<Vec<Alert>, IngestError> {
    let events = teflon_tetragon::parse_batch(body).map_err(IngestError::from)?;
    let mut alerts = Vec::with_capacity(events.len());
    let mut tetragon = false;
    let mut first_other: Option<String> = None;
    for event in events {
        match event {
            teflon_tetragon::Event::Alert(a) => {
                tetragon = true;
                alerts.push(a);
            }
            teflon_tetragon::Event::Ignored(i) if i.is_tetragon_kind() => tetragon = true,
            teflon_tetragon::Event::Ignored(i) => {
                first_other.get_or_insert(i.event_type);
            }
        }
    }
    match first_other {
        Some(key) if !tetragon => {
            let falco = teflon_falco::framing::SliceFrames::new(body)
                .next()
                .is_some_and(|(_, item)| {
                    teflon_tetragon::any::sniff(item) == Some(teflon_tetragon::any::Format::Falco)
                });
            let error = if falco {
                "no Tetragon event in this body: it holds Falco alerts; send those to /v1/alerts"
                    .to_owned()
            } else {
                format!(
                    "no Tetragon event in this body: the first object's key is `{key}`, not a Tetragon event kind ({})",
                    teflon_tetragon::SUPPORTED.join(", ")
                )
            };
            Err(IngestError {
                error,
                line: 0,
                column: 0,
            })
        }
        _ => Ok(alerts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str =
        include_str!("../tests/fixtures/falco/01-terminal-shell-k8s-pod-syscall.json");

    #[test]
    fn one_object_an_array_and_json_lines_are_read() {
        assert_eq!(parse(Format::Falco, ONE.as_bytes()).unwrap().len(), 1);
        let arr = format!("[{},{}]", ONE.trim(), ONE.trim());
        assert_eq!(parse(Format::Falco, arr.as_bytes()).unwrap().len(), 2);
        let lines = format!(
            "{}\n{}\n",
            ONE.trim().replace('\n', ""),
            ONE.trim().replace('\n', "")
        );
        assert_eq!(parse(Format::Falco, lines.as_bytes()).unwrap().len(), 2);
    }

    #[test]
    fn a_broken_second_line_refuses_the_batch_with_its_position() {
        let body = format!("{}\n{{\"rule\": }}\n", ONE.trim().replace('\n', ""));
        let err = parse(Format::Falco, body.as_bytes()).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.column > 0);
    }

    const TETRAGON: &str = include_str!("../tests/fixtures/tetragon/docs-examples.jsonl");

    #[test]
    fn a_falco_alert_or_an_unknown_object_on_the_tetragon_endpoint_is_refused_with_the_reason() {
        let err = parse(Format::Tetragon, ONE.as_bytes()).unwrap_err();
        assert!(err.error.contains("send those to /v1/alerts"), "{err}");
        let err = parse(Format::Tetragon, b"{\"foo\":1}\n{\"bar\":2}").unwrap_err();
        assert!(err.error.contains("`foo`"), "{err}");
        // Events Teflon does not act on are still Tetragon's: accepted, no alert.
        let loader =
            br#"{"process_loader":{"process":{"binary":"/bin/x"}},"time":"2024-01-01T00:00:00Z"}"#;
        assert_eq!(parse(Format::Tetragon, loader).unwrap().len(), 0);
        // An unknown object among real events is ignored, as before.
        let mixed = format!("{}\n{{\"foo\":1}}\n", TETRAGON.lines().next().unwrap());
        assert_eq!(parse(Format::Tetragon, mixed.as_bytes()).unwrap().len(), 1);
        assert!(
            !parse(Format::Tetragon, TETRAGON.as_bytes())
                .unwrap()
                .is_empty()
        );
        // An empty array holds nothing of any kind: not misrouted.
        assert_eq!(parse(Format::Tetragon, b"[]").unwrap().len(), 0);
    }

    #[test]
    fn a_tetragon_event_on_the_falco_endpoint_is_refused_with_a_hint() {
        let err = parse(Format::Falco, TETRAGON.as_bytes()).unwrap_err();
        assert!(
            err.error
                .contains("send Tetragon export lines to /v1/tetragon"),
            "{err}"
        );
        let err = parse(Format::Falco, b"{\"foo\":1}").unwrap_err();
        assert!(!err.error.contains("Tetragon"), "{err}");
        // Told per line: a Tetragon line after Falco alerts gets the hint at its own line.
        let body = format!(
            "{}\n{}\n",
            ONE.trim().replace('\n', ""),
            TETRAGON.lines().next().unwrap()
        );
        let err = parse(Format::Falco, body.as_bytes()).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        assert!(err.error.contains("/v1/tetragon"), "{err}");
    }
}
