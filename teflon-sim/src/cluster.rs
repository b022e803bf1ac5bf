//! The in-memory cluster: pods, workloads, PodDisruptionBudgets and simulated time.
//!
//! Size: about 930 lines before its tests, kept in one file: the simulated cluster's state and the
//! controllers that change it (replacement, readiness, actions), which act on the same maps.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use teflon_core::{
    ActionKind, ClusterView, Outcome, PlannedAction, PodInfo, PodSummary, Timestamp, WorkloadKind,
    WorkloadRef, WorkloadStatus, WorkloadSummary,
};

use teflon_core::selector::Selector;

use crate::budget::IntOrPercent;

/// The label `quarantine` puts on a pod (SPEC §3): the one core defines.
pub use teflon_core::QUARANTINE_LABEL;

/// Replicas of the assumed-healthy workload every unknown pod belongs to (SPEC §5).
pub const HEALTHY_REPLICAS: u32 = 3;

/// Something that happened in the simulated cluster while time advanced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimEvent {
    /// The replacement of a reaped (deleted, evicted or quarantined) pod became Ready.
    /// Feed it to `Engine::record_recreation(&workload, took, at)`.
    Recreated {
        /// The workload that got its pod back.
        workload: WorkloadRef,
        /// The replacement pod.
        pod: String,
        /// Reap → replacement Ready.
        took: Duration,
        /// When it became Ready.
        at: Timestamp,
    },
    /// A pod created by scaling up became Ready.
    ScaledUp {
        /// The workload.
        workload: WorkloadRef,
        /// The new pod.
        pod: String,
        /// When it became Ready.
        at: Timestamp,
    },
}

impl SimEvent {
    /// When it happened.
    pub fn at(&self) -> Timestamp {
        match self {
            SimEvent::Recreated { at, .. } | SimEvent::ScaledUp { at, .. } => *at,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct SimPod {
    pub(crate) uid: Option<String>,
    pub(crate) labels: BTreeMap<String, String>,
    /// The top controller; `None` for standalone pods and quarantined ones.
    pub(crate) owner: Option<WorkloadRef>,
    pub(crate) ready: bool,
    /// Not Ready yet; becomes Ready then.
    pub(crate) ready_at: Option<Timestamp>,
    /// Set on replacements: when the pod it replaces was reaped.
    pub(crate) replaces_reap_at: Option<Timestamp>,
    /// Succeeded/Failed or terminating in the snapshot: not counted as a live replica.
    pub(crate) finished: bool,
    /// Cut from its workload by `quarantine`.
    pub(crate) quarantined: bool,
    /// An attacker has a foothold in it (simulation bookkeeping only).
    pub(crate) infected: bool,
    /// Creation order, for scale-down (newest first).
    pub(crate) created: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct SimWorkload {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) desired: u32,
    /// Label keys of the controller's selector (what `quarantine` strips).
    pub(crate) selector_keys: BTreeSet<String>,
    /// Labels new pods get.
    pub(crate) template: BTreeMap<String, String>,
    /// Prefix of generated pod names (`web-7d4b9c8f6d` for a Deployment's ReplicaSet).
    pub(crate) pod_base: String,
}

#[derive(Debug, Clone)]
pub(crate) struct SimPdb {
    pub(crate) selector: Selector,
    pub(crate) min_available: Option<IntOrPercent>,
    pub(crate) max_unavailable: Option<IntOrPercent>,
}

/// Which part of the cluster the view sees: `cluster.namespaces` and `cluster.pod_selector`,
/// as the real adapter watches them. Pods outside it are unknown to the engine; a workload's
/// pods outside it are not counted as available (its desired count still comes from its
/// spec), and PodDisruptionBudgets still count every pod, as the disruption controller does.
#[derive(Clone, Default)]
pub struct SimScope {
    namespaces: BTreeSet<String>,
    #[allow(clippy::type_complexity)]
    pods: Option<Arc<dyn Fn(&BTreeMap<String, String>) -> bool + Send + Sync>>,
}

impl fmt::Debug for SimScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimScope")
            .field("namespaces", &self.namespaces)
            .field("pod_selector", &self.pods.is_some())
            .finish()
    }
}

impl SimScope {
    /// Everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Only these namespaces (empty: all).
    pub fn namespaces(mut self, namespaces: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.namespaces = namespaces.into_iter().map(Into::into).collect();
        self
    }

