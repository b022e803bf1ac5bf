//! The audit log (JSON Lines, one line per decision) and the in-memory ring behind
//! `GET /v1/decisions`.
//!
//! A line is the replay record (`DecisionRecord`, SPEC §5) plus `alert_id`, `outcome` and
//! timings. Lines go through a buffer that the engine task flushes after every batch of
//! alerts and every outcome, and on shutdown: one `write` per batch, not per alert.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use teflon_core::{DecisionRecord, Outcome, Timestamp};

/// One audit line.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// The decision, in the replay format (flattened: its keys come first).
    #[serde(flatten)]
    pub decision: DecisionRecord,
    /// The alert's id: falcosidekick's `uuid`, else one the server assigned.
    pub alert_id: String,
    /// How the executed action ended (`success`, `gone`, `disruption_budget`, `failed`);
    /// null when nothing was executed (skip, defer, dry run, log).
    pub outcome: Option<&'static str>,
    /// Why a failed action failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_message: Option<String>,
    /// When the server received the alert (null for re-checks after a restart of the record).
    pub received_at: Option<Timestamp>,
    /// When the action's API call finished, if one was made.
    pub acted_at: Option<Timestamp>,
    /// Received → decided, microseconds.
    pub decision_latency_us: Option<u64>,
    /// Decided → action done, milliseconds.
    pub action_latency_ms: Option<f64>,
}

/// The keys after the decision's, in the same order as [`AuditRecord`]'s.
#[derive(Serialize)]
struct Tail<'a> {
    alert_id: &'a str,
    outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome_message: Option<&'a str>,
    received_at: Option<Timestamp>,
    acted_at: Option<Timestamp>,
    decision_latency_us: Option<u64>,
    action_latency_ms: Option<f64>,
}

impl AuditRecord {
    /// The JSON line, byte for byte what `serde_json::to_string(self)` gives, without the
    /// cost of `#[serde(flatten)]` (which buffers through a map): the decision's object, then
    /// the remaining keys spliced in before its closing brace.
    pub fn to_line(&self) -> serde_json::Result<String> {
        let mut line = serde_json::to_string(&self.decision)?;
        let tail = serde_json::to_string(&Tail {
            alert_id: &self.alert_id,
            outcome: self.outcome,
            outcome_message: self.outcome_message.as_deref(),
            received_at: self.received_at,
            acted_at: self.acted_at,
            decision_latency_us: self.decision_latency_us,
            action_latency_ms: self.action_latency_ms,
        })?;
        if line.ends_with('}') && tail.len() > 2 {
            line.pop();
            line.push(',');
            line.push_str(&tail[1..]);
        }
        Ok(line)
    }

    /// Set the outcome fields.
    pub fn with_outcome(mut self, outcome: &Outcome) -> Self {
        self.outcome = Some(outcome.as_str());
        if let Outcome::Failed(why) = outcome {
            self.outcome_message = Some(why.clone());
        }
        self
    }
}

/// The audit log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {source}")]
pub struct AuditError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// Appends audit lines to a file (or nowhere) and keeps the latest in a ring.
#[derive(Debug)]
pub struct AuditLog {
    out: Option<BufWriter<File>>,
    path: Option<PathBuf>,
    ring: Arc<DecisionRing>,
    lines: u64,
    write_errors: u64,
    unflushed: bool,
}

