//! One small struct per event, each with `emit()` (Vector's `internal_events`). Emitting goes to
//! whatever `metrics` recorder is installed (the Prometheus exporter, or a test's debugging
//! recorder); with none installed it costs next to nothing.
//!
//! Size: about 490 lines before its tests, kept in one file: one small event struct per metric
//! (Vector's internal_events); each is short, and one list makes a missing one easy to see.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use teflon_core::{ActionKind, Decision, Outcome, Priority, WorkloadRef};

use crate::names::{self, label};

/// An alert was accepted for decision.
#[derive(Debug, Clone, Copy)]
pub struct AlertReceived<'a> {
    /// `syscall`, `k8s_audit`, `tetragon`…
    pub source: &'a str,
    /// Priority.
    pub priority: Priority,
}

/// The `source` label of an alert's source: its own name when it is one of
/// [`names::KNOWN_SOURCES`], else [`names::OTHER_SOURCE`]. The source is whatever the sender
/// wrote, so the label set stays bounded however many distinct values arrive.
pub fn source_label(source: &str) -> &'static str {
    names::KNOWN_SOURCES
        .iter()
        .find(|known| **known == source)
        .copied()
        .unwrap_or(names::OTHER_SOURCE)
}

impl AlertReceived<'_> {
    /// Count it.
    pub fn emit(self) {
        counter!(names::ALERTS_TOTAL, label::SOURCE => source_label(self.source), label::PRIORITY => self.priority.as_str())
            .increment(1);
    }
}

/// Why alerts (or a request) were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The body is not valid Falco/Tetragon JSON.
    ParseError,
    /// No valid token or client certificate.
    Unauthorized,
    /// The body is above the limit.
    TooLarge,
    /// The queue is full.
    Overloaded,
}

impl RejectReason {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::ParseError => "parse_error",
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::TooLarge => "too_large",
            RejectReason::Overloaded => "overloaded",
        }
    }
}

/// Alerts (or a request whose alerts could not be counted) were refused.
#[derive(Debug, Clone, Copy)]
pub struct AlertRejected {
    /// Why.
    pub reason: RejectReason,
    /// How many alerts (1 for a request whose body was not read).
    pub count: u64,
}

impl AlertRejected {
    /// Count it.
    pub fn emit(self) {
        counter!(names::ALERTS_REJECTED_TOTAL, label::REASON => self.reason.as_str())
            .increment(self.count);
    }
}

/// A decision was taken.
#[derive(Debug, Clone, Copy)]
pub struct DecisionTaken<'a> {
    /// The decision.
    pub decision: &'a Decision,
    /// Alert received → decision (`None` for re-checked deferrals, which have no fresh alert).
    pub latency: Option<Duration>,
}

impl DecisionTaken<'_> {
    /// Count it and its latency.
    pub fn emit(self) {
        let d = self.decision;
        let policy = d.policy.as_deref().unwrap_or(names::NO_POLICY).to_owned();
        counter!(names::DECISIONS_TOTAL,
            label::POLICY => policy,
            label::VERDICT => d.verdict.as_str(),
            label::REASON => d.reason.as_str())
        .increment(1);
        if let Some(latency) = self.latency {
            histogram!(names::DECISION_LATENCY_SECONDS).record(latency.as_secs_f64());
        }
    }
}

/// A new infection was recorded.
#[derive(Debug, Clone, Copy)]
pub struct InfectionRecorded<'a> {
    /// The infected workload.
    pub workload: &'a WorkloadRef,
    /// Time since the previous infection of that workload.
    pub since_previous: Option<Duration>,
}

impl InfectionRecorded<'_> {
    /// Count it and the interval.
    pub fn emit(self) {
        let ns = self.workload.namespace.clone();
        let name = self.workload.name.clone();
        counter!(names::INFECTIONS_TOTAL, label::NAMESPACE => ns.clone(), label::WORKLOAD => name.clone())
            .increment(1);
        if let Some(gap) = self.since_previous {
            histogram!(names::TIME_TO_NEW_INFECTION_SECONDS, label::NAMESPACE => ns, label::WORKLOAD => name)
                .record(gap.as_secs_f64());
        }
    }
}

/// A disruptive action was executed (whatever the outcome), with its latency.
#[derive(Debug, Clone, Copy)]
pub struct PodReaped<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The workload name (the pod's own name for a standalone pod).
    pub workload: &'a str,
    /// The action.
    pub action: ActionKind,
    /// How it ended.
    pub outcome: &'a Outcome,
    /// Decision → API call done.
    pub latency: Duration,
}

