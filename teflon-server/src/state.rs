//! What the HTTP handlers, the custom-metrics API and the autoscaler share with the engine
//! task: the cluster view, the latest attack snapshot and status, the decision ring, the
//! queue, counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use teflon_core::{Timestamp, WorkloadStats};
use teflon_metrics::{AttackSnapshot, Exporter};
use tokio::sync::watch;

use crate::audit::DecisionRing;
use crate::auth::Authenticator;
use crate::cluster::{Clock, SharedView};
use crate::config::Config;
use crate::queue::Queue;

/// Totals since start, for the demo's summary and `/v1/status`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Alerts accepted (202).
    pub alerts_accepted: AtomicU64,
    /// Alerts or requests refused.
    pub alerts_rejected: AtomicU64,
    /// Decisions taken.
    pub decisions: AtomicU64,
    /// Decisions with verdict `act`.
    pub acts: AtomicU64,
    /// Decisions with verdict `defer`.
    pub deferrals: AtomicU64,
    /// Actions handed to the actuator (not `log`, not dry runs).
    pub actions: AtomicU64,
    /// Disruptive actions that took effect (`success` or `gone`).
    pub reaps: AtomicU64,
    /// Actions that failed.
    pub failed_actions: AtomicU64,
    /// Audit records written.
    pub audit_records: AtomicU64,
    /// Quarantines and `block_binary` policies released (by an operator or on expiry).
    pub releases: AtomicU64,
}

impl Counters {
    /// Read one counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// The policy file's state, for `/v1/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PolicyStatus {
    /// The file.
    pub file: String,
    /// Policy names in file order.
    pub names: Vec<String>,
    /// One-line summaries in file order.
    pub summaries: Vec<String>,
    /// When the set in force was loaded.
    pub loaded_at: Option<Timestamp>,
    /// The last reload's error, when the file on disk is invalid (the previous set stays).
    pub last_error: Option<String>,
}

/// A pending deferral, for `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct DeferralStatus {
    /// The alert's sequence number.
    pub seq: u64,
    /// The policy.
    pub policy: String,
    /// Namespace.
    pub namespace: String,
    /// Pod.
    pub pod: String,
    /// Workload, `Kind ns/name`.
    pub workload: Option<String>,
    /// The guard that blocks it.
    pub blocked_by: &'static str,
    /// Since when.
    pub deferred_at: Timestamp,
    /// When it gives up.
    pub expires_at: Timestamp,
}

/// A workload under attack, for `/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadStatusLine {
    /// `Deployment`, …
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Infected pods now.
    pub infected_pods: u32,
    /// Infections ever.
    pub infections_total: u64,
    /// Infections per minute (sliding window).
    pub infection_rate_per_minute: f64,
    /// Mean reap → Ready, seconds.
    pub time_to_recreation_secs: Option<f64>,
    /// Reaps that took effect.
    pub reaps_total: u64,
    /// Desired replicas.
    pub desired: u32,
    /// Ready replicas.
    pub available: u32,
    /// available / desired.
    pub available_ratio: f64,
    /// Little's law.
    pub replicas_needed: u32,
    /// replicas_needed / desired.
    pub attack_pressure: f64,
}

impl From<&WorkloadStats> for WorkloadStatusLine {
    fn from(s: &WorkloadStats) -> Self {
        WorkloadStatusLine {
            kind: s.workload.kind.to_string(),
            namespace: s.workload.namespace.clone(),
            name: s.workload.name.clone(),
            infected_pods: s.infected_pods,
            infections_total: s.infections_total,
            infection_rate_per_minute: s.infection_rate_per_minute,
            time_to_recreation_secs: s.time_to_recreation.map(|d| d.as_secs_f64()),
            reaps_total: s.reaps_total,
            desired: s.desired,
            available: s.available,
            available_ratio: s.available_ratio,
            replicas_needed: s.replicas_needed,
            attack_pressure: s.attack_pressure,
        }
    }
}

/// The engine task's state as `/v1/status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusSnapshot {
    /// When it was taken.
    pub at: Timestamp,
    /// The policies in force.
    pub policies: PolicyStatus,
    /// Workloads under attack.
    pub workloads: Vec<WorkloadStatusLine>,
    /// Pending deferrals, oldest first.
    pub deferrals: Vec<DeferralStatus>,
    /// Actions decided and not yet done.
    pub actions_in_flight: usize,
}

