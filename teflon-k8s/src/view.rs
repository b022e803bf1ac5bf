//! The read port over kube-runtime reflector stores: pods, their owners, availability, PDBs.
//!
//! The logic reads plain k8s-openapi objects out of [`Store`]s and is synchronous; the same
//! type is filled by live watchers ([`KubeClusterView::start`]) or, in tests, from objects
//! ([`KubeClusterView::from_objects`]).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use teflon_core::{
    ClusterView, PodInfo, PodSummary, WorkloadKind, WorkloadRef, WorkloadStatus, WorkloadSummary,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::selector::selector_matches;

/// The label a quarantined pod carries (value: the policy). Such a pod is no longer part of
/// its workload: it is neither counted as available nor reported with a workload.
pub const QUARANTINED_LABEL: &str = "teflon.io/quarantined";

/// What the live view watches.
#[derive(Debug, Clone, Default)]
pub struct ViewConfig {
    /// Watch only these namespaces (one watch per namespace and kind); empty = all namespaces.
    pub namespaces: Vec<String>,
}

/// The stores of one kind: one for all namespaces, or one per watched namespace.
struct Scoped<K: Resource + 'static>
where
    K::DynamicType: Eq + std::hash::Hash,
{
    stores: Vec<(Option<String>, Store<K>)>,
}

impl<K> Scoped<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn store_for(&self, namespace: &str) -> Option<&Store<K>> {
        self.stores
            .iter()
            .find(|(ns, _)| ns.as_deref().is_none_or(|n| n == namespace))
            .map(|(_, s)| s)
    }

    fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.store_for(namespace)?
            .get(&ObjectRef::new(name).within(namespace))
    }

    fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        match self.store_for(namespace) {
            Some(s) => s.state_filter(|o| o.meta().namespace.as_deref() == Some(namespace)),
            None => Vec::new(),
        }
    }

    fn all(&self) -> Vec<Arc<K>> {
        self.stores.iter().flat_map(|(_, s)| s.state()).collect()
    }
}

/// Aborts the watcher tasks when the last view handle is dropped.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

struct Inner {
    pods: Scoped<Pod>,
    replica_sets: Scoped<ReplicaSet>,
    deployments: Scoped<Deployment>,
    stateful_sets: Scoped<StatefulSet>,
    daemon_sets: Scoped<DaemonSet>,
    pdbs: Scoped<PodDisruptionBudget>,
    /// Stores whose initial list is done.
    ready: Arc<AtomicUsize>,
    /// Stores in all.
    total: usize,
    changes: watch::Receiver<u64>,
    _tasks: Tasks,
}

/// A [`ClusterView`] backed by reflector stores. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct KubeClusterView {
    inner: Arc<Inner>,
}

impl fmt::Debug for KubeClusterView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeClusterView")
            .field("synced", &self.is_synced())
            .field("stores", &self.inner.total)
            .finish_non_exhaustive()
    }
}

/// Plain objects to fill a view with, no client needed (tests, snapshots).
#[derive(Debug, Clone, Default)]
pub struct ClusterObjects {
    /// Pods.
    pub pods: Vec<Pod>,
    /// ReplicaSets.
    pub replica_sets: Vec<ReplicaSet>,
    /// Deployments.
    pub deployments: Vec<Deployment>,
    /// StatefulSets.
    pub stateful_sets: Vec<StatefulSet>,
    /// DaemonSets.
    pub daemon_sets: Vec<DaemonSet>,
    /// PodDisruptionBudgets.
    pub pdbs: Vec<PodDisruptionBudget>,
}

fn filled<K>(objects: Vec<K>) -> Scoped<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let mut writer: Writer<K> = Writer::default();
    writer.apply_watcher_event(&watcher::Event::Init);
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(o));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    Scoped {
        stores: vec![(None, writer.as_reader())],
    }
}

/// Starts one reflector per namespace (or one for all) and returns the stores.
fn watch_kind<K>(
    client: &Client,
    config: &ViewConfig,
    ready: &Arc<AtomicUsize>,
    changes: &Arc<watch::Sender<u64>>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Scoped<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let mut stores = Vec::with_capacity(scopes.len());
    for scope in scopes {
        let api: Api<K> = match &scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let writer: Writer<K> = Writer::default();
        let reader = writer.as_reader();
        // Bookmarks are on by default; the watcher relists by itself after a 410 Gone.
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        let kind = K::kind(&());
        let on_change = Arc::clone(changes);
        let ns = scope.clone();
        tasks.push(tokio::spawn(async move {
            stream
                .for_each(|event| {
                    match event {
                        Ok(_) => on_change.send_modify(|n| *n = n.wrapping_add(1)),
                        Err(e) => tracing::warn!(%kind, namespace = ?ns, error = %e, "watch failed; retrying with backoff"),
                    }
                    std::future::ready(())
                })
                .await;
        }));
        let ready = Arc::clone(ready);
        let waiting = reader.clone();
        let on_ready = Arc::clone(changes);
        tasks.push(tokio::spawn(async move {
            if waiting.wait_until_ready().await.is_ok() {
                ready.fetch_add(1, Ordering::SeqCst);
                on_ready.send_modify(|n| *n = n.wrapping_add(1));
            }
        }));
        stores.push((scope, reader));
    }
    Scoped { stores }
}

