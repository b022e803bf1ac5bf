//! The Prometheus exporter: a `metrics` recorder whose text the server renders from its own
//! `/metrics` route (no listener of its own), with buckets chosen per unit.
//!
//! Two Prometheus recorders sit behind one [`TeflonRecorder`]: the per-workload metrics
//! ([`names::PER_WORKLOAD`]) go to one whose series expire after [`WorkloadSlots::ttl`] without
//! an update, with their label sets bounded by [`WorkloadSlots`]; everything else goes to one
//! whose series never expire (its label sets are bounded by construction: reasons, policies,
//! known sources), so handles cached on the hot path stay valid.

use std::sync::Arc;
use std::time::Instant;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use metrics_util::MetricKindMask;

use crate::names;
use crate::series::{self, Slot, WorkloadSlots};

/// The exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// Invalid buckets.
    #[error("cannot build the Prometheus recorder: {0}")]
    Build(#[source] BuildError),
    /// Another recorder is already installed in this process.
    #[error("cannot install the Prometheus recorder: another metrics recorder is installed")]
    Install,
}

/// Renders every Teflon metric in the Prometheus text format.
#[derive(Debug, Clone)]
pub struct Exporter {
    global: PrometheusHandle,
    workloads: PrometheusHandle,
    slots: Arc<WorkloadSlots>,
}

fn builder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::DECISION_LATENCY_SECONDS.to_owned()),
            names::DECISION_LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::ACTION_LATENCY_SECONDS.to_owned()),
            names::ACTION_LATENCY_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::TIME_TO_RECREATION_SECONDS.to_owned()),
            names::RECREATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::TIME_TO_NEW_INFECTION_SECONDS.to_owned()),
            names::RECREATION_BUCKETS,
        )
}

/// The recorder behind [`Exporter`]: routes per-workload metrics to the expiring recorder
/// through the [`WorkloadSlots`] bound, everything else to the permanent one.
#[derive(Debug)]
pub struct TeflonRecorder {
    global: PrometheusRecorder,
    workloads: PrometheusRecorder,
    slots: Arc<WorkloadSlots>,
}

impl TeflonRecorder {
    fn build(slots: WorkloadSlots) -> Result<(TeflonRecorder, Exporter), BuildError> {
        let global = builder()?.build_recorder();
        let workloads = builder()?
            .idle_timeout(MetricKindMask::ALL, Some(slots.ttl()))
            .build_recorder();
        let slots = Arc::new(slots);
        let exporter = Exporter {
            global: global.handle(),
            workloads: workloads.handle(),
            slots: slots.clone(),
        };
        Ok((
            TeflonRecorder {
                global,
                workloads,
                slots,
            },
            exporter,
        ))
    }

    fn slot(&self, key: &Key) -> Option<Slot> {
        if !series::is_per_workload(key.name()) {
            return None;
        }
        Some(match series::workload_labels(key) {
            Some((ns, wl)) => self.slots.touch(ns, wl, Instant::now()),
            None => Slot::Own,
        })
    }
}

impl Recorder for TeflonRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if series::is_per_workload(key.as_str()) {
            self.workloads.describe_counter(key, unit, description);
        } else {
            self.global.describe_counter(key, unit, description);
        }
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if series::is_per_workload(key.as_str()) {
            self.workloads.describe_gauge(key, unit, description);
        } else {
            self.global.describe_gauge(key, unit, description);
        }
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if series::is_per_workload(key.as_str()) {
            self.workloads.describe_histogram(key, unit, description);
        } else {
            self.global.describe_histogram(key, unit, description);
        }
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match self.slot(key) {
            None => self.global.register_counter(key, metadata),
            Some(Slot::Own) => self.workloads.register_counter(key, metadata),
            Some(Slot::Other) => self
                .workloads
                .register_counter(&series::other_key(key), metadata),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match self.slot(key) {
            None => self.global.register_gauge(key, metadata),
            Some(Slot::Own) => self.workloads.register_gauge(key, metadata),
            // A current value: the last write of many workloads would mean nothing.
            Some(Slot::Other) => Gauge::noop(),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        match self.slot(key) {
            None => self.global.register_histogram(key, metadata),
            Some(Slot::Own) => self.workloads.register_histogram(key, metadata),
            Some(Slot::Other) => self
                .workloads
                .register_histogram(&series::other_key(key), metadata),
        }
    }
}

