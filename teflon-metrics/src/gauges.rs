//! The per-workload gauges, set from an [`AttackSnapshot`]. Workloads that drop out of the
//! snapshot are set to their resting values (0 infected, ratio 1, rate 0, pressure 0) once, so
//! dashboards do not show a stale attack; the exporter drops their series once they have been
//! idle for [`crate::series::DEFAULT_TTL`]. Which workloads get gauges at all is bounded by
//! [`crate::series::WorkloadSlots`].

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use teflon_core::{Timestamp, WorkloadKind, WorkloadRef, WorkloadStats};

    use super::*;

    fn stats(name: &str, infected: u32, pressure: f64) -> WorkloadStats {
        WorkloadStats {
            workload: WorkloadRef::new(WorkloadKind::Deployment, "shop", name),
            infections_total: 3,
            hits_total: 0,
            backlog: 0,
            infected_pods: infected,
            infection_rate_per_minute: 2.0,
            time_to_recreation: Some(Duration::from_secs(10)),
            reaps_total: 2,
            desired: 4,
            available: 3,
            available_ratio: 0.75,
            min_available: 2,
            replicas_needed: 4,
            attack_pressure: pressure,
        }
    }

    fn gauge(
        snap: &[(
            metrics_util::CompositeKey,
            Option<metrics::Unit>,
            Option<metrics::SharedString>,
            DebugValue,
        )],
        name: &str,
        workload: &str,
    ) -> Option<f64> {
        snap.iter().find_map(|(k, _, _, v)| {
            let hit = k.key().name() == name
                && k.key()
                    .labels()
                    .any(|l| l.key() == "workload" && l.value() == workload);
            match (hit, v) {
                (true, DebugValue::Gauge(g)) => Some(g.into_inner()),
                _ => None,
            }
        })
    }

    #[test]
    fn workloads_leaving_the_snapshot_are_reset_to_resting_values() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let mut g = SnapshotGauges::new();
            g.emit(&AttackSnapshot {
                at: Timestamp::EPOCH,
                window: Duration::from_secs(300),
                workloads: vec![stats("web", 2, 1.5), stats("api", 1, 0.5)],
                infected_pods: Default::default(),
            });
            g.emit(&AttackSnapshot {
                workloads: vec![stats("web", 1, 1.25)],
                ..AttackSnapshot::default()
            });
        });
        let snap = snapshotter.snapshot().into_vec();
        assert_eq!(gauge(&snap, names::INFECTED_PODS, "web"), Some(1.0));
        assert_eq!(gauge(&snap, names::ATTACK_PRESSURE, "web"), Some(1.25));
        assert_eq!(
            gauge(&snap, names::WORKLOAD_AVAILABLE_RATIO, "web"),
            Some(0.75)
        );
        assert_eq!(gauge(&snap, names::INFECTED_PODS, "api"), Some(0.0));
        assert_eq!(gauge(&snap, names::ATTACK_PRESSURE, "api"), Some(0.0));
        assert_eq!(
            gauge(&snap, names::WORKLOAD_AVAILABLE_RATIO, "api"),
            Some(1.0)
        );
    }
}
