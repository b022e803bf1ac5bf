//! The ingest journal (SPEC §6): a write-ahead log of accepted alerts in `state_dir`, so that
//! a 202 survives SIGKILL, an OOM kill or a dead node.
//!
//! - **Group commit.** Handlers hand their encoded alerts to one writer thread and wait; the
//!   thread writes everything that is waiting in one `write`, makes it durable with one
//!   `fdatasync`, then answers all of them. At most one sync starts per [`GROUP_WINDOW`]
//!   (0.5 ms): under load one sync covers every request of the last half millisecond or so,
//!   and an idle server syncs a lone alert at once.
//! - **Records.** `[len u32][crc32 u32][kind u8][seq u64][payload]`, little-endian; the CRC
//!   covers kind, seq and payload. Kind 1 is an accepted alert (`seq` is its journal
//!   sequence number, the payload its JSON: receipt time and the parsed alert, id included);
//!   kind 2 says the alerts `seq..end` (payload: `end u64`) have durable audit records.
//! - **Segments.** `journal-<first seq>.log`, a new one past `segment_bytes`. A segment is
//!   deleted once every alert in it has a durable audit record, so the journal's size is
//!   bounded by what is in flight. After a drain (SIGTERM) it is empty.
//! - **Recovery.** [`Journal::open`] reads every segment; a record that is cut short or whose
//!   CRC does not match (a torn write) ends that segment's reading: it is reported and skipped,
//!   never a reason to refuse starting. Alerts without a completion record are handed back to
//!   be decided first, in order, with their original receipt time.
//!
//! Size: about 570 lines before its tests, kept in one file: the writer, the record format and
//! recovery must agree byte for byte; in one file they cannot drift apart.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use teflon_core::{Alert, Timestamp};
use tokio::sync::oneshot;

/// Appends that arrive within this long of the previous sync share the next one. Measured
/// (BENCHMARKS.md, journal): 0.25–0.5 ms gave the most requests per second under `wrk -c64`
/// on a virtio disk; 1 ms and 2 ms cost 20–30 % more, because each request waits longer.
pub const GROUP_WINDOW: Duration = Duration::from_micros(500);

/// A new segment is started once the current one is this large.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 << 20;

const HEADER: usize = 4 + 4 + 1 + 8;
const KIND_ALERT: u8 = 1;
const KIND_DONE: u8 = 2;
/// Larger records are corrupt (an alert is bounded by `max_body_bytes`).
const MAX_RECORD: usize = 64 << 20;

/// The journal failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file or directory of the journal.
    #[error("journal {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The writer thread is gone (shutting down).
    #[error("the journal is closed")]
    Closed,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One journaled alert, as it comes back at recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When the server received it (the 202's request).
    pub received_at: Timestamp,
    /// The alert, its id set.
    pub alert: Alert,
}

/// A journaled alert with its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// Journal sequence number.
    pub seq: u64,
    /// What was accepted.
    pub entry: Entry,
}

/// What [`Journal::open`] found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Alerts accepted and not known to be audited, in acceptance order.
    pub pending: Vec<Recovered>,
    /// Torn or corrupt tails skipped: (segment, byte offset).
    pub torn: Vec<(PathBuf, u64)>,
    /// Records read in all.
    pub records: u64,
}

enum Cmd {
    Append {
        records: Vec<u8>,
        count: u64,
        reply: oneshot::Sender<Result<u64, JournalError>>,
    },
    Complete(Vec<u64>),
    /// Make everything written so far durable, delete what is complete; answer when done.
    Sync(oneshot::Sender<()>),
}

/// The handle: cheap to share between the handlers and the engine task.
#[derive(Debug)]
pub struct Journal {
    tx: mpsc::Sender<Cmd>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
    dir: PathBuf,
}

/// Encode one record into `out`.
fn encode(out: &mut Vec<u8>, kind: u8, seq: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(&seq.to_le_bytes());
    crc.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Encode alerts for [`Journal::append`], off the writer thread: the JSON and the header,
/// with sequence number and CRC left for the writer to stamp.
pub fn encode_alerts<'a>(
    alerts: impl IntoIterator<Item = &'a Alert>,
    received_at: Timestamp,
) -> (Vec<u8>, u64) {
    #[derive(Serialize)]
    struct EntryRef<'a> {
        received_at: Timestamp,
        alert: &'a Alert,
    }
    let mut out = Vec::new();
    let mut count = 0u64;
    let mut payload = Vec::with_capacity(1024);
    for alert in alerts {
        payload.clear();
        if serde_json::to_writer(&mut payload, &EntryRef { received_at, alert }).is_ok() {
            // Header without sequence number or CRC: the writer stamps both (the CRC covers
            // the sequence number, so computing it here would be work thrown away).
            let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.push(KIND_ALERT);
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&payload);
            count += 1;
        }
    }
    (out, count)
}

