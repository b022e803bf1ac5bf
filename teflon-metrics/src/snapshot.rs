//! A point-in-time copy of the engine's attack numbers, published by the engine task and read
//! by `/metrics`, the custom-metrics API and the autoscaler without touching the engine.

use std::collections::BTreeSet;
use std::time::Duration;

use teflon_core::{Timestamp, WorkloadRef, WorkloadStats};

/// The engine's attack-as-load numbers at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttackSnapshot {
    /// When it was taken.
    pub at: Timestamp,
    /// The sliding window the rates are computed over (`windowSeconds`).
    pub window: Duration,
    /// Per-workload stats, sorted by workload.
    pub workloads: Vec<WorkloadStats>,
    /// Currently infected pods as `(namespace, pod)`.
    pub infected_pods: BTreeSet<(String, String)>,
}

impl AttackSnapshot {
    /// Stats of one workload, if it was ever attacked.
    pub fn workload(&self, w: &WorkloadRef) -> Option<&WorkloadStats> {
        self.workloads.iter().find(|s| s.workload == *w)
    }

    /// True when the pod is infected.
    pub fn is_infected(&self, namespace: &str, pod: &str) -> bool {
        self.infected_pods
            .contains(&(namespace.to_owned(), pod.to_owned()))
    }

    /// Infections per minute summed over a namespace's workloads.
    pub fn namespace_rate_per_minute(&self, namespace: &str) -> f64 {
        self.workloads
            .iter()
            .filter(|s| s.workload.namespace == namespace)
            .map(|s| s.infection_rate_per_minute)
            .sum()
    }
}