    /// Only the pods whose labels `selects` accepts (a compiled label selector).
    pub fn pods(
        mut self,
        selects: impl Fn(&BTreeMap<String, String>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.pods = Some(Arc::new(selects));
        self
    }

    /// Whether the view watches `namespace`.
    pub fn sees_namespace(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.contains(namespace)
    }

    /// Whether the view holds a pod of `namespace` with these labels.
    pub fn sees_pod(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.sees_namespace(namespace) && self.pods.as_ref().is_none_or(|f| f(labels))
    }
}

/// An in-memory Kubernetes cluster with simulated time.
///
/// Built from a `kubectl get … -o json` List ([`SimCluster::from_kubectl_list`]), as the
/// assumed-healthy cluster of `teflon replay` ([`SimCluster::healthy`]), or by hand
/// ([`SimCluster::new`] + [`SimCluster::with_deployment`] …). Actions are applied with
/// [`SimCluster::apply`]; controllers create replacements that become Ready `recovery` later,
/// when [`SimCluster::advance_to`] reaches that time.
#[derive(Debug, Clone)]
pub struct SimCluster {
    pub(crate) recovery: Duration,
    pub(crate) healthy: bool,
    pub(crate) pods: BTreeMap<(String, String), SimPod>,
    /// Index: the pods of each workload (names; the namespace is the workload's).
    pub(crate) members: BTreeMap<WorkloadRef, BTreeSet<String>>,
    /// Index: pods not Ready yet, by when they will be.
    pub(crate) pending: BTreeSet<(Timestamp, String, String)>,
    pub(crate) workloads: BTreeMap<WorkloadRef, SimWorkload>,
    pub(crate) pdbs: BTreeMap<(String, String), SimPdb>,
    /// Healthy mode: pods that were there and are gone (not to be conjured up again).
    pub(crate) gone: BTreeSet<(String, String)>,
    pub(crate) next_id: u64,
    pub(crate) now: Timestamp,
    /// What the view sees.
    pub(crate) scope: SimScope,
    /// Quarantine records, NetworkPolicies and Tetragon policies: what a release undoes.
    pub(crate) responses: crate::responses::Responses,
}

impl SimCluster {
    /// An empty cluster whose replacements become Ready `recovery` after they are created.
    pub fn new(recovery: Duration) -> Self {
        SimCluster {
            recovery,
            healthy: false,
            pods: BTreeMap::new(),
            members: BTreeMap::new(),
            pending: BTreeSet::new(),
            workloads: BTreeMap::new(),
            pdbs: BTreeMap::new(),
            gone: BTreeSet::new(),
            next_id: 0,
            now: Timestamp::EPOCH,
            scope: SimScope::default(),
            responses: crate::responses::Responses::default(),
        }
    }

    /// See only part of the cluster, as `cluster.namespaces` and `cluster.pod_selector` make
    /// the real adapter do.
    pub fn with_scope(mut self, scope: SimScope) -> Self {
        self.scope = scope;
        self
    }

    /// The assumed-healthy cluster of `teflon replay` without a snapshot (SPEC §5): every pod
    /// asked about exists, is Ready, and is one of 3 available replicas of its own workload
    /// (kind `Unknown`, named after the pod). Pods are conjured up on first lookup and only
    /// what actions change is stored, so lookups stay `&self`.
    pub fn healthy(recovery: Duration) -> Self {
        SimCluster {
            healthy: true,
            ..SimCluster::new(recovery)
        }
    }

    /// True for the assumed-healthy cluster.
    pub fn is_healthy_mode(&self) -> bool {
        self.healthy
    }

    /// Reap → replacement Ready.
    pub fn recovery(&self) -> Duration {
        self.recovery
    }

    /// The simulated time the cluster has been advanced to.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Add a Deployment `namespace/name` with `replicas` Ready pods (labels `app: name`).
    pub fn with_deployment(self, namespace: &str, name: &str, replicas: u32) -> Self {
        self.with_workload(WorkloadKind::Deployment, namespace, name, replicas)
    }

