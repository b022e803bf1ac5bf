//! The read port over the cluster: pods, their owners, availability, PDBs.
//!
//! [`KubeClusterView`] watches Pods, ReplicaSets, Deployments, StatefulSets, DaemonSets and
//! PodDisruptionBudgets and keeps, per object, only what decisions, guards and metrics read
//! (a pod: UID, labels, controller, Ready, phase, deletion, node), a few hundred bytes instead
//! of the tens of kilobytes of a full object. The fields are picked while decoding (the `wire`
//! module): the rest of an object is skipped by the JSON decoder and never held. The initial
//! list is streamed (`sendInitialEvents`, one object at a time) where the API server supports
//! it and paginated otherwise, so neither side ever holds the whole list.
//!
//! Queries are synchronous and read one consistent state (the `state` module); the same type is
//! filled by live watchers ([`KubeClusterView::start`]) or, in tests and snapshots, from objects
//! ([`KubeClusterView::from_objects`]).
//!
//! Size: about 540 lines before its tests, kept in one file: the watchers and the ClusterView
//! answers over one state (view/state.rs holds the data, view/wire.rs the decoding).

use std::fmt;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::Api;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use teflon_core::{
    ClusterView, PodInfo, PodSummary, QUARANTINE_LABEL, WorkloadRef, WorkloadStatus,
    WorkloadSummary,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod state;
mod wire;

use state::{Interner, PodEntry, State, Stored};
pub use state::{PodPhase, PodState};
use wire::{DaemonSetWire, DeploymentWire, PdbWire, PodWire, ReplicaSetWire, StatefulSetWire};

/// How a watcher gets its initial state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialList {
    /// A streaming list (a watch with `sendInitialEvents=true`: objects arrive one by one, the
    /// API server serves them from its watch cache). A server without the `WatchList` feature
    /// (off by default in Kubernetes 1.33 and before 1.32) rejects the request with 422
    /// Invalid; the watcher then falls back to paginated lists for good.
    #[default]
    Streaming,
    /// Paginated lists only (`limit` + `continue`), then a watch.
    Paginated,
}

/// What the live view watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewConfig {
    /// Watch only these namespaces (one watch per namespace and kind); empty = all namespaces.
    pub namespaces: Vec<String>,
    /// Watch only the pods this label selector (string form, `app=web,tier in (a,b)`) selects,
    /// on the API server's side. Owners and PodDisruptionBudgets are watched whole: a budget
    /// that guards a selected pod must never be missed. Select whole workloads (labels of the
    /// pod templates): a workload's pods outside the selector are not counted as available.
    pub pod_selector: Option<String>,
    /// Streaming (falling back to paginated) or paginated initial lists.
    pub initial_list: InitialList,
    /// Objects per page of a paginated list. kube-client holds a page's body twice while it
    /// decodes it: 50 realistic pods are about 0.75 MiB in flight, 500 (client-go's default)
    /// 7.5 MiB, which the allocator then keeps resident (at 20 000 pods: 36–38 MiB RSS with 50,
    /// 43–45 with 100, BENCHMARKS.md).
    pub page_size: u32,
}

impl Default for ViewConfig {
    fn default() -> Self {
        ViewConfig {
            namespaces: Vec::new(),
            pod_selector: None,
            initial_list: InitialList::default(),
            page_size: 50,
        }
    }
}

/// The state and its bookkeeping, shared by the watcher tasks and every view handle.
#[derive(Debug)]
struct Shared {
    state: RwLock<State>,
    /// One initial list at a time: a page is held twice while kube-client decodes it, and six
    /// watchers listing at once would add up (13 MiB more at 20 000 pods, BENCHMARKS.md).
    listing: Arc<tokio::sync::Semaphore>,
    /// Watchers whose initial list is done.
    ready: AtomicUsize,
    /// Watchers in all.
    total: usize,
    changes: watch::Sender<u64>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        // Writers apply one event at a time; no invariant spans a panic.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, f: impl FnOnce(&mut State)) {
        {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            f(&mut state);
        }
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
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
    shared: Arc<Shared>,
    changes: watch::Receiver<u64>,
    _tasks: Tasks,
}

/// A [`ClusterView`] over compact watcher state. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct KubeClusterView {
    inner: Arc<Inner>,
}

impl fmt::Debug for KubeClusterView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeClusterView")
            .field("synced", &self.is_synced())
            .field("watchers", &self.inner.shared.total)
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

