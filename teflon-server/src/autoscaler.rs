//! The attack autoscaler loop (SPEC §6 `autoscale`, §8): every `interval`, for each opted-in
//! workload, read the latest [`AttackSnapshot`] and the current replicas, ask teflon-core's
//! pure [`Autoscaler`] what to do, and apply it through a [`Scaler`] (the `scale` subresource,
//! or the simulated cluster). Each change is logged, counted in
//! `teflon_autoscale_changes_total{namespace,workload,direction}` and announced through
//! [`Scaler::announce`] (a Kubernetes Event for `teflon_k8s::KubeScaler`).
//!
//! Time comes from the server's [`Clock`], which follows tokio's clock, so the loop runs
//! unchanged under `#[tokio::test(start_paused = true)]`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use teflon_core::autoscale::{AutoscaleSpec, Autoscaler, ScaleDecision, Scaler, ScalerError};
use teflon_core::{Clock, Timestamp, WorkloadRef};
use teflon_metrics::AttackSnapshot;
use teflon_metrics::custom_metrics::AutoscaleChanged;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::backend::SharedView;
use crate::config::AutoscaleConfig;

/// How often the loop evaluates when nothing else is said (the HPA's default sync period).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

pub use crate::config::AutoscaleConfigError;

/// The core autoscaling settings of every entry ([`AutoscaleConfig::spec`]); the first
/// unusable one is the error.
pub fn specs(configs: &[AutoscaleConfig]) -> Result<Vec<AutoscaleSpec>, AutoscaleConfigError> {
    configs.iter().map(AutoscaleConfig::spec).collect()
}

/// What the loop did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutoscaleReport {
    /// Evaluation rounds.
    pub rounds: u64,
    /// Changes applied.
    pub changes: u64,
    /// Changes the scaler refused, and replica reads that failed.
    pub failures: u64,
}

/// The autoscalers of every opted-in workload and the ports they act through.
pub struct AutoscaleLoop<S> {
    autoscalers: Vec<Autoscaler>,
    scaler: S,
    view: SharedView,
    report: AutoscaleReport,
}

impl<S> std::fmt::Debug for AutoscaleLoop<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoscaleLoop")
            .field("autoscalers", &self.autoscalers)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl<S: Scaler + Sync> AutoscaleLoop<S> {
    /// One [`Autoscaler`] per spec; current replicas come from `scaler` when it can read them,
    /// else from `view`.
    pub fn new(specs: Vec<AutoscaleSpec>, scaler: S, view: SharedView) -> Self {
        AutoscaleLoop {
            autoscalers: specs.into_iter().map(Autoscaler::new).collect(),
            scaler,
            view,
            report: AutoscaleReport::default(),
        }
    }

    /// What the loop did so far.
    pub fn report(&self) -> AutoscaleReport {
        self.report
    }

    /// The scaler.
    pub fn scaler(&self) -> &S {
        &self.scaler
    }

    async fn current_replicas(&self, workload: &WorkloadRef) -> Result<Option<u32>, ScalerError> {
        match self.scaler.current_replicas(workload).await? {
            Some(n) => Ok(Some(n)),
            None => Ok(self.view.workload(workload).map(|s| s.desired)),
        }
    }

    /// Evaluate every workload once at `now` against `snapshot` and apply the changes.
    /// Returns the changes applied.
    pub async fn tick(&mut self, snapshot: &AttackSnapshot, now: Timestamp) -> Vec<ScaleDecision> {
        self.report.rounds += 1;
        let mut applied = Vec::new();
        for i in 0..self.autoscalers.len() {
            let workload = self.autoscalers[i].spec().workload.clone();
            let current = match self.current_replicas(&workload).await {
                Ok(Some(n)) => n,
                Ok(None) => {
                    tracing::debug!(%workload, "autoscale: workload not found, skipped");
                    continue;
                }
                Err(error) => {
                    self.report.failures += 1;
                    tracing::warn!(%workload, %error, "autoscale: cannot read current replicas");
                    continue;
                }
            };
            let stats = snapshot.workload(&workload);
            let Some(decision) = self.autoscalers[i].evaluate(stats, current, now) else {
                continue;
            };
            match self.scaler.scale(&workload, decision.to).await {
                Ok(()) => {
                    self.report.changes += 1;
                    let event = AutoscaleChanged {
                        workload: &workload,
                        from: decision.from,
                        to: decision.to,
                    };
                    tracing::info!(
                        %workload,
                        from = decision.from,
                        to = decision.to,
                        direction = event.direction(),
                        reason = %decision.reason,
                        "autoscaled"
                    );
                    event.emit();
                    self.scaler.announce(&decision).await;
                    applied.push(decision);
                }
                Err(error) => {
                    // The cooldown started anyway: a refused change is retried after it,
                    // not hammered every round.
                    self.report.failures += 1;
                    tracing::warn!(%workload, to = decision.to, %error, "autoscale: scaling failed");
                }
            }
        }
        applied
    }
}

