//! Undoing actions: a quarantined pod gets its labels back and loses its NetworkPolicy, a
//! `block_binary` policy is deleted; the [`Releaser`] write port that does it, and the
//! actions in force it can list ([`ActiveAction`]).
//!
//! What an action needs to be undone is written on the objects themselves when it is taken
//! (annotations: the labels removed, the deadline), never kept in memory only, so that a
//! restarted or newly elected replica can undo — or let expire — what another one did.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::action::{ActionKind, PlannedAction};
use crate::time::Timestamp;

/// What to release.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ReleaseTarget {
    /// A quarantined pod: its removed labels back, its quarantine labels and NetworkPolicy
    /// gone.
    Pod {
        /// Namespace.
        namespace: String,
        /// Pod name.
        name: String,
        /// Release only the pod with this UID (refused when the pod by that name is another).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uid: Option<String>,
    },
    /// A `block_binary` Tetragon `TracingPolicyNamespaced`, deleted.
    Policy {
        /// Namespace.
        namespace: String,
        /// The TracingPolicyNamespaced's name.
        name: String,
    },
}

impl ReleaseTarget {
    /// The namespace.
    pub fn namespace(&self) -> &str {
        match self {
            ReleaseTarget::Pod { namespace, .. } | ReleaseTarget::Policy { namespace, .. } => {
                namespace
            }
        }
    }

    /// The object's name (the pod, or the TracingPolicyNamespaced).
    pub fn name(&self) -> &str {
        match self {
            ReleaseTarget::Pod { name, .. } | ReleaseTarget::Policy { name, .. } => name,
        }
    }

    /// The action this undoes.
    pub fn action(&self) -> ActionKind {
        match self {
            ReleaseTarget::Pod { .. } => ActionKind::Quarantine,
            ReleaseTarget::Policy { .. } => ActionKind::BlockBinary,
        }
    }

    /// The same target, ignoring the UID (the key under which an action and its release meet).
    pub fn without_uid(&self) -> ReleaseTarget {
        match self {
            ReleaseTarget::Pod {
                namespace, name, ..
            } => ReleaseTarget::Pod {
                namespace: namespace.clone(),
                name: name.clone(),
                uid: None,
            },
            other => other.clone(),
        }
    }

    /// The `teflon release` command line that undoes it.
    pub fn command(&self) -> String {
        match self {
            ReleaseTarget::Pod {
                namespace, name, ..
            } => format!("teflon release --namespace {namespace} --pod {name}"),
            ReleaseTarget::Policy { namespace, name } => {
                format!("teflon release --namespace {namespace} --policy {name}")
            }
        }
    }
}

impl fmt::Display for ReleaseTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseTarget::Pod {
                namespace, name, ..
            } => write!(f, "pod {namespace}/{name}"),
            ReleaseTarget::Policy { namespace, name } => {
                write!(f, "TracingPolicyNamespaced {namespace}/{name}")
            }
        }
    }
}

/// Why something was released (also the `cause` label of `teflon_releases_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseCause {
    /// An operator asked (`POST /v1/release`, `teflon release`).
    Operator,
    /// Its `expire_after_secs` ran out.
    Expired,
}

impl ReleaseCause {
    /// Label and audit spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReleaseCause::Operator => "operator",
            ReleaseCause::Expired => "expired",
        }
    }
}

/// How a release ended (also the `outcome` label of `teflon_releases_total`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "message", rename_all = "snake_case")]
pub enum ReleaseOutcome {
    /// Undone: labels restored and NetworkPolicy deleted, or the policy deleted.
    Released,
    /// No such pod or policy (any more).
    NotFound,
    /// Refused, and nothing was changed: not Teflon's action (a pod Teflon did not
    /// quarantine, a policy it did not create), another pod by that name than the UID asked
    /// for, or (for expiry) not expired after all.
    Refused(String),
    /// The API calls failed; the action may still be in force.
    Failed(String),
}

impl ReleaseOutcome {
    /// Metric label / audit spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReleaseOutcome::Released => "released",
            ReleaseOutcome::NotFound => "not_found",
            ReleaseOutcome::Refused(_) => "refused",
            ReleaseOutcome::Failed(_) => "failed",
        }
    }

    /// Why, for `refused` and `failed`.
    pub fn message(&self) -> Option<&str> {
        match self {
            ReleaseOutcome::Refused(m) | ReleaseOutcome::Failed(m) => Some(m),
            _ => None,
        }
    }
}

impl fmt::Display for ReleaseOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(m) => write!(f, "{}: {m}", self.as_str()),
            None => f.write_str(self.as_str()),
        }
    }
}

/// What a release did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// What was asked for.
    pub target: ReleaseTarget,
    /// Who asked.
    pub cause: ReleaseCause,
    /// How it ended.
    pub outcome: ReleaseOutcome,
    /// The policy whose action was undone, when known (from the object's annotations).
    pub policy: Option<String>,
    /// The released pod's UID (pods).
    pub uid: Option<String>,
    /// Labels put back on the pod, with their values.
    pub restored_labels: BTreeMap<String, String>,
    /// Labels taken off the pod (those the quarantine added).
    pub removed_labels: Vec<String>,
    /// The NetworkPolicy deleted, if the quarantine had one.
    pub network_policy: Option<String>,
    /// Attempts of the API calls, the first included.
    pub attempts: u32,
}

