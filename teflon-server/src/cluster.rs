//! Where the cluster view, the actions and the cluster's changes come from: the simulated
//! cluster (`cluster.type: sim`), a real one through teflon-k8s (`cluster.type: kube`), or
//! anything a caller plugs in (tests, embedders).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use teflon_core::autoscale::Scaler;
use teflon_core::{Actuator, ClusterView, Executed, PlannedAction, Timestamp, WorkloadRef};
use teflon_sim::{SharedSim, SimCluster, SimEvent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{ClusterType, Config};

/// The server's clock: "now" for the engine, the audit log and the simulated cluster.
pub type Clock = teflon_sim::shared::Clock;

/// A clock that starts at the system time and then follows tokio's monotonic clock (so a
/// paused test runtime pauses it too, and wall-clock jumps do not reorder decisions).
pub fn tokio_clock() -> Clock {
    let base = teflon_sim::shared::system_now();
    let start = tokio::time::Instant::now();
    Arc::new(move || base.plus(start.elapsed()))
}

/// The cluster view, shared with the custom-metrics API and the autoscaler.
pub type SharedView = Arc<dyn ClusterView + Send + Sync>;

/// An object-safe [`Actuator`], so the server can hold any of them.
pub trait DynActuator: Send + Sync {
    /// Execute `action` and say how it went.
    fn execute_boxed<'a>(
        &'a self,
        action: &'a PlannedAction,
    ) -> Pin<Box<dyn Future<Output = Executed> + Send + 'a>>;
}

impl<T: Actuator + Send + Sync> DynActuator for T {
    fn execute_boxed<'a>(
        &'a self,
        action: &'a PlannedAction,
    ) -> Pin<Box<dyn Future<Output = Executed> + Send + 'a>> {
        Box::pin(self.execute(action))
    }
}

/// Confirms a pod the cluster view does not know at the source before the engine concludes
/// `pod_not_found` (SPEC §4: never from a view that may be stale).
pub trait PodLookup: Send + Sync {
    /// `Ok(Some(view))`: the pod exists, decide against `view` (which holds it); `Ok(None)`:
    /// it does not; `Err`: no answer, ask again later.
    fn lookup(
        &self,
        namespace: String,
        name: String,
    ) -> Pin<Box<dyn Future<Output = Result<Option<SharedView>, String>> + Send>>;
}

/// The scaler of a backend: the simulated cluster or the `scale` subresource.
#[derive(Debug, Clone)]
pub enum BackendScaler {
    /// The simulated cluster.
    Sim(SharedSim),
    /// A real cluster.
    #[cfg(feature = "kube")]
    Kube(crate::autoscaler::KubeScaler),
}

impl Scaler for BackendScaler {
    fn scale(
        &self,
        workload: &WorkloadRef,
        replicas: u32,
    ) -> impl Future<Output = Result<(), String>> + Send {
        let this = self.clone();
        let workload = workload.clone();
        async move {
            match this {
                BackendScaler::Sim(s) => s.scale(&workload, replicas).await,
                #[cfg(feature = "kube")]
                BackendScaler::Kube(k) => k.scale(&workload, replicas).await,
            }
        }
    }

    fn current_replicas(
        &self,
        workload: &WorkloadRef,
    ) -> impl Future<Output = Result<Option<u32>, String>> + Send {
        let this = self.clone();
        let workload = workload.clone();
        async move {
            match this {
                BackendScaler::Sim(s) => s.current_replicas(&workload).await,
                #[cfg(feature = "kube")]
                BackendScaler::Kube(k) => k.current_replicas(&workload).await,
            }
        }
    }

    fn announce(
        &self,
        decision: &teflon_core::autoscale::ScaleDecision,
    ) -> impl Future<Output = ()> + Send {
        let this = self.clone();
        let decision = decision.clone();
        async move {
            match this {
                BackendScaler::Sim(s) => s.announce(&decision).await,
                #[cfg(feature = "kube")]
                BackendScaler::Kube(k) => k.announce(&decision).await,
            }
        }
    }
}

/// Something changed in the cluster that the engine must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// Pods changed (readiness, a pod appeared or went): re-check deferrals.
    Changed,
    /// A reaped pod's replacement became Ready, `took` after the reap.
    Recreated {
        /// The workload.
        workload: WorkloadRef,
        /// Reap → replacement Ready.
        took: Duration,
    },
}

/// The cluster could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The sim snapshot could not be read.
    #[error("cluster.snapshot {path}: {message}")]
    Snapshot {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// `cluster.type: kube` in a build without the `kube` feature, or kube setup failed.
    #[error("cluster.type kube: {0}")]
    Kube(String),
    /// `cluster.namespaces` or `cluster.pod_selector` is invalid.
    #[error("{0}")]
    Scope(String),
}

