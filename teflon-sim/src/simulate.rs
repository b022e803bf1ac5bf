//! Attacks as load: a Deployment under attack, the engine reaping infected pods, optionally
//! the autoscaler following the replicas-needed figure; sampled over simulated time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use teflon_core::autoscale::{AutoscaleSpec, Autoscaler};
use teflon_core::{
    ClusterView, Decision, Engine, PolicySet, Reason, Timestamp, Verdict, WorkloadKind, WorkloadRef,
};

use crate::attack::Attackers;
use crate::cluster::{SimCluster, SimEvent};

/// The policy file used when none is given: delete pods that the attack model's rules report,
/// keeping at least one available pod, deferring when availability blocks.
pub const DEFAULT_POLICIES: &str = include_str!("default-policies.yaml");

/// Where a simulation starts: 2026-01-01T00:00:00Z (any fixed time would do; it only shows in alerts).
pub const DEFAULT_START: Timestamp = Timestamp::from_secs(1_767_225_600);

/// Autoscaling settings for a simulation (bounds and pacing of [`Autoscaler`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoscaleSettings {
    /// Never more replicas than this (the minimum is the scenario's `replicas`).
    pub max_replicas: u32,
    /// Minimum time between two changes.
    pub cooldown: Duration,
    /// Scale down only to the highest recommendation of this window.
    pub scale_down_stabilization: Duration,
}

/// A time span of the attack, in seconds from the start of the run: `[from, until)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttackPhase {
    /// The attack starts (its onset).
    pub from: Duration,
    /// The attack stops.
    pub until: Duration,
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Namespace of the attacked Deployment.
    pub namespace: String,
    /// Name of the attacked Deployment.
    pub name: String,
    /// Its desired replicas at the start (and the autoscaler's minimum).
    pub replicas: u32,
    /// The attack.
    pub attackers: Attackers,
    /// When the attackers attack; empty: the whole run.
    pub phases: Vec<AttackPhase>,
    /// Reap → replacement Ready.
    pub recovery: Duration,
    /// How long to simulate.
    pub duration: Duration,
    /// Sampling (and autoscaler evaluation) interval.
    pub step: Duration,
    /// Scale with the attack, when set.
    pub autoscale: Option<AutoscaleSettings>,
    /// Simulated start time.
    pub start: Timestamp,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            namespace: "shop".to_owned(),
            name: "web".to_owned(),
            replicas: 3,
            attackers: Attackers {
                count: 1,
                mean_interval: Duration::from_secs(30),
                seed: 1,
            },
            phases: Vec::new(),
            recovery: Duration::from_secs(15),
            duration: Duration::from_secs(600),
            step: Duration::from_secs(5),
            autoscale: None,
            start: DEFAULT_START,
        }
    }
}

impl Scenario {
    /// The attacked workload.
    pub fn workload(&self) -> WorkloadRef {
        WorkloadRef::new(WorkloadKind::Deployment, &self.namespace, &self.name)
    }
}

/// The state of the attacked workload at one sampling time.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the start.
    pub time_secs: f64,
    /// Ready pods serving.
    pub available: u32,
    /// Infected pods still serving (not reaped, not quarantined).
    pub infected: u32,
    /// Desired replicas.
    pub desired: u32,
    /// Actions waiting for availability.
    pub pending_deferrals: u32,
    /// Infections so far (attacks that found a pod).
    pub infections_total: u64,
    /// Reaps so far.
    pub reaps_total: u64,
    /// Replicas needed by Little's law (the engine's ledger).
    pub replicas_needed: u32,
    /// Replicas needed ÷ desired.
    pub attack_pressure: f64,
}

impl Sample {
    /// `available / desired` (1 when nothing is desired).
    pub fn available_ratio(&self) -> f64 {
        ratio(self.available, self.desired)
    }
}

