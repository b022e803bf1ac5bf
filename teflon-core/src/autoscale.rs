//! The attack autoscaler's pure decision logic (SPEC §6 `autoscale`, §8).
//!
//! Attacks are load: a workload needs `replicas_needed` (Little's law, from the ledger) to
//! keep `min_available` pods serving while reaped pods are recreated. The autoscaler moves
//! the replica count toward that figure within `[min_replicas, max_replicas]`, scales up as
//! soon as the cooldown allows, and scales down only to the highest recommendation seen over
//! the stabilization window (as the HPA does), so a pause in the attack does not flap it.
//! The loop that applies decisions through the `scale` subresource lives in teflon-server.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::WorkloadRef;
use crate::ledger::WorkloadStats;
use crate::time::Timestamp;

/// One workload's autoscaling settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoscaleSpec {
    /// The workload (Deployment or StatefulSet).
    pub workload: WorkloadRef,
    /// Never fewer.
    pub min_replicas: u32,
    /// Never more.
    pub max_replicas: u32,
    /// Minimum time between two changes.
    pub cooldown: Duration,
    /// Scale down only to the highest recommendation of this window.
    pub scale_down_stabilization: Duration,
}

/// A change to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleDecision {
    /// The workload.
    pub workload: WorkloadRef,
    /// Current replicas.
    pub from: u32,
    /// New replicas.
    pub to: u32,
    /// Why, for Events and logs.
    pub reason: String,
}

/// Why a [`Scaler`] could not read or change a workload's replicas.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScalerError {
    /// Only Deployments and StatefulSets are scaled.
    #[error("{0} cannot be scaled (only Deployment and StatefulSet are supported)")]
    Unsupported(WorkloadRef),
    /// The workload does not exist.
    #[error("{0} not found")]
    NotFound(WorkloadRef),
    /// The backend refused or did not answer (after its own retries).
    #[error("scale {workload}: {message}")]
    Failed {
        /// The workload.
        workload: WorkloadRef,
        /// What the backend said.
        message: String,
    },
}

/// The write port for scaling: the `scale` subresource, or the simulated cluster.
pub trait Scaler {
    /// Set `workload`'s desired replicas.
    fn scale(
        &self,
        workload: &WorkloadRef,
        replicas: u32,
    ) -> impl Future<Output = Result<(), ScalerError>> + Send;

    /// `workload`'s desired replicas as the write side sees them (the `scale` subresource's
    /// `spec.replicas`), when it can read them; `Ok(None)` lets the caller fall back to its
    /// cluster view. The default reads nothing.
    fn current_replicas(
        &self,
        workload: &WorkloadRef,
    ) -> impl Future<Output = Result<Option<u32>, ScalerError>> + Send {
        let _ = workload;
        std::future::ready(Ok(None))
    }

    /// Tell the world about a change that was applied (a Kubernetes Event, …). Best effort:
    /// the default does nothing, and a failure must not undo the change.
    fn announce(&self, decision: &ScaleDecision) -> impl Future<Output = ()> + Send {
        let _ = decision;
        std::future::ready(())
    }
}

/// A boxed future of a [`DynScaler`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An object-safe [`Scaler`], so adapters can hold any of them behind one pointer
/// (`Arc<dyn DynScaler>`, itself a [`Scaler`]). Every `Scaler + Send + Sync` is one.
pub trait DynScaler: Send + Sync {
    /// [`Scaler::scale`].
    fn scale_boxed<'a>(
        &'a self,
        workload: &'a WorkloadRef,
        replicas: u32,
    ) -> BoxFuture<'a, Result<(), ScalerError>>;
    /// [`Scaler::current_replicas`].
    fn current_replicas_boxed<'a>(
        &'a self,
        workload: &'a WorkloadRef,
    ) -> BoxFuture<'a, Result<Option<u32>, ScalerError>>;
    /// [`Scaler::announce`].
    fn announce_boxed<'a>(&'a self, decision: &'a ScaleDecision) -> BoxFuture<'a, ()>;
}

