//! Every metric name and label key, in one place (SPEC §7). The exporter, the events and the
//! tests all use these constants; nothing else spells a metric name.

/// Counter `{source, priority}`: alerts accepted for decision.
pub const ALERTS_TOTAL: &str = "teflon_alerts_total";
/// Counter `{reason}`: alerts (or requests) refused: `parse_error`, `unauthorized`, `too_large`, `overloaded`.
pub const ALERTS_REJECTED_TOTAL: &str = "teflon_alerts_rejected_total";
/// Counter `{policy, verdict, reason}`: decisions taken.
pub const DECISIONS_TOTAL: &str = "teflon_decisions_total";
/// Counter `{namespace, workload}`: new infections (once per pod).
pub const INFECTIONS_TOTAL: &str = "teflon_infections_total";
/// Counter `{namespace, workload, action, outcome}`: executed disruptive actions and how they ended.
pub const REAPINGS_TOTAL: &str = "teflon_reapings_total";
/// Gauge `{namespace, workload}`: pods infected and not yet reaped or gone.
pub const INFECTED_PODS: &str = "teflon_infected_pods";
/// Gauge `{namespace, workload}`: available / desired replicas.
pub const WORKLOAD_AVAILABLE_RATIO: &str = "teflon_workload_available_ratio";
/// Gauge `{namespace, workload}`: the attack rate, alerts that hit a pod per minute, over the time
/// observed within the sliding window (re-infections included).
pub const INFECTION_RATE_PER_MINUTE: &str = "teflon_infection_rate_per_minute";
/// Gauge `{namespace, workload}`: replicas needed ÷ current replicas.
pub const ATTACK_PRESSURE: &str = "teflon_attack_pressure";
/// Custom metric (pods, `custom.metrics.k8s.io`): 1 when the pod is infected, else 0.
pub const POD_INFECTED: &str = "teflon_pod_infected";
/// Counter `{namespace, workload, direction}`: replica changes made by Teflon's autoscaler
/// (`direction` is `up` or `down`).
pub const AUTOSCALE_CHANGES_TOTAL: &str = "teflon_autoscale_changes_total";
/// Histogram `{namespace, workload}`: reap → replacement Ready, seconds.
pub const TIME_TO_RECREATION_SECONDS: &str = "teflon_time_to_recreation_seconds";
/// Histogram `{namespace, workload}`: interval between successive infections, seconds.
pub const TIME_TO_NEW_INFECTION_SECONDS: &str = "teflon_time_to_new_infection_seconds";
/// Histogram: alert received → decision, seconds.
pub const DECISION_LATENCY_SECONDS: &str = "teflon_decision_latency_seconds";
/// Histogram `{action}`: decision → API call done, seconds.
pub const ACTION_LATENCY_SECONDS: &str = "teflon_action_latency_seconds";
/// Counter `{action}`: API calls of actions retried (no answer, connection error, 5xx,
/// throttling, write conflict) before the action's final outcome. Not in SPEC §7: a rising
/// rate means the API server is struggling or unreachable.
pub const ACTION_RETRIES_TOTAL: &str = "teflon_action_retries_total";
/// Counter: torn or corrupt journal tails skipped at start (a write cut short by a crash).
/// Not in SPEC §7.
pub const JOURNAL_TORN_TAILS_TOTAL: &str = "teflon_journal_torn_tails_total";
/// Counter: alerts decided again at start from the journal (accepted before a crash, not
/// audited). Not in SPEC §7.
pub const JOURNAL_REPLAYED_TOTAL: &str = "teflon_journal_replayed_total";
/// Gauge: alerts journaled and not yet durably audited.
pub const JOURNAL_PENDING: &str = "teflon_journal_pending";
/// Gauge: alerts accepted and not yet decided.
pub const QUEUE_DEPTH: &str = "teflon_queue_depth";
/// Gauge: 1 while this replica may decide and act (holds the leader Lease, or runs without
/// leader election), 0 while it only accepts and buffers alerts.
pub const LEADER: &str = "teflon_leader";
/// Counter `{result}` (`success`, `failure`): policy file reloads.
pub const POLICY_RELOADS_TOTAL: &str = "teflon_policy_reloads_total";
/// Counter: audit lines that could not be written (disk full, I/O error). Not in SPEC §7: an
/// operator needs to know when the audit trail has gaps.
pub const AUDIT_LINES_LOST_TOTAL: &str = "teflon_audit_lines_lost_total";
/// Counter `{action, cause, outcome}`: releases of actions (`quarantine`, `block_binary`), by
/// cause (`operator`, `expired`) and outcome (`released`, `not_found`, `refused`, `failed`).
pub const RELEASES_TOTAL: &str = "teflon_releases_total";
/// Counter `{sink, result}`: notifications, by configured sink and result (`sent`; `failed`:
/// given up after the retries; `dropped`: the sink's queue was full).
pub const NOTIFICATIONS_TOTAL: &str = "teflon_notifications_total";
/// Counter: torn last lines (a record cut short by a crash) found in the audit log at start and
/// moved aside before appending. Not in SPEC §7.
pub const AUDIT_TORN_TAILS_TOTAL: &str = "teflon_audit_torn_tails_total";
/// Counter: audit log rotations (`audit_max_bytes` reached). Not in SPEC §7.
pub const AUDIT_ROTATIONS_TOTAL: &str = "teflon_audit_rotations_total";
/// Gauge `{listener}` (`ingest`, `metrics_api`): open connections. Not in SPEC §7.
pub const HTTP_CONNECTIONS: &str = "teflon_http_connections";
/// Counter `{listener, reason}`: connections a listener closed on its own (`refused` at accept
/// past `max_connections`, `evicted` to make room, `header_timeout`, `idle_timeout`). Not in
/// SPEC §7.
pub const HTTP_CONNECTIONS_CLOSED_TOTAL: &str = "teflon_http_connections_closed_total";

