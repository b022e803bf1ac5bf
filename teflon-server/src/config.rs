//! The server's configuration file (SPEC §6): YAML, unknown keys refused, errors as
//! `FILE:LINE:COL: message`. Relative paths are resolved against the file's directory.
//!
//! Size: about 800 lines before its tests, kept in one file: the configuration file's types with
//! their defaults and validation, one section per key, so that every key is in one place.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use teflon_core::autoscale::AutoscaleSpec;
use teflon_core::{WorkloadKind, WorkloadRef};

/// The default ingest address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:2804";
/// The default queue capacity (alerts waiting for the engine).
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// The default body limit (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1_048_576;
/// The default number of actions executed at once.
pub const DEFAULT_MAX_CONCURRENT_ACTIONS: usize = 32;
/// How long an action is retried after its decision, by default (SPEC §4).
pub const DEFAULT_ACTION_DEADLINE_SECS: u64 = 300;
/// The default most alerts in one request.
pub const DEFAULT_MAX_ALERTS_PER_REQUEST: usize = 5_000;
/// The default size at which the audit log is rotated (32 MiB).
pub const DEFAULT_AUDIT_MAX_BYTES: u64 = 32 << 20;
/// The default number of rotated audit files kept.
pub const DEFAULT_AUDIT_MAX_FILES: usize = 4;

/// The configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The YAML is invalid or has unknown/mistyped keys.
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// What is wrong.
        message: String,
    },
    /// The keys are well-formed but do not make sense together.
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// `Result` with [`ConfigError`].
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Ingest address (HTTP, or HTTPS with `tls`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The policy file; reloaded when it changes.
    pub policies: PathBuf,
    /// Where the cluster view and the actions come from.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// Who may POST alerts.
    pub auth: AuthConfig,
    /// Serve ingest over TLS.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The custom-metrics API listener (`custom.metrics.k8s.io`).
    #[serde(default)]
    pub metrics_api: Option<MetricsApiConfig>,
    /// The audit log (JSON Lines); none when absent.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// Where Teflon keeps state that must survive a restart: the ingest journal
    /// (`<state_dir>/journal/`). Default: the audit log's directory. Without either, accepted
    /// alerts live only in memory until decided.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Alerts accepted but not yet decided, at most; beyond it POSTs get 429.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Request bodies above this get 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Actions executed at once, at most (actions on one pod always run one after another).
    #[serde(default = "default_max_concurrent_actions")]
    pub max_concurrent_actions: usize,
    /// An action whose calls fail in a way that can pass (no answer, connection errors, 5xx,
    /// throttling) is retried with backoff for this long after its decision, across an API
    /// server outage; then its outcome is `failed`.
    #[serde(default = "default_action_deadline_secs")]
    pub action_deadline_secs: u64,
    /// Opt-in autoscaling, per workload.
    #[serde(default)]
    pub autoscale: Vec<AutoscaleConfig>,
    /// Lease-based leader election between replicas: only the leader decides and acts.
    #[serde(default)]
    pub leader_election: LeaderElectionConfig,
    /// Webhooks told about decisions and releases (`json` or `slack`), off the decision path.
    #[serde(default)]
    pub notify: Vec<crate::notify::NotifyConfig>,
    /// Connections of the ingest listener: limits and timeouts.
    #[serde(default)]
    pub http: HttpConfig,
    /// Alerts in one request, at most (and at most `queue_capacity`); more get 413.
    #[serde(default = "default_max_alerts_per_request")]
    pub max_alerts_per_request: usize,
    /// The audit log is rotated when it reaches this size (`audit_log` → `audit_log.1` …);
    /// 0: never.
    #[serde(default = "default_audit_max_bytes")]
    pub audit_max_bytes: u64,
    /// Rotated audit files kept (`audit_log.1` … `audit_log.N`); older ones are deleted.
    #[serde(default = "default_audit_max_files")]
    pub audit_max_files: usize,
}