impl Exporter {
    /// Install the process-wide recorder. Fails when one is already installed.
    pub fn install() -> Result<Exporter, ExporterError> {
        let (recorder, exporter) =
            TeflonRecorder::build(WorkloadSlots::default()).map_err(ExporterError::Build)?;
        metrics::set_global_recorder(recorder).map_err(|_| ExporterError::Install)?;
        describe();
        Ok(exporter)
    }

    /// A recorder that is not installed (for `metrics::with_local_recorder` in tests, or to
    /// install by hand), with its exporter.
    pub fn unregistered() -> Result<(TeflonRecorder, Exporter), ExporterError> {
        Self::unregistered_with(WorkloadSlots::default())
    }

    /// [`Exporter::unregistered`] with its own per-workload series bound.
    pub fn unregistered_with(
        slots: WorkloadSlots,
    ) -> Result<(TeflonRecorder, Exporter), ExporterError> {
        TeflonRecorder::build(slots).map_err(ExporterError::Build)
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut text = self.global.render();
        text.push_str(&self.workloads.render());
        text
    }

    /// Drain histogram buckets and drop expired per-workload series; call it every few seconds.
    pub fn run_upkeep(&self) {
        self.global.run_upkeep();
        self.workloads.run_upkeep();
    }

    /// (namespace, workload) pairs with series of their own now.
    pub fn workload_series(&self) -> usize {
        self.slots.len()
    }
}

