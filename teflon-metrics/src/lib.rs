//! Every Teflon metric: names and labels (one place, as constants), one small `emit()` struct
//! per event, the Prometheus exporter, and the values served to the custom-metrics API
//! (`custom.metrics.k8s.io`).
//!
//! It must not touch kube or warp: the server serves what this crate renders.
#![deny(clippy::print_stdout, clippy::print_stderr)]
// No unwrap outside tests (clippy.toml allows it in them): never panic on input.
#![warn(clippy::unwrap_used)]

pub mod autoscale;
pub mod custom_metrics;
pub mod events;
pub mod exporter;
pub mod gauges;
pub mod names;
pub mod response;
pub mod series;
pub mod snapshot;

pub use exporter::{Exporter, ExporterError, TeflonRecorder};
pub use gauges::SnapshotGauges;
pub use snapshot::AttackSnapshot;