fn default_max_alerts_per_request() -> usize {
    DEFAULT_MAX_ALERTS_PER_REQUEST
}
fn default_audit_max_bytes() -> u64 {
    DEFAULT_AUDIT_MAX_BYTES
}
fn default_audit_max_files() -> usize {
    DEFAULT_AUDIT_MAX_FILES
}
fn default_max_connections() -> usize {
    1024
}
fn default_accept_backlog() -> u32 {
    1024
}
fn default_header_read_timeout_secs() -> u64 {
    10
}
fn default_idle_timeout_secs() -> u64 {
    120
}

/// `http:` — connections of the ingest listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Connections open at once, at most. Past it, a new connection takes the place of the
    /// oldest one that never authenticated and has no request in flight, or is refused at
    /// accept when there is none.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections the kernel queues before they are accepted.
    #[serde(default = "default_accept_backlog")]
    pub accept_backlog: u32,
    /// A request head (request line and headers) must arrive within this many seconds of the
    /// connection, or of its first byte on a kept-alive connection; else the connection is closed.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// A kept-alive connection with no request for this long is closed. Keep it above the
    /// senders' own reuse limit (libcurl, Falco's `http_output`, reuses a connection idle for
    /// at most 118 s), so the server never closes a connection a sender is about to reuse.
    #[serde(default = "default_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Serve HTTP/2 (h2c, or h2 by ALPN over TLS) besides HTTP/1.1. Off by default: Falco,
    /// falcosidekick and Fluent Bit send HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: default_max_connections(),
            accept_backlog: default_accept_backlog(),
            header_read_timeout_secs: default_header_read_timeout_secs(),
            idle_timeout_secs: default_idle_timeout_secs(),
            http2: false,
        }
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("http.max_connections must be at least 1".to_owned());
        }
        if self.accept_backlog == 0 {
            return Err("http.accept_backlog must be at least 1".to_owned());
        }
        if self.header_read_timeout_secs == 0 {
            return Err("http.header_read_timeout_secs must be at least 1".to_owned());
        }
        if self.idle_timeout_secs == 0 {
            return Err("http.idle_timeout_secs must be at least 1".to_owned());
        }
        Ok(())
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 2804))
}
fn default_queue_capacity() -> usize {
    DEFAULT_QUEUE_CAPACITY
}
fn default_max_body_bytes() -> u64 {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_concurrent_actions() -> usize {
    DEFAULT_MAX_CONCURRENT_ACTIONS
}
fn default_action_deadline_secs() -> u64 {
    DEFAULT_ACTION_DEADLINE_SECS
}
fn default_recovery_secs() -> u64 {
    15
}
fn default_metrics_api_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 6443))
}
fn default_cooldown_secs() -> u64 {
    60
}
fn default_stabilization_secs() -> u64 {
    300
}

/// The Lease the manifests' RBAC Role allows (`teflon_k8s::lease::DEFAULT_LEASE_NAME`).
pub const DEFAULT_LEASE_NAME: &str = "teflon-leader";

fn default_lease_name() -> String {
    DEFAULT_LEASE_NAME.to_owned()
}
fn default_lease_duration_secs() -> u64 {
    15
}
fn default_renew_deadline_secs() -> u64 {
    10
}
fn default_retry_period_secs() -> u64 {
    2
}

/// `leader_election:` — with several replicas, only the holder of a coordination Lease takes
/// alerts off the queue, decides and acts; the others accept and buffer alerts (202, 429
/// when their queue is full) until they lead. Failover: ≤ `retry_period_secs` when the leader
/// shuts down cleanly (it releases the Lease), ≤ `lease_duration_secs + retry_period_secs`
/// when it crashes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderElectionConfig {
    /// `true`: required; `false`: off; absent: on for `cluster.type: kube` when `POD_NAME`
    /// is set (the Deployment sets it), off otherwise.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The Lease's name.
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    /// The Lease's namespace (default: `POD_NAMESPACE`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// How long a silent leader keeps the Lease.
    #[serde(default = "default_lease_duration_secs")]
    pub lease_duration_secs: u64,
    /// A leader that could not renew for this long stops acting (below `lease_duration_secs`).
    #[serde(default = "default_renew_deadline_secs")]
    pub renew_deadline_secs: u64,
    /// Time between two election rounds (below `renew_deadline_secs`).
    #[serde(default = "default_retry_period_secs")]
    pub retry_period_secs: u64,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            enabled: None,
            lease_name: default_lease_name(),
            namespace: None,
            lease_duration_secs: default_lease_duration_secs(),
            renew_deadline_secs: default_renew_deadline_secs(),
            retry_period_secs: default_retry_period_secs(),
        }
    }
}

