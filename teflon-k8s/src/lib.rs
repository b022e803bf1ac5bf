//! Teflon's Kubernetes adapter: the live [`ClusterView`](teflon_core::ClusterView) and the
//! [`Actuator`](teflon_core::Actuator) that talks to the API server.
//!
//! This crate owns everything that touches a real cluster: kube-runtime watchers of Pods,
//! ReplicaSets, Deployments, StatefulSets, DaemonSets and PodDisruptionBudgets feeding a
//! compact state that keeps only what decisions read ([`KubeClusterView`]); one module per action (`delete`, `evict`, `quarantine`,
//! `block_binary`, `scale`), each preconditioned on the pod's UID, retried only when a retry
//! cannot act twice, and recorded as an `events.k8s.io/v1` Event; undoing quarantines and
//! `block_binary` policies, by an operator or when they expire ([`KubeReleaser`]); and recreation tracking
//! (reap → replacement Ready). It must not touch HTTP serving (no warp), metrics or the
//! decision logic: `teflon-core` decides, this crate executes and reports. `kube::Error`
//! never leaves it: every failure becomes an [`Outcome`](teflon_core::Outcome) or one of
//! this crate's errors.
#![deny(clippy::print_stdout, clippy::print_stderr)]
// No unwrap outside tests (clippy.toml allows it in them): never panic on input.
#![warn(clippy::unwrap_used)]

mod actuator;
mod annotations;
mod block_binary;
pub mod client;
mod ctx;
mod delete;
mod events;
mod evict;
#[cfg(feature = "test-util")]
pub mod fake_api;
pub mod lease;
pub mod lookup;
mod names;
mod owner;
mod quarantine;
pub mod recreation;
mod release;
mod retry;
pub mod scale;
pub mod view;

#[cfg(test)]
mod testing;

pub use actuator::KubeActuator;
pub use annotations::{
    ALERT_ANNOTATION, EXPIRES_AT_ANNOTATION, QUARANTINE_ANNOTATION, QUARANTINED_POD_LABEL,
    RELEASED_ANNOTATION,
};
pub use block_binary::{tracing_policy_name, tracing_policy_resource};
pub use events::{Clock, REPORTING_CONTROLLER, default_reporting_instance};
pub use quarantine::{QuarantineRecord, network_policy_name};
pub use recreation::{Recreation, RecreationHandle};
pub use release::{KubeReleaser, target_of};
pub use retry::RetryPolicy;
pub use scale::{KubeScaler, ScaleError, ScaleState, get_scale, scale};
pub use view::{
    ClusterObjects, InitialList, KubeClusterView, PodPhase, PodState, ViewConfig, ViewCounts,
    WithPod,
};
