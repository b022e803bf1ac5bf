//! Leader election on a `coordination.k8s.io/v1` Lease, so that with several replicas only one
//! acts on the cluster while the others keep accepting, auditing and buffering alerts.
//!
//! The protocol is client-go's `leaderelection` reduced to what Teflon needs:
//! - one round ([`LeaseLock::try_acquire_or_renew`]) reads the Lease; if it is absent it is
//!   created with us as holder; if we hold it, `renewTime` is bumped; if another holder let it
//!   expire (or released it), we take it over and `leaseTransitions` goes up by one. Every
//!   write is a create or a `PUT` carrying the `resourceVersion` we read, so two electors racing
//!   for the same Lease cannot both win: the loser gets a 409 Conflict and stays a follower.
//! - the [`LeaderElector`] loop runs a round every `retry_period`. A leader that cannot renew
//!   for `renew_deadline` (shorter than `lease_duration`) steps down *before* anyone else may
//!   take the Lease over, so two replicas never act at once as long as their clocks tick at the
//!   same rate.
//! - on shutdown the leader steps down first, then releases the Lease (empty `holderIdentity`),
//!   so a follower takes over at its next round instead of waiting for expiry.
//!
//! A Lease counts as expired when its `renewTime + leaseDurationSeconds` is in the past by our
//! wall clock, or when we have seen the same `resourceVersion` for a whole lease duration by our
//! monotonic clock (client-go's rule, immune to clock skew; the first rule only makes takeover
//! after a crash faster and assumes clocks agree within a few seconds, as NTP gives).
//!
//! **Failover time.** A graceful release (SIGTERM, rolling update): at most one `retry_period`
//! (2 s by default). A crashed or partitioned leader: at most `lease_duration + retry_period`
//! (15 s + 2 s = 17 s by default), see [`LeaseConfig::failover_time`]. Alerts are not lost in
//! the meantime: followers keep accepting them.
//!
//! RBAC: `get`, `create` and `update` on `leases` in the Lease's namespace only
//! (`deploy/manifests/rbac.yaml`, Role `teflon-leader-election`).
//!
//! Size: about 520 lines before its tests, kept in one file: one protocol (acquire, renew, release,
//! step down) over one Lease; its states are easiest to check in one place.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The Lease name used by the manifests (the RBAC Role is limited to it).
pub const DEFAULT_LEASE_NAME: &str = "teflon-leader";

/// Default `leaseDurationSeconds`: how long a silent leader keeps the Lease.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// Default renew deadline: a leader that could not renew for this long steps down.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Default retry period: the time between two rounds.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a Lease call (other than the expected 409/404).
    #[error("lease {namespace}/{name}: {source}")]
    Kube {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// What kube said.
        #[source]
        source: kube::Error,
    },
    /// The leader label could not be put on (or taken off) this replica's pod.
    #[error("leader label on pod {namespace}/{pod}: {source}")]
    Label {
        /// The pod's namespace.
        namespace: String,
        /// The pod.
        pod: String,
        /// What kube said.
        #[source]
        source: kube::Error,
    },
    /// The configuration cannot work.
    #[error("leader election: {0}")]
    Config(String),
}

/// The label the leader puts on its own pod. The Services select on it, so alerts reach only
/// the replica that acts, while every replica stays Ready (rollouts and PDBs keep working).
pub const LEADER_LABEL: &str = "teflon.io/leader";

/// Put [`LEADER_LABEL`]`=true` on `namespace/pod` (or take it off): one JSON merge patch.
pub async fn label_pod_as_leader(
    client: &Client,
    namespace: &str,
    pod: &str,
    leading: bool,
) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let value = if leading {
        serde_json::Value::from("true")
    } else {
        serde_json::Value::Null
    };
    let patch = serde_json::json!({ "metadata": { "labels": { LEADER_LABEL: value } } });
    api.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|source| Error::Label {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            source,
        })
}