/// The figures of a whole run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    /// Simulated seconds.
    pub duration_secs: f64,
    /// Fewest available pods at any moment.
    pub min_available: u32,
    /// Time-weighted mean of available pods.
    pub mean_available: f64,
    /// Lowest `available / desired` at any moment.
    pub min_ratio: f64,
    /// Time-weighted mean of `available / desired`.
    pub mean_ratio: f64,
    /// ∫ infected serving pods dt: how long attackers kept a foothold.
    pub infected_pod_seconds: f64,
    /// Attacks made (including those that found no available pod).
    pub attacks: u64,
    /// Attacks that hit a pod (an alert each).
    pub infections: u64,
    /// Attacks that hit a pod not infected before.
    pub pods_infected: u64,
    /// Mean attacker dwell per infected pod: `infected_pod_seconds / pods_infected`.
    pub mean_dwell_secs: f64,
    /// Disruptive actions that took effect.
    pub reaps: u64,
    /// Decisions deferred (each later resolves as `deferred_ready` or a skip).
    pub deferrals: u64,
    /// Skips by reason code.
    pub skips: BTreeMap<Reason, u64>,
    /// Every decision by reason code.
    pub reasons: BTreeMap<Reason, u64>,
    /// Most desired replicas at any moment (autoscaling).
    pub max_desired: u32,
    /// Scale changes made by the autoscaler.
    pub scale_changes: u64,
}

/// Samples and summary of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationReport {
    /// One per `step`, from the start to the end inclusive.
    pub samples: Vec<Sample>,
    /// The whole run.
    pub summary: Summary,
}

/// The CSV header of [`SimulationReport::to_csv`].
pub const CSV_HEADER: &str = "time_secs,available,infected,desired,available_ratio,pending_deferrals,infections_total,reaps_total,replicas_needed,attack_pressure";

impl SimulationReport {
    /// `timeseries.csv`: [`CSV_HEADER`] and one line per sample.
    pub fn to_csv(&self) -> String {
        let mut s = String::with_capacity(64 * (self.samples.len() + 1));
        s.push_str(CSV_HEADER);
        s.push('\n');
        for x in &self.samples {
            let _ = writeln!(
                s,
                "{:.3},{},{},{},{:.4},{},{},{},{},{:.4}",
                x.time_secs,
                x.available,
                x.infected,
                x.desired,
                x.available_ratio(),
                x.pending_deferrals,
                x.infections_total,
                x.reaps_total,
                x.replicas_needed,
                x.attack_pressure
            );
        }
        s
    }
}

fn ratio(available: u32, desired: u32) -> f64 {
    if desired == 0 {
        1.0
    } else {
        f64::from(available) / f64::from(desired)
    }
}

struct Run {
    engine: Engine,
    sim: SimCluster,
    summary: Summary,
}

impl Run {
    fn handle(&mut self, decisions: Vec<Decision>, now: Timestamp) {
        for d in decisions {
            *self.summary.reasons.entry(d.reason).or_default() += 1;
            match d.verdict {
                Verdict::Defer => self.summary.deferrals += 1,
                Verdict::Skip => *self.summary.skips.entry(d.reason).or_default() += 1,
                Verdict::Act => {}
            }
            if let Some(plan) = &d.plan {
                let outcome = self.sim.apply(plan, now);
                if plan.action.kind().is_disruptive() && outcome.took_effect() {
                    self.summary.reaps += 1;
                }
                self.engine.record(plan.id, &outcome, now);
            }
        }
    }
}