impl PodReaped<'_> {
    /// Count it and its latency.
    pub fn emit(self) {
        counter!(names::REAPINGS_TOTAL,
            label::NAMESPACE => self.namespace.to_owned(),
            label::WORKLOAD => self.workload.to_owned(),
            label::ACTION => self.action.as_str(),
            label::OUTCOME => self.outcome.as_str())
        .increment(1);
        histogram!(names::ACTION_LATENCY_SECONDS, label::ACTION => self.action.as_str())
            .record(self.latency.as_secs_f64());
    }
}

/// A disruptive action failed (counted in `teflon_reapings_total{outcome="failed"}` by
/// [`PodReaped`]; this is the same event, spelled for call sites that only know the failure).
#[derive(Debug, Clone, Copy)]
pub struct ReapFailed<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The workload name.
    pub workload: &'a str,
    /// The action.
    pub action: ActionKind,
    /// Decision → failure.
    pub latency: Duration,
}

impl ReapFailed<'_> {
    /// Count it.
    pub fn emit(self) {
        PodReaped {
            namespace: self.namespace,
            workload: self.workload,
            action: self.action,
            outcome: &Outcome::Failed(String::new()),
            latency: self.latency,
        }
        .emit();
    }
}

/// A non-disruptive action (`block_binary`) was executed: only its latency is recorded.
#[derive(Debug, Clone, Copy)]
pub struct ActionExecuted {
    /// The action.
    pub action: ActionKind,
    /// Decision → API call done.
    pub latency: Duration,
}

impl ActionExecuted {
    /// Record the latency.
    pub fn emit(self) {
        histogram!(names::ACTION_LATENCY_SECONDS, label::ACTION => self.action.as_str())
            .record(self.latency.as_secs_f64());
    }
}

/// An action's API calls were retried before its final outcome.
#[derive(Debug, Clone, Copy)]
pub struct ActionRetried {
    /// The action.
    pub action: ActionKind,
    /// Retries (attempts beyond the first).
    pub retries: u32,
}

impl ActionRetried {
    /// Count them (nothing when there were none).
    pub fn emit(self) {
        if self.retries > 0 {
            counter!(names::ACTION_RETRIES_TOTAL, label::ACTION => self.action.as_str())
                .increment(u64::from(self.retries));
        }
    }
}

/// A torn journal tail was skipped at start.
#[derive(Debug, Clone, Copy)]
pub struct JournalTornTail;

impl JournalTornTail {
    /// Count it.
    pub fn emit(self) {
        counter!(names::JOURNAL_TORN_TAILS_TOTAL).increment(1);
    }
}

/// Alerts recovered from the journal at start, to be decided again.
#[derive(Debug, Clone, Copy)]
pub struct JournalReplayed(pub u64);

impl JournalReplayed {
    /// Count them.
    pub fn emit(self) {
        counter!(names::JOURNAL_REPLAYED_TOTAL).increment(self.0);
    }
}

/// Alerts journaled and not yet durably audited.
#[derive(Debug, Clone, Copy)]
pub struct JournalPending(pub usize);

impl JournalPending {
    /// Set the gauge.
    pub fn emit(self) {
        gauge!(names::JOURNAL_PENDING).set(self.0 as f64);
    }
}

/// A reaped pod's replacement became Ready.
#[derive(Debug, Clone, Copy)]
pub struct RecreationObserved<'a> {
    /// The workload.
    pub workload: &'a WorkloadRef,
    /// Reap → replacement Ready.
    pub took: Duration,
}

impl RecreationObserved<'_> {
    /// Record it.
    pub fn emit(self) {
        histogram!(names::TIME_TO_RECREATION_SECONDS,
            label::NAMESPACE => self.workload.namespace.clone(),
            label::WORKLOAD => self.workload.name.clone())
        .record(self.took.as_secs_f64());
    }
}

/// The number of alerts waiting for the engine.
#[derive(Debug, Clone, Copy)]
pub struct QueueDepth(pub usize);

impl QueueDepth {
    /// Set the gauge.
    pub fn emit(self) {
        gauge!(names::QUEUE_DEPTH).set(self.0 as f64);
    }
}

/// Audit lines that could not be written.
#[derive(Debug, Clone, Copy)]
pub struct AuditLinesLost(pub u64);

impl AuditLinesLost {
    /// Count them.
    pub fn emit(self) {
        counter!(names::AUDIT_LINES_LOST_TOTAL).increment(self.0);
    }
}

/// The audit log ended in a torn line at start (a record cut short by a crash), which was
/// moved aside before appending.
#[derive(Debug, Clone, Copy)]
pub struct AuditTornTail;

impl AuditTornTail {
    /// Count it.
    pub fn emit(self) {
        counter!(names::AUDIT_TORN_TAILS_TOTAL).increment(1);
    }
}

/// The audit log reached `audit_max_bytes` and was rotated.
#[derive(Debug, Clone, Copy)]
pub struct AuditRotated;

impl AuditRotated {
    /// Count it.
    pub fn emit(self) {
        counter!(names::AUDIT_ROTATIONS_TOTAL).increment(1);
    }
}

