//! Actions, planned actions and their outcomes; the `Actuator` write port.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::cluster::WorkloadRef;
use crate::time::Timestamp;

/// The label `quarantine` puts on a pod (value: the policy). Such a pod is no longer part of
/// its workload: it is neither counted as available nor reported with a workload. Policies
/// may not set it themselves.
pub const QUARANTINE_LABEL: &str = "teflon.io/quarantined";

/// What a policy does to a pod (SPEC §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Delete the pod (UID precondition, grace period).
    Delete,
    /// Evict the pod through the Eviction API (PDBs enforced by the API server).
    Evict,
    /// Cut the pod from its workload and network, keep it running for forensics.
    Quarantine,
    /// Create a Tetragon policy that SIGKILLs the offending binary in the workload.
    BlockBinary,
    /// Record the decision only.
    Log,
}

impl ActionKind {
    /// Every action kind.
    pub const ALL: [ActionKind; 5] = [
        ActionKind::Delete,
        ActionKind::Evict,
        ActionKind::Quarantine,
        ActionKind::BlockBinary,
        ActionKind::Log,
    ];

    /// The policy-file spelling, also the metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            ActionKind::Delete => "delete",
            ActionKind::Evict => "evict",
            ActionKind::Quarantine => "quarantine",
            ActionKind::BlockBinary => "block_binary",
            ActionKind::Log => "log",
        }
    }

    /// Takes a pod out of service: subject to guards.
    pub const fn is_disruptive(self) -> bool {
        matches!(
            self,
            ActionKind::Delete | ActionKind::Evict | ActionKind::Quarantine
        )
    }

    /// Needs a pod target to mean anything.
    pub const fn needs_target(self) -> bool {
        !matches!(self, ActionKind::Log)
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled action with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delete with an optional grace period.
    Delete {
        /// `gracePeriodSeconds`; `None` = the pod's own.
        grace_period_secs: Option<u32>,
    },
    /// Evict with an optional grace period.
    Evict {
        /// `deleteOptions.gracePeriodSeconds`; `None` = the pod's own.
        grace_period_secs: Option<u32>,
    },
    /// Quarantine.
    Quarantine {
        /// Extra labels put on the pod besides [`QUARANTINE_LABEL`]`=<policy>`.
        labels: BTreeMap<String, String>,
        /// Create a deny-all NetworkPolicy selecting this pod alone.
        network_isolate: bool,
        /// Release the pod by itself this long after quarantining it (`expire_after_secs`);
        /// `None`: until an operator releases it.
        expire_after: Option<Duration>,
    },
    /// Block the binary through Tetragon.
    BlockBinary {
        /// Output fields tried for the binary path, in order.
        binary_fields: Vec<String>,
        /// Delete the policy by itself this long after (re)creating it (`expire_after_secs`);
        /// `None`: until an operator releases it.
        expire_after: Option<Duration>,
    },
    /// Log only.
    Log,
}

impl Action {
    /// How long the action stays in force before Teflon undoes it by itself, if it expires.
    pub fn expire_after(&self) -> Option<Duration> {
        match self {
            Action::Quarantine { expire_after, .. } | Action::BlockBinary { expire_after, .. } => {
                *expire_after
            }
            _ => None,
        }
    }

    /// What this action takes from `alert` besides the policy's own parameters, or `None`
    /// when the alert does not name what it acts on: no pod (every action but `log` needs
    /// one), or for `block_binary` none of the policy's binary fields.
    pub fn resolve(&self, alert: &Alert) -> Option<Resolved> {
        if alert.target.is_none() && self.kind().needs_target() {
            return None;
        }
        let binary = match self {
            Action::BlockBinary { binary_fields, .. } => Some(
                binary_fields
                    .iter()
                    .find_map(|f| alert.fields.get_str(f))?
                    .to_owned(),
            ),
            _ => None,
        };
        Some(Resolved { binary })
    }

    /// The kind of this action.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Delete { .. } => ActionKind::Delete,
            Action::Evict { .. } => ActionKind::Evict,
            Action::Quarantine { .. } => ActionKind::Quarantine,
            Action::BlockBinary { .. } => ActionKind::BlockBinary,
            Action::Log => ActionKind::Log,
        }
    }
}

/// What an action took from its alert when it was decided ([`Action::resolve`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The binary to block (`block_binary` only): the first of the policy's binary fields
    /// the alert sets.
    pub binary: Option<String>,
}

/// Identifies one planned action, so its outcome can be fed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ActionId(pub u64);

/// The exact pod an action may touch: name plus UID precondition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PodTarget {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// The UID the action must be preconditioned on (from the cluster view, else the alert).
    pub uid: Option<String>,
}