impl<T: Scaler + Send + Sync> DynScaler for T {
    fn scale_boxed<'a>(
        &'a self,
        workload: &'a WorkloadRef,
        replicas: u32,
    ) -> BoxFuture<'a, Result<(), ScalerError>> {
        Box::pin(self.scale(workload, replicas))
    }
    fn current_replicas_boxed<'a>(
        &'a self,
        workload: &'a WorkloadRef,
    ) -> BoxFuture<'a, Result<Option<u32>, ScalerError>> {
        Box::pin(self.current_replicas(workload))
    }
    fn announce_boxed<'a>(&'a self, decision: &'a ScaleDecision) -> BoxFuture<'a, ()> {
        Box::pin(self.announce(decision))
    }
}

// The futures own what they borrow: an opaque type cannot name the intersection of the
// `self` and argument lifetimes the boxed methods take.
impl Scaler for Arc<dyn DynScaler + '_> {
    fn scale(
        &self,
        workload: &WorkloadRef,
        replicas: u32,
    ) -> impl Future<Output = Result<(), ScalerError>> + Send {
        let (this, workload) = (self.clone(), workload.clone());
        async move { this.scale_boxed(&workload, replicas).await }
    }
    fn current_replicas(
        &self,
        workload: &WorkloadRef,
    ) -> impl Future<Output = Result<Option<u32>, ScalerError>> + Send {
        let (this, workload) = (self.clone(), workload.clone());
        async move { this.current_replicas_boxed(&workload).await }
    }
    fn announce(&self, decision: &ScaleDecision) -> impl Future<Output = ()> + Send {
        let (this, decision) = (self.clone(), decision.clone());
        async move { this.announce_boxed(&decision).await }
    }
}

/// Autoscaling state for one workload.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    spec: AutoscaleSpec,
    last_change: Option<Timestamp>,
    recommendations: VecDeque<(Timestamp, u32)>,
}

