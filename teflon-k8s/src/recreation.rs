//! Time to recreation: from a successful reap to the replacement pod becoming Ready.
//!
//! [`RecreationTracker`] is the pure matching logic; [`RecreationHandle`] feeds it from a
//! [`KubeClusterView`] and reports `(workload, duration)` on a channel the server forwards
//! to `Engine::record_recreation`.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use teflon_core::{PlannedAction, WorkloadKind, WorkloadRef};
use tokio::sync::mpsc;

use crate::view::KubeClusterView;

/// One time-to-recreation measurement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recreation {
    /// The workload whose pod was reaped.
    pub workload: WorkloadRef,
    /// Reap → replacement Ready.
    pub duration: Duration,
}

/// What the tracker needs to know about a reaped pod, taken just before the action.
#[derive(Debug, Clone)]
pub struct Reaped {
    /// Its workload.
    pub workload: WorkloadRef,
    /// Its name (a StatefulSet's replacement has the same name).
    pub pod: String,
    /// Its node (a DaemonSet's replacement lands on the same node).
    pub node: Option<String>,
    /// UIDs of the workload's pods before the reap, the reaped one included: none of them
    /// can be the replacement.
    pub known_uids: HashSet<String>,
}

/// A pod as the tracker sees it.
#[derive(Debug, Clone)]
pub struct PodObservation {
    /// Workload it counts for (quarantined and standalone pods are not observed).
    pub workload: WorkloadRef,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Ready and not terminating.
    pub available: bool,
    /// Node.
    pub node: Option<String>,
}

#[derive(Debug, Clone)]
struct Pending {
    reaped: Reaped,
    at: Instant,
}

/// Pairs reaps with replacements.
#[derive(Debug, Clone)]
pub struct RecreationTracker {
    pending: Vec<Pending>,
    claimed: BTreeSet<String>,
    max_wait: Duration,
}

/// Workload kinds whose controller replaces a reaped pod.
pub fn is_tracked(kind: &WorkloadKind) -> bool {
    matches!(
        kind,
        WorkloadKind::Deployment | WorkloadKind::StatefulSet | WorkloadKind::DaemonSet
    )
}

impl RecreationTracker {
    /// A tracker that forgets a reap whose replacement has not come after `max_wait`.
    pub fn new(max_wait: Duration) -> Self {
        RecreationTracker {
            pending: Vec::new(),
            claimed: BTreeSet::new(),
            max_wait,
        }
    }

    /// Reaps waiting for a replacement.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The workloads with a reap waiting.
    pub fn pending_workloads(&self) -> BTreeSet<WorkloadRef> {
        self.pending
            .iter()
            .map(|p| p.reaped.workload.clone())
            .collect()
    }

    /// Remember a successful reap at `at`. Returns false (and ignores it) for kinds whose
    /// pods are not replaced by a controller Teflon tracks.
    pub fn reaped(&mut self, reaped: Reaped, at: Instant) -> bool {
        if !is_tracked(&reaped.workload.kind) {
            return false;
        }
        self.pending.push(Pending { reaped, at });
        true
    }

    fn is_replacement(p: &Reaped, o: &PodObservation) -> bool {
        o.available
            && o.workload == p.workload
            && !p.known_uids.contains(&o.uid)
            && match p.workload.kind {
                WorkloadKind::StatefulSet => o.name == p.pod,
                WorkloadKind::DaemonSet => match (&p.node, &o.node) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                },
                _ => true,
            }
    }

    /// Match pending reaps, oldest first, with new Ready pods in `pods` (each pod replaces
    /// at most one reap); return the measurements and forget expired reaps.
    pub fn check(&mut self, pods: &[PodObservation], now: Instant) -> Vec<Recreation> {
        let mut out = Vec::new();
        let mut still = Vec::with_capacity(self.pending.len());
        self.pending.sort_by_key(|p| p.at);
        for p in std::mem::take(&mut self.pending) {
            let found = pods
                .iter()
                .find(|o| !self.claimed.contains(&o.uid) && Self::is_replacement(&p.reaped, o));
            if let Some(o) = found {
                self.claimed.insert(o.uid.clone());
                out.push(Recreation {
                    workload: p.reaped.workload.clone(),
                    duration: now.saturating_duration_since(p.at),
                });
            } else if now.saturating_duration_since(p.at) <= self.max_wait {
                still.push(p);
            } else {
                tracing::info!(workload = %p.reaped.workload, pod = %p.reaped.pod, "no replacement became Ready in time; not measured");
            }
        }
        self.pending = still;
        // A claimed UID matters only while some pending reap could still see it.
        let seen: HashSet<&str> = pods.iter().map(|o| o.uid.as_str()).collect();
        self.claimed.retain(|u| seen.contains(u.as_str()));
        out
    }
}

