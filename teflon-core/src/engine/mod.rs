//! The stateful decision engine (SPEC §4).
//!
//! `decide` walks the decision table for every matching policy, in file order, each against
//! the state the previous one left. Deferred actions are re-checked (oldest first) on every
//! call to `decide` or `tick`. Adapters execute the planned actions and feed outcomes back with
//! `record`; replacement readiness comes back with `record_recreation`.
//!
//! The table's steps live beside it: `guard` (rate limits, budgets, PDBs, `min_available`),
//! `deferral` (actions waiting for a guard), and `book` (the traces each disruptive action
//! leaves, committed and undone together).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::action::{ActionKind, PodTarget, Resolved};
use crate::alert::Alert;
use crate::cluster::{ClusterView, PodInfo, WorkloadKind, WorkloadRef};
use crate::decision::{Decision, Reason, Verdict};
use crate::ledger::{Hit, Ledger, WorkloadStats};
use crate::policy::{Policy, PolicySet};
use crate::time::Timestamp;

mod book;
mod deferral;
mod guard;

use book::ActionBook;
use deferral::Deferral;
pub use deferral::DeferralInfo;
use guard::GuardResult;

/// Engine settings that are not part of the policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Sliding window for the infection rate and time to recreation.
    pub rate_window: Duration,
    /// How long reaped pods, seen infections and idle workloads are remembered.
    pub retention: Duration,
    /// After an eviction is refused by a PodDisruptionBudget, wait at least this long before
    /// the deferred retry (the cluster view's PDB status may lag the API server's).
    pub pdb_retry_after: Duration,
    /// How long after its decision a planned action's calls may be retried
    /// ([`PlannedAction::deadline`]); SPEC §4 `action_deadline_secs`.
    pub action_deadline: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            rate_window: Duration::from_secs(300),
            retention: Duration::from_secs(3600),
            pdb_retry_after: Duration::from_secs(5),
            action_deadline: Duration::from_secs(300),
        }
    }
}

/// What an action is taken on: the pod (none for a `log` about an alert without one), its
/// workload, and what the action took from the alert.
struct Target {
    pod: Option<PodTarget>,
    workload: Option<WorkloadRef>,
    resolved: Resolved,
}

/// The decision engine. Deterministic: the same inputs give the same decisions.
#[derive(Debug)]
pub struct Engine {
    policies: PolicySet,
    config: EngineConfig,
    next_seq: u64,
    next_action: u64,
    rule_cache: HashMap<String, Arc<[u32]>>,
    /// `ns/pod` → policy → last time a decision for it passed the dedup step.
    dedup: HashMap<String, HashMap<Arc<str>, Timestamp>>,
    book: ActionBook,
    deferrals: VecDeque<Deferral>,
    ledger: Ledger,
}

const RULE_CACHE_MAX: usize = 4096;

fn pod_key(namespace: &str, pod: &str) -> String {
    let mut k = String::with_capacity(namespace.len() + pod.len() + 1);
    k.push_str(namespace);
    k.push('/');
    k.push_str(pod);
    k
}

