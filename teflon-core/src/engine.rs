//! The stateful decision engine (SPEC §4).
//!
//! `decide` walks the decision table for every matching policy, in file order, each against
//! the state the previous one left. Deferred actions are re-checked (oldest first) on every
//! call to `decide` or `tick`. Adapters execute the planned actions and feed outcomes back with
//! `record`; replacement readiness comes back with `record_recreation`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::action::{Action, ActionId, ActionKind, Outcome, PlannedAction, PodTarget};
use crate::alert::Alert;
use crate::cluster::{ClusterView, PodInfo, WorkloadKind, WorkloadRef};
use crate::decision::{Decision, Reason, Verdict};
use crate::ledger::{Hit, Ledger, WorkloadStats};
use crate::policy::{Policy, PolicySet, StandalonePods};
use crate::time::Timestamp;

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
struct Deferral {
    seq: u64,
    alert: Arc<Alert>,
    policy: Arc<Policy>,
    pod: PodTarget,
    workload: Option<WorkloadRef>,
    blocked_by: Reason,
    deferred_at: Timestamp,
    not_before: Option<Timestamp>,
}

impl Deferral {
    fn expires_at(&self) -> Timestamp {
        self.deferred_at.plus(self.policy.guard.max_defer)
    }
}

#[derive(Debug, Clone)]
struct InFlight {
    pod_key: String,
    pod: PodTarget,
    workload: Option<WorkloadRef>,
    kind: ActionKind,
    seq: u64,
    alert: Arc<Alert>,
    policy: Arc<Policy>,
}

#[derive(Debug, Clone)]
struct Reaped {
    uid: Option<String>,
    at: Timestamp,
    action: ActionId,
}

/// The outcome of the guard steps for a disruptive action.
enum GuardResult {
    Pass,
    Skip(Reason),
    Block(Reason),
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
    /// `ns/pod` → the disruptive action taken on it.
    reaped: HashMap<String, Reaped>,
    /// Pods whose disruptive action was decided, per workload, until the view shows them out.
    reaping: BTreeMap<WorkloadRef, Vec<(String, Option<String>, ActionId)>>,
    in_flight: HashMap<ActionId, InFlight>,
    workload_actions: HashMap<WorkloadRef, VecDeque<(Timestamp, ActionId)>>,
    cluster_actions: VecDeque<(Timestamp, ActionId)>,
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
            reaped: HashMap::new(),
            reaping: BTreeMap::new(),
            in_flight: HashMap::new(),
            workload_actions: HashMap::new(),
            cluster_actions: VecDeque::new(),
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

    /// Feed back how a planned action went.
    pub fn record(&mut self, id: ActionId, outcome: &Outcome, now: Timestamp) {
        let Some(f) = self.in_flight.remove(&id) else {
            return;
        };
        if !f.kind.is_disruptive() {
            return;
        }
        let ledger_w = f.workload.clone().unwrap_or_else(|| {
            WorkloadRef::new(
                WorkloadKind::Other("Pod".to_owned()),
                &f.pod.namespace,
                &f.pod.name,
            )
        });
        if outcome.took_effect() {
            self.ledger
                .cure(&ledger_w, &f.pod.name, *outcome == Outcome::Success, now);
            return;
        }
        // Nothing happened to the pod: it is neither reaped nor being reaped, and the action
        // does not count against rate limits or the budget.
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
        if *outcome == Outcome::DisruptionBudget && f.policy.guard.defer {
            self.deferrals.push_back(Deferral {
                seq: f.seq,
                alert: f.alert,
                policy: f.policy,
                pod: f.pod,
                workload: f.workload,
                blocked_by: Reason::DisruptionBudget,
                deferred_at: now,
                not_before: Some(now.plus(self.config.pdb_retry_after)),
            });
        }
    }