/// Open connections on a listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionsOpen {
    /// `ingest` or `metrics_api`.
    pub listener: &'static str,
    /// How many.
    pub open: usize,
}

impl ConnectionsOpen {
    /// Set the gauge.
    pub fn emit(self) {
        gauge!(names::HTTP_CONNECTIONS, label::LISTENER => self.listener).set(self.open as f64);
    }
}

/// Why the server closed a connection on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionClose {
    /// Refused at accept: `max_connections` open and none could make room.
    Refused,
    /// Closed to make room for a new connection: it never authenticated and had no request
    /// in flight.
    Evicted,
    /// A request head did not arrive within `header_read_timeout_secs`.
    HeaderTimeout,
    /// Idle longer than `idle_timeout_secs`.
    IdleTimeout,
}

impl ConnectionClose {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConnectionClose::Refused => "refused",
            ConnectionClose::Evicted => "evicted",
            ConnectionClose::HeaderTimeout => "header_timeout",
            ConnectionClose::IdleTimeout => "idle_timeout",
        }
    }
}

/// The server closed a connection on its own.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionClosed {
    /// `ingest` or `metrics_api`.
    pub listener: &'static str,
    /// Why.
    pub reason: ConnectionClose,
}

impl ConnectionClosed {
    /// Count it.
    pub fn emit(self) {
        counter!(names::HTTP_CONNECTIONS_CLOSED_TOTAL,
            label::LISTENER => self.listener,
            label::REASON => self.reason.as_str())
        .increment(1);
    }
}

/// Whether this replica may decide and act (leader election).
#[derive(Debug, Clone, Copy)]
pub struct Leader(pub bool);

impl Leader {
    /// Set the gauge.
    pub fn emit(self) {
        gauge!(names::LEADER).set(if self.0 { 1.0 } else { 0.0 });
    }
}

/// The policy file was reloaded (or a reload was refused).
#[derive(Debug, Clone, Copy)]
pub struct PolicyReload {
    /// True when the new set is in force.
    pub success: bool,
}

impl PolicyReload {
    /// Count it.
    pub fn emit(self) {
        let result = if self.success { "success" } else { "failure" };
        counter!(names::POLICY_RELOADS_TOTAL, label::RESULT => result).increment(1);
    }
}

/// [`AlertReceived`] and [`DecisionTaken`] for a hot loop: the metric handles are looked up
/// once per label set and reused (same names, labels and values as the one-shot events).
#[derive(Default)]
pub struct HotPath {
    /// Per source label (at most the known sources and `other`), one slot per priority;
    /// searched linearly, which beats hashing at this size.
    alerts: Vec<(&'static str, [Option<metrics::Counter>; 8])>,
    decisions: std::collections::HashMap<DecisionKey, metrics::Counter>,
    /// The last decision label set and its counter: consecutive alerts mostly share it.
    last_decision: Option<(DecisionKey, metrics::Counter)>,
    latency: Option<metrics::Histogram>,
}

type DecisionKey = (
    Option<std::sync::Arc<str>>,
    teflon_core::Verdict,
    teflon_core::Reason,
);

impl std::fmt::Debug for HotPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotPath")
            .field("decision_label_sets", &self.decisions.len())
            .finish_non_exhaustive()
    }
}

impl HotPath {
    /// No handles yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Same as [`AlertReceived::emit`].
    pub fn alert_received(&mut self, source: &str, priority: Priority) {
        let idx = Priority::ALL
            .iter()
            .position(|p| *p == priority)
            .unwrap_or(0);
        let source = source_label(source);
        let at = match self.alerts.iter().position(|(s, _)| *s == source) {
            Some(at) => at,
            None => {
                self.alerts.push((source, Default::default()));
                self.alerts.len() - 1
            }
        };
        self.alerts[at].1[idx]
            .get_or_insert_with(|| {
                counter!(names::ALERTS_TOTAL, label::SOURCE => source, label::PRIORITY => priority.as_str())
            })
            .increment(1);
    }

