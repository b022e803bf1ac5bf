//! Lease leader election wiring (SPEC §6 `leader_election`): whether to elect, and the
//! teflon-k8s [`LeaderElector`](teflon_k8s::lease::LeaderElector) built from the
//! configuration and the Deployment's downward API (`POD_NAME`, `POD_NAMESPACE`).

use tokio::sync::watch;

use crate::config::{Config, LeaderElectionConfig};

/// Leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// No identity to hold the Lease with.
    #[error("leader_election: POD_NAME is not set (the Deployment sets it from the downward API)")]
    NoIdentity,
    /// No namespace for the Lease.
    #[error("leader_election: set `namespace`, or POD_NAMESPACE from the downward API")]
    NoNamespace,
    /// No client for the API server.
    #[cfg(feature = "kube")]
    #[error("leader_election: {0}")]
    Client(#[from] teflon_k8s::client::ClientError),
    /// The elector refused the Lease settings.
    #[cfg(feature = "kube")]
    #[error(transparent)]
    Lease(#[from] teflon_k8s::lease::Error),
    /// This build cannot talk to Kubernetes.
    #[cfg(not(feature = "kube"))]
    #[error("leader_election needs the `kube` feature of teflon-server")]
    NoKube,
}

/// The running Lease election (none in builds without the `kube` feature).
#[cfg(feature = "kube")]
pub(crate) type Elector = teflon_k8s::lease::LeaderElector;
#[cfg(not(feature = "kube"))]
#[derive(Debug)]
pub(crate) struct Elector;

#[cfg(not(feature = "kube"))]
impl Elector {
    pub(crate) async fn shutdown(self) {}
}

/// Start leader election when `config.leader_election` asks for it (explicitly, or by
/// default for `cluster.type: kube` built from the configuration with `POD_NAME` set).
/// Returns whether this replica may act, and the elector to release at shutdown.
pub(crate) async fn start(
    config: &Config,
    cluster_from_config: bool,
) -> Result<(Option<watch::Receiver<bool>>, Option<Elector>), ElectionError> {
    let le = &config.leader_election;
    let pod_name_set = std::env::var_os("POD_NAME").is_some_and(|v| !v.is_empty());
    let enabled = match le.enabled {
        Some(explicit) => explicit,
        None => cluster_from_config && le.is_enabled(config.cluster.kind, pod_name_set),
    };
    if !enabled {
        return Ok((None, None));
    }
    let elector = elector(le).await?;
    #[cfg(feature = "kube")]
    let leader = Some(elector.watch());
    #[cfg(not(feature = "kube"))]
    let leader = None;
    Ok((leader, Some(elector)))
}

#[cfg(not(feature = "kube"))]
async fn elector(_: &LeaderElectionConfig) -> Result<Elector, ElectionError> {
    Err(ElectionError::NoKube)
}

/// Start Lease leader election as `config` says: identity `POD_NAME`, the Lease in
/// `config.namespace` or else `POD_NAMESPACE` (both set by the Deployment's downward API).
#[cfg(feature = "kube")]
async fn elector(config: &LeaderElectionConfig) -> Result<Elector, ElectionError> {
    use std::time::Duration;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let identity = var("POD_NAME").ok_or(ElectionError::NoIdentity)?;
    let namespace = config
        .namespace
        .clone()
        .or_else(|| var("POD_NAMESPACE"))
        .ok_or(ElectionError::NoNamespace)?;
    let mut lease = teflon_k8s::lease::LeaseConfig::new(namespace, identity);
    lease.name = config.lease_name.clone();
    lease.lease_duration = Duration::from_secs(config.lease_duration_secs);
    lease.renew_deadline = Duration::from_secs(config.renew_deadline_secs);
    lease.retry_period = Duration::from_secs(config.retry_period_secs);
    let client = teflon_k8s::client::infer().await?;
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
    let elector = teflon_k8s::lease::LeaderElector::spawn(client.clone(), lease)?;
    Ok(elector.with_pod_label(client, &pod_namespace, &pod))
}
