//! [`ServerBuilder`]: the configuration, validated once, becomes a running [`Server`]
//! (policies, cluster backend, audit log, journal recovery, engine task, policy watcher,
//! exporter upkeep), with nothing bound or spawned when a check fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use teflon_core::{Clock, Engine, EngineConfig};
use teflon_metrics::{AttackSnapshot, Exporter, SnapshotGauges};
use tokio::sync::{mpsc, watch};

use crate::audit::{self, AuditLog, DecisionRing};
use crate::auth::Authenticator;
use crate::backend::ClusterBackend;
use crate::clock::tokio_clock;
use crate::config::Config;
use crate::engine_task::{EngineTask, PolicyUpdate};
use crate::error::ServerError;
use crate::queue::{self, Queue};
use crate::reload::{self, Reloader};
use crate::server::Server;
use crate::state::{self, Counters, SharedState, StatusSnapshot};
use crate::tally::Tally;
use crate::{autoscaler, election, executor, journal, notify, release};

/// Decisions kept for `GET /v1/decisions`.
pub const DECISION_RING: usize = 1000;
/// How often the exporter's histograms are maintained.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Sets up a [`Server`].
pub struct ServerBuilder {
    pub(crate) config: Config,
    pub(crate) cluster: Option<ClusterBackend>,
    pub(crate) exporter: Option<Exporter>,
    pub(crate) install_exporter: bool,
    pub(crate) clock: Option<Clock>,
    pub(crate) authenticator: Option<Authenticator>,
    pub(crate) may_act: Option<watch::Receiver<bool>>,
    pub(crate) journal: bool,
}

impl std::fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("config", &self.config)
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
        // Everything is checked before anything is bound or spawned.
        let autoscale = autoscaler::specs(&config.autoscale)?;
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
        if !autoscale.is_empty() && cluster.scaler.is_none() {
            cluster.abort_tasks();
            return Err(ServerError::NoScaler);
        }
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
        let (lifecycle, releases_rx) =
            crate::lifecycle::Lifecycle::new(cluster.releaser.clone(), notifier);
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
            tally: Tally::new(counters.clone()),
            policy_status,
            gauges: SnapshotGauges::new(),
            pending: HashMap::new(),
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
            autoscale,
        })
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
