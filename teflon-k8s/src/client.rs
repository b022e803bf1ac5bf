//! The one way Teflon builds a kube [`Client`] (server, CLI and tests alike), and the task
//! that keeps its connections warm.
//!
//! kube 5's client retries 429, 503 and 504 by itself (`kube::Config::default_retry`). For
//! Teflon that is wrong twice over: the Eviction API's 429 is a PodDisruptionBudget's final
//! "no", which the client's retry turned into a timeout, and retries would be decided in two
//! places. So the client's own retry layer is off, and [`crate::RetryPolicy`] decides every
//! retry.

use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::task::JoinHandle;

/// A client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Neither a kubeconfig (`KUBECONFIG`, `~/.kube/config`) nor the in-cluster environment.
    #[error("no Kubernetes configuration found (KUBECONFIG, ~/.kube/config, or in-cluster): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    /// The kubeconfig file could not be read or used.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The configuration could not become a client (TLS material, auth plugin…).
    #[error("cannot build a Kubernetes client: {0}")]
    Build(#[source] kube::Error),
}

/// Connections kept open by [`keep_warm`] by default: enough for a burst of first actions.
pub const WARM_CONNECTIONS: usize = 4;
/// How often [`keep_warm`] touches them: well inside the API server's 90 s idle timeout and
/// the client pool's 90 s.
pub const WARM_EVERY: Duration = Duration::from_secs(20);

/// A client for `config`, with the client's own retry layer off.
pub fn from_config(mut config: Config) -> Result<Client, ClientError> {
    config.default_retry = false;
    Client::try_from(config).map_err(ClientError::Build)
}

/// A client from the environment: `KUBECONFIG` or `~/.kube/config`, else the in-cluster
/// ServiceAccount.
pub async fn infer() -> Result<Client, ClientError> {
    let config = Config::infer().await.map_err(ClientError::Infer)?;
    from_config(config)
}

/// A client for the kubeconfig file at `path` (its current context), e.g. `TEST_KUBECONFIG`.
pub async fn from_kubeconfig(path: &Path) -> Result<Client, ClientError> {
    from_config(kubeconfig(path).await?)
}

/// The configuration of the kubeconfig file at `path` (its current context), to adjust
/// (impersonation, say) before [`from_config`].
pub async fn kubeconfig(path: &Path) -> Result<Config, ClientError> {
    let err = |message: String| ClientError::Kubeconfig {
        path: path.display().to_string(),
        message,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))
}

/// Keep `connections` pooled connections to the API server open, so that the first action
/// after an idle minute does not pay TCP and TLS set-up: `GET /version` on that many
/// connections at once, now and every `every`. (`/version` is readable by every client,
/// RBAC's `system:public-info-viewer`.) kube's client speaks HTTP/1.1, one request per
/// connection at a time, so concurrent requests are what keep several connections open.
pub fn keep_warm(client: Client, connections: usize, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pings =
                (0..connections.max(1)).map(|_| {
                    let c = client.clone();
                    async move {
                        tokio::time::timeout(Duration::from_secs(5), c.apiserver_version()).await
                    }
                });
            let failed = futures::future::join_all(pings)
                .await
                .into_iter()
                .filter(|r| !matches!(r, Ok(Ok(_))))
                .count();
            if failed > 0 {
                tracing::debug!(
                    failed,
                    "keep-warm: the API server did not answer every ping"
                );
            }
        }
    })
}