/// Objects held by the view, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ViewCounts {
    /// Pods.
    pub pods: usize,
    /// ReplicaSets.
    pub replica_sets: usize,
    /// Deployments.
    pub deployments: usize,
    /// StatefulSets.
    pub stateful_sets: usize,
    /// DaemonSets.
    pub daemon_sets: usize,
    /// PodDisruptionBudgets.
    pub pdbs: usize,
}

/// The 422 (`Invalid` ListOptions) or 400 a server without streaming lists answers to a watch
/// with `sendInitialEvents`.
fn is_streaming_unsupported(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchStartFailed(kube::Error::Api(s)) if s.code == 422 || s.code == 400)
}

/// Run one watcher into the shared state until the task is aborted.
async fn watch_into<W>(
    api: Api<W>,
    config: watcher::Config,
    initial: InitialList,
    namespace: Option<String>,
    shared: Arc<Shared>,
) where
    W: Stored + Clone + DeserializeOwned + fmt::Debug + Send + Sync + 'static,
{
    let kind = W::kind(&());
    let mut streaming = initial == InitialList::Streaming;
    let mut generation = 0u32;
    let mut synced = false;
    // While listing (until InitDone), this watcher holds the one listing turn.
    let mut listing = true;
    let mut turn = None;
    let mut backoff = watcher::DefaultBackoff::default();
    loop {
        let config = if streaming {
            config.clone().streaming_lists()
        } else {
            config.clone()
        };
        let mut events = pin!(watcher(api.clone(), config));
        // The watcher recovers by itself (relisting after a 410 Gone); it only ends here when
        // this loop restarts it without streaming lists.
        loop {
            if listing && turn.is_none() {
                turn = Arc::clone(&shared.listing).acquire_owned().await.ok();
            }
            let Some(event) = events.next().await else {
                break;
            };
            match event {
                Ok(event) => {
                    backoff.reset();
                    match event {
                        watcher::Event::Init => {
                            generation = generation.wrapping_add(1);
                            listing = true;
                        }
                        watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                            shared.write(|s| s.put(&o, generation));
                        }
                        watcher::Event::Delete(o) => shared.write(|s| s.remove(&o)),
                        watcher::Event::InitDone => {
                            shared.write(|s| s.sweep(W::KIND, namespace.as_deref(), generation));
                            listing = false;
                            turn = None;
                            if !synced {
                                synced = true;
                                shared.ready.fetch_add(1, Ordering::SeqCst);
                                shared.changes.send_modify(|n| *n = n.wrapping_add(1));
                                tracing::debug!(%kind, namespace = ?namespace, "initial list done");
                            }
                        }
                    }
                }
                Err(e) if streaming && is_streaming_unsupported(&e) => {
                    tracing::info!(%kind, namespace = ?namespace, error = %e, "the API server does not support streaming lists (WatchList feature gate off); using paginated lists");
                    streaming = false;
                    break;
                }
                Err(e) => {
                    tracing::warn!(%kind, namespace = ?namespace, error = %e, "watch failed; retrying with backoff");
                    // Others list while this one waits.
                    turn = None;
                    if let Some(delay) = backoff.next() {
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
    }
}

fn spawn_kind<W>(
    client: &Client,
    config: &ViewConfig,
    scopes: &[Option<String>],
    labels: Option<&str>,
    shared: &Arc<Shared>,
    tasks: &mut Vec<JoinHandle<()>>,
) where
    W: Stored
        + Resource<Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + fmt::Debug
        + Send
        + Sync
        + 'static,
{
    for scope in scopes {
        let api: Api<W> = match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        // Bookmarks are on by default.
        let mut wc = watcher::Config::default().page_size(config.page_size);
        if let Some(l) = labels {
            wc = wc.labels(l);
        }
        tasks.push(tokio::spawn(watch_into(
            api,
            wc,
            config.initial_list,
            scope.clone(),
            Arc::clone(shared),
        )));
    }
}

/// Decode full objects into their wire form, reporting (and skipping) any that do not decode.
fn wires<Full, Wire>(objects: &[Full]) -> Vec<Wire>
where
    Full: serde::Serialize + Resource,
    Wire: DeserializeOwned,
{
    objects
        .iter()
        .filter_map(|o| match wire::from_full(o) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(name = ?o.meta().name, error = %e, "object skipped: it does not decode as its kind");
                None
            }
        })
        .collect()
}

impl KubeClusterView {
    /// Start watching Pods, ReplicaSets, Deployments, StatefulSets, DaemonSets and
    /// PodDisruptionBudgets (in `config.namespaces`, or everywhere). Must be called inside a
    /// tokio runtime; the watches run until the last clone of the view is dropped.
    /// The view answers at once, from whatever it holds; see [`Self::wait_synced`].
    pub fn start(client: Client, config: &ViewConfig) -> Self {
        let mut namespaces = config.namespaces.clone();
        namespaces.sort();
        namespaces.dedup();
        let scopes: Vec<Option<String>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.into_iter().map(Some).collect()
        };
        let (tx, rx) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            state: RwLock::new(State::default()),
            listing: Arc::new(tokio::sync::Semaphore::new(1)),
            ready: AtomicUsize::new(0),
            total: 6 * scopes.len(),
            changes: tx,
        });
        let mut tasks = Vec::new();
        let selector = config
            .pod_selector
            .as_deref()
            .filter(|s| !s.trim().is_empty());
        spawn_kind::<PodWire>(&client, config, &scopes, selector, &shared, &mut tasks);
        spawn_kind::<ReplicaSetWire>(&client, config, &scopes, None, &shared, &mut tasks);
        spawn_kind::<DeploymentWire>(&client, config, &scopes, None, &shared, &mut tasks);
        spawn_kind::<StatefulSetWire>(&client, config, &scopes, None, &shared, &mut tasks);
        spawn_kind::<DaemonSetWire>(&client, config, &scopes, None, &shared, &mut tasks);
        spawn_kind::<PdbWire>(&client, config, &scopes, None, &shared, &mut tasks);
        KubeClusterView {
            inner: Arc::new(Inner {
                shared,
                changes: rx,
                _tasks: Tasks(tasks),
            }),
        }
    }

    /// A synced view of fixed objects: no client, no runtime (unit tests, snapshots). Objects
    /// go through the same decoding as live ones.
    pub fn from_objects(objects: ClusterObjects) -> Self {
        let mut state = State::default();
        for p in &objects.pods {
            state.put(&PodWire::from_pod(p), 0);
        }
        for o in wires::<_, ReplicaSetWire>(&objects.replica_sets) {
            state.put(&o, 0);
        }
        for o in wires::<_, DeploymentWire>(&objects.deployments) {
            state.put(&o, 0);
        }
        for o in wires::<_, StatefulSetWire>(&objects.stateful_sets) {
            state.put(&o, 0);
        }
        for o in wires::<_, DaemonSetWire>(&objects.daemon_sets) {
            state.put(&o, 0);
        }
        for o in wires::<_, PdbWire>(&objects.pdbs) {
            state.put(&o, 0);
        }
        let (tx, rx) = watch::channel(0u64);
        KubeClusterView {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    state: RwLock::new(state),
                    listing: Arc::new(tokio::sync::Semaphore::new(1)),
                    ready: AtomicUsize::new(6),
                    total: 6,
                    changes: tx,
                }),
                changes: rx,
                _tasks: Tasks(Vec::new()),
            }),
        }
    }

    /// Resolves once every watcher has finished its initial list.
    pub async fn wait_synced(&self) {
        let mut changes = self.subscribe();
        while !self.is_synced() {
            if changes.changed().await.is_err() {
                // The watch tasks are gone (runtime shutting down): nothing more will come.
                return;
            }
        }
    }

    /// A receiver whose value changes whenever any watched object changes (and when a watcher
    /// finishes its initial list): wake-ups for deferral re-checks and recreation tracking.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changes.clone()
    }

    /// The [`PodInfo`] of a pod object the view may not hold (yet), fetched by GET: the same
    /// rules as [`ClusterView::pod`] (quarantine label; Ready and not terminating; the
    /// workload resolved through the ReplicaSets the view holds).
    pub fn pod_info(&self, pod: &Pod) -> PodInfo {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let entry = PodEntry::build(&PodWire::from_pod(pod), &mut Interner::default(), 0);
        self.inner.shared.read().info_of(namespace, &entry)
    }

    /// This view, plus `pod`, an object fetched by GET that the view does not hold (yet): the
    /// engine can decide about a pod created moments ago, or while the watches were down,
    /// without concluding `pod_not_found` from a view that may be stale. The pod answers by
    /// the view's rules (its workload through the view's ReplicaSets, the PDBs that select its
    /// labels) and counts as available in its workload.
    pub fn with_pod(&self, pod: &Pod) -> WithPod {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let entry = PodEntry::build(&PodWire::from_pod(pod), &mut Interner::default(), 0);
        let state = self.inner.shared.read();
        WithPod {
            info: state.info_of(&namespace, &entry),
            disruptions: state.disruptions_of(&namespace, &entry),
            held: state.has_pod(&namespace, &name),
            view: self.clone(),
            namespace,
            name,
        }
    }

    /// The pod as the view holds it.
    pub fn pod_state(&self, namespace: &str, name: &str) -> Option<PodState> {
        self.inner.shared.read().pod_state(namespace, name)
    }

    /// Every pod the view holds, with its resolved workload (`None` for standalone and
    /// quarantined pods).
    pub fn pods_with_workloads(&self) -> Vec<PodState> {
        self.inner.shared.read().all_pods()
    }

    /// The pods that count for `workload`: resolved to it, not quarantined.
    pub fn workload_pods(&self, workload: &WorkloadRef) -> Vec<PodState> {
        self.inner.shared.read().workload_pods(workload)
    }

    /// How many objects of each kind the view holds.
    pub fn counts(&self) -> ViewCounts {
        let [
            pods,
            replica_sets,
            deployments,
            stateful_sets,
            daemon_sets,
            pdbs,
        ] = self.inner.shared.read().counts();
        ViewCounts {
            pods,
            replica_sets,
            deployments,
            stateful_sets,
            daemon_sets,
            pdbs,
        }
    }
}

