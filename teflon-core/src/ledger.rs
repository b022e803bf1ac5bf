//! The infection ledger: attacks as load (SPEC §7).
//!
//! Per workload it keeps the attack's hits, the infected pods, the reaps and their
//! recreations, and turns them into replicas needed by Little's law. The estimators are honest
//! at the onset of an attack and while the guard holds infected pods back (docs/custom-metrics.md
//! has the model with its formulas):
//!
//! - **attack rate** `λ̂ = (n − 1) / max(t − t₁, MIN_RATE_SPAN)`: the `n` hits of the sliding
//!   window over the time actually observed since the oldest of them (`t₁`), not over the
//!   whole window. A hit is every alert that hits a pod (re-infections of an infected or
//!   deferred pod included), once per alert, except alerts about a pod already reaped.
//! - **time to recreation** `T̂`: the Kaplan–Meier restricted mean of the window's recreation
//!   times, where reaps still waiting for their replacement are censored at their age (they
//!   count as "at least this long"); the last one seen when the window has none.
//! - **backlog** `B`: infected pods not yet reaped (hit within the window, or with a deferred
//!   action), not counting pods only dry-run or protected policies matched.
//! - **replicas needed** `m + ⌈max over the last HOLD of (λ̂ · T̂) + B⌉`: the pods in
//!   recreation rise at once and fall only when the estimate has been lower for `HOLD` (the
//!   hysteresis); the backlog is the current one. It reaches `m` at most one window after the
//!   last hit (the decay).
//!
//! Size: about 570 lines before its tests, kept in one file: the estimators (rate, recreation,
//! dwell, backlog, pressure, decay) read the same per-workload windows; their formulas are checked
//! together.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use crate::cluster::{ClusterView, WorkloadRef};
use crate::decision::Infection;
use crate::policy::MinAvailable;
use crate::time::Timestamp;

/// The attack rate is never taken over less than this (the first hits of an attack).
pub const MIN_RATE_SPAN: Duration = Duration::from_secs(5);

/// Replicas needed is the highest estimate of this long: a dip shorter than this never lowers
/// it (no flapping), a rise shows at once.
pub const HOLD: Duration = Duration::from_secs(30);

/// The estimate is sampled for [`HOLD`] at most this often per workload (at hits).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Hits closer than this to the first hit of the latest bucket share it (memory stays bounded
/// under an alert flood; the rate is taken from a bucket's first hit on).
const HIT_BUCKET: Duration = Duration::from_secs(1);

/// An infected pod is backlog once it has waited this long for its reap: a pod reaped at once
/// (the normal case, milliseconds after its alert) never is.
pub const BACKLOG_GRACE: Duration = Duration::from_secs(1);

/// How an alert hit a pod, as the engine saw it when it decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The alert's sequence number: several policies matching one alert are one hit.
    pub seq: u64,
    /// The pod was already reaped (the alert is the tail of an intrusion already dealt with):
    /// not a hit.
    pub reaped: bool,
    /// The pod is waiting for a reap (the policy acts for real, outside protected namespaces):
    /// it counts in the backlog until reaped.
    pub backlog: bool,
}

/// The numbers the metrics and the custom-metrics API read, for one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadStats {
    /// The workload.
    pub workload: WorkloadRef,
    /// Infections ever recorded (once per pod).
    pub infections_total: u64,
    /// Hits ever recorded (every alert that hit a pod not yet reaped).
    pub hits_total: u64,
    /// Pods infected and not yet reaped or gone.
    pub infected_pods: u32,
    /// The attack rate `λ̂` in hits per minute, over the time observed (see the module docs).
    pub infection_rate_per_minute: f64,
    /// Time to recreation `T̂`: reaps still waiting count at least their age. `None` before
    /// any reap was seen.
    pub time_to_recreation: Option<Duration>,
    /// Infected pods waiting for their reap (`B`).
    pub backlog: u32,
    /// Reaps that took effect.
    pub reaps_total: u64,
    /// Desired replicas (0 when the cluster no longer has the workload).
    pub desired: u32,
    /// Ready replicas.
    pub available: u32,
    /// `available / desired` (1 when desired is 0).
    pub available_ratio: f64,
    /// `min_available` of the policy that last matched, resolved against `desired`.
    pub min_available: u32,
    /// `min_available + ⌈max over the last HOLD of (λ̂ · T̂) + B⌉`.
    pub replicas_needed: u32,
    /// `replicas_needed / desired`; above 1 the attackers are winning.
    pub attack_pressure: f64,
}