/// The records of one segment file; where reading stopped when a record was torn.
fn read_segment(path: &Path, mut each: impl FnMut(u8, u64, &[u8])) -> io::Result<Option<u64>> {
    let bytes = fs::read(path)?;
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < HEADER {
            return Ok(Some(at as u64));
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_RECORD || rest.len() < HEADER + len {
            return Ok(Some(at as u64));
        }
        let kind = rest[8];
        let mut seq_bytes = [0u8; 8];
        seq_bytes.copy_from_slice(&rest[9..17]);
        let payload = &rest[HEADER..HEADER + len];
        let mut check = crc32fast::Hasher::new();
        check.update(&rest[8..HEADER]);
        check.update(payload);
        if check.finalize() != crc {
            return Ok(Some(at as u64));
        }
        each(kind, u64::from_le_bytes(seq_bytes), payload);
        at += HEADER + len;
    }
    Ok(None)
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("journal-{first:020}.log"))
}

/// The segment files of `dir`, oldest first, with their first sequence number.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let first = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("journal-"))
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(first) = first {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

struct Segment {
    /// One past the last alert seq written to it.
    end: u64,
    path: PathBuf,
}

struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    file: Option<File>,
    size: u64,
    segments: Vec<Segment>,
    next_seq: u64,
    /// Alerts written and not yet complete.
    incomplete: BTreeSet<u64>,
    failed: bool,
}

impl Writer {
    /// The current segment, opening a new one when there is none or it is full.
    fn current(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() || self.size >= self.segment_bytes {
            let path = segment_path(&self.dir, self.next_seq);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            // The new file's name must survive a crash too.
            sync_dir(&self.dir)?;
            self.segments.push(Segment {
                end: self.next_seq,
                path,
            });
            self.size = 0;
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("no journal segment"))
    }

