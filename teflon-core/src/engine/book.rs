//! The engine's book of its own disruptive actions, from decision to outcome.
//!
//! One action leaves traces in five places: the pod is "reaped" (no second action on it),
//! "being reaped" in its workload (the availability guard counts it out until the view
//! does), it counts against its workload's rate window and the cluster budget, and it waits
//! in flight for its outcome. [`ActionBook::commit`] writes all five; [`ActionBook::undo`]
//! erases all of them when the action did nothing, [`ActionBook::done`] keeps them when it
//! took effect. Actions get their [`ActionId`] here, when [`ActionBook::act`] plans them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::action::{ActionId, PlannedAction, PodTarget, Resolved};
use crate::alert::Alert;
use crate::cluster::{ClusterView, PodInfo, WorkloadRef};
use crate::decision::{Decision, Verdict};
use crate::policy::Policy;
use crate::time::Timestamp;

/// `ns/pod`: the key of a pod in the engine's maps.
pub(super) fn pod_key(namespace: &str, pod: &str) -> String {
    let mut k = String::with_capacity(namespace.len() + pod.len() + 1);
    k.push_str(namespace);
    k.push('/');
    k.push_str(pod);
    k
}

/// The pod as the view has it, unless it is a different pod than the alert meant (UID mismatch).
pub(super) fn lookup_pod(
    view: &impl ClusterView,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
) -> Option<PodInfo> {
    let pod = view.pod(namespace, name)?;
    match (uid, pod.uid.as_deref()) {
        (Some(want), Some(have)) if want != have => None,
        _ => Some(pod),
    }
}

/// What an action is taken on: the pod (none for a `log` about an alert without one), its
/// workload, and what the action took from the alert.
pub(super) struct Target {
    pub pod: Option<PodTarget>,
    pub workload: Option<WorkloadRef>,
    pub resolved: Resolved,
}

/// A disruptive action decided and not yet recorded.
#[derive(Debug, Clone)]
pub(super) struct InFlight {
    pub pod_key: String,
    pub pod: PodTarget,
    pub workload: Option<WorkloadRef>,
    pub seq: u64,
    pub alert: Arc<Alert>,
    pub policy: Arc<Policy>,
}

#[derive(Debug, Clone)]
struct Reaped {
    uid: Option<String>,
    at: Timestamp,
    action: ActionId,
}

/// Actions in a sliding window, oldest first.
pub(super) type Window = VecDeque<(Timestamp, ActionId)>;

/// Every trace of the engine's disruptive actions.
#[derive(Debug, Default)]
pub(super) struct ActionBook {
    /// `ns/pod` → the disruptive action taken on it.
    reaped: HashMap<String, Reaped>,
    /// Pods whose disruptive action was decided, per workload, until the view shows them out.
    reaping: BTreeMap<WorkloadRef, Vec<(String, Option<String>, ActionId)>>,
    in_flight: HashMap<ActionId, InFlight>,
    workload_actions: HashMap<WorkloadRef, Window>,
    cluster_actions: Window,
    next_action: u64,
}

impl ActionBook {
    /// Act on `target`: the decision becomes `act`; unless the policy is a dry run it carries
    /// the plan (calls retried until `deadline`), and a disruptive action is committed.
    pub(super) fn act(
        &mut self,
        mut d: Decision,
        policy: &Arc<Policy>,
        target: Target,
        now: Timestamp,
        deadline: Timestamp,
    ) -> Decision {
        d.verdict = Verdict::Act;
        d.decided_at = now;
        if policy.dry_run {
            return d;
        }
        let id = ActionId(self.next_action);
        self.next_action += 1;
        let Target {
            pod,
            workload,
            resolved,
        } = target;
        let pod = pod.unwrap_or_else(|| PodTarget {
            namespace: String::new(),
            name: String::new(),
            uid: None,
        });
        if policy.action.kind().is_disruptive() {
            let entry = InFlight {
                pod_key: pod_key(&pod.namespace, &pod.name),
                pod: pod.clone(),
                workload: workload.clone(),
                seq: d.seq,
                alert: d.alert.clone(),
                policy: policy.clone(),
            };
            self.commit(id, entry, now);
        }
        d.plan = Some(PlannedAction {
            id,
            pod,
            workload,
            action: policy.action.clone(),
            policy: policy.name.clone(),
            binary: resolved.binary,
            alert: d.alert.clone(),
            deadline,
        });
        d
    }