/// The metrics with `namespace` and `workload` labels: their label sets are bounded (see
/// `series.rs`) and expire when idle.
pub const PER_WORKLOAD: [&str; 8] = [
    INFECTIONS_TOTAL,
    REAPINGS_TOTAL,
    INFECTED_PODS,
    WORKLOAD_AVAILABLE_RATIO,
    INFECTION_RATE_PER_MINUTE,
    ATTACK_PRESSURE,
    TIME_TO_RECREATION_SECONDS,
    TIME_TO_NEW_INFECTION_SECONDS,
];

/// The `source` label of an alert whose source is not one of [`KNOWN_SOURCES`].
pub const OTHER_SOURCE: &str = "other";

/// Alert sources counted under their own name in `teflon_alerts_total{source}`: Falco's own,
/// Tetragon, and the event sources of the plugins in Falco's plugin registry. The source comes
/// from the alert, so anything else is counted as [`OTHER_SOURCE`] (one series per value would
/// let a sender create series at will).
pub const KNOWN_SOURCES: [&str; 11] = [
    "syscall",
    "k8s_audit",
    "internal",
    "tetragon",
    "aws_cloudtrail",
    "gcp_auditlog",
    "okta",
    "github",
    "docker",
    "nomad",
    "kafka",
];

/// The `namespace` and `workload` label values of the workloads beyond the per-workload series
/// cap (see `series.rs`). Not a valid Kubernetes name, so it never collides with one.
pub const OTHER_WORKLOAD: &str = "_other";

/// Label keys.
pub mod label {
    /// Alert source (`syscall`, `k8s_audit`, `tetragon`…).
    pub const SOURCE: &str = "source";
    /// Alert priority (`Critical`…).
    pub const PRIORITY: &str = "priority";
    /// Rejection reason.
    pub const REASON: &str = "reason";
    /// Policy name (`none` for `no_match`).
    pub const POLICY: &str = "policy";
    /// `act`, `defer`, `skip`.
    pub const VERDICT: &str = "verdict";
    /// Namespace.
    pub const NAMESPACE: &str = "namespace";
    /// Workload name.
    pub const WORKLOAD: &str = "workload";
    /// Action kind.
    pub const ACTION: &str = "action";
    /// Action outcome.
    pub const OUTCOME: &str = "outcome";
    /// Reload or notification result.
    pub const RESULT: &str = "result";
    /// Why a release happened (`operator`, `expired`).
    pub const CAUSE: &str = "cause";
    /// A notification sink's configured name.
    pub const SINK: &str = "sink";
    /// Which way the autoscaler changed replicas (`up`, `down`).
    pub const DIRECTION: &str = "direction";
    /// Which listener (`ingest`, `metrics_api`).
    pub const LISTENER: &str = "listener";
}

/// The `policy` label value of a decision no policy matched.
pub const NO_POLICY: &str = "none";

/// Histogram buckets (seconds) for decision latency: microseconds to tens of milliseconds.
pub const DECISION_LATENCY_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1,
];
/// Histogram buckets (seconds) for action latency: milliseconds to seconds.
pub const ACTION_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Histogram buckets (seconds) for recreation and time between infections: seconds to an hour.
pub const RECREATION_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