impl KubeClusterView {
    /// Start watching Pods, ReplicaSets, Deployments, StatefulSets, DaemonSets and
    /// PodDisruptionBudgets (in `config.namespaces`, or everywhere). Must be called inside a
    /// tokio runtime; the watches run until the last clone of the view is dropped.
    /// The view answers at once, from whatever the stores hold; see [`Self::wait_synced`].
    pub fn start(client: Client, config: &ViewConfig) -> Self {
        let ready = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let mut tasks = Vec::new();
        let pods = watch_kind::<Pod>(&client, config, &ready, &tx, &mut tasks);
        let replica_sets = watch_kind::<ReplicaSet>(&client, config, &ready, &tx, &mut tasks);
        let deployments = watch_kind::<Deployment>(&client, config, &ready, &tx, &mut tasks);
        let stateful_sets = watch_kind::<StatefulSet>(&client, config, &ready, &tx, &mut tasks);
        let daemon_sets = watch_kind::<DaemonSet>(&client, config, &ready, &tx, &mut tasks);
        let pdbs = watch_kind::<PodDisruptionBudget>(&client, config, &ready, &tx, &mut tasks);
        let total = pods.stores.len()
            + replica_sets.stores.len()
            + deployments.stores.len()
            + stateful_sets.stores.len()
            + daemon_sets.stores.len()
            + pdbs.stores.len();
        KubeClusterView {
            inner: Arc::new(Inner {
                pods,
                replica_sets,
                deployments,
                stateful_sets,
                daemon_sets,
                pdbs,
                ready,
                total,
                changes: rx,
                _tasks: Tasks(tasks),
            }),
        }
    }

    /// A synced view of fixed objects: no client, no runtime (unit tests, snapshots).
    pub fn from_objects(objects: ClusterObjects) -> Self {
        let (_tx, rx) = watch::channel(0u64);
        KubeClusterView {
            inner: Arc::new(Inner {
                pods: filled(objects.pods),
                replica_sets: filled(objects.replica_sets),
                deployments: filled(objects.deployments),
                stateful_sets: filled(objects.stateful_sets),
                daemon_sets: filled(objects.daemon_sets),
                pdbs: filled(objects.pdbs),
                ready: Arc::new(AtomicUsize::new(6)),
                total: 6,
                changes: rx,
                _tasks: Tasks(Vec::new()),
            }),
        }
    }

    /// Resolves once every store has finished its initial list.
    pub async fn wait_synced(&self) {
        let mut changes = self.subscribe();
        while !self.is_synced() {
            if changes.changed().await.is_err() {
                // The watch tasks are gone (runtime shutting down): nothing more will come.
                return;
            }
        }
    }

    /// A receiver whose value changes whenever any watched object changes (and when a store
    /// finishes its initial list): wake-ups for deferral re-checks and recreation tracking.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.clone()
    }

    /// The pod object itself, if the store has it.
    pub fn pod_object(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.inner.pods.get(namespace, name)
    }

    /// Every pod the view holds, with its resolved workload (`None` for standalone and
    /// quarantined pods).
    pub fn pods_with_workloads(&self) -> Vec<(Arc<Pod>, Option<WorkloadRef>)> {
        self.inner
            .pods
            .all()
            .into_iter()
            .map(|p| {
                let w = self.workload_of(&p);
                (p, w)
            })
            .collect()
    }

    /// The pods that count for `workload`: resolved to it, not quarantined.
    pub fn workload_pods(&self, workload: &WorkloadRef) -> Vec<Arc<Pod>> {
        self.inner
            .pods
            .in_namespace(&workload.namespace)
            .into_iter()
            .filter(|p| self.workload_of(p).as_ref() == Some(workload))
            .collect()
    }

    fn workload_of(&self, pod: &Pod) -> Option<WorkloadRef> {
        if is_quarantined(pod) {
            return None;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        resolve_workload(pod, |rs| self.inner.replica_sets.get(ns, rs))
    }
}

/// The controller owner reference of an object (`controller: true`), if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// The top workload of a pod: Pod → ReplicaSet → Deployment, or the StatefulSet, DaemonSet,
/// Job or other controller that owns it directly; `None` for a standalone pod.
///
/// `replica_set` looks a ReplicaSet up by name in the pod's namespace. A ReplicaSet the
/// caller does not know is reported as the workload itself (no Deployment can be proven).
pub fn resolve_workload(
    pod: &Pod,
    replica_set: impl Fn(&str) -> Option<Arc<ReplicaSet>>,
) -> Option<WorkloadRef> {
    let owner = controller_of(&pod.metadata)?;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let kind = match (owner.api_version.split('/').next(), owner.kind.as_str()) {
        (Some("apps"), "ReplicaSet") => {
            let parent = replica_set(&owner.name).and_then(|rs| {
                controller_of(&rs.metadata)
                    .filter(|o| o.kind == "Deployment" && o.api_version.starts_with("apps/"))
                    .map(|o| o.name.clone())
            });
            return Some(match parent {
                Some(dep) => WorkloadRef::new(WorkloadKind::Deployment, ns, dep),
                None => WorkloadRef::new(WorkloadKind::ReplicaSet, ns, owner.name.clone()),
            });
        }
        (Some("apps"), "StatefulSet") => WorkloadKind::StatefulSet,
        (Some("apps"), "DaemonSet") => WorkloadKind::DaemonSet,
        (Some("batch"), "Job") => WorkloadKind::Job,
        (_, other) => WorkloadKind::Other(other.to_owned()),
    };
    Some(WorkloadRef::new(kind, ns, owner.name.clone()))
}

