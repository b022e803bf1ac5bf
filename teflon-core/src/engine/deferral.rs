//! Deferrals: disruptive actions a guard blocked, waiting (oldest first) for the cluster to
//! allow them, at most `max_defer`, and re-checked on every `decide` and `tick`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::action::{PodTarget, Resolved};
use crate::alert::Alert;
use crate::cluster::{ClusterView, PodInfo, WorkloadRef};
use crate::decision::{Decision, Reason, Verdict};
use crate::policy::{Defaults, Policy};
use crate::time::Timestamp;

use super::book::{ActionBook, InFlight, Target, Window, lookup_pod, pod_key};
use super::guard::{GuardResult, guards};

/// A pending deferral, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferralInfo {
    /// The alert's sequence number.
    pub seq: u64,
    /// The policy.
    pub policy: Arc<str>,
    /// The pod.
    pub pod: PodTarget,
    /// Its workload.
    pub workload: Option<WorkloadRef>,
    /// What blocked it last.
    pub blocked_by: Reason,
    /// Since when.
    pub deferred_at: Timestamp,
    /// When it gives up.
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone)]
pub(super) struct Deferral {
    pub seq: u64,
    pub alert: Arc<Alert>,
    pub policy: Arc<Policy>,
    pub pod: PodTarget,
    pub workload: Option<WorkloadRef>,
    pub blocked_by: Reason,
    pub deferred_at: Timestamp,
    pub not_before: Option<Timestamp>,
}

/// What a deferral's re-check found before the guards.
enum Precheck {
    /// It resolved without acting (verdict `skip`), for this reason.
    Skip(Reason),
    /// Too early to retry.
    Wait,
    /// The pod is there: ask the guards.
    Guards(PodInfo),
}

impl Deferral {
    /// The action an eviction refused by a PodDisruptionBudget at `now`: retried no sooner
    /// than `retry_after` later.
    pub(super) fn refused(f: InFlight, now: Timestamp, retry_after: Duration) -> Self {
        Deferral {
            seq: f.seq,
            alert: f.alert,
            policy: f.policy,
            pod: f.pod,
            workload: f.workload,
            blocked_by: Reason::DisruptionBudget,
            deferred_at: now,
            not_before: Some(now.plus(retry_after)),
        }
    }

    fn expires_at(&self) -> Timestamp {
        self.deferred_at.plus(self.policy.guard.max_defer)
    }

    /// Its decision at `now`.
    fn decision(&self, verdict: Verdict, reason: Reason, now: Timestamp) -> Decision {
        Decision {
            seq: self.seq,
            alert: self.alert.clone(),
            decided_at: now,
            policy: Some(self.policy.name.clone()),
            action: Some(self.policy.action.kind()),
            verdict,
            reason,
            dry_run: self.policy.dry_run,
            workload: self.workload.clone(),
            plan: None,
            infection: None,
        }
    }

    /// The steps of a re-check before the guards: the pod was acted on meanwhile, is gone,
    /// the deferral expired, or must wait.
    fn precheck(&self, book: &ActionBook, view: &impl ClusterView, now: Timestamp) -> Precheck {
        let key = pod_key(&self.pod.namespace, &self.pod.name);
        if book.is_reaped(&key, self.pod.uid.as_deref()) {
            return Precheck::Skip(Reason::Duplicate);
        }
        let (ns, name, uid) = (&self.pod.namespace, &self.pod.name, self.pod.uid.as_deref());
        let Some(info) = lookup_pod(view, ns, name, uid) else {
            return Precheck::Skip(Reason::PodNotFound);
        };
        // A deferral never acts after its deadline, whatever has changed since.
        if now >= self.expires_at() {
            return Precheck::Skip(Reason::DeferExpired);
        }
        if self.not_before.is_some_and(|nb| now < nb) {
            return Precheck::Wait;
        }
        Precheck::Guards(info)
    }
}

/// The pending deferrals, oldest first.
#[derive(Debug, Default)]
pub(super) struct Deferrals(VecDeque<Deferral>);

