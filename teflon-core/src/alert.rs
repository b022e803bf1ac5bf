//! The alert model every source is turned into (SPEC §2).
//!
//! Size: about 490 lines before its tests, kept in one file: the alert model and its field store;
//! the sources, the policies and the audit record all read the same types.

use std::fmt;
use std::str::FromStr;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::Timestamp;

/// Falco's priority scale. `Ord` follows severity: `Emergency > Alert > … > Debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Lowest.
    Debug,
    /// Falco also spells this `Info`.
    Informational,
    /// Normal but significant.
    Notice,
    /// Warning.
    Warning,
    /// Error.
    Error,
    /// Critical.
    Critical,
    /// Action must be taken immediately.
    Alert,
    /// Highest.
    Emergency,
}

/// The text was not one of Falco's priority names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown priority {input:?} (expected one of Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)"
)]
pub struct PriorityError {
    /// What was given (truncated).
    pub input: String,
}

impl Priority {
    /// Every priority, most severe first.
    pub const ALL: [Priority; 8] = [
        Priority::Emergency,
        Priority::Alert,
        Priority::Critical,
        Priority::Error,
        Priority::Warning,
        Priority::Notice,
        Priority::Informational,
        Priority::Debug,
    ];

    /// The canonical Falco spelling (`Critical`, `Informational`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Priority::Emergency => "Emergency",
            Priority::Alert => "Alert",
            Priority::Critical => "Critical",
            Priority::Error => "Error",
            Priority::Warning => "Warning",
            Priority::Notice => "Notice",
            Priority::Informational => "Informational",
            Priority::Debug => "Debug",
        }
    }
}

impl FromStr for Priority {
    type Err = PriorityError;

    /// Case-insensitive; `Info` is accepted for `Informational`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let p = match s.trim() {
            x if x.eq_ignore_ascii_case("emergency") => Priority::Emergency,
            x if x.eq_ignore_ascii_case("alert") => Priority::Alert,
            x if x.eq_ignore_ascii_case("critical") => Priority::Critical,
            x if x.eq_ignore_ascii_case("error") => Priority::Error,
            x if x.eq_ignore_ascii_case("warning") => Priority::Warning,
            x if x.eq_ignore_ascii_case("notice") => Priority::Notice,
            x if x.eq_ignore_ascii_case("informational") || x.eq_ignore_ascii_case("info") => {
                Priority::Informational
            }
            x if x.eq_ignore_ascii_case("debug") => Priority::Debug,
            _ => {
                return Err(PriorityError {
                    input: s.chars().take(64).collect(),
                });
            }
        };
        Ok(p)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Priority {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A typed value of a Falco output field (or a Tetragon attribute).
///
/// Falco's `"<NA>"` and JSON `null` both mean "absent": [`Fields::get`] hides them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    /// JSON null.
    Null,
    /// true / false.
    Bool(bool),
    /// A signed integer that fits i64.
    I64(i64),
    /// An unsigned integer above i64::MAX (Falco emits u64 counters and ids).
    U64(u64),
    /// A float.
    F64(f64),
    /// A string (stored inline up to 24 bytes: most Falco values are short).
    Str(CompactString),
    /// A JSON array (e.g. `proc.aname`-style list fields).
    List(Vec<FieldValue>),
}

impl FieldValue {
    /// True for `null` and Falco's `"<NA>"`.
    pub fn is_absent(&self) -> bool {
        match self {
            FieldValue::Null => true,
            FieldValue::Str(s) => s == "<NA>",
            _ => false,
        }
    }

    /// The value as a string slice, when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value rendered as text the way it appears in JSON (strings without quotes).
    pub fn to_text(&self) -> String {
        match self {
            FieldValue::Null => "null".to_owned(),
            FieldValue::Bool(b) => b.to_string(),
            FieldValue::I64(n) => n.to_string(),
            FieldValue::U64(n) => n.to_string(),
            FieldValue::F64(x) => x.to_string(),
            FieldValue::Str(s) => s.to_string(),
            FieldValue::List(items) => {
                let parts: Vec<String> = items.iter().map(FieldValue::to_text).collect();
                format!("[{}]", parts.join(","))
            }
        }
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::Str(s.into())
    }
}
impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        FieldValue::Str(s.into())
    }
}
impl From<CompactString> for FieldValue {
    fn from(s: CompactString) -> Self {
        FieldValue::Str(s)
    }
}
impl From<i64> for FieldValue {
    fn from(n: i64) -> Self {
        FieldValue::I64(n)
    }
}
impl From<u64> for FieldValue {
    fn from(n: u64) -> Self {
        match i64::try_from(n) {
            Ok(i) => FieldValue::I64(i),
            Err(_) => FieldValue::U64(n),
        }
    }
}
impl From<bool> for FieldValue {
    fn from(b: bool) -> Self {
        FieldValue::Bool(b)
    }
}
impl From<f64> for FieldValue {
    fn from(x: f64) -> Self {
        FieldValue::F64(x)
    }
}

