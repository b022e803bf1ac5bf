//! The compact cluster state behind [`KubeClusterView`](super::KubeClusterView): per namespace,
//! one small entry per object, with interned strings and label sets, and the two indexes a
//! workload's pods are found through (pods by controller, ReplicaSets by Deployment).
//!
//! Everything here is synchronous and answers from one consistent state: the watchers apply
//! their events under the write lock, queries read under the read lock.
//!
//! Size: about 830 lines before its tests, kept in one file: the compact store of every watched
//! kind and its two indexes, updated together on every watch event.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use teflon_core::selector::Selector;
use teflon_core::{
    PodSummary, QUARANTINE_LABEL, WorkloadKind, WorkloadRef, WorkloadStatus, WorkloadSummary,
};

use super::wire::{
    Controller, DaemonSetWire, DeploymentWire, PdbWire, PodWire, ReplicaSetWire, ScaledWire,
    StatefulSetWire,
};

/// An interned string: label keys and values, owner, node and object names, namespaces.
pub(crate) type Sym = Arc<str>;

/// An interned, sorted label set. The pods of one ReplicaSet carry the same labels, so they
/// share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Labels(Arc<[(Sym, Sym)]>);

impl std::borrow::Borrow<[(Sym, Sym)]> for Labels {
    fn borrow(&self) -> &[(Sym, Sym)] {
        &self.0
    }
}

impl Labels {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_ref())
    }

    pub(crate) fn to_map(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

/// Interned strings and label sets, dropped again once no entry uses them.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    strings: HashSet<Sym>,
    label_sets: HashSet<Labels>,
    /// Interned since the last sweep; a sweep runs when this outgrows what was left alive.
    added: usize,
    alive: usize,
}

impl Interner {
    pub(crate) fn sym(&mut self, s: &str) -> Sym {
        if let Some(x) = self.strings.get(s) {
            return Arc::clone(x);
        }
        let x: Sym = Arc::from(s);
        self.strings.insert(Arc::clone(&x));
        self.added += 1;
        x
    }

    pub(crate) fn labels(&mut self, labels: &BTreeMap<String, String>) -> Labels {
        let pairs: Vec<(Sym, Sym)> = labels
            .iter()
            .map(|(k, v)| (self.sym(k), self.sym(v)))
            .collect();
        if let Some(l) = self.label_sets.get(pairs.as_slice()) {
            return l.clone();
        }
        let l = Labels(Arc::from(pairs));
        self.label_sets.insert(l.clone());
        self.added += 1;
        l
    }

    /// Forget what only the interner still holds, when enough was added since the last time
    /// (amortised: each sweep costs no more than the interning that led to it).
    pub(crate) fn maybe_sweep(&mut self) {
        if self.added < self.alive.max(4096) {
            return;
        }
        self.label_sets.retain(|l| Arc::strong_count(&l.0) > 1);
        self.strings.retain(|s| Arc::strong_count(s) > 1);
        self.label_sets.shrink_to_fit();
        self.strings.shrink_to_fit();
        self.alive = self.label_sets.len() + self.strings.len();
        self.added = 0;
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.label_sets.len() + self.strings.len()
    }
}

/// The kind of a pod's controller, classified as workload resolution reads it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum OwnerKind {
    /// `apps/*` ReplicaSet: the workload is its Deployment, if it has one.
    ReplicaSet,
    /// `apps/*` StatefulSet.
    StatefulSet,
    /// `apps/*` DaemonSet.
    DaemonSet,
    /// `batch/*` Job.
    Job,
    /// Any other controller kind (CRDs, ReplicationController, a ReplicaSet of another group).
    Other(Sym),
}

/// A pod's controller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Owner {
    pub(crate) kind: OwnerKind,
    pub(crate) name: Sym,
}

