//! The response lifecycle's shared handle: the releaser, the response history and the
//! webhooks, with the channel that hands releases to the engine task to record. Held by the
//! shared state and the engine task; the routes and the expiry sweep that use it are in
//! `release.rs` and `history.rs`.

use std::sync::Arc;

use teflon_core::{
    Clock, DynReleaser, PlannedAction, Release, ReleaseCause, ReleaseTarget, Timestamp,
};
use tokio::sync::mpsc;

use crate::audit::AuditRecord;
use crate::history::History;
use crate::notify::Notifier;

/// A release for the engine task to record.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub release: Release,
    pub at: Timestamp,
}

/// What the routes, the sweep and the engine task share about the response lifecycle.
#[derive(Clone)]
pub struct Lifecycle {
    /// Undoes actions (none: this cluster backend cannot).
    pub(crate) releaser: Option<Arc<dyn DynReleaser>>,
    /// Actions taken and releases, for `GET /v1/actions`.
    pub(crate) history: Arc<History>,
    /// The webhooks.
    pub(crate) notifier: Notifier,
    tx: mpsc::UnboundedSender<Recorded>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("releaser", &self.releaser.is_some())
            .field("notifier", &self.notifier)
            .finish_non_exhaustive()
    }
}

impl Lifecycle {
    pub(crate) fn new(
        releaser: Option<Arc<dyn DynReleaser>>,
        notifier: Notifier,
    ) -> (Lifecycle, mpsc::UnboundedReceiver<Recorded>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Lifecycle {
                releaser,
                history: Arc::new(History::new(crate::history::CAPACITY)),
                notifier,
                tx,
            },
            rx,
        )
    }

    /// The webhooks.
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Release `target` and hand the result to the engine task to record; `None` when this
    /// backend cannot release.
    pub(crate) async fn release(
        &self,
        target: &ReleaseTarget,
        cause: ReleaseCause,
        clock: &Clock,
    ) -> Option<Release> {
        let releaser = self.releaser.as_ref()?;
        let release = releaser.release_boxed(target, cause).await;
        self.record(release.clone(), clock());
        Some(release)
    }

    pub(crate) fn record(&self, release: Release, at: Timestamp) {
        if self.tx.send(Recorded { release, at }).is_err() {
            tracing::warn!("a release happened while shutting down: it is not in the audit log");
        }
    }

    /// An executed action (from the engine task, after its audit line): into the history.
    pub(crate) fn executed(&self, plan: &PlannedAction, record: &AuditRecord) {
        let undo = match (&self.releaser, record.outcome) {
            (Some(r), Some("success")) => r.target_of(plan),
            _ => None,
        };
        self.history.action(plan, record, undo);
    }
}
