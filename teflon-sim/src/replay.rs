//! The replay loop: saved alerts, in order, through the engine against the simulated cluster.

use teflon_core::{Alert, Decision, Engine, Outcome, Timestamp};

use crate::cluster::{SimCluster, SimEvent};

/// One decision of a replay, with how its action went when it was executed.
#[derive(Debug, Clone)]
pub struct ReplayStep {
    /// The decision (`decision.record()` is the `teflon replay --format jsonl` line).
    pub decision: Decision,
    /// The outcome of its planned action, when it had one (not for `defer`, `skip`, dry runs).
    pub outcome: Option<Outcome>,
}

/// Drives an [`Engine`] and a [`SimCluster`] through alerts in simulated time (SPEC §5 replay).
///
/// For each alert: simulated time moves to the alert's time, one change at a time (each
/// replacement that becomes Ready is reported to the engine, then pending deferrals are
/// re-checked at that moment, as are deferral deadlines); then the engine decides and every
/// planned action is applied to the cluster and its outcome fed back. [`Replayer::finish`]
/// settles the deferrals still pending by advancing time until none remain.
#[derive(Debug)]
pub struct Replayer {
    engine: Engine,
    sim: SimCluster,
    now: Option<Timestamp>,
    pushed: u64,
}

/// Upper bound on the steps [`Replayer::finish`] takes (each resolves or moves time forward).
const SETTLE_MAX_STEPS: usize = 100_000;

/// Prune the engine's memory every this many alerts.
const PRUNE_EVERY: u64 = 4096;

impl Replayer {
    /// A replay of `engine`'s policies against `sim`.
    pub fn new(engine: Engine, sim: SimCluster) -> Self {
        Replayer {
            engine,
            sim,
            now: None,
            pushed: 0,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The cluster.
    pub fn sim(&self) -> &SimCluster {
        &self.sim
    }

    /// Simulated time so far (`None` before the first alert).
    pub fn now(&self) -> Option<Timestamp> {
        self.now
    }

    /// Take the engine and the cluster back.
    pub fn into_parts(self) -> (Engine, SimCluster) {
        (self.engine, self.sim)
    }

    /// Decide about one alert at its own time. The cluster's time never goes backwards: an alert
    /// older than the one before it (inputs merged from several nodes) is decided at its own
    /// time against the cluster as it already is. Returns the deferrals resolved on the way,
    /// then the alert's decisions.
    pub fn push(&mut self, alert: impl Into<std::sync::Arc<Alert>>) -> Vec<ReplayStep> {
        let alert = alert.into();
        let now = alert.time;
        let mut out = self.advance_to(now);
        let decisions = self.engine.decide(alert, &self.sim, now);
        out.extend(self.execute(decisions, now));
        self.pushed += 1;
        if self.pushed.is_multiple_of(PRUNE_EVERY) {
            self.engine.prune(&self.sim, now);
        }
        out
    }

    /// Move simulated time to `t`, one change at a time, re-checking deferrals at each.
    pub fn advance_to(&mut self, t: Timestamp) -> Vec<ReplayStep> {
        let mut out = Vec::new();
        let Some(mut now) = self.now else {
            self.now = Some(t);
            self.sim.advance_to(t);
            return out;
        };
        loop {
            let next = [self.sim.next_event_time(), self.engine.next_deadline(now)]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|n| *n <= t) else {
                break;
            };
            out.extend(self.step(next));
            now = next;
        }
        if t > now {
            self.sim.advance_to(t);
            self.now = Some(t);
        }
        out
    }

    /// Settle the deferrals still pending: advance simulated time to the next replacement
    /// becoming Ready or the next deferral deadline, until none remain (bounded).
    pub fn finish(&mut self) -> Vec<ReplayStep> {
        let mut out = Vec::new();
        for _ in 0..SETTLE_MAX_STEPS {
            let deferrals = self.engine.deferrals();
            if deferrals.is_empty() {
                break;
            }
            let now = self.now.unwrap_or_default();
            let next = [
                self.sim.next_event_time(),
                self.engine.next_deadline(now),
                deferrals
                    .iter()
                    .map(|d| d.expires_at)
                    .filter(|e| *e > now)
                    .min(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else {
                // Every deadline is due: one last re-check resolves them.
                out.extend(self.step(now));
                break;
            };
            out.extend(self.step(next.max(now)));
        }
        out
    }

    /// Apply the changes due at `t`, report them to the engine, re-check deferrals at `t`.
    fn step(&mut self, t: Timestamp) -> Vec<ReplayStep> {
        for event in self.sim.advance_to(t) {
            if let SimEvent::Recreated {
                workload, took, at, ..
            } = event
            {
                self.engine.record_recreation(&workload, took, at);
            }
        }
        self.now = Some(self.now.map_or(t, |n| n.max(t)));
        let decisions = self.engine.tick(&self.sim, t);
        self.execute(decisions, t)
    }

    fn execute(&mut self, decisions: Vec<Decision>, now: Timestamp) -> Vec<ReplayStep> {
        decisions
            .into_iter()
            .map(|decision| {
                let outcome = decision.plan.as_ref().map(|plan| {
                    // Actions happen in cluster time, which an older alert does not rewind.
                    let at = now.max(self.sim.now());
                    let outcome = self.sim.apply(plan, at);
                    self.engine.record(plan.id, &outcome, at);
                    outcome
                });
                ReplayStep { decision, outcome }
            })
            .collect()
    }
}

/// Replay `alerts` in order and settle: every decision, deferred resolutions included.
pub fn replay(
    engine: Engine,
    sim: SimCluster,
    alerts: impl IntoIterator<Item = Alert>,
) -> Vec<ReplayStep> {
    let mut r = Replayer::new(engine, sim);
    let mut out = Vec::new();
    for alert in alerts {
        out.extend(r.push(alert));
    }
    out.extend(r.finish());
    out
}
