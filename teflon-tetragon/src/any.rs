//! Falco and Tetragon items mixed in one input, told apart item by item.
//!
//! A log pipeline that collects both sources saves them into one file, so the format is a
//! property of each item, not of the input. [`sniff`] is the one place that decides it: the
//! replay CLI reads every line in its own format, the server says which endpoint a misrouted
//! line belongs to, and the fuzz target checks it never panics.
//!
//! An item with a `rule`, `priority` or `output_fields` key is a Falco alert; one with a
//! Tetragon event kind (`process_*`, `rate_limit_info`, …) or `node_name` and none of those is
//! a Tetragon event; anything else is read as Falco, whose error names what is missing.

use std::fmt;
use std::io::BufRead;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use teflon_falco::{FalcoAlert, LineError, ParseError, framing};

use crate::event::{Event, OTHER_KINDS, SUPPORTED, TetragonEvent};

/// The wire format of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Falco alert (`json_output`, `http_output`, falcosidekick).
    Falco,
    /// A Tetragon export event.
    Tetragon,
}

/// Top-level keys only a Falco alert has.
const FALCO_KEYS: [&str; 3] = ["rule", "priority", "output_fields"];

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    falco: bool,
    tetragon: bool,
}

impl Seen {
    fn key(&mut self, key: &str) {
        if FALCO_KEYS.contains(&key) {
            self.falco = true;
        } else if key == "node_name"
            || key.starts_with("process_")
            || SUPPORTED.contains(&key)
            || OTHER_KINDS.contains(&key)
        {
            self.tetragon = true;
        }
    }

    fn format(self) -> Option<Format> {
        match (self.falco, self.tetragon) {
            (true, _) => Some(Format::Falco),
            (false, true) => Some(Format::Tetragon),
            (false, false) => None,
        }
    }
}

/// The format of one item (a JSON object; for an array, its first object) by its top-level
/// keys, or `None` when they name neither. Values are skipped, not built, and an item cut
/// short or broken is judged by the keys before the break.
pub fn sniff(item: &[u8]) -> Option<Format> {
    let mut seen = Seen::default();
    let mut de = serde_json::Deserializer::from_slice(item);
    // The error (if any) is the parser's to report; the keys seen before it are enough here.
    let _ = SniffSeed {
        seen: &mut seen,
        nested: false,
    }
    .deserialize(&mut de);
    seen.format()
}

/// The format of an item already read as JSON (same rule as [`sniff`]).
fn sniff_value(value: &serde_json::Value) -> Option<Format> {
    let mut seen = Seen::default();
    for key in value.as_object().into_iter().flat_map(|o| o.keys()) {
        seen.key(key);
    }
    seen.format()
}

struct SniffSeed<'s> {
    seen: &'s mut Seen,
    /// Inside an array already: do not descend further.
    nested: bool,
}

impl<'de> DeserializeSeed<'de> for SniffSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SniffSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(KeySeed(self.seen))?.is_some() {
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if !self.nested {
            seq.next_element_seed(SniffSeed {
                seen: self.seen,
                nested: true,
            })?;
        }
        Ok(())
    }

    // Anything else at the top level is neither format.
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

struct KeySeed<'s>(&'s mut Seen);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        self.0.key(key);
        Ok(())
    }
}

/// A Falco alert or a Tetragon event, told apart by its keys (see [`sniff`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AnyEvent(pub Event);

impl<'de> Deserialize<'de> for AnyEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Detecting the format needs the keys first; this path serves arrays and readers, not
        // the hot path (a framed line is sniffed on its bytes and parsed once).
        let value = serde_json::Value::deserialize(deserializer)?;
        if sniff_value(&value) == Some(Format::Tetragon) {
            TetragonEvent::deserialize(value)
                .map(|e| AnyEvent(e.0))
                .map_err(de::Error::custom)
        } else {
            FalcoAlert::deserialize(value)
                .map(|a| AnyEvent(Event::Alert(a.0)))
                .map_err(de::Error::custom)
        }
    }
}

