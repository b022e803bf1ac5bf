//! An [`Alert`] written back as a Falco `json_output` object.

use serde::ser::{Serialize, SerializeMap, Serializer};
use teflon_core::Alert;

/// Serializes an alert in Falco's JSON shape: `uuid` (when the alert has an id, as
/// falcosidekick sends it), `hostname` (when known), `output`, `priority`, `rule`, `source`,
/// `tags`, `time` (nine fractional digits) and `output_fields`.
///
/// Parsing the result with [`crate::parse_alert`] gives the same alert back, as long as its
/// target is the one the fields imply (see [`crate::extract_target`]).
#[derive(Debug, Clone, Copy)]
pub struct FalcoJson<'a>(pub &'a Alert);

impl Serialize for FalcoJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let a = self.0;
        let len = 7 + usize::from(a.id.is_some()) + usize::from(a.hostname.is_some());
        let mut map = serializer.serialize_map(Some(len))?;
        if let Some(id) = &a.id {
            map.serialize_entry("uuid", id)?;
        }
        if let Some(host) = &a.hostname {
            map.serialize_entry("hostname", host)?;
        }
        map.serialize_entry("output", &a.output)?;
        map.serialize_entry("priority", a.priority.as_str())?;
        map.serialize_entry("rule", &a.rule)?;
        map.serialize_entry("source", &a.source)?;
        map.serialize_entry("tags", &a.tags)?;
        map.serialize_entry("time", &a.time.to_rfc3339())?;
        map.serialize_entry("output_fields", &a.fields)?;
        map.end()
    }
}

/// The alert as one line of Falco JSON (no trailing newline).
pub fn to_falco_json(alert: &Alert) -> String {
    // Serializing a map of strings and numbers cannot fail; NaN and infinities become `null`.
    serde_json::to_string(&FalcoJson(alert)).unwrap_or_default()
}