impl Owner {
    fn of(c: &Controller, interner: &mut Interner) -> Owner {
        let kind = match (c.api_version.split('/').next(), c.kind.as_str()) {
            (Some("apps"), "ReplicaSet") => OwnerKind::ReplicaSet,
            (Some("apps"), "StatefulSet") => OwnerKind::StatefulSet,
            (Some("apps"), "DaemonSet") => OwnerKind::DaemonSet,
            (Some("batch"), "Job") => OwnerKind::Job,
            (_, other) => OwnerKind::Other(interner.sym(other)),
        };
        Owner {
            kind,
            name: interner.sym(&c.name),
        }
    }

    /// The owner a workload's pods have, for every kind but Deployment (whose pods are owned
    /// by its ReplicaSets) and Unknown (no controller has that kind).
    fn of_workload(w: &WorkloadRef) -> Option<(OwnerKind, &str)> {
        let kind = match &w.kind {
            WorkloadKind::ReplicaSet => OwnerKind::ReplicaSet,
            WorkloadKind::StatefulSet => OwnerKind::StatefulSet,
            WorkloadKind::DaemonSet => OwnerKind::DaemonSet,
            WorkloadKind::Job => OwnerKind::Job,
            WorkloadKind::Other(k) => OwnerKind::Other(Arc::from(k.as_str())),
            WorkloadKind::Deployment | WorkloadKind::Unknown => return None,
        };
        Some((kind, w.name.as_str()))
    }
}

/// `status.phase` of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    /// Accepted, not all containers running yet.
    Pending,
    /// Bound to a node, containers running.
    Running,
    /// All containers terminated successfully.
    Succeeded,
    /// All containers terminated, at least one failed.
    Failed,
    /// `Unknown`, or a phase this version does not know.
    Unknown,
}

impl PodPhase {
    fn parse(s: &str) -> PodPhase {
        match s {
            "Pending" => PodPhase::Pending,
            "Running" => PodPhase::Running,
            "Succeeded" => PodPhase::Succeeded,
            "Failed" => PodPhase::Failed,
            _ => PodPhase::Unknown,
        }
    }
}

/// One pod, about 100 bytes plus its UID.
#[derive(Debug, Clone)]
pub(crate) struct PodEntry {
    pub(crate) uid: Option<Box<str>>,
    pub(crate) labels: Labels,
    pub(crate) owner: Option<Owner>,
    pub(crate) node: Option<Sym>,
    pub(crate) phase: Option<PodPhase>,
    /// The `Ready` condition is `True`.
    pub(crate) ready: bool,
    /// `deletionTimestamp` is set.
    pub(crate) terminating: bool,
    /// Carries Teflon's quarantine label: cut from its workload.
    pub(crate) quarantined: bool,
    /// The list (of its watcher) it was last seen in.
    generation: u32,
}

impl PodEntry {
    pub(crate) fn build(w: &PodWire, interner: &mut Interner, generation: u32) -> PodEntry {
        PodEntry {
            uid: w.metadata.uid.as_deref().map(Box::from),
            labels: interner.labels(&w.labels),
            owner: w.controller.as_ref().map(|c| Owner::of(c, interner)),
            node: w.node.as_deref().map(|n| interner.sym(n)),
            phase: w.phase.as_deref().map(PodPhase::parse),
            ready: w.ready,
            terminating: w.terminating,
            quarantined: w.labels.contains_key(QUARANTINE_LABEL),
            generation,
        }
    }

    /// Ready, not terminating: what a Service would route to.
    pub(crate) fn available(&self) -> bool {
        self.ready && !self.terminating
    }
}

#[derive(Debug, Clone)]
struct ReplicaSetEntry {
    /// Its controller, when that is an `apps/*` Deployment.
    deployment: Option<Sym>,
    replicas: Option<i32>,
    generation: u32,
}

/// A Deployment, StatefulSet or DaemonSet.
#[derive(Debug, Clone)]
struct WorkloadEntry {
    labels: Labels,
    /// `spec.replicas` (DaemonSet: `status.desiredNumberScheduled`).
    replicas: Option<i32>,
    generation: u32,
}