/// Feeds a [`RecreationTracker`] from a live view; give it to
/// [`KubeActuator::with_recreation`](crate::KubeActuator::with_recreation).
#[derive(Clone, Debug)]
pub struct RecreationHandle {
    view: KubeClusterView,
    tracker: Arc<Mutex<RecreationTracker>>,
    wake: Arc<tokio::sync::Notify>,
}

impl RecreationHandle {
    fn lock(&self) -> MutexGuard<'_, RecreationTracker> {
        // The tracker holds no invariant a panic elsewhere could break half-way.
        self.tracker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Start tracking: returns the handle and the channel of measurements. Spawns a task
    /// (needs a tokio runtime) that re-checks on every change the view sees and once a
    /// second; it ends when the receiver is dropped (and keeps the view's watches alive
    /// until then).
    pub fn spawn(view: KubeClusterView) -> (Self, mpsc::Receiver<Recreation>) {
        let (tx, rx) = mpsc::channel(1024);
        let handle = RecreationHandle {
            view,
            tracker: Arc::new(Mutex::new(RecreationTracker::new(Duration::from_secs(600)))),
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        let h = handle.clone();
        tokio::spawn(async move {
            let mut changes = h.view.subscribe();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            // A view built from fixed objects has no change feed: fall back to the tick alone.
            let mut feed_open = true;
            loop {
                tokio::select! {
                    changed = changes.changed(), if feed_open => feed_open = changed.is_ok(),
                    _ = tick.tick() => {}
                    () = h.wake.notified() => {}
                    () = tx.closed() => return,
                }
                for r in h.check_now() {
                    if tx.send(r).await.is_err() {
                        return;
                    }
                }
            }
        });
        (handle, rx)
    }

    /// What the tracker must remember about the pod `a` is about to reap (`None` when its
    /// workload is not tracked). Call before acting, so a fast replacement is not mistaken
    /// for an old pod.
    pub fn before(&self, a: &PlannedAction) -> Option<Reaped> {
        let workload = a.workload.clone().filter(|w| is_tracked(&w.kind))?;
        let mut known_uids: HashSet<String> = self
            .view
            .workload_pods(&workload)
            .into_iter()
            .filter_map(|p| p.uid)
            .collect();
        known_uids.extend(a.pod.uid.clone());
        let pod = self.view.pod_state(&a.pod.namespace, &a.pod.name);
        if let Some(uid) = pod.as_ref().and_then(|p| p.uid.clone()) {
            known_uids.insert(uid);
        }
        Some(Reaped {
            workload,
            pod: a.pod.name.clone(),
            node: pod.and_then(|p| p.node),
            known_uids,
        })
    }

    /// Record a successful reap, now.
    pub fn reaped(&self, reaped: Reaped) {
        self.lock()
            .reaped(reaped, tokio::time::Instant::now().into_std());
        self.wake.notify_one();
    }

    fn check_now(&self) -> Vec<Recreation> {
        let mut tracker = self.lock();
        if tracker.pending() == 0 {
            return Vec::new();
        }
        let mut pods = Vec::new();
        for w in tracker.pending_workloads() {
            for p in self.view.workload_pods(&w) {
                let available = p.is_available();
                let Some(uid) = p.uid else {
                    continue;
                };
                pods.push(PodObservation {
                    workload: w.clone(),
                    name: p.name,
                    uid,
                    available,
                    node: p.node,
                });
            }
        }
        tracker.check(&pods, tokio::time::Instant::now().into_std())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(kind: WorkloadKind) -> WorkloadRef {
        WorkloadRef::new(kind, "shop", "web")
    }

    fn reaped(kind: WorkloadKind, pod: &str, known: &[&str]) -> Reaped {
        Reaped {
            workload: w(kind),
            pod: pod.to_owned(),
            node: Some("node-a".to_owned()),
            known_uids: known.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn obs(
        kind: WorkloadKind,
        name: &str,
        uid: &str,
        available: bool,
        node: &str,
    ) -> PodObservation {
        PodObservation {
            workload: w(kind),
            name: name.to_owned(),
            uid: uid.to_owned(),
            available,
            node: Some(node.to_owned()),
        }
    }

    #[test]
    fn a_new_ready_deployment_pod_is_the_replacement() {
        let t0 = Instant::now();
        let mut t = RecreationTracker::new(Duration::from_secs(600));
        assert!(t.reaped(reaped(WorkloadKind::Deployment, "web-1", &["u1", "u2"]), t0));
        let dep = WorkloadKind::Deployment;
        // Old pods and a new pod that is not Ready yet do not count.
        let pods = vec![
            obs(dep.clone(), "web-2", "u2", true, "n"),
            obs(dep.clone(), "web-3", "u3", false, "n"),
        ];
        assert!(t.check(&pods, t0 + Duration::from_secs(3)).is_empty());
        let pods = vec![
            obs(dep.clone(), "web-2", "u2", true, "n"),
            obs(dep, "web-3", "u3", true, "n"),
        ];
        let got = t.check(&pods, t0 + Duration::from_secs(7));
        assert_eq!(
            got,
            vec![Recreation {
                workload: w(WorkloadKind::Deployment),
                duration: Duration::from_secs(7)
            }]
        );
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_stateful_set_replacement_has_the_same_name_and_a_new_uid() {
        let t0 = Instant::now();
        let mut t = RecreationTracker::new(Duration::from_secs(600));
        t.reaped(
            reaped(WorkloadKind::StatefulSet, "web-1", &["u1", "u0"]),
            t0,
        );
        let sts = WorkloadKind::StatefulSet;
        let later = t0 + Duration::from_secs(2);
        // Same name, same UID: the old pod still terminating; another name: not it.
        assert!(
            t.check(
                &[
                    obs(sts.clone(), "web-1", "u1", true, "n"),
                    obs(sts.clone(), "web-2", "u9", true, "n")
                ],
                later
            )
            .is_empty()
        );
        assert_eq!(
            t.check(&[obs(sts, "web-1", "u5", true, "n")], later).len(),
            1
        );
    }

    #[test]
    fn a_daemon_set_replacement_is_on_the_same_node() {
        let t0 = Instant::now();
        let mut t = RecreationTracker::new(Duration::from_secs(600));
        t.reaped(reaped(WorkloadKind::DaemonSet, "agent-x", &["u1"]), t0);
        let ds = WorkloadKind::DaemonSet;
        assert!(
            t.check(&[obs(ds.clone(), "agent-y", "u2", true, "node-b")], t0)
                .is_empty()
        );
        assert_eq!(
            t.check(&[obs(ds, "agent-z", "u3", true, "node-a")], t0)
                .len(),
            1
        );
    }

    #[test]
    fn two_reaps_need_two_distinct_replacements_oldest_first() {
        let t0 = Instant::now();
        let mut t = RecreationTracker::new(Duration::from_secs(600));
        let dep = WorkloadKind::Deployment;
        t.reaped(reaped(dep.clone(), "web-1", &["u1", "u2"]), t0);
        t.reaped(
            reaped(dep.clone(), "web-2", &["u1", "u2"]),
            t0 + Duration::from_secs(1),
        );
        let got = t.check(
            &[obs(dep.clone(), "web-3", "u3", true, "n")],
            t0 + Duration::from_secs(5),
        );
        assert_eq!(
            got.iter().map(|r| r.duration).collect::<Vec<_>>(),
            vec![Duration::from_secs(5)]
        );
        // The same new pod is not counted again for the second reap.
        assert!(
            t.check(
                &[obs(dep.clone(), "web-3", "u3", true, "n")],
                t0 + Duration::from_secs(6)
            )
            .is_empty()
        );
        let got = t.check(
            &[
                obs(dep.clone(), "web-3", "u3", true, "n"),
                obs(dep, "web-4", "u4", true, "n"),
            ],
            t0 + Duration::from_secs(9),
        );
        assert_eq!(
            got.iter().map(|r| r.duration).collect::<Vec<_>>(),
            vec![Duration::from_secs(8)]
        );
    }

    #[test]
    fn another_workloads_pod_never_counts_and_old_reaps_expire() {
        let t0 = Instant::now();
        let mut t = RecreationTracker::new(Duration::from_secs(60));
        t.reaped(reaped(WorkloadKind::Deployment, "web-1", &["u1"]), t0);
        let other = PodObservation {
            workload: WorkloadRef::new(WorkloadKind::Deployment, "shop", "api"),
            ..obs(WorkloadKind::Deployment, "api-1", "u7", true, "n")
        };
        assert!(t.check(&[other], t0 + Duration::from_secs(1)).is_empty());
        assert!(t.check(&[], t0 + Duration::from_secs(61)).is_empty());
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn jobs_and_standalone_kinds_are_not_tracked() {
        let mut t = RecreationTracker::new(Duration::from_secs(60));
        assert!(!t.reaped(reaped(WorkloadKind::Job, "j", &[]), Instant::now()));
        assert!(!t.reaped(reaped(WorkloadKind::ReplicaSet, "r", &[]), Instant::now()));
        assert_eq!(t.pending(), 0);
    }
}