impl Autoscaler {
    /// A new autoscaler for `spec`.
    pub fn new(spec: AutoscaleSpec) -> Self {
        Autoscaler {
            spec,
            last_change: None,
            recommendations: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn spec(&self) -> &AutoscaleSpec {
        &self.spec
    }

    /// The replica count the attack calls for, within bounds (ignores cooldown and stabilization).
    pub fn recommendation(&self, stats: Option<&WorkloadStats>) -> u32 {
        let needed = stats.map_or(0, |s| s.replicas_needed);
        needed.clamp(
            self.spec.min_replicas,
            self.spec.max_replicas.max(self.spec.min_replicas),
        )
    }

    /// Decide at `now` whether to change `current` replicas. `stats` is the ledger's view of the
    /// workload (`None` when it was never attacked: settle at `min_replicas`).
    pub fn evaluate(
        &mut self,
        stats: Option<&WorkloadStats>,
        current: u32,
        now: Timestamp,
    ) -> Option<ScaleDecision> {
        let raw = self.recommendation(stats);
        if self.recommendations.is_empty() && self.last_change.is_none() {
            // A (re)started autoscaler has no history: count the current replicas (within
            // bounds) as a recommendation, so it does not scale down before the
            // stabilization window has seen the workload.
            let max = self.spec.max_replicas.max(self.spec.min_replicas);
            self.recommendations
                .push_back((now, current.clamp(self.spec.min_replicas, max)));
        }
        self.recommendations.push_back((now, raw));
        let horizon = now.minus(self.spec.scale_down_stabilization);
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| *t < horizon)
        {
            self.recommendations.pop_front();
        }
        let stabilized = self
            .recommendations
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(raw);
        let target = if raw >= current {
            raw
        } else {
            stabilized.min(current)
        };
        if target == current {
            return None;
        }
        if let Some(last) = self.last_change
            && now.since(last) < self.spec.cooldown
        {
            return None;
        }
        self.last_change = Some(now);
        let reason = match stats {
            Some(s) if target > current => format!(
                "attack pressure {:.2}: {:.1} infections/min, recreation {:.0}s, {} replicas needed",
                s.attack_pressure,
                s.infection_rate_per_minute,
                s.time_to_recreation.map_or(0.0, |d| d.as_secs_f64()),
                s.replicas_needed
            ),
            Some(s) => format!(
                "attack pressure {:.2}: {} replicas needed (stabilized over {}s)",
                s.attack_pressure,
                s.replicas_needed,
                self.spec.scale_down_stabilization.as_secs()
            ),
            None => "no attack recorded: back to min_replicas".to_owned(),
        };
        Some(ScaleDecision {
            workload: self.spec.workload.clone(),
            from: current,
            to: target,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::WorkloadKind;

    fn spec() -> AutoscaleSpec {
        AutoscaleSpec {
            workload: WorkloadRef::new(WorkloadKind::Deployment, "shop", "web"),
            min_replicas: 3,
            max_replicas: 12,
            cooldown: Duration::from_secs(60),
            scale_down_stabilization: Duration::from_secs(300),
        }
    }

    fn stats(needed: u32) -> WorkloadStats {
        WorkloadStats {
            workload: spec().workload,
            infections_total: 10,
            hits_total: 0,
            backlog: 0,
            infected_pods: 1,
            infection_rate_per_minute: 6.0,
            time_to_recreation: Some(Duration::from_secs(20)),
            reaps_total: 5,
            desired: 3,
            available: 3,
            available_ratio: 1.0,
            min_available: 1,
            replicas_needed: needed,
            attack_pressure: f64::from(needed) / 3.0,
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    #[test]
    fn scales_up_to_replicas_needed_under_attack() {
        let mut a = Autoscaler::new(spec());
        let d = a.evaluate(Some(&stats(7)), 3, t(0)).unwrap();
        assert_eq!((d.from, d.to), (3, 7));
    }

    #[test]
    fn never_exceeds_max_replicas() {
        let mut a = Autoscaler::new(spec());
        assert_eq!(a.evaluate(Some(&stats(40)), 3, t(0)).unwrap().to, 12);
    }

    #[test]
    fn waits_for_the_cooldown_between_changes() {
        let mut a = Autoscaler::new(spec());
        a.evaluate(Some(&stats(5)), 3, t(0)).unwrap();
        assert!(a.evaluate(Some(&stats(8)), 5, t(30)).is_none());
        assert_eq!(a.evaluate(Some(&stats(8)), 5, t(61)).unwrap().to, 8);
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let mut a = Autoscaler::new(spec());
        a.evaluate(Some(&stats(8)), 3, t(0)).unwrap();
        // The attack stops: needed falls to 1 → min_replicas 3, but 8 was recommended recently.
        assert!(a.evaluate(Some(&stats(1)), 8, t(100)).is_none());
        assert!(a.evaluate(Some(&stats(1)), 8, t(299)).is_none());
        let d = a.evaluate(Some(&stats(1)), 8, t(301)).unwrap();
        assert_eq!((d.from, d.to), (8, 3));
    }

    #[test]
    fn a_fresh_autoscaler_waits_the_stabilization_window_before_scaling_down() {
        let mut a = Autoscaler::new(spec());
        assert!(a.evaluate(None, 10, t(0)).is_none());
        assert!(a.evaluate(None, 10, t(299)).is_none());
        assert_eq!(a.evaluate(None, 10, t(301)).unwrap().to, 3);
    }

    #[test]
    fn replicas_above_max_are_brought_back_at_once() {
        let mut a = Autoscaler::new(spec());
        assert_eq!(a.evaluate(None, 20, t(0)).unwrap().to, 12);
    }

    #[test]
    fn never_goes_below_min_replicas() {
        let mut a = Autoscaler::new(spec());
        assert_eq!(a.evaluate(None, 1, t(0)).unwrap().to, 3);
        assert!(a.evaluate(None, 3, t(100)).is_none());
    }
}
