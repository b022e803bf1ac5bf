//! Tetragon JSON export events into [`teflon_core::Alert`] (SPEC §2).
//!
//! This crate owns Tetragon's wire format: the JSON lines of `export-filename` /
//! `tetra getevents -o json`. `process_exec`, `process_exit`, `process_kprobe`,
//! `process_tracepoint` and `process_lsm` become alerts with source `tetragon`, a rule named
//! `tetragon:<policy>:<function>` (policy events) or `tetragon:process_exec` /
//! `tetragon:process_exit[:<signal>]`, and Falco-named fields (`proc.exepath`, `proc.name`,
//! `k8s.ns.name`, `container.id`, …) so the same policies match both sources. Other kinds are
//! [`Event::Ignored`], not errors. It also reads mixed Falco + Tetragon input ([`any`]).
//! It parses and nothing else: it must not depend on kube, warp or any runtime, and never
//! panics on input. Framing and errors are `teflon-falco`'s.

#![deny(clippy::print_stdout)]
// No unwrap outside tests (clippy.toml allows it in them): never panic on input.
#![warn(clippy::unwrap_used)]
#![warn(missing_docs)]

pub mod any;
mod event;
mod raw;

use std::io::BufRead;

pub use event::{Event, Ignored, SUPPORTED, TetragonEvent};
use teflon_falco::framing;
pub use teflon_falco::{LineError, ParseError};

/// `Result` with the batch error.
pub type Result<T, E = ParseError> = std::result::Result<T, E>;

/// Exactly one Tetragon event (one JSON object).
pub fn parse_event(bytes: &[u8]) -> Result<Event> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    serde_json::from_slice::<TetragonEvent>(bytes)
        .map(|e| e.0)
        .map_err(|e| ParseError::from_json(&e))
}

/// Every event of a buffer (JSON Lines, a JSON array, or one object, also pretty-printed);
/// the first broken item fails the batch with its line and column.
pub fn parse_batch(bytes: &[u8]) -> Result<Vec<Event>> {
    let events = framing::parse_all::<TetragonEvent>(bytes)?;
    Ok(events.into_iter().map(|e| e.0).collect())
}

/// Lenient events of a buffer: one result per item; a broken line yields a [`LineError`] and
/// the lines after it are still read.
pub fn events_from_slice(bytes: &[u8]) -> Events<'_> {
    Events(framing::SliceItems::new(bytes))
}

/// Lenient events of a reader (stdin, a file, `tetra getevents -o json` piped in), read
/// incrementally; see [`events_from_slice`].
pub fn events_from_reader<R: BufRead>(reader: R) -> EventReader<R> {
    EventReader(framing::ReaderItems::new(reader))
}

/// Iterator returned by [`events_from_slice`].
#[derive(Debug)]
pub struct Events<'a>(framing::SliceItems<'a, TetragonEvent>);

impl Iterator for Events<'_> {
    type Item = Result<Event, LineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|r| r.map(|e| e.0))
    }
}

/// Iterator returned by [`events_from_reader`].
#[derive(Debug)]
pub struct EventReader<R>(framing::ReaderItems<R, TetragonEvent>);

impl<R: BufRead> Iterator for EventReader<R> {
    type Item = Result<Event, LineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|r| r.map(|e| e.0))
    }
}
