//! The steps of the decision table (SPEC §4) that can hold an action back: dedup, and the
//! guards of a disruptive action on a known pod (standalone pods, the workload's rate limit,
//! the cluster budget, PodDisruptionBudgets and `min_available`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::action::PodTarget;
use crate::cluster::{ClusterView, PodInfo};
use crate::decision::Reason;
use crate::policy::{Defaults, Policy, StandalonePods};
use crate::time::Timestamp;

use super::book::ActionBook;

/// The outcome of the guard steps for a disruptive action.
pub(super) enum GuardResult {
    Pass,
    /// Do not act, and do not wait either.
    Skip(Reason),
    /// Not now: defer, if the policy says so.
    Block(Reason),
}

/// The dedup step's memory: `ns/pod` → policy → last time a decision for it passed.
#[derive(Debug, Default)]
pub(super) struct Dedup(HashMap<String, HashMap<Arc<str>, Timestamp>>);

impl Dedup {
    /// Whether `policy` decided about the pod `key` less than `window` ago; if not, this
    /// decision passes and counts as the last one.
    pub(super) fn seen(
        &mut self,
        key: &str,
        policy: &Arc<str>,
        window: Duration,
        now: Timestamp,
    ) -> bool {
        match self.0.get_mut(key) {
            Some(per_pod) => {
                if let Some(last) = per_pod.get_mut(policy) {
                    if now.since(*last) < window {
                        return true;
                    }
                    *last = now;
                } else {
                    per_pod.insert(policy.clone(), now);
                }
            }
            None => {
                let per_pod = HashMap::from([(policy.clone(), now)]);
                self.0.insert(key.to_owned(), per_pod);
            }
        }
        false
    }

    /// Forget decisions older than `horizon`.
    pub(super) fn prune(&mut self, horizon: Timestamp) {
        self.0.retain(|_, per_policy| {
            per_policy.retain(|_, t| *t >= horizon);
            !per_policy.is_empty()
        });
    }
}

/// The guard steps of the decision table, for a disruptive action on a known pod.
pub(super) fn guards(
    book: &mut ActionBook,
    defaults: &Defaults,
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
        if cluster_budget_used(book, defaults, now) {
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
        let used = book.workload_used(workload, now.minus(guard.window));
        if used >= max as usize {
            return GuardResult::Skip(Reason::RateLimited);
        }
    }
    if cluster_budget_used(book, defaults, now) {
        return GuardResult::Skip(Reason::ClusterBudget);
    }
    let reaping_ready = book.settle_reaping(workload, view);
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

fn cluster_budget_used(book: &ActionBook, defaults: &Defaults, now: Timestamp) -> bool {
    let Some(max) = defaults.cluster_max_actions else {
        return false;
    };
    book.cluster_used(now.minus(defaults.cluster_window)) >= max as usize
}