    /// Book the disruptive action `id` on `entry.pod`, decided at `now`.
    fn commit(&mut self, id: ActionId, entry: InFlight, now: Timestamp) {
        self.reaped.insert(
            entry.pod_key.clone(),
            Reaped {
                uid: entry.pod.uid.clone(),
                at: now,
                action: id,
            },
        );
        if let Some(w) = &entry.workload {
            self.reaping.entry(w.clone()).or_default().push((
                entry.pod.name.clone(),
                entry.pod.uid.clone(),
                id,
            ));
            self.workload_actions
                .entry(w.clone())
                .or_default()
                .push_back((now, id));
        }
        self.cluster_actions.push_back((now, id));
        self.in_flight.insert(id, entry);
    }

    /// The action took effect: it is no longer in flight, its other traces stay.
    pub(super) fn done(&mut self, id: ActionId) -> Option<InFlight> {
        self.in_flight.remove(&id)
    }

    /// Nothing happened to the pod: it is neither reaped nor being reaped, and the action
    /// does not count against rate limits or the budget.
    pub(super) fn undo(&mut self, id: ActionId) -> Option<InFlight> {
        let f = self.in_flight.remove(&id)?;
        if self.reaped.get(&f.pod_key).is_some_and(|r| r.action == id) {
            self.reaped.remove(&f.pod_key);
        }
        if let Some(w) = &f.workload {
            if let Some(list) = self.reaping.get_mut(w) {
                list.retain(|(_, _, a)| *a != id);
            }
            if let Some(q) = self.workload_actions.get_mut(w) {
                q.retain(|(_, a)| *a != id);
            }
        }
        self.cluster_actions.retain(|(_, a)| *a != id);
        Some(f)
    }