#[derive(Debug, Clone)]
struct InfectedPod {
    uid: Option<String>,
    /// Infected since.
    since: Timestamp,
    /// The last hit on it.
    last_hit: Timestamp,
    /// A policy that acts for real matched it.
    backlog: bool,
}

#[derive(Debug, Clone)]
struct WorkloadLedger {
    infections_total: u64,
    hits_total: u64,
    /// Hits in buckets of [`HIT_BUCKET`]: (time of the bucket's first hit, hits), oldest first,
    /// trimmed to the window on every change. At most one window's worth of buckets, whatever
    /// the alert rate.
    hits: VecDeque<(Timestamp, u32)>,
    last_infection: Option<Timestamp>,
    infected: BTreeMap<String, InfectedPod>,
    /// (when the replacement became Ready, reap → Ready), oldest first.
    recreations: VecDeque<(Timestamp, Duration)>,
    /// Reaps whose replacement is not Ready yet, oldest first.
    open_reaps: VecDeque<Timestamp>,
    last_recreation: Option<Duration>,
    min_available: MinAvailable,
    reaps_total: u64,
    last_activity: Timestamp,
    /// Samples of `λ̂ · T̂` for [`HOLD`]: times increasing, values decreasing.
    peaks: VecDeque<(Timestamp, f64)>,
    last_sample: Option<Timestamp>,
}

impl WorkloadLedger {
    fn new(now: Timestamp) -> Self {
        WorkloadLedger {
            infections_total: 0,
            hits_total: 0,
            hits: VecDeque::new(),
            last_infection: None,
            infected: BTreeMap::new(),
            recreations: VecDeque::new(),
            open_reaps: VecDeque::new(),
            last_recreation: None,
            min_available: MinAvailable::Count(1),
            reaps_total: 0,
            last_activity: now,
            peaks: VecDeque::new(),
            last_sample: None,
        }
    }

    fn expire(&mut self, now: Timestamp, window: Duration) {
        let since = now.minus(window);
        while self.hits.front().is_some_and(|(t, _)| *t < since) {
            self.hits.pop_front();
        }
        while self.recreations.front().is_some_and(|(t, _)| *t < since) {
            self.recreations.pop_front();
        }
        // A reap older than the window whose replacement never came (the workload was scaled
        // down meanwhile, the report was lost) is forgotten rather than censored forever.
        while self.open_reaps.front().is_some_and(|t| *t < since) {
            self.open_reaps.pop_front();
        }
        let hold_since = now.minus(HOLD);
        while self.peaks.front().is_some_and(|(t, _)| *t <= hold_since) {
            self.peaks.pop_front();
        }
    }

    /// `λ̂` in hits per second at `now`.
    fn rate_per_sec(&self, now: Timestamp, window: Duration) -> f64 {
        let since = now.minus(window);
        let lo = self.hits.partition_point(|(t, _)| *t < since);
        let hi = self.hits.partition_point(|(t, _)| *t <= now);
        let Some(&(first, _)) = self.hits.get(lo).filter(|_| lo < hi) else {
            return 0.0;
        };
        let n: u64 = self.hits.range(lo..hi).map(|(_, k)| u64::from(*k)).sum();
        if n < 2 {
            return 0.0;
        }
        let span = now.since(first).max(MIN_RATE_SPAN).as_secs_f64();
        (n - 1) as f64 / span
    }

    fn add_hit(&mut self, now: Timestamp) {
        match self.hits.back_mut() {
            Some((first, k)) if now >= *first && now.since(*first) < HIT_BUCKET => {
                *k = k.saturating_add(1);
            }
            _ => self.hits.push_back((now, 1)),
        }
    }

    /// `T̂` at `now`.
    fn time_to_recreation(&self, now: Timestamp, window: Duration) -> Option<Duration> {
        let since = now.minus(window);
        let mut obs: Vec<(f64, bool)> = self
            .recreations
            .iter()
            .filter(|(t, _)| *t >= since && *t <= now)
            .map(|(_, d)| (d.as_secs_f64(), true))
            .chain(
                self.open_reaps
                    .iter()
                    .filter(|t| **t >= since && **t <= now)
                    .map(|t| (now.since(*t).as_secs_f64(), false)),
            )
            .collect();
        if obs.is_empty() {
            return self.last_recreation;
        }
        Duration::try_from_secs_f64(restricted_mean(&mut obs)).ok()
    }

