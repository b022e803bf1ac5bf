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
        Format::Falco => teflon_falco::parse_batch(body).map_err(IngestError::from),
        Format::Tetragon => parse_tetragon(body),
    }
}

/// Tetragon events Teflon does not act on (valid, but no alert) are dropped here.
fn parse_tetragon(body: &[u8]) -> Result<Vec<Alert>, IngestError> {
    let events = teflon_tetragon::parse_batch(body).map_err(IngestError::from)?;
    Ok(events
        .into_iter()
        .filter_map(teflon_tetragon::Event::into_alert)
        .collect())
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
}