impl LeaderElectionConfig {
    /// Whether to elect, for this cluster type and whether `POD_NAME` is set.
    pub fn is_enabled(&self, cluster: ClusterType, pod_name_set: bool) -> bool {
        self.enabled
            .unwrap_or(cluster == ClusterType::Kube && pod_name_set)
    }

    fn validate(&self) -> Result<(), String> {
        if self.lease_name.is_empty() {
            return Err("leader_election.lease_name must not be empty".to_owned());
        }
        if self.lease_duration_secs == 0 || self.lease_duration_secs > i32::MAX as u64 {
            return Err("leader_election.lease_duration_secs must be at least 1".to_owned());
        }
        if self.renew_deadline_secs >= self.lease_duration_secs {
            return Err(format!(
                "leader_election.renew_deadline_secs ({}) must be below lease_duration_secs ({}), or two replicas could act at once",
                self.renew_deadline_secs, self.lease_duration_secs
            ));
        }
        if self.retry_period_secs == 0 || self.retry_period_secs >= self.renew_deadline_secs {
            return Err(format!(
                "leader_election.retry_period_secs ({}) must be at least 1 and below renew_deadline_secs ({})",
                self.retry_period_secs, self.renew_deadline_secs
            ));
        }
        Ok(())
    }
}

/// `cluster.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterType {
    /// A real cluster (in-cluster config or `KUBECONFIG`).
    #[default]
    Kube,
    /// The in-memory simulated cluster.
    Sim,
}

/// `cluster:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `kube` or `sim`.
    #[serde(rename = "type", default)]
    pub kind: ClusterType,
    /// sim: a `kubectl get … -o json` List; absent = an assumed-healthy cluster.
    #[serde(default)]
    pub snapshot: Option<PathBuf>,
    /// sim: reap → replacement Ready.
    #[serde(default = "default_recovery_secs")]
    pub recovery_secs: u64,
    /// See only these namespaces (kube: one watch per namespace and kind, RBAC can be
    /// namespaced); empty = the whole cluster.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// See only the pods this label selector selects (`team=payments,tier in (web,api)`),
    /// filtered by the API server. Owners and PodDisruptionBudgets are always seen whole. Select
    /// whole workloads: a workload's pods outside the selector do not count as available.
    #[serde(default)]
    pub pod_selector: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            kind: ClusterType::Kube,
            snapshot: None,
            recovery_secs: default_recovery_secs(),
            namespaces: Vec::new(),
            pod_selector: None,
        }
    }
}

