//! The steps of the decision table (SPEC §4) that can hold an action back: dedup, and the
//! guards of a disruptive action on a known pod (standalone pods, the workload's rate limit,
//! the cluster budget, PodDisruptionBudgets and `min_available`).

use std::collections::HashMap;

use crate::action::PodTarget;
use crate::alert;
use crate::cluster::{ClusterView, PodInfo};
use crate::decision::Reason;
use crate::policy::{Policy, StandalonePods};
use crate::time::Timestamp;

use super::Engine;

/// The outcome of the guard steps for a disruptive action.
pub(super) enum GuardResult {
    Pass,
    /// Do not act, and do not wait either.
    Skip(Reason),
    /// Not now: defer, if the policy says so.
    Block(Reason),
}

impl Engine {
    /// The dedup step: the pod (`key`: `ns/pod`) was already acted on (the same pod, by
    /// UID), `policy` already waits to act on it, or decided about it within the dedup
    /// window. Otherwise the decision passes, and counts as the last one for the window.
    pub(super) fn duplicate(
        &mut self,
        target: &alert::Target,
        key: &str,
        current_uid: Option<&str>,
        policy: &Policy,
        now: Timestamp,
    ) -> bool {
        if self.book.is_reaped(key, current_uid)
            || self.has_deferral(&target.namespace, &target.pod, &policy.name)
        {
            return true;
        }
        let window = self.policies.defaults().dedup_window;
        match self.dedup.get_mut(key) {
            Some(per_pod) => {
                if let Some(last) = per_pod.get_mut(&policy.name) {
                    if now.since(*last) < window {
                        return true;
                    }
                    *last = now;
                } else {
                    per_pod.insert(policy.name.clone(), now);
                }
            }
            None => {
                let per_pod = HashMap::from([(policy.name.clone(), now)]);
                self.dedup.insert(key.to_owned(), per_pod);
            }
        }
        false
    }

    /// The guard steps of the decision table, for a disruptive action on a known pod.
    pub(super) fn guards(
        &mut self,
        policy: &Policy,
        pod: &PodTarget,
        info: &PodInfo,
        view: &impl ClusterView,
        now: Timestamp,
    ) -> GuardResult {
        let guard = &policy.guard;
        let Some(workload) = info.workload.as_ref() else {
            if guard.standalone_pods == StandalonePods::Skip {
                return GuardResult::Skip(Reason::StandalonePod);
            }
            if self.cluster_budget_used(now) {
                return GuardResult::Skip(Reason::ClusterBudget);
            }
            if view
                .disruptions_allowed(&pod.namespace, &pod.name)
                .is_some_and(|allowed| allowed < 1)
            {
                return GuardResult::Block(Reason::DisruptionBudget);
            }
            return GuardResult::Pass;
        };
        if let Some(max) = guard.max_actions {
            let used = self.book.workload_used(workload, now.minus(guard.window));
            if used >= max as usize {
                return GuardResult::Skip(Reason::RateLimited);
            }
        }
        if self.cluster_budget_used(now) {
            return GuardResult::Skip(Reason::ClusterBudget);
        }
        let reaping_ready = self.book.settle_reaping(workload, view);
        let reaping_others = reaping_ready
            .iter()
            .filter(|n| n.as_str() != pod.name)
            .count() as i64;
        if let Some(allowed) = view.disruptions_allowed(&pod.namespace, &pod.name)
            && i64::from(allowed) - reaping_others < 1
        {
            return GuardResult::Block(Reason::DisruptionBudget);
        }
        let status = view.workload(workload).unwrap_or_default();
        let this = i64::from(info.ready);
        let left = i64::from(status.available) - this - reaping_others;
        let required = i64::from(guard.min_available.required(status.desired));
        if left < required {
            return GuardResult::Block(Reason::BelowMinAvailable);
        }
        GuardResult::Pass
    }

    fn cluster_budget_used(&self, now: Timestamp) -> bool {
        let defaults = self.policies.defaults();
        let Some(max) = defaults.cluster_max_actions else {
            return false;
        };
        self.book.cluster_used(now.minus(defaults.cluster_window)) >= max as usize
    }
}
