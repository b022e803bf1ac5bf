//! The one task that owns the [`Engine`]: it decides queued alerts in order, hands planned
//! actions to the executor, feeds outcomes and recreations back, re-checks deferrals on a
//! timer and on cluster changes, writes the audit log, and publishes the attack snapshot and
//! the status.
//!
//! Leader election gates it: while `may_act` is false the task leaves the ingest queue alone
//! (the routes keep accepting, so alerts are buffered up to `queue_capacity`) and re-checks no
//! deferrals; outcomes, cluster changes and policy reloads are still taken in. When `may_act`
//! turns true it resumes with the oldest buffered alert. When it turns false, no further batch
//! is taken: the batch being decided (synchronous, microseconds) finishes, and in-flight
//! actions finish and are recorded.
//!
//! Size: about 720 lines before its tests, kept in one file: the single task that owns the engine;
//! its loop, timers and shutdown share the task's state (tally.rs and the audit log are outside).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use teflon_core::{
    ActionId, ActionKind, Clock, Decision, DecisionRecord, Engine, Outcome, PolicySet, Timestamp,
    Verdict,
};
use teflon_metrics::events::{
    InfectionRecorded, JournalPending, Leader, QueueDepth, RecreationObserved,
};
use teflon_metrics::{AttackSnapshot, SnapshotGauges};
use tokio::sync::{mpsc, oneshot, watch};

use crate::audit::{AuditLog, AuditRecord, AuditTail};
use crate::backend::{ClusterEvent, PodLookup, SharedView};
use crate::executor::{Done, Executor};
use crate::journal::Journal;
use crate::queue::{EngineMsg, Queued};
use crate::state::{DeferralStatus, PolicyStatus, StatusSnapshot, WorkloadStatusLine};
use crate::tally::{EngineReport, Tally};

/// How often deferrals are re-checked and the snapshot refreshed without other activity.
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// How often expired engine state is forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// The snapshot is refreshed after decisions at most this often.
const MIN_PUBLISH_GAP: Duration = Duration::from_millis(100);
/// How long shutdown waits for in-flight actions.
pub(crate) const DRAIN_ACTIONS_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages taken from the queue per wake-up.
const BATCH: usize = 64;
/// Yield-and-take rounds while the queue stays busy, before the other inputs (outcomes, the
/// audit flush timer, ticks, leadership) get a turn…
const BUSY_ROUNDS: usize = 32;
/// …or this many alerts decided, whichever comes first (requests may carry large batches).
const BUSY_ALERTS: u64 = 4096;
/// Audit lines are written this long after the first unflushed one: one `write` for every
/// decision of the interval, not one per alert or per batch.
pub(crate) const AUDIT_FLUSH_EVERY: Duration = Duration::from_millis(5);

/// Complete journaled alerts are handed back to the journal this long after the first one:
/// one audit fsync per interval, and the journal holds at most this much finished work.
pub(crate) const JOURNAL_SYNC_EVERY: Duration = Duration::from_millis(100);

/// A pending look-up of a parked alert's pod.
type LookupFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<SharedView>, String>> + Send>>;
/// Look-ups that got no answer are retried after this, doubling…
const LOOKUP_RETRY_MIN: Duration = Duration::from_millis(500);
/// …up to this.
const LOOKUP_RETRY_MAX: Duration = Duration::from_secs(10);

/// A policy file change for the engine task.
#[derive(Debug)]
pub(crate) enum PolicyUpdate {
    /// A valid new set.
    Loaded(Box<(PolicySet, PolicyStatus)>),
    /// The file is invalid; the old set stays.
    Failed(String),
}

pub(crate) struct Pending {
    record: AuditRecord,
    decided: Instant,
}