/// A namespace name: a DNS-1123 label (lowercase alphanumerics and '-', 1-63 characters,
/// starting and ending with an alphanumeric).
fn valid_namespace(ns: &str) -> bool {
    let b = ns.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

impl ClusterConfig {
    /// Check `namespaces` and `pod_selector` (what `Config::validate` reports).
    pub fn validate_scope(&self) -> Result<(), String> {
        for ns in &self.namespaces {
            if !valid_namespace(ns) {
                return Err(format!(
                    "cluster.namespaces: {ns:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"
                ));
            }
        }
        if let Some(sel) = &self.pod_selector {
            teflon_core::selector::Selector::parse(sel)
                .map_err(|e| format!("cluster.pod_selector: {e}"))?;
            if self.kind == ClusterType::Sim && self.snapshot.is_none() {
                return Err("cluster.pod_selector on `type: sim` needs a `snapshot`: the assumed-healthy cluster's pods have no labels to select on".to_owned());
            }
        }
        Ok(())
    }

    /// The simulated cluster's view of `namespaces` and `pod_selector` (validated first).
    pub fn sim_scope(&self) -> Result<teflon_sim::SimScope, String> {
        self.validate_scope()?;
        let mut scope = teflon_sim::SimScope::everything().namespaces(self.namespaces.clone());
        if let Some(sel) = &self.pod_selector {
            let sel = teflon_core::selector::Selector::parse(sel)
                .map_err(|e| format!("cluster.pod_selector: {e}"))?;
            scope = scope.pods(move |labels| sel.matches(labels));
        }
        Ok(scope)
    }
}

/// `auth:` — at least one way to authenticate, or an explicit `none`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    /// A file holding the bearer token (trailing whitespace ignored).
    pub token_file: Option<PathBuf>,
    /// An environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// Client certificates signed by this CA authenticate (needs `tls`).
    pub client_ca_file: Option<PathBuf>,
    /// No authentication at all (explicit; warned about at startup).
    pub none: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    token_env: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    none: bool,
}

impl<'de> Deserialize<'de> for AuthConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AuthVisitor;
        impl<'de> Visitor<'de> for AuthVisitor {
            type Value = AuthConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "`none` or a map with token_file, token_env, client_ca_file or none: true",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AuthConfig, E> {
                if v == "none" {
                    Ok(AuthConfig {
                        none: true,
                        ..AuthConfig::default()
                    })
                } else {
                    Err(E::custom(format!(
                        "unknown auth {v:?} (expected `none`, or a map with token_file, token_env or client_ca_file)"
                    )))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AuthConfig, A::Error> {
                let raw = RawAuth::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(AuthConfig {
                    token_file: raw.token_file,
                    token_env: raw.token_env,
                    client_ca_file: raw.client_ca_file,
                    none: raw.none,
                })
            }
        }
        deserializer.deserialize_any(AuthVisitor)
    }
}

/// `tls:` — certificate and key (PEM) for the ingest listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert_file: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// `metrics_api:` — the custom-metrics API listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsApiConfig {
    /// Address (HTTPS).
    #[serde(default = "default_metrics_api_listen")]
    pub listen: SocketAddr,
    /// Serving certificate, PEM (self-signed when absent).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Serving key, PEM.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Verify client certificates (the API server's front proxy) against this CA.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// One `autoscale:` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoscaleConfig {
    /// Namespace.
    pub namespace: String,
    /// `Deployment` or `StatefulSet`.
    pub kind: String,
    /// Workload name.
    pub name: String,
    /// Never fewer.
    pub min_replicas: u32,
    /// Never more.
    pub max_replicas: u32,
    /// Minimum seconds between two changes.
    #[serde(default = "default_cooldown_secs")]
    pub cooldown_secs: u64,
    /// Scale down only to the highest recommendation of this many seconds.
    #[serde(default = "default_stabilization_secs")]
    pub scale_down_stabilization_secs: u64,
}

/// An `autoscale:` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutoscaleConfigError {
    /// Only Deployments and StatefulSets have a `scale` subresource Teflon drives.
    #[error(
        "autoscale {namespace}/{name}: kind {kind:?} cannot be autoscaled (expected Deployment or StatefulSet)"
    )]
    UnsupportedKind {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The kind given.
        kind: String,
    },
    /// `min_replicas` above `max_replicas`.
    #[error(
        "autoscale {namespace}/{name}: min_replicas {min} is above max_replicas {max} (lower min_replicas or raise max_replicas)"
    )]
    Bounds {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// `min_replicas`.
        min: u32,
        /// `max_replicas`.
        max: u32,
    },
}

