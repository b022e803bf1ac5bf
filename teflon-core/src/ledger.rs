//! The infection ledger: attacks as load (SPEC §7).
//!
//! Per workload: infections (once per pod), the time between infections, time to recreation
//! (reap → replacement Ready, reported by adapters), a sliding-window infection rate, and
//! replicas needed by Little's law: `min_available + ceil(rate × time_to_recreation)`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use crate::cluster::{ClusterView, WorkloadRef};
use crate::decision::Infection;
use crate::policy::MinAvailable;
use crate::time::Timestamp;

/// The numbers the metrics and the custom-metrics API read, for one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadStats {
    /// The workload.
    pub workload: WorkloadRef,
    /// Infections ever recorded (once per pod).
    pub infections_total: u64,
    /// Pods infected and not yet reaped or gone.
    pub infected_pods: u32,
    /// Infections per minute over the sliding window.
    pub infection_rate_per_minute: f64,
    /// Mean time to recreation over the window (else the last one seen), if any was seen.
    pub time_to_recreation: Option<Duration>,
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
    /// `min_available + ceil(rate × time_to_recreation)`.
    pub replicas_needed: u32,
    /// `replicas_needed / desired`; above 1 the attackers are winning.
    pub attack_pressure: f64,
}

#[derive(Debug, Clone)]
struct WorkloadLedger {
    infections_total: u64,
    recent: VecDeque<Timestamp>,
    last_infection: Option<Timestamp>,
    infected: BTreeMap<String, Option<String>>,
    recreations: VecDeque<(Timestamp, Duration)>,
    last_recreation: Option<Duration>,
    min_available: MinAvailable,
    reaps_total: u64,
    last_activity: Timestamp,
}

impl WorkloadLedger {
    fn new(now: Timestamp) -> Self {
        WorkloadLedger {
            infections_total: 0,
            recent: VecDeque::new(),
            last_infection: None,
            infected: BTreeMap::new(),
            recreations: VecDeque::new(),
            last_recreation: None,
            min_available: MinAvailable::Count(1),
            reaps_total: 0,
            last_activity: now,
        }
    }

    fn expire(&mut self, now: Timestamp, window: Duration) {
        let since = now.minus(window);
        while self.recent.front().is_some_and(|t| *t < since) {
            self.recent.pop_front();
        }
        while self.recreations.front().is_some_and(|(t, _)| *t < since) {
            self.recreations.pop_front();
        }
    }
}

/// Per-workload infection bookkeeping.
#[derive(Debug, Clone)]
pub struct Ledger {
    window: Duration,
    retention: Duration,
    workloads: BTreeMap<WorkloadRef, WorkloadLedger>,
    /// `ns/pod` → (UID, when) of every pod ever infected (within retention): infections count
    /// once per pod; a pod with the same name and another UID (StatefulSet) is a new pod.
    seen: HashMap<String, (Option<String>, Timestamp)>,
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

    /// Record that `pod` of `workload` is infected. `None` when this pod was already counted.
    /// `pod_key` is `namespace/pod`.
    #[allow(clippy::too_many_arguments)]
    pub fn infect(
        &mut self,
        workload: &WorkloadRef,
        pod_key: &str,
        pod: &str,
        uid: Option<&str>,
        min_available: MinAvailable,
        now: Timestamp,
    ) -> Option<Infection> {
        match self.seen.get_mut(pod_key) {
            Some((seen_uid, _)) if seen_uid.as_deref() == uid => return None,
            Some(slot) => *slot = (uid.map(str::to_owned), now),
            None => {
                self.seen
                    .insert(pod_key.to_owned(), (uid.map(str::to_owned), now));
            }
        }
        let w = self
            .workloads
            .entry(workload.clone())
            .or_insert_with(|| WorkloadLedger::new(now));
        let since_previous = w.last_infection.map(|t| now.since(t));
        w.infections_total += 1;
        w.recent.push_back(now);
        w.last_infection = Some(now);
        w.infected.insert(pod.to_owned(), uid.map(str::to_owned));
        w.min_available = min_available;
        w.last_activity = now;
        w.expire(now, self.window);
        Some(Infection {
            workload: workload.clone(),
            since_previous,
        })
    }

