//! The Teflon daemon as a library: the HTTP ingest API for Falco, falcosidekick and Tetragon
//! (auth, TLS with client certificates, body limits, a bounded queue), the one task that owns
//! the engine, the action executor, the audit log, `/metrics`, `/v1/decisions`, `/v1/status`,
//! policy hot reload and graceful shutdown; plus the custom-metrics API and the autoscaler loop;
//! and the response lifecycle: `POST /v1/release`, expiry, `GET /v1/actions`, notifications.
//!
//! It owns no decision logic (teflon-core), no wire format (teflon-falco, teflon-tetragon), no
//! Kubernetes calls (teflon-k8s) and no metric names (teflon-metrics): it wires them together.
//!
//! ```no_run
//! # async fn run() -> Result<(), teflon_server::ServerError> {
//! let config = teflon_server::Config::load("teflon.yaml".as_ref())?;
//! let mut server = teflon_server::Server::builder(config).start().await?;
//! server.listen().await?;
//! teflon_server::shutdown_signal().await;
//! let report = server.shutdown().await;
//! # let _ = report; Ok(()) }
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr)]
// No unwrap outside tests (clippy.toml allows it in them): never panic on input.
#![warn(clippy::unwrap_used)]

pub mod audit;
pub mod auth;
pub mod autoscaler;
pub mod backend;
mod builder;
mod clock;
pub mod config;
pub mod connections;
pub mod election;
mod engine_task;
mod error;
mod executor;
pub mod history;
pub mod http_client;
pub mod ingest;
pub mod journal;
pub mod lifecycle;
pub mod logging;
pub mod metrics_api;
pub mod notify;
pub mod openapi;
mod queue;
pub mod release;
pub mod reload;
pub mod routes;
pub mod scaling;
pub mod serve;
mod server;
pub mod state;
mod tally;
pub mod tls;

pub use audit::{AuditRecord, DecisionRing};
pub use auth::Authenticator;
pub use backend::{ClusterBackend, ClusterEvent, SharedView};
pub use builder::{DECISION_RING, ServerBuilder};
pub use clock::tokio_clock;
pub use config::{
    AuthConfig, AutoscaleConfig, ClusterConfig, ClusterType, Config, LeaderElectionConfig,
    MetricsApiConfig, TlsConfig,
};
pub use error::ServerError;
pub use notify::{NotifyConfig, NotifyFilter, NotifyFormat};
pub use server::{Server, ShutdownReport, load_policies, run, shutdown_signal};
pub use state::{Counters, SharedState, StatusSnapshot};
pub use tally::EngineReport;
pub use teflon_core::DynReleaser;
pub use teflon_core::{Clock, DynActuator};