impl AuditLog {
    /// Open (append, create) `path`, or write nowhere when `None`.
    pub fn open(path: Option<&Path>, ring: Arc<DecisionRing>) -> Result<AuditLog, AuditError> {
        let out = match path {
            Some(p) => {
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| AuditError {
                        path: p.to_owned(),
                        source,
                    })?;
                }
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|source| AuditError {
                        path: p.to_owned(),
                        source,
                    })?;
                Some(BufWriter::with_capacity(256 * 1024, f))
            }
            None => None,
        };
        Ok(AuditLog {
            out,
            path: path.map(Path::to_owned),
            ring,
            lines: 0,
            write_errors: 0,
            unflushed: false,
        })
    }

    /// Append one record (buffered) and put it in the ring.
    pub fn append(&mut self, record: &AuditRecord) {
        let line = match record.to_line() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize an audit record");
                return;
            }
        };
        if let Some(out) = &mut self.out {
            let res = out
                .write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"));
            if let Err(e) = res {
                self.write_errors += 1;
                tracing::error!(error = %e, path = ?self.path, "audit log write failed");
            }
            self.unflushed = true;
        }
        self.lines += 1;
        self.ring.push(line.into());
    }

    /// Write the buffer to the file.
    pub fn flush(&mut self) {
        if !self.unflushed {
            return;
        }
        self.unflushed = false;
        if let Some(out) = &mut self.out
            && let Err(e) = out.flush()
        {
            self.write_errors += 1;
            tracing::error!(error = %e, path = ?self.path, "audit log flush failed");
        }
    }

    /// Flush and fsync (shutdown).
    pub fn sync(&mut self) {
        self.unflushed = true;
        self.flush();
        if let Some(out) = &mut self.out
            && let Err(e) = out.get_ref().sync_data()
        {
            tracing::warn!(error = %e, "audit log fsync failed");
        }
    }

    /// Records appended so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }
}

/// The latest decisions as serialized JSON objects, newest last.
#[derive(Debug)]
pub struct DecisionRing {
    inner: Mutex<VecDeque<Arc<str>>>,
    capacity: usize,
}

impl DecisionRing {
    /// A ring keeping the latest `capacity` records.
    pub fn new(capacity: usize) -> Self {
        DecisionRing {
            inner: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity: capacity.max(1),
        }
    }

    /// The most records it keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<str>>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Add a record.
    pub fn push(&self, line: Arc<str>) {
        let mut q = self.lock();
        if q.len() == self.capacity {
            q.pop_front();
        }
        q.push_back(line);
    }

    /// The latest `limit` records as a JSON array, newest first.
    pub fn latest_json(&self, limit: usize) -> String {
        let lines: Vec<Arc<str>> = self.lock().iter().rev().take(limit).cloned().collect();
        let mut out = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
        out.push('[');
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(l);
        }
        out.push(']');
        out
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spliced_line_equals_the_flattened_serialization() {
        let decision: DecisionRecord = serde_json::from_str(
            r#"{"seq":0,"time":"2023-05-25T13:44:05.478445995Z","rule":"Terminal shell in container","priority":"Critical","target":{"namespace":"default","pod":"kubecon"},"workload":{"kind":"Deployment","namespace":"default","name":"web"},"policy":"reap-shells","verdict":"act","action":"delete","reason":"matched","dry_run":false}"#,
        )
        .unwrap();
        let rec = AuditRecord {
            decision,
            alert_id: "a-1".into(),
            outcome: None,
            outcome_message: None,
            received_at: Some(Timestamp::from_secs(5)),
            acted_at: None,
            decision_latency_us: Some(12),
            action_latency_ms: None,
        }
        .with_outcome(&Outcome::Failed("boom".into()));
        assert_eq!(rec.to_line().unwrap(), serde_json::to_string(&rec).unwrap());
        assert!(rec.to_line().unwrap().ends_with(r#""outcome":"failed","outcome_message":"boom","received_at":"1970-01-01T00:00:05.000000000Z","acted_at":null,"decision_latency_us":12,"action_latency_ms":null}"#));
    }

    #[test]
    fn the_ring_returns_the_newest_first_and_forgets_the_oldest() {
        let ring = DecisionRing::new(3);
        for i in 0..5 {
            ring.push(format!("{{\"seq\":{i}}}").into());
        }
        assert_eq!(ring.latest_json(10), r#"[{"seq":4},{"seq":3},{"seq":2}]"#);
        assert_eq!(ring.latest_json(1), r#"[{"seq":4}]"#);
        assert_eq!(ring.latest_json(0), "[]");
    }
}