/// The pod's `Ready` condition is `True`.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod carries Teflon's quarantine label.
pub fn is_quarantined(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(QUARANTINED_LABEL))
}

/// The pod is being deleted (`deletionTimestamp` set): endpoints drop it, so it is not available.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Ready, not terminating: what a Service would route to.
pub fn is_available(pod: &Pod) -> bool {
    is_pod_ready(pod) && !is_terminating(pod)
}

fn to_u32(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl ClusterView for KubeClusterView {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        let pod = self.inner.pods.get(namespace, name)?;
        Some(PodInfo {
            uid: pod.metadata.uid.clone(),
            ready: is_available(&pod),
            workload: self.workload_of(&pod),
        })
    }

    fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
        let (ns, name) = (workload.namespace.as_str(), workload.name.as_str());
        let i = &self.inner;
        let desired = match &workload.kind {
            WorkloadKind::Deployment => Some(to_u32(
                i.deployments.get(ns, name)?.spec.replicas.unwrap_or(1),
            )),
            WorkloadKind::StatefulSet => Some(to_u32(
                i.stateful_sets.get(ns, name)?.spec.replicas.unwrap_or(1),
            )),
            WorkloadKind::ReplicaSet => Some(to_u32(
                i.replica_sets.get(ns, name)?.spec.replicas.unwrap_or(1),
            )),
            WorkloadKind::DaemonSet => {
                let ds = i.daemon_sets.get(ns, name)?;
                Some(to_u32(
                    ds.status.as_ref().map_or(0, |s| s.desired_number_scheduled),
                ))
            }
            // Not watched: the pods that exist are all we know of.
            WorkloadKind::Job | WorkloadKind::Other(_) | WorkloadKind::Unknown => None,
        };
        let pods = self.workload_pods(workload);
        let available = count_u32(pods.iter().filter(|p| is_available(p)).count());
        match desired {
            Some(desired) => Some(WorkloadStatus { desired, available }),
            None if pods.is_empty() => None,
            None => Some(WorkloadStatus {
                desired: count_u32(pods.iter().filter(|p| !is_terminating(p)).count()),
                available,
            }),
        }
    }

    fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
        let pod = self.inner.pods.get(namespace, pod)?;
        self.inner
            .pdbs
            .in_namespace(namespace)
            .iter()
            .filter(|pdb| {
                // policy/v1: a missing selector selects no pod, an empty one selects all.
                pdb.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|sel| selector_matches(sel, pod.metadata.labels.as_ref()))
            })
            .map(|pdb| {
                pdb.status
                    .as_ref()
                    .map_or(0, |s| s.disruptions_allowed.unwrap_or(0))
            })
            .min()
    }

    fn is_synced(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst) >= self.inner.total
    }

    fn pods_in(&self, namespace: &str) -> Vec<PodSummary> {
        self.inner
            .pods
            .in_namespace(namespace)
            .into_iter()
            .map(|p| PodSummary {
                name: p.metadata.name.clone().unwrap_or_default(),
                uid: p.metadata.uid.clone(),
                labels: p.metadata.labels.clone().unwrap_or_default(),
                ready: is_available(&p),
                workload: self.workload_of(&p),
            })
            .collect()
    }

    fn workloads_in(&self, namespace: &str) -> Vec<WorkloadSummary> {
        fn summaries<K: Resource>(
            view: &KubeClusterView,
            kind: WorkloadKind,
            objects: Vec<Arc<K>>,
        ) -> Vec<WorkloadSummary> {
            objects
                .into_iter()
                .filter_map(|o| {
                    let meta = o.meta();
                    let w = WorkloadRef::new(
                        kind.clone(),
                        meta.namespace.clone().unwrap_or_default(),
                        meta.name.clone()?,
                    );
                    let status = view.workload(&w)?;
                    Some(WorkloadSummary {
                        workload: w,
                        labels: meta.labels.clone().unwrap_or_default(),
                        status,
                    })
                })
                .collect()
        }
        let i = &self.inner;
        let mut out = summaries(
            self,
            WorkloadKind::Deployment,
            i.deployments.in_namespace(namespace),
        );
        out.extend(summaries(
            self,
            WorkloadKind::StatefulSet,
            i.stateful_sets.in_namespace(namespace),
        ));
        out.extend(summaries(
            self,
            WorkloadKind::DaemonSet,
            i.daemon_sets.in_namespace(namespace),
        ));
        out
    }
}

#[cfg(test)]
pub(crate) mod tests;