/// Keep this replica's pod labelled as leader exactly while `leader` says so; when the
/// election ends (its sender is dropped), take the label off and stop.
async fn mirror_leader_label(
    client: Client,
    namespace: String,
    pod: String,
    mut leader: watch::Receiver<bool>,
    retry: Duration,
) {
    let mut labelled: Option<bool> = None;
    loop {
        let want = *leader.borrow_and_update();
        if labelled != Some(want) {
            match label_pod_as_leader(&client, &namespace, &pod, want).await {
                Ok(()) => labelled = Some(want),
                Err(e) => tracing::warn!(error = %e, "could not update the leader label; retrying"),
            }
        }
        let settled = labelled == Some(want);
        tokio::select! {
            changed = leader.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = tokio::time::sleep(retry), if !settled => {}
        }
    }
    if labelled != Some(false)
        && let Err(e) = label_pod_as_leader(&client, &namespace, &pod, false).await
    {
        tracing::warn!(error = %e, "could not remove the leader label at shutdown");
    }
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the Lease is, who we are, and the timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Lease's namespace (Teflon's own).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// Our `holderIdentity`: unique per replica (the pod name).
    pub identity: String,
    /// `leaseDurationSeconds`.
    pub lease_duration: Duration,
    /// A leader that could not renew for this long steps down; must be below `lease_duration`.
    pub renew_deadline: Duration,
    /// Time between two rounds; must be below `renew_deadline`.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// The default Lease ([`DEFAULT_LEASE_NAME`]) in `namespace`, held as `identity`, with
    /// client-go's default timings (15 s / 10 s / 2 s).
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: DEFAULT_LEASE_NAME.to_owned(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    /// From the downward-API variables the Deployment sets: `POD_NAMESPACE` and `POD_NAME`.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Error::Config(format!(
                        "{name} is not set (the Deployment sets it from the downward API)"
                    ))
                })
        };
        Ok(LeaseConfig::new(var("POD_NAMESPACE")?, var("POD_NAME")?))
    }

    /// Check the timings make sense together.
    pub fn validate(&self) -> Result<()> {
        if self.identity.is_empty() {
            return Err(Error::Config("empty holder identity".to_owned()));
        }
        if self.lease_duration.as_secs() < 1 || self.lease_duration.as_secs() > i32::MAX as u64 {
            return Err(Error::Config(
                "lease_duration must be a whole number of seconds ≥ 1".to_owned(),
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(Error::Config(format!(
                "renew_deadline ({:?}) must be shorter than lease_duration ({:?}), or two replicas could act at once",
                self.renew_deadline, self.lease_duration
            )));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(Error::Config(format!(
                "retry_period ({:?}) must be positive and shorter than renew_deadline ({:?})",
                self.retry_period, self.renew_deadline
            )));
        }
        Ok(())
    }

    /// The longest time with no leader after the leader dies without releasing:
    /// `lease_duration + retry_period`. A graceful release takes at most `retry_period`.
    pub fn failover_time(&self) -> Duration {
        self.lease_duration + self.retry_period
    }

    fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// What we last saw of the Lease, and when (monotonic), for the skew-proof expiry rule.
#[derive(Debug, Clone)]
struct Observed {
    resource_version: Option<String>,
    at: Instant,
}

/// One elector's handle on the Lease: each call is one round of the protocol.
#[derive(Debug)]
pub struct LeaseLock {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<Observed>,
}

fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

impl LeaseLock {
    /// A lock on `config.namespace/config.name`.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        LeaseLock {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn error(&self, source: kube::Error) -> Error {
        Error::Kube {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }

    fn spec(&self, now: Timestamp, acquire: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration_seconds()),
            acquire_time: acquire.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Has the holder of `lease` let it lapse, by either expiry rule?
    fn expired(&mut self, lease: &Lease, now: Timestamp) -> bool {
        let spec = lease.spec.clone().unwrap_or_default();
        let duration_secs = spec
            .lease_duration_seconds
            .unwrap_or(self.config.lease_duration_seconds());
        let by_wall_clock = spec.renew_time.as_ref().is_some_and(|renewed| {
            renewed
                .0
                .checked_add(SignedDuration::from_secs(i64::from(duration_secs)))
                .is_ok_and(|deadline| deadline <= now)
        });

        let version = lease.metadata.resource_version.clone();
        let since = match &self.observed {
            Some(seen) if seen.resource_version == version => seen.at,
            _ => {
                let at = Instant::now();
                self.observed = Some(Observed {
                    resource_version: version,
                    at,
                });
                at
            }
        };
        let unchanged_for = Instant::now().saturating_duration_since(since);
        let by_observation =
            unchanged_for >= Duration::from_secs(u64::try_from(duration_secs).unwrap_or(0));
        by_wall_clock || by_observation
    }

    /// One round: create, renew or take over the Lease. `Ok(true)` means we hold it until
    /// `now + lease_duration`; `Ok(false)` that someone else does (or won a race against us).
    pub async fn try_acquire_or_renew(&mut self, now: Timestamp) -> Result<bool> {
        let params = PostParams::default();
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error(e))?;
        let Some(current) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&params, &lease).await {
                Ok(_) => Ok(true),
                // Another elector created it between our GET and POST.
                Err(e) if status_code(&e) == Some(409) => Ok(false),
                Err(e) => Err(self.error(e)),
            };
        };

        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        if !ours && holder.is_some() && !self.expired(&current, now) {
            return Ok(false);
        }
        let (acquire, transitions) = if ours {
            (
                spec.acquire_time.clone(),
                spec.lease_transitions.unwrap_or(0),
            )
        } else {
            (None, spec.lease_transitions.unwrap_or(0).saturating_add(1))
        };
        let lease = Lease {
            // Carries the resourceVersion we read: the API server rejects the update with 409
            // if anyone wrote the Lease since.
            metadata: current.metadata.clone(),
            spec: Some(self.spec(now, acquire, transitions)),
        };
        match self.api.replace(&self.config.name, &params, &lease).await {
            Ok(_) => Ok(true),
            Err(e) if status_code(&e) == Some(409) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Give the Lease up if we hold it: empty `holderIdentity`, so a follower takes over at its
    /// next round. A 409 or a missing Lease means it is not ours anymore: nothing to do.
    pub async fn release(&mut self, now: Timestamp) -> Result<()> {
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error(e))?;
        let Some(current) = current else {
            return Ok(());
        };
        let mut spec = current.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(now));
        let lease = Lease {
            metadata: current.metadata.clone(),
            spec: Some(spec),
        };
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(409) || status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }
}

