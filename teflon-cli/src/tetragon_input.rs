//! Tetragon export lines into alerts (through `teflon-tetragon`).

use teflon_core::Alert;
use teflon_tetragon::Event;

use crate::input::BadLine;

/// One alert per event line; valid events of kinds Teflon does not act on (`process_loader`,
/// `rate_limit_info`, …) are skipped silently, broken lines become [`BadLine`]s.
pub fn read(bytes: &[u8]) -> Vec<Result<Alert, BadLine>> {
    teflon_tetragon::events_from_slice(bytes)
        .filter_map(|r| match r {
            Ok(Event::Alert(alert)) => Some(Ok(alert)),
            Ok(Event::Ignored(_)) => None,
            Err(e) => Some(Err(BadLine {
                line: e.line,
                message: e.message,
            })),
        })
        .collect()
}
