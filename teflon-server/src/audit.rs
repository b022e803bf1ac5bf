//! The audit log (JSON Lines, one line per decision) and the in-memory ring behind
//! `GET /v1/decisions`.
//!
//! A line is the replay record (`DecisionRecord`, SPEC §5) plus `alert_id`, `outcome` and
//! timings. A line goes through three stages, each counted:
//!
//! 1. [`AuditLog::append`]: serialized into the buffer ([`AuditLog::lines`]);
//! 2. [`AuditLog::flush`]: written to the file, one `write` for every line since the last
//!    flush; the engine task flushes a few milliseconds after the first unflushed line, and
//!    after [`MAX_UNFLUSHED`] lines. The line then enters the ring (and so
//!    `GET /v1/decisions`) ([`AuditLog::flushed_lines`]);
//! 3. [`AuditLog::sync`]: fsynced, so it survives a crash of the machine
//!    ([`AuditLog::durable_lines`]); at shutdown, and for each rotated file (on a thread of
//!    its own, so a slow disk does not hold up the engine task).
//!
//! On open, a torn last line (a crash cut a write short) is moved aside to
//! `<audit_log>.torn-<unix time>` before anything is appended, so every line of the log stays
//! valid JSON. When the file reaches `audit_max_bytes` it is rotated at the next flush: renamed
//! to `<audit_log>.1` (older ones shift to `.2` … `.<audit_max_files>`, the oldest is
//! deleted), a new file is started, and the old one and the directory are fsynced; log
//! shippers that follow renames (Vector's `file` source, Fluent Bit's `tail`) read every line.
//! See [`AuditHealth`] for writes that fail.
//!
//! Size: about 770 lines before its tests, kept in one file: the audit writer, its rotation and
//! torn-tail repair, and the decision ring share the file state and the line counters.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use teflon_core::{DecisionRecord, Outcome, Timestamp};
use teflon_metrics::events::{AuditLinesLost, AuditRotated, AuditTornTail};

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

/// When the audit log is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate when the file reaches this many bytes (0: never).
    pub max_bytes: u64,
    /// Rotated files kept (`.1` … `.N`), at least 1.
    pub max_files: usize,
}

impl Rotation {
    /// Never rotate.
    pub const NEVER: Rotation = Rotation {
        max_bytes: 0,
        max_files: 1,
    };
}

/// A torn last line found on open and moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// Where the fragment went.
    pub moved_to: PathBuf,
    /// Its length.
    pub bytes: u64,
}

/// Appends audit lines to a file (or nowhere) and keeps the latest in a ring.
#[derive(Debug)]
pub struct AuditLog {
    out: Option<BufWriter<File>>,
    path: Option<PathBuf>,
    rotation: Rotation,
    /// Bytes in the current file, written or buffered.
    file_bytes: u64,
    ring: Arc<DecisionRing>,
    /// Lines appended since the last flush; they enter the ring when they reach the file.
    unflushed: Vec<Arc<str>>,
    scratch: Vec<u8>,
    lines: u64,
    flushed: u64,
    /// Lines fsynced; advanced by [`AuditLog::sync`] and by the thread syncing a rotated file.
    durable: Arc<AtomicU64>,
    /// The thread fsyncing the last rotated file (one at a time, so `durable` only grows
    /// over a prefix of the lines).
    syncing: Option<std::thread::JoinHandle<()>>,
    /// `file_bytes` at which to rotate: `max_bytes`, later after a failed rotation.
    rotate_at: u64,
    rotation_failing: bool,
    health: Arc<AuditHealth>,
    /// Lines that are not decisions ([`AuditLog::append_event`]) wait for the next flush.
    events_unflushed: bool,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// fsync the directory holding `path`, so renames and new files in it survive a crash.
fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

/// `path` with `suffix` appended to its file name (`audit.jsonl` → `audit.jsonl.1`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// When the file at `path` does not end with a newline, move its last (torn) line to a file
/// beside it and cut it off, so the next record starts a line of its own.
pub fn repair_torn_tail(path: &Path) -> io::Result<Option<TornTail>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Not a regular file (a pipe, /dev/full in tests): nothing to repair.
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() == 0 {
        return Ok(None);
    }
    let len = meta.len();
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(None);
    }
    // The start of the torn line: after the last newline, looked for backwards in blocks.
    let mut start = 0;
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    while end > 0 {
        let from = end.saturating_sub(block.len() as u64);
        let n = usize::try_from(end - from).unwrap_or(block.len());
        f.seek(SeekFrom::Start(from))?;
        f.read_exact(&mut block[..n])?;
        if let Some(i) = block[..n].iter().rposition(|b| *b == b'\n') {
            start = from + i as u64 + 1;
            break;
        }
        end = from;
    }
    let mut fragment = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    f.seek(SeekFrom::Start(start))?;
    f.read_to_end(&mut fragment)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut moved_to = with_suffix(path, &format!(".torn-{stamp}"));
    let mut n = 1;
    let mut aside = loop {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&moved_to)
        {
            Ok(a) => break a,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                n += 1;
                moved_to = with_suffix(path, &format!(".torn-{stamp}-{n}"));
            }
            Err(e) => return Err(e),
        }
    };
    aside.write_all(&fragment)?;
    aside.sync_all()?;
    // Only once the fragment is safe elsewhere: cut it off.
    f.set_len(start)?;
    f.sync_all()?;
    sync_dir(path)?;
    Ok(Some(TornTail {
        moved_to,
        bytes: len - start,
    }))
}