    /// Add a StatefulSet `namespace/name` with `replicas` Ready pods `name-0…` (labels `app: name`).
    pub fn with_statefulset(self, namespace: &str, name: &str, replicas: u32) -> Self {
        self.with_workload(WorkloadKind::StatefulSet, namespace, name, replicas)
    }

    /// Add a workload of any kind with `replicas` Ready pods (labels `app: name`).
    pub fn with_workload(
        mut self,
        kind: WorkloadKind,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> Self {
        let w = WorkloadRef::new(kind.clone(), namespace, name);
        let app: BTreeMap<String, String> =
            [("app".to_owned(), name.to_owned())].into_iter().collect();
        let pod_base = match kind {
            WorkloadKind::Deployment => format!("{name}-{}", self.fresh_suffix(10)),
            _ => name.to_owned(),
        };
        let mut template = app.clone();
        if kind == WorkloadKind::Deployment
            && let Some(hash) = pod_base.rsplit('-').next()
        {
            template.insert("pod-template-hash".to_owned(), hash.to_owned());
        }
        self.workloads.insert(
            w.clone(),
            SimWorkload {
                labels: app.clone(),
                desired: replicas,
                selector_keys: template.keys().cloned().collect(),
                template,
                pod_base,
            },
        );
        for _ in 0..replicas {
            if let Some(name) = self.new_pod_name(&w) {
                let pod = self.new_pod(&w, true, None, None);
                self.insert_pod((namespace.to_owned(), name), pod);
            }
        }
        self
    }

    /// Add a Ready standalone pod (no controller owner).
    pub fn with_standalone_pod(mut self, namespace: &str, name: &str) -> Self {
        let uid = self.fresh_uid();
        let created = self.bump();
        self.insert_pod(
            (namespace.to_owned(), name.to_owned()),
            SimPod {
                uid: Some(uid),
                labels: [("run".to_owned(), name.to_owned())].into_iter().collect(),
                owner: None,
                ready: true,
                ready_at: None,
                replaces_reap_at: None,
                finished: false,
                quarantined: false,
                infected: false,
                created,
            },
        );
        self
    }

    /// Add a PodDisruptionBudget `namespace/name` selecting the pods labelled `app: app`, with
    /// `minAvailable` (an integer or `"NN%"`).
    pub fn with_pdb_min_available(
        mut self,
        namespace: &str,
        name: &str,
        app: &str,
        min_available: &str,
    ) -> Self {
        self.pdbs.insert(
            (namespace.to_owned(), name.to_owned()),
            SimPdb {
                selector: Selector::match_labels([("app", app)]),
                min_available: IntOrPercent::parse(min_available),
                max_unavailable: None,
            },
        );
        self
    }

    /// Add a PodDisruptionBudget `namespace/name` selecting the pods labelled `app: app`, with
    /// `maxUnavailable` (an integer or `"NN%"`).
    pub fn with_pdb_max_unavailable(
        mut self,
        namespace: &str,
        name: &str,
        app: &str,
        max_unavailable: &str,
    ) -> Self {
        self.pdbs.insert(
            (namespace.to_owned(), name.to_owned()),
            SimPdb {
                selector: Selector::match_labels([("app", app)]),
                min_available: None,
                max_unavailable: IntOrPercent::parse(max_unavailable),
            },
        );
        self
    }

    /// The workload's desired replicas, if the cluster has it.
    pub fn desired(&self, workload: &WorkloadRef) -> Option<u32> {
        self.workloads.get(workload).map(|w| w.desired).or_else(|| {
            self.unmaterialized_healthy(workload)
                .then_some(HEALTHY_REPLICAS)
        })
    }

    /// Every workload, sorted.
    pub fn workload_refs(&self) -> Vec<WorkloadRef> {
        self.workloads.keys().cloned().collect()
    }

    /// Pods of `workload` that are Ready and serving (the attack surface), sorted by name.
    pub fn available_pods(&self, workload: &WorkloadRef) -> Vec<String> {
        self.members_of(workload)
            .filter(|(_, p)| p.ready)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every Ready pod that belongs to a workload, as `(namespace, pod)`, sorted.
    pub fn all_available_pods(&self) -> Vec<(String, String)> {
        self.pods
            .iter()
            .filter(|(_, p)| p.ready && p.owner.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The UID of a stored pod.
    pub fn pod_uid(&self, namespace: &str, pod: &str) -> Option<String> {
        self.pods
            .get(&(namespace.to_owned(), pod.to_owned()))?
            .uid
            .clone()
    }

    /// Mark a pod as infected (simulation bookkeeping: it counts in [`SimCluster::infected_pods`]
    /// until it is reaped or quarantined). False when the pod is unknown.
    pub fn infect(&mut self, namespace: &str, pod: &str) -> bool {
        match self.pods.get_mut(&(namespace.to_owned(), pod.to_owned())) {
            Some(p) => {
                p.infected = true;
                true
            }
            None => false,
        }
    }

    /// True when an attacker has a foothold in the pod.
    pub fn is_infected(&self, namespace: &str, pod: &str) -> bool {
        self.pods
            .get(&(namespace.to_owned(), pod.to_owned()))
            .is_some_and(|p| p.infected)
    }

    /// Infected pods still in service (not reaped, not quarantined).
    pub fn infected_pods(&self) -> u32 {
        count(self.pods.values().filter(|p| p.infected && !p.quarantined))
    }

    /// Change a workload's desired replicas at `now`: new pods become Ready `recovery` later,
    /// surplus pods (not Ready first, then newest) are removed at once. False when the
    /// workload is unknown.
    pub fn set_desired(&mut self, workload: &WorkloadRef, replicas: u32, now: Timestamp) -> bool {
        self.materialize_workload(workload);
        let Some(w) = self.workloads.get_mut(workload) else {
            return false;
        };
        w.desired = replicas;
        self.reconcile(workload, now, None);
        true
    }

    /// Apply a planned action at `now` and say how it went, as the API server would.
    ///
    /// `delete` / `evict` remove the pod at once (`evict` is refused with
    /// [`Outcome::DisruptionBudget`] when a PDB allows no disruption); `quarantine` keeps the pod
    /// but strips its owner's selector labels, so it leaves the workload; the controller then
    /// creates a replacement. A different UID than the plan's, or an unknown pod, is
    /// [`Outcome::Gone`]. `block_binary` and `log` change no pod; `block_binary` records a
    /// Tetragon policy for the workload when the alert names a binary. What quarantine and
    /// `block_binary` change is recorded so that [`SimCluster::release`] undoes exactly that.
    pub fn apply(&mut self, plan: &PlannedAction, now: Timestamp) -> Outcome {
        let kind = plan.action.kind();
        if kind == ActionKind::BlockBinary {
            self.block(plan, now);
        }
        if !kind.is_disruptive() {
            return Outcome::Success;
        }
        let key = (plan.pod.namespace.clone(), plan.pod.name.clone());
        self.materialize_pod(&key.0, &key.1, plan.pod.uid.as_deref());
        let Some(pod) = self.pods.get(&key) else {
            return Outcome::Gone;
        };
        if let (Some(want), Some(have)) = (plan.pod.uid.as_deref(), pod.uid.as_deref())
            && want != have
        {
            return Outcome::Gone;
        }
        if kind == ActionKind::Quarantine && pod.quarantined {
            return Outcome::Success;
        }
        if kind == ActionKind::Evict
            && self
                .disruptions_allowed(&key.0, &key.1)
                .is_some_and(|a| a < 1)
        {
            return Outcome::DisruptionBudget;
        }
        let owner = pod.owner.clone();
        match kind {
            ActionKind::Quarantine => {
                let strip: BTreeSet<String> = owner
                    .as_ref()
                    .and_then(|w| self.workloads.get(w))
                    .map(|w| w.selector_keys.clone())
                    .unwrap_or_default();
                if let Some(w) = &owner
                    && let Some(m) = self.members.get_mut(w)
                {
                    m.remove(&key.1);
                }
                if let Some(p) = self.pods.get_mut(&key) {
                    let record = crate::responses::quarantine(
                        &mut p.labels,
                        &strip,
                        plan,
                        owner.clone(),
                        now,
                    );
                    if let Some(np) = &record.network_policy {
                        self.responses
                            .network_policies
                            .insert((key.0.clone(), np.clone()));
                    }
                    self.responses.quarantines.insert(key.clone(), record);
                    p.owner = None;
                    p.quarantined = true;
                }
            }
            _ => {
                self.remove_pod(&key);
                if self.healthy {
                    self.gone.insert(key);
                }
            }
        }
        if let Some(w) = owner {
            self.reconcile(&w, now, Some(now));
        }
        Outcome::Success
    }

    /// When the next pending pod becomes Ready, if any.
    pub fn next_event_time(&self) -> Option<Timestamp> {
        self.pending.first().map(|(t, _, _)| *t)
    }

    /// Move simulated time to `now`: pods due by then become Ready, in time order.
    /// Time never goes backwards (an earlier `now` changes nothing).
    pub fn advance_to(&mut self, now: Timestamp) -> Vec<SimEvent> {
        let mut due = Vec::new();
        while let Some(first) = self.pending.first()
            && first.0 <= now
        {
            if let Some((at, ns, name)) = self.pending.pop_first() {
                due.push((at, (ns, name)));
            }
        }
        let mut events = Vec::with_capacity(due.len());
        for (at, key) in due {
            let Some(p) = self.pods.get_mut(&key) else {
                continue;
            };
            p.ready = true;
            p.ready_at = None;
            let Some(workload) = p.owner.clone() else {
                continue;
            };
            events.push(match p.replaces_reap_at.take() {
                Some(reaped) => SimEvent::Recreated {
                    workload,
                    pod: key.1,
                    took: at.since(reaped),
                    at,
                },
                None => SimEvent::ScaledUp {
                    workload,
                    pod: key.1,
                    at,
                },
            });
        }
        if now > self.now {
            self.now = now;
        }
        events
    }

    /// Store a pod, keeping the indexes right.
    pub(crate) fn insert_pod(&mut self, key: (String, String), pod: SimPod) {
        self.remove_pod(&key);
        if let Some(w) = &pod.owner {
            self.members
                .entry(w.clone())
                .or_default()
                .insert(key.1.clone());
        }
        if let Some(t) = pod.ready_at {
            self.pending.insert((t, key.0.clone(), key.1.clone()));
        }
        self.pods.insert(key, pod);
    }

    /// Remove a pod, keeping the indexes right.
    pub(crate) fn remove_pod(&mut self, key: &(String, String)) -> Option<SimPod> {
        let pod = self.pods.remove(key)?;
        // Its NetworkPolicy is owned by it: the garbage collector deletes it with the pod.
        if let Some(q) = self.responses.quarantines.remove(key)
            && let Some(np) = q.network_policy
        {
            self.responses.network_policies.remove(&(key.0.clone(), np));
        }
        if let Some(w) = &pod.owner
            && let Some(m) = self.members.get_mut(w)
        {
            m.remove(&key.1);
        }
        if let Some(t) = pod.ready_at {
            self.pending.remove(&(t, key.0.clone(), key.1.clone()));
        }
        Some(pod)
    }

    /// The pods of `workload`, as `(name, pod)`.
    fn members_of<'a>(
        &'a self,
        workload: &'a WorkloadRef,
    ) -> impl Iterator<Item = (&'a String, &'a SimPod)> + 'a {
        self.members
            .get(workload)
            .into_iter()
            .flatten()
            .filter_map(move |name| {
                self.pods
                    .get(&(workload.namespace.clone(), name.clone()))
                    .filter(|p| p.owner.as_ref() == Some(workload))
                    .map(|p| (name, p))
            })
    }

    /// Create or remove pods so the live pods of `workload` match its desired count.
    pub(crate) fn reconcile(
        &mut self,
        workload: &WorkloadRef,
        now: Timestamp,
        reaped_at: Option<Timestamp>,
    ) {
        let Some(desired) = self.workloads.get(workload).map(|w| w.desired) else {
            return;
        };
        let live: Vec<((String, String), bool, u64)> = self
            .members_of(workload)
            .filter(|(_, p)| !p.finished)
            .map(|(name, p)| {
                (
                    (workload.namespace.clone(), name.clone()),
                    p.ready,
                    p.created,
                )
            })
            .collect();
        let have = count(live.iter());
        if have < desired {
            for _ in have..desired {
                let Some(name) = self.new_pod_name(workload) else {
                    break;
                };
                let mut pod =
                    self.new_pod(workload, false, Some(now.plus(self.recovery)), reaped_at);
                pod.ready = false;
                self.insert_pod((workload.namespace.clone(), name), pod);
            }
        } else if have > desired {
            let mut surplus = live;
            // Not Ready first, then newest (StatefulSets: highest ordinal, which is the newest name).
            if workload.kind == WorkloadKind::StatefulSet {
                surplus.sort_by_key(|(k, ready, _)| (*ready, std::cmp::Reverse(ordinal(&k.1))));
            } else {
                surplus.sort_by_key(|(_, ready, created)| (*ready, std::cmp::Reverse(*created)));
            }
            for (key, _, _) in surplus.into_iter().take((have - desired) as usize) {
                self.remove_pod(&key);
                if self.healthy {
                    self.gone.insert(key);
                }
            }
        }
    }

    fn new_pod(
        &mut self,
        workload: &WorkloadRef,
        ready: bool,
        ready_at: Option<Timestamp>,
        replaces_reap_at: Option<Timestamp>,
    ) -> SimPod {
        let labels = self
            .workloads
            .get(workload)
            .map(|w| w.template.clone())
            .unwrap_or_default();
        let uid = self.fresh_uid();
        let created = self.bump();
        SimPod {
            uid: Some(uid),
            labels,
            owner: Some(workload.clone()),
            ready,
            ready_at,
            replaces_reap_at,
            finished: false,
            quarantined: false,
            infected: false,
            created,
        }
    }

    /// A free name for a new pod of `workload`: the lowest free ordinal for a StatefulSet
    /// (`None` when every ordinal below desired is taken, e.g. by a quarantined pod), else
    /// `<base>-<5 random chars>` as ReplicaSets, DaemonSets and Jobs do.
    fn new_pod_name(&mut self, workload: &WorkloadRef) -> Option<String> {
        let (base, desired) = {
            let w = self.workloads.get(workload)?;
            (w.pod_base.clone(), w.desired)
        };
        if workload.kind == WorkloadKind::StatefulSet {
            return (0..desired.max(1))
                .map(|i| format!("{base}-{i}"))
                .find(|n| {
                    !self
                        .pods
                        .contains_key(&(workload.namespace.clone(), n.clone()))
                });
        }
        for _ in 0..64 {
            let name = format!("{base}-{}", self.fresh_suffix(5));
            let key = (workload.namespace.clone(), name);
            if !self.pods.contains_key(&key) && !self.gone.contains(&key) {
                return Some(key.1);
            }
        }
        None
    }

    fn bump(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A deterministic UUID-shaped UID.
    pub(crate) fn fresh_uid(&mut self) -> String {
        let a = splitmix(self.bump());
        let b = splitmix(a);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            (a >> 32) as u32,
            (a >> 16) as u16,
            (a & 0xfff) as u16,
            0x8000 | ((b >> 48) as u16 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// Kubernetes' name-suffix alphabet (no vowels, no confusable digits).
    fn fresh_suffix(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut x = splitmix(self.bump());
        (0..len)
            .map(|_| {
                let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
                x /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    fn healthy_workload_of(namespace: &str, pod: &str) -> WorkloadRef {
        WorkloadRef::new(WorkloadKind::Unknown, namespace, pod)
    }

    /// Healthy mode: a workload nobody has touched yet (3 of 3 available).
    fn unmaterialized_healthy(&self, workload: &WorkloadRef) -> bool {
        self.healthy
            && workload.kind == WorkloadKind::Unknown
            && !self.workloads.contains_key(workload)
            && !self
                .gone
                .contains(&(workload.namespace.clone(), workload.name.clone()))
            && !self
                .pods
                .contains_key(&(workload.namespace.clone(), workload.name.clone()))
    }

    /// Healthy mode: store the conjured-up pod (with `uid`) and its two siblings.
    fn materialize_pod(&mut self, namespace: &str, pod: &str, uid: Option<&str>) {
        let key = (namespace.to_owned(), pod.to_owned());
        if !self.healthy || self.pods.contains_key(&key) || self.gone.contains(&key) {
            return;
        }
        let w = Self::healthy_workload_of(namespace, pod);
        self.materialize_workload(&w);
        if let Some(p) = self.pods.get_mut(&key)
            && let Some(uid) = uid
        {
            p.uid = Some(uid.to_owned());
        }
    }

    fn materialize_workload(&mut self, workload: &WorkloadRef) {
        if !self.unmaterialized_healthy(workload) {
            return;
        }
        let (ns, name) = (workload.namespace.as_str(), workload.name.as_str());
        let labels: BTreeMap<String, String> =
            [("app".to_owned(), name.to_owned())].into_iter().collect();
        self.workloads.insert(
            workload.clone(),
            SimWorkload {
                labels: labels.clone(),
                desired: HEALTHY_REPLICAS,
                selector_keys: labels.keys().cloned().collect(),
                template: labels,
                pod_base: name.to_owned(),
            },
        );
        let mut first = self.new_pod(workload, true, None, None);
        // The alert's pod: its UID is unknown until an action names one.
        first.uid = None;
        self.insert_pod((ns.to_owned(), name.to_owned()), first);
        for i in 1..HEALTHY_REPLICAS {
            let pod = self.new_pod(workload, true, None, None);
            self.insert_pod((ns.to_owned(), format!("{name}-replica-{i}")), pod);
        }
    }

    fn pod_info(&self, p: &SimPod) -> PodInfo {
        PodInfo {
            uid: p.uid.clone(),
            ready: p.ready,
            workload: p.owner.clone(),
        }
    }

    /// Pods the PDB counts as expected: the desired replicas of the controllers of the pods it
    /// selects (standalone pods count one each).
    fn pdb_allowed(&self, namespace: &str, pdb: &SimPdb) -> i32 {
        let selected: Vec<&SimPod> = self
            .pods
            .iter()
            .filter(|((ns, _), p)| {
                ns == namespace && !p.finished && pdb.selector.matches(&p.labels)
            })
            .map(|(_, p)| p)
            .collect();
        let healthy = count(selected.iter().filter(|p| p.ready)) as i64;
        let owners: BTreeSet<&WorkloadRef> =
            selected.iter().filter_map(|p| p.owner.as_ref()).collect();
        let expected_scale = owners
            .iter()
            .map(|w| i64::from(self.workloads.get(*w).map_or(0, |s| s.desired)))
            .sum::<i64>()
            + count(selected.iter().filter(|p| p.owner.is_none())) as i64;
        let desired_healthy = match (&pdb.min_available, &pdb.max_unavailable) {
            (Some(IntOrPercent::Int(n)), _) => i64::from(*n),
            (Some(IntOrPercent::Percent(p)), _) => (expected_scale * i64::from(*p) + 99) / 100,
            (None, Some(IntOrPercent::Int(n))) => expected_scale - i64::from(*n),
            (None, Some(IntOrPercent::Percent(p))) => {
                expected_scale - (expected_scale * i64::from(*p) + 99) / 100
            }
            // Neither set: the disruption controller requires no healthy pods.
            (None, None) => 0,
        };
        i32::try_from((healthy - desired_healthy).max(0)).unwrap_or(i32::MAX)
    }
}

impl ClusterView for SimCluster {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(p) = self.pods.get(&key) {
            return self
                .scope
                .sees_pod(namespace, &p.labels)
                .then(|| self.pod_info(p));
        }
        if self.healthy && !self.gone.contains(&key) && self.scope.sees_namespace(namespace) {
            return Some(PodInfo {
                uid: None,
                ready: true,
                workload: Some(Self::healthy_workload_of(namespace, name)),
            });
        }
        None
    }

    fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
        if !self.scope.sees_namespace(&workload.namespace) {
            return None;
        }
        if self.unmaterialized_healthy(workload) {
            return Some(WorkloadStatus {
                desired: HEALTHY_REPLICAS,
                available: HEALTHY_REPLICAS,
            });
        }
        let w = self.workloads.get(workload)?;
        let available = count(
            self.members_of(workload)
                .filter(|(_, p)| p.ready && self.scope.sees_pod(&workload.namespace, &p.labels)),
        );
        Some(WorkloadStatus {
            desired: w.desired,
            available,
        })
    }

    fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
        let p = self
            .pods
            .get(&(namespace.to_owned(), pod.to_owned()))
            .filter(|p| self.scope.sees_pod(namespace, &p.labels))?;
        // Budgets count every pod, seen or not: their status comes from the disruption
        // controller, which watches the whole namespace.
        self.pdbs
            .iter()
            .filter(|((ns, _), pdb)| ns == namespace && pdb.selector.matches(&p.labels))
            .map(|((ns, _), pdb)| self.pdb_allowed(ns, pdb))
            .min()
    }

    fn pods_in(&self, namespace: &str) -> Vec<PodSummary> {
        self.pods
            .iter()
            .filter(|((ns, _), p)| ns == namespace && self.scope.sees_pod(ns, &p.labels))
            .map(|((_, name), p)| PodSummary {
                name: name.clone(),
                uid: p.uid.clone(),
                labels: p.labels.clone(),
                ready: p.ready,
                workload: p.owner.clone(),
            })
            .collect()
    }

    fn workloads_in(&self, namespace: &str) -> Vec<WorkloadSummary> {
        self.workloads
            .iter()
            .filter(|(w, _)| w.namespace == namespace && self.scope.sees_namespace(namespace))
            .filter_map(|(w, s)| {
                Some(WorkloadSummary {
                    workload: w.clone(),
                    labels: s.labels.clone(),
                    status: self.workload(w)?,
                })
            })
            .collect()
    }
}

fn count<T>(it: impl Iterator<Item = T>) -> u32 {
    u32::try_from(it.count()).unwrap_or(u32::MAX)
}

/// The StatefulSet ordinal of a pod name (`db-2` → 2).
fn ordinal(name: &str) -> u64 {
    name.rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    fn cluster() -> SimCluster {
        SimCluster::new(Duration::from_secs(10))
            .with_deployment("shop", "web", 3)
            .with_deployment("other", "api", 2)
            .with_standalone_pod("shop", "debug")
            .with_pdb_min_available("shop", "web-pdb", "web", "2")
    }

    fn web() -> WorkloadRef {
        WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")
    }

    #[test]
    fn a_namespace_and_pod_selector_scope_hide_the_rest_of_the_cluster() {
        let full = cluster();
        let web_pods = full.available_pods(&web());
        let api = WorkloadRef::new(WorkloadKind::Deployment, "other", "api");
        let api_pod = full.available_pods(&api)[0].clone();
        let scoped = cluster().with_scope(
            SimScope::everything()
                .namespaces(["shop"])
                .pods(|l| l.get("app").map(String::as_str) == Some("web")),
        );
        // Another namespace: neither its pods nor its workloads are seen.
        assert!(full.pod("other", &api_pod).is_some());
        assert_eq!(scoped.pod("other", &api_pod), None);
        assert_eq!(scoped.workload(&api), None);
        assert!(scoped.workloads_in("other").is_empty());
        // A pod the selector leaves out is unknown; the selected ones are as before.
        assert!(full.pod("shop", "debug").is_some());
        assert_eq!(scoped.pod("shop", "debug"), None);
        for p in &web_pods {
            assert_eq!(scoped.pod("shop", p), full.pod("shop", p));
            assert_eq!(
                scoped.disruptions_allowed("shop", p),
                full.disruptions_allowed("shop", p)
            );
        }
        assert_eq!(scoped.workload(&web()), full.workload(&web()));
        let listed: Vec<String> = scoped.pods_in("shop").into_iter().map(|p| p.name).collect();
        assert_eq!(listed, web_pods);
    }

    #[test]
    fn pods_of_a_workload_outside_the_selector_are_not_counted_available() {
        let scoped = cluster().with_scope(
            SimScope::everything().pods(|l| l.get("app").map(String::as_str) == Some("nope")),
        );
        assert_eq!(
            scoped.workload(&web()),
            Some(WorkloadStatus {
                desired: 3,
                available: 0
            })
        );
    }

    #[test]
    fn the_assumed_healthy_cluster_conjures_pods_only_in_watched_namespaces() {
        let scoped = SimCluster::healthy(Duration::from_secs(10))
            .with_scope(SimScope::everything().namespaces(["shop"]));
        assert!(scoped.pod("shop", "anything").is_some());
        assert_eq!(scoped.pod("elsewhere", "anything"), None);
        let w = WorkloadRef::new(WorkloadKind::Unknown, "elsewhere", "anything");
        assert_eq!(scoped.workload(&w), None);
    }
}
