//! Teflon's decision engine: pure, synchronous, deterministic.
//!
//! This crate owns the alert model ([`Alert`], [`Priority`], [`Target`]), the policy language
//! ([`PolicySet`]: parse, validate, compile), the guards and the stateful [`Engine`] (dedup,
//! rate limits, deferrals, infection ledger), the [`Decision`]s it takes, and the two ports
//! adapters implement: [`ClusterView`] (read the cluster) and [`Actuator`] (act on it).
//!
//! It must not touch tokio, kube, warp, metrics or any IO: time is an argument, files are
//! read by callers, and the same engine runs behind the server, the replay CLI, the simulator
//! and the benchmarks.
#![deny(clippy::print_stdout, clippy::print_stderr)]
// No unwrap outside tests (clippy.toml allows it in them): never panic on input.
#![warn(clippy::unwrap_used)]

pub mod action;
pub mod alert;
pub mod autoscale;
pub mod cluster;
pub mod decision;
pub mod engine;
pub mod ledger;
pub mod policy;
pub mod release;
pub mod selector;
pub mod time;

pub use action::{
    Action, ActionId, ActionKind, Actuator, DynActuator, Executed, Outcome, PlannedAction,
    PodTarget, QUARANTINE_LABEL, Resolved,
};
pub use alert::{Alert, FieldValue, Fields, Priority, PriorityError, Target};
pub use cluster::{
    ClusterView, PodInfo, PodSummary, WorkloadKind, WorkloadRef, WorkloadStatus, WorkloadSummary,
};
/// The small-string type of [`FieldValue::Str`] and field keys.
pub use compact_str::CompactString;
pub use decision::{Decision, DecisionRecord, Infection, Reason, RecordTarget, Verdict};
pub use engine::{DeferralInfo, Engine, EngineConfig};
pub use ledger::{Hit, WorkloadStats};
pub use policy::{Guard, MinAvailable, Policy, PolicyError, PolicyErrors, PolicySet};
pub use release::{
    ActiveAction, DynReleaser, Release, ReleaseCause, ReleaseOutcome, ReleaseTarget, Releaser,
};
pub use time::{Clock, Timestamp};

#[cfg(any(test, feature = "test-util"))]
pub use alert::AlertBuilder;
#[cfg(any(test, feature = "test-util"))]
pub use cluster::StaticCluster;
