//! What the HTTP handlers, the custom-metrics API and the autoscaler share with the engine
//! task: the cluster view, the latest attack snapshot and status, the decision ring, the
//! queue, counters.
//!
//! Size: about 460 lines before its tests, kept in one file: the one struct every handler shares,
//! and the small types it holds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use teflon_core::{Clock, Timestamp, WorkloadStats};
use teflon_metrics::{AttackSnapshot, Exporter};
use tokio::sync::watch;

use crate::audit::DecisionRing;
use crate::auth::Authenticator;
use crate::backend::SharedView;
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
    pub lifecycle: crate::lifecycle::Lifecycle,
    pub(crate) ids: Arc<AlertIds>,
    /// Bodies parsed at once: the alerts parsed and not yet queued stay bounded by
    /// `permits × max_body_bytes` however many connections send at the same time.
    pub parsing: Arc<tokio::sync::Semaphore>,
    /// The memory of request bodies being read (see [`BodyBudget`]).
    pub bodies: Arc<BodyBudget>,
    /// `/metrics` as last rendered (see [`MetricsCache`]).
    pub metrics: Arc<MetricsCache>,
}

/// Bodies declaring at most this many bytes are *small* (a Falco alert is 1–2 KiB); larger or
/// undeclared ones are *large* (see [`BodyBudget`]).
pub const SMALL_BODY_MAX: u64 = 64 * 1024;
/// The bytes small bodies hold at once, beside the one allowed past it.
pub const SMALL_BUDGET: usize = 4 << 20;
/// The bytes large bodies reserve at once (or one `max_body_bytes` body when larger).
pub const LARGE_BUDGET: usize = 8 << 20;

/// The memory of request bodies being read, bounded however many connections send at once,
/// in two pools so that neither trickling senders nor floods of large batches make a normal
/// alert wait:
///
/// - **Small bodies** (a declared length up to [`SMALL_BODY_MAX`]: single alerts, small
///   batches) take [`SMALL_BUDGET`] as their bytes arrive: a body holds what it has received,
///   not what it declares, so senders that trickle or stall hold next to nothing. Holding
///   received bytes while waiting for more could deadlock (bodies that hold the whole pool
///   between them, each waiting for room), so one small body at a time may go past the pool:
///   a body that finds no room takes the *reserve* if it is free and reads to its end without
///   waiting again. Whoever holds the reserve progresses, so some body always completes.
/// - **Large bodies** reserve their declared length (`max_body_bytes` when undeclared) of
///   [`LARGE_BUDGET`] before their first byte is read, in arrival order; the others wait with
///   their bytes unread (in the socket, or in HTTP/2's flow-control windows). A reservation is
///   never waited on again, so large bodies proceed in parallel up to the pool, and a flood of
///   them never touches the small pool. A large body must keep arriving at
///   [`MIN_LARGE_BODY_RATE`] after [`LARGE_BODY_GRACE`] (else 408), so a trickler holds its
///   reservation for seconds, not the 30 s body timeout.
///
/// Memory: the two pools, the small reserve, and the piece each waiting small body received
/// (at most a connection's 32 KiB read buffer; HTTP/2 streams of one connection read their
/// small bodies one at a time, so that too is per connection).
#[derive(Debug)]
pub struct BodyBudget {
    small: tokio::sync::Semaphore,
    small_reserve: tokio::sync::Semaphore,
    large: tokio::sync::Semaphore,
    large_bytes: usize,
}

/// A large body arriving slower than this after [`LARGE_BODY_GRACE`] is refused with 408.
pub const MIN_LARGE_BODY_RATE: u64 = 64 * 1024;
/// How long a large body may arrive at any rate before [`MIN_LARGE_BODY_RATE`] applies.
pub const LARGE_BODY_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

impl BodyBudget {
    /// The pools for bodies of at most `max_body_bytes`.
    pub fn new(max_body_bytes: u64) -> Self {
        let one = usize::try_from(max_body_bytes.min(u64::from(u32::MAX))).unwrap_or(usize::MAX);
        let large_bytes = LARGE_BUDGET.max(one);
        BodyBudget {
            small: tokio::sync::Semaphore::new(SMALL_BUDGET),
            small_reserve: tokio::sync::Semaphore::new(1),
            large: tokio::sync::Semaphore::new(large_bytes),
            large_bytes,
        }
    }

