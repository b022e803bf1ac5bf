//! Teflon's simulated cluster: try policies and see attacks as load without touching a cluster.
//!
//! This crate owns [`SimCluster`], an in-memory cluster (built from a `kubectl get … -o json`
//! List, the assumed-healthy cluster of `teflon replay`, or by hand) that implements the same
//! ports as the real adapter ([`teflon_core::ClusterView`], and through [`SharedSim`]
//! [`teflon_core::Actuator`] and [`teflon_core::autoscale::Scaler`]) with simulated time; the
//! attack model ([`Attackers`]); the replay loop ([`Replayer`]) and the attack-as-load
//! simulation ([`simulate::run`]) that `teflon replay`, `teflon simulate` and `teflon demo` use.
//!
//! It must not touch a Kubernetes client, an HTTP server or the terminal: it reads JSON it is
//! given, and time is always an argument (or the clock a [`SharedSim`] is built with).
#![deny(clippy::print_stdout, clippy::print_stderr)]
// No unwrap outside tests (clippy.toml allows it in them): never panic on input.
#![warn(clippy::unwrap_used)]

pub mod attack;
mod budget;
pub mod cluster;
pub mod error;
pub mod kubectl;
mod release;
pub mod replay;
mod responses;
pub mod shared;
pub mod simulate;

pub use attack::Attackers;
pub use cluster::{SimCluster, SimEvent, SimScope};
pub use error::SimError;
pub use replay::{ReplayStep, Replayer};
pub use shared::SharedSim;
pub use simulate::{Scenario, SimulationReport};

#[cfg(test)]
mod tests;