/// The controller owner reference of an object (`controller: true`), if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|o| o.controller == Some(true))
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
        .is_some_and(|l| l.contains_key(QUARANTINE_LABEL))
}

/// The pod is being deleted (`deletionTimestamp` set): endpoints drop it, so it is not available.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Ready, not terminating: what a Service would route to.
pub fn is_available(pod: &Pod) -> bool {
    is_pod_ready(pod) && !is_terminating(pod)
}

impl ClusterView for KubeClusterView {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        self.inner.shared.read().pod(namespace, name)
    }

    fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
        self.inner.shared.read().workload(workload)
    }

    fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
        self.inner.shared.read().disruptions_allowed(namespace, pod)
    }

    fn is_synced(&self) -> bool {
        let s = &self.inner.shared;
        s.ready.load(Ordering::SeqCst) >= s.total
    }

    fn pods_in(&self, namespace: &str) -> Vec<PodSummary> {
        self.inner.shared.read().pods_in(namespace)
    }

    fn workloads_in(&self, namespace: &str) -> Vec<WorkloadSummary> {
        self.inner.shared.read().workloads_in(namespace)
    }
}

#[cfg(test)]
mod reference;
/// A view with one more pod: see [`KubeClusterView::with_pod`].
#[derive(Clone)]
pub struct WithPod {
    view: KubeClusterView,
    namespace: String,
    name: String,
    info: PodInfo,
    disruptions: Option<i32>,
    /// The view holds a pod of that name (another UID): the fetched one replaces it.
    held: bool,
}

impl fmt::Debug for WithPod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithPod")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl WithPod {
    fn is_it(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }

    /// The fetched pod's answers.
    pub fn info(&self) -> &PodInfo {
        &self.info
    }
}

impl ClusterView for WithPod {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        if self.is_it(namespace, name) {
            return Some(self.info.clone());
        }
        self.view.pod(namespace, name)
    }

    fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
        let mut status = self.view.workload(workload);
        if !self.held
            && self.info.ready
            && self.info.workload.as_ref() == Some(workload)
            && let Some(s) = status.as_mut()
        {
            s.available += 1;
        }
        status
    }

    fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
        if self.is_it(namespace, pod) {
            return self.disruptions;
        }
        self.view.disruptions_allowed(namespace, pod)
    }

    fn is_synced(&self) -> bool {
        self.view.is_synced()
    }

    fn pods_in(&self, namespace: &str) -> Vec<PodSummary> {
        self.view.pods_in(namespace)
    }

    fn workloads_in(&self, namespace: &str) -> Vec<WorkloadSummary> {
        self.view.workloads_in(namespace)
    }
}

#[cfg(test)]
pub(crate) mod tests;
