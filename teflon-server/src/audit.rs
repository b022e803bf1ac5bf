//! The audit log (JSON Lines, one line per decision) and the in-memory ring behind
//! `GET /v1/decisions`.
//!
//! A line is the replay record (`DecisionRecord`, SPEC §5) plus `alert_id`, `outcome` and
//! timings. Lines go through a buffer that the engine task flushes a few milliseconds after
//! the first unflushed line, and on shutdown: one `write` per interval, not per alert. A line
//! enters the ring (and so `GET /v1/decisions`) when it has been written (see [`AuditHealth`]
//! for writes that fail).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use teflon_core::{DecisionRecord, Outcome, Timestamp};
use teflon_metrics::events::AuditLinesLost;

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
    /// Attempts of the executed action's API calls (`1 + retries`); absent when nothing was
    /// executed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// When the server received the alert (null for re-checks after a restart of the record).
    pub received_at: Option<Timestamp>,
    /// When the action's API call finished, if one was made.
    pub acted_at: Option<Timestamp>,
    /// Received → decided, microseconds.
    pub decision_latency_us: Option<u64>,
    /// Decided → action done, milliseconds.
    pub action_latency_ms: Option<f64>,
}

/// The keys after the decision's, in the same order as [`AuditRecord`]'s (borrowed: for
/// writing a line without building an owned record).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct AuditTail<'a> {
    /// See [`AuditRecord::alert_id`].
    pub alert_id: &'a str,
    /// See [`AuditRecord::outcome`].
    pub outcome: Option<&'static str>,
    /// See [`AuditRecord::outcome_message`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_message: Option<&'a str>,
    /// See [`AuditRecord::attempts`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// See [`AuditRecord::received_at`].
    pub received_at: Option<Timestamp>,
    /// See [`AuditRecord::acted_at`].
    pub acted_at: Option<Timestamp>,
    /// See [`AuditRecord::decision_latency_us`].
    pub decision_latency_us: Option<u64>,
    /// See [`AuditRecord::action_latency_ms`].
    pub action_latency_ms: Option<f64>,
}

/// Append the line of `decision` (a `DecisionRecord`, owned or borrowed) and `tail` to `out`,
/// without the cost of `#[serde(flatten)]` (which buffers through a map): the decision's
/// object, then the tail's keys in place of its closing brace.
pub fn write_line(
    out: &mut Vec<u8>,
    decision: &impl Serialize,
    tail: &AuditTail<'_>,
) -> serde_json::Result<()> {
    let start = out.len();
    serde_json::to_writer(&mut *out, decision)?;
    // A decision record is an object with keys: `{…}` of at least one key.
    if out.len() < start + 3 || out.pop() != Some(b'}') {
        out.truncate(start);
        return Err(serde_json::Error::io(io::Error::other(
            "an audit record's decision must serialize as a non-empty JSON object",
        )));
    }
    let tail_start = out.len();
    serde_json::to_writer(&mut *out, tail)?;
    // The tail's `{` becomes the `,` after the decision's last key.
    out[tail_start] = b',';
    Ok(())
}

impl<'a> AuditTail<'a> {
    /// The tail of a decision as it is taken: nothing executed yet.
    pub fn decided(
        alert_id: &'a str,
        received_at: Option<Timestamp>,
        decision_latency_us: Option<u64>,
    ) -> Self {
        AuditTail {
            alert_id,
            outcome: None,
            outcome_message: None,
            attempts: None,
            received_at,
            acted_at: None,
            decision_latency_us,
            action_latency_ms: None,
        }
    }
}

impl AuditRecord {
    /// An owned record of `decision` and `tail` (kept while its action runs).
    pub fn new(decision: DecisionRecord, tail: &AuditTail<'_>) -> Self {
        AuditRecord {
            decision,
            alert_id: tail.alert_id.to_owned(),
            outcome: tail.outcome,
            outcome_message: tail.outcome_message.map(str::to_owned),
            attempts: tail.attempts,
            received_at: tail.received_at,
            acted_at: tail.acted_at,
            decision_latency_us: tail.decision_latency_us,
            action_latency_ms: tail.action_latency_ms,
        }
    }

