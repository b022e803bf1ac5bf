//! `cluster.type: sim`: the simulated cluster as a backend, advanced to its clock every
//! 100 ms, its recreations and scale-ups reported as [`ClusterEvent`]s.

use std::sync::Arc;
use std::time::Duration;

use teflon_sim::{SharedSim, SimCluster, SimEvent};
use tokio::sync::mpsc;

use super::{ClusterBackend, ClusterError, ClusterEvent};
use crate::config::ClusterConfig;

impl ClusterBackend {
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
            scaler: Some(Arc::new(sim.clone())),
            lookup: None,
            releaser: Some(Arc::new(sim.clone())),
            sim: Some(sim),
            tasks: vec![task],
        }
    }
}

/// The simulated cluster `scope` describes (`cluster.snapshot`, or a healthy one), in its
/// `namespaces`/`pod_selector` scope.
pub(super) fn cluster(scope: &ClusterConfig) -> Result<SimCluster, ClusterError> {
    let recovery = Duration::from_secs(scope.recovery_secs);
    let cluster = match &scope.snapshot {
        Some(path) => {
            let snapshot_error = |message: String| ClusterError::Snapshot {
                path: path.display().to_string(),
                message,
            };
            let bytes = std::fs::read(path).map_err(|e| snapshot_error(e.to_string()))?;
            SimCluster::from_kubectl_list(&bytes, recovery)
                .map_err(|e| snapshot_error(e.to_string()))?
        }
        None => SimCluster::healthy(recovery),
    };
    Ok(cluster.with_scope(scope.sim_scope().map_err(ClusterError::Scope)?))
}