impl AuditLog {
    /// Open (append, create) `path`, or write nowhere when `None`; never rotated.
    pub fn open(path: Option<&Path>, ring: Arc<DecisionRing>) -> Result<AuditLog, AuditError> {
        Self::open_with(path, ring, Rotation::NEVER)
    }

    /// Open (append, create) `path`, or write nowhere when `None`, rotated by `rotation`. A
    /// torn last line is moved aside first (logged, and counted in
    /// `teflon_audit_torn_tails_total`).
    pub fn open_with(
        path: Option<&Path>,
        ring: Arc<DecisionRing>,
        rotation: Rotation,
    ) -> Result<AuditLog, AuditError> {
        let mut file_bytes = 0;
        let out = match path {
            Some(p) => {
                let err = |source| AuditError {
                    path: p.to_owned(),
                    source,
                };
                if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(err)?;
                }
                if let Some(torn) = repair_torn_tail(p).map_err(err)? {
                    AuditTornTail.emit();
                    tracing::warn!(
                        path = %p.display(),
                        moved_to = %torn.moved_to.display(),
                        bytes = torn.bytes,
                        "the audit log ended in a torn line (the last write before a crash was cut short); moved it aside"
                    );
                }
                let f = open_append(p).map_err(err)?;
                file_bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
                Some(BufWriter::with_capacity(256 * 1024, f))
            }
            None => None,
        };
        Ok(AuditLog {
            out,
            path: path.map(Path::to_owned),
            rotation,
            file_bytes,
            ring,
            unflushed: Vec::new(),
            scratch: Vec::with_capacity(1024),
            lines: 0,
            flushed: 0,
            durable: Arc::default(),
            syncing: None,
            rotate_at: rotation.max_bytes,
            rotation_failing: false,
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
            self.file_bytes += self.scratch.len() as u64;
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
    /// full too, or at shutdown). Rotates the file when it reached `audit_max_bytes`.
    pub fn flush(&mut self) {
        let failed_bytes = self.out.as_ref().is_some_and(|o| !o.buffer().is_empty());
        if self.unflushed.is_empty() && !failed_bytes && !self.events_unflushed {
            return;
        }
        self.events_unflushed = false;
        if let Some(out) = &mut self.out {
            match out.flush() {
                Ok(()) => {
                    self.succeeded();
                    self.flushed = self.lines - self.health.lines_lost();
                }
                Err(e) => self.failed(&e, 0),
            }
        }
        self.ring.extend(self.unflushed.drain(..));
        if self.rotation.max_bytes > 0 && self.file_bytes >= self.rotate_at {
            self.rotate();
        }
    }

    /// Flush and fsync: every line written so far survives a crash of the machine.
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
        self.wait_for_rotated_sync();
        if let Some(out) = &mut self.out {
            match out.get_ref().sync_data() {
                Ok(()) => {
                    self.durable.fetch_max(self.flushed, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "audit log fsync failed"),
            }
        }
    }

    fn wait_for_rotated_sync(&mut self) {
        if let Some(t) = self.syncing.take() {
            let _ = t.join();
        }
    }

    /// The current file is renamed to `.1` (older ones shifted, the oldest deleted), a new one
    /// started, and the old one and the directory fsynced on a thread of its own. On a
    /// failure nothing is lost: lines keep going to the file in hand, and the rotation is tried
    /// again later.
    fn rotate(&mut self) {
        let Some(path) = self.path.clone() else {
            return;
        };
        if self.out.as_ref().is_none_or(|o| !o.buffer().is_empty()) {
            return;
        }
        // One rotated file is synced at a time: waits only when the last one (a whole
        // `audit_max_bytes` ago) is still being synced.
        self.wait_for_rotated_sync();
        let result = self.shift(&path).and_then(|()| open_append(&path));
        match result {
            Ok(f) => {
                let old_bytes = self.file_bytes;
                let old = self
                    .out
                    .replace(BufWriter::with_capacity(256 * 1024, f))
                    .map(BufWriter::into_inner);
                if let Some(Ok(old)) = old {
                    let (durable, upto, dir) = (self.durable.clone(), self.flushed, path.clone());
                    let sync = move || match old.sync_data().and_then(|()| sync_dir(&dir)) {
                        Ok(()) => {
                            durable.fetch_max(upto, Ordering::Relaxed);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "fsync of the rotated audit log failed")
                        }
                    };
                    let spawned = std::thread::Builder::new()
                        .name("audit-fsync".to_owned())
                        .spawn(sync);
                    match spawned {
                        Ok(t) => self.syncing = Some(t),
                        Err(e) => tracing::warn!(error = %e, "cannot start the audit fsync thread"),
                    }
                }
                self.file_bytes = 0;
                self.rotate_at = self.rotation.max_bytes;
                self.rotation_failing = false;
                AuditRotated.emit();
                tracing::info!(
                    path = %path.display(),
                    bytes = old_bytes,
                    keep = self.rotation.max_files,
                    "audit log rotated"
                );
            }
            Err(e) => {
                // Not at every flush: a failing rename would be retried every few ms.
                self.rotate_at = self.file_bytes + (self.rotation.max_bytes / 16).max(1 << 20);
                if !std::mem::replace(&mut self.rotation_failing, true) {
                    tracing::error!(
                        path = %path.display(),
                        error = %e,
                        "cannot rotate the audit log; still writing to the current file"
                    );
                }
            }
        }
    }

    /// `path.N-1` → `path.N` … `path` → `path.1`; `path.N` is deleted.
    fn shift(&self, path: &Path) -> io::Result<()> {
        let n = self.rotation.max_files.max(1);
        let numbered = |i: usize| with_suffix(path, &format!(".{i}"));
        match std::fs::remove_file(numbered(n)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for i in (1..n).rev() {
            match std::fs::rename(numbered(i), numbered(i + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        match std::fs::rename(path, numbered(1)) {
            Ok(()) => Ok(()),
            // A failed rotation left the file in hand renamed already: start a new one.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Records appended so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Records written to the file (handed to the OS) so far.
    pub fn flushed_lines(&self) -> u64 {
        self.flushed
    }

    /// Records fsynced so far: the first `durable_lines()` records appended survive a crash
    /// of the machine (advanced by [`AuditLog::sync`] and once a rotated file is synced).
    pub fn durable_lines(&self) -> u64 {
        self.durable.load(Ordering::Relaxed)
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

    fn record(seq: u64) -> serde_json::Value {
        serde_json::json!({"seq": seq, "rule": "r"})
    }

    #[test]
    fn a_torn_last_line_is_moved_aside_before_appending_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let whole = r#"{"seq":3122,"time":"t"}"#;
        let torn = r#"{"seq":3123,"time":"2026-"#;
        std::fs::write(&path, format!("{whole}\n{torn}")).unwrap();
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut log = metrics::with_local_recorder(&recorder, || {
            AuditLog::open(Some(&path), Arc::new(DecisionRing::new(10))).unwrap()
        });
        log.append_parts(&record(0), &AuditTail::decided("a", None, None));
        log.sync();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for l in &lines {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
        assert_eq!(lines[0], whole);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".torn-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), torn);
        let torn_tails = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .find(|(k, ..)| k.key().name() == teflon_metrics::names::AUDIT_TORN_TAILS_TOTAL)
            .map(|(.., v)| v);
        assert_eq!(
            torn_tails,
            Some(metrics_util::debugging::DebugValue::Counter(1))
        );
        // A clean file is left alone.
        drop(log);
        assert_eq!(repair_torn_tail(&path).unwrap(), None);
    }

    #[test]
    fn a_file_that_is_one_torn_line_is_emptied_and_a_long_one_found_across_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"seq\":1").unwrap();
        let torn = repair_torn_tail(&path).unwrap().unwrap();
        assert_eq!(torn.bytes, 8);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        let long = format!("{{\"rule\":\"{}", "x".repeat(200_000));
        std::fs::write(&path, format!("{{}}\n{long}")).unwrap();
        let torn = repair_torn_tail(&path).unwrap().unwrap();
        assert_eq!(torn.bytes, long.len() as u64);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        assert_eq!(std::fs::read_to_string(&torn.moved_to).unwrap(), long);
    }

    #[test]
    fn the_log_rotates_at_max_bytes_keeps_max_files_and_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let rotation = Rotation {
            max_bytes: 1000,
            max_files: 2,
        };
        let mut log =
            AuditLog::open_with(Some(&path), Arc::new(DecisionRing::new(10)), rotation).unwrap();
        let tail = AuditTail::decided("a", None, None);
        for seq in 0..102 {
            log.append_parts(&record(seq), &tail);
            // The engine task flushes every few milliseconds.
            if seq % 5 == 4 {
                log.flush();
            }
        }
        // Each rotated file is fsynced on its own thread: durable up to the last rotation.
        log.wait_for_rotated_sync();
        let durable = log.durable_lines();
        assert!(durable > 0 && durable <= 100, "{durable}");
        log.sync();
        assert!(log.durable_lines() == 102 && log.flushed_lines() == 102);
        let read = |p: &Path| -> Vec<u64> {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                        .as_u64()
                        .unwrap()
                })
                .collect()
        };
        let (older, old, current) = (
            read(&with_suffix(&path, ".2")),
            read(&with_suffix(&path, ".1")),
            read(&path),
        );
        assert!(!with_suffix(&path, ".3").exists(), "only max_files kept");
        // Consecutive records, the newest in the current file, each rotated file near the size.
        let kept: Vec<u64> = older.iter().chain(&old).chain(&current).copied().collect();
        assert_eq!(kept, (kept[0]..102).collect::<Vec<_>>());
        for p in [with_suffix(&path, ".2"), with_suffix(&path, ".1")] {
            let len = std::fs::metadata(&p).unwrap().len();
            assert!(
                (1000..1000 + 5 * 200).contains(&len),
                "{}: {len}",
                p.display()
            );
        }
    }

    #[test]
    fn sync_makes_every_flushed_line_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(Some(&path), Arc::new(DecisionRing::new(10))).unwrap();
        let tail = AuditTail::decided("a", None, None);
        log.append_parts(&record(1), &tail);
        log.append_parts(&record(2), &tail);
        assert_eq!(
            (log.lines(), log.flushed_lines(), log.durable_lines()),
            (2, 0, 0)
        );
        log.flush();
        assert_eq!((log.flushed_lines(), log.durable_lines()), (2, 0));
        log.sync();
        assert_eq!(log.durable_lines(), 2);
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
