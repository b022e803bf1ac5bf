//! [`Server`]: a running server, its listeners and side services, and its graceful shutdown.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use teflon_core::PolicySet;
use teflon_core::autoscale::AutoscaleSpec;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::ClusterBackend;
use crate::config::Config;
use crate::error::ServerError;
use crate::state::{Counters, SharedState};
use crate::tally::EngineReport;
use crate::{autoscaler, connections, election, metrics_api, notify, reload, routes, serve, tls};

/// How a server ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Alerts accepted (202) over the server's life.
    pub alerts_accepted: u64,
    /// The engine task's totals.
    pub engine: EngineReport,
}

/// A running server: the engine task and its helpers, and (after [`Server::listen`]) the
/// HTTP listener.
pub struct Server {
    pub(crate) state: SharedState,
    pub(crate) cluster: ClusterBackend,
    pub(crate) engine: Option<JoinHandle<EngineReport>>,
    pub(crate) engine_stop: watch::Sender<bool>,
    pub(crate) elector: Option<election::Elector>,
    pub(crate) background: Vec<JoinHandle<()>>,
    pub(crate) http: Option<(JoinHandle<()>, watch::Sender<bool>)>,
    pub(crate) side: Vec<JoinHandle<()>>,
    pub(crate) side_stop: watch::Sender<bool>,
    pub(crate) local_addr: Option<SocketAddr>,
    /// The `autoscale` entries, validated at start.
    pub(crate) autoscale: Vec<AutoscaleSpec>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// What the routes, the custom-metrics API and the autoscaler share.
    pub fn state(&self) -> &SharedState {
        &self.state
    }

    /// The simulated cluster, when the backend is one.
    pub fn sim(&self) -> Option<&teflon_sim::SharedSim> {
        self.cluster.sim.as_ref()
    }

    /// Every route (for `warp::test`, or to serve yourself).
    pub fn routes(&self) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
        routes::routes(self.state.clone())
    }

    /// The bound address, once listening.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Bind `config.listen` (port 0 picks one) and serve, over TLS when `tls` is configured.
    /// Also starts the custom-metrics API and the autoscaler when configured.
    pub async fn listen(&mut self) -> Result<SocketAddr, ServerError> {
        let addr = self.state.config.listen;
        let limits = connections::ConnectionLimits::ingest(&self.state.config.http);
        if limits.idle_timeout < Duration::from_secs(120) {
            tracing::warn!(
                idle_timeout_secs = limits.idle_timeout.as_secs(),
                "http.idle_timeout_secs is below 120 s: libcurl (Falco's http_output) reuses connections idle for up to 118 s, and an alert sent as the server closes one is lost"
            );
        }
        let listener = serve::bind(addr, limits.accept_backlog)
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let tls = match &self.state.config.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(tls::ingest_config(
                t,
                self.state.config.auth.client_ca_file.as_deref(),
                limits.http2,
            )?)),
            None => None,
        };
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let routes = self.routes();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(serve::serve_with(
            listener,
            tls,
            routes,
            limits,
            async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            },
        ));
        tracing::info!(
            address = %local,
            %scheme,
            http2 = limits.http2,
            max_connections = limits.max_connections,
            "listening"
        );
        self.http = Some((task, stop_tx));
        self.local_addr = Some(local);
        self.start_side_services();
        Ok(local)
    }

    fn start_side_services(&mut self) {
        let config = self.state.config.clone();
        if let Some(api) = config.metrics_api.clone() {
            let snapshot = self.state.snapshot.clone();
            let view = self.state.view.clone();
            let mut stop = self.side_stop.subscribe();
            self.side.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = metrics_api::serve(&api, snapshot, view, shutdown).await {
                    tracing::error!(error = %e, "custom-metrics API stopped");
                }
            }));
        }
        // Checked before anything started (`ServerBuilder::start`): entries are valid, and the
        // backend can scale when there are any.
        if let Some(scaler) = self
            .cluster
            .scaler
            .clone()
            .filter(|_| !self.autoscale.is_empty())
        {
            let specs = self.autoscale.clone();
            let snapshot = self.state.snapshot.clone();
            let view = self.state.view.clone();
            let clock = self.state.clock.clone();
            let mut stop = self.side_stop.subscribe();
            self.side.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                let report = autoscaler::run(
                    specs,
                    autoscaler::DEFAULT_INTERVAL,
                    snapshot,
                    view,
                    scaler,
                    clock,
                    shutdown,
                )
                .await;
                tracing::info!(?report, "autoscaler stopped");
            }));
        }
    }

    /// Graceful shutdown: refuse new alerts, stop the listener (open requests finish), decide
    /// everything queued, finish or record in-flight actions, flush the audit log.
    pub async fn shutdown(mut self) -> ShutdownReport {
        self.state.accepting.store(false, Ordering::SeqCst);
        if let Some((task, stop)) = self.http.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
        let _ = self.side_stop.send(true);
        for t in self.side.drain(..) {
            let _ = t.await;
        }
        // A follower cannot decide what it buffered; tell the engine task to stop waiting
        // for leadership before asking it to drain.
        let _ = self.engine_stop.send(true);
        let drained = self.state.queue.drain();
        let _ = drained.await;
        let engine = match self.engine.take() {
            Some(h) => h.await.unwrap_or_default(),
            None => EngineReport::default(),
        };
        // The webhooks get a few seconds for what they still hold.
        self.state
            .lifecycle
            .notifier()
            .shutdown(notify::DRAIN_TIMEOUT)
            .await;
        // Only now, with every decided action finished and recorded: release the Lease so a
        // follower takes over at its next round (≤ retry_period) instead of after expiry.
        if let Some(elector) = self.elector.take() {
            elector.shutdown().await;
        }
        for t in self.background.drain(..) {
            t.abort();
        }
        self.cluster.abort_tasks();
        let report = ShutdownReport {
            alerts_accepted: Counters::get(&self.state.counters.alerts_accepted),
            engine,
        };
        tracing::info!(
            accepted = report.alerts_accepted,
            decided = report.engine.alerts,
            audit_records = report.engine.audit_records,
            "shut down"
        );
        report
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for t in self.background.drain(..).chain(self.side.drain(..)) {
            t.abort();
        }
        self.cluster.abort_tasks();
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Run a server from a configuration file until `signal` resolves, then shut down gracefully.
pub async fn run(
    config: Config,
    signal: impl std::future::Future<Output = ()>,
) -> Result<ShutdownReport, ServerError> {
    let mut server = Server::builder(config).start().await?;
    server.listen().await?;
    signal.await;
    Ok(server.shutdown().await)
}

/// The policies in force when the server starts, for callers that need to show them.
pub fn load_policies(path: &std::path::Path) -> Result<PolicySet, ServerError> {
    Ok(reload::load(path)?.0)
}