/// Register HELP texts and units for every metric with the current recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(names::ALERTS_TOTAL, "Alerts accepted for decision.");
    describe_counter!(
        names::ALERTS_REJECTED_TOTAL,
        "Alerts or requests refused, by reason."
    );
    describe_counter!(
        names::DECISIONS_TOTAL,
        "Decisions taken, by policy, verdict and reason."
    );
    describe_counter!(
        names::INFECTIONS_TOTAL,
        "New infections (once per pod) per workload."
    );
    describe_counter!(
        names::REAPINGS_TOTAL,
        "Executed disruptive actions, by final outcome (after retries)."
    );
    describe_counter!(
        names::ACTION_RETRIES_TOTAL,
        "API calls of actions retried before their final outcome."
    );
    describe_gauge!(
        names::INFECTED_PODS,
        "Pods infected and not yet reaped or gone."
    );
    describe_gauge!(
        names::WORKLOAD_AVAILABLE_RATIO,
        "Available / desired replicas."
    );
    describe_gauge!(
        names::INFECTION_RATE_PER_MINUTE,
        "Attack rate: alerts that hit a pod, per minute, over the time observed within the sliding window."
    );
    describe_gauge!(
        names::ATTACK_PRESSURE,
        "Replicas needed / current replicas; above 1 attackers are winning."
    );
    describe_histogram!(
        names::TIME_TO_RECREATION_SECONDS,
        Unit::Seconds,
        "Reap to replacement Ready."
    );
    describe_histogram!(
        names::TIME_TO_NEW_INFECTION_SECONDS,
        Unit::Seconds,
        "Interval between successive infections of a workload."
    );
    describe_histogram!(
        names::DECISION_LATENCY_SECONDS,
        Unit::Seconds,
        "Alert received to decision."
    );
    describe_histogram!(
        names::ACTION_LATENCY_SECONDS,
        Unit::Seconds,
        "Decision to API call done."
    );
    describe_gauge!(names::QUEUE_DEPTH, "Alerts accepted and not yet decided.");
    describe_gauge!(
        names::LEADER,
        "1 while this replica decides and acts, 0 while it accepts and buffers alerts."
    );
    describe_counter!(
        names::POLICY_RELOADS_TOTAL,
        "Policy file reloads, by result."
    );
    describe_counter!(
        names::AUDIT_LINES_LOST_TOTAL,
        "Audit lines that could not be written."
    );
    crate::response::describe();
    describe_counter!(
        names::AUDIT_TORN_TAILS_TOTAL,
        "Torn last lines found in the audit log at start and moved aside."
    );
    describe_counter!(
        names::AUDIT_ROTATIONS_TOTAL,
        "Audit log rotations (audit_max_bytes reached)."
    );
    describe_gauge!(names::HTTP_CONNECTIONS, "Open connections, by listener.");
    describe_counter!(
        names::HTTP_CONNECTIONS_CLOSED_TOTAL,
        "Connections a listener closed on its own, by reason."
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use teflon_core::{ActionKind, Outcome, WorkloadKind, WorkloadRef};

    use super::*;
    use crate::events::{AlertRejected, PodReaped, RecreationObserved, RejectReason};

    #[test]
    fn the_exporter_renders_spec_names_labels_and_per_unit_buckets() {
        let (recorder, exporter) = Exporter::unregistered().unwrap();
        metrics::with_local_recorder(&recorder, || {
            describe();
            AlertRejected {
                reason: RejectReason::Overloaded,
                count: 3,
            }
            .emit();
            PodReaped {
                namespace: "shop",
                workload: "web",
                action: ActionKind::Delete,
                outcome: &Outcome::Gone,
                latency: Duration::from_millis(12),
            }
            .emit();
            RecreationObserved {
                workload: &WorkloadRef::new(WorkloadKind::Deployment, "shop", "web"),
                took: Duration::from_secs(14),
            }
            .emit();
        });
        let text = exporter.render();
        assert!(
            text.contains(r#"teflon_alerts_rejected_total{reason="overloaded"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"teflon_reapings_total{namespace="shop",workload="web",action="delete",outcome="gone"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"teflon_action_latency_seconds_bucket{action="delete",le="0.025"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"teflon_time_to_recreation_seconds_bucket{namespace="shop",workload="web",le="15"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn workloads_beyond_the_cap_share_the_other_series_and_export_no_gauges() {
        let slots = WorkloadSlots::new(2, Duration::from_secs(600));
        let (recorder, exporter) = Exporter::unregistered_with(slots).unwrap();
        metrics::with_local_recorder(&recorder, || {
            for i in 0..1000 {
                let name = format!("w{i}");
                PodReaped {
                    namespace: "ns",
                    workload: &name,
                    action: ActionKind::Delete,
                    outcome: &Outcome::Success,
                    latency: Duration::from_millis(3),
                }
                .emit();
                metrics::gauge!(names::ATTACK_PRESSURE, "namespace" => "ns", "workload" => name)
                    .set(2.0);
            }
            AlertRejected {
                reason: RejectReason::TooLarge,
                count: 1,
            }
            .emit();
        });
        assert_eq!(exporter.workload_series(), 2);
        let text = exporter.render();
        let mut reapings: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("teflon_reapings_total{"))
            .collect();
        reapings.sort_unstable();
        assert_eq!(
            reapings,
            vec![
                r#"teflon_reapings_total{namespace="_other",workload="_other",action="delete",outcome="success"} 998"#,
                r#"teflon_reapings_total{namespace="ns",workload="w0",action="delete",outcome="success"} 1"#,
                r#"teflon_reapings_total{namespace="ns",workload="w1",action="delete",outcome="success"} 1"#,
            ],
            "{text}"
        );
        let pressure = text
            .lines()
            .filter(|l| l.starts_with("teflon_attack_pressure{"))
            .count();
        assert_eq!(pressure, 2, "{text}");
        assert!(text.contains(r#"teflon_alerts_rejected_total{reason="too_large"} 1"#));
    }
}
