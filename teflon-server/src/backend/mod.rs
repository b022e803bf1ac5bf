//! Where the cluster view, the actions and the cluster's changes come from: the simulated
//! cluster (`cluster.type: sim`, [`sim`]), a real one through teflon-k8s (`cluster.type:
//! kube`, [`kube`]), or anything a caller plugs in (tests, embedders). This file holds the
//! types; `from_config.rs` picks one of them.

mod from_config;
#[cfg(feature = "kube")]
mod kube;
mod sim;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use teflon_core::autoscale::DynScaler;
use teflon_core::{ClusterView, DynActuator, WorkloadRef};
use teflon_sim::SharedSim;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The cluster view, shared with the custom-metrics API and the autoscaler.
pub type SharedView = Arc<dyn ClusterView + Send + Sync>;

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
    pub scaler: Option<Arc<dyn DynScaler>>,
    /// Looks up pods the view does not know (a real cluster; the simulated one is exact).
    pub lookup: Option<Arc<dyn PodLookup>>,
    /// Undoes quarantines and `block_binary` policies, when the backend can.
    pub releaser: Option<Arc<dyn teflon_core::DynReleaser>>,
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
    pub fn with_releaser(mut self, releaser: Arc<dyn teflon_core::DynReleaser>) -> Self {
        self.releaser = Some(releaser);
        self
    }

    /// Stop the background tasks (the sim driver, reflectors).
    pub fn abort_tasks(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}
