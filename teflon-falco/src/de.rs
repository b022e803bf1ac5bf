//! A serde visitor that reads a Falco alert straight into [`Alert`]: no `serde_json::Value`
//! in between, top-level keys matched as borrowed `&str`, output field values typed on the fly.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use teflon_core::{Alert, FieldValue, Fields, Priority, Timestamp};

use crate::target::extract_target;
use crate::time::parse_time;

/// A Falco alert (`json_output`, `http_output` body or falcosidekick body) as a
/// deserializable type: `serde_json::from_slice::<FalcoAlert>(bytes)`.
///
/// Unknown top-level keys are ignored; `null` counts as missing for optional keys.
#[derive(Debug, Clone, PartialEq)]
pub struct FalcoAlert(pub Alert);

impl<'de> Deserialize<'de> for FalcoAlert {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AlertVisitor).map(FalcoAlert)
    }
}

enum Key {
    Output,
    Priority,
    Rule,
    Time,
    Source,
    Tags,
    Hostname,
    OutputFields,
    Uuid,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "output" => Key::Output,
                    "priority" => Key::Priority,
                    "rule" => Key::Rule,
                    "time" => Key::Time,
                    "source" => Key::Source,
                    "tags" => Key::Tags,
                    "hostname" => Key::Hostname,
                    "output_fields" => Key::OutputFields,
                    "uuid" => Key::Uuid,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct AlertVisitor;

impl<'de> Visitor<'de> for AlertVisitor {
    type Value = Alert;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Falco alert (a JSON object with rule, priority, time, output_fields…)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Alert, A::Error> {
        let mut id = None;
        let mut source = None;
        let mut rule = None;
        let mut priority = None;
        let mut time = None;
        let mut output = None;
        let mut tags = None;
        let mut fields = None;
        let mut hostname = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Output => output = map.next_value::<Text>()?.0,
                Key::Rule => rule = map.next_value::<Text>()?.0,
                Key::Source => source = map.next_value::<Text>()?.0,
                Key::Hostname => hostname = map.next_value::<Text>()?.0,
                Key::Uuid => id = map.next_value::<Text>()?.0,
                Key::Priority => priority = Some(map.next_value::<PriorityField>()?.0),
                Key::Time => time = Some(map.next_value::<TimeField>()?.0),
                Key::Tags => tags = map.next_value::<Tags>()?.0,
                Key::OutputFields => fields = map.next_value::<OutputFields>()?.0,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let rule = rule.ok_or_else(|| de::Error::custom("missing `rule` (the Falco rule name)"))?;
        let priority = priority.ok_or_else(|| {
            de::Error::custom("missing `priority` (e.g. \"Critical\", \"Warning\")")
        })?;
        let time = time.ok_or_else(|| {
            de::Error::custom("missing `time` (RFC 3339, e.g. \"2023-05-25T13:44:05.478445995Z\")")
        })?;
        let source = source.unwrap_or_else(|| "syscall".to_owned());
        let fields = fields.unwrap_or_default();
        let target = extract_target(&source, &fields);
        Ok(Alert {
            id,
            received_at: None,
            source,
            rule,
            priority,
            time,
            output: output.unwrap_or_default(),
            tags: tags.unwrap_or_default(),
            fields,
            hostname,
            target,
        })
    }
}

/// A string-ish value: strings as they are, numbers and booleans as their JSON text, `null` as none.
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor).map(Text)
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = Option<String>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

struct PriorityField(Priority);

impl<'de> Deserialize<'de> for PriorityField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Priority;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`priority` as a string such as \"Critical\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Priority, E> {
                v.parse::<Priority>()
                    .map_err(|e| E::custom(format_args!("`priority`: {e}")))
            }
        }
        deserializer.deserialize_str(V).map(PriorityField)
    }
}

struct TimeField(Timestamp);

impl<'de> Deserialize<'de> for TimeField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_str(TimeVisitor("time"))
            .map(TimeField)
    }
}

/// Reads an RFC 3339 string; the name is the key it came from, for the error message.
pub(crate) struct TimeVisitor(pub(crate) &'static str);

impl Visitor<'_> for TimeVisitor {
    type Value = Timestamp;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` as an RFC 3339 string", self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        parse_time(v).map_err(|e| E::custom(format_args!("`{}`: {e}", self.0)))
    }
}

struct Tags(Option<Vec<String>>);

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<Vec<String>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`tags` as a list of strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut tags = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
                while let Some(t) = seq.next_element::<Text>()? {
                    if let Some(t) = t.0 {
                        tags.push(t);
                    }
                }
                Ok(Some(tags))
            }
        }
        deserializer.deserialize_any(V).map(Tags)
    }
}

struct OutputFields(Option<Fields>);

impl<'de> Deserialize<'de> for OutputFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<Fields>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`output_fields` as a JSON object")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                // Keys are unique in real alerts; `push` keeps decoding linear even when they are not.
                let mut fields = Fields::with_capacity(map.size_hint().unwrap_or(16).min(256));
                while let Some(key) = map.next_key::<teflon_core::CompactString>()? {
                    let value = map.next_value_seed(FieldValueSeed)?;
                    fields.push(key, value);
                }
                Ok(Some(fields))
            }
        }
        deserializer.deserialize_any(V).map(OutputFields)
    }
}

/// Reads any JSON value as a [`FieldValue`] by its JSON type. Integers above `i64::MAX` stay
/// `U64`; a nested object (never sent by Falco) is kept as its JSON text.
#[derive(Debug, Clone, Copy)]
pub struct FieldValueSeed;

impl<'de> DeserializeSeed<'de> for FieldValueSeed {
    type Value = FieldValue;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<FieldValue, D::Error> {
        deserializer.deserialize_any(FieldValueVisitor)
    }
}

struct FieldValueVisitor;

impl<'de> Visitor<'de> for FieldValueVisitor {
    type Value = FieldValue;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<FieldValue, E> {
        Ok(FieldValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<FieldValue, E> {
        Ok(FieldValue::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<FieldValue, E> {
        Ok(FieldValue::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<FieldValue, E> {
        Ok(FieldValue::F64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue, E> {
        Ok(FieldValue::Str(v.into()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<FieldValue, E> {
        Ok(FieldValue::Str(v.into()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<FieldValue, E> {
        Ok(FieldValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<FieldValue, E> {
        Ok(FieldValue::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
        while let Some(v) = seq.next_element_seed(FieldValueSeed)? {
            items.push(v);
        }
        Ok(FieldValue::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldValue, A::Error> {
        let value = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(FieldValue::Str(value.to_string().into()))
    }
}