    /// A quarantined pod was released (its labels are back, it serves again): it is no longer
    /// "reaped", so the next alert about it is decided afresh (dedup still applies). `uid`:
    /// the released pod's, when known (a pod by that name with another UID is left alone).
    pub fn released(&mut self, namespace: &str, pod: &str, uid: Option<&str>) {
        let key = pod_key(namespace, pod);
        let same = match (self.reaped.get(&key), uid) {
            (None, _) => false,
            (Some(r), Some(uid)) => r.uid.as_deref().is_none_or(|u| u == uid),
            (Some(_), None) => true,
        };
        if same {
            self.reaped.remove(&key);
        }
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

    /// `(namespace, pod)` of every pending deferral: the ledger counts them as backlog.
    fn deferred_pods(&self) -> Vec<(&str, &str)> {
        self.deferrals
            .iter()
            .map(|d| (d.pod.namespace.as_str(), d.pod.name.as_str()))
            .collect()
    }

    /// The infection ledger (read-only).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
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
        let window_frees = |q: &VecDeque<(Timestamp, ActionId)>, window: Duration| {
            q.iter()
                .map(|(t, _)| t.plus(window))
                .find(|end| *end > after)
        };
        if defaults.cluster_max_actions.is_some()
            && !self.deferrals.is_empty()
            && let Some(end) = window_frees(&self.cluster_actions, defaults.cluster_window)
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
                    .and_then(|w| self.workload_actions.get(w))
                && let Some(end) = window_frees(q, d.policy.guard.window)
            {
                consider(end);
            }
        }
        best
    }

    /// Actions decided but not yet recorded.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
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

    fn is_reaped(&self, key: &str, current_uid: Option<&str>) -> bool {
        match self.reaped.get(key) {
            None => false,
            // A pod with the same name but another UID is its replacement (StatefulSet): not reaped.
            Some(r) => match (r.uid.as_deref(), current_uid) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            },
        }
    }

    fn has_deferral(&self, key_ns: &str, key_pod: &str, policy: &str) -> bool {
        self.deferrals.iter().any(|d| {
            d.pod.namespace == key_ns && d.pod.name == key_pod && &*d.policy.name == policy
        })
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

        let binary = match &policy.action {
            Action::BlockBinary { binary_fields, .. } => binary_fields
                .iter()
                .find_map(|f| alert.fields.get_str(f))
                .map(str::to_owned),
            _ => None,
        };
        let Some(target) = alert.target.as_ref() else {
            if kind.needs_target() {
                return skip(d, Reason::NoTarget);
            }
            return self.act(d, policy, None, None, None, now, Reason::Matched);
        };
        if kind == ActionKind::BlockBinary && binary.is_none() {
            return skip(d, Reason::NoTarget);
        }

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
                    reaped: self.is_reaped(&key, uid),
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
        if self.is_reaped(&key, current_uid) || self.has_deferral(ns, name, &policy.name) {
            return skip(d, Reason::Duplicate);
        }
        let window = self.policies.defaults().dedup_window;
        match self.dedup.get_mut(key.as_str()) {
            Some(per_pod) => {
                if let Some(last) = per_pod.get_mut(&policy.name) {
                    if now.since(*last) < window {
                        return skip(d, Reason::Duplicate);
                    }
                    *last = now;
                } else {
                    per_pod.insert(policy.name.clone(), now);
                }
            }
            None => {
                let per_pod = HashMap::from([(policy.name.clone(), now)]);
                self.dedup.insert(key.clone(), per_pod);
            }
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
            return self.act(
                d,
                policy,
                Some(pod_target),
                info.workload,
                binary,
                now,
                Reason::Matched,
            );
        }

        match self.guards(policy, &pod_target, &info, view, now) {
            GuardResult::Pass => {
                let w = info.workload.clone();
                self.act(d, policy, Some(pod_target), w, None, now, Reason::Matched)
            }
            GuardResult::Skip(reason) => skip(d, reason),
            GuardResult::Block(reason) => {
                if policy.guard.defer {
                    self.deferrals.push_back(Deferral {
                        seq,
                        alert: alert.clone(),
                        policy: policy.clone(),
                        pod: pod_target,
                        workload: info.workload.clone(),
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

    /// The guard steps of the decision table, for a disruptive action on a known pod.
    fn guards(
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
            let since = now.minus(guard.window);
            let used = self
                .workload_actions
                .get(workload)
                .map_or(0, |q| q.iter().filter(|(t, _)| *t > since).count());
            if used >= max as usize {
                return GuardResult::Skip(Reason::RateLimited);
            }
        }
        if self.cluster_budget_used(now) {
            return GuardResult::Skip(Reason::ClusterBudget);
        }
        let reaping_ready = self.settle_reaping(workload, view);
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
        let since = now.minus(defaults.cluster_window);
        let used = self
            .cluster_actions
            .iter()
            .filter(|(t, _)| *t > since)
            .count();
        used >= max as usize
    }

    /// Drop pods from the "being reaped" list of `workload` once the view shows them out of
    /// service (gone, replaced, not Ready, or no longer in the workload); return those still in.
    fn settle_reaping(&mut self, workload: &WorkloadRef, view: &impl ClusterView) -> Vec<String> {
        let Some(list) = self.reaping.get_mut(workload) else {
            return Vec::new();
        };
        list.retain(|(name, uid, _)| {
            lookup_pod(view, &workload.namespace, name, uid.as_deref())
                .is_some_and(|p| p.ready && p.workload.as_ref() == Some(workload))
        });
        list.iter().map(|(n, _, _)| n.clone()).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn act(
        &mut self,
        mut d: Decision,
        policy: &Arc<Policy>,
        pod: Option<PodTarget>,
        workload: Option<WorkloadRef>,
        binary: Option<String>,
        now: Timestamp,
        reason: Reason,
    ) -> Decision {
        d.verdict = Verdict::Act;
        d.reason = reason;
        d.decided_at = now;
        if policy.dry_run {
            return d;
        }
        let id = ActionId(self.next_action);
        self.next_action += 1;
        let kind = policy.action.kind();
        let pod = pod.unwrap_or_else(|| PodTarget {
            namespace: String::new(),
            name: String::new(),
            uid: None,
        });
        if kind.is_disruptive() {
            let key = pod_key(&pod.namespace, &pod.name);
            self.reaped.insert(
                key.clone(),
                Reaped {
                    uid: pod.uid.clone(),
                    at: now,
                    action: id,
                },
            );
            if let Some(w) = &workload {
                self.reaping.entry(w.clone()).or_default().push((
                    pod.name.clone(),
                    pod.uid.clone(),
                    id,
                ));
                self.workload_actions
                    .entry(w.clone())
                    .or_default()
                    .push_back((now, id));
            }
            self.cluster_actions.push_back((now, id));
            self.in_flight.insert(
                id,
                InFlight {
                    pod_key: key,
                    pod: pod.clone(),
                    workload: workload.clone(),
                    kind,
                    seq: d.seq,
                    alert: d.alert.clone(),
                    policy: policy.clone(),
                },
            );
        }
        d.plan = Some(PlannedAction {
            id,
            pod,
            workload,
            action: policy.action.clone(),
            policy: policy.name.clone(),
            binary,
            alert: d.alert.clone(),
            deadline: now.plus(self.config.action_deadline),
        });
        d
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
        if self.is_reaped(&key, d.pod.uid.as_deref()) {
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
                Some(self.act(
                    base,
                    &policy,
                    Some(d.pod.clone()),
                    info.workload,
                    None,
                    now,
                    Reason::DeferredReady,
                ))
            }
            GuardResult::Skip(reason) | GuardResult::Block(reason) => {
                d.blocked_by = reason;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
