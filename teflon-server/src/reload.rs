//! Policy hot reload: the file is polled every 2 s and its content hash compared (portable,
//! cheap, and immune to coarse mtimes); a valid new set replaces the old one in the engine, an invalid one is logged and
//! counted and the old set stays.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use teflon_core::{Clock, PolicyErrors, PolicySet, Timestamp};
use teflon_metrics::events::PolicyReload;
use tokio::sync::mpsc;

use crate::engine_task::PolicyUpdate;
use crate::state::PolicyStatus;

/// How often the policy file is checked.
pub const POLL_EVERY: Duration = Duration::from_secs(2);

/// The policy file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLoadError {
    /// Unreadable.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Invalid (every problem as `FILE:LINE:COL: message`).
    #[error("{0}")]
    Invalid(#[from] PolicyErrors),
}

/// Read and compile a policy file.
pub fn load(path: &Path) -> Result<(PolicySet, u64), PolicyLoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PolicyLoadError::Read {
        file: file.clone(),
        source,
    })?;
    let set = PolicySet::parse(&text, &file)?;
    Ok((set, hash(&text)))
}

fn hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// The status of a freshly loaded set.
pub fn status_of(path: &Path, set: &PolicySet, at: Timestamp) -> PolicyStatus {
    PolicyStatus {
        file: path.display().to_string(),
        names: set.policies().iter().map(|p| p.name.to_string()).collect(),
        summaries: set.policies().iter().map(|p| p.summary()).collect(),
        loaded_at: Some(at),
        last_error: None,
    }
}

/// Watches one policy file.
pub(crate) struct Reloader {
    pub path: PathBuf,
    pub mtime: Option<SystemTime>,
    pub hash: u64,
    pub tx: mpsc::UnboundedSender<PolicyUpdate>,
    pub clock: Clock,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Check the file once; send an update when its content changed.
    pub(crate) fn check(&mut self) {
        // The content hash decides: an mtime can stay the same across two quick writes.
        self.mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => {
                let why = format!("{}: cannot read: {e}", self.path.display());
                tracing::error!(error = %why, "policy reload failed; keeping the policies in force");
                PolicyReload { success: false }.emit();
                let _ = self.tx.send(PolicyUpdate::Failed(why));
                return;
            }
        };
        let h = hash(&text);
        if h == self.hash {
            return;
        }
        self.hash = h;
        match PolicySet::parse(&text, &self.path.display().to_string()) {
            Ok(set) => {
                tracing::info!(file = %self.path.display(), policies = set.len(), "policies reloaded");
                PolicyReload { success: true }.emit();
                let status = status_of(&self.path, &set, (self.clock)());
                let _ = self.tx.send(PolicyUpdate::Loaded(Box::new((set, status))));
            }
            Err(e) => {
                let why = e.to_string();
                tracing::error!(error = %why, "policy reload failed; keeping the policies in force");
                PolicyReload { success: false }.emit();
                let _ = self.tx.send(PolicyUpdate::Failed(why));
            }
        }
    }

    /// Poll until the engine task is gone.
    pub(crate) async fn run(mut self) {
        let mut every = tokio::time::interval(POLL_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            if self.tx.is_closed() {
                return;
            }
            self.check();
        }
    }
}