/// The pod as the view has it, unless it is a different pod than the alert meant (UID mismatch).
fn lookup_pod(
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

/// The ledger's key for a pod's workload; standalone pods count as their own workload.
fn ledger_workload(namespace: &str, pod: &str, info: &PodInfo) -> WorkloadRef {
    info.workload
        .clone()
        .unwrap_or_else(|| WorkloadRef::new(WorkloadKind::Other("Pod".to_owned()), namespace, pod))
}

impl Engine {
    /// An engine with default settings.
    pub fn new(policies: PolicySet) -> Self {
        Self::with_config(policies, EngineConfig::default())
    }

    /// An engine with explicit settings.
    pub fn with_config(policies: PolicySet, config: EngineConfig) -> Self {
        let ledger = Ledger::new(config.rate_window, config.retention);
        Engine {
            policies,
            config,
            next_seq: 0,
            next_action: 0,
            rule_cache: HashMap::new(),
            dedup: HashMap::new(),
            book: ActionBook::default(),
            deferrals: VecDeque::new(),
            ledger,
        }
    }

    /// The policies in force.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// Replace the policies (hot reload). State is kept; pending deferrals keep the policy
    /// they were deferred under.
    pub fn set_policies(&mut self, policies: PolicySet) {
        self.policies = policies;
        self.rule_cache.clear();
    }

    /// Settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Decide about one alert at time `now`. Pending deferrals are re-checked first; their
    /// resolutions come first in the returned list.
    pub fn decide(
        &mut self,
        alert: impl Into<Arc<Alert>>,
        view: &impl ClusterView,
        now: Timestamp,
    ) -> Vec<Decision> {
        let alert = alert.into();
        let mut out = self.tick(view, now);
        let seq = self.next_seq;
        self.next_seq += 1;

        let candidates = self.candidates(&alert.rule);
        let tags = self.policies.tag_set(&alert);
        let mut matched = false;
        for &i in candidates.iter() {
            let Some(policy) = self.policies.policies().get(i as usize).cloned() else {
                continue;
            };
            if !policy.matcher.matches(&alert, &tags) {
                continue;
            }
            matched = true;
            out.push(self.decide_policy(seq, &alert, &policy, view, now));
            if !policy.continue_matching {
                break;
            }
        }
        if !matched {
            out.push(Decision {
                seq,
                alert,
                decided_at: now,
                policy: None,
                action: None,
                verdict: Verdict::Skip,
                reason: Reason::NoMatch,
                dry_run: false,
                workload: None,
                plan: None,
                infection: None,
            });
        }
        out
    }

    /// A quarantined pod was released (its labels are back, it serves again): it is no longer
    /// "reaped", so the next alert about it is decided afresh (dedup still applies). `uid`:
    /// the released pod's, when known (a pod by that name with another UID is left alone).
    pub fn released(&mut self, namespace: &str, pod: &str, uid: Option<&str>) {
        self.book.released(&pod_key(namespace, pod), uid);
    }

    /// An adapter saw the replacement of a reaped pod of `workload` become Ready, `took` after
    /// the reap.
    pub fn record_recreation(&mut self, workload: &WorkloadRef, took: Duration, now: Timestamp) {
        self.ledger.record_recreation(workload, took, now);
    }

    /// Forget expired state: dedup entries, old reaps, finished rate windows, gone pods.
    pub fn prune(&mut self, view: &impl ClusterView, now: Timestamp) {
        let longest = self.policies.longest_window();
        let horizon = now.minus(longest);
        self.dedup.retain(|_, per_policy| {
            per_policy.retain(|_, t| *t >= horizon);
            !per_policy.is_empty()
        });
        let reap_horizon = now.minus(self.config.retention.max(longest));
        self.book.prune(view, horizon, reap_horizon);
        self.ledger.prune(view, now);
    }

    /// The ledger's numbers for every workload under attack (after pruning gone pods).
    pub fn workload_stats(
        &mut self,
        view: &impl ClusterView,
        now: Timestamp,
    ) -> Vec<WorkloadStats> {
        self.ledger.prune(view, now);
        let deferred = self.deferred_pods();
        self.ledger.stats(view, now, &deferred)
    }

    /// The ledger's numbers for one workload.
    pub fn stats_for(
        &self,
        workload: &WorkloadRef,
        view: &impl ClusterView,
        now: Timestamp,
    ) -> Option<WorkloadStats> {
        let deferred = self.deferred_pods();
        self.ledger.stats_for(workload, view, now, &deferred)
    }

    /// The infection ledger (read-only).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Actions decided but not yet recorded.
    pub fn in_flight(&self) -> usize {
        self.book.in_flight()
    }

    fn candidates(&mut self, rule: &str) -> Arc<[u32]> {
        if let Some(c) = self.rule_cache.get(rule) {
            return c.clone();
        }
        let c: Arc<[u32]> = self.policies.rule_candidates(rule).into();
        if self.rule_cache.len() >= RULE_CACHE_MAX {
            self.rule_cache.clear();
        }
        self.rule_cache.insert(rule.to_owned(), c.clone());
        c
    }

    fn decide_policy(
        &mut self,
        seq: u64,
        alert: &Arc<Alert>,
        policy: &Arc<Policy>,
        view: &impl ClusterView,
        now: Timestamp,
    ) -> Decision {
        let kind = policy.action.kind();
        let mut d = Decision {
            seq,
            alert: alert.clone(),
            decided_at: now,
            policy: Some(policy.name.clone()),
            action: Some(kind),
            verdict: Verdict::Skip,
            reason: Reason::Matched,
            dry_run: policy.dry_run,
            workload: None,
            plan: None,
            infection: None,
        };
        let skip = |mut d: Decision, reason: Reason| {
            d.verdict = Verdict::Skip;
            d.reason = reason;
            d
        };

        let Some(resolved) = policy.action.resolve(alert) else {
            return skip(d, Reason::NoTarget);
        };
        let Some(target) = alert.target.as_ref() else {
            let target = Target {
                pod: None,
                workload: None,
                resolved,
            };
            return self.act(d, policy, target, now, Reason::Matched);
        };

        let ns = target.namespace.as_str();
        let name = target.pod.as_str();
        let key = pod_key(ns, name);
        let pod = lookup_pod(view, ns, name, target.uid.as_deref());
        let protected = self.policies.defaults().protected_namespaces.is_match(ns);
        if let Some(info) = &pod {
            d.workload = info.workload.clone();
            if kind != ActionKind::Log {
                let lw = ledger_workload(ns, name, info);
                let uid = info.uid.as_deref().or(target.uid.as_deref());
                let hit = Hit {
                    seq,
                    reaped: self.book.is_reaped(&key, uid),
                    backlog: !policy.dry_run && !protected && kind.is_disruptive(),
                };
                d.infection = self.ledger.infect(
                    &lw,
                    &key,
                    name,
                    info.uid.as_deref(),
                    policy.guard.min_available,
                    hit,
                    now,
                );
            }
        }

        if protected {
            return skip(d, Reason::Protected);
        }

        let current_uid = pod
            .as_ref()
            .and_then(|p| p.uid.as_deref())
            .or(target.uid.as_deref());
        if self.duplicate(target, &key, current_uid, policy, now) {
            return skip(d, Reason::Duplicate);
        }

        let Some(info) = pod else {
            return skip(d, Reason::PodNotFound);
        };
        let pod_target = PodTarget {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            uid: info.uid.clone().or_else(|| target.uid.clone()),
        };
        if !kind.is_disruptive() {
            let target = Target {
                pod: Some(pod_target),
                workload: info.workload,
                resolved,
            };
            return self.act(d, policy, target, now, Reason::Matched);
        }

        match self.guards(policy, &pod_target, &info, view, now) {
            GuardResult::Pass => {
                let target = Target {
                    pod: Some(pod_target),
                    workload: info.workload,
                    resolved,
                };
                self.act(d, policy, target, now, Reason::Matched)
            }
            GuardResult::Skip(reason) => skip(d, reason),
            GuardResult::Block(reason) => {
                if policy.guard.defer {
                    self.deferrals.push_back(Deferral {
                        seq,
                        alert: alert.clone(),
                        policy: policy.clone(),
                        pod: pod_target,
                        workload: info.workload,
                        blocked_by: reason,
                        deferred_at: now,
                        not_before: None,
                    });
                    d.verdict = Verdict::Defer;
                    d.reason = reason;
                    d
                } else {
                    skip(d, reason)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