    /// Delete the segments whose alerts are all complete (not the one being written, unless
    /// everything is complete).
    fn truncate(&mut self) {
        let low = self.incomplete.first().copied().unwrap_or(self.next_seq);
        let all_done = self.incomplete.is_empty();
        let current = self.segments.len().saturating_sub(1);
        let mut keep = Vec::with_capacity(self.segments.len());
        for (i, s) in std::mem::take(&mut self.segments).into_iter().enumerate() {
            let is_current = i == current && self.file.is_some();
            if s.end <= low && (!is_current || all_done) {
                if let Err(e) = fs::remove_file(&s.path) {
                    tracing::warn!(path = %s.path.display(), error = %e, "journal: cannot delete a complete segment");
                    keep.push(s);
                    continue;
                }
                if is_current {
                    self.file = None;
                    self.size = 0;
                }
            } else {
                keep.push(s);
            }
        }
        self.segments = keep;
    }

    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        let mut last_sync: Option<Instant> = None;
        // Written, but their caller stopped waiting: completed with the next write.
        let mut abandoned: Vec<u64> = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut cmds = vec![first];
            // Group commit: at most one sync per `GROUP_WINDOW`. A request after a quiet
            // spell is synced at once; under load, what arrives within the window shares the
            // next sync (each one costs a block write and a device flush, whatever its size).
            if let Some(at) = last_sync {
                // Sleep rather than wait on the channel: a waiting receiver is woken by
                // every send, a sleeping one by none.
                if let Some(left) = (at + GROUP_WINDOW).checked_duration_since(Instant::now()) {
                    std::thread::sleep(left);
                }
            }
            while let Ok(c) = rx.try_recv() {
                cmds.push(c);
            }
            if cmds.iter().any(|c| matches!(c, Cmd::Append { .. })) {
                last_sync = Some(Instant::now());
            }
            let mut buf = Vec::new();
            let mut replies = Vec::new();
            let mut syncs = Vec::new();
            let mut done: Vec<u64> = std::mem::take(&mut abandoned);
            for cmd in cmds {
                match cmd {
                    Cmd::Append {
                        mut records,
                        count,
                        reply,
                    } => {
                        let start = self.next_seq;
                        // Stamp the sequence numbers into the pre-encoded records.
                        let mut at = 0usize;
                        let mut seq = start;
                        while at + HEADER <= records.len() {
                            let len = u32::from_le_bytes([
                                records[at],
                                records[at + 1],
                                records[at + 2],
                                records[at + 3],
                            ]) as usize;
                            records[at + 9..at + 17].copy_from_slice(&seq.to_le_bytes());
                            let mut crc = crc32fast::Hasher::new();
                            crc.update(&records[at + 8..at + HEADER + len]);
                            records[at + 4..at + 8].copy_from_slice(&crc.finalize().to_le_bytes());
                            at += HEADER + len;
                            seq += 1;
                        }
                        self.next_seq = start + count;
                        buf.extend_from_slice(&records);
                        replies.push((reply, start, count));
                    }
                    Cmd::Complete(seqs) => done.extend(seqs),
                    Cmd::Sync(reply) => syncs.push(reply),
                }
            }
            for seq in &done {
                self.incomplete.remove(seq);
            }
            // Completion records, as ranges of consecutive sequence numbers.
            done.sort_unstable();
            let mut i = 0;
            while i < done.len() {
                let start = done[i];
                let mut end = start + 1;
                while i + 1 < done.len() && done[i + 1] == end {
                    end += 1;
                    i += 1;
                }
                encode(&mut buf, KIND_DONE, start, &end.to_le_bytes());
                i += 1;
            }
            let appended = !replies.is_empty();
            let result = if buf.is_empty() && syncs.is_empty() {
                Ok(())
            } else {
                self.write(&buf, appended || !syncs.is_empty())
            };
            match result {
                Ok(()) => {
                    for (reply, start, count) in replies {
                        if let Some(s) = self.segments.last_mut() {
                            s.end = s.end.max(start + count);
                        }
                        if reply.send(Ok(start)).is_ok() {
                            self.incomplete.extend(start..start + count);
                        } else {
                            // The caller stopped waiting, so no 202: complete at once.
                            abandoned.extend(start..start + count);
                        }
                    }
                    self.size += buf.len() as u64;
                    self.failed = false;
                }
                Err(e) => {
                    if !self.failed {
                        tracing::error!(dir = %self.dir.display(), error = %e, "journal: write failed; alerts are refused (503) until it works again");
                    }
                    self.failed = true;
                    // Never append after a failed write: the next one starts a new segment.
                    self.file = None;
                    for (reply, _, _) in replies {
                        let _ = reply.send(Err(JournalError::Io {
                            path: self.dir.clone(),
                            source: io::Error::new(e.kind(), e.to_string()),
                        }));
                    }
                }
            }
            self.truncate();
            for s in syncs {
                let _ = s.send(());
            }
        }
    }

    fn write(&mut self, buf: &[u8], sync: bool) -> io::Result<()> {
        let file = self.current()?;
        file.write_all(buf)?;
        if sync {
            file.sync_data()?;
        }
        Ok(())
    }
}

