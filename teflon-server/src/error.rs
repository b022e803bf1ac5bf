//! Why a server could not start.

use std::net::SocketAddr;

use teflon_metrics::ExporterError;

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The policy file.
    #[error(transparent)]
    Policies(#[from] crate::reload::PolicyLoadError),
    /// The bearer token.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The cluster backend.
    #[error(transparent)]
    Cluster(#[from] crate::backend::ClusterError),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The ingest journal.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// The Prometheus exporter.
    #[error(transparent)]
    Exporter(#[from] ExporterError),
    /// A `notify:` sink.
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    /// An `autoscale` entry.
    #[error(transparent)]
    Autoscale(#[from] crate::autoscaler::AutoscaleConfigError),
    /// `autoscale` entries, and a cluster backend that cannot scale.
    #[error("autoscale is configured but this cluster backend cannot scale")]
    NoScaler,
    /// Leader election could not start.
    #[error(transparent)]
    LeaderElection(#[from] crate::election::ElectionError),
    /// The listen address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
