//! The stateful decision engine (SPEC §4).
//!
//! `decide` walks the decision table for every matching policy, in file order, each against
//! the state the previous one left. Deferred actions are re-checked (oldest first) on every
//! call to `decide` or `tick`. Adapters execute the planned actions and feed outcomes back with
//! `record`; replacement readiness comes back with `record_recreation`.
//!
//! The table's steps live below it, and never look up at the engine: `guard` (dedup, rate
//! limits, budgets, PDBs, `min_available`), `deferral` (actions waiting for a guard) and
//! `book` (the traces each disruptive action leaves, committed and undone together).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::action::{ActionId, ActionKind, Outcome, PodTarget};
use crate::alert::Alert;
use crate::cluster::{ClusterView, WorkloadKind, WorkloadRef};
use crate::decision::{Decision, Reason, Verdict};
use crate::ledger::{Hit, Ledger, WorkloadStats};
use crate::policy::{Policy, PolicySet};
use crate::time::Timestamp;

mod book;
mod deferral;
mod guard;

use book::{ActionBook, Target, lookup_pod, pod_key};
pub use deferral::DeferralInfo;
use deferral::{Deferral, Deferrals};
use guard::{Dedup, GuardResult, guards};

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

/// The decision engine. Deterministic: the same inputs give the same decisions.
#[derive(Debug)]
pub struct Engine {
    policies: PolicySet,
    config: EngineConfig,
    next_seq: u64,
    rule_cache: HashMap<String, Arc<[u32]>>,
    dedup: Dedup,
    book: ActionBook,
    deferrals: Deferrals,
    ledger: Ledger,
}

const RULE_CACHE_MAX: usize = 4096;

/// The ledger's key for a pod's workload; standalone pods count as their own workload.
fn ledger_workload(workload: Option<&WorkloadRef>, namespace: &str, pod: &str) -> WorkloadRef {
    workload
        .cloned()
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
            rule_cache: HashMap::new(),
            dedup: Dedup::default(),
            book: ActionBook::default(),
            deferrals: Deferrals::default(),
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

    /// Re-check pending deferrals (oldest first) against the view at `now`. Call it whenever
    /// the cluster changes (a replacement became Ready) or time passes.
    pub fn tick(&mut self, view: &impl ClusterView, now: Timestamp) -> Vec<Decision> {
        let (defaults, deadline) = (self.policies.defaults(), self.config.action_deadline);
        self.deferrals
            .recheck(&mut self.book, defaults, deadline, view, now)
    }

    /// Feed back how a planned action went.
    pub fn record(&mut self, id: ActionId, outcome: &Outcome, now: Timestamp) {
        if outcome.took_effect() {
            if let Some(f) = self.book.done(id) {
                let w = ledger_workload(f.workload.as_ref(), &f.pod.namespace, &f.pod.name);
                self.ledger
                    .cure(&w, &f.pod.name, *outcome == Outcome::Success, now);
            }
        } else if let Some(f) = self.book.undo(id)
            && *outcome == Outcome::DisruptionBudget
            && f.policy.guard.defer
        {
            self.deferrals
                .push(Deferral::refused(f, now, self.config.pdb_retry_after));
        }
    }

    /// Pending deferrals, oldest first.
    pub fn deferrals(&self) -> Vec<DeferralInfo> {
        self.deferrals.infos()
    }

    /// The earliest time after `after` at which a pending deferral could change by time alone
    /// (a retry becomes allowed, a rate window frees up, or it expires). Drivers that move time
    /// themselves (replay, the simulator, the server's timer) re-check deferrals at that time,
    /// so that events are processed in time order, expiry included.
    pub fn next_deadline(&self, after: Timestamp) -> Option<Timestamp> {
        let defaults = self.policies.defaults();
        self.deferrals.next_deadline(&self.book, defaults, after)
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
        self.dedup.prune(horizon);
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
        let deferred = self.deferrals.pods();
        self.ledger.stats(view, now, &deferred)
    }

    /// The ledger's numbers for one workload.
    pub fn stats_for(
        &self,
        workload: &WorkloadRef,
        view: &impl ClusterView,
        now: Timestamp,
    ) -> Option<WorkloadStats> {
        let deferred = self.deferrals.pods();
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
        let Some(named) = alert.target.as_ref() else {
            let target = Target {
                pod: None,
                workload: None,
                resolved,
            };
            let deadline = now.plus(self.config.action_deadline);
            return self.book.act(d, policy, target, now, deadline);
        };

        let ns = named.namespace.as_str();
        let name = named.pod.as_str();
        let key = pod_key(ns, name);
        let pod = lookup_pod(view, ns, name, named.uid.as_deref());
        let protected = self.policies.defaults().protected_namespaces.is_match(ns);
        if let Some(info) = &pod {
            d.workload = info.workload.clone();
            if kind != ActionKind::Log {
                let lw = ledger_workload(info.workload.as_ref(), ns, name);
                let uid = info.uid.as_deref().or(named.uid.as_deref());
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
            .or(named.uid.as_deref());
        let window = self.policies.defaults().dedup_window;
        if self.book.is_reaped(&key, current_uid)
            || self.deferrals.has(ns, name, &policy.name)
            || self.dedup.seen(&key, &policy.name, window, now)
        {
            return skip(d, Reason::Duplicate);
        }

        let Some(info) = pod else {
            return skip(d, Reason::PodNotFound);
        };
        let pod_target = PodTarget {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            uid: info.uid.clone().or_else(|| named.uid.clone()),
        };
        if kind.is_disruptive() {
            let defaults = self.policies.defaults();
            let book = &mut self.book;
            match guards(book, defaults, policy, &pod_target, &info, view, now) {
                GuardResult::Pass => {}
                GuardResult::Skip(reason) => return skip(d, reason),
                GuardResult::Block(reason) if policy.guard.defer => {
                    self.deferrals.push(Deferral {
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
                    return d;
                }
                GuardResult::Block(reason) => return skip(d, reason),
            }
        }
        let target = Target {
            pod: Some(pod_target),
            workload: info.workload,
            resolved,
        };
        let deadline = now.plus(self.config.action_deadline);
        self.book.act(d, policy, target, now, deadline)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