#[derive(Debug, Clone)]
struct PdbEntry {
    /// Compiled once: a missing selector (policy/v1) selects no pod, an empty one all.
    selector: Selector,
    disruptions_allowed: i32,
    generation: u32,
}

/// The objects of one namespace.
#[derive(Debug, Default)]
pub(crate) struct Namespace {
    pods: HashMap<Sym, PodEntry>,
    /// Pod names by their controller.
    by_owner: HashMap<Owner, HashSet<Sym>>,
    replica_sets: HashMap<Sym, ReplicaSetEntry>,
    /// ReplicaSet names by their Deployment.
    rs_by_deployment: HashMap<Sym, HashSet<Sym>>,
    deployments: HashMap<Sym, WorkloadEntry>,
    stateful_sets: HashMap<Sym, WorkloadEntry>,
    daemon_sets: HashMap<Sym, WorkloadEntry>,
    pdbs: HashMap<Sym, PdbEntry>,
}

impl Namespace {
    fn is_empty(&self) -> bool {
        self.pods.is_empty()
            && self.replica_sets.is_empty()
            && self.deployments.is_empty()
            && self.stateful_sets.is_empty()
            && self.daemon_sets.is_empty()
            && self.pdbs.is_empty()
    }

    fn put_pod(&mut self, name: Sym, entry: PodEntry) {
        let new_owner = entry.owner.clone();
        let old = self.pods.insert(Arc::clone(&name), entry);
        let old_owner = old.and_then(|o| o.owner);
        if old_owner == new_owner {
            return;
        }
        if let Some(o) = old_owner {
            remove_from(&mut self.by_owner, &o, &name);
        }
        if let Some(o) = new_owner {
            self.by_owner.entry(o).or_default().insert(name);
        }
    }

    fn remove_pod(&mut self, name: &str) {
        if let Some((name, old)) = self.pods.remove_entry(name)
            && let Some(o) = old.owner
        {
            remove_from(&mut self.by_owner, &o, &name);
        }
    }

    fn put_replica_set(&mut self, name: Sym, entry: ReplicaSetEntry) {
        let new_dep = entry.deployment.clone();
        let old = self.replica_sets.insert(Arc::clone(&name), entry);
        let old_dep = old.and_then(|o| o.deployment);
        if old_dep == new_dep {
            return;
        }
        if let Some(d) = old_dep {
            remove_from(&mut self.rs_by_deployment, &d, &name);
        }
        if let Some(d) = new_dep {
            self.rs_by_deployment.entry(d).or_default().insert(name);
        }
    }

    fn remove_replica_set(&mut self, name: &str) {
        if let Some((name, old)) = self.replica_sets.remove_entry(name)
            && let Some(d) = old.deployment
        {
            remove_from(&mut self.rs_by_deployment, &d, &name);
        }
    }

    /// Drop what the list of generation `generation` did not bring back.
    fn sweep(&mut self, kind: Kind, generation: u32) {
        match kind {
            Kind::Pod => {
                let stale: Vec<Sym> = self
                    .pods
                    .iter()
                    .filter(|(_, e)| e.generation != generation)
                    .map(|(n, _)| Arc::clone(n))
                    .collect();
                for n in stale {
                    self.remove_pod(&n);
                }
            }
            Kind::ReplicaSet => {
                let stale: Vec<Sym> = self
                    .replica_sets
                    .iter()
                    .filter(|(_, e)| e.generation != generation)
                    .map(|(n, _)| Arc::clone(n))
                    .collect();
                for n in stale {
                    self.remove_replica_set(&n);
                }
            }
            Kind::Deployment => self.deployments.retain(|_, e| e.generation == generation),
            Kind::StatefulSet => self.stateful_sets.retain(|_, e| e.generation == generation),
            Kind::DaemonSet => self.daemon_sets.retain(|_, e| e.generation == generation),
            Kind::Pdb => self.pdbs.retain(|_, e| e.generation == generation),
        }
    }