    /// Bytes of the small pool free now.
    pub fn small_available(&self) -> usize {
        self.small.available_permits()
    }

    /// Bytes of the large pool free now.
    pub fn large_available(&self) -> usize {
        self.large.available_permits()
    }

    /// The size of the large pool.
    pub fn large_size(&self) -> usize {
        self.large_bytes
    }

    /// True while a small body is being read past its pool.
    pub fn reserve_taken(&self) -> bool {
        self.small_reserve.available_permits() == 0
    }

    /// What one body holds, nothing to begin with; released when dropped. `content_length` is
    /// the declared length, `limit` the most a body may have.
    pub(crate) fn hold(&self, content_length: Option<u64>, limit: u64) -> BodyHold<'_> {
        let large = match content_length {
            Some(len) if len <= SMALL_BODY_MAX => None,
            Some(len) => Some(len.min(limit)),
            None => Some(limit),
        };
        BodyHold {
            budget: self,
            large,
            held: None,
            reserve: None,
        }
    }
}

/// The budget one body holds (see [`BodyBudget`]).
#[derive(Debug)]
pub(crate) struct BodyHold<'a> {
    budget: &'a BodyBudget,
    /// For a large body, the bytes to reserve before reading.
    large: Option<u64>,
    held: Option<tokio::sync::SemaphorePermit<'a>>,
    reserve: Option<tokio::sync::SemaphorePermit<'a>>,
}

/// The budget was closed (shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetClosed;

impl BodyHold<'_> {
    /// True for a large body.
    pub(crate) fn is_large(&self) -> bool {
        self.large.is_some()
    }

    /// Before the first byte: a large body reserves its length (waiting its turn).
    pub(crate) async fn start(&mut self) -> Result<(), BudgetClosed> {
        let Some(len) = self.large else {
            return Ok(());
        };
        let n = u32::try_from(len.max(1)).map_err(|_| BudgetClosed)?;
        let n = n.min(u32::try_from(self.budget.large_bytes).unwrap_or(u32::MAX));
        self.held = Some(
            self.budget
                .large
                .acquire_many(n)
                .await
                .map_err(|_| BudgetClosed)?,
        );
        Ok(())
    }

    /// `n` more bytes arrived: a small body holds them, from its pool when there is room, else
    /// the first of more room or the reserve. A large body reserved them already.
    pub(crate) async fn take(&mut self, n: usize) -> Result<(), BudgetClosed> {
        if self.large.is_some() || self.reserve.is_some() || n == 0 {
            return Ok(());
        }
        let small = &self.budget.small;
        let n = u32::try_from(n).map_err(|_| BudgetClosed)?;
        let permit = match small.try_acquire_many(n) {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(BudgetClosed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                tokio::select! {
                    biased;
                    p = small.acquire_many(n) => p.map_err(|_| BudgetClosed)?,
                    r = self.budget.small_reserve.acquire() => {
                        self.reserve = Some(r.map_err(|_| BudgetClosed)?);
                        return Ok(());
                    }
                }
            }
        };
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }

    /// Bytes held from a pool.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.as_ref().map_or(0, |p| p.num_permits())
    }
}

/// How long a rendered `/metrics` text is served again: concurrent and repeated scrapes cost
/// one render per interval, however many arrive.
pub const METRICS_CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// `/metrics` as last rendered. Scrapes that arrive while a render runs wait for it and share
/// its text.
#[derive(Debug, Default)]
pub struct MetricsCache {
    last: tokio::sync::Mutex<Option<(tokio::time::Instant, bytes::Bytes)>>,
}

