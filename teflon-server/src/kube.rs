//! `cluster.type: kube`: the live view from teflon-k8s' reflectors, its actuator with
//! recreation tracking, and the `scale` subresource for the autoscaler.

use std::sync::Arc;

use teflon_k8s::{KubeActuator, KubeClusterView, RecreationHandle, ViewConfig};
use tokio::sync::mpsc;

use crate::cluster::{BackendScaler, ClusterBackend, ClusterError, ClusterEvent};

/// Connect (in-cluster config or `KUBECONFIG`), start the watches (`cluster.namespaces`,
/// `cluster.pod_selector`) and recreation tracking.
pub(crate) async fn backend(
    config: &crate::config::ClusterConfig,
) -> Result<ClusterBackend, ClusterError> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| ClusterError::Kube(format!("cannot build a Kubernetes client: {e}")))?;
    let view = KubeClusterView::start(
        client.clone(),
        &ViewConfig {
            namespaces: config.namespaces.clone(),
            pod_selector: config.pod_selector.clone(),
            ..ViewConfig::default()
        },
    );
    let (recreation, mut recreations) = RecreationHandle::spawn(view.clone());
    let actuator = KubeActuator::new(client.clone()).with_recreation(recreation);
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
        scaler: Some(BackendScaler::Kube(crate::autoscaler::KubeScaler::new(
            client,
        ))),
        tasks: vec![forward],
    })
}

/// Start Lease leader election as `config` says: identity `POD_NAME`, the Lease in
/// `config.namespace` or else `POD_NAMESPACE` (both set by the Deployment's downward API).
pub(crate) async fn elector(
    config: &crate::config::LeaderElectionConfig,
) -> Result<teflon_k8s::lease::LeaderElector, String> {
    use std::time::Duration;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let identity = var("POD_NAME").ok_or_else(|| {
        "leader_election: POD_NAME is not set (the Deployment sets it from the downward API)"
            .to_owned()
    })?;
    let namespace = config
        .namespace
        .clone()
        .or_else(|| var("POD_NAMESPACE"))
        .ok_or_else(|| {
            "leader_election: set `namespace`, or POD_NAMESPACE from the downward API".to_owned()
        })?;
    let mut lease = teflon_k8s::lease::LeaseConfig::new(namespace, identity);
    lease.name = config.lease_name.clone();
    lease.lease_duration = Duration::from_secs(config.lease_duration_secs);
    lease.renew_deadline = Duration::from_secs(config.renew_deadline_secs);
    lease.retry_period = Duration::from_secs(config.retry_period_secs);
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("leader_election: cannot build a Kubernetes client: {e}"))?;
    tracing::info!(
        namespace = %lease.namespace,
        lease = %lease.name,
        identity = %lease.identity,
        failover_secs = lease.failover_time().as_secs(),
        "leader election: acting only while holding the Lease"
    );
    // The leader labels its own pod; the Services select on that label, so alerts go only to
    // the replica that acts instead of waiting on a follower's queue.
    let pod_namespace = var("POD_NAMESPACE").unwrap_or_else(|| lease.namespace.clone());
    let pod = lease.identity.clone();
    let elector = teflon_k8s::lease::LeaderElector::spawn(client.clone(), lease)
        .map_err(|e| e.to_string())?;
    Ok(elector.with_pod_label(client, &pod_namespace, &pod))
}
