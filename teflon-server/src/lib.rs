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
mod clock;
pub mod config;
pub mod connections;
pub mod election;
mod engine_task;
mod executor;
pub mod history;
pub mod http_client;
pub mod ingest;
pub mod journal;
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
pub mod state;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use teflon_core::{Engine, EngineConfig, PolicySet};
use teflon_metrics::{AttackSnapshot, Exporter, ExporterError, SnapshotGauges};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use audit::{AuditRecord, DecisionRing};
pub use auth::Authenticator;
pub use backend::{ClusterBackend, ClusterEvent, SharedView};
pub use clock::tokio_clock;
pub use config::{
    AuthConfig, AutoscaleConfig, ClusterConfig, ClusterType, Config, LeaderElectionConfig,
    MetricsApiConfig, TlsConfig,
};
pub use engine_task::EngineReport;
pub use notify::{NotifyConfig, NotifyFilter, NotifyFormat};
pub use release::DynReleaser;
pub use state::{Counters, SharedState, StatusSnapshot};
pub use teflon_core::{Clock, DynActuator};

use crate::audit::AuditLog;
use crate::engine_task::{EngineTask, PolicyUpdate};
use crate::queue::Queue;
use crate::reload::Reloader;

/// Decisions kept for `GET /v1/decisions`.
pub const DECISION_RING: usize = 1000;
/// How often the exporter's histograms are maintained.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration file.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The policy file.
    #[error(transparent)]
    Policies(#[from] reload::PolicyLoadError),
    /// The bearer token.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The cluster backend.
    #[error(transparent)]
    Cluster(#[from] backend::ClusterError),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    /// The ingest journal.
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    /// The Prometheus exporter.
    #[error(transparent)]
    Exporter(#[from] ExporterError),
    /// A `notify:` sink.
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
    /// The `autoscale` entries.
    #[error("{0}")]
    Autoscale(String),
    /// Leader election could not start.
    #[error(transparent)]
    LeaderElection(#[from] election::ElectionError),
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

/// How a server ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Alerts accepted (202) over the server's life.
    pub alerts_accepted: u64,
    /// The engine task's totals.
    pub engine: EngineReport,
}

/// Sets up a [`Server`].
pub struct ServerBuilder {
    config: Config,
    cluster: Option<ClusterBackend>,
    exporter: Option<Exporter>,
    install_exporter: bool,
    clock: Option<Clock>,
    authenticator: Option<Authenticator>,
    may_act: Option<watch::Receiver<bool>>,
    journal: bool,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// Use this cluster instead of the one `config.cluster` describes.
    pub fn cluster(mut self, cluster: ClusterBackend) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Render `/metrics` from this exporter (whose recorder the caller installed or scoped).
    pub fn exporter(mut self, exporter: Exporter) -> Self {
        self.exporter = Some(exporter);
        self.install_exporter = false;
        self
    }

    /// Do not install a process-wide Prometheus recorder (`/metrics` stays empty unless an
    /// exporter is given). Tests that scope a recorder use it.
    pub fn without_exporter(mut self) -> Self {
        self.install_exporter = false;
        self
    }

    /// Keep no ingest journal, whatever the configuration says: accepted alerts live in
    /// memory until decided. For tests on tokio's paused clock (the journal's writer thread
    /// syncs in real time, while the paused clock jumps ahead) and embedders with their own
    /// durability.
    pub fn without_journal(mut self) -> Self {
        self.journal = false;
        self
    }

    /// Read "now" from this clock (default: [`tokio_clock`]).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Authenticate with this instead of `config.auth` (the demo's generated token).
    pub fn authenticator(mut self, auth: Authenticator) -> Self {
        self.authenticator = Some(auth);
        self
    }

    /// Take alerts off the queue, decide and act only while this says `true` (instead of
    /// the Lease election `config.leader_election` describes): an embedder's own election,
    /// or a test driving leadership by hand. While `false`, alerts are accepted and buffered.
    pub fn may_act(mut self, may_act: watch::Receiver<bool>) -> Self {
        self.may_act = Some(may_act);
        self
    }

    /// Load the policies, build the cluster backend, start the engine task, the policy
    /// watcher and the exporter upkeep. No listener yet: see [`Server::listen`], or drive
    /// [`Server::routes`] with `warp::test`.
    pub async fn start(self) -> Result<Server, ServerError> {
        let config = self.config;
        let clock = self.clock.unwrap_or_else(tokio_clock);
        let auth = match self.authenticator {
            Some(a) => a,
            None => Authenticator::from_config(&config.auth)?,
        };
        if auth.is_open() {
            tracing::warn!(
                "auth: none — anyone who can reach {} can make Teflon reap pods",
                config.listen
            );
        }
        let (policies, hash) = reload::load(&config.policies)?;
        let policy_status = reload::status_of(&config.policies, &policies, clock());
        tracing::info!(file = %config.policies.display(), policies = policies.len(), "policies loaded");
        let exporter = match (self.exporter, self.install_exporter) {
            (Some(e), _) => Some(e),
            (None, true) => Some(Exporter::install()?),
            (None, false) => None,
        };
        let cluster_from_config = self.cluster.is_none();
        let mut cluster = match self.cluster {
            Some(c) => c,
            None => ClusterBackend::from_config(&config, clock.clone()).await?,
        };
        let ring = Arc::new(DecisionRing::new(DECISION_RING));
        let audit = AuditLog::open_with(
            config.audit_log.as_deref(),
            ring.clone(),
            audit::Rotation {
                max_bytes: config.audit_max_bytes,
                max_files: config.audit_max_files,
            },
        )?;
        let audit_health = audit.health();
        let (queue, rx, depth) = Queue::new(config.queue_capacity);
        let (queue, journal) = match config.journal_dir().filter(|_| self.journal) {
            Some(dir) => {
                let journal = recover(&dir, &config, &queue)?;
                (queue.with_journal(journal.clone()), Some(journal))
            }
            None => {
                if self.journal {
                    tracing::warn!(
                        "no state_dir and no audit_log: accepted alerts are not journaled, a crash loses what was not yet decided"
                    );
                }
                (queue, None)
            }
        };
        let (executor, done_rx) = executor::Executor::new(
            cluster.actuator.clone(),
            config.max_concurrent_actions,
            clock.clone(),
        );
        let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(AttackSnapshot::default()));
        let (status_tx, status_rx) = watch::channel(Arc::new(StatusSnapshot::default()));
        let (policy_tx, policy_rx) = mpsc::unbounded_channel::<PolicyUpdate>();
        let counters = Arc::new(Counters::default());
        let cluster_rx = std::mem::replace(&mut cluster.events, mpsc::unbounded_channel().1);
        let (leader, elector) = match self.may_act {
            Some(rx) => (Some(rx), None),
            None => election::start(&config, cluster_from_config).await?,
        };
        // Without election this replica always acts; the sender is dropped on purpose (the
        // engine task stops watching a closed channel and keeps the last value).
        let may_act = leader.clone().unwrap_or_else(|| watch::channel(true).1);
        let (engine_stop, stop_rx) = watch::channel(false);
        let view = cluster.view.clone();
        let notifier = notify::Notifier::start(&config.notify)?;
        let (lifecycle, releases_rx) = release::Lifecycle::new(cluster.releaser.clone(), notifier);
        let sweep = tokio::spawn(release::sweep(
            lifecycle.clone(),
            may_act.clone(),
            clock.clone(),
            release::EXPIRY_EVERY,
        ));
        let engine = EngineTask {
            engine: Engine::with_config(
                policies,
                EngineConfig {
                    action_deadline: config.action_deadline(),
                    ..EngineConfig::default()
                },
            ),
            view: view.clone(),
            clock: clock.clone(),
            rx,
            depth,
            done_rx,
            cluster_rx,
            policy_rx,
            may_act,
            stop: stop_rx,
            executor,
            audit,
            snapshot_tx,
            status_tx,
            counters: counters.clone(),
            policy_status,
            gauges: SnapshotGauges::new(),
            hot: teflon_metrics::events::HotPath::new(),
            pending: HashMap::new(),
            deferred_received: HashMap::new(),
            journal,
            fresh_seq: None,
            journal_actions: HashMap::new(),
            journal_open: HashMap::new(),
            journal_done: Vec::new(),
            lookup: cluster.lookup.clone(),
            parked: std::collections::VecDeque::new(),
            lookup_backoff: Duration::ZERO,
            last_publish: None,
            dirty: false,
            report: EngineReport::default(),
            lifecycle: lifecycle.clone(),
            releases_rx,
        };
        let engine = tokio::spawn(engine.run());
        let reloader = Reloader {
            path: config.policies.clone(),
            mtime: std::fs::metadata(&config.policies)
                .and_then(|m| m.modified())
                .ok(),
            hash,
            tx: policy_tx,
            clock: clock.clone(),
        };
        let mut background = vec![tokio::spawn(reloader.run()), sweep];
        if let Some(e) = exporter.clone() {
            background.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(UPKEEP_EVERY);
                loop {
                    every.tick().await;
                    e.run_upkeep();
                }
            }));
        }
        let bodies = Arc::new(state::BodyBudget::new(config.max_body_bytes));
        let state = SharedState {
            config: Arc::new(config),
            view,
            snapshot: snapshot_rx,
            status: status_rx,
            decisions: ring,
            queue,
            audit: audit_health,
            auth: Arc::new(auth),
            exporter,
            counters,
            accepting: Arc::new(AtomicBool::new(true)),
            leader,
            clock,
            lifecycle,
            ids: Arc::new(state::AlertIds::new(teflon_sim::shared::system_now())),
            parsing: Arc::new(tokio::sync::Semaphore::new(state::parse_permits())),
            bodies,
            metrics: Arc::default(),
        };
        Ok(Server {
            state,
            cluster,
            engine: Some(engine),
            engine_stop,
            elector,
            background,
            http: None,
            side: Vec::new(),
            side_stop: watch::channel(false).0,
            local_addr: None,
        })
    }
}