/// Run the autoscaler until `shutdown` resolves: evaluate at once, then every `interval`
/// (a missed round is delayed, never bunched). Returns what it did.
///
/// `specs` usually come from [`specs`]`(&config.autoscale)`, `snapshot` from the engine task,
/// `view` and `clock` are the server's; `scaler` is the simulated cluster or the kube scaler.
pub async fn run<S: Scaler + Send + Sync>(
    specs: Vec<AutoscaleSpec>,
    interval: Duration,
    snapshot: watch::Receiver<Arc<AttackSnapshot>>,
    view: SharedView,
    scaler: S,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send,
) -> AutoscaleReport {
    let mut lp = AutoscaleLoop::new(specs, scaler, view);
    if lp.autoscalers.is_empty() {
        return lp.report();
    }
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = ticker.tick() => {}
        }
        let snap = snapshot.borrow().clone();
        let now = clock();
        lp.tick(&snap, now).await;
    }
    lp.report()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use metrics_util::debugging::DebuggingRecorder;
    use teflon_core::{ClusterView, PodInfo, WorkloadStats, WorkloadStatus};

    use teflon_core::WorkloadKind;

    use super::*;

    /// A cluster of workloads whose desired replicas the fake scaler sets.
    #[derive(Debug, Default)]
    struct FakeCluster {
        desired: Mutex<BTreeMap<WorkloadRef, u32>>,
        calls: Mutex<Vec<(Duration, u32)>>,
        refuse: std::sync::atomic::AtomicBool,
    }

    impl ClusterView for FakeCluster {
        fn pod(&self, _: &str, _: &str) -> Option<PodInfo> {
            None
        }
        fn workload(&self, w: &WorkloadRef) -> Option<WorkloadStatus> {
            let desired = *self.desired.lock().unwrap().get(w)?;
            Some(WorkloadStatus {
                desired,
                available: desired,
            })
        }
        fn disruptions_allowed(&self, _: &str, _: &str) -> Option<i32> {
            None
        }
    }

    #[derive(Debug, Clone)]
    struct FakeScaler {
        cluster: Arc<FakeCluster>,
        start: tokio::time::Instant,
    }

    impl Scaler for FakeScaler {
        fn scale(
            &self,
            workload: &WorkloadRef,
            replicas: u32,
        ) -> impl Future<Output = Result<(), ScalerError>> + Send {
            let result = if self
                .cluster
                .refuse
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                Err(ScalerError::Failed {
                    workload: workload.clone(),
                    message: "forbidden".to_owned(),
                })
            } else {
                self.cluster
                    .desired
                    .lock()
                    .unwrap()
                    .insert(workload.clone(), replicas);
                self.cluster
                    .calls
                    .lock()
                    .unwrap()
                    .push((self.start.elapsed(), replicas));
                Ok(())
            };
            std::future::ready(result)
        }
    }

    fn web() -> WorkloadRef {
        WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")
    }

    fn config() -> AutoscaleConfig {
        AutoscaleConfig {
            namespace: "shop".to_owned(),
            kind: "Deployment".to_owned(),
            name: "web".to_owned(),
            min_replicas: 3,
            max_replicas: 12,
            cooldown_secs: 60,
            scale_down_stabilization_secs: 300,
        }
    }

    fn snapshot(needed: Option<u32>, at: Timestamp) -> Arc<AttackSnapshot> {
        Arc::new(AttackSnapshot {
            at,
            window: Duration::from_secs(60),
            workloads: needed
                .map(|n| WorkloadStats {
                    workload: web(),
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
                    replicas_needed: n,
                    attack_pressure: f64::from(n) / 3.0,
                })
                .into_iter()
                .collect(),
            infected_pods: Default::default(),
        })
    }

    struct Harness {
        cluster: Arc<FakeCluster>,
        snapshot: watch::Sender<Arc<AttackSnapshot>>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<AutoscaleReport>,
    }

    fn start(replicas: u32) -> Harness {
        let cluster = Arc::new(FakeCluster::default());
        cluster.desired.lock().unwrap().insert(web(), replicas);
        let clock = crate::tokio_clock();
        let (snapshot, rx) = watch::channel(snapshot(None, clock()));
        let (stop, mut stop_rx) = watch::channel(false);
        let scaler = FakeScaler {
            cluster: cluster.clone(),
            start: tokio::time::Instant::now(),
        };
        let view: SharedView = cluster.clone();
        let task = tokio::spawn(run(
            specs(&[config()]).unwrap(),
            Duration::from_secs(15),
            rx,
            view,
            scaler,
            clock,
            async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            },
        ));
        Harness {
            cluster,
            snapshot,
            stop,
            task,
        }
    }

    impl Harness {
        fn attack(&self, needed: Option<u32>) {
            let _ = self.snapshot.send(snapshot(needed, Timestamp::EPOCH));
        }
        fn replicas(&self) -> u32 {
            self.cluster.desired.lock().unwrap()[&web()]
        }
        fn calls(&self) -> Vec<(u64, u32)> {
            self.cluster
                .calls
                .lock()
                .unwrap()
                .iter()
                .map(|(t, n)| (t.as_secs(), *n))
                .collect()
        }
        /// Let virtual time pass (the paused runtime jumps straight to each timer).
        async fn wait(&self, secs: u64) {
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
        async fn stop(self) -> AutoscaleReport {
            let _ = self.stop.send(true);
            self.task.await.unwrap()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn scales_up_under_attack_and_back_down_when_it_stops() {
        let h = start(3);
        h.attack(Some(7));
        h.wait(1).await;
        assert_eq!(h.replicas(), 7, "scaled up at the first round");
        // The attack stops: needed falls back to min_available.
        h.attack(Some(1));
        h.wait(200).await;
        assert_eq!(h.replicas(), 7, "still within the stabilization window");
        h.wait(200).await;
        assert_eq!(h.replicas(), 3, "back to min_replicas after the window");
        let calls = h.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0], (0, 7));
        // 300 s of stabilization after the last recommendation of 7 (seen at t=0), at a round.
        assert!(calls[1].0 >= 300 && calls[1].0 <= 315, "{calls:?}");
        let report = h.stop().await;
        assert_eq!(report.changes, 2);
        assert_eq!(report.failures, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn never_scales_beyond_max_replicas() {
        let h = start(3);
        h.attack(Some(40));
        h.wait(100).await;
        assert_eq!(h.replicas(), 12);
        assert_eq!(h.calls(), vec![(0, 12)]);
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_cooldown_between_changes() {
        let h = start(3);
        h.attack(Some(5));
        h.wait(20).await;
        h.attack(Some(9));
        h.wait(100).await;
        let calls = h.calls();
        assert_eq!(calls[0], (0, 5));
        // Rounds at 15, 30 and 45 s are inside the 60 s cooldown; 60 s is the first allowed.
        assert_eq!(calls[1], (60, 9), "{calls:?}");
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_lull_in_the_attack_does_not_scale_down() {
        let h = start(3);
        h.attack(Some(8));
        h.wait(70).await;
        h.attack(Some(1));
        h.wait(100).await;
        h.attack(Some(8));
        h.wait(300).await;
        assert_eq!(h.calls(), vec![(0, 8)], "one change only: no flapping");
        h.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_change_is_counted_and_retried_after_the_cooldown() {
        let h = start(3);
        h.cluster
            .refuse
            .store(true, std::sync::atomic::Ordering::SeqCst);
        h.attack(Some(6));
        h.wait(20).await;
        assert_eq!(h.replicas(), 3);
        h.cluster
            .refuse
            .store(false, std::sync::atomic::Ordering::SeqCst);
        h.wait(60).await;
        assert_eq!(h.replicas(), 6);
        let report = h.stop().await;
        assert_eq!(report.failures, 1);
        assert_eq!(report.changes, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_does_not_scale_down_before_the_window_has_seen_the_workload() {
        // 10 replicas, no attack: min_replicas is 3, but only after the stabilization window.
        let h = start(10);
        h.wait(200).await;
        assert_eq!(h.replicas(), 10);
        h.wait(200).await;
        assert_eq!(h.replicas(), 3);
        h.stop().await;
    }

    #[test]
    fn each_change_is_counted_by_direction() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let cluster = Arc::new(FakeCluster::default());
        cluster.desired.lock().unwrap().insert(web(), 3);
        let scaler = FakeScaler {
            cluster: cluster.clone(),
            start: tokio::time::Instant::now(),
        };
        let mut lp = AutoscaleLoop::new(specs(&[config()]).unwrap(), scaler, cluster.clone());
        let up = snapshot(Some(6), Timestamp::EPOCH);
        let down = snapshot(Some(1), Timestamp::EPOCH);
        metrics::with_local_recorder(&recorder, || {
            futures::executor::block_on(async {
                lp.tick(&up, Timestamp::from_secs(0)).await;
                lp.tick(&down, Timestamp::from_secs(400)).await;
            })
        });
        let counters: Vec<(String, u64)> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(k, ..)| k.key().name() == "teflon_autoscale_changes_total")
            .map(|(k, _, _, v)| {
                let dir = k
                    .key()
                    .labels()
                    .find(|l| l.key() == "direction")
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default();
                let n = match v {
                    metrics_util::debugging::DebugValue::Counter(n) => n,
                    _ => 0,
                };
                (dir, n)
            })
            .collect();
        let mut counters = counters;
        counters.sort();
        assert_eq!(counters, vec![("down".to_owned(), 1), ("up".to_owned(), 1)]);
    }

    #[test]
    fn unsupported_kinds_and_inverted_bounds_are_config_errors() {
        let mut c = config();
        c.kind = "DaemonSet".to_owned();
        assert!(matches!(
            c.spec(),
            Err(AutoscaleConfigError::UnsupportedKind { .. })
        ));
        let mut c = config();
        c.min_replicas = 20;
        let e = c.spec().unwrap_err();
        assert!(e.to_string().contains("min_replicas 20"), "{e}");
        let mut c = config();
        c.kind = "StatefulSet".to_owned();
        assert_eq!(c.spec().unwrap().workload.kind, WorkloadKind::StatefulSet);
    }

    #[tokio::test(start_paused = true)]
    async fn a_workload_the_cluster_does_not_have_is_skipped() {
        let cluster = Arc::new(FakeCluster::default());
        let scaler = FakeScaler {
            cluster: cluster.clone(),
            start: tokio::time::Instant::now(),
        };
        let mut lp = AutoscaleLoop::new(specs(&[config()]).unwrap(), scaler, cluster.clone());
        let applied = lp
            .tick(
                &snapshot(Some(9), Timestamp::EPOCH),
                Timestamp::from_secs(0),
            )
            .await;
        assert!(applied.is_empty());
        assert!(cluster.calls.lock().unwrap().is_empty());
    }
}