impl AutoscaleConfig {
    /// The core autoscaling settings of this entry: the one check of `autoscale:` entries,
    /// run when the file is parsed and again when a server starts (a configuration built in
    /// code skips the parse).
    pub fn spec(&self) -> Result<AutoscaleSpec, AutoscaleConfigError> {
        let kind = match self.kind.as_str() {
            "Deployment" => WorkloadKind::Deployment,
            "StatefulSet" => WorkloadKind::StatefulSet,
            other => {
                return Err(AutoscaleConfigError::UnsupportedKind {
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                    kind: other.to_owned(),
                });
            }
        };
        if self.min_replicas > self.max_replicas {
            return Err(AutoscaleConfigError::Bounds {
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                min: self.min_replicas,
                max: self.max_replicas,
            });
        }
        Ok(AutoscaleSpec {
            workload: WorkloadRef::new(kind, self.namespace.clone(), self.name.clone()),
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            cooldown: std::time::Duration::from_secs(self.cooldown_secs),
            scale_down_stabilization: std::time::Duration::from_secs(
                self.scale_down_stabilization_secs,
            ),
        })
    }
}

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut config = Config::parse(&text, &file)?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Parse and validate configuration text; `file` names it in errors. Paths stay as written.
    pub fn parse(text: &str, file: &str) -> Result<Config> {
        let config: Config = serde_saphyr::from_str(text).map_err(|e| saphyr_error(file, &e))?;
        config.validate(file)?;
        Ok(config)
    }

    fn validate(&self, file: &str) -> Result<()> {
        let invalid = |message: String| ConfigError::Invalid {
            file: file.to_owned(),
            message,
        };
        let a = &self.auth;
        let configured =
            a.token_file.is_some() || a.token_env.is_some() || a.client_ca_file.is_some();
        if a.none && configured {
            return Err(invalid(
                "auth: `none: true` together with a token or client CA; choose one".to_owned(),
            ));
        }
        if !a.none && !configured {
            return Err(invalid(
                "auth: configure token_file, token_env or client_ca_file (or `auth: none` to run without authentication)"
                    .to_owned(),
            ));
        }
        if a.token_file.is_some() && a.token_env.is_some() {
            return Err(invalid(
                "auth: give token_file or token_env, not both".to_owned(),
            ));
        }
        if a.client_ca_file.is_some() && self.tls.is_none() {
            return Err(invalid(
                "auth.client_ca_file needs `tls: {cert_file, key_file}`: client certificates only exist over TLS".to_owned(),
            ));
        }
        if self.queue_capacity == 0 {
            return Err(invalid("queue_capacity must be at least 1".to_owned()));
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes must be at least 1".to_owned()));
        }
        if self.max_concurrent_actions == 0 {
            return Err(invalid(
                "max_concurrent_actions must be at least 1".to_owned(),
            ));
        }
        if self.action_deadline_secs == 0 {
            return Err(invalid(
                "action_deadline_secs must be at least 1".to_owned(),
            ));
        }
        if self.cluster.kind == ClusterType::Kube && self.cluster.snapshot.is_some() {
            return Err(invalid(
                "cluster.snapshot is only for `type: sim`".to_owned(),
            ));
        }
        self.cluster.validate_scope().map_err(invalid)?;
        if let Some(m) = &self.metrics_api
            && m.cert_file.is_some() != m.key_file.is_some()
        {
            return Err(invalid(
                "metrics_api: give both cert_file and key_file, or neither (self-signed)"
                    .to_owned(),
            ));
        }
        self.leader_election.validate().map_err(invalid)?;
        crate::notify::validate(&self.notify).map_err(invalid)?;
        self.http.validate().map_err(invalid)?;
        if self.audit_max_files == 0 {
            return Err(invalid(
                "audit_max_files must be at least 1 (rotated files kept; set audit_max_bytes: 0 to never rotate)".to_owned(),
            ));
        }
        if self.max_alerts_per_request == 0 {
            return Err(invalid(
                "max_alerts_per_request must be at least 1".to_owned(),
            ));
        }
        if self.leader_election.enabled == Some(true) && self.cluster.kind == ClusterType::Sim {
            return Err(invalid(
                "leader_election.enabled: true needs `cluster.type: kube` (the Lease lives in the cluster)".to_owned(),
            ));
        }
        for s in &self.autoscale {
            s.spec().map_err(|e| invalid(e.to_string()))?;
        }
        Ok(())
    }

    fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        fix(&mut self.policies);
        if let Some(p) = &mut self.cluster.snapshot {
            fix(p);
        }
        if let Some(p) = &mut self.auth.token_file {
            fix(p);
        }
        if let Some(p) = &mut self.auth.client_ca_file {
            fix(p);
        }
        if let Some(t) = &mut self.tls {
            fix(&mut t.cert_file);
            fix(&mut t.key_file);
        }
        if let Some(p) = &mut self.audit_log {
            fix(p);
        }
        if let Some(p) = &mut self.state_dir {
            fix(p);
        }
        crate::notify::resolve_paths(&mut self.notify, dir);
        if let Some(m) = &mut self.metrics_api {
            for p in [&mut m.cert_file, &mut m.key_file, &mut m.client_ca_file]
                .into_iter()
                .flatten()
            {
                fix(p);
            }
        }
    }

    /// The ingest journal's directory: `<state_dir>/journal`, `state_dir` defaulting to the
    /// audit log's directory; `None` without either.
    pub fn journal_dir(&self) -> Option<PathBuf> {
        let state = self.state_dir.clone().or_else(|| {
            self.audit_log
                .as_ref()
                .map(|a| a.parent().map(Path::to_path_buf).unwrap_or_default())
        })?;
        Some(state.join("journal"))
    }

    /// `action_deadline_secs` as a duration.
    pub fn action_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.action_deadline_secs)
    }

    /// A configuration for `policies` with defaults everywhere else and the given auth
    /// (the demo and tests build it in code).
    pub fn new(policies: impl Into<PathBuf>, auth: AuthConfig) -> Config {
        Config {
            listen: default_listen(),
            policies: policies.into(),
            cluster: ClusterConfig::default(),
            auth,
            tls: None,
            metrics_api: None,
            audit_log: None,
            state_dir: None,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_concurrent_actions: DEFAULT_MAX_CONCURRENT_ACTIONS,
            action_deadline_secs: DEFAULT_ACTION_DEADLINE_SECS,
            autoscale: Vec::new(),
            leader_election: LeaderElectionConfig::default(),
            notify: Vec::new(),
            http: HttpConfig::default(),
            max_alerts_per_request: DEFAULT_MAX_ALERTS_PER_REQUEST,
            audit_max_bytes: DEFAULT_AUDIT_MAX_BYTES,
            audit_max_files: DEFAULT_AUDIT_MAX_FILES,
        }
    }

    /// The most alerts one request may carry: `max_alerts_per_request`, and never more than
    /// the queue holds at all.
    pub fn alerts_per_request_cap(&self) -> usize {
        self.max_alerts_per_request.min(self.queue_capacity)
    }
}

