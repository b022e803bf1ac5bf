//! Falco and falcosidekick JSON alerts into [`teflon_core::Alert`] (SPEC §2).
//!
//! This crate owns the Falco wire format: `json_output` lines, the `http_output` POST body,
//! falcosidekick's forwarded body (`uuid`, fewer time digits), framing of a single object,
//! a JSON array or JSON Lines with line-numbered errors, target extraction from output fields,
//! and writing an alert back as Falco JSON. It parses and nothing else: it must not depend on
//! kube, warp or any runtime, and never panics on input.
//!
//! - [`parse_batch`]: a whole buffer, all or nothing (the HTTP server refuses a bad body whole).
//! - [`alerts_from_slice`] / [`alerts_from_reader`]: lenient, one result per item, going on
//!   after a broken line (replay from files and stdin).
//! - [`parse_alert`]: exactly one alert.

#![deny(clippy::print_stdout)]
// No unwrap outside tests (clippy.toml allows it in them): never panic on input.
#![warn(clippy::unwrap_used)]
#![warn(missing_docs)]

mod de;
mod error;
pub mod framing;
mod ser;
mod target;
mod time;

use std::io::BufRead;

use teflon_core::Alert;

pub use de::{FalcoAlert, FieldValueSeed};
pub use error::{LineError, ParseError};
pub use ser::{FalcoJson, to_falco_json};
pub use target::extract_target;
pub use time::parse_time;

/// `Result` with this crate's batch error.
pub type Result<T, E = ParseError> = std::result::Result<T, E>;

/// Exactly one alert: a JSON object, surrounded by whitespace at most.
pub fn parse_alert(bytes: &[u8]) -> Result<Alert> {
    let bytes = bytes.strip_prefix(framing::BOM).unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str::<FalcoAlert>(text),
        Err(_) => serde_json::from_slice::<FalcoAlert>(bytes),
    };
    parsed.map(|a| a.0).map_err(|e| ParseError::from_json(&e))
}

/// Every alert of a buffer holding a single object (also pretty-printed), a JSON array of
/// objects, or JSON Lines. The first problem fails the whole batch, with its line and column.
pub fn parse_batch(bytes: &[u8]) -> Result<Vec<Alert>> {
    let alerts = framing::parse_all::<FalcoAlert>(bytes)?;
    Ok(alerts.into_iter().map(|a| a.0).collect())
}

/// Lenient alerts of a buffer: one result per item, in order; a broken item yields a
/// [`LineError`] and the items after it are still read.
pub fn alerts_from_slice(bytes: &[u8]) -> Alerts<'_> {
    Alerts(framing::SliceItems::new(bytes))
}

/// Lenient alerts of a reader (stdin, a file), read incrementally; see [`alerts_from_slice`].
pub fn alerts_from_reader<R: BufRead>(reader: R) -> AlertReader<R> {
    AlertReader(framing::ReaderItems::new(reader))
}

/// Iterator returned by [`alerts_from_slice`].
#[derive(Debug)]
pub struct Alerts<'a>(framing::SliceItems<'a, FalcoAlert>);

impl Iterator for Alerts<'_> {
    type Item = Result<Alert, LineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|r| r.map(|a| a.0))
    }
}

/// Iterator returned by [`alerts_from_reader`].
#[derive(Debug)]
pub struct AlertReader<R>(framing::ReaderItems<R, FalcoAlert>);

impl<R: BufRead> Iterator for AlertReader<R> {
    type Item = Result<Alert, LineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|r| r.map(|a| a.0))
    }
}