    /// Actions decided but not yet recorded.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the pod `key` was reaped: a pod with the same name but another UID is its
    /// replacement (StatefulSet), not reaped.
    pub(super) fn is_reaped(&self, key: &str, current_uid: Option<&str>) -> bool {
        match self.reaped.get(key) {
            None => false,
            Some(r) => match (r.uid.as_deref(), current_uid) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            },
        }
    }

    /// The pod `key` was released: no longer reaped, unless the reaped one had another UID.
    pub(super) fn released(&mut self, key: &str, uid: Option<&str>) {
        let same = match (self.reaped.get(key), uid) {
            (None, _) => false,
            (Some(r), Some(uid)) => r.uid.as_deref().is_none_or(|u| u == uid),
            (Some(_), None) => true,
        };
        if same {
            self.reaped.remove(key);
        }
    }

    /// Actions on `workload` in its rate window (decided after `since`).
    pub(super) fn workload_used(&self, workload: &WorkloadRef, since: Timestamp) -> usize {
        self.workload_actions
            .get(workload)
            .map_or(0, |q| q.iter().filter(|(t, _)| *t > since).count())
    }

    /// Actions in the cluster budget's window (decided after `since`).
    pub(super) fn cluster_used(&self, since: Timestamp) -> usize {
        self.cluster_actions
            .iter()
            .filter(|(t, _)| *t > since)
            .count()
    }

    /// The rate window of `workload`.
    pub(super) fn workload_window(&self, workload: &WorkloadRef) -> Option<&Window> {
        self.workload_actions.get(workload)
    }

    /// The cluster budget's window.
    pub(super) fn cluster_window(&self) -> &Window {
        &self.cluster_actions
    }

    /// Drop pods from the "being reaped" list of `workload` once the view shows them out of
    /// service (gone, replaced, not Ready, or no longer in the workload); return those still in.
    pub(super) fn settle_reaping(
        &mut self,
        workload: &WorkloadRef,
        view: &impl ClusterView,
    ) -> Vec<String> {
        let Some(list) = self.reaping.get_mut(workload) else {
            return Vec::new();
        };
        list.retain(|(name, uid, _)| {
            lookup_pod(view, &workload.namespace, name, uid.as_deref())
                .is_some_and(|p| p.ready && p.workload.as_ref() == Some(workload))
        });
        list.iter().map(|(n, _, _)| n.clone()).collect()
    }

    /// Forget reaps older than `reap_horizon`, window entries older than `horizon`, and pods
    /// the view shows out of service.
    pub(super) fn prune(
        &mut self,
        view: &impl ClusterView,
        horizon: Timestamp,
        reap_horizon: Timestamp,
    ) {
        self.reaped.retain(|_, r| r.at >= reap_horizon);
        for q in self.workload_actions.values_mut() {
            while q.front().is_some_and(|(t, _)| *t < horizon) {
                q.pop_front();
            }
        }
        self.workload_actions.retain(|_, q| !q.is_empty());
        while self
            .cluster_actions
            .front()
            .is_some_and(|(t, _)| *t < horizon)
        {
            self.cluster_actions.pop_front();
        }
        let workloads: Vec<WorkloadRef> = self.reaping.keys().cloned().collect();
        for w in workloads {
            self.settle_reaping(&w, view);
        }
        self.reaping.retain(|_, l| !l.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{StaticCluster, WorkloadKind};
    use crate::policy::PolicySet;

    fn policy() -> Arc<Policy> {
        let yaml = "version: 1\npolicies:\n  - name: reap\n    match: {rules: [x]}\n    action: {type: delete}\n";
        PolicySet::parse(yaml, "t.yaml").unwrap().policies()[0].clone()
    }

    fn entry(pod: &str, workload: &WorkloadRef) -> InFlight {
        InFlight {
            pod_key: format!("shop/{pod}"),
            pod: PodTarget {
                namespace: "shop".to_owned(),
                name: pod.to_owned(),
                uid: Some(format!("uid-{pod}")),
            },
            workload: Some(workload.clone()),
            seq: 0,
            alert: Arc::new(Alert::test().pod("shop", pod).build()),
            policy: policy(),
        }
    }

    #[test]
    fn an_undone_action_leaves_no_trace_and_a_done_one_keeps_its_pod_reaped() {
        let web = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
        let view = StaticCluster::new().deployment("shop", "web", 3, 3);
        let now = Timestamp::from_secs(10);
        let since = Timestamp::from_secs(0);
        let mut book = ActionBook::default();
        book.commit(ActionId(1), entry("web-0", &web), now);
        book.commit(ActionId(2), entry("web-1", &web), now);
        assert_eq!(book.in_flight(), 2);
        assert_eq!(book.workload_used(&web, since), 2);
        assert_eq!(book.cluster_used(since), 2);

        assert!(book.undo(ActionId(2)).is_some());
        assert!(!book.is_reaped("shop/web-1", Some("uid-web-1")));
        assert_eq!(book.settle_reaping(&web, &view), ["web-0"]);
        assert_eq!(book.workload_used(&web, since), 1);
        assert_eq!(book.cluster_used(since), 1);

        assert!(book.done(ActionId(1)).is_some());
        assert_eq!(book.in_flight(), 0);
        assert!(book.is_reaped("shop/web-0", Some("uid-web-0")));
        assert!(
            !book.is_reaped("shop/web-0", Some("uid-other")),
            "a replacement by that name is not reaped"
        );
        assert_eq!(book.workload_used(&web, since), 1, "it still counts");
        assert!(book.undo(ActionId(1)).is_none(), "recorded once");
    }
}
