//! The server's clock: "now" for the engine, the audit log and the simulated cluster.

use std::sync::Arc;

use teflon_core::Clock;

/// A clock that starts at the system time and then follows tokio's monotonic clock (so a
/// paused test runtime pauses it too, and wall-clock jumps do not reorder decisions).
pub fn tokio_clock() -> Clock {
    let base = teflon_sim::shared::system_now();
    let start = tokio::time::Instant::now();
    Arc::new(move || base.plus(start.elapsed()))
}