impl Journal {
    /// Open the journal in `dir` (created if missing): read what an earlier process left,
    /// start the writer thread.
    pub fn open(dir: &Path, segment_bytes: u64) -> Result<(Journal, Recovery), JournalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut recovery = Recovery::default();
        let mut alerts: Vec<Recovered> = Vec::new();
        let mut done: Vec<(u64, u64)> = Vec::new();
        let mut next_seq = 0u64;
        let mut kept = Vec::new();
        for (first, path) in segments(dir).map_err(io_err(dir))? {
            let mut end = first;
            let torn = read_segment(&path, |kind, seq, payload| {
                recovery.records += 1;
                match kind {
                    KIND_ALERT => {
                        match serde_json::from_slice::<Entry>(payload) {
                            Ok(entry) => alerts.push(Recovered { seq, entry }),
                            Err(e) => tracing::warn!(seq, error = %e, "journal: an alert record that does not decode is skipped"),
                        }
                        next_seq = next_seq.max(seq + 1);
                        end = end.max(seq + 1);
                    }
                    KIND_DONE if payload.len() == 8 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(payload);
                        done.push((seq, u64::from_le_bytes(b)));
                    }
                    _ => {}
                }
            })
            .map_err(io_err(&path))?;
            if let Some(offset) = torn {
                tracing::warn!(segment = %path.display(), offset, "journal: a torn or corrupt tail was skipped (a write cut short by a crash)");
                teflon_metrics::events::JournalTornTail.emit();
                recovery.torn.push((path.clone(), offset));
            }
            kept.push(Segment { end, path });
        }
        let is_done = |seq: u64| done.iter().any(|(a, b)| (*a..*b).contains(&seq));
        alerts.sort_by_key(|r| r.seq);
        alerts.dedup_by_key(|r| r.seq);
        recovery.pending = alerts.into_iter().filter(|r| !is_done(r.seq)).collect();
        let writer = Writer {
            dir: dir.to_owned(),
            segment_bytes: segment_bytes.max(1),
            // Never append to a segment a crash may have torn: new appends start a new one.
            file: None,
            size: 0,
            incomplete: recovery.pending.iter().map(|r| r.seq).collect(),
            segments: kept,
            next_seq,
            failed: false,
        };
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("teflon-journal".to_owned())
            .spawn(move || writer.run(rx))
            .map_err(io_err(dir))?;
        Ok((
            Journal {
                tx,
                thread: std::sync::Mutex::new(Some(thread)),
                dir: dir.to_owned(),
            },
            recovery,
        ))
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Make `records` (from [`encode_alerts`], `count` of them) durable; resolves with the
    /// first one's sequence number (the others follow) once they are on disk.
    ///
    /// Cancel-safe: when the caller stops waiting (its client went away), alerts written
    /// anyway are marked complete, as if never accepted: no 202 was given for them, and they
    /// must not hold back the journal's truncation forever.
    pub async fn append(&self, records: Vec<u8>, count: u64) -> Result<u64, JournalError> {
        /// Marks the alerts complete unless the caller received their sequence numbers.
        struct Waiting<'a> {
            rx: oneshot::Receiver<Result<u64, JournalError>>,
            count: u64,
            tx: &'a mpsc::Sender<Cmd>,
        }
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                // After `close` the writer's reply fails (it then completes them itself), or
                // it came before and is here.
                self.rx.close();
                if let Ok(Ok(first)) = self.rx.try_recv() {
                    let _ = self
                        .tx
                        .send(Cmd::Complete((first..first + self.count).collect()));
                }
            }
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Append {
                records,
                count,
                reply,
            })
            .map_err(|_| JournalError::Closed)?;
        let mut waiting = Waiting {
            rx,
            count,
            tx: &self.tx,
        };
        let result = (&mut waiting.rx).await;
        // Received: nothing for the guard to do (`try_recv` finds the value taken).
        drop(waiting);
        result.map_err(|_| JournalError::Closed)?
    }

    /// These alerts have durable audit records: their space may be reclaimed.
    pub fn complete(&self, seqs: Vec<u64>) {
        if !seqs.is_empty() {
            let _ = self.tx.send(Cmd::Complete(seqs));
        }
    }

    /// Resolves once every command sent before has been carried out (completions recorded,
    /// complete segments deleted).
    pub async fn settle(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Sync(reply)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The segment files now in the directory.
    pub fn segment_files(&self) -> Vec<PathBuf> {
        segments(&self.dir)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // The writer ends when the last sender goes; it is ours, so replace it and join.
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(t) = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teflon_core::Priority;

    fn alert(i: u64) -> Alert {
        let mut a = Alert::new(
            "Terminal shell in container",
            Priority::Critical,
            Timestamp::from_secs(1_000 + i as i64),
        );
        a.id = Some(format!("a-{i}"));
        a
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn append(j: &Journal, from: u64, n: u64) -> u64 {
        let alerts: Vec<Alert> = (from..from + n).map(alert).collect();
        let (records, count) = encode_alerts(&alerts, Timestamp::from_secs(5));
        rt().block_on(j.append(records, count)).unwrap()
    }

    #[test]
    fn accepted_alerts_come_back_in_order_until_they_are_complete() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (j, rec) = Journal::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
            assert!(rec.pending.is_empty());
            assert_eq!(append(&j, 0, 3), 0);
            assert_eq!(append(&j, 3, 2), 3);
            j.complete(vec![1, 3]);
            rt().block_on(j.settle());
        }
        let (j, rec) = Journal::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
        let seen: Vec<(u64, String)> = rec
            .pending
            .iter()
            .map(|r| (r.seq, r.entry.alert.id.clone().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [(0, "a-0".into()), (2, "a-2".into()), (4, "a-4".into())]
        );
        assert_eq!(rec.pending[0].entry.received_at, Timestamp::from_secs(5));
        assert_eq!(rec.pending[0].entry.alert, alert(0));
        assert!(rec.torn.is_empty());
        // New sequence numbers continue after the old ones.
        assert_eq!(append(&j, 5, 1), 5);
    }

    /// A caller that stops waiting (its client went away) gets no 202: whether the writer had
    /// answered yet or not, its alerts must not hold back truncation, nor come back at start.
    #[test]
    fn an_append_whose_caller_stops_waiting_is_complete_and_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let rt = rt();
        for wait_for_writer in [false, true] {
            let (j, _) = Journal::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
            let kept = append(&j, 0, 1);
            let alerts: Vec<Alert> = (1..4).map(alert).collect();
            let (records, count) = encode_alerts(&alerts, Timestamp::from_secs(5));
            rt.block_on(async {
                let mut fut = std::pin::pin!(j.append(records, count));
                // Polled once: the records are on their way to the writer.
                assert!(futures::poll!(fut.as_mut()).is_pending());
                if wait_for_writer {
                    // The writer answers into a receiver nobody reads any more.
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
            j.complete(vec![kept]);
            rt.block_on(j.settle());
            assert_eq!(
                j.segment_files(),
                Vec::<PathBuf>::new(),
                "waited: {wait_for_writer}"
            );
            drop(j);
            let (_, recovery) = Journal::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
            assert!(recovery.pending.is_empty(), "waited: {wait_for_writer}");
        }
    }

    #[test]
    fn a_torn_tail_is_reported_and_skipped_and_the_records_before_it_survive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (j, _) = Journal::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
            append(&j, 0, 2);
        }
        let segment = segments(dir.path()).unwrap().remove(0).1;
        let whole = fs::read(&segment).unwrap();
        // A crash in the middle of the next write: a partial record, then garbage.
        let mut torn = whole.clone();
        let (records, _) = encode_alerts(&[alert(9)], Timestamp::from_secs(5));
        torn.extend_from_slice(&records[..records.len() / 2]);
        fs::write(&segment, &torn).unwrap();
        let (j, rec) = Journal::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
        assert_eq!(rec.pending.len(), 2);
        assert_eq!(rec.torn, [(segment.clone(), whole.len() as u64)]);
        // Appending goes to a new segment, never after the torn bytes.
        append(&j, 2, 1);
        drop(j);
        assert_eq!(segments(dir.path()).unwrap().len(), 2);
        // A flipped byte inside a record is caught by the checksum.
        let mut flipped = whole.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x55;
        fs::write(&segment, &flipped).unwrap();
        let (_j, rec) = Journal::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
        assert_eq!(
            rec.pending.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(rec.torn.len(), 1);
    }

    #[test]
    fn complete_segments_are_deleted_and_a_drained_journal_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path(), 600).unwrap();
        for i in 0..10 {
            append(&j, i, 1);
        }
        let before = j.segment_files().len();
        assert!(before >= 3, "{before} segments of 600 bytes");
        j.complete((0..5).collect());
        rt().block_on(j.settle());
        let middle = j.segment_files().len();
        assert!(middle < before && middle > 0, "{before} → {middle}");
        j.complete((5..10).collect());
        rt().block_on(j.settle());
        assert!(j.segment_files().is_empty());
        drop(j);
        let (_, rec) = Journal::open(dir.path(), 600).unwrap();
        assert!(rec.pending.is_empty());
    }

    #[test]
    fn many_concurrent_appends_share_syncs_and_get_distinct_sequence_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
        let j = std::sync::Arc::new(j);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let firsts: Vec<u64> = runtime.block_on(async {
            let tasks: Vec<_> = (0..64u64)
                .map(|i| {
                    let j = j.clone();
                    tokio::spawn(async move {
                        let alerts: Vec<Alert> = (i * 3..i * 3 + 3).map(alert).collect();
                        let (records, count) = encode_alerts(&alerts, Timestamp::from_secs(1));
                        j.append(records, count).await.unwrap()
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let mut sorted = firsts.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..64).map(|i| i * 3).collect::<Vec<_>>());
        drop(runtime);
        let j = std::sync::Arc::into_inner(j).unwrap();
        drop(j);
        let (_, rec) = Journal::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
        assert_eq!(rec.pending.len(), 192);
        // Each request's alerts stay together, in their order.
        for r in &rec.pending {
            let first = firsts
                .iter()
                .copied()
                .filter(|f| *f <= r.seq)
                .max()
                .unwrap();
            let i = firsts.iter().position(|f| *f == first).unwrap() as u64;
            assert_eq!(
                r.entry.alert.id,
                Some(format!("a-{}", i * 3 + (r.seq - first)))
            );
        }
    }
}