/// A running server: the engine task and its helpers, and (after [`Server::listen`]) the
/// HTTP listener.
pub struct Server {
    state: SharedState,
    cluster: ClusterBackend,
    engine: Option<JoinHandle<EngineReport>>,
    engine_stop: watch::Sender<bool>,
    elector: Option<election::Elector>,
    background: Vec<JoinHandle<()>>,
    http: Option<(JoinHandle<()>, watch::Sender<bool>)>,
    side: Vec<JoinHandle<()>>,
    side_stop: watch::Sender<bool>,
    local_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Start setting up a server for `config`.
    pub fn builder(config: Config) -> ServerBuilder {
        ServerBuilder {
            config,
            cluster: None,
            exporter: None,
            install_exporter: true,
            clock: None,
            authenticator: None,
            may_act: None,
            journal: true,
        }
    }

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
        self.start_side_services()?;
        Ok(local)
    }

    fn start_side_services(&mut self) -> Result<(), ServerError> {
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
        if !config.autoscale.is_empty() {
            let specs = autoscaler::specs(&config.autoscale)
                .map_err(|e| ServerError::Autoscale(e.to_string()))?;
            let Some(scaler) = self.cluster.scaler.clone() else {
                return Err(ServerError::Autoscale(
                    "autoscale is configured but this cluster backend cannot scale".to_owned(),
                ));
            };
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
        Ok(())
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

/// Open the journal in `dir` and queue what an earlier process accepted and did not record
/// (SPEC §6): those alerts are decided first, in order, with their original receipt time.
/// Alerts the audit log already has are only marked complete.
fn recover(
    dir: &std::path::Path,
    config: &Config,
    queue: &Queue,
) -> Result<Arc<journal::Journal>, ServerError> {
    let (journal, recovery) = journal::Journal::open(dir, journal::DEFAULT_SEGMENT_BYTES)?;
    let journal = Arc::new(journal);
    if recovery.pending.is_empty() {
        return Ok(journal);
    }
    let wanted: std::collections::HashSet<String> = recovery
        .pending
        .iter()
        .filter_map(|r| r.entry.alert.id.clone())
        .collect();
    let audited = config
        .audit_log
        .as_deref()
        .map(|path| audit::recorded_ids(path, &wanted))
        .unwrap_or_default();
    let mut done = Vec::new();
    let mut batch = Vec::new();
    let now = std::time::Instant::now();
    for r in recovery.pending {
        if r.entry
            .alert
            .id
            .as_ref()
            .is_some_and(|id| audited.contains(id))
        {
            done.push(r.seq);
            continue;
        }
        batch.push(queue::Queued {
            alert: r.entry.alert,
            received_at: r.entry.received_at,
            received: now,
            journal_seq: Some(r.seq),
        });
    }
    tracing::info!(
        dir = %dir.display(),
        replayed = batch.len(),
        already_audited = done.len(),
        torn_tails = recovery.torn.len(),
        "journal: alerts accepted before the last stop are decided first"
    );
    teflon_metrics::events::JournalReplayed(batch.len() as u64).emit();
    journal.complete(done);
    if !batch.is_empty() {
        // The engine task is not running yet: these come before anything accepted now.
        let _ = queue.push_recovered(batch);
    }
    Ok(journal)
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