/// Runs the election loop in the background and tells whether this replica leads.
///
/// Gate every action on [`LeaderElector::is_leader`] (or wait on [`LeaderElector::watch`]);
/// keep accepting alerts either way. Call [`LeaderElector::shutdown`] on SIGTERM and await the
/// returned task so the Lease is released before the process exits.
#[derive(Debug)]
pub struct LeaderElector {
    leader: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    label: Option<JoinHandle<()>>,
}

impl LeaderElector {
    /// Validate `config` and start the loop on the current tokio runtime.
    pub fn spawn(client: Client, config: LeaseConfig) -> Result<Self> {
        config.validate()?;
        let (leader_tx, leader) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let lock = LeaseLock::new(client, config);
        let task = tokio::spawn(run(lock, leader_tx, stop_rx));
        Ok(LeaderElector {
            leader,
            stop,
            task,
            label: None,
        })
    }

    /// Also mirror leadership onto this replica's pod as [`LEADER_LABEL`], so Services that
    /// select on it send alerts only to the leader. The label is removed on shutdown.
    pub fn with_pod_label(mut self, client: Client, namespace: &str, pod: &str) -> Self {
        self.label = Some(tokio::spawn(mirror_leader_label(
            client,
            namespace.to_owned(),
            pod.to_owned(),
            self.leader.clone(),
            Duration::from_secs(2),
        )));
        self
    }

    /// True while this replica holds the Lease and may act.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// A receiver that changes whenever leadership is gained or lost.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Step down, release the Lease if held, and end the loop.
    pub async fn shutdown(self) {
        // Err only if the loop already ended: then there is nothing to stop.
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "leader election task ended abnormally");
        }
        // The election loop has ended and dropped its sender: the label task takes the
        // label off and ends.
        drop(self.leader);
        if let Some(label) = self.label
            && let Err(e) = label.await
        {
            tracing::warn!(error = %e, "leader label task ended abnormally");
        }
    }
}

fn set_leader(tx: &watch::Sender<bool>, leading: bool, identity: &str) {
    let changed = tx.send_if_modified(|current| {
        let changed = *current != leading;
        *current = leading;
        changed
    });
    if changed {
        if leading {
            tracing::info!(identity, "became leader: acting on decisions");
        } else {
            tracing::info!(identity, "not leader: accepting and buffering alerts only");
        }
    }
}

async fn run(mut lock: LeaseLock, leader: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
    let identity = lock.config.identity.clone();
    let renew_deadline = lock.config.renew_deadline;
    let retry_period = lock.config.retry_period;
    let mut last_renewed: Option<Instant> = None;
    loop {
        match lock.try_acquire_or_renew(Timestamp::now()).await {
            Ok(true) => {
                last_renewed = Some(Instant::now());
                set_leader(&leader, true, &identity);
            }
            Ok(false) => {
                last_renewed = None;
                set_leader(&leader, false, &identity);
            }
            Err(e) => {
                tracing::warn!(error = %e, "leader election round failed");
                // Step down before the Lease can expire for the others.
                if last_renewed.is_some_and(|at| at.elapsed() >= renew_deadline) {
                    last_renewed = None;
                    set_leader(&leader, false, &identity);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(retry_period) => {}
            _ = stop.changed() => break,
        }
    }
    let was_leader = *leader.borrow();
    set_leader(&leader, false, &identity);
    if was_leader && let Err(e) = lock.release(Timestamp::now()).await {
        tracing::warn!(error = %e, "could not release the lease; it expires by itself");
    }
}

#[cfg(test)]
mod tests;
