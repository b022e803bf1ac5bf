//! [`SharedSim`]: the simulated cluster behind a lock and a clock, for servers that run it
//! against wall-clock time.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use teflon_core::autoscale::{Scaler, ScalerError};
use teflon_core::{
    ActiveAction, Actuator, ClusterView, Executed, PlannedAction, PodInfo, PodSummary, Release,
    ReleaseCause, ReleaseTarget, Releaser, Timestamp, WorkloadRef, WorkloadStatus, WorkloadSummary,
};

use crate::cluster::{SimCluster, SimEvent};

/// The clock a [`SharedSim`] reads "now" from (core's).
pub use teflon_core::time::Clock;

/// A [`SimCluster`] shared between tasks: a [`ClusterView`], an [`Actuator`] (actions are
/// applied at `clock()`), a [`Releaser`] and a [`Scaler`]. The lock is never held across an await: every
/// method locks, works synchronously and unlocks.
#[derive(Clone)]
pub struct SharedSim {
    inner: Arc<Mutex<SimCluster>>,
    clock: Clock,
}

impl fmt::Debug for SharedSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSim").finish_non_exhaustive()
    }
}

impl SharedSim {
    /// Share `cluster`, reading time from `clock`.
    pub fn new(cluster: SimCluster, clock: Clock) -> Self {
        SharedSim {
            inner: Arc::new(Mutex::new(cluster)),
            clock,
        }
    }

    /// Share `cluster` with the system clock.
    pub fn with_system_clock(cluster: SimCluster) -> Self {
        Self::new(cluster, Arc::new(system_now))
    }

    /// The clock's current time.
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Lock the cluster (a poisoned lock is recovered: the cluster has no invariant a panic
    /// elsewhere could break half-way that matters more than staying up).
    pub fn lock(&self) -> MutexGuard<'_, SimCluster> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Advance the cluster to `clock()`; feed the events to `Engine::record_recreation` and
    /// then `Engine::tick`.
    pub fn advance(&self) -> Vec<SimEvent> {
        let now = self.now();
        self.lock().advance_to(now)
    }

    /// When the next pending pod becomes Ready.
    pub fn next_event_time(&self) -> Option<Timestamp> {
        self.lock().next_event_time()
    }

    /// Run `f` on the locked cluster.
    pub fn with<R>(&self, f: impl FnOnce(&mut SimCluster) -> R) -> R {
        f(&mut self.lock())
    }
}

/// The system clock as a [`Timestamp`].
pub fn system_now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_nanos(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl ClusterView for SharedSim {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        self.lock().pod(namespace, name)
    }
    fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
        self.lock().workload(workload)
    }
    fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
        self.lock().disruptions_allowed(namespace, pod)
    }
    fn pods_in(&self, namespace: &str) -> Vec<PodSummary> {
        self.lock().pods_in(namespace)
    }
    fn workloads_in(&self, namespace: &str) -> Vec<WorkloadSummary> {
        self.lock().workloads_in(namespace)
    }
}

impl Actuator for SharedSim {
    fn execute(&self, action: &PlannedAction) -> impl Future<Output = Executed> + Send {
        let now = self.now();
        // No advance here: the events it would produce belong to whoever drives `advance`.
        let outcome = self.lock().apply(action, now);
        std::future::ready(outcome.into())
    }
}

impl Releaser for SharedSim {
    fn release(
        &self,
        target: &ReleaseTarget,
        cause: ReleaseCause,
    ) -> impl Future<Output = Release> + Send {
        let now = self.now();
        let release = self.lock().release(target, cause, now);
        std::future::ready(release)
    }

    fn active(&self) -> impl Future<Output = Result<Vec<ActiveAction>, String>> + Send {
        std::future::ready(Ok(self.lock().active()))
    }

    fn target_of(&self, action: &PlannedAction) -> Option<ReleaseTarget> {
        self.lock().release_target(action)
    }
}

impl Scaler for SharedSim {
    fn scale(
        &self,
        workload: &WorkloadRef,
        replicas: u32,
    ) -> impl Future<Output = Result<(), ScalerError>> + Send {
        let now = self.now();
        let done = self.lock().set_desired(workload, replicas, now);
        std::future::ready(if done {
            Ok(())
        } else {
            Err(ScalerError::NotFound(workload.clone()))
        })
    }
}
