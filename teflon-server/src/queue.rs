//! The bounded queue between the HTTP handlers and the engine task.
//!
//! Admission is all-or-nothing per request: a batch is accepted only when all its alerts fit
//! under `queue_capacity`, so a 429 never half-applies a request. With a journal, room is
//! reserved first, then the batch is made durable ([`crate::journal`]), and only then queued
//! and answered 202; a journal that cannot be written refuses the request (503) and keeps
//! nothing of it. The depth counts alerts accepted and not yet decided.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use teflon_core::{Alert, Timestamp};
use tokio::sync::{mpsc, oneshot};

use crate::journal::Journal;

/// An alert waiting for the engine.
#[derive(Debug)]
pub struct Queued {
    /// The alert (its `id` is set: the sender's or one the server assigned).
    pub alert: Alert,
    /// When the server received it.
    pub received_at: Timestamp,
    /// The same moment on the monotonic clock, for latency.
    pub received: Instant,
    /// Its journal sequence number, when it was journaled.
    pub journal_seq: Option<u64>,
}

/// What the engine task receives.
#[derive(Debug)]
pub enum EngineMsg {
    /// Alerts of one request, in order.
    Alerts(Vec<Queued>),
    /// Everything sent before this is queued: finish it, the in-flight actions, flush, stop.
    Drain(oneshot::Sender<()>),
}

/// Why a batch was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// Not enough room.
    Full,
    /// The engine is gone (shutting down).
    Closed,
    /// The journal could not make the batch durable.
    Journal,
}

/// The sending side, shared by every handler.
#[derive(Debug, Clone)]
pub struct Queue {
    tx: mpsc::UnboundedSender<EngineMsg>,
    depth: Arc<AtomicUsize>,
    capacity: usize,
    journal: Option<Arc<Journal>>,
}

impl Queue {
    /// A queue of `capacity` alerts and its receiving side.
    pub fn new(capacity: usize) -> (Queue, mpsc::UnboundedReceiver<EngineMsg>, Arc<AtomicUsize>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let depth = Arc::new(AtomicUsize::new(0));
        (
            Queue {
                tx,
                depth: depth.clone(),
                capacity,
                journal: None,
            },
            rx,
            depth,
        )
    }

    /// Journal what [`Queue::accept`] accepts.
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// The journal, when there is one.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.as_ref()
    }

    /// Accept a whole batch or nothing: room in the queue, then (with a journal) durable on
    /// disk, then queued. When this returns `Ok` the request may be answered 202.
    pub async fn accept(&self, mut batch: Vec<Queued>) -> Result<(), PushError> {
        let Some(journal) = &self.journal else {
            return self.push(batch);
        };
        /// The room taken, given back unless the batch was queued: also when the caller
        /// stops waiting for the journal (its client went away; see [`Journal::append`]).
        struct Room<'a>(&'a AtomicUsize, usize);
        impl Drop for Room<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(self.1, Ordering::AcqRel);
            }
        }
        let n = batch.len();
        self.reserve(n)?;
        let room = Room(&self.depth, n);
        let received_at = batch.first().map(|q| q.received_at).unwrap_or_default();
        let (records, count) =
            crate::journal::encode_alerts(batch.iter().map(|q| &q.alert), received_at);
        match journal.append(records, count).await {
            Ok(first) => {
                for (q, seq) in batch.iter_mut().zip(first..) {
                    q.journal_seq = Some(seq);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "alerts refused: the journal cannot be written");
                return Err(PushError::Journal);
            }
        }
        // `send` keeps the room taken, or gives it back itself.
        std::mem::forget(room);
        self.send(batch, n)
    }

    /// Queue alerts recovered from the journal at start (accepted before): no capacity check.
    pub fn push_recovered(&self, batch: Vec<Queued>) -> Result<(), PushError> {
        let n = batch.len();
        self.depth.fetch_add(n, Ordering::AcqRel);
        self.send(batch, n)
    }

    /// Queue a whole batch, or nothing (no journal).
    pub fn push(&self, batch: Vec<Queued>) -> Result<(), PushError> {
        let n = batch.len();
        self.reserve(n)?;
        self.send(batch, n)
    }

    fn send(&self, batch: Vec<Queued>, n: usize) -> Result<(), PushError> {
        if self.tx.send(EngineMsg::Alerts(batch)).is_err() {
            self.depth.fetch_sub(n, Ordering::AcqRel);
            return Err(PushError::Closed);
        }
        Ok(())
    }

    /// Take room for `n` alerts, or refuse them all.
    fn reserve(&self, n: usize) -> Result<(), PushError> {
        let mut cur = self.depth.load(Ordering::Relaxed);
        loop {
            if cur.saturating_add(n) > self.capacity {
                return Err(PushError::Full);
            }
            match self.depth.compare_exchange_weak(
                cur,
                cur + n,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Ask the engine task to drain; resolves when it has.
    pub fn drain(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(EngineMsg::Drain(tx));
        rx
    }

    /// Alerts waiting.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// The most alerts that may wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teflon_core::Priority;

    fn q(n: usize) -> Vec<Queued> {
        (0..n)
            .map(|_| Queued {
                alert: Alert::new("r", Priority::Critical, Timestamp::EPOCH),
                received_at: Timestamp::EPOCH,
                received: Instant::now(),
                journal_seq: None,
            })
            .collect()
    }

    #[test]
    fn a_batch_that_does_not_fit_is_refused_whole() {
        let (queue, _rx, depth) = Queue::new(5);
        queue.push(q(3)).unwrap();
        assert_eq!(queue.push(q(3)), Err(PushError::Full));
        assert_eq!(depth.load(Ordering::Relaxed), 3);
        queue.push(q(2)).unwrap();
        assert_eq!(queue.depth(), 5);
    }

    /// A handler dropped while its batch waits for the journal (the client went away) gives
    /// back the room it took: the queue does not fill up with requests nobody answered.
    #[test]
    fn a_request_dropped_while_journaling_gives_back_the_room() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) =
            Journal::open(dir.path(), crate::journal::DEFAULT_SEGMENT_BYTES).unwrap();
        let journal = Arc::new(journal);
        let (queue, mut rx, _) = Queue::new(5);
        let queue = queue.with_journal(journal.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            {
                let mut fut = std::pin::pin!(queue.accept(q(5)));
                assert!(futures::poll!(fut.as_mut()).is_pending());
                assert_eq!(queue.depth(), 5);
            }
            assert_eq!(queue.depth(), 0);
            // And the room is there for the next one, which is queued.
            queue.accept(q(5)).await.unwrap();
            assert!(matches!(rx.try_recv(), Ok(EngineMsg::Alerts(b)) if b.len() == 5));
        });
    }

    #[test]
    fn a_closed_queue_gives_back_the_room() {
        let (queue, rx, _) = Queue::new(5);
        drop(rx);
        assert_eq!(queue.push(q(2)), Err(PushError::Closed));
        assert_eq!(queue.depth(), 0);
    }
}
