//! The autoscaler's replica changes, counted beside the values it follows.

use teflon_core::WorkloadRef;

use crate::names::{AUTOSCALE_CHANGES_TOTAL, label};

/// The autoscaler changed a workload's replicas.
#[derive(Debug, Clone, Copy)]
pub struct AutoscaleChanged<'a> {
    /// The workload.
    pub workload: &'a WorkloadRef,
    /// Replicas before.
    pub from: u32,
    /// Replicas after.
    pub to: u32,
}

impl AutoscaleChanged<'_> {
    /// `up` or `down`.
    pub fn direction(&self) -> &'static str {
        if self.to >= self.from { "up" } else { "down" }
    }

    /// Count it.
    pub fn emit(self) {
        metrics::counter!(
            AUTOSCALE_CHANGES_TOTAL,
            label::NAMESPACE => self.workload.namespace.clone(),
            label::WORKLOAD => self.workload.name.clone(),
            label::DIRECTION => self.direction()
        )
        .increment(1);
    }
}
