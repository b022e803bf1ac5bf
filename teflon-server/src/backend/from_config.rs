//! The backend `config.cluster` asks for.

use teflon_core::Clock;
use teflon_sim::SharedSim;

use super::{ClusterBackend, ClusterError, sim};
use crate::config::{ClusterType, Config};

impl ClusterBackend {
    /// The backend `config.cluster` asks for. Must be called inside a tokio runtime.
    pub async fn from_config(
        config: &Config,
        clock: Clock,
    ) -> Result<ClusterBackend, ClusterError> {
        match config.cluster.kind {
            ClusterType::Sim => Ok(ClusterBackend::sim(SharedSim::new(
                sim::cluster(&config.cluster)?,
                clock,
            ))),
            ClusterType::Kube => {
                config
                    .cluster
                    .validate_scope()
                    .map_err(ClusterError::Scope)?;
                kube_backend(config, clock).await
            }
        }
    }
}

#[cfg(feature = "kube")]
async fn kube_backend(config: &Config, clock: Clock) -> Result<ClusterBackend, ClusterError> {
    super::kube::connect(config, clock).await
}

#[cfg(not(feature = "kube"))]
async fn kube_backend(_: &Config, _: Clock) -> Result<ClusterBackend, ClusterError> {
    Err(ClusterError::Kube(
        "this build has no Kubernetes support (build teflon-server with the `kube` feature), use `cluster: {type: sim}`".to_owned(),
    ))
}