/// The output fields of an alert, in the order they arrived.
///
/// A small vector beats a hash map here: Falco alerts carry a dozen or two fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields(Vec<(CompactString, FieldValue)>);

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Fields(Vec::new())
    }

    /// With room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Fields(Vec::with_capacity(n))
    }

    /// Add or replace a field.
    pub fn insert(&mut self, key: impl Into<CompactString>, value: impl Into<FieldValue>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Append without checking for an existing key (parsers that already know keys are unique).
    pub fn push(&mut self, key: impl Into<CompactString>, value: FieldValue) {
        self.0.push((key.into(), value));
    }

    /// The value of `key`, or `None` when missing, `null` or `"<NA>"`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.raw(key).filter(|v| !v.is_absent())
    }

    /// The value of `key` as a non-empty string, or `None`.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key)
            .and_then(FieldValue::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The value of `key` as it arrived, including `null` / `"<NA>"`.
    pub fn raw(&self, key: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Every field, in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of output fields")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut fields = Fields::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((k, v)) = map.next_entry::<CompactString, FieldValue>()? {
                    fields.insert(k, v);
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(V)
    }
}

impl<K: Into<CompactString>, V: Into<FieldValue>> FromIterator<(K, V)> for Fields {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        let mut f = Fields::new();
        for (k, v) in iter {
            f.insert(k, v);
        }
        f
    }
}

/// The pod an alert is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Pod UID, when the source knows it (`k8s.pod.uid`, Tetragon `pod.uid`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Container id, `None` for host events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
}

impl Target {
    /// A target by namespace and pod name.
    pub fn new(namespace: impl Into<String>, pod: impl Into<String>) -> Self {
        Target {
            namespace: namespace.into(),
            pod: pod.into(),
            uid: None,
            container_id: None,
        }
    }
}

/// One detection from Falco, falcosidekick or Tetragon, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// A sender-given id (falcosidekick's `uuid`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When the server received it: set as the alert is taken for decision, so it travels
    /// with the alert (into a deferral, and to the audit line of its resolution). Not part
    /// of any wire format.
    #[serde(skip)]
    pub received_at: Option<Timestamp>,
    /// `syscall`, `k8s_audit`, a plugin name, `internal`, `tetragon`.
    pub source: String,
    /// The rule name (`Terminal shell in container`, `tetragon:…`).
    pub rule: String,
    /// Severity.
    pub priority: Priority,
    /// When the event happened (UTC, nanoseconds).
    pub time: Timestamp,
    /// The human-readable output line.
    #[serde(default)]
    pub output: String,
    /// Rule tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Typed output fields.
    #[serde(default)]
    pub fields: Fields,
    /// The node that saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The pod it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

impl Alert {
    /// A minimal alert: rule, priority and time, source `syscall`, no fields.
    pub fn new(rule: impl Into<String>, priority: Priority, time: Timestamp) -> Self {
        Alert {
            id: None,
            received_at: None,
            source: "syscall".to_owned(),
            rule: rule.into(),
            priority,
            time,
            output: String::new(),
            tags: Vec::new(),
            fields: Fields::new(),
            hostname: None,
            target: None,
        }
    }

    /// True when the alert carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

#[cfg(any(test, feature = "test-util"))]
mod builder {
    use super::*;

    /// Fluent builder for tests: `Alert::test().priority(Critical).pod("ns", "web-1").build()`.
    #[derive(Debug, Clone)]
    pub struct AlertBuilder(Alert);

    impl Alert {
        /// A `Terminal shell in container` / Critical / syscall alert at t = 1 000 000 s with no target.
        pub fn test() -> AlertBuilder {
            AlertBuilder(Alert::new(
                "Terminal shell in container",
                Priority::Critical,
                Timestamp::from_secs(1_000_000),
            ))
        }
    }