/// Everything the routes and the side services read. Cheap to clone.
#[derive(Clone)]
pub struct SharedState {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The cluster view the engine decides against.
    pub view: SharedView,
    /// The latest attack numbers (refreshed every second and after decisions).
    pub snapshot: watch::Receiver<Arc<AttackSnapshot>>,
    /// The latest status.
    pub status: watch::Receiver<Arc<StatusSnapshot>>,
    /// The latest decisions.
    pub decisions: Arc<DecisionRing>,
    /// The ingest queue.
    pub queue: Queue,
    /// Whether audit writes succeed (`/readyz` is not ready while they fail).
    pub audit: Arc<crate::audit::AuditHealth>,
    /// Who may POST.
    pub auth: Arc<Authenticator>,
    /// The Prometheus exporter `/metrics` renders (none: `/metrics` is empty).
    pub exporter: Option<Exporter>,
    /// Totals.
    pub counters: Arc<Counters>,
    /// False once shutdown began: POSTs get 503.
    pub accepting: Arc<AtomicBool>,
    /// Whether this replica leads (may decide and act); `None` without leader election.
    pub leader: Option<watch::Receiver<bool>>,
    /// The server's clock.
    pub clock: Clock,
    /// Releases, the response history and the webhooks.
    pub lifecycle: crate::release::Lifecycle,
    pub(crate) ids: Arc<AlertIds>,
    /// Bodies parsed at once: the alerts parsed and not yet queued stay bounded by
    /// `permits × max_body_bytes` however many connections send at the same time.
    pub parsing: Arc<tokio::sync::Semaphore>,
    /// Body bytes being read, one permit per byte (8 MiB, or one body at `max_body_bytes` when
    /// that is larger): a request holds its declared length (the limit when undeclared) until
    /// its body is parsed, so the memory holding bodies stays bounded however many connections
    /// send at once. The others wait with their bodies unread in the socket.
    pub reading: Arc<tokio::sync::Semaphore>,
}

/// The body bytes read at once: 8 MiB, or one body at the limit when that is larger.
pub(crate) fn body_budget(max_body_bytes: u64) -> usize {
    let one = usize::try_from(body_permits(max_body_bytes, None)).unwrap_or(usize::MAX >> 4);
    one.max(8 << 20)
}

/// The permits of [`SharedState::reading`] a body of `content_length` holds: its declared
/// length up to the limit, the limit when undeclared.
pub(crate) fn body_permits(max_body_bytes: u64, content_length: Option<u64>) -> u32 {
    let n = content_length.map_or(max_body_bytes, |l| l.min(max_body_bytes));
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Permits of [`SharedState::parsing`]: parsing is CPU work, more at once than twice the cores
/// only holds more memory.
pub(crate) fn parse_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("queue", &self.queue)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl SharedState {
    /// The latest attack snapshot.
    pub fn attack_snapshot(&self) -> Arc<AttackSnapshot> {
        self.snapshot.borrow().clone()
    }

    /// The latest status.
    pub fn status_snapshot(&self) -> Arc<StatusSnapshot> {
        self.status.borrow().clone()
    }

    /// `Some(true)` while this replica leads, `Some(false)` while it follows (accepts and
    /// buffers), `None` without leader election.
    pub fn is_leader(&self) -> Option<bool> {
        self.leader.as_ref().map(|rx| *rx.borrow())
    }

    /// Ready: policies loaded (always, once started) and the cluster view synced. A follower
    /// is ready too: it accepts and buffers alerts until it leads.
    pub fn is_ready(&self) -> bool {
        self.view.is_synced()
    }
}

/// Assigns ids to alerts that came without one: a per-process prefix and a counter.
#[derive(Debug)]
pub(crate) struct AlertIds {
    prefix: String,
    next: AtomicU64,
}

impl AlertIds {
    pub(crate) fn new(start: Timestamp) -> Self {
        AlertIds {
            prefix: format!("{:x}", start.as_nanos() / 1_000_000),
            next: AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self) -> String {
        let mut n = self.next.fetch_add(1, Ordering::Relaxed);
        // `{prefix}-{n}` without the formatting machinery (one per alert on the hot path).
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut id = String::with_capacity(self.prefix.len() + 1 + digits.len() - at);
        id.push_str(&self.prefix);
        id.push('-');
        id.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_ids_are_the_prefix_and_a_decimal_counter() {
        let ids = AlertIds::new(Timestamp::from_secs(1));
        assert_eq!(ids.next(), "3e8-0");
        assert_eq!(ids.next(), "3e8-1");
        ids.next.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(ids.next(), format!("3e8-{}", u64::MAX));
        ids.next.store(1_000_000_007, Ordering::Relaxed);
        assert_eq!(ids.next(), "3e8-1000000007");
    }
}
