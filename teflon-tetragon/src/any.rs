//! Falco and Tetragon lines mixed in one input (the replay CLI reads either, or both).
//!
//! An object with a `rule`, `priority` or `output_fields` key is a Falco alert; anything else
//! is read as a Tetragon event.

use std::io::BufRead;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use teflon_falco::{FalcoAlert, LineError, ParseError, framing};

use crate::event::{Event, TetragonEvent};

/// A Falco alert or a Tetragon event, told apart by its keys.
#[derive(Debug, Clone, PartialEq)]
pub struct AnyEvent(pub Event);

impl<'de> Deserialize<'de> for AnyEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Detecting the format needs the keys first; this path serves replay, not the hot path.
        let value = serde_json::Value::deserialize(deserializer)?;
        let is_falco = value.as_object().is_some_and(|o| {
            o.contains_key("rule") || o.contains_key("priority") || o.contains_key("output_fields")
        });
        if is_falco {
            FalcoAlert::deserialize(value)
                .map(|a| AnyEvent(Event::Alert(a.0)))
                .map_err(de::Error::custom)
        } else {
            TetragonEvent::deserialize(value)
                .map(|e| AnyEvent(e.0))
                .map_err(de::Error::custom)
        }
    }
}

/// Every event of a mixed buffer, all or nothing (see [`crate::parse_batch`]).
pub fn parse_batch(bytes: &[u8]) -> Result<Vec<Event>, ParseError> {
    let events = framing::parse_all::<AnyEvent>(bytes)?;
    Ok(events.into_iter().map(|e| e.0).collect())
}

/// Lenient events of a mixed buffer.
pub fn events_from_slice(bytes: &[u8]) -> AnyEvents<'_> {
    AnyEvents(framing::SliceItems::new(bytes))
}

/// Lenient events of a mixed reader (stdin or a file), read incrementally.
pub fn events_from_reader<R: BufRead>(reader: R) -> AnyEventReader<R> {
    AnyEventReader(framing::ReaderItems::new(reader))
}

/// Iterator returned by [`events_from_slice`].
#[derive(Debug)]
pub struct AnyEvents<'a>(framing::SliceItems<'a, AnyEvent>);

impl Iterator for AnyEvents<'_> {
    type Item = Result<Event, LineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|r| r.map(|e| e.0))
    }
}

/// Iterator returned by [`events_from_reader`].
#[derive(Debug)]
pub struct AnyEventReader<R>(framing::ReaderItems<R, AnyEvent>);

impl<R: BufRead> Iterator for AnyEventReader<R> {
    type Item = Result<Event, LineError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|r| r.map(|e| e.0))
    }
}