impl Deferrals {
    /// Re-check every deferral (oldest first) against `view` at `now`: those that resolve
    /// give their decision, acting through `book` (calls retried for `action_deadline`) when
    /// the guards let them; the others stay, with what blocked them last.
    pub(super) fn recheck(
        &mut self,
        book: &mut ActionBook,
        defaults: &Defaults,
        action_deadline: Duration,
        view: &impl ClusterView,
        now: Timestamp,
    ) -> Vec<Decision> {
        if self.0.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let still = VecDeque::with_capacity(self.0.len());
        let pending = std::mem::replace(&mut self.0, still);
        for mut d in pending {
            let info = match d.precheck(book, view, now) {
                Precheck::Skip(reason) => {
                    out.push(d.decision(Verdict::Skip, reason, now));
                    continue;
                }
                Precheck::Wait => {
                    self.0.push_back(d);
                    continue;
                }
                Precheck::Guards(info) => info,
            };
            match guards(book, defaults, &d.policy, &d.pod, &info, view, now) {
                GuardResult::Pass => {
                    let base = d.decision(Verdict::Act, Reason::DeferredReady, now);
                    let target = Target {
                        pod: Some(d.pod.clone()),
                        workload: info.workload,
                        resolved: Resolved::default(),
                    };
                    let deadline = now.plus(action_deadline);
                    out.push(book.act(base, &d.policy, target, now, deadline));
                }
                GuardResult::Skip(reason) | GuardResult::Block(reason) => {
                    d.blocked_by = reason;
                    self.0.push_back(d);
                }
            }
        }
        out
    }

    pub(super) fn push(&mut self, d: Deferral) {
        self.0.push_back(d);
    }

    /// Whether `policy` waits to act on the pod `namespace/pod`.
    pub(super) fn has(&self, namespace: &str, pod: &str, policy: &str) -> bool {
        self.0
            .iter()
            .any(|d| d.pod.namespace == namespace && d.pod.name == pod && &*d.policy.name == policy)
    }

    /// `(namespace, pod)` of every pending deferral: the ledger counts them as backlog.
    pub(super) fn pods(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .map(|d| (d.pod.namespace.as_str(), d.pod.name.as_str()))
            .collect()
    }

    /// As `status` shows them.
    pub(super) fn infos(&self) -> Vec<DeferralInfo> {
        self.0
            .iter()
            .map(|d| DeferralInfo {
                seq: d.seq,
                policy: d.policy.name.clone(),
                pod: d.pod.clone(),
                workload: d.workload.clone(),
                blocked_by: d.blocked_by,
                deferred_at: d.deferred_at,
                expires_at: d.expires_at(),
            })
            .collect()
    }

    /// The earliest time after `after` at which a deferral could change by time alone (a
    /// retry becomes allowed, a rate window of `book` frees up, or it expires).
    pub(super) fn next_deadline(
        &self,
        book: &ActionBook,
        defaults: &Defaults,
        after: Timestamp,
    ) -> Option<Timestamp> {
        let mut best: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| {
            if t > after {
                best = Some(best.map_or(t, |b: Timestamp| b.min(t)));
            }
        };
        // A window frees up when the oldest action still in it leaves it.
        let window_frees = |q: &Window, window: Duration| {
            q.iter()
                .map(|(t, _)| t.plus(window))
                .find(|end| *end > after)
        };
        if defaults.cluster_max_actions.is_some()
            && !self.0.is_empty()
            && let Some(end) = window_frees(book.cluster_window(), defaults.cluster_window)
        {
            consider(end);
        }
        for d in &self.0 {
            consider(d.expires_at());
            if let Some(nb) = d.not_before {
                consider(nb);
            }
            if d.policy.guard.max_actions.is_some()
                && let Some(q) = d.workload.as_ref().and_then(|w| book.workload_window(w))
                && let Some(end) = window_frees(q, d.policy.guard.window)
            {
                consider(end);
            }
        }
        best
    }
}
