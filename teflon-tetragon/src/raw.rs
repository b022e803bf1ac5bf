//! The parts of Tetragon's `GetEventsResponse` JSON (protojson) that become an alert.
//!
//! Every field is optional and loosely typed: protojson drops zero values, spells 64-bit
//! integers as strings, and older Tetragon versions lack newer fields.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use teflon_core::FieldValue;

/// A string-ish value: strings as they are, numbers and booleans as text, `null` as none.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Str(pub(crate) Option<String>);

impl Str {
    pub(crate) fn get(&self) -> Option<&str> {
        self.0.as_deref().filter(|s| !s.is_empty())
    }
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str, E> {
                Ok(Str(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str, E> {
                Ok(Str(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Str, E> {
                Ok(Str(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Str, E> {
                Ok(Str(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Str, E> {
                Ok(Str(Some(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Str, E> {
                Ok(Str(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Str, E> {
                Ok(Str(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A number, also when protojson spells it as a string (`"627"` for a uint64).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Num(pub(crate) Option<FieldValue>);

/// `"123"` → `I64(123)`, `"18446744073709551615"` → `U64`, anything else stays a string.
pub(crate) fn number_from_text(s: &str) -> FieldValue {
    if let Ok(n) = s.parse::<i64>() {
        FieldValue::I64(n)
    } else if let Ok(n) = s.parse::<u64>() {
        FieldValue::U64(n)
    } else {
        FieldValue::Str(s.into())
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                Ok(Num(Some(number_from_text(v))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(Some(FieldValue::I64(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Some(FieldValue::from(v))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(Some(FieldValue::F64(v))))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Num, E> {
                Ok(Num(Some(FieldValue::Bool(v))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Num, E> {
                Ok(Num(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `process` and `parent` of an event.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Process {
    pub(crate) exec_id: Str,
    pub(crate) parent_exec_id: Str,
    pub(crate) pid: Num,
    pub(crate) tid: Num,
    pub(crate) uid: Num,
    pub(crate) auid: Num,
    pub(crate) cwd: Str,
    pub(crate) binary: Str,
    pub(crate) arguments: Str,
    pub(crate) flags: Str,
    pub(crate) start_time: Str,
    pub(crate) pod: Option<Pod>,
}

/// `process.pod`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Pod {
    pub(crate) namespace: Str,
    pub(crate) name: Str,
    pub(crate) uid: Str,
    pub(crate) container: Option<Container>,
    pub(crate) pod_labels: Option<BTreeMap<String, Str>>,
    pub(crate) workload: Str,
    pub(crate) workload_kind: Str,
}

/// `process.pod.container`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Container {
    pub(crate) id: Str,
    pub(crate) name: Str,
    pub(crate) image: Option<Image>,
    pub(crate) pid: Num,
}

/// `process.pod.container.image`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Image {
    pub(crate) id: Str,
    pub(crate) name: Str,
}

/// The body of `process_exec`, `process_exit`, `process_kprobe`, `process_tracepoint` or
/// `process_lsm` (each kind uses some of these keys).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Body {
    pub(crate) process: Option<Process>,
    pub(crate) parent: Option<Process>,
    pub(crate) function_name: Str,
    pub(crate) policy_name: Str,
    pub(crate) action: Str,
    pub(crate) return_action: Str,
    pub(crate) tags: Option<Vec<Str>>,
    pub(crate) args: Option<Vec<serde_json::Value>>,
    #[serde(rename = "return")]
    pub(crate) ret: Option<serde_json::Value>,
    pub(crate) signal: Str,
    pub(crate) status: Num,
    pub(crate) subsys: Str,
    pub(crate) event: Str,
    pub(crate) message: Str,
    pub(crate) time: Str,
}
