//! Releases in the simulated cluster, as on a real one: a quarantined pod gets back exactly
//! the labels the quarantine removed or overwrote and loses those it added and its
//! NetworkPolicy; its controller adopts it again and, one pod above its desired count,
//! removes the surplus (not Ready first, then the newest, as a ReplicaSet does). A
//! `block_binary` policy is deleted. Deadlines (`expire_after_secs`) are kept with the
//! records, as Teflon keeps them on the objects.

use std::collections::BTreeMap;

use teflon_core::{
    ActionKind, ActiveAction, PlannedAction, Release, ReleaseCause, ReleaseOutcome, ReleaseTarget,
    Timestamp,
};

use crate::cluster::SimCluster;
use crate::responses::{SimTracingPolicy, tracing_policy_name};

fn due(expires_at: Option<Timestamp>, now: Timestamp, what: &str) -> Result<(), ReleaseOutcome> {
    match expires_at {
        Some(t) if t <= now => Ok(()),
        Some(t) => Err(ReleaseOutcome::Refused(format!(
            "{what} is not due: it expires at {t}"
        ))),
        None => Err(ReleaseOutcome::Refused(format!("{what} has no deadline"))),
    }
}

impl SimCluster {
    /// Record (or refresh) the Tetragon policy of a `block_binary` plan.
    pub(crate) fn block(&mut self, plan: &PlannedAction, now: Timestamp) {
        let Some(target) = self.release_target(plan) else {
            return;
        };
        let Some(binary) = plan.binary.clone().filter(|b| !b.is_empty()) else {
            return;
        };
        let key = (target.namespace().to_owned(), target.name().to_owned());
        let since = self
            .responses
            .tracing_policies
            .get(&key)
            .map_or(now, |p| p.since);
        self.responses.tracing_policies.insert(
            key,
            SimTracingPolicy {
                policy: plan.policy.to_string(),
                binary,
                applies_to: self.applies_to(plan),
                since,
                expires_at: plan.action.expire_after().map(|e| now.plus(e)),
            },
        );
    }

    /// `Kind/name` of the pods a `block_binary` plan applies to.
    fn applies_to(&self, plan: &PlannedAction) -> String {
        let owner = plan.workload.clone().or_else(|| {
            self.pods
                .get(&(plan.pod.namespace.clone(), plan.pod.name.clone()))
                .and_then(|p| p.owner.clone())
        });
        match owner {
            Some(w) => format!("{}/{}", w.kind, w.name),
            None => format!("Pod/{}", plan.pod.name),
        }
    }

    /// What undoes `plan` once it took effect (`None` for delete, evict, log, and a
    /// `block_binary` whose alert named no binary).
    pub fn release_target(&self, plan: &PlannedAction) -> Option<ReleaseTarget> {
        match plan.action.kind() {
            ActionKind::Quarantine => Some(ReleaseTarget::Pod {
                namespace: plan.pod.namespace.clone(),
                name: plan.pod.name.clone(),
                uid: plan
                    .pod
                    .uid
                    .clone()
                    .or_else(|| self.pod_uid(&plan.pod.namespace, &plan.pod.name)),
            }),
            ActionKind::BlockBinary => {
                let binary = plan.binary.as_deref().filter(|b| !b.is_empty())?;
                Some(ReleaseTarget::Policy {
                    namespace: plan.pod.namespace.clone(),
                    name: tracing_policy_name(&self.applies_to(plan), binary),
                })
            }
            ActionKind::Delete | ActionKind::Evict | ActionKind::Log => None,
        }
    }

