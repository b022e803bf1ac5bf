//! The per-workload gauges, set from an [`AttackSnapshot`]. Workloads that drop out of the
//! snapshot are set to their resting values (0 infected, ratio 1, rate 0, pressure 0) once, so
//! dashboards do not show a stale attack.

use std::collections::BTreeSet;

use metrics::gauge;

use crate::names::{self, label};
use crate::snapshot::AttackSnapshot;

/// Publishes the snapshot gauges, remembering which workloads it published last time.
#[derive(Debug, Default)]
pub struct SnapshotGauges {
    published: BTreeSet<(String, String)>,
}

fn set(ns: &str, workload: &str, infected: f64, ratio: f64, rate: f64, pressure: f64) {
    let labels = [
        (label::NAMESPACE, ns.to_owned()),
        (label::WORKLOAD, workload.to_owned()),
    ];
    gauge!(names::INFECTED_PODS, &labels).set(infected);
    gauge!(names::WORKLOAD_AVAILABLE_RATIO, &labels).set(ratio);
    gauge!(names::INFECTION_RATE_PER_MINUTE, &labels).set(rate);
    gauge!(names::ATTACK_PRESSURE, &labels).set(pressure);
}

impl SnapshotGauges {
    /// Nothing published yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set every gauge from `snapshot`.
    pub fn emit(&mut self, snapshot: &AttackSnapshot) {
        let mut now = BTreeSet::new();
        for s in &snapshot.workloads {
            let key = (s.workload.namespace.clone(), s.workload.name.clone());
            set(
                &key.0,
                &key.1,
                f64::from(s.infected_pods),
                s.available_ratio,
                s.infection_rate_per_minute,
                s.attack_pressure,
            );
            now.insert(key);
        }
        for (ns, w) in self.published.difference(&now) {
            set(ns, w, 0.0, 1.0, 0.0, 0.0);
        }
        self.published = now;
    }
}