    /// `B` at `now`: pods waiting for their reap (for [`BACKLOG_GRACE`] at least), hit within
    /// the window or deferred.
    fn backlog(
        &self,
        namespace: &str,
        now: Timestamp,
        window: Duration,
        deferred: &[(&str, &str)],
    ) -> u32 {
        let since = now.minus(window);
        let waited = now.minus(BACKLOG_GRACE);
        let n = self
            .infected
            .iter()
            .filter(|(pod, p)| {
                p.backlog
                    && p.since <= waited
                    && (p.last_hit >= since
                        || deferred
                            .iter()
                            .any(|(ns, d)| *ns == namespace && *d == pod.as_str()))
            })
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// `λ̂ · T̂`: the pods in recreation by Little's law.
    fn in_recreation(&self, now: Timestamp, window: Duration) -> f64 {
        let rate = self.rate_per_sec(now, window);
        let ttr = self.time_to_recreation(now, window);
        rate * ttr.map_or(0.0, |d| d.as_secs_f64())
    }

    /// Remember `λ̂ · T̂` at a hit for [`HOLD`] (at most once per [`SAMPLE_EVERY`]).
    fn sample(&mut self, now: Timestamp, window: Duration) {
        if self
            .last_sample
            .is_some_and(|t| now >= t && now.since(t) < SAMPLE_EVERY)
        {
            return;
        }
        self.last_sample = Some(now);
        let x = self.in_recreation(now, window);
        while self.peaks.back().is_some_and(|(_, v)| *v <= x) {
            self.peaks.pop_back();
        }
        self.peaks.push_back((now, x));
    }

    /// The highest sample of the last [`HOLD`] before `now`.
    fn held(&self, now: Timestamp) -> f64 {
        let since = now.minus(HOLD);
        self.peaks
            .iter()
            .filter(|(t, _)| *t > since && *t <= now)
            .map(|(_, x)| *x)
            .fold(0.0, f64::max)
    }
}

/// The Kaplan–Meier restricted mean of durations `(secs, completed)`; censored ones (`false`)
/// are "at least this long". The mean is restricted to the longest observation, so with only
/// censored durations it is the longest of them: a lower bound, as the data allow.
fn restricted_mean(obs: &mut [(f64, bool)]) -> f64 {
    // At equal times, completions come first (the censored ones were still at risk).
    obs.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut at_risk = obs.len() as f64;
    let (mut survival, mut prev, mut mean) = (1.0_f64, 0.0_f64, 0.0_f64);
    let mut i = 0;
    while let Some(&(t, _)) = obs.get(i) {
        mean += survival * (t - prev);
        prev = t;
        let (mut done, mut left) = (0.0, 0.0);
        while let Some(&(u, completed)) = obs.get(i) {
            if u.total_cmp(&t).is_ne() {
                break;
            }
            if completed {
                done += 1.0;
            } else {
                left += 1.0;
            }
            i += 1;
        }
        if done > 0.0 && at_risk > 0.0 {
            survival *= 1.0 - done / at_risk;
        }
        at_risk -= done + left;
    }
    mean
}

#[derive(Debug, Clone)]
struct Seen {
    uid: Option<String>,
    at: Timestamp,
    last_seq: u64,
}

/// Per-workload infection bookkeeping.
#[derive(Debug, Clone)]
pub struct Ledger {
    window: Duration,
    retention: Duration,
    workloads: BTreeMap<WorkloadRef, WorkloadLedger>,
    /// `ns/pod` → UID, last hit and its alert of every pod ever infected (within retention):
    /// infections count once per pod; a pod with the same name and another UID (StatefulSet)
    /// is a new pod.
    seen: HashMap<String, Seen>,
}

impl Ledger {
    /// A ledger with a sliding `window` for rates and a `retention` for forgetting idle workloads.
    pub fn new(window: Duration, retention: Duration) -> Self {
        Ledger {
            window,
            retention,
            workloads: BTreeMap::new(),
            seen: HashMap::new(),
        }
    }