impl MetricsCache {
    /// The text rendered within [`METRICS_CACHE_FOR`], or a fresh `render()`.
    pub async fn get(&self, render: impl FnOnce() -> String) -> bytes::Bytes {
        let mut last = self.last.lock().await;
        if let Some((at, text)) = &*last
            && at.elapsed() < METRICS_CACHE_FOR
        {
            return text.clone();
        }
        let text = bytes::Bytes::from(render());
        *last = Some((tokio::time::Instant::now(), text.clone()));
        text
    }
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
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_small_body_holds_what_it_received_and_the_reserve_lets_one_past_a_full_pool() {
        let budget = BodyBudget::new(1 << 20);
        let small = Some(SMALL_BODY_MAX);
        // Two small bodies hold the whole pool between them and each wants more.
        let mut a = budget.hold(small, 1 << 20);
        let mut b = budget.hold(small, 1 << 20);
        a.take(SMALL_BUDGET - 100).await.unwrap();
        b.take(100).await.unwrap();
        assert_eq!(budget.small_available(), 0);
        // `a` takes the reserve and is never made to wait again: no deadlock.
        a.take(50).await.unwrap();
        a.take(1000).await.unwrap();
        assert!(budget.reserve_taken());
        // `b` waits: no room and the reserve is taken…
        assert!(
            tokio::time::timeout(Duration::from_secs(60), b.take(10))
                .await
                .is_err()
        );
        // …until `a` is done and gives everything back.
        drop(a);
        assert!(!budget.reserve_taken());
        b.take(10).await.unwrap();
        assert_eq!(b.held(), 110);
        drop(b);
        assert_eq!(budget.small_available(), SMALL_BUDGET);
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_bodies_hold_only_what_they_sent_so_a_normal_one_never_waits() {
        let budget = BodyBudget::new(1 << 20);
        // 1,000 small-body senders that trickle: each sent 10 bytes.
        let mut tricklers: Vec<_> = (0..1000)
            .map(|_| budget.hold(Some(60_000), 1 << 20))
            .collect();
        for t in &mut tricklers {
            t.take(10).await.unwrap();
        }
        // And large ones that hold the whole large pool.
        let mut large: Vec<_> = (0..8)
            .map(|_| budget.hold(Some(1 << 20), 1 << 20))
            .collect();
        for l in &mut large {
            l.start().await.unwrap();
        }
        assert_eq!(budget.large_available(), 0);
        let mut normal = budget.hold(Some(1024), 1 << 20);
        // Ready at once (no timer, no waiting): the small pool has room.
        tokio::time::timeout(Duration::ZERO, async {
            normal.start().await.unwrap();
            normal.take(1024).await.unwrap();
        })
        .await
        .unwrap();
        assert!(!budget.reserve_taken());
    }

    #[tokio::test(start_paused = true)]
    async fn large_bodies_reserve_their_length_before_reading_and_wait_their_turn() {
        let budget = BodyBudget::new(1 << 20);
        let mut first = budget.hold(Some(5 << 20), 1 << 20);
        assert!(first.is_large());
        first.start().await.unwrap();
        // Declared 5 MiB, capped at the 1 MiB limit; undeclared reserves the limit.
        assert_eq!(first.held(), 1 << 20);
        let mut undeclared = budget.hold(None, 1 << 20);
        undeclared.start().await.unwrap();
        assert_eq!(budget.large_available(), LARGE_BUDGET - (2 << 20));
        let mut rest: Vec<_> = (0..6)
            .map(|_| budget.hold(Some(1 << 20), 1 << 20))
            .collect();
        for r in &mut rest {
            r.start().await.unwrap();
        }
        let mut waiting = budget.hold(Some(200_000), 1 << 20);
        assert!(
            tokio::time::timeout(Duration::from_secs(60), waiting.start())
                .await
                .is_err(),
            "the pool is reserved"
        );
        drop(first);
        waiting.start().await.unwrap();
        // Taking bytes of a reserved body never waits.
        tokio::time::timeout(Duration::ZERO, waiting.take(200_000))
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_scrapes_share_one_render_per_interval() {
        let cache = MetricsCache::default();
        let renders = std::sync::atomic::AtomicUsize::new(0);
        let render = || {
            renders.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            "teflon_queue_depth 0\n".to_owned()
        };
        let texts = futures::future::join_all((0..12).map(|_| cache.get(render))).await;
        assert!(
            texts
                .iter()
                .all(|t| t.as_ref() == b"teflon_queue_depth 0\n")
        );
        assert_eq!(renders.load(std::sync::atomic::Ordering::Relaxed), 1);
        tokio::time::sleep(METRICS_CACHE_FOR).await;
        cache.get(render).await;
        assert_eq!(renders.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

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