impl Release {
    /// A release that ended before touching anything.
    pub fn ended(target: &ReleaseTarget, cause: ReleaseCause, outcome: ReleaseOutcome) -> Self {
        Release {
            target: target.clone(),
            cause,
            outcome,
            policy: None,
            uid: None,
            restored_labels: BTreeMap::new(),
            removed_labels: Vec::new(),
            network_policy: None,
            attempts: 1,
        }
    }
}

/// An action in force that can be undone, as read from the objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveAction {
    /// `quarantine` or `block_binary`.
    pub action: ActionKind,
    /// What releases it.
    pub target: ReleaseTarget,
    /// The policy that took it.
    pub policy: Option<String>,
    /// When it was taken (quarantine: the patch; block_binary: the policy's creation).
    pub since: Option<Timestamp>,
    /// When Teflon undoes it by itself (`expire_after_secs`), if ever.
    pub expires_at: Option<Timestamp>,
    /// block_binary: the binary killed.
    pub binary: Option<String>,
    /// block_binary: the pods it applies to (`Deployment/web`, `Pod/solo`).
    pub applies_to: Option<String>,
    /// quarantine: the deny-all NetworkPolicy isolating the pod.
    pub network_policy: Option<String>,
}

impl ActiveAction {
    /// True when its deadline has come at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// The write port that undoes actions.
///
/// Implementations change nothing that is not Teflon's (a pod without Teflon's quarantine
/// record, a policy Teflon did not create) and nothing but the pod with the UID asked for;
/// they never panic, every failure is a [`ReleaseOutcome`].
pub trait Releaser {
    /// Undo the action on `target`. With [`ReleaseCause::Expired`] the deadline is checked
    /// again on the object itself (an action repeated meanwhile has a later one).
    fn release(
        &self,
        target: &ReleaseTarget,
        cause: ReleaseCause,
    ) -> impl Future<Output = Release> + Send;

    /// Every action in force that can be undone (quarantined pods, `block_binary` policies).
    fn active(&self) -> impl Future<Output = Result<Vec<ActiveAction>, String>> + Send;

    /// What would undo `action` once it has taken effect (`None` for actions that cannot be
    /// undone: delete, evict, log).
    fn target_of(&self, action: &PlannedAction) -> Option<ReleaseTarget>;
}

/// A boxed future, for the object-safe ports.
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An object-safe [`Releaser`], so adapters can hold any of them behind one pointer
/// (`Arc<dyn DynReleaser>`). Every `Releaser + Send + Sync` is one.
pub trait DynReleaser: Send + Sync {
    /// See [`Releaser::release`].
    fn release_boxed<'a>(
        &'a self,
        target: &'a ReleaseTarget,
        cause: ReleaseCause,
    ) -> BoxFuture<'a, Release>;
    /// See [`Releaser::active`].
    fn active_boxed(&self) -> BoxFuture<'_, Result<Vec<ActiveAction>, String>>;
    /// See [`Releaser::target_of`].
    fn target_of(&self, action: &PlannedAction) -> Option<ReleaseTarget>;
}

impl<T: Releaser + Send + Sync> DynReleaser for T {
    fn release_boxed<'a>(
        &'a self,
        target: &'a ReleaseTarget,
        cause: ReleaseCause,
    ) -> BoxFuture<'a, Release> {
        Box::pin(self.release(target, cause))
    }
    fn active_boxed(&self) -> BoxFuture<'_, Result<Vec<ActiveAction>, String>> {
        Box::pin(self.active())
    }
    fn target_of(&self, action: &PlannedAction) -> Option<ReleaseTarget> {
        Releaser::target_of(self, action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_serialize_as_tagged_objects_and_print_their_command() {
        let pod = ReleaseTarget::Pod {
            namespace: "shop".into(),
            name: "web-1".into(),
            uid: Some("u-1".into()),
        };
        assert_eq!(
            serde_json::to_value(&pod).unwrap(),
            serde_json::json!({"kind": "pod", "namespace": "shop", "name": "web-1", "uid": "u-1"})
        );
        assert_eq!(pod.command(), "teflon release --namespace shop --pod web-1");
        assert_eq!(pod.action(), ActionKind::Quarantine);
        assert_eq!(
            pod.without_uid(),
            ReleaseTarget::Pod {
                namespace: "shop".into(),
                name: "web-1".into(),
                uid: None
            }
        );
        let policy = ReleaseTarget::Policy {
            namespace: "shop".into(),
            name: "teflon-block-web-nc-1a2b3c4d".into(),
        };
        assert_eq!(
            policy.command(),
            "teflon release --namespace shop --policy teflon-block-web-nc-1a2b3c4d"
        );
        assert_eq!(policy.action(), ActionKind::BlockBinary);
    }

    #[test]
    fn an_action_expires_at_its_deadline_not_before() {
        let a = ActiveAction {
            action: ActionKind::Quarantine,
            target: ReleaseTarget::Pod {
                namespace: "shop".into(),
                name: "web-1".into(),
                uid: None,
            },
            policy: None,
            since: None,
            expires_at: Some(Timestamp::from_secs(100)),
            binary: None,
            applies_to: None,
            network_policy: None,
        };
        assert!(!a.is_expired(Timestamp::from_secs(99)));
        assert!(a.is_expired(Timestamp::from_secs(100)));
        let forever = ActiveAction {
            expires_at: None,
            ..a
        };
        assert!(!forever.is_expired(Timestamp::from_secs(i64::MAX / 1_000_000_000)));
    }
}