    /// The sliding window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Record that an alert hit `pod` of `workload` (`pod_key` is `namespace/pod`). Returns the
    /// infection when this pod was not infected before (infections count once per pod); the
    /// hit itself counts toward the attack rate once per alert, unless the pod was reaped.
    #[allow(clippy::too_many_arguments)]
    pub fn infect(
        &mut self,
        workload: &WorkloadRef,
        pod_key: &str,
        pod: &str,
        uid: Option<&str>,
        min_available: MinAvailable,
        hit: Hit,
        now: Timestamp,
    ) -> Option<Infection> {
        let (new_pod, new_alert) = match self.seen.get_mut(pod_key) {
            Some(s) if s.uid.as_deref() == uid => {
                let new_alert = s.last_seq != hit.seq;
                s.last_seq = hit.seq;
                s.at = now;
                (false, new_alert)
            }
            Some(s) => {
                *s = Seen {
                    uid: uid.map(str::to_owned),
                    at: now,
                    last_seq: hit.seq,
                };
                (true, true)
            }
            None => {
                self.seen.insert(
                    pod_key.to_owned(),
                    Seen {
                        uid: uid.map(str::to_owned),
                        at: now,
                        last_seq: hit.seq,
                    },
                );
                (true, true)
            }
        };
        let window = self.window;
        let w = self
            .workloads
            .entry(workload.clone())
            .or_insert_with(|| WorkloadLedger::new(now));
        let counts = new_alert && !hit.reaped;
        if counts {
            w.hits_total += 1;
            w.add_hit(now);
        }
        w.min_available = min_available;
        w.last_activity = now;
        let infection = if new_pod {
            let since_previous = w.last_infection.map(|t| now.since(t));
            w.infections_total += 1;
            w.last_infection = Some(now);
            w.infected.insert(
                pod.to_owned(),
                InfectedPod {
                    uid: uid.map(str::to_owned),
                    since: now,
                    last_hit: now,
                    backlog: hit.backlog,
                },
            );
            Some(Infection {
                workload: workload.clone(),
                since_previous,
            })
        } else {
            if let Some(p) = w.infected.get_mut(pod) {
                if counts {
                    p.last_hit = now;
                }
                p.backlog |= hit.backlog;
            }
            None
        };
        w.expire(now, window);
        if counts {
            w.sample(now, window);
        }
        infection
    }

    /// The pod was reaped (or found gone): it is no longer infected. A reap that took effect
    /// waits for its replacement (censored in the time to recreation until it comes).
    pub fn cure(&mut self, workload: &WorkloadRef, pod: &str, reaped: bool, now: Timestamp) {
        let window = self.window;
        if let Some(w) = self.workloads.get_mut(workload) {
            w.infected.remove(pod);
            if reaped {
                w.reaps_total += 1;
                w.open_reaps.push_back(now);
            }
            w.last_activity = now;
            w.expire(now, window);
        }
    }

    /// An adapter saw a reaped pod's replacement become Ready `took` after the reap.
    pub fn record_recreation(&mut self, workload: &WorkloadRef, took: Duration, now: Timestamp) {
        let window = self.window;
        let w = self
            .workloads
            .entry(workload.clone())
            .or_insert_with(|| WorkloadLedger::new(now));
        // The reap it answers: the open one closest to `now − took`.
        let reaped_at = now.minus(took);
        if let Some(i) = (0..w.open_reaps.len()).min_by_key(|i| {
            w.open_reaps
                .get(*i)
                .map_or(u64::MAX, |t| abs_nanos(*t, reaped_at))
        }) {
            w.open_reaps.remove(i);
        }
        w.recreations.push_back((now, took));
        w.last_recreation = Some(took);
        w.last_activity = now;
        w.expire(now, window);
    }

    /// True when `namespace/pod` is currently counted as infected.
    pub fn is_infected(&self, namespace: &str, pod: &str) -> bool {
        self.workloads
            .iter()
            .any(|(w, l)| w.namespace == namespace && l.infected.contains_key(pod))
    }

    /// Currently infected pods as `(namespace, pod)`, sorted.
    pub fn infected_pods(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .workloads
            .iter()
            .flat_map(|(w, l)| l.infected.keys().map(|p| (w.namespace.clone(), p.clone())))
            .collect();
        out.sort();
        out
    }

    /// Forget what the cluster no longer has: infected pods that are gone (or replaced by a
    /// pod with another UID), and idle workloads past retention.
    pub fn prune(&mut self, view: &impl ClusterView, now: Timestamp) {
        let window = self.window;
        for (wref, w) in &mut self.workloads {
            w.infected
                .retain(|pod, p| match view.pod(&wref.namespace, pod) {
                    None => false,
                    Some(info) => p.uid.is_none() || info.uid.is_none() || info.uid == p.uid,
                });
            w.expire(now, window);
        }
        let horizon = now.minus(self.retention);
        self.workloads
            .retain(|_, w| !w.infected.is_empty() || w.last_activity >= horizon);
        self.seen.retain(|_, s| s.at >= horizon);
    }

    /// Stats for every workload the ledger knows, sorted by workload. `deferred` names the
    /// pods (`namespace`, `pod`) with a pending deferred action: they count in the backlog.
    pub fn stats(
        &self,
        view: &impl ClusterView,
        now: Timestamp,
        deferred: &[(&str, &str)],
    ) -> Vec<WorkloadStats> {
        self.workloads
            .iter()
            .map(|(wref, w)| self.stats_of(wref, w, view, now, deferred))
            .collect()
    }