    /// The JSON line, byte for byte what `serde_json::to_string(self)` gives.
    pub fn to_line(&self) -> serde_json::Result<String> {
        let mut out = Vec::with_capacity(512);
        self.write_line(&mut out)?;
        // serde_json writes UTF-8 only.
        String::from_utf8(out).map_err(|e| serde_json::Error::io(io::Error::other(e)))
    }

    /// The keys after the decision's.
    pub fn tail(&self) -> AuditTail<'_> {
        AuditTail {
            alert_id: &self.alert_id,
            outcome: self.outcome,
            outcome_message: self.outcome_message.as_deref(),
            attempts: self.attempts,
            received_at: self.received_at,
            acted_at: self.acted_at,
            decision_latency_us: self.decision_latency_us,
            action_latency_ms: self.action_latency_ms,
        }
    }

    /// Append the JSON line (no newline) to `out`.
    pub fn write_line(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        write_line(out, &self.decision, &self.tail())
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

/// Which of `wanted` (alert ids) have a record in the audit log at `path` (its rotated files
/// `path.1`, `path.2`… included): at start, the journaled alerts an earlier process already
/// decided and recorded.
pub fn recorded_ids(
    path: &Path,
    wanted: &std::collections::HashSet<String>,
) -> std::collections::HashSet<String> {
    #[derive(serde::Deserialize)]
    struct Id {
        alert_id: String,
    }
    let mut found = std::collections::HashSet::new();
    if wanted.is_empty() {
        return found;
    }
    let mut files = vec![path.to_path_buf()];
    for n in 1.. {
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(format!(".{n}"));
        let rotated = PathBuf::from(rotated);
        if !rotated.exists() {
            break;
        }
        files.push(rotated);
    }
    for file in files {
        let Ok(text) = std::fs::read(&file) else {
            continue;
        };
        for line in text.split(|b| *b == b'\n') {
            if let Ok(Id { alert_id }) = serde_json::from_slice::<Id>(line)
                && wanted.contains(&alert_id)
            {
                found.insert(alert_id);
            }
        }
    }
    found
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

/// Lines buffered at most before a flush, whatever the timer: bounds the buffer (and the
/// memory of the lines waiting for the ring) when decisions come faster than the flush interval.
pub const MAX_UNFLUSHED: usize = 1024;

/// Whether the audit log's writes succeed; shared with `/readyz` (not ready while failing, so
/// the Service sends alerts elsewhere) and counted as `teflon_audit_lines_lost_total`.
#[derive(Debug, Default)]
pub struct AuditHealth {
    failing: AtomicBool,
    lines_lost: AtomicU64,
}

impl AuditHealth {
    /// False from a failed write until a flush succeeds again.
    pub fn is_ok(&self) -> bool {
        !self.failing.load(Ordering::Relaxed)
    }

    /// Lines that could not be written.
    pub fn lines_lost(&self) -> u64 {
        self.lines_lost.load(Ordering::Relaxed)
    }
}

/// Appends audit lines to a file (or nowhere) and keeps the latest in a ring.
#[derive(Debug)]
pub struct AuditLog {
    out: Option<BufWriter<File>>,
    path: Option<PathBuf>,
    ring: Arc<DecisionRing>,
    /// Lines appended since the last flush; they enter the ring when they reach the file.
    unflushed: Vec<Arc<str>>,
    scratch: Vec<u8>,
    lines: u64,
    health: Arc<AuditHealth>,
    /// Lines that are not decisions ([`AuditLog::append_event`]) wait for the next flush.
    events_unflushed: bool,
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
            unflushed: Vec::new(),
            scratch: Vec::with_capacity(1024),
            lines: 0,
            health: Arc::default(),
            events_unflushed: false,
        })
    }

    /// The health of the writes, for `/readyz`.
    pub fn health(&self) -> Arc<AuditHealth> {
        self.health.clone()
    }

    /// A failed write: `lost` lines are gone. Logged once per failing streak (a full disk would
    /// otherwise log once per decision), counted always.
    fn failed(&self, e: &io::Error, lost: u64) {
        if lost > 0 {
            self.health.lines_lost.fetch_add(lost, Ordering::Relaxed);
            AuditLinesLost(lost).emit();
        }
        if !self.health.failing.swap(true, Ordering::Relaxed) {
            tracing::error!(
                error = %e,
                path = ?self.path,
                lines_lost = self.health.lines_lost(),
                "audit log write failed: not ready until a write succeeds; lost lines are counted in teflon_audit_lines_lost_total"
            );
        }
    }

    /// A successful flush ends a failing streak.
    fn succeeded(&self) {
        if self.health.failing.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                path = ?self.path,
                lines_lost = self.health.lines_lost(),
                "audit log writes succeed again"
            );
        }
    }

    /// Append one record to the buffer; it reaches the file and the ring at the next
    /// [`AuditLog::flush`] (at the latest after [`MAX_UNFLUSHED`] lines).
    pub fn append(&mut self, record: &AuditRecord) {
        self.append_parts(&record.decision, &record.tail());
    }

    /// [`AuditLog::append`] from a decision record (owned or borrowed) and the other keys.
    pub fn append_parts(&mut self, decision: &impl Serialize, tail: &AuditTail<'_>) {
        self.scratch.clear();
        if let Err(e) = write_line(&mut self.scratch, decision, tail) {
            tracing::error!(error = %e, "cannot serialize an audit record");
            return;
        }
        // serde_json writes UTF-8 only.
        let Ok(line) = std::str::from_utf8(&self.scratch) else {
            return;
        };
        self.unflushed.push(line.into());
        self.lines += 1;
        if let Some(out) = &mut self.out {
            self.scratch.push(b'\n');
            if let Err(e) = out.write_all(&self.scratch) {
                self.failed(&e, 1);
            }
        }
        if self.unflushed.len() >= MAX_UNFLUSHED {
            self.flush();
        }
    }

    /// Append a line that is not a decision (a release, `"event": "release"`): to the file,
    /// not to the ring of `GET /v1/decisions`; written at the next [`AuditLog::flush`].
    pub fn append_event(&mut self, event: &impl Serialize) {
        self.scratch.clear();
        if let Err(e) = serde_json::to_writer(&mut self.scratch, event) {
            tracing::error!(error = %e, "cannot serialize an audit record");
            return;
        }
        self.lines += 1;
        if let Some(out) = &mut self.out {
            self.scratch.push(b'\n');
            if let Err(e) = out.write_all(&self.scratch) {
                self.failed(&e, 1);
            }
        }
        self.events_unflushed = true;
    }

    /// True when appended lines wait for [`AuditLog::flush`].
    pub fn has_unflushed(&self) -> bool {
        !self.unflushed.is_empty() || self.events_unflushed
    }

    /// Write the buffer to the file (one `write` for every line since the last flush), then
    /// publish those lines in the ring. A failed write keeps the bytes buffered for the next
    /// flush, which retries them even without new lines (they are lost only when the buffer is
    /// full too, or at shutdown).
    pub fn flush(&mut self) {
        let failed_bytes = self.out.as_ref().is_some_and(|o| !o.buffer().is_empty());
        if self.unflushed.is_empty() && !failed_bytes && !self.events_unflushed {
            return;
        }
        self.events_unflushed = false;
        if let Some(out) = &mut self.out {
            match out.flush() {
                Ok(()) => self.succeeded(),
                Err(e) => self.failed(&e, 0),
            }
        }
        self.ring.extend(self.unflushed.drain(..));
    }

    /// Flush and fsync (shutdown).
    pub fn sync(&mut self) {
        self.flush();
        // What is still buffered now is never written.
        if let Some(out) = &mut self.out
            && !out.buffer().is_empty()
        {
            let lost = out.buffer().iter().filter(|b| **b == b'\n').count() as u64;
            let e = io::Error::other("still buffered at shutdown");
            self.failed(&e, lost);
        }
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
        self.extend(std::iter::once(line));
    }

    /// Add records, oldest first, under one lock.
    pub fn extend(&self, lines: impl IntoIterator<Item = Arc<str>>) {
        let mut q = self.lock();
        for line in lines {
            if q.len() == self.capacity {
                q.pop_front();
            }
            q.push_back(line);
        }
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
            attempts: Some(3),
            received_at: Some(Timestamp::from_secs(5)),
            acted_at: None,
            decision_latency_us: Some(12),
            action_latency_ms: None,
        }
        .with_outcome(&Outcome::Failed("boom".into()));
        assert_eq!(rec.to_line().unwrap(), serde_json::to_string(&rec).unwrap());
        assert!(rec.to_line().unwrap().ends_with(r#""outcome":"failed","outcome_message":"boom","attempts":3,"received_at":"1970-01-01T00:00:05.000000000Z","acted_at":null,"decision_latency_us":12,"action_latency_ms":null}"#));
    }

    #[test]
    fn a_decision_that_is_not_an_object_with_keys_is_an_error_and_writes_nothing() {
        let tail = AuditTail::decided("a-1", None, None);
        for decision in [
            serde_json::json!({}),
            serde_json::json!([1]),
            serde_json::json!(7),
        ] {
            let mut out = b"kept".to_vec();
            assert!(
                write_line(&mut out, &decision, &tail).is_err(),
                "{decision}"
            );
            assert_eq!(out, b"kept");
        }
        let mut out = Vec::new();
        write_line(&mut out, &serde_json::json!({"seq": 1}), &tail).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"seq":1,"alert_id":"a-1","outcome":null,"received_at":null,"acted_at":null,"decision_latency_us":null,"action_latency_ms":null}"#
        );
    }

    #[test]
    fn a_line_reaches_the_ring_when_it_reaches_the_file() {
        let dir = std::env::temp_dir().join(format!("teflon-audit-{}", std::process::id()));
        let path = dir.join("audit.jsonl");
        let _ = std::fs::remove_file(&path);
        let ring = Arc::new(DecisionRing::new(10));
        let mut log = AuditLog::open(Some(&path), ring.clone()).unwrap();
        let decision: DecisionRecord = serde_json::from_str(
            r#"{"seq":7,"time":"2023-05-25T13:44:05.478445995Z","rule":"r","priority":"Critical","target":null,"workload":null,"policy":null,"verdict":"skip","action":null,"reason":"no_match","dry_run":false}"#,
        )
        .unwrap();
        let rec = AuditRecord {
            decision,
            alert_id: "a-7".into(),
            outcome: None,
            outcome_message: None,
            attempts: None,
            received_at: None,
            acted_at: None,
            decision_latency_us: None,
            action_latency_ms: None,
        };
        log.append(&rec);
        log.append(&rec);
        assert!(log.has_unflushed());
        assert!(ring.is_empty(), "not in the ring before the flush");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "",
            "buffered, not written"
        );
        log.flush();
        assert!(!log.has_unflushed());
        assert_eq!(ring.len(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let line = rec.to_line().unwrap();
        assert_eq!(text, format!("{line}\n{line}\n"));
        assert_eq!(ring.latest_json(1), format!("[{line}]"));
        assert_eq!(log.lines(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_buffer_is_flushed_without_waiting_for_the_timer() {
        let ring = Arc::new(DecisionRing::new(MAX_UNFLUSHED * 2));
        let mut log = AuditLog::open(None, ring.clone()).unwrap();
        let tail = AuditTail::decided("a", None, None);
        let decision = serde_json::json!({"seq": 1});
        for _ in 0..MAX_UNFLUSHED - 1 {
            log.append_parts(&decision, &tail);
        }
        assert!(ring.is_empty());
        log.append_parts(&decision, &tail);
        assert_eq!(ring.len(), MAX_UNFLUSHED);
        assert!(!log.has_unflushed());
    }

    #[test]
    fn failed_writes_make_the_log_unhealthy_and_count_every_lost_line() {
        let ring = Arc::new(DecisionRing::new(10));
        // Writes to /dev/full fail with ENOSPC, like a full disk.
        let mut log = AuditLog::open(Some(Path::new("/dev/full")), ring).unwrap();
        let health = log.health();
        let tail = AuditTail::decided("a", None, None);
        let decision = serde_json::json!({"seq": 1, "rule": "x".repeat(1000)});
        log.append_parts(&decision, &tail);
        assert!(health.is_ok(), "buffered, not written yet");
        log.flush();
        assert!(!health.is_ok());
        assert_eq!(
            health.lines_lost(),
            0,
            "still buffered, retried at the next flush"
        );
        // ~1 KiB lines: the 256 KiB buffer fills, and lines that do not fit are lost.
        for _ in 0..400 {
            log.append_parts(&decision, &tail);
        }
        let lost_while_running = health.lines_lost();
        assert!(lost_while_running > 0);
        log.sync();
        // Every line is either lost while running or lost at shutdown.
        assert_eq!(health.lines_lost(), 401);
        assert!(!health.is_ok());
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