    /// The top workload of a pod (`None`: standalone or quarantined).
    fn workload_of(&self, namespace: &str, pod: &PodEntry) -> Option<WorkloadRef> {
        if pod.quarantined {
            return None;
        }
        let owner = pod.owner.as_ref()?;
        let kind = match &owner.kind {
            OwnerKind::ReplicaSet => {
                // A ReplicaSet the view does not know is the workload itself: no Deployment
                // can be proven.
                return Some(
                    match self
                        .replica_sets
                        .get(&owner.name)
                        .and_then(|rs| rs.deployment.as_ref())
                    {
                        Some(d) => WorkloadRef::new(WorkloadKind::Deployment, namespace, &**d),
                        None => WorkloadRef::new(WorkloadKind::ReplicaSet, namespace, &*owner.name),
                    },
                );
            }
            OwnerKind::StatefulSet => WorkloadKind::StatefulSet,
            OwnerKind::DaemonSet => WorkloadKind::DaemonSet,
            OwnerKind::Job => WorkloadKind::Job,
            OwnerKind::Other(k) => WorkloadKind::Other(k.to_string()),
        };
        Some(WorkloadRef::new(kind, namespace, &*owner.name))
    }

    /// The pods that count for `workload`: resolved to it, not quarantined.
    fn workload_pods<'a>(
        &'a self,
        workload: &WorkloadRef,
    ) -> impl Iterator<Item = (&'a Sym, &'a PodEntry)> + 'a {
        let owners: Vec<Owner> = match &workload.kind {
            WorkloadKind::Deployment => self
                .rs_by_deployment
                .get(workload.name.as_str())
                .into_iter()
                .flatten()
                .map(|rs| Owner {
                    kind: OwnerKind::ReplicaSet,
                    name: Arc::clone(rs),
                })
                .collect(),
            // Pods of a ReplicaSet under a Deployment are the Deployment's.
            WorkloadKind::ReplicaSet
                if self
                    .replica_sets
                    .get(workload.name.as_str())
                    .is_some_and(|rs| rs.deployment.is_some()) =>
            {
                Vec::new()
            }
            _ => match Owner::of_workload(workload) {
                Some((kind, name)) => vec![Owner {
                    kind,
                    name: Arc::from(name),
                }],
                None => Vec::new(),
            },
        };
        owners.into_iter().flat_map(move |o| {
            self.by_owner
                .get(&o)
                .into_iter()
                .flatten()
                .filter_map(|n| self.pods.get_key_value(n))
                .filter(|(_, p)| !p.quarantined)
                .collect::<Vec<_>>()
        })
    }
}