    /// Same as [`DecisionTaken::emit`].
    pub fn decision_taken(&mut self, d: &Decision, latency: Option<Duration>) {
        match &self.last_decision {
            Some(((policy, verdict, reason), counter))
                if *verdict == d.verdict && *reason == d.reason && *policy == d.policy =>
            {
                counter.increment(1);
            }
            _ => {
                let key = (d.policy.clone(), d.verdict, d.reason);
                let counter = self
                    .decisions
                    .entry(key.clone())
                    .or_insert_with(|| {
                        let policy = d.policy.as_deref().unwrap_or(names::NO_POLICY).to_owned();
                        counter!(names::DECISIONS_TOTAL,
                            label::POLICY => policy,
                            label::VERDICT => d.verdict.as_str(),
                            label::REASON => d.reason.as_str())
                    })
                    .clone();
                counter.increment(1);
                self.last_decision = Some((key, counter));
            }
        }
        if let Some(latency) = latency {
            self.latency
                .get_or_insert_with(|| histogram!(names::DECISION_LATENCY_SECONDS))
                .record(latency.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use teflon_core::{Alert, Reason, Timestamp, Verdict};

    use super::*;

    fn decision(policy: Option<&str>, verdict: Verdict, reason: Reason) -> Decision {
        Decision {
            seq: 0,
            decided_at: Timestamp::EPOCH,
            alert: Arc::new(Alert::test().build()),
            policy: policy.map(Arc::from),
            action: None,
            verdict,
            reason,
            dry_run: false,
            workload: None,
            plan: None,
            infection: None,
        }
    }

    /// Every counter and histogram count, keyed by name and sorted labels.
    fn counts(run: impl FnOnce()) -> Vec<(String, Vec<String>, u64)> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, run);
        let mut out: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let mut labels: Vec<String> = key
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                labels.sort();
                let n = match value {
                    DebugValue::Counter(n) => n,
                    DebugValue::Histogram(v) => v.len() as u64,
                    DebugValue::Gauge(_) => 0,
                };
                (key.key().name().to_owned(), labels, n)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn the_hot_path_counts_exactly_what_the_one_shot_events_count() {
        // Label sets that change, repeat, and come back after others (the cached last set
        // must not swallow a change).
        let decisions = [
            decision(Some("reap"), Verdict::Act, Reason::Matched),
            decision(Some("reap"), Verdict::Skip, Reason::Duplicate),
            decision(Some("reap"), Verdict::Skip, Reason::Duplicate),
            decision(Some("reap"), Verdict::Skip, Reason::RateLimited),
            decision(Some("reap"), Verdict::Defer, Reason::BelowMinAvailable),
            decision(Some("reap"), Verdict::Skip, Reason::BelowMinAvailable),
            decision(None, Verdict::Skip, Reason::NoMatch),
            decision(Some("other"), Verdict::Skip, Reason::Duplicate),
            decision(Some("reap"), Verdict::Skip, Reason::Duplicate),
            decision(Some("reap"), Verdict::Act, Reason::Matched),
        ];
        let alerts = [
            ("syscall", Priority::Critical),
            ("syscall", Priority::Critical),
            ("k8s_audit", Priority::Warning),
            ("my_plugin", Priority::Critical),
            ("syscall", Priority::Notice),
            ("k8s_audit", Priority::Warning),
        ];
        let latency = Some(Duration::from_micros(30));
        let one_shot = counts(|| {
            for (source, priority) in alerts {
                AlertReceived { source, priority }.emit();
            }
            for d in &decisions {
                DecisionTaken {
                    decision: d,
                    latency,
                }
                .emit();
            }
        });
        let hot = counts(|| {
            let mut hot = HotPath::new();
            for (source, priority) in alerts {
                hot.alert_received(source, priority);
            }
            for d in &decisions {
                hot.decision_taken(d, latency);
            }
        });
        assert_eq!(hot, one_shot);
        let reap_dup = one_shot
            .iter()
            .find(|(n, l, _)| {
                n == names::DECISIONS_TOTAL
                    && l.contains(&"reason=duplicate".to_owned())
                    && l.contains(&"policy=reap".to_owned())
            })
            .map(|x| x.2);
        assert_eq!(reap_dup, Some(3));
    }

    #[test]
    fn unknown_sources_are_counted_as_other_so_the_source_label_stays_bounded() {
        let mut hot_sources = 0;
        let counted = counts(|| {
            let mut hot = HotPath::new();
            for i in 0..1000 {
                hot.alert_received(&format!("random-{i}"), Priority::Critical);
            }
            hot.alert_received("syscall", Priority::Critical);
            hot.alert_received("aws_cloudtrail", Priority::Critical);
            AlertReceived {
                source: "evil\nsource",
                priority: Priority::Warning,
            }
            .emit();
            hot_sources = hot.alerts.len();
        });
        assert_eq!(hot_sources, 3, "other, syscall, aws_cloudtrail");
        let series: Vec<(Vec<String>, u64)> = counted
            .into_iter()
            .filter(|(n, _, _)| n == names::ALERTS_TOTAL)
            .map(|(_, l, v)| (l, v))
            .collect();
        let labels = |s: &str, p: &str| vec![format!("priority={p}"), format!("source={s}")];
        assert_eq!(
            series,
            vec![
                (labels("aws_cloudtrail", "Critical"), 1),
                (labels("other", "Critical"), 1000),
                (labels("syscall", "Critical"), 1),
                (labels("other", "Warning"), 1),
            ]
        );
    }
}
