//! Decisions: verdicts and their reason codes (SPEC §4).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, PlannedAction};
use crate::alert::Alert;
use crate::cluster::WorkloadRef;
use crate::time::Timestamp;

/// What happens to the matched pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Execute the action now.
    Act,
    /// Wait: a guard blocks it for now; re-checked on every change.
    Defer,
    /// Do nothing.
    Skip,
}

impl Verdict {
    /// Every verdict.
    pub const ALL: [Verdict; 3] = [Verdict::Act, Verdict::Defer, Verdict::Skip];

    /// `act`, `defer`, `skip`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Act => "act",
            Verdict::Defer => "defer",
            Verdict::Skip => "skip",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a decision was taken. The same string is in replay output, the audit log and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No policy matched the alert.
    NoMatch,
    /// The action needs a pod; the alert names none.
    NoTarget,
    /// The namespace is protected.
    Protected,
    /// The pod was already reaped, or the same pod + policy fired within the dedup window.
    Duplicate,
    /// The cluster does not know the pod (or it is a different pod by now).
    PodNotFound,
    /// The pod has no controller and `standalone_pods: skip`.
    StandalonePod,
    /// The workload's `max_actions` per window is used up.
    RateLimited,
    /// The cluster-wide budget is used up.
    ClusterBudget,
    /// A PodDisruptionBudget allows no disruption now.
    DisruptionBudget,
    /// Acting would leave fewer available pods than `min_available`.
    BelowMinAvailable,
    /// Every guard passed.
    Matched,
    /// A deferred action's guards now pass.
    DeferredReady,
    /// A deferred action waited `max_defer_secs` in vain.
    DeferExpired,
}

impl Reason {
    /// Every reason code, in decision-table order.
    pub const ALL: [Reason; 13] = [
        Reason::NoMatch,
        Reason::NoTarget,
        Reason::Protected,
        Reason::Duplicate,
        Reason::PodNotFound,
        Reason::StandalonePod,
        Reason::RateLimited,
        Reason::ClusterBudget,
        Reason::DisruptionBudget,
        Reason::BelowMinAvailable,
        Reason::Matched,
        Reason::DeferredReady,
        Reason::DeferExpired,
    ];

    /// The reason code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::NoMatch => "no_match",
            Reason::NoTarget => "no_target",
            Reason::Protected => "protected",
            Reason::Duplicate => "duplicate",
            Reason::PodNotFound => "pod_not_found",
            Reason::StandalonePod => "standalone_pod",
            Reason::RateLimited => "rate_limited",
            Reason::ClusterBudget => "cluster_budget",
            Reason::DisruptionBudget => "disruption_budget",
            Reason::BelowMinAvailable => "below_min_available",
            Reason::Matched => "matched",
            Reason::DeferredReady => "deferred_ready",
            Reason::DeferExpired => "defer_expired",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new infection recorded by this decision (first matching non-`log` policy for a pod).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Infection {
    /// The infected workload.
    pub workload: WorkloadRef,
    /// Time since the previous infection of the same workload, if any.
    pub since_previous: Option<Duration>,
}

/// One decision about one alert and one policy.
#[derive(Debug, Clone)]
pub struct Decision {
    /// 0-based index of the alert in the order the engine received them.
    pub seq: u64,
    /// The alert.
    pub alert: Arc<Alert>,
    /// When the decision was taken (the alert's arrival, or a later re-check for deferrals).
    pub decided_at: Timestamp,
    /// The policy, `None` for `no_match`.
    pub policy: Option<Arc<str>>,
    /// The policy's action kind.
    pub action: Option<ActionKind>,
    /// Act, defer or skip.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// The policy is `dry_run`: nothing is executed.
    pub dry_run: bool,
    /// The pod's workload, when known.
    pub workload: Option<WorkloadRef>,
    /// What to execute: `Some` exactly when `verdict == Act` and not `dry_run`
    /// (also for `log`, so adapters can record it uniformly).
    pub plan: Option<PlannedAction>,
    /// Set when this decision recorded a new infection.
    pub infection: Option<Infection>,
}

impl Decision {
    /// True when this decision disrupts a pod for real (an executed delete/evict/quarantine).
    pub fn is_disruptive_act(&self) -> bool {
        self.plan.is_some() && self.action.is_some_and(ActionKind::is_disruptive)
    }
}

/// The pod a record is about (`RecordTarget<&str>` borrows it from the decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordTarget<S = String> {
    /// Namespace.
    pub namespace: S,
    /// Pod name.
    pub pod: S,
}