    /// The pod was reaped (or found gone): it is no longer infected.
    pub fn cure(&mut self, workload: &WorkloadRef, pod: &str, reaped: bool, now: Timestamp) {
        if let Some(w) = self.workloads.get_mut(workload) {
            w.infected.remove(pod);
            if reaped {
                w.reaps_total += 1;
            }
            w.last_activity = now;
        }
    }

    /// An adapter saw a reaped pod's replacement become Ready `took` after the reap.
    pub fn record_recreation(&mut self, workload: &WorkloadRef, took: Duration, now: Timestamp) {
        let window = self.window;
        let w = self
            .workloads
            .entry(workload.clone())
            .or_insert_with(|| WorkloadLedger::new(now));
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
                .retain(|pod, uid| match view.pod(&wref.namespace, pod) {
                    None => false,
                    Some(p) => uid.is_none() || p.uid.is_none() || p.uid == *uid,
                });
            w.expire(now, window);
        }
        let horizon = now.minus(self.retention);
        self.workloads
            .retain(|_, w| !w.infected.is_empty() || w.last_activity >= horizon);
        self.seen.retain(|_, (_, t)| *t >= horizon);
    }

    /// Stats for every workload the ledger knows, sorted by workload.
    pub fn stats(&self, view: &impl ClusterView, now: Timestamp) -> Vec<WorkloadStats> {
        self.workloads
            .iter()
            .map(|(wref, w)| self.stats_of(wref, w, view, now))
            .collect()
    }

    /// Stats for one workload, if the ledger knows it.
    pub fn stats_for(
        &self,
        workload: &WorkloadRef,
        view: &impl ClusterView,
        now: Timestamp,
    ) -> Option<WorkloadStats> {
        self.workloads
            .get(workload)
            .map(|w| self.stats_of(workload, w, view, now))
    }

    fn stats_of(
        &self,
        wref: &WorkloadRef,
        w: &WorkloadLedger,
        view: &impl ClusterView,
        now: Timestamp,
    ) -> WorkloadStats {
        let since = now.minus(self.window);
        let in_window = w
            .recent
            .iter()
            .filter(|t| **t >= since && **t <= now)
            .count();
        let window_secs = self.window.as_secs_f64().max(1.0);
        let rate_per_sec = in_window as f64 / window_secs;
        let recent_ttr: Vec<Duration> = w
            .recreations
            .iter()
            .filter(|(t, _)| *t >= since)
            .map(|(_, d)| *d)
            .collect();
        let ttr = if recent_ttr.is_empty() {
            w.last_recreation
        } else {
            let total: Duration = recent_ttr.iter().sum();
            Some(total / u32::try_from(recent_ttr.len()).unwrap_or(u32::MAX))
        };
        let status = view.workload(wref).unwrap_or_default();
        let min_available = w.min_available.required(status.desired);
        let in_recreation = rate_per_sec * ttr.map_or(0.0, |d| d.as_secs_f64());
        let replicas_needed = min_available.saturating_add(in_recreation.ceil() as u32);
        let attack_pressure = f64::from(replicas_needed) / f64::from(status.desired.max(1));
        WorkloadStats {
            workload: wref.clone(),
            infections_total: w.infections_total,
            infected_pods: u32::try_from(w.infected.len()).unwrap_or(u32::MAX),
            infection_rate_per_minute: rate_per_sec * 60.0,
            time_to_recreation: ttr,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{StaticCluster, WorkloadKind};

    fn web() -> WorkloadRef {
        WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")
    }

    #[test]
    fn the_same_pod_is_counted_once() {
        let mut l = Ledger::new(Duration::from_secs(60), Duration::from_secs(3600));
        let t = Timestamp::from_secs(100);
        assert!(
            l.infect(
                &web(),
                "shop/web-0",
                "web-0",
                Some("u0"),
                MinAvailable::Count(1),
                t
            )
            .is_some()
        );
        assert!(
            l.infect(
                &web(),
                "shop/web-0",
                "web-0",
                Some("u0"),
                MinAvailable::Count(1),
                t
            )
            .is_none()
        );
        let view = StaticCluster::new().deployment("shop", "web", 3, 3);
        assert_eq!(l.stats(&view, t)[0].infections_total, 1);
    }

    #[test]
    fn time_between_infections_is_reported() {
        let mut l = Ledger::new(Duration::from_secs(60), Duration::from_secs(3600));
        l.infect(
            &web(),
            "shop/web-0",
            "web-0",
            None,
            MinAvailable::Count(1),
            Timestamp::from_secs(100),
        );
        let i = l
            .infect(
                &web(),
                "shop/web-1",
                "web-1",
                None,
                MinAvailable::Count(1),
                Timestamp::from_secs(107),
            )
            .unwrap();
        assert_eq!(i.since_previous, Some(Duration::from_secs(7)));
    }

    #[test]
    fn replicas_needed_follows_littles_law() {
        // 6 infections in a 60 s window = 0.1/s; recreation takes 20 s → 2 pods in recreation.
        let mut l = Ledger::new(Duration::from_secs(60), Duration::from_secs(3600));
        for i in 0..6 {
            l.infect(
                &web(),
                &format!("shop/web-{i}"),
                &format!("web-{i}"),
                None,
                MinAvailable::Count(2),
                Timestamp::from_secs(100 + i * 10),
            );
        }
        l.record_recreation(&web(), Duration::from_secs(20), Timestamp::from_secs(150));
        let view = StaticCluster::new().deployment("shop", "web", 4, 4);
        let s = &l.stats(&view, Timestamp::from_secs(150))[0];
        assert!((s.infection_rate_per_minute - 6.0).abs() < 1e-9);
        assert_eq!(s.time_to_recreation, Some(Duration::from_secs(20)));
        assert_eq!(s.replicas_needed, 2 + 2);
        assert!((s.attack_pressure - 1.0).abs() < 1e-9);
    }

    #[test]
    fn rate_falls_back_to_zero_when_the_window_passes() {
        let mut l = Ledger::new(Duration::from_secs(60), Duration::from_secs(3600));
        l.infect(
            &web(),
            "shop/web-0",
            "web-0",
            None,
            MinAvailable::Count(1),
            Timestamp::from_secs(100),
        );
        let view = StaticCluster::new().deployment("shop", "web", 3, 3);
        let s = &l.stats(&view, Timestamp::from_secs(1000))[0];
        assert_eq!(s.infection_rate_per_minute, 0.0);
        assert_eq!(s.replicas_needed, 1);
    }

    #[test]
    fn percent_min_available_resolves_against_desired() {
        let mut l = Ledger::new(Duration::from_secs(60), Duration::from_secs(3600));
        l.infect(
            &web(),
            "shop/web-0",
            "web-0",
            None,
            MinAvailable::Percent(50),
            Timestamp::from_secs(100),
        );
        let view = StaticCluster::new().deployment("shop", "web", 5, 5);
        assert_eq!(
            l.stats(&view, Timestamp::from_secs(100))[0].min_available,
            3
        );
    }

    #[test]
    fn gone_infected_pods_are_pruned() {
        let mut l = Ledger::new(Duration::from_secs(60), Duration::from_secs(3600));
        let mut view = StaticCluster::new().deployment("shop", "web", 3, 3);
        l.infect(
            &web(),
            "shop/web-0",
            "web-0",
            Some("uid-web-0"),
            MinAvailable::Count(1),
            Timestamp::from_secs(100),
        );
        assert_eq!(
            l.stats(&view, Timestamp::from_secs(100))[0].infected_pods,
            1
        );
        view.remove_pod("shop", "web-0");
        l.prune(&view, Timestamp::from_secs(101));
        assert_eq!(
            l.stats(&view, Timestamp::from_secs(101))[0].infected_pods,
            0
        );
    }
}
