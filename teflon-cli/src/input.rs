//! Reading saved alerts: Falco (object, array, JSON Lines) or Tetragon export lines, told apart
//! per input, with malformed items reported by line and skipped.

use teflon_core::Alert;

/// What kind of alerts an input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Falco / falcosidekick JSON.
    Falco,
    /// Tetragon JSON export (one event per line).
    Tetragon,
}

/// One item that could not be read as an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line in the input.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Top-level keys only a Tetragon export object has.
const TETRAGON_KEYS: [&str; 8] = [
    "process_exec",
    "process_exit",
    "process_kprobe",
    "process_tracepoint",
    "process_lsm",
    "process_uprobe",
    "process_loader",
    "node_name",
];

/// Tell Falco from Tetragon by the first JSON object of the input: Tetragon export objects have
/// `process_*` / `node_name` keys and no `rule`; anything else is read as Falco.
pub fn detect(bytes: &[u8]) -> InputKind {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != b'[')
        .unwrap_or(bytes.len());
    let rest = bytes.get(start..).unwrap_or_default();
    let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<serde_json::Value>();
    let first = match stream.next() {
        Some(Ok(v)) => v,
        // A broken first object: look at its text instead.
        _ => {
            let head =
                String::from_utf8_lossy(rest.get(..rest.len().min(4096)).unwrap_or_default())
                    .into_owned();
            let tetragon = TETRAGON_KEYS
                .iter()
                .any(|k| head.contains(&format!("\"{k}\"")))
                && !head.contains("\"rule\"");
            return if tetragon {
                InputKind::Tetragon
            } else {
                InputKind::Falco
            };
        }
    };
    match first.as_object() {
        Some(obj)
            if !obj.contains_key("rule") && TETRAGON_KEYS.iter().any(|k| obj.contains_key(*k)) =>
        {
            InputKind::Tetragon
        }
        _ => InputKind::Falco,
    }
}

/// Every alert of one input, in order; broken items become [`BadLine`]s in place.
pub fn read_alerts(bytes: &[u8]) -> Vec<Result<Alert, BadLine>> {
    match detect(bytes) {
        InputKind::Falco => teflon_falco::alerts_from_slice(bytes)
            .map(|r| {
                r.map_err(|e| BadLine {
                    line: e.line,
                    message: e.message,
                })
            })
            .collect(),
        InputKind::Tetragon => crate::tetragon_input::read(bytes),
    }
}