/// A decision as printed by `teflon replay --format jsonl` and written to the audit log
/// (SPEC §5): field names and order are the contract.
///
/// `DecisionRecord` owns its strings; [`Decision::record_ref`] gives the same record borrowing
/// them from the decision (`DecisionRecord<&str, &WorkloadRef>`), for writing it without copies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionRecord<S = String, W = WorkloadRef> {
    /// 0-based index of the input alert.
    pub seq: u64,
    /// When the decision was taken (RFC 3339, nanoseconds).
    pub time: Timestamp,
    /// Rule.
    pub rule: S,
    /// Priority.
    pub priority: crate::alert::Priority,
    /// The pod, or null.
    pub target: Option<RecordTarget<S>>,
    /// The workload, or null.
    pub workload: Option<W>,
    /// The policy, or null for `no_match`.
    pub policy: Option<S>,
    /// `act`, `defer`, `skip`.
    pub verdict: Verdict,
    /// The action kind, or null.
    pub action: Option<ActionKind>,
    /// The reason code.
    pub reason: Reason,
    /// Dry run.
    pub dry_run: bool,
}

impl Decision {
    /// The record of this decision in the replay / audit format.
    pub fn record(&self) -> DecisionRecord {
        let r = self.record_ref();
        DecisionRecord {
            seq: r.seq,
            time: r.time,
            rule: r.rule.to_owned(),
            priority: r.priority,
            target: r.target.map(|t| RecordTarget {
                namespace: t.namespace.to_owned(),
                pod: t.pod.to_owned(),
            }),
            workload: r.workload.cloned(),
            policy: r.policy.map(str::to_owned),
            verdict: r.verdict,
            action: r.action,
            reason: r.reason,
            dry_run: r.dry_run,
        }
    }

    /// [`Decision::record`] borrowing its strings: serializes to the same JSON.
    pub fn record_ref(&self) -> DecisionRecord<&str, &WorkloadRef> {
        DecisionRecord {
            seq: self.seq,
            time: self.decided_at,
            rule: &self.alert.rule,
            priority: self.alert.priority,
            target: self.alert.target.as_ref().map(|t| RecordTarget {
                namespace: t.namespace.as_str(),
                pod: t.pod.as_str(),
            }),
            workload: self.workload.as_ref(),
            policy: self.policy.as_deref(),
            verdict: self.verdict,
            action: self.action,
            reason: self.reason,
            dry_run: self.dry_run,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Priority, Target};
    use crate::cluster::WorkloadKind;

    #[test]
    fn record_serializes_in_the_spec_jsonl_shape() {
        let mut alert = Alert::new(
            "Terminal shell in container",
            Priority::Critical,
            Timestamp::parse_rfc3339("2023-05-25T13:44:05.478445995Z").unwrap(),
        );
        alert.target = Some(Target::new("default", "kubecon"));
        let d = Decision {
            seq: 0,
            decided_at: alert.time,
            alert: Arc::new(alert),
            policy: Some(Arc::from("reap-shells")),
            action: Some(ActionKind::Delete),
            verdict: Verdict::Act,
            reason: Reason::Matched,
            dry_run: false,
            workload: Some(WorkloadRef::new(WorkloadKind::Deployment, "default", "web")),
            plan: None,
            infection: None,
        };
        let json = serde_json::to_string(&d.record()).unwrap();
        assert_eq!(serde_json::to_string(&d.record_ref()).unwrap(), json);
        assert_eq!(
            json,
            r#"{"seq":0,"time":"2023-05-25T13:44:05.478445995Z","rule":"Terminal shell in container","priority":"Critical","target":{"namespace":"default","pod":"kubecon"},"workload":{"kind":"Deployment","namespace":"default","name":"web"},"policy":"reap-shells","verdict":"act","action":"delete","reason":"matched","dry_run":false}"#
        );
    }

    #[test]
    fn no_match_record_has_nulls() {
        let alert = Alert::new("x", Priority::Debug, Timestamp::EPOCH);
        let d = Decision {
            seq: 3,
            decided_at: alert.time,
            alert: Arc::new(alert),
            policy: None,
            action: None,
            verdict: Verdict::Skip,
            reason: Reason::NoMatch,
            dry_run: false,
            workload: None,
            plan: None,
            infection: None,
        };
        let json = serde_json::to_string(&d.record()).unwrap();
        assert!(json.contains(r#""target":null,"workload":null,"policy":null,"verdict":"skip","action":null,"reason":"no_match""#), "{json}");
    }
}