pub(crate) struct EngineTask {
    pub engine: Engine,
    pub view: SharedView,
    pub clock: Clock,
    pub rx: mpsc::UnboundedReceiver<EngineMsg>,
    pub depth: Arc<AtomicUsize>,
    pub done_rx: mpsc::UnboundedReceiver<Done>,
    pub cluster_rx: mpsc::UnboundedReceiver<ClusterEvent>,
    pub policy_rx: mpsc::UnboundedReceiver<PolicyUpdate>,
    /// True while this replica may decide and act (always, without leader election).
    pub may_act: watch::Receiver<bool>,
    /// Turns true when shutdown begins: a follower then drains its buffer without deciding.
    pub stop: watch::Receiver<bool>,
    pub executor: Executor,
    pub audit: AuditLog,
    pub snapshot_tx: watch::Sender<Arc<AttackSnapshot>>,
    pub status_tx: watch::Sender<Arc<StatusSnapshot>>,
    pub policy_status: PolicyStatus,
    pub gauges: SnapshotGauges,
    pub pending: HashMap<ActionId, Pending>,
    /// The ingest journal, when there is one: told which alerts have durable audit records.
    pub journal: Option<Arc<Journal>>,
    /// The journal seq of the fresh alert being handled.
    pub fresh_seq: Option<u64>,
    /// Action → journal seq of the alert it came from.
    pub journal_actions: HashMap<ActionId, u64>,
    /// Journal seq → its actions still running.
    pub journal_open: HashMap<u64, u32>,
    /// Journaled alerts whose audit records are all written, waiting for the next audit sync.
    pub journal_done: Vec<u64>,
    /// Confirms pods the view does not know (kube backend).
    pub lookup: Option<Arc<dyn PodLookup>>,
    /// Alerts waiting for the look-up of the first one's pod, in order.
    pub parked: VecDeque<Queued>,
    /// The current look-up retry delay (zero after an answer).
    pub lookup_backoff: Duration,
    pub last_publish: Option<Instant>,
    pub dirty: bool,
    /// Every count: metrics, status totals, the report.
    pub tally: Tally,
    /// Releases to record, the history, the webhooks.
    pub lifecycle: crate::lifecycle::Lifecycle,
    pub releases_rx: mpsc::UnboundedReceiver<crate::lifecycle::Recorded>,
}