/// A serde-saphyr error as `FILE:LINE:COL: message`, rendered exactly as policy files are.
fn saphyr_error(file: &str, e: &serde_saphyr::Error) -> ConfigError {
    let e = teflon_core::policy::yaml_error(file, e);
    ConfigError::Syntax {
        file: e.file,
        line: e.line,
        column: e.column,
        message: e.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_example_parses() {
        let text = r#"
listen: "0.0.0.0:2804"
policies: /etc/teflon/policies.yaml
cluster:
  type: kube
auth:
  token_file: /var/run/secrets/teflon/token
  client_ca_file: /etc/teflon/falco-ca.pem
tls: {cert_file: /c.pem, key_file: /k.pem}
metrics_api: {listen: "0.0.0.0:6443"}
audit_log: /var/lib/teflon/audit.jsonl
queue_capacity: 10000
max_body_bytes: 1048576
autoscale:
  - {namespace: shop, kind: Deployment, name: web, min_replicas: 3, max_replicas: 12, cooldown_secs: 60}
"#;
        let c = Config::parse(text, "teflon.yaml").unwrap();
        assert_eq!(c.listen.port(), 2804);
        assert_eq!(c.autoscale[0].max_replicas, 12);
        assert_eq!(c.autoscale[0].scale_down_stabilization_secs, 300);
        assert!(c.metrics_api.is_some());
    }

    #[test]
    fn the_cluster_can_be_scoped_to_namespaces_and_a_pod_selector() {
        let c = Config::parse(
            "policies: p.yaml\nauth: none\ncluster: {type: kube, namespaces: [shop, payments], pod_selector: \"team=payments,tier in (web,api)\"}\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(c.cluster.namespaces, ["shop", "payments"]);
        assert_eq!(
            c.cluster.pod_selector.as_deref(),
            Some("team=payments,tier in (web,api)")
        );
        let scope = c.cluster.sim_scope().unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(scope.sees_pod("shop", &labels(&[("team", "payments"), ("tier", "web")])));
        assert!(!scope.sees_pod("shop", &labels(&[("team", "payments"), ("tier", "db")])));
        assert!(!scope.sees_pod("other", &labels(&[("team", "payments"), ("tier", "web")])));
    }

    #[test]
    fn a_bad_namespace_or_pod_selector_is_a_clear_error() {
        let err = |cluster: &str| {
            Config::parse(
                &format!("policies: p.yaml\nauth: none\ncluster: {cluster}\n"),
                "t.yaml",
            )
            .unwrap_err()
            .to_string()
        };
        let e = err("{namespaces: [Shop]}");
        assert!(
            e.contains("cluster.namespaces") && e.contains("\"Shop\""),
            "{e}"
        );
        let e = err("{pod_selector: \"team in payments\"}");
        assert!(e.contains("cluster.pod_selector"), "{e}");
        let e = err("{type: sim, pod_selector: \"team=payments\"}");
        assert!(e.contains("needs a `snapshot`"), "{e}");
    }

    #[test]
    fn a_sim_cluster_with_auth_none_parses() {
        let c = Config::parse(
            "policies: p.yaml\nauth: none\ncluster: {type: sim, recovery_secs: 5}\n",
            "t.yaml",
        )
        .unwrap();
        assert!(c.auth.none);
        assert_eq!(c.cluster.kind, ClusterType::Sim);
        assert_eq!(c.cluster.recovery_secs, 5);
        let c = Config::parse("policies: p.yaml\nauth: {none: true}\n", "t.yaml").unwrap();
        assert!(c.auth.none);
    }

    #[test]
    fn an_unknown_key_is_an_error_with_file_line_and_column() {
        let err = Config::parse("policies: p.yaml\nauth: none\nqueue_capacty: 5\n", "t.yaml")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("t.yaml:3:"), "{text}");
        assert!(text.contains("queue_capacty"), "{text}");
    }

    #[test]
    fn an_unknown_key_inside_auth_is_an_error() {
        let err = Config::parse("policies: p.yaml\nauth: {tokn_file: x}\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("tokn_file"), "{err}");
    }

    #[test]
    fn config_without_auth_is_an_error() {
        let err = Config::parse("policies: p.yaml\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("auth"), "{err}");
        let err = Config::parse("policies: p.yaml\nauth: {}\n", "t.yaml").unwrap_err();
        assert!(err.to_string().contains("auth: none"), "{err}");
    }

    #[test]
    fn a_client_ca_without_tls_is_an_error() {
        let err = Config::parse(
            "policies: p.yaml\nauth: {client_ca_file: ca.pem}\n",
            "t.yaml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("tls"), "{err}");
    }

    #[test]
    fn leader_election_defaults_to_auto_and_can_be_turned_off() {
        let c = Config::parse("policies: p.yaml\nauth: none\n", "t.yaml").unwrap();
        let le = &c.leader_election;
        assert_eq!(le.enabled, None);
        assert_eq!(le.lease_name, "teflon-leader");
        assert_eq!(
            (
                le.lease_duration_secs,
                le.renew_deadline_secs,
                le.retry_period_secs
            ),
            (15, 10, 2)
        );
        assert!(le.is_enabled(ClusterType::Kube, true));
        assert!(!le.is_enabled(ClusterType::Kube, false));
        assert!(!le.is_enabled(ClusterType::Sim, true));
        let c = Config::parse(
            "policies: p.yaml\nauth: none\nleader_election: {enabled: false}\n",
            "t.yaml",
        )
        .unwrap();
        assert!(!c.leader_election.is_enabled(ClusterType::Kube, true));
    }

    #[test]
    fn leader_election_rejects_unknown_keys_and_unsafe_timings() {
        let err = Config::parse(
            "policies: p.yaml\nauth: none\nleader_election: {lease_nam: x}\n",
            "t.yaml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("lease_nam"), "{err}");
        let err = Config::parse(
            "policies: p.yaml\nauth: none\nleader_election: {lease_duration_secs: 10, renew_deadline_secs: 10}\n",
            "t.yaml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("renew_deadline_secs"), "{err}");
        let err = Config::parse(
            "policies: p.yaml\nauth: none\ncluster: {type: sim}\nleader_election: {enabled: true}\n",
            "t.yaml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("cluster.type: kube"), "{err}");
    }

    #[test]
    fn notify_sinks_parse_and_a_bad_one_is_an_error_naming_it() {
        let c = Config::parse(
            "policies: p.yaml\nauth: none\nnotify:\n  - {name: secops, url_file: slack-url, format: slack, headers_from_files: {Authorization: tok}, filter: {verdicts: [act]}}\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(c.notify[0].name.as_deref(), Some("secops"));
        let err = Config::parse(
            "policies: p.yaml\nauth: none\nnotify:\n  - {url: 'http://x/', filter: {reasons: [nope]}}\n",
            "t.yaml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("notify[0]"), "{err}");
        let err = Config::parse(
            "policies: p.yaml\nauth: none\nnotify:\n  - {url: 'http://x/', fromat: slack}\n",
            "t.yaml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("fromat"), "{err}");
    }

    #[test]
    fn http_limits_and_audit_rotation_have_defaults_and_refuse_zeroes() {
        let c = Config::parse("policies: p.yaml\nauth: none\n", "t.yaml").unwrap();
        assert_eq!(c.http, HttpConfig::default());
        assert_eq!(c.http.idle_timeout_secs, 120);
        assert!(!c.http.http2);
        assert_eq!(
            (c.audit_max_bytes, c.audit_max_files),
            (32 << 20, DEFAULT_AUDIT_MAX_FILES)
        );
        assert_eq!(c.alerts_per_request_cap(), 5_000);
        let c = Config::parse(
            "policies: p.yaml\nauth: none\nqueue_capacity: 100\nhttp: {max_connections: 64, http2: true, idle_timeout_secs: 300}\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(c.http.max_connections, 64);
        assert!(c.http.http2);
        assert_eq!(
            c.alerts_per_request_cap(),
            100,
            "never more than the queue holds"
        );
        for bad in [
            "http: {max_connections: 0}",
            "http: {header_read_timeout_secs: 0}",
            "http: {idle_timeout_secs: 0}",
            "max_alerts_per_request: 0",
            "audit_max_files: 0",
        ] {
            let err = Config::parse(&format!("policies: p.yaml\nauth: none\n{bad}\n"), "t.yaml")
                .unwrap_err();
            assert!(err.to_string().contains("at least 1"), "{bad}: {err}");
        }
        let err = Config::parse(
            "policies: p.yaml\nauth: none\nhttp: {max_conections: 5}\n",
            "t.yaml",
        )
        .unwrap_err();
        assert!(err.to_string().contains("max_conections"), "{err}");
    }

    #[test]
    fn relative_paths_are_resolved_against_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("teflon.yaml");
        std::fs::write(
            &path,
            "policies: p.yaml\nauth: {token_file: tok}\naudit_log: /abs/a.jsonl\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.policies, dir.path().join("p.yaml"));
        assert_eq!(c.auth.token_file, Some(dir.path().join("tok")));
        assert_eq!(c.audit_log, Some(PathBuf::from("/abs/a.jsonl")));
    }
}