    /// Undo the action on `target` at `now`, as [`teflon_core::Releaser::release`] says.
    pub fn release(
        &mut self,
        target: &ReleaseTarget,
        cause: ReleaseCause,
        now: Timestamp,
    ) -> Release {
        let end = |outcome| Release::ended(target, cause, outcome);
        match target {
            ReleaseTarget::Pod {
                namespace,
                name,
                uid,
            } => {
                let key = (namespace.clone(), name.clone());
                let Some(pod) = self.pods.get(&key) else {
                    return end(ReleaseOutcome::NotFound);
                };
                let have = pod.uid.clone();
                if let Some(want) = uid
                    && have.as_deref() != Some(want.as_str())
                {
                    return end(ReleaseOutcome::Refused(format!(
                        "pod {namespace}/{name} has UID {}, not {want}: it is another pod now; nothing changed",
                        have.as_deref().unwrap_or("(none)")
                    )));
                }
                let Some(record) = self.responses.quarantines.get(&key).cloned() else {
                    return Release {
                        uid: have,
                        ..end(ReleaseOutcome::Refused(format!(
                            "pod {namespace}/{name} is not quarantined by Teflon: nothing to release"
                        )))
                    };
                };
                let mut out = Release {
                    policy: Some(record.policy.clone()),
                    uid: have,
                    ..end(ReleaseOutcome::Released)
                };
                if cause == ReleaseCause::Expired
                    && let Err(refused) = due(
                        record.expires_at,
                        now,
                        &format!("the quarantine of pod {namespace}/{name}"),
                    )
                {
                    out.outcome = refused;
                    return out;
                }
                self.responses.quarantines.remove(&key);
                if let Some(np) = &record.network_policy {
                    self.responses
                        .network_policies
                        .remove(&(namespace.clone(), np.clone()));
                    out.network_policy = Some(np.clone());
                }
                let owner = record
                    .owner
                    .clone()
                    .filter(|w| self.workloads.contains_key(w));
                if let Some(p) = self.pods.get_mut(&key) {
                    for k in &record.added_labels {
                        if !record.removed_labels.contains_key(k) && p.labels.remove(k).is_some() {
                            out.removed_labels.push(k.clone());
                        }
                    }
                    for (k, v) in &record.removed_labels {
                        p.labels.insert(k.clone(), v.clone());
                    }
                    p.quarantined = false;
                    // Released on the operator's word (forensics done, or a false positive):
                    // no longer counted as an attacker's foothold.
                    p.infected = false;
                    p.owner = owner.clone();
                }
                out.restored_labels = record.removed_labels;
                if let Some(w) = owner {
                    self.members
                        .entry(w.clone())
                        .or_default()
                        .insert(name.clone());
                    // One above desired: the controller removes the surplus.
                    self.reconcile(&w, now, None);
                }
                out
            }
            ReleaseTarget::Policy { namespace, name } => {
                let key = (namespace.clone(), name.clone());
                let Some(tp) = self.responses.tracing_policies.get(&key) else {
                    return end(ReleaseOutcome::NotFound);
                };
                let mut out = Release {
                    policy: Some(tp.policy.clone()),
                    ..end(ReleaseOutcome::Released)
                };
                if cause == ReleaseCause::Expired
                    && let Err(refused) = due(
                        tp.expires_at,
                        now,
                        &format!("TracingPolicyNamespaced {namespace}/{name}"),
                    )
                {
                    out.outcome = refused;
                    return out;
                }
                self.responses.tracing_policies.remove(&key);
                out
            }
        }
    }

    /// Every quarantine and `block_binary` policy in force.
    pub fn active(&self) -> Vec<ActiveAction> {
        let pods = self
            .responses
            .quarantines
            .iter()
            .map(|((ns, name), q)| ActiveAction {
                action: ActionKind::Quarantine,
                target: ReleaseTarget::Pod {
                    namespace: ns.clone(),
                    name: name.clone(),
                    uid: self.pod_uid(ns, name),
                },
                policy: Some(q.policy.clone()),
                since: Some(q.at),
                expires_at: q.expires_at,
                binary: None,
                applies_to: None,
                network_policy: q.network_policy.clone(),
            });
        let blocks = self
            .responses
            .tracing_policies
            .iter()
            .map(|((ns, name), tp)| ActiveAction {
                action: ActionKind::BlockBinary,
                target: ReleaseTarget::Policy {
                    namespace: ns.clone(),
                    name: name.clone(),
                },
                policy: Some(tp.policy.clone()),
                since: Some(tp.since),
                expires_at: tp.expires_at,
                binary: Some(tp.binary.clone()),
                applies_to: Some(tp.applies_to.clone()),
                network_policy: None,
            });
        pods.chain(blocks).collect()
    }

    /// The labels of a stored pod.
    pub fn pod_labels(&self, namespace: &str, pod: &str) -> Option<BTreeMap<String, String>> {
        self.pods
            .get(&(namespace.to_owned(), pod.to_owned()))
            .map(|p| p.labels.clone())
    }

    /// True while the simulated NetworkPolicy `name` exists in `namespace`.
    pub fn has_network_policy(&self, namespace: &str, name: &str) -> bool {
        self.responses
            .network_policies
            .contains(&(namespace.to_owned(), name.to_owned()))
    }
}
