//! Deferrals: disruptive actions a guard blocked, waiting (oldest first) for the cluster to
//! allow them, at most `max_defer`. [`Engine::tick`] re-checks them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::action::{PodTarget, Resolved};
use crate::alert::Alert;
use crate::cluster::{ClusterView, WorkloadRef};
use crate::decision::{Decision, Reason, Verdict};
use crate::policy::Policy;
use crate::time::Timestamp;

use super::book::Window;
use super::guard::GuardResult;
use super::{Engine, Target, lookup_pod, pod_key};

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

impl Deferral {
    fn expires_at(&self) -> Timestamp {
        self.deferred_at.plus(self.policy.guard.max_defer)
    }
}

impl Engine {
    /// Re-check pending deferrals (oldest first) against the view at `now`. Call it whenever
    /// the cluster changes (a replacement became Ready) or time passes.
    pub fn tick(&mut self, view: &impl ClusterView, now: Timestamp) -> Vec<Decision> {
        if self.deferrals.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut still = VecDeque::with_capacity(self.deferrals.len());
        while let Some(mut d) = self.deferrals.pop_front() {
            match self.recheck(&mut d, view, now) {
                Some(decision) => out.push(decision),
                None => still.push_back(d),
            }
        }
        self.deferrals = still;
        out
    }

    /// Pending deferrals, oldest first.
    pub fn deferrals(&self) -> Vec<DeferralInfo> {
        self.deferrals
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

    /// The earliest time after `after` at which a pending deferral could change by time alone
    /// (a retry becomes allowed, a rate window frees up, or it expires). Drivers that move time
    /// themselves (replay, the simulator, the server's timer) re-check deferrals at that time,
    /// so that events are processed in time order, expiry included.
    pub fn next_deadline(&self, after: Timestamp) -> Option<Timestamp> {
        let mut best: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| {
            if t > after {
                best = Some(best.map_or(t, |b: Timestamp| b.min(t)));
            }
        };
        let defaults = self.policies.defaults();
        // A window frees up when the oldest action still in it leaves it.
        let window_frees = |q: &Window, window: Duration| {
            q.iter()
                .map(|(t, _)| t.plus(window))
                .find(|end| *end > after)
        };
        if defaults.cluster_max_actions.is_some()
            && !self.deferrals.is_empty()
            && let Some(end) = window_frees(self.book.cluster_window(), defaults.cluster_window)
        {
            consider(end);
        }
        for d in &self.deferrals {
            consider(d.expires_at());
            if let Some(nb) = d.not_before {
                consider(nb);
            }
            if d.policy.guard.max_actions.is_some()
                && let Some(q) = d
                    .workload
                    .as_ref()
                    .and_then(|w| self.book.workload_window(w))
                && let Some(end) = window_frees(q, d.policy.guard.window)
            {
                consider(end);
            }
        }
        best
    }

    /// `(namespace, pod)` of every pending deferral: the ledger counts them as backlog.
    pub(super) fn deferred_pods(&self) -> Vec<(&str, &str)> {
        self.deferrals
            .iter()
            .map(|d| (d.pod.namespace.as_str(), d.pod.name.as_str()))
            .collect()
    }

    pub(super) fn has_deferral(&self, key_ns: &str, key_pod: &str, policy: &str) -> bool {
        self.deferrals.iter().any(|d| {
            d.pod.namespace == key_ns && d.pod.name == key_pod && &*d.policy.name == policy
        })
    }

    /// Re-check one deferral; `Some` when it resolved.
    fn recheck(
        &mut self,
        d: &mut Deferral,
        view: &impl ClusterView,
        now: Timestamp,
    ) -> Option<Decision> {
        let decision = |verdict: Verdict, reason: Reason, d: &Deferral| Decision {
            seq: d.seq,
            alert: d.alert.clone(),
            decided_at: now,
            policy: Some(d.policy.name.clone()),
            action: Some(d.policy.action.kind()),
            verdict,
            reason,
            dry_run: d.policy.dry_run,
            workload: d.workload.clone(),
            plan: None,
            infection: None,
        };
        let key = pod_key(&d.pod.namespace, &d.pod.name);
        if self.book.is_reaped(&key, d.pod.uid.as_deref()) {
            return Some(decision(Verdict::Skip, Reason::Duplicate, d));
        }
        let Some(info) = lookup_pod(view, &d.pod.namespace, &d.pod.name, d.pod.uid.as_deref())
        else {
            return Some(decision(Verdict::Skip, Reason::PodNotFound, d));
        };
        // A deferral never acts after its deadline, whatever has changed since.
        if now >= d.expires_at() {
            return Some(decision(Verdict::Skip, Reason::DeferExpired, d));
        }
        if d.not_before.is_some_and(|nb| now < nb) {
            return None;
        }
        let policy = d.policy.clone();
        match self.guards(&policy, &d.pod, &info, view, now) {
            GuardResult::Pass => {
                let base = decision(Verdict::Act, Reason::DeferredReady, d);
                let target = Target {
                    pod: Some(d.pod.clone()),
                    workload: info.workload,
                    resolved: Resolved::default(),
                };
                Some(self.act(base, &policy, target, now, Reason::DeferredReady))
            }
            GuardResult::Skip(reason) | GuardResult::Block(reason) => {
                d.blocked_by = reason;
                None
            }
        }
    }
}
