//! Reading saved alerts: Falco (object, array, JSON Lines) and Tetragon export lines, told
//! apart item by item (`teflon_tetragon::any::sniff`), so a file a log pipeline filled from
//! both sources is read whole. Malformed items are reported by line and skipped.

use teflon_core::Alert;
use teflon_tetragon::Event;

/// One item that could not be read as an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line in the input.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Every alert of one input, in order; broken items become [`BadLine`]s in place. Valid
/// Tetragon events of kinds Teflon does not act on (`process_loader`, `rate_limit_info`, …)
/// are skipped silently.
pub fn read_alerts(bytes: &[u8]) -> Vec<Result<Alert, BadLine>> {
    teflon_tetragon::any::events_from_slice(bytes)
        .filter_map(|r| match r {
            Ok(Event::Alert(alert)) => Some(Ok(alert)),
            Ok(Event::Ignored(_)) => None,
            Err(e) => Some(Err(BadLine {
                line: e.line,
                message: e.message,
            })),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FALCO: &str = include_str!("../tests/fixtures/alerts.jsonl");
    const TETRAGON: &str = include_str!("../tests/fixtures/tetragon-docs-examples.jsonl");

    #[test]
    fn a_tetragon_line_inside_a_falco_file_is_read_as_tetragon() {
        let tetragon = TETRAGON.lines().next().unwrap();
        let first = FALCO.lines().next().unwrap();
        let input = format!("{first}\n{tetragon}\n{first}\n");
        let read = read_alerts(input.as_bytes());
        assert_eq!(read.len(), 3, "{read:?}");
        let sources: Vec<&str> = read
            .iter()
            .map(|r| r.as_ref().unwrap().source.as_str())
            .collect();
        assert_eq!(sources[1], "tetragon");
        assert_ne!(sources[0], "tetragon");
    }

    #[test]
    fn a_broken_line_is_reported_in_the_format_its_keys_name() {
        let input = "{\"process_exec\": {\"process\": \n{\"output\": \"x\", \"rule\": }\n";
        let read = read_alerts(input.as_bytes());
        let lines: Vec<usize> = read.iter().map(|r| r.as_ref().unwrap_err().line).collect();
        assert_eq!(lines, [1, 2]);
    }
}