/// A cluster view, an actuator and the stream of cluster changes.
pub struct ClusterBackend {
    /// The view the engine decides against.
    pub view: SharedView,
    /// Executes planned actions.
    pub actuator: Arc<dyn DynActuator>,
    /// Cluster changes, for the engine task.
    pub events: mpsc::UnboundedReceiver<ClusterEvent>,
    /// The simulated cluster, when it is one (the demo infects its pods).
    pub sim: Option<SharedSim>,
    /// Scales workloads for the autoscaler, when the backend can.
    pub scaler: Option<BackendScaler>,
    /// Looks up pods the view does not know (a real cluster; the simulated one is exact).
    pub lookup: Option<Arc<dyn PodLookup>>,
    /// Undoes quarantines and `block_binary` policies, when the backend can.
    pub releaser: Option<Arc<dyn crate::release::DynReleaser>>,
    /// Background tasks (the sim driver, reflectors), aborted at shutdown.
    pub tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ClusterBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBackend")
            .field("sim", &self.sim.is_some())
            .finish_non_exhaustive()
    }
}

impl ClusterBackend {
    /// Any view and actuator; send changes through the returned sender.
    pub fn custom(
        view: SharedView,
        actuator: Arc<dyn DynActuator>,
    ) -> (ClusterBackend, mpsc::UnboundedSender<ClusterEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            ClusterBackend {
                view,
                actuator,
                events: rx,
                sim: None,
                scaler: None,
                lookup: None,
                releaser: None,
                tasks: Vec::new(),
            },
            tx,
        )
    }

    /// Undo actions with `releaser` (`POST /v1/release`, expiry, `GET /v1/actions`).
    pub fn with_releaser(mut self, releaser: Arc<dyn crate::release::DynReleaser>) -> Self {
        self.releaser = Some(releaser);
        self
    }

    /// A simulated cluster advanced to the sim's clock every 100 ms; recreations and
    /// scale-ups are reported as events. Must be called inside a tokio runtime.
    pub fn sim(sim: SharedSim) -> ClusterBackend {
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = sim.clone();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let events = driver.advance();
                if events.is_empty() {
                    continue;
                }
                for e in events {
                    let ev = match e {
                        SimEvent::Recreated { workload, took, .. } => {
                            ClusterEvent::Recreated { workload, took }
                        }
                        SimEvent::ScaledUp { .. } => ClusterEvent::Changed,
                    };
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
                if tx.send(ClusterEvent::Changed).is_err() {
                    return;
                }
            }
        });
        ClusterBackend {
            view: Arc::new(sim.clone()),
            actuator: Arc::new(sim.clone()),
            events: rx,
            scaler: Some(BackendScaler::Sim(sim.clone())),
            lookup: None,
            releaser: Some(Arc::new(sim.clone())),
            sim: Some(sim),
            tasks: vec![task],
        }
    }

    /// The backend `config.cluster` asks for. Must be called inside a tokio runtime.
    pub async fn from_config(
        config: &Config,
        clock: Clock,
    ) -> Result<ClusterBackend, ClusterError> {
        let scope = &config.cluster;
        match scope.kind {
            ClusterType::Sim => {
                let recovery = Duration::from_secs(scope.recovery_secs);
                let cluster = match &scope.snapshot {
                    Some(path) => {
                        let bytes = std::fs::read(path).map_err(|e| ClusterError::Snapshot {
                            path: path.display().to_string(),
                            message: e.to_string(),
                        })?;
                        SimCluster::from_kubectl_list(&bytes, recovery).map_err(|e| {
                            ClusterError::Snapshot {
                                path: path.display().to_string(),
                                message: e.to_string(),
                            }
                        })?
                    }
                    None => SimCluster::healthy(recovery),
                };
                let cluster = cluster.with_scope(scope.sim_scope().map_err(ClusterError::Scope)?);
                Ok(ClusterBackend::sim(SharedSim::new(cluster, clock)))
            }
            ClusterType::Kube => {
                scope.validate_scope().map_err(ClusterError::Scope)?;
                kube_backend(config, clock).await
            }
        }
    }

    /// Stop the background tasks (the sim driver, reflectors).
    pub fn abort_tasks(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

#[cfg(feature = "kube")]
async fn kube_backend(config: &Config, clock: Clock) -> Result<ClusterBackend, ClusterError> {
    crate::kube::backend(config, clock).await
}

#[cfg(not(feature = "kube"))]
async fn kube_backend(_: &Config, _: Clock) -> Result<ClusterBackend, ClusterError> {
    Err(ClusterError::Kube(
        "this build has no Kubernetes support (build teflon-server with the `kube` feature), use `cluster: {type: sim}`".to_owned(),
    ))
}

/// Current time of a clock.
pub fn now(clock: &Clock) -> Timestamp {
    clock()
}
