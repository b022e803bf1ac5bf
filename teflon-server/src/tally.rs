//! One tally for the engine task (Vector's `registered_event!` idea): each thing the task
//! counts is counted once, here, and feeds the Prometheus series (through metric handles
//! registered once per label set), the `/v1/status` totals and the [`EngineReport`], instead
//! of three books kept in step by hand at every call site.

use std::sync::Arc;
use std::time::Duration;

use teflon_core::{Alert, Decision, Outcome, PlannedAction, Verdict};
use teflon_metrics::events::{ActionExecuted, ActionRetried, HotPath, PodReaped};

use crate::state::Counters;

/// What the engine task did, reported at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineReport {
    /// Alerts decided.
    pub alerts: u64,
    /// Decisions taken.
    pub decisions: u64,
    /// Audit records written.
    pub audit_records: u64,
    /// Actions still running when the drain timed out (recorded as failed).
    pub abandoned_actions: u64,
    /// Alerts still buffered when a follower shut down: never decided, no audit record.
    pub undecided: u64,
}

/// The engine task's counts: one call per event, every sink fed from it.
pub(crate) struct Tally {
    hot: HotPath,
    counters: Arc<Counters>,
    report: EngineReport,
}

impl Tally {
    /// Count into `counters` (shared with `/v1/status`) and the process's metrics recorder.
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        Tally {
            hot: HotPath::new(),
            counters,
            report: EngineReport::default(),
        }
    }

    /// The `/v1/status` totals (releases are counted by the lifecycle).
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The report so far.
    pub(crate) fn report(&self) -> EngineReport {
        self.report
    }

    /// A fresh alert is about to be decided.
    pub(crate) fn alert(&mut self, alert: &Alert) {
        self.hot.alert_received(&alert.source, alert.priority);
        self.report.alerts += 1;
    }

    /// Alerts that will not be decided by this process.
    pub(crate) fn undecided(&mut self, n: usize) {
        self.report.undecided += n as u64;
    }

    /// A decision; `latency` from receipt, for a fresh alert's own decision.
    pub(crate) fn decision(&mut self, d: &Decision, latency: Option<Duration>) {
        self.report.decisions += 1;
        Counters::add(&self.counters.decisions, 1);
        match d.verdict {
            Verdict::Act => Counters::add(&self.counters.acts, 1),
            Verdict::Defer => Counters::add(&self.counters.deferrals, 1),
            Verdict::Skip => {}
        }
        self.hot.decision_taken(d, latency);
    }

    /// An action handed to the actuator.
    pub(crate) fn action_submitted(&self) {
        Counters::add(&self.counters.actions, 1);
    }

    /// An action finished after `attempts` calls.
    pub(crate) fn attempts(&self, plan: &PlannedAction, attempts: u32) {
        ActionRetried {
            action: plan.action.kind(),
            retries: attempts.saturating_sub(1),
        }
        .emit();
    }

    /// The outcome of an action decided `latency` ago.
    pub(crate) fn outcome(&self, plan: &PlannedAction, outcome: &Outcome, latency: Duration) {
        let kind = plan.action.kind();
        if kind.is_disruptive() {
            let workload = plan
                .workload
                .as_ref()
                .map_or(plan.pod.name.as_str(), |w| w.name.as_str());
            PodReaped {
                namespace: &plan.pod.namespace,
                workload,
                action: kind,
                outcome,
                latency,
            }
            .emit();
            if outcome.took_effect() {
                Counters::add(&self.counters.reaps, 1);
            }
        } else {
            ActionExecuted {
                action: kind,
                latency,
            }
            .emit();
        }
        if matches!(outcome, Outcome::Failed(_)) {
            Counters::add(&self.counters.failed_actions, 1);
        }
    }

    /// An action still running when the drain timed out.
    pub(crate) fn abandoned(&mut self) {
        self.report.abandoned_actions += 1;
    }

    /// An audit line written.
    pub(crate) fn audit_written(&self) {
        Counters::add(&self.counters.audit_records, 1);
    }

    /// The report, with the audit log's own count of the lines it wrote.
    pub(crate) fn finish(mut self, audit_lines: u64) -> EngineReport {
        self.report.audit_records = audit_lines;
        self.report
    }
}