    impl AlertBuilder {
        /// Rule name.
        pub fn rule(mut self, rule: &str) -> Self {
            rule.clone_into(&mut self.0.rule);
            self
        }
        /// Priority.
        pub fn priority(mut self, p: Priority) -> Self {
            self.0.priority = p;
            self
        }
        /// Source.
        pub fn source(mut self, s: &str) -> Self {
            s.clone_into(&mut self.0.source);
            self
        }
        /// Time in whole seconds.
        pub fn at_secs(mut self, secs: i64) -> Self {
            self.0.time = Timestamp::from_secs(secs);
            self
        }
        /// Time.
        pub fn at(mut self, t: Timestamp) -> Self {
            self.0.time = t;
            self
        }
        /// Target pod, and the `k8s.ns.name` / `k8s.pod.name` fields Falco would carry.
        pub fn pod(mut self, namespace: &str, pod: &str) -> Self {
            self.0.fields.insert("k8s.ns.name", namespace);
            self.0.fields.insert("k8s.pod.name", pod);
            self.0.target = Some(Target::new(namespace, pod));
            self
        }
        /// Target pod UID.
        pub fn uid(mut self, uid: &str) -> Self {
            if let Some(t) = self.0.target.as_mut() {
                t.uid = Some(uid.to_owned());
            }
            self
        }
        /// Add a tag.
        pub fn tag(mut self, tag: &str) -> Self {
            self.0.tags.push(tag.to_owned());
            self
        }
        /// Add an output field.
        pub fn field(mut self, key: &str, value: impl Into<FieldValue>) -> Self {
            self.0.fields.insert(key, value);
            self
        }
        /// Output line.
        pub fn output(mut self, output: &str) -> Self {
            output.clone_into(&mut self.0.output);
            self
        }
        /// The alert.
        pub fn build(self) -> Alert {
            self.0
        }
    }

    impl From<AlertBuilder> for Alert {
        fn from(b: AlertBuilder) -> Alert {
            b.0
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
pub use builder::AlertBuilder;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_order_from_emergency_down_to_debug() {
        for pair in Priority::ALL.windows(2) {
            assert!(
                pair[0] > pair[1],
                "{:?} should outrank {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn priority_parses_case_insensitively_with_info_alias() {
        assert_eq!("CRITICAL".parse::<Priority>(), Ok(Priority::Critical));
        assert_eq!("warning".parse::<Priority>(), Ok(Priority::Warning));
        assert_eq!("Info".parse::<Priority>(), Ok(Priority::Informational));
        assert_eq!(
            "informational".parse::<Priority>(),
            Ok(Priority::Informational)
        );
    }

    #[test]
    fn unknown_priority_names_the_expected_ones() {
        let err = "Critcal".parse::<Priority>().unwrap_err();
        assert!(err.to_string().contains("\"Critcal\""));
        assert!(err.to_string().contains("Emergency, Alert, Critical"));
    }

    #[test]
    fn na_and_null_fields_read_as_absent() {
        let mut f = Fields::new();
        f.insert("proc.pname", "<NA>");
        f.insert("user.loginname", FieldValue::Null);
        f.insert("proc.name", "bash");
        assert_eq!(f.get("proc.pname"), None);
        assert_eq!(f.get("user.loginname"), None);
        assert_eq!(f.get_str("proc.name"), Some("bash"));
        assert!(f.raw("proc.pname").is_some());
    }

    #[test]
    fn u64_beyond_i64_is_kept_unsigned() {
        assert_eq!(FieldValue::from(u64::MAX), FieldValue::U64(u64::MAX));
        assert_eq!(FieldValue::from(7u64), FieldValue::I64(7));
    }

    #[test]
    fn field_values_deserialize_to_their_json_type() {
        let f: Fields = serde_json::from_str(
            r#"{"a":"x","b":-3,"c":18446744073709551615,"d":1.5,"e":true,"f":null,"g":[1,"y"]}"#,
        )
        .unwrap();
        assert_eq!(f.raw("a"), Some(&FieldValue::Str("x".into())));
        assert_eq!(f.raw("b"), Some(&FieldValue::I64(-3)));
        assert_eq!(f.raw("c"), Some(&FieldValue::U64(u64::MAX)));
        assert_eq!(f.raw("d"), Some(&FieldValue::F64(1.5)));
        assert_eq!(f.raw("e"), Some(&FieldValue::Bool(true)));
        assert_eq!(f.raw("f"), Some(&FieldValue::Null));
        assert_eq!(
            f.raw("g"),
            Some(&FieldValue::List(vec![
                FieldValue::I64(1),
                FieldValue::Str("y".into())
            ]))
        );
    }
}