    /// Stats for one workload, if the ledger knows it (`deferred` as for [`Ledger::stats`]).
    pub fn stats_for(
        &self,
        workload: &WorkloadRef,
        view: &impl ClusterView,
        now: Timestamp,
        deferred: &[(&str, &str)],
    ) -> Option<WorkloadStats> {
        self.workloads
            .get(workload)
            .map(|w| self.stats_of(workload, w, view, now, deferred))
    }

    fn stats_of(
        &self,
        wref: &WorkloadRef,
        w: &WorkloadLedger,
        view: &impl ClusterView,
        now: Timestamp,
        deferred: &[(&str, &str)],
    ) -> WorkloadStats {
        let rate_per_sec = w.rate_per_sec(now, self.window);
        let ttr = w.time_to_recreation(now, self.window);
        let backlog = w.backlog(&wref.namespace, now, self.window, deferred);
        let in_recreation = (rate_per_sec * ttr.map_or(0.0, |d| d.as_secs_f64())).max(w.held(now));
        let excess = in_recreation + f64::from(backlog);
        let status = view.workload(wref).unwrap_or_default();
        let min_available = w.min_available.required(status.desired);
        // A hair below an integer is that integer (float noise must not add a replica).
        let extra = (excess - 1e-9).ceil().clamp(0.0, f64::from(u32::MAX)) as u32;
        let replicas_needed = min_available.saturating_add(extra);
        let attack_pressure = f64::from(replicas_needed) / f64::from(status.desired.max(1));
        WorkloadStats {
            workload: wref.clone(),
            infections_total: w.infections_total,
            hits_total: w.hits_total,
            infected_pods: u32::try_from(w.infected.len()).unwrap_or(u32::MAX),
            infection_rate_per_minute: rate_per_sec * 60.0,
            time_to_recreation: ttr,
            backlog,
            reaps_total: w.reaps_total,
            desired: status.desired,
            available: status.available,
            available_ratio: if status.desired == 0 {
                1.0
            } else {
                f64::from(status.available) / f64::from(status.desired)
            },
            min_available,
            replicas_needed,
            attack_pressure,
        }
    }
}

fn abs_nanos(a: Timestamp, b: Timestamp) -> u64 {
    a.as_nanos().abs_diff(b.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{StaticCluster, WorkloadKind};

    fn web() -> WorkloadRef {
        WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")
    }

    fn t(secs: f64) -> Timestamp {
        Timestamp::from_nanos((secs * 1e9) as i64)
    }

    fn ledger() -> Ledger {
        Ledger::new(Duration::from_secs(300), Duration::from_secs(3600))
    }

    /// Alert `seq` hits `pod` (a policy that acts for real, pod not reaped).
    fn hit(l: &mut Ledger, seq: u64, pod: &str, at: Timestamp) -> Option<Infection> {
        l.infect(
            &web(),
            &format!("shop/{pod}"),
            pod,
            Some(&format!("uid-{pod}")),
            MinAvailable::Count(1),
            Hit {
                seq,
                reaped: false,
                backlog: true,
            },
            at,
        )
    }

    fn stats(l: &Ledger, desired: u32, at: Timestamp) -> WorkloadStats {
        let view = StaticCluster::new().deployment("shop", "web", desired, desired);
        l.stats_for(&web(), &view, at, &[]).unwrap()
    }

    #[test]
    fn the_same_pod_is_infected_once_but_every_alert_is_a_hit() {
        let mut l = ledger();
        assert!(hit(&mut l, 0, "web-0", t(100.0)).is_some());
        assert!(hit(&mut l, 1, "web-0", t(101.0)).is_none());
        // A second policy matching the same alert is the same hit.
        assert!(hit(&mut l, 1, "web-0", t(101.0)).is_none());
        let s = stats(&l, 3, t(101.0));
        assert_eq!((s.infections_total, s.hits_total), (1, 2));
    }

    #[test]
    fn alerts_about_a_pod_already_reaped_are_not_hits() {
        let mut l = ledger();
        hit(&mut l, 0, "web-0", t(100.0));
        l.cure(&web(), "web-0", true, t(100.0));
        l.infect(
            &web(),
            "shop/web-0",
            "web-0",
            Some("uid-web-0"),
            MinAvailable::Count(1),
            Hit {
                seq: 1,
                reaped: true,
                backlog: true,
            },
            t(100.5),
        );
        let s = stats(&l, 3, t(101.0));
        assert_eq!(s.hits_total, 1);
        assert_eq!(s.backlog, 0);
    }

    #[test]
    fn an_alert_flood_keeps_one_bucket_a_second() {
        // 100 000 alerts over 10 s about one infected pod: the rate is right and the ledger
        // holds a bucket per second, not a timestamp per alert.
        let mut l = ledger();
        for i in 0..100_000u64 {
            hit(&mut l, i, "web-0", t(100.0 + i as f64 * 1e-4));
        }
        let s = stats(&l, 3, t(110.0));
        assert!(
            (s.infection_rate_per_minute / 60.0 - 10_000.0).abs() < 1.0,
            "{s:?}"
        );
        assert!(l.workloads[&web()].hits.len() <= 11);
        assert_eq!(s.hits_total, 100_000);
    }

    #[test]
    fn time_between_infections_is_reported() {
        let mut l = ledger();
        hit(&mut l, 0, "web-0", t(100.0));
        let i = hit(&mut l, 1, "web-1", t(107.0)).unwrap();
        assert_eq!(i.since_previous, Some(Duration::from_secs(7)));
    }

    #[test]
    fn at_onset_the_rate_is_taken_over_the_time_observed_not_the_window() {
        // One hit a second for 20 s of a 300 s window: 1/s, not 20/300.
        let mut l = ledger();
        for i in 0..21 {
            hit(&mut l, i, &format!("web-{i}"), t(100.0 + i as f64));
        }
        let s = stats(&l, 3, t(120.0));
        assert!((s.infection_rate_per_minute - 60.0).abs() < 1e-9, "{s:?}");
        // The first seconds are taken over at least MIN_RATE_SPAN: two hits 0.1 s apart are
        // not 10/s.
        let mut l = ledger();
        hit(&mut l, 0, "web-0", t(100.0));
        hit(&mut l, 1, "web-1", t(100.1));
        let s = stats(&l, 3, t(100.1));
        assert!(
            (s.infection_rate_per_minute - 60.0 / 5.0).abs() < 1e-9,
            "{s:?}"
        );
    }

    #[test]
    fn a_lone_alert_is_no_rate_and_backlog_only_while_its_reap_waits() {
        let mut l = ledger();
        hit(&mut l, 0, "web-0", t(100.0));
        let s = stats(&l, 3, t(100.0));
        assert_eq!(s.infection_rate_per_minute, 0.0);
        // Reaped at once (the normal case), it never was backlog.
        assert_eq!((s.backlog, s.replicas_needed), (0, 1));
        // Still waiting a second and a half later: one pod of backlog.
        let s = stats(&l, 3, t(101.5));
        assert_eq!((s.backlog, s.replicas_needed), (1, 2));
        l.cure(&web(), "web-0", true, t(102.0));
        assert_eq!(stats(&l, 3, t(102.1)).replicas_needed, 1);
    }

    #[test]
    fn reaps_waiting_for_their_replacement_count_at_least_their_age() {
        let mut l = ledger();
        hit(&mut l, 0, "web-0", t(100.0));
        l.cure(&web(), "web-0", true, t(100.0));
        hit(&mut l, 1, "web-1", t(104.0));
        l.cure(&web(), "web-1", true, t(104.0));
        // No replacement came back yet: the oldest reap is 8 s old, so recreation takes ≥ 8 s.
        assert_eq!(
            stats(&l, 3, t(108.0)).time_to_recreation,
            Some(Duration::from_secs(8))
        );
        // The first replacement is Ready 10 s after its reap; the other reap (6 s old) is
        // still censored, below every completed time: the estimate is 10 s.
        l.record_recreation(&web(), Duration::from_secs(10), t(110.0));
        assert_eq!(
            stats(&l, 3, t(110.0)).time_to_recreation,
            Some(Duration::from_secs(10))
        );
        // A reap stuck for 40 s (next to a 10 s one) pulls the estimate up: half the
        // population took 10 s, the other half at least 40 s → at least 25 s.
        let s = stats(&l, 3, t(144.0));
        assert_eq!(s.time_to_recreation, Some(Duration::from_secs(25)));
    }

    #[test]
    fn under_saturation_re_infections_and_held_back_pods_count() {
        // 3 replicas, min_available 1: two reaps take the service to its floor; the last Ready
        // pod is infected and held back, and the attack keeps hitting it once a second.
        let mut l = ledger();
        hit(&mut l, 0, "web-a", t(0.0));
        l.cure(&web(), "web-a", true, t(0.0));
        hit(&mut l, 1, "web-b", t(1.0));
        l.cure(&web(), "web-b", true, t(1.0));
        for i in 2..=10 {
            hit(&mut l, i, "web-c", t(i as f64));
        }
        l.record_recreation(&web(), Duration::from_secs(10), t(10.0));
        let view = StaticCluster::new().deployment("shop", "web", 3, 1);
        let s = l
            .stats_for(&web(), &view, t(10.0), &[("shop", "web-c")])
            .unwrap();
        // λ̂ = 10 hits after the first / 10 s = 1/s, T̂ = 10 s, B = 1 (web-c):
        // 1 + ⌈1 · 10 + 1⌉ = 12, not 1 + ⌈(3/300) · 10⌉ = 2 as counting pods over the window gave.
        assert!((s.infection_rate_per_minute - 60.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.time_to_recreation, Some(Duration::from_secs(10)));
        assert_eq!(s.backlog, 1);
        assert_eq!(s.replicas_needed, 12);
        assert!((s.attack_pressure - 4.0).abs() < 1e-9);
    }

    #[test]
    fn a_deferred_pod_stays_in_the_backlog_past_the_window() {
        let mut l = ledger();
        hit(&mut l, 0, "web-0", t(0.0));
        let view = StaticCluster::new().deployment("shop", "web", 3, 1);
        let late = t(400.0);
        assert_eq!(l.stats_for(&web(), &view, late, &[]).unwrap().backlog, 0);
        let s = l
            .stats_for(&web(), &view, late, &[("shop", "web-0")])
            .unwrap();
        assert_eq!(s.backlog, 1);
    }

    #[test]
    fn pods_only_dry_run_policies_matched_are_no_backlog() {
        let mut l = ledger();
        l.infect(
            &web(),
            "shop/web-0",
            "web-0",
            None,
            MinAvailable::Count(1),
            Hit {
                seq: 0,
                reaped: false,
                backlog: false,
            },
            t(0.0),
        );
        let s = stats(&l, 3, t(0.0));
        assert_eq!((s.infected_pods, s.backlog, s.replicas_needed), (1, 0, 1));
    }

    /// A steady attack of one hit a second, each pod reaped at once and back 10 s later,
    /// from `from` to `until` (seconds).
    fn steady(l: &mut Ledger, from: u64, until: u64) {
        for i in from..until {
            let at = t(i as f64);
            if i >= from + 10 {
                l.record_recreation(&web(), Duration::from_secs(10), at);
            }
            let pod = format!("web-{i}");
            hit(l, i, &pod, at);
            l.cure(&web(), &pod, true, at);
        }
    }

    #[test]
    fn a_steady_attack_needs_littles_law() {
        let mut l = ledger();
        steady(&mut l, 0, 400);
        let s = stats(&l, 12, t(399.5));
        // λ = 1/s over the whole window, T = 10 s, nothing waiting: 1 + 10.
        assert!((s.infection_rate_per_minute - 60.0).abs() < 0.5, "{s:?}");
        assert_eq!(s.time_to_recreation, Some(Duration::from_secs(10)));
        assert_eq!(s.replicas_needed, 11);
    }

    #[test]
    fn when_the_attack_stops_replicas_needed_holds_then_decays_to_min_available_within_the_window()
    {
        let mut l = ledger();
        steady(&mut l, 0, 400);
        for i in 400..410 {
            l.record_recreation(&web(), Duration::from_secs(10), t(i as f64));
        }
        let needed = |at: f64| stats(&l, 12, t(at)).replicas_needed;
        let at_stop = needed(399.5);
        assert_eq!(at_stop, 11);
        // Held for HOLD after the last hit...
        assert_eq!(needed(399.0 + 29.0), at_stop);
        // ...then it falls, step by step, never rising again...
        let mut last = at_stop;
        let mut at = 430.0;
        while at < 399.0 + 300.0 {
            let n = needed(at);
            assert!(n <= last, "rose from {last} to {n} at {at}");
            last = n;
            at += 1.0;
        }
        // ...and is min_available one window after the last hit.
        assert_eq!(needed(399.0 + 300.0), 1);
        assert!(stats(&l, 12, t(399.0 + 300.0)).attack_pressure < 1.0);
    }

    #[test]
    fn a_pause_shorter_than_the_hold_does_not_lower_replicas_needed() {
        let mut l = ledger();
        steady(&mut l, 0, 21);
        for i in 21..31 {
            l.record_recreation(&web(), Duration::from_secs(10), t(i as f64));
        }
        let peak = stats(&l, 12, t(20.0)).replicas_needed;
        assert_eq!(peak, 1 + 10);
        // No hit since 20 s: the rate over the time observed falls (20 hits / 35 s)...
        let s = stats(&l, 12, t(35.0));
        assert!(s.infection_rate_per_minute < 60.0 * 0.6, "{s:?}");
        // ...but replicas needed holds for HOLD after the last sample, then falls.
        assert_eq!(s.replicas_needed, peak);
        assert_eq!(stats(&l, 12, t(49.9)).replicas_needed, peak);
        assert_eq!(stats(&l, 12, t(51.0)).replicas_needed, 1 + 4);
    }

    #[test]
    fn percent_min_available_resolves_against_desired() {
        let mut l = ledger();
        l.infect(
            &web(),
            "shop/web-0",
            "web-0",
            None,
            MinAvailable::Percent(50),
            Hit {
                seq: 0,
                reaped: false,
                backlog: false,
            },
            t(100.0),
        );
        assert_eq!(stats(&l, 5, t(100.0)).min_available, 3);
    }

    #[test]
    fn gone_infected_pods_are_pruned() {
        let mut l = ledger();
        let mut view = StaticCluster::new().deployment("shop", "web", 3, 3);
        hit(&mut l, 0, "web-0", t(100.0));
        assert_eq!(stats(&l, 3, t(100.0)).infected_pods, 1);
        view.remove_pod("shop", "web-0");
        l.prune(&view, t(101.0));
        assert_eq!(stats(&l, 3, t(101.0)).infected_pods, 0);
    }

    #[test]
    fn through_the_engine_a_held_back_pod_is_backlog_and_its_re_infections_are_hits() {
        use crate::action::Outcome;
        use crate::alert::Alert;
        use crate::decision::{Reason, Verdict};
        use crate::engine::Engine;
        use crate::policy::PolicySet;

        let policies = PolicySet::parse(
            "version: 1\ndefaults: {dedup_window_secs: 60}\npolicies:\n  - name: reap\n    match: {rules: [\"Terminal shell in container\"]}\n    action: {type: delete}\n    guard: {min_available: 1, defer: true}\n",
            "test.yaml",
        )
        .unwrap();
        let mut e = Engine::new(policies);
        let mut view = StaticCluster::new().deployment("shop", "web", 3, 3);
        let shell = |pod: &str, at: i64| Alert::test().pod("shop", pod).at_secs(at).build();
        // Two pods reaped: the service is at its floor. web-0 is still terminating (in the
        // view), web-1 is gone.
        for (i, pod) in ["web-0", "web-1"].iter().enumerate() {
            let at = Timestamp::from_secs(i as i64);
            let d = e.decide(shell(pod, i as i64), &view, at).remove(0);
            assert_eq!(d.verdict, Verdict::Act);
            e.record(d.plan.unwrap().id, &Outcome::Success, at);
        }
        view.remove_pod("shop", "web-1");
        // The last Ready pod is hit: held back. The attack keeps hitting it.
        let d = e.decide(shell("web-2", 2), &view, Timestamp::from_secs(2));
        assert_eq!(
            (d[0].verdict, d[0].reason),
            (Verdict::Defer, Reason::BelowMinAvailable)
        );
        for at in 3..=10 {
            let d = e.decide(shell("web-2", at), &view, Timestamp::from_secs(at));
            assert_eq!(d[0].reason, Reason::Duplicate);
        }
        // An alert about the pod already reaped (the tail of that intrusion) is no hit.
        let reaped = Alert::test().pod("shop", "web-0").at_secs(10).build();
        let d = e.decide(reaped, &view, Timestamp::from_secs(10));
        assert_eq!(d[0].reason, Reason::Duplicate);
        let s = e
            .stats_for(&web(), &view, Timestamp::from_secs(10))
            .unwrap();
        assert_eq!((s.infections_total, s.hits_total), (3, 11));
        assert_eq!(s.backlog, 1);
        // λ̂ = 10 / 10 s, T̂ ≥ 10 s (the first reap's replacement has not come), B = 1.
        assert!((s.infection_rate_per_minute - 60.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.time_to_recreation, Some(Duration::from_secs(10)));
        assert_eq!(s.replicas_needed, 1 + 10 + 1);
        assert!(s.attack_pressure > 1.0);
    }

    #[test]
    fn the_restricted_mean_is_kaplan_meier() {
        // All completed: the plain mean.
        let mut all = [(10.0, true), (20.0, true)];
        assert!((restricted_mean(&mut all) - 15.0).abs() < 1e-9);
        // All censored: the longest (a lower bound).
        let mut open = [(3.0, false), (7.0, false)];
        assert!((restricted_mean(&mut open) - 7.0).abs() < 1e-9);
        // Censored below every completion: ignored.
        let mut mixed = [(2.0, false), (10.0, true), (10.0, true)];
        assert!((restricted_mean(&mut mixed) - 10.0).abs() < 1e-9);
    }
}