/// Every event of a mixed buffer, all or nothing (see [`crate::parse_batch`]).
pub fn parse_batch(bytes: &[u8]) -> Result<Vec<Event>, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    events_from_slice(bytes)
        .map(|r| r.map_err(ParseError::from))
        .collect()
}

/// Lenient events of a mixed buffer: each frame (a line, a pretty-printed object) is sniffed
/// and parsed in its own format, so errors keep their line and column; an array is read
/// object by object.
pub fn events_from_slice(bytes: &[u8]) -> AnyEvents<'_> {
    AnyEvents {
        frames: framing::SliceFrames::new(bytes),
        pending: std::collections::VecDeque::new(),
    }
}

/// Lenient events of a mixed reader (stdin or a file), read incrementally; each object is
/// told apart by [`sniff`]'s rule.
pub fn events_from_reader<R: BufRead>(reader: R) -> AnyEventReader<R> {
    AnyEventReader(framing::ReaderItems::new(reader))
}

/// Iterator returned by [`events_from_slice`].
#[derive(Debug)]
pub struct AnyEvents<'a> {
    frames: framing::SliceFrames<'a>,
    pending: std::collections::VecDeque<Result<Event, LineError>>,
}

impl Iterator for AnyEvents<'_> {
    type Item = Result<Event, LineError>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            let (line, frame) = self.frames.next()?;
            let is_array = frame.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
            if is_array {
                parse_into::<AnyEvent>(frame, line, &mut self.pending, |e| e.0);
            } else if sniff(frame) == Some(Format::Tetragon) {
                parse_into::<TetragonEvent>(frame, line, &mut self.pending, |e| e.0);
            } else {
                parse_into::<FalcoAlert>(frame, line, &mut self.pending, |a| Event::Alert(a.0));
            }
        }
    }
}

fn parse_into<T: serde::de::DeserializeOwned>(
    frame: &[u8],
    line: usize,
    out: &mut std::collections::VecDeque<Result<Event, LineError>>,
    event: impl Fn(T) -> Event,
) {
    let mut items = std::collections::VecDeque::new();
    framing::parse_frame::<T>(frame, line, &mut items);
    out.extend(items.into_iter().map(|r| r.map(&event)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_item_is_told_by_its_keys() {
        assert_eq!(sniff(br#"{"rule":"x","time":"t"}"#), Some(Format::Falco));
        assert_eq!(sniff(br#"{"output_fields":{}}"#), Some(Format::Falco));
        assert_eq!(
            sniff(br#"{"process_exec":{"process":{}},"node_name":"n"}"#),
            Some(Format::Tetragon)
        );
        assert_eq!(sniff(br#"{"rate_limit_info":{}}"#), Some(Format::Tetragon));
        assert_eq!(
            sniff(br#"[{"process_kprobe":{}}, {"rule":"x"}]"#),
            Some(Format::Tetragon)
        );
        // A Falco key wins: Tetragon never writes one.
        assert_eq!(
            sniff(br#"{"node_name":"n","rule":"x"}"#),
            Some(Format::Falco)
        );
        assert_eq!(sniff(br#"{"foo":1}"#), None);
        assert_eq!(sniff(b"not json"), None);
        assert_eq!(sniff(b"42"), None);
    }

    #[test]
    fn a_broken_item_is_told_by_the_keys_before_the_break() {
        assert_eq!(
            sniff(br#"{"process_exec":{"process":{"binary":"/bin/sh""#),
            Some(Format::Tetragon)
        );
        assert_eq!(sniff(br#"{"output":"x","rule": }"#), Some(Format::Falco));
        // Nested keys do not count: only the item's own.
        assert_eq!(sniff(br#"{"x":{"rule":"r"}}"#), None);
    }

    proptest::proptest! {
        #[test]
        fn sniffing_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = sniff(&bytes);
        }
    }
}
