//! `cluster.type: kube`: the live view from teflon-k8s' reflectors, its actuator with
//! recreation tracking, and the `scale` subresource for the autoscaler.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use teflon_core::{Clock, Timestamp};
use teflon_k8s::{
    KubeActuator, KubeClusterView, KubeReleaser, KubeScaler, RecreationHandle, RetryPolicy,
    ViewConfig,
};
use tokio::sync::mpsc;

use super::{ClusterBackend, ClusterError, ClusterEvent, PodLookup, SharedView};
use crate::config::Config;

/// `pod_not_found` confirmed at the API server (`teflon_k8s::lookup`).
struct Lookup(teflon_k8s::lookup::PodLookup);

impl PodLookup for Lookup {
    fn lookup(
        &self,
        namespace: String,
        name: String,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<SharedView>, String>> + Send>,
    > {
        let lookup = self.0.clone();
        Box::pin(async move {
            match lookup.lookup(&namespace, &name).await {
                Ok(teflon_k8s::lookup::Looked::Found(view)) => {
                    Ok(Some(Arc::new(*view) as SharedView))
                }
                Ok(teflon_k8s::lookup::Looked::Absent) => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// The server clock's time as a `SystemTime` (the actuator's clock: Event times, deadlines).
fn system_time(t: Timestamp) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(t.as_nanos()).unwrap_or(0))
}

/// Connect (in-cluster config or `KUBECONFIG`, through [`teflon_k8s::client`]: the kube
/// client's own retries off), start the watches (`cluster.namespaces`,
/// `cluster.pod_selector`), recreation tracking and the keep-warm pings. The actuator retries
/// for `action_deadline_secs` and reads time from `clock`.
pub(super) async fn connect(config: &Config, clock: Clock) -> Result<ClusterBackend, ClusterError> {
    let client = teflon_k8s::client::infer()
        .await
        .map_err(|e| ClusterError::Kube(e.to_string()))?;
    let view_config = ViewConfig {
        namespaces: config.cluster.namespaces.clone(),
        pod_selector: config.cluster.pod_selector.clone(),
        ..ViewConfig::default()
    };
    let view = KubeClusterView::start(client.clone(), &view_config);
    let lookup = Lookup(teflon_k8s::lookup::PodLookup::new(
        client.clone(),
        view.clone(),
        &view_config,
    ));
    let (recreation, mut recreations) = RecreationHandle::spawn(view.clone());
    let releaser_clock = clock.clone();
    let actuator = KubeActuator::new(client.clone())
        .with_recreation(recreation)
        .with_retry(RetryPolicy {
            total: config.action_deadline(),
            ..RetryPolicy::default()
        })
        .with_clock(Arc::new(move || system_time(clock())));
    let mut releaser = KubeReleaser::new(client.clone())
        .with_clock(Arc::new(move || system_time(releaser_clock())));
    if !config.cluster.namespaces.is_empty() {
        // Expiry lists what is in force only where Teflon watches (and may act).
        releaser = releaser.with_namespaces(config.cluster.namespaces.clone());
    }
    // The first action after an idle minute must not pay TCP and TLS set-up (SPEC §9).
    let warm = teflon_k8s::client::keep_warm(
        client.clone(),
        teflon_k8s::client::WARM_CONNECTIONS,
        teflon_k8s::client::WARM_EVERY,
    );
    let (tx, events) = mpsc::unbounded_channel();
    let mut changes = view.subscribe();
    let forward = tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                r = recreations.recv() => match r {
                    Some(r) => ClusterEvent::Recreated { workload: r.workload, took: r.duration },
                    None => return,
                },
                c = changes.changed() => match c {
                    Ok(()) => ClusterEvent::Changed,
                    Err(_) => return,
                },
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    Ok(ClusterBackend {
        view: Arc::new(view),
        actuator: Arc::new(actuator),
        events,
        sim: None,
        lookup: Some(Arc::new(lookup)),
        scaler: Some(Arc::new(KubeScaler::new(client))),
        releaser: Some(Arc::new(releaser)),
        tasks: vec![forward, warm],
    })
}