fn remove_from<K: Eq + std::hash::Hash>(index: &mut HashMap<K, HashSet<Sym>>, key: &K, name: &str) {
    if let Some(set) = index.get_mut(key) {
        set.remove(name);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

/// The six kinds the view watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Pod,
    ReplicaSet,
    Deployment,
    StatefulSet,
    DaemonSet,
    Pdb,
}

/// A wire object the state can store.
pub(crate) trait Stored: kube::Resource<DynamicType = ()> {
    const KIND: Kind;
    fn put(&self, ns: &mut Namespace, name: Sym, interner: &mut Interner, generation: u32);
    fn remove(ns: &mut Namespace, name: &str);
}

impl Stored for PodWire {
    const KIND: Kind = Kind::Pod;
    fn put(&self, ns: &mut Namespace, name: Sym, interner: &mut Interner, generation: u32) {
        ns.put_pod(name, PodEntry::build(self, interner, generation));
    }
    fn remove(ns: &mut Namespace, name: &str) {
        ns.remove_pod(name);
    }
}

impl Stored for ReplicaSetWire {
    const KIND: Kind = Kind::ReplicaSet;
    fn put(&self, ns: &mut Namespace, name: Sym, interner: &mut Interner, generation: u32) {
        let deployment = self
            .controller
            .as_ref()
            .filter(|c| c.kind == "Deployment" && c.api_version.starts_with("apps/"))
            .map(|c| interner.sym(&c.name));
        ns.put_replica_set(
            name,
            ReplicaSetEntry {
                deployment,
                replicas: self.replicas,
                generation,
            },
        );
    }
    fn remove(ns: &mut Namespace, name: &str) {
        ns.remove_replica_set(name);
    }
}

fn workload_entry(w: &ScaledWire, interner: &mut Interner, generation: u32) -> WorkloadEntry {
    WorkloadEntry {
        labels: interner.labels(&w.labels),
        replicas: w.replicas,
        generation,
    }
}

impl Stored for DeploymentWire {
    const KIND: Kind = Kind::Deployment;
    fn put(&self, ns: &mut Namespace, name: Sym, interner: &mut Interner, generation: u32) {
        ns.deployments
            .insert(name, workload_entry(&self.0, interner, generation));
    }
    fn remove(ns: &mut Namespace, name: &str) {
        ns.deployments.remove(name);
    }
}

impl Stored for StatefulSetWire {
    const KIND: Kind = Kind::StatefulSet;
    fn put(&self, ns: &mut Namespace, name: Sym, interner: &mut Interner, generation: u32) {
        ns.stateful_sets
            .insert(name, workload_entry(&self.0, interner, generation));
    }
    fn remove(ns: &mut Namespace, name: &str) {
        ns.stateful_sets.remove(name);
    }
}

impl Stored for DaemonSetWire {
    const KIND: Kind = Kind::DaemonSet;
    fn put(&self, ns: &mut Namespace, name: Sym, interner: &mut Interner, generation: u32) {
        ns.daemon_sets.insert(
            name,
            WorkloadEntry {
                labels: interner.labels(&self.labels),
                replicas: Some(self.desired_scheduled),
                generation,
            },
        );
    }
    fn remove(ns: &mut Namespace, name: &str) {
        ns.daemon_sets.remove(name);
    }
}

impl Stored for PdbWire {
    const KIND: Kind = Kind::Pdb;
    fn put(&self, ns: &mut Namespace, name: Sym, _: &mut Interner, generation: u32) {
        ns.pdbs.insert(
            name,
            PdbEntry {
                selector: Selector::from_api(self.selector.as_ref()),
                disruptions_allowed: self.disruptions_allowed,
                generation,
            },
        );
    }
    fn remove(ns: &mut Namespace, name: &str) {
        ns.pdbs.remove(name);
    }
}

fn to_u32(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A pod as the view holds it, for recreation tracking and callers outside the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: Option<String>,
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// `status.phase`.
    pub phase: Option<PodPhase>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// `deletionTimestamp` is set.
    pub terminating: bool,
    /// The top controller (`None` for standalone and quarantined pods).
    pub workload: Option<WorkloadRef>,
}

impl PodState {
    /// Ready and not terminating: what a Service would route to.
    pub fn is_available(&self) -> bool {
        self.ready && !self.terminating
    }
}

/// Every object the view holds.
#[derive(Debug, Default)]
pub(crate) struct State {
    namespaces: HashMap<Sym, Namespace>,
    interner: Interner,
}

impl State {
    /// Store (or replace) an object seen in the list or watch of generation `generation`.
    /// Objects without a name or namespace (the API server never sends them) are skipped.
    pub(crate) fn put<W: Stored>(&mut self, object: &W, generation: u32) {
        let meta = object.meta();
        let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
            tracing::debug!(kind = ?W::KIND, "object without name or namespace skipped");
            return;
        };
        // Pod names are unique: interning them would only cost a set entry each. Other names
        // are what pods' owner references and ReplicaSets' Deployment name point at.
        let name = match W::KIND {
            Kind::Pod => Sym::from(name),
            _ => self.interner.sym(name),
        };
        let ns_key = self.interner.sym(ns);
        let namespace = self.namespaces.entry(ns_key).or_default();
        object.put(namespace, name, &mut self.interner, generation);
        self.interner.maybe_sweep();
    }

    /// Forget a deleted object.
    pub(crate) fn remove<W: Stored>(&mut self, object: &W) {
        let meta = object.meta();
        let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
            return;
        };
        if let Some(namespace) = self.namespaces.get_mut(ns) {
            W::remove(namespace, name);
            if namespace.is_empty() {
                self.namespaces.remove(ns);
            }
        }
    }

    /// After a (re)list: drop the objects of `kind` in `namespace` (or everywhere) that the
    /// list of generation `generation` did not bring back.
    pub(crate) fn sweep(&mut self, kind: Kind, namespace: Option<&str>, generation: u32) {
        match namespace {
            Some(ns) => {
                if let Some(n) = self.namespaces.get_mut(ns) {
                    n.sweep(kind, generation);
                }
            }
            None => {
                for n in self.namespaces.values_mut() {
                    n.sweep(kind, generation);
                }
            }
        }
        self.namespaces.retain(|_, n| !n.is_empty());
        self.interner.maybe_sweep();
    }

    fn pod_entry(&self, namespace: &str, name: &str) -> Option<(&Namespace, &PodEntry)> {
        let ns = self.namespaces.get(namespace)?;
        Some((ns, ns.pods.get(name)?))
    }

    /// `ClusterView::pod`.
    pub(crate) fn pod(&self, namespace: &str, name: &str) -> Option<teflon_core::PodInfo> {
        let (ns, p) = self.pod_entry(namespace, name)?;
        Some(self.info(ns, namespace, p))
    }

    /// The info of a pod entry (in the view or not), resolved against the namespace's
    /// ReplicaSets.
    pub(crate) fn info_of(&self, namespace: &str, p: &PodEntry) -> teflon_core::PodInfo {
        match self.namespaces.get(namespace) {
            Some(ns) => self.info(ns, namespace, p),
            None => self.info(&Namespace::default(), namespace, p),
        }
    }

    fn info(&self, ns: &Namespace, namespace: &str, p: &PodEntry) -> teflon_core::PodInfo {
        teflon_core::PodInfo {
            uid: p.uid.as_deref().map(str::to_owned),
            ready: p.available(),
            workload: ns.workload_of(namespace, p),
        }
    }

    fn state_of(ns: &Namespace, namespace: &str, name: &str, p: &PodEntry) -> PodState {
        PodState {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: p.uid.as_deref().map(str::to_owned),
            node: p.node.as_deref().map(str::to_owned),
            phase: p.phase,
            ready: p.ready,
            terminating: p.terminating,
            workload: ns.workload_of(namespace, p),
        }
    }

    pub(crate) fn pod_state(&self, namespace: &str, name: &str) -> Option<PodState> {
        let (ns, p) = self.pod_entry(namespace, name)?;
        Some(Self::state_of(ns, namespace, name, p))
    }

    pub(crate) fn all_pods(&self) -> Vec<PodState> {
        self.namespaces
            .iter()
            .flat_map(|(nsname, ns)| {
                ns.pods
                    .iter()
                    .map(move |(name, p)| Self::state_of(ns, nsname, name, p))
            })
            .collect()
    }

    pub(crate) fn workload_pods(&self, workload: &WorkloadRef) -> Vec<PodState> {
        let Some(ns) = self.namespaces.get(workload.namespace.as_str()) else {
            return Vec::new();
        };
        ns.workload_pods(workload)
            .map(|(name, p)| Self::state_of(ns, &workload.namespace, name, p))
            .collect()
    }

    /// `ClusterView::workload`.
    pub(crate) fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
        let ns = self.namespaces.get(workload.namespace.as_str());
        let name = workload.name.as_str();
        let desired = match &workload.kind {
            WorkloadKind::Deployment => Some(ns?.deployments.get(name)?.replicas.unwrap_or(1)),
            WorkloadKind::StatefulSet => Some(ns?.stateful_sets.get(name)?.replicas.unwrap_or(1)),
            WorkloadKind::ReplicaSet => Some(ns?.replica_sets.get(name)?.replicas.unwrap_or(1)),
            WorkloadKind::DaemonSet => Some(ns?.daemon_sets.get(name)?.replicas.unwrap_or(0)),
            // Not watched: the pods that exist are all we know of.
            WorkloadKind::Job | WorkloadKind::Other(_) | WorkloadKind::Unknown => None,
        };
        let (mut pods, mut available, mut live) = (0usize, 0usize, 0usize);
        if let Some(ns) = ns {
            for (_, p) in ns.workload_pods(workload) {
                pods += 1;
                available += usize::from(p.available());
                live += usize::from(!p.terminating);
            }
        }
        let available = count_u32(available);
        match desired {
            Some(desired) => Some(WorkloadStatus {
                desired: to_u32(desired),
                available,
            }),
            None if pods == 0 => None,
            None => Some(WorkloadStatus {
                desired: count_u32(live),
                available,
            }),
        }
    }

    /// `ClusterView::disruptions_allowed`.
    pub(crate) fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
        let (ns, p) = self.pod_entry(namespace, pod)?;
        Self::disruptions_in(ns, p)
    }

    /// The same for a pod entry the view may not hold (a pod fetched by GET).
    pub(crate) fn disruptions_of(&self, namespace: &str, p: &PodEntry) -> Option<i32> {
        Self::disruptions_in(self.namespaces.get(namespace)?, p)
    }

    /// Whether the view holds this pod (by name).
    pub(crate) fn has_pod(&self, namespace: &str, name: &str) -> bool {
        self.pod_entry(namespace, name).is_some()
    }

    fn disruptions_in(ns: &Namespace, p: &PodEntry) -> Option<i32> {
        ns.pdbs
            .values()
            .filter(|pdb| pdb.selector.matches_by(|k| p.labels.get(k)))
            .map(|pdb| pdb.disruptions_allowed)
            .min()
    }

    /// `ClusterView::pods_in`.
    pub(crate) fn pods_in(&self, namespace: &str) -> Vec<PodSummary> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        ns.pods
            .iter()
            .map(|(name, p)| PodSummary {
                name: name.to_string(),
                uid: p.uid.as_deref().map(str::to_owned),
                labels: p.labels.to_map(),
                ready: p.available(),
                workload: ns.workload_of(namespace, p),
            })
            .collect()
    }

    /// `ClusterView::workloads_in`.
    pub(crate) fn workloads_in(&self, namespace: &str) -> Vec<WorkloadSummary> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Vec::new();
        };
        let kinds = [
            (WorkloadKind::Deployment, &ns.deployments),
            (WorkloadKind::StatefulSet, &ns.stateful_sets),
            (WorkloadKind::DaemonSet, &ns.daemon_sets),
        ];
        kinds
            .into_iter()
            .flat_map(|(kind, objects)| {
                objects.iter().filter_map(move |(name, o)| {
                    let w = WorkloadRef::new(kind.clone(), namespace, &**name);
                    let status = self.workload(&w)?;
                    Some(WorkloadSummary {
                        workload: w,
                        labels: o.labels.to_map(),
                        status,
                    })
                })
            })
            .collect()
    }

    /// Objects held, by kind (pods, ReplicaSets, Deployments, StatefulSets, DaemonSets, PDBs).
    pub(crate) fn counts(&self) -> [usize; 6] {
        let mut c = [0; 6];
        for ns in self.namespaces.values() {
            c[0] += ns.pods.len();
            c[1] += ns.replica_sets.len();
            c[2] += ns.deployments.len();
            c[3] += ns.stateful_sets.len();
            c[4] += ns.daemon_sets.len();
            c[5] += ns.pdbs.len();
        }
        c
    }

    #[cfg(test)]
    pub(crate) fn interned(&self) -> usize {
        self.interner.len()
    }
}
