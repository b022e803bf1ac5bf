//! The Prometheus exporter: a `metrics` recorder whose text the server renders from its own
//! `/metrics` route (no listener of its own), with buckets chosen per unit.

use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::names;

/// The exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// Invalid buckets, or another recorder is already installed in this process.
    #[error("cannot install the Prometheus recorder: {0}")]
    Build(#[source] BuildError),
}

/// Renders every Teflon metric in the Prometheus text format.
#[derive(Debug, Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
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

impl Exporter {
    /// Install the process-wide recorder. Fails when one is already installed.
    pub fn install() -> Result<Exporter, ExporterError> {
        let handle = builder()
            .map_err(ExporterError::Build)?
            .install_recorder()
            .map_err(ExporterError::Build)?;
        describe();
        Ok(Exporter { handle })
    }

    /// A recorder that is not installed (for `metrics::with_local_recorder` in tests, or to
    /// install by hand), with its exporter.
    pub fn unregistered() -> Result<(PrometheusRecorder, Exporter), ExporterError> {
        let recorder = builder().map_err(ExporterError::Build)?.build_recorder();
        let handle = recorder.handle();
        Ok((recorder, Exporter { handle }))
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drain histogram buckets; call it every few seconds.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
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
}