/// Run `scenario` under `policies`.
///
/// Event-driven in simulated time: attacks, replacements becoming Ready, deferral deadlines,
/// samples and autoscaler evaluations are processed in time order (cluster changes first, then
/// attacks, then scaling, then the sample). Deterministic for a given scenario.
pub fn run(scenario: &Scenario, policies: PolicySet) -> SimulationReport {
    let w = scenario.workload();
    let step = scenario.step.max(Duration::from_millis(1));
    let start = scenario.start;
    let end = start.plus(scenario.duration);
    let mut run = Run {
        engine: Engine::new(policies),
        sim: SimCluster::new(scenario.recovery).with_deployment(
            &scenario.namespace,
            &scenario.name,
            scenario.replicas,
        ),
        summary: Summary::default(),
    };
    let phases: Vec<(Timestamp, Timestamp)> = scenario
        .phases
        .iter()
        .map(|p| (start.plus(p.from), start.plus(p.until)))
        .collect();
    let mut attacks = scenario.attackers.start_in(start, &phases);
    let mut autoscaler = scenario.autoscale.map(|a| {
        Autoscaler::new(AutoscaleSpec {
            workload: w.clone(),
            min_replicas: scenario.replicas,
            max_replicas: a.max_replicas.max(scenario.replicas),
            cooldown: a.cooldown,
            scale_down_stabilization: a.scale_down_stabilization,
        })
    });
    let mut samples = Vec::new();
    let mut next_sample = start;
    let mut next_scale = start.plus(step);
    let mut now = start;
    let mut min_available = u32::MAX;
    let mut min_ratio = f64::INFINITY;
    let (mut avail_integral, mut ratio_integral, mut infected_integral) = (0.0, 0.0, 0.0);
    let mut max_desired = scenario.replicas;

    loop {
        let status = run.sim.workload(&w).unwrap_or_default();
        let infected = run.sim.infected_pods();
        min_available = min_available.min(status.available);
        min_ratio = min_ratio.min(ratio(status.available, status.desired));
        max_desired = max_desired.max(status.desired);
        if now >= end {
            break;
        }
        let next = [
            attacks.next_time(),
            run.sim.next_event_time(),
            run.engine.next_deadline(now),
            Some(next_sample),
            autoscaler.as_ref().map(|_| next_scale),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(end)
        .clamp(now, end);
        let dt = next.since(now).as_secs_f64();
        avail_integral += f64::from(status.available) * dt;
        ratio_integral += ratio(status.available, status.desired) * dt;
        infected_integral += f64::from(infected) * dt;
        now = next;

        for event in run.sim.advance_to(now) {
            if let SimEvent::Recreated {
                workload, took, at, ..
            } = event
            {
                run.engine.record_recreation(&workload, took, at);
            }
        }
        let resolved = run.engine.tick(&run.sim, now);
        run.handle(resolved, now);

        while attacks.next_time().is_some_and(|t| t <= now) {
            let Some(attack) = attacks.fire_next(&mut run.sim) else {
                break;
            };
            if let Some(alert) = attack.alert {
                run.summary.infections += 1;
                run.summary.pods_infected += u64::from(attack.new_infection);
                let decisions = run.engine.decide(alert, &run.sim, now);
                run.handle(decisions, now);
            }
        }

        if let Some(a) = autoscaler.as_mut()
            && next_scale <= now
        {
            run.engine.prune(&run.sim, now);
            let stats = run.engine.stats_for(&w, &run.sim, now);
            let current = run.sim.desired(&w).unwrap_or(scenario.replicas);
            if let Some(d) = a.evaluate(stats.as_ref(), current, now) {
                run.sim.set_desired(&w, d.to, now);
                run.summary.scale_changes += 1;
            }
            next_scale = next_scale.plus(step);
        }

        if next_sample <= now {
            let status = run.sim.workload(&w).unwrap_or_default();
            let stats = run.engine.stats_for(&w, &run.sim, now);
            samples.push(Sample {
                time_secs: now.since(start).as_secs_f64(),
                available: status.available,
                infected: run.sim.infected_pods(),
                desired: status.desired,
                pending_deferrals: u32::try_from(run.engine.deferrals().len()).unwrap_or(u32::MAX),
                infections_total: run.summary.infections,
                reaps_total: run.summary.reaps,
                replicas_needed: stats.as_ref().map_or(0, |s| s.replicas_needed),
                attack_pressure: stats.as_ref().map_or(0.0, |s| s.attack_pressure),
            });
            next_sample = next_sample.plus(step);
        }
    }

    let total = scenario.duration.as_secs_f64();
    let mut summary = run.summary;
    summary.attacks = attacks.fired();
    summary.duration_secs = total;
    summary.min_available = if min_available == u32::MAX {
        0
    } else {
        min_available
    };
    summary.min_ratio = if min_ratio.is_finite() {
        min_ratio
    } else {
        1.0
    };
    if total > 0.0 {
        summary.mean_available = avail_integral / total;
        summary.mean_ratio = ratio_integral / total;
    } else {
        summary.mean_available = f64::from(summary.min_available);
        summary.mean_ratio = summary.min_ratio;
    }
    summary.infected_pod_seconds = infected_integral;
    summary.mean_dwell_secs = if summary.pods_infected == 0 {
        0.0
    } else {
        infected_integral / summary.pods_infected as f64
    };
    summary.max_desired = max_desired;
    SimulationReport { samples, summary }
}