/// An action the engine decided to take; adapters execute it and report an [`Outcome`].
#[derive(Debug, Clone)]
pub struct PlannedAction {
    /// Feed this back with [`crate::Engine::record`].
    pub id: ActionId,
    /// The pod.
    pub pod: PodTarget,
    /// Its workload, `None` for a standalone pod.
    pub workload: Option<WorkloadRef>,
    /// What to do.
    pub action: Action,
    /// The deciding policy.
    pub policy: Arc<str>,
    /// The binary to block (`block_binary` only), resolved from the alert's fields.
    pub binary: Option<String>,
    /// The alert that caused it (rule, output, time for Events and annotations).
    pub alert: Arc<Alert>,
    /// Retry calls that can pass (no answer, connection errors, 5xx, throttling) until this
    /// time, then give up with [`Outcome::Failed`]: the decision time plus
    /// [`crate::EngineConfig::action_deadline`].
    pub deadline: Timestamp,
}

/// How an action ended (also the `outcome` metric label).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "message", rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Success,
    /// The pod was already gone (404, or the UID precondition failed: a different pod now).
    Gone,
    /// A PodDisruptionBudget refused it (eviction 429).
    DisruptionBudget,
    /// Anything else, with why.
    Failed(String),
}

impl Outcome {
    /// Metric label / audit spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Gone => "gone",
            Outcome::DisruptionBudget => "disruption_budget",
            Outcome::Failed(_) => "failed",
        }
    }

    /// True when the pod is out of service (or already was) after this outcome.
    pub fn took_effect(&self) -> bool {
        matches!(self, Outcome::Success | Outcome::Gone)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Failed(why) => write!(f, "failed: {why}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// What executing a planned action came to: its final outcome and how many attempts the
/// calls took (1 when nothing had to be retried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The final outcome.
    pub outcome: Outcome,
    /// Attempts of the action's API calls, the first included: `1 + retries`.
    pub attempts: u32,
}

impl From<Outcome> for Executed {
    /// An outcome reached at the first attempt.
    fn from(outcome: Outcome) -> Self {
        Executed {
            outcome,
            attempts: 1,
        }
    }
}

/// The write port: executes one planned action.
///
/// Implementations never act on a pod other than `action.pod` (UID precondition) and never
/// panic; every failure becomes an [`Outcome`]. Failures that can pass are retried until
/// `action.deadline`; the outcome returned is final.
pub trait Actuator {
    /// Execute `action` and say how it went.
    fn execute(&self, action: &PlannedAction) -> impl Future<Output = Executed> + Send;
}

/// An object-safe [`Actuator`], so adapters can hold any of them behind one pointer
/// (`Arc<dyn DynActuator>`). Every `Actuator + Send + Sync` is one.
pub trait DynActuator: Send + Sync {
    /// Execute `action` and say how it went.
    fn execute_boxed<'a>(
        &'a self,
        action: &'a PlannedAction,
    ) -> std::pin::Pin<Box<dyn Future<Output = Executed> + Send + 'a>>;
}

impl<T: Actuator + Send + Sync> DynActuator for T {
    fn execute_boxed<'a>(
        &'a self,
        action: &'a PlannedAction,
    ) -> std::pin::Pin<Box<dyn Future<Output = Executed> + Send + 'a>> {
        Box::pin(self.execute(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(fields: &[&str]) -> Action {
        Action::BlockBinary {
            binary_fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            expire_after: None,
        }
    }

    #[test]
    fn block_binary_resolves_the_first_binary_field_the_alert_sets() {
        let alert = Alert::test()
            .pod("shop", "web-1")
            .field("proc.exepath", "/usr/bin/nc")
            .field("proc.name", "nc")
            .build();
        let resolved = block(&["proc.pexepath", "proc.exepath", "proc.name"]).resolve(&alert);
        assert_eq!(resolved.unwrap().binary.as_deref(), Some("/usr/bin/nc"));
        assert_eq!(
            block(&["proc.pexepath"]).resolve(&alert),
            None,
            "no binary field set: nothing to block"
        );
    }

    #[test]
    fn every_action_but_log_needs_a_pod_and_only_block_binary_takes_a_binary() {
        let no_pod = Alert::test().field("proc.exepath", "/bin/sh").build();
        let with_pod = Alert::test().pod("shop", "web-1").build();
        let disruptive = [
            Action::Delete {
                grace_period_secs: None,
            },
            Action::Evict {
                grace_period_secs: Some(0),
            },
            Action::Quarantine {
                labels: BTreeMap::new(),
                network_isolate: true,
                expire_after: None,
            },
        ];
        for action in &disruptive {
            assert_eq!(action.resolve(&no_pod), None, "{action:?}");
            assert_eq!(
                action.resolve(&with_pod),
                Some(Resolved::default()),
                "{action:?}"
            );
        }
        assert_eq!(block(&["proc.exepath"]).resolve(&no_pod), None);
        assert_eq!(Action::Log.resolve(&no_pod), Some(Resolved::default()));
    }
}