impl EngineTask {
    pub(crate) async fn run(mut self) -> EngineReport {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune = Instant::now();
        let mut buf = Vec::with_capacity(BATCH);
        let mut cluster_open = true;
        let mut policy_open = true;
        let mut may_act_open = true;
        let mut stopping = false;
        let mut leading = *self.may_act.borrow_and_update();
        // No decision before the cluster view has synced once (SPEC §4): alerts wait in the
        // queue. Checked again on every wake-up (cluster changes, the tick).
        let mut synced = self.view.is_synced();
        if !synced {
            tracing::info!("waiting for the cluster view to sync before deciding");
        }
        let flush_timer = tokio::time::sleep(AUDIT_FLUSH_EVERY);
        tokio::pin!(flush_timer);
        let mut flush_armed = false;
        let mut looking: Option<LookupFuture> = None;
        let journal_timer = tokio::time::sleep(JOURNAL_SYNC_EVERY);
        tokio::pin!(journal_timer);
        let mut journal_armed = false;
        Leader(leading).emit();
        self.publish();
        let drained: Option<oneshot::Sender<()>> = loop {
            if !synced && self.view.is_synced() {
                synced = true;
                tracing::info!(
                    buffered = self.depth.load(Ordering::Relaxed),
                    "cluster view synced: deciding"
                );
            }
            if looking.is_none() && !self.parked.is_empty() {
                looking = self.start_lookup(Duration::ZERO);
            }
            if !journal_armed && !self.journal_done.is_empty() {
                journal_timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + JOURNAL_SYNC_EVERY);
                journal_armed = true;
            }
            if !flush_armed && self.audit.has_unflushed() {
                flush_timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + AUDIT_FLUSH_EVERY);
                flush_armed = true;
            }
            tokio::select! {
                biased;
                Some(done) = self.done_rx.recv() => self.on_done(done),
                Some(r) = self.releases_rx.recv() => {
                    crate::release::record(&mut self.engine, &mut self.audit, &self.lifecycle, self.tally.counters(), r);
                    self.dirty = true;
                }
                () = &mut flush_timer, if flush_armed => {
                    flush_armed = false;
                    self.audit.flush();
                }
                result = async { looking.as_mut().expect("guarded").as_mut().await }, if looking.is_some() => {
                    looking = self.on_lookup(result).and_then(|delay| self.start_lookup(delay));
                }
                () = &mut journal_timer, if journal_armed => {
                    journal_armed = false;
                    self.journal_sync();
                }
                ev = self.cluster_rx.recv(), if cluster_open => match ev {
                    Some(ev) => self.on_cluster_event(ev, leading && synced),
                    None => cluster_open = false,
                },
                upd = self.policy_rx.recv(), if policy_open => match upd {
                    Some(upd) => self.on_policy(upd),
                    None => policy_open = false,
                },
                changed = self.may_act.changed(), if may_act_open => {
                    // Closed: no election any more (or none at all); keep the last value.
                    may_act_open = changed.is_ok();
                    let now_leading = *self.may_act.borrow_and_update();
                    if now_leading != leading {
                        leading = now_leading;
                        Leader(leading).emit();
                        tracing::info!(
                            leading,
                            buffered = self.depth.load(Ordering::Relaxed),
                            "{}",
                            if leading { "leading: deciding buffered alerts" } else { "following: buffering alerts" }
                        );
                        self.publish();
                    }
                }
                _ = self.stop.changed(), if !stopping => stopping = true,
                n = self.rx.recv_many(&mut buf, BATCH), if (leading && synced && self.parked.is_empty()) || stopping => {
                    if n == 0 {
                        break None;
                    }
                    let deciding = leading && synced;
                    let mut drain = self.take(&mut buf, deciding);
                    // While alerts keep coming, do not wait to be woken by the next one (one
                    // wake-up and one decided alert per request): let the connection tasks
                    // that are ready run first, then take everything they queued at once.
                    let mut rounds = 0;
                    let taken_before = self.tally.report().alerts;
                    while drain.is_none()
                        && rounds < BUSY_ROUNDS
                        && self.tally.report().alerts - taken_before < BUSY_ALERTS
                    {
                        tokio::task::yield_now().await;
                        while buf.len() < BATCH {
                            match self.rx.try_recv() {
                                Ok(msg) => buf.push(msg),
                                Err(_) => break,
                            }
                        }
                        if buf.is_empty() {
                            break;
                        }
                        drain = self.take(&mut buf, deciding);
                        rounds += 1;
                    }
                    self.publish_if_due();
                    if let Some(tx) = drain {
                        break Some(tx);
                    }
                }
                _ = tick.tick() => {
                    let now = (self.clock)();
                    if leading && synced {
                        let decisions = self.engine.tick(&self.view, now);
                        self.handle(decisions, None, now);
                    }
                    if last_prune.elapsed() >= PRUNE_EVERY {
                        self.engine.prune(&self.view, now);
                        last_prune = Instant::now();
                    }
                    // Retries writes that failed, even when no new decision comes.
                    self.audit.flush();
                    self.publish();
                }
            }
        };
        self.drain_parked().await;
        // Drain: every alert queued before the drain message has been decided. Let the
        // in-flight actions finish (their outcomes complete the audit records), then flush.
        self.finish_in_flight().await;
        self.audit.sync();
        if let Some(journal) = &self.journal {
            journal.complete(std::mem::take(&mut self.journal_done));
            journal.settle().await;
        }
        self.publish();
        if let Some(tx) = drained {
            let _ = tx.send(());
        }
        self.tally.finish(self.audit.lines())
    }

    /// Decide (or, shutting down as a follower or before the view synced, count) the alerts
    /// of `buf`; the drain request among them, if any.
    fn take(&mut self, buf: &mut Vec<EngineMsg>, deciding: bool) -> Option<oneshot::Sender<()>> {
        let mut drain = None;
        for msg in buf.drain(..) {
            match msg {
                EngineMsg::Alerts(batch) if deciding => self.on_alerts(batch),
                EngineMsg::Alerts(batch) => self.on_undecided(batch),
                EngineMsg::Drain(tx) => drain = Some(tx),
            }
        }
        QueueDepth(self.depth.load(Ordering::Relaxed)).emit();
        drain
    }

    async fn finish_in_flight(&mut self) {
        let deadline = tokio::time::Instant::now() + DRAIN_ACTIONS_TIMEOUT;
        while !self.pending.is_empty() {
            match tokio::time::timeout_at(deadline, self.done_rx.recv()).await {
                Ok(Some(done)) => self.on_done(done),
                Ok(None) | Err(_) => break,
            }
        }
        // Actions that did not finish in time still get their record.
        let now = (self.clock)();
        let abandoned: Vec<ActionId> = self.pending.keys().copied().collect();
        for id in abandoned {
            if let Some(p) = self.pending.remove(&id) {
                let outcome = Outcome::Failed("still running at shutdown".to_owned());
                self.engine.record(id, &outcome, now);
                self.journal_action_done(id);
                let mut rec = p.record.with_outcome(&outcome);
                rec.acted_at = None;
                self.write_audit(&rec.decision, &rec.tail());
                self.tally.abandoned();
            }
        }
    }

    fn on_alerts(&mut self, batch: Vec<Queued>) {
        let mut decided = 0;
        for q in batch {
            // A pod the view does not know is looked up first (`PodLookup`); alerts wait
            // behind it in order.
            if !self.parked.is_empty() || self.needs_lookup(&q) {
                self.parked.push_back(q);
                continue;
            }
            self.decide_one(q, None);
            decided += 1;
        }
        self.depth.fetch_sub(decided, Ordering::AcqRel);
    }

    /// The view does not know the alert's pod (or knows another pod of that name), and a
    /// look-up can tell.
    fn needs_lookup(&self, q: &Queued) -> bool {
        if self.lookup.is_none() {
            return false;
        }
        let Some(target) = q.alert.target.as_ref() else {
            return false;
        };
        match self.view.pod(&target.namespace, &target.pod) {
            None => true,
            Some(pod) => matches!(
                (target.uid.as_deref(), pod.uid.as_deref()),
                (Some(want), Some(have)) if want != have
            ),
        }
    }

    /// The look-up of the first parked alert's pod, after `delay`.
    fn start_lookup(&self, delay: Duration) -> Option<LookupFuture> {
        let lookup = self.lookup.clone()?;
        let target = self.parked.front()?.alert.target.clone()?;
        Some(Box::pin(async move {
            tokio::time::sleep(delay).await;
            lookup.lookup(target.namespace, target.pod).await
        }))
    }

    /// The look-up of the first parked alert answered: decide it (against a view that holds
    /// the pod, when it exists), then the alerts behind it until one needs a look-up.
    fn on_lookup(&mut self, result: Result<Option<SharedView>, String>) -> Option<Duration> {
        let found = match result {
            Ok(found) => found,
            Err(why) => {
                let delay = (self.lookup_backoff * 2).clamp(LOOKUP_RETRY_MIN, LOOKUP_RETRY_MAX);
                if self.lookup_backoff.is_zero() {
                    tracing::warn!(error = %why, parked = self.parked.len(), "a pod the cluster view does not know could not be looked up; alerts wait and the look-up is retried");
                }
                self.lookup_backoff = delay;
                return Some(delay);
            }
        };
        self.lookup_backoff = Duration::ZERO;
        let mut decided = 0;
        if let Some(q) = self.parked.pop_front() {
            self.decide_one(q, found);
            decided += 1;
        }
        while let Some(q) = self.parked.pop_front() {
            if self.needs_lookup(&q) {
                self.parked.push_front(q);
                break;
            }
            self.decide_one(q, None);
            decided += 1;
        }
        self.depth.fetch_sub(decided, Ordering::AcqRel);
        self.publish_if_due();
        None
    }

    /// At shutdown: finish the look-ups of parked alerts (within the drain timeout). Those the
    /// API server does not answer for stay undecided (in the journal, for the next start).
    async fn drain_parked(&mut self) {
        let deadline = tokio::time::Instant::now() + DRAIN_ACTIONS_TIMEOUT;
        while !self.parked.is_empty() {
            let Some(lookup) = self.start_lookup(Duration::ZERO) else {
                break;
            };
            match tokio::time::timeout_at(deadline, lookup).await {
                Ok(Ok(found)) => {
                    self.on_lookup(Ok(found));
                }
                Ok(Err(_)) | Err(_) => break,
            }
        }
        if !self.parked.is_empty() {
            let parked: Vec<Queued> = self.parked.drain(..).collect();
            self.on_undecided(parked);
        }
    }

    /// Decide one fresh alert, against `view` when given, else the cluster view.
    fn decide_one(&mut self, mut q: Queued, view: Option<SharedView>) {
        {
            // The receipt travels with the alert: into a deferral, to its resolution's line.
            q.alert.received_at = Some(q.received_at);
            let now = (self.clock)();
            let span = tracing::debug_span!(
                "alert",
                id = q.alert.id.as_deref().unwrap_or(""),
                rule = %q.alert.rule,
                priority = %q.alert.priority,
            );
            let _enter = span.enter();
            self.tally.alert(&q.alert);
            let decisions = match &view {
                Some(v) => self.engine.decide(q.alert, v, now),
                None => self.engine.decide(q.alert, &self.view, now),
            };
            self.fresh_seq = q.journal_seq;
            self.handle(decisions, Some(q.received), now);
            self.fresh_seq = None;
        }
    }

    /// A follower shutting down cannot decide what it buffered (the leader might act on the
    /// same workloads at once), nor can a replica whose view never synced (it would conclude
    /// `pod_not_found` for every pod): count and report it instead.
    fn on_undecided(&mut self, batch: Vec<Queued>) {
        let n = batch.len();
        tracing::warn!(
            alerts = n,
            "shutting down as a follower, before the cluster view synced, or with pods the API server could not confirm: buffered alerts were not decided (the journal keeps them for the next start)"
        );
        self.tally.undecided(n);
        self.depth.fetch_sub(n, Ordering::AcqRel);
    }

    fn on_cluster_event(&mut self, ev: ClusterEvent, leading: bool) {
        let now = (self.clock)();
        if let ClusterEvent::Recreated { workload, took } = &ev {
            self.engine.record_recreation(workload, *took, now);
            RecreationObserved {
                workload,
                took: *took,
            }
            .emit();
            tracing::debug!(%workload, took_secs = took.as_secs_f64(), "replacement ready");
            self.dirty = true;
        }
        if leading {
            let decisions = self.engine.tick(&self.view, now);
            self.handle(decisions, None, now);
        }
        self.publish_if_due();
    }

    fn on_policy(&mut self, upd: PolicyUpdate) {
        match upd {
            PolicyUpdate::Loaded(loaded) => {
                let (set, status) = *loaded;
                self.engine.set_policies(set);
                self.policy_status = status;
            }
            PolicyUpdate::Failed(why) => self.policy_status.last_error = Some(why),
        }
        self.publish();
    }

    /// Audit, count and execute decisions. `fresh` is the fresh alert's receipt on the
    /// monotonic clock, when the decisions are about one (its own decisions come after
    /// re-checked deferrals); every decision's receipt time travels on its alert.
    fn handle(&mut self, decisions: Vec<Decision>, fresh: Option<Instant>, now: Timestamp) {
        let fresh_seq = decisions.last().map(|d| d.seq).filter(|_| fresh.is_some());
        let journal_seq = self.fresh_seq.filter(|_| fresh.is_some());
        let mut open_actions = 0u32;
        for mut d in decisions {
            let is_fresh = Some(d.seq) == fresh_seq;
            let receipt = d.alert.received_at;
            let latency = fresh.filter(|_| is_fresh).map(|at| at.elapsed());
            self.tally.decision(&d, latency);
            if let Some(inf) = &d.infection {
                InfectionRecorded {
                    workload: &inf.workload,
                    since_previous: inf.since_previous,
                }
                .emit();
            }
            if d.verdict != Verdict::Skip || d.infection.is_some() {
                self.dirty = true;
            }
            tracing::debug!(
                seq = d.seq,
                policy = d.policy.as_deref().unwrap_or("-"),
                verdict = %d.verdict,
                reason = %d.reason,
                dry_run = d.dry_run,
                "decision"
            );
            let received_at = receipt;
            let decision_latency_us =
                receipt.map(|t| u64::try_from(now.since(t).as_micros()).unwrap_or(u64::MAX));
            let plan = d.plan.take();
            let tail = AuditTail::decided(
                d.alert.id.as_deref().unwrap_or_default(),
                received_at,
                decision_latency_us,
            );
            match plan {
                Some(plan) if plan.action.kind() != ActionKind::Log => {
                    tracing::info!(
                        seq = d.seq,
                        action = %plan.action.kind(),
                        namespace = %plan.pod.namespace,
                        pod = %plan.pod.name,
                        policy = %plan.policy,
                        reason = %d.reason,
                        "acting"
                    );
                    self.pending.insert(
                        plan.id,
                        Pending {
                            record: AuditRecord::new(d.record(), &tail),
                            decided: Instant::now(),
                        },
                    );
                    self.tally.action_submitted();
                    if is_fresh && let Some(seq) = journal_seq {
                        self.journal_actions.insert(plan.id, seq);
                        open_actions += 1;
                    }
                    self.executor.submit(plan);
                }
                plan => {
                    if let Some(plan) = plan {
                        // `log`: the decision is the whole action.
                        self.engine.record(plan.id, &Outcome::Success, now);
                    }
                    // Nothing runs after this decision: its line is written from borrowed
                    // parts, without an owned record.
                    self.write_audit(&d.record_ref(), &tail);
                }
            }
        }
        if let Some(seq) = journal_seq {
            self.journal_decided(seq, open_actions);
        }
    }

    /// Journal bookkeeping after a fresh alert's decisions: it is complete once all of its
    /// actions are recorded (and, after the next audit sync, reclaimable).
    fn journal_decided(&mut self, seq: u64, open_actions: u32) {
        if open_actions == 0 {
            self.journal_done.push(seq);
        } else {
            self.journal_open.insert(seq, open_actions);
        }
    }

    /// An action of a journaled alert finished.
    fn journal_action_done(&mut self, id: ActionId) {
        let Some(seq) = self.journal_actions.remove(&id) else {
            return;
        };
        match self.journal_open.get_mut(&seq) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                self.journal_open.remove(&seq);
                self.journal_done.push(seq);
            }
        }
    }

    /// Make the audit records of the complete journaled alerts durable, then let the journal
    /// reclaim them.
    fn journal_sync(&mut self) {
        let Some(journal) = &self.journal else {
            self.journal_done.clear();
            return;
        };
        if self.journal_done.is_empty() {
            return;
        }
        self.audit.sync();
        journal.complete(std::mem::take(&mut self.journal_done));
        JournalPending(self.journal_open.len() + self.depth.load(Ordering::Relaxed)).emit();
    }

    /// The one way a decision's line reaches the audit log: written, counted, and sent to
    /// the webhooks (an action's line once, with its outcome).
    fn write_audit<S, W>(&mut self, decision: &DecisionRecord<S, W>, tail: &AuditTail<'_>)
    where
        S: AsRef<str> + serde::Serialize,
        W: std::borrow::Borrow<teflon_core::WorkloadRef> + serde::Serialize,
    {
        self.audit.append_parts(decision, tail);
        self.tally.audit_written();
        self.lifecycle.notifier.decision(decision, tail);
    }

    fn on_done(&mut self, done: Done) {
        let now = (self.clock)();
        let Done {
            plan,
            outcome,
            attempts,
            acted_at,
        } = done;
        self.engine.record(plan.id, &outcome, now);
        self.journal_action_done(plan.id);
        self.tally.attempts(&plan, attempts);
        let Some(p) = self.pending.remove(&plan.id) else {
            return;
        };
        let latency = p.decided.elapsed();
        self.tally.outcome(&plan, &outcome, latency);
        let mut rec = p.record.with_outcome(&outcome);
        rec.attempts = Some(attempts);
        rec.acted_at = Some(acted_at);
        rec.action_latency_ms = Some(latency.as_secs_f64() * 1000.0);
        self.write_audit(&rec.decision, &rec.tail());
        self.lifecycle.executed(&plan, &rec);
        self.dirty = true;
        self.publish_if_due();
    }

    fn publish_if_due(&mut self) {
        if self.dirty
            && self
                .last_publish
                .is_none_or(|t| t.elapsed() >= MIN_PUBLISH_GAP)
        {
            self.publish();
        }
    }

    /// Refresh the attack snapshot, the gauges and the status.
    fn publish(&mut self) {
        self.dirty = false;
        self.last_publish = Some(Instant::now());
        let now = (self.clock)();
        let workloads = self.engine.workload_stats(&self.view, now);
        let infected_pods: BTreeSet<(String, String)> =
            self.engine.ledger().infected_pods().into_iter().collect();
        let snapshot = AttackSnapshot {
            at: now,
            window: self.engine.ledger().window(),
            workloads,
            infected_pods,
        };
        self.gauges.emit(&snapshot);
        QueueDepth(self.depth.load(Ordering::Relaxed)).emit();
        let status = StatusSnapshot {
            at: now,
            policies: self.policy_status.clone(),
            workloads: snapshot
                .workloads
                .iter()
                .map(WorkloadStatusLine::from)
                .collect(),
            deferrals: self
                .engine
                .deferrals()
                .into_iter()
                .map(|d| DeferralStatus {
                    seq: d.seq,
                    policy: d.policy.to_string(),
                    namespace: d.pod.namespace,
                    pod: d.pod.name,
                    workload: d.workload.map(|w| w.to_string()),
                    blocked_by: d.blocked_by.as_str(),
                    deferred_at: d.deferred_at,
                    expires_at: d.expires_at,
                })
                .collect(),
            actions_in_flight: self.pending.len(),
        };
        self.snapshot_tx.send_replace(Arc::new(snapshot));
        self.status_tx.send_replace(Arc::new(status));
    }
}
