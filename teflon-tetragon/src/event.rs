//! One Tetragon export line → [`Event`]: an [`Alert`] or a reasoned [`Ignored`].
//!
//! Size: about 440 lines before its tests, kept in one file: the mapping of every Tetragon event
//! kind to an alert; the kinds share the pod, process and policy extraction.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use teflon_core::{Alert, FieldValue, Fields, Priority, Target, Timestamp};
use teflon_falco::parse_time;

use crate::raw::{Body, Process, Str, number_from_text};

/// The event kinds that become alerts.
pub const SUPPORTED: [&str; 5] = [
    "process_exec",
    "process_exit",
    "process_kprobe",
    "process_tracepoint",
    "process_lsm",
];

/// The other event kinds of Tetragon's export (`GetEventsResponse`): valid Tetragon events that
/// do not become alerts.
pub const OTHER_KINDS: [&str; 6] = [
    "process_loader",
    "process_uprobe",
    "process_throttle",
    "process_usdt",
    "rate_limit_info",
    "test",
];

/// Keys beside the event body that carry no event of their own.
const ENVELOPE: [&str; 5] = [
    "node_name",
    "time",
    "cluster_name",
    "aggregation_info",
    "node_labels",
];

/// What one Tetragon line is.
// Nearly every line is an alert: boxing it would add an allocation to the common path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A process or policy event, as an alert.
    Alert(Alert),
    /// A valid event of a kind Teflon does not act on.
    Ignored(Ignored),
}

impl Event {
    /// The alert, when it is one.
    pub fn into_alert(self) -> Option<Alert> {
        match self {
            Event::Alert(a) => Some(a),
            Event::Ignored(_) => None,
        }
    }
}

/// A Tetragon event that is not turned into an alert, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// Its kind, e.g. `process_loader` or `rate_limit_info`.
    pub event_type: String,
}

impl Ignored {
    /// True when its kind is one of Tetragon's own ([`OTHER_KINDS`]), false for an object
    /// that is no Tetragon event at all (a Falco alert, `{"foo": 1}`).
    pub fn is_tetragon_kind(&self) -> bool {
        OTHER_KINDS.contains(&self.event_type.as_str())
    }
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ignored Tetragon `{}` event: only {} become alerts",
            self.event_type,
            SUPPORTED.join(", ")
        )
    }
}

/// A Tetragon export line as a deserializable type: `serde_json::from_slice::<TetragonEvent>`.
#[derive(Debug, Clone, PartialEq)]
pub struct TetragonEvent(pub Event);

impl<'de> Deserialize<'de> for TetragonEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(EventVisitor)
            .map(TetragonEvent)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Tetragon event (a JSON object such as {\"process_exec\": {…}, \"time\": …})")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        let mut body: Option<(&'static str, Body)> = None;
        let mut other: Option<String> = None;
        let mut node = Str::default();
        let mut cluster = Str::default();
        let mut time = Str::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if let Some(kind) = SUPPORTED.iter().find(|k| **k == key) {
                body = Some((kind, map.next_value::<Body>()?));
                continue;
            }
            match key.as_ref() {
                "node_name" => node = map.next_value()?,
                "cluster_name" => cluster = map.next_value()?,
                "time" => time = map.next_value()?,
                k => {
                    if other.is_none() && !ENVELOPE.contains(&k) {
                        other = Some(k.to_owned());
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some((kind, body)) = body else {
            return match other {
                Some(event_type) => Ok(Event::Ignored(Ignored { event_type })),
                None => Err(de::Error::custom(format_args!(
                    "not a Tetragon event: no event key (expected one of {})",
                    SUPPORTED.join(", ")
                ))),
            };
        };
        let time_text = time
            .get()
            .or_else(|| body.time.get())
            .or_else(|| body.process.as_ref().and_then(|p| p.start_time.get()));
        let Some(time_text) = time_text else {
            return Err(de::Error::custom(
                "missing `time` (RFC 3339; neither the event nor its process has one)",
            ));
        };
        let time =
            parse_time(time_text).map_err(|e| de::Error::custom(format_args!("`time`: {e}")))?;
        Ok(Event::Alert(to_alert(kind, body, time, node, cluster)))
    }
}

/// Tetragon's own prevention: the call was killed or its return value overridden.
fn prevented(action: Option<&str>) -> bool {
    matches!(
        action,
        Some("KPROBE_ACTION_SIGKILL" | "KPROBE_ACTION_OVERRIDE")
    )
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn to_alert(kind: &'static str, body: Body, time: Timestamp, node: Str, cluster: Str) -> Alert {
    let policy_event = !matches!(kind, "process_exec" | "process_exit");
    let action = body.action.get();
    let rule = if policy_event {
        let function = match (
            body.function_name.get(),
            body.subsys.get(),
            body.event.get(),
        ) {
            (Some(f), _, _) => f.to_owned(),
            (None, Some(s), Some(e)) => format!("{s}/{e}"),
            (None, None, Some(e)) => e.to_owned(),
            _ => String::new(),
        };
        format!(
            "tetragon:{}:{function}",
            body.policy_name.get().unwrap_or_default()
        )
    } else if let (true, Some(signal)) = (kind == "process_exit", body.signal.get()) {
        format!("tetragon:process_exit:{signal}")
    } else {
        format!("tetragon:{kind}")
    };
    let priority = match (policy_event, prevented(action)) {
        (true, true) => Priority::Critical,
        (true, false) => Priority::Warning,
        (false, _) => Priority::Informational,
    };
    let mut tags = vec!["tetragon".to_owned()];
    tags.extend(
        body.tags
            .iter()
            .flatten()
            .filter_map(|t| t.get().map(str::to_owned)),
    );
    if policy_event && prevented(action) {
        tags.push("prevented".to_owned());
    }

    let mut fields = Fields::with_capacity(40);
    fields.push("tetragon.event".to_owned(), kind.into());
    let process = body.process.unwrap_or_default();
    process_fields(&mut fields, &process, "proc.", false);
    if let Some(parent) = &body.parent {
        process_fields(&mut fields, parent, "proc.p", true);
    }
    let target = pod_fields(&mut fields, &process);
    let mut put = |key: &str, value: &Str| {
        if let Some(v) = value.get() {
            fields.push(key.to_owned(), v.into());
        }
    };
    put("tetragon.policy_name", &body.policy_name);
    put("tetragon.function_name", &body.function_name);
    put("tetragon.subsys", &body.subsys);
    put("tetragon.tracepoint", &body.event);
    put("tetragon.action", &body.action);
    put("tetragon.return_action", &body.return_action);
    put("tetragon.message", &body.message);
    put("tetragon.signal", &body.signal);
    put("tetragon.cluster_name", &cluster);
    if let Some(status) = body.status.0 {
        fields.push("tetragon.status".to_owned(), status);
    }
    if let Some(args) = &body.args {
        let values: Vec<FieldValue> = args.iter().map(arg_value).collect();
        if let Some(path) = args.iter().find_map(arg_path) {
            fields.push("fd.name".to_owned(), path.into());
        }
        fields.push("tetragon.args".to_owned(), FieldValue::List(values));
    }
    if let Some(ret) = &body.ret {
        fields.push("tetragon.return".to_owned(), arg_value(ret));
    }

    let exe = process.binary.get().unwrap_or_default();
    let mut output = kind.to_owned();
    if let Some(t) = &target {
        output.push_str(&format!(" {}/{}", t.namespace, t.pod));
    }
    output.push_str(&format!(" {exe}"));
    if let Some(args) = process.arguments.get() {
        output.push_str(&format!(" {args}"));
    }
    if policy_event {
        if let Some(f) = body.function_name.get() {
            output.push_str(&format!(" {f}"));
        }
        if let Some(a) = action {
            output.push_str(&format!(" {a}"));
        }
    } else if let Some(s) = body.signal.get() {
        output.push_str(&format!(" {s}"));
    }

    Alert {
        id: None,
        received_at: None,
        source: "tetragon".to_owned(),
        rule,
        priority,
        time,
        output,
        tags,
        fields,
        hostname: node.0.filter(|n| !n.is_empty()),
        target,
    }
}

/// Falco-named fields of a process: `prefix` is `proc.` for the process and `proc.p` for its
/// parent (`proc.pname`, `proc.pexepath`, …); ids, uids and flags only for the process.
fn process_fields(fields: &mut Fields, p: &Process, prefix: &str, parent: bool) {
    let exe = p.binary.get();
    let name = exe.map(basename);
    let mut put = |key: &str, value: FieldValue| fields.push(format!("{prefix}{key}"), value);
    if let Some(exe) = exe {
        put("exepath", exe.into());
    }
    if let Some(name) = name {
        put("name", name.into());
    }
    if let Some(args) = p.arguments.get() {
        put("args", args.into());
    }
    if let Some(name) = name {
        let cmdline = match p.arguments.get() {
            Some(args) => format!("{name} {args}"),
            None => name.to_owned(),
        };
        put("cmdline", cmdline.into());
    }
    if let Some(pid) = &p.pid.0 {
        put("pid", pid.clone());
    }
    if let Some(cwd) = p.cwd.get() {
        put("cwd", cwd.into());
    }
    if !parent {
        if let Some(tid) = &p.tid.0 {
            fields.push("thread.tid".to_owned(), tid.clone());
        }
        if let Some(uid) = &p.uid.0 {
            fields.push("user.uid".to_owned(), uid.clone());
        }
        if let Some(auid) = &p.auid.0 {
            // Tetragon reports "no login uid" as u32::MAX; Falco says -1.
            let v = match auid {
                FieldValue::I64(4_294_967_295) => FieldValue::I64(-1),
                other => other.clone(),
            };
            fields.push("user.loginuid".to_owned(), v);
        }
    }
    if !parent {
        if let Some(id) = p.exec_id.get() {
            fields.push("tetragon.exec_id".to_owned(), id.into());
        }
        if let Some(id) = p.parent_exec_id.get() {
            fields.push("tetragon.parent_exec_id".to_owned(), id.into());
        }
        if let Some(flags) = p.flags.get() {
            fields.push("tetragon.flags".to_owned(), flags.into());
        }
    }
}

/// `k8s.*` and `container.*` fields of the process's pod, and the target.
fn pod_fields(fields: &mut Fields, p: &Process) -> Option<Target> {
    let pod = p.pod.as_ref()?;
    let put = |fields: &mut Fields, key: &str, value: Option<&str>| {
        if let Some(v) = value {
            fields.push(key.to_owned(), v.into());
        }
    };
    put(fields, "k8s.ns.name", pod.namespace.get());
    put(fields, "k8s.pod.name", pod.name.get());
    put(fields, "k8s.pod.uid", pod.uid.get());
    put(fields, "tetragon.workload", pod.workload.get());
    put(fields, "tetragon.workload_kind", pod.workload_kind.get());
    for (k, v) in pod.pod_labels.iter().flatten() {
        if let Some(v) = v.get() {
            fields.push(format!("k8s.pod.label[{k}]"), v.into());
        }
    }
    let mut short_id = None;
    if let Some(c) = &pod.container {
        // `containerd://<64 hex>` → Falco's `container.id` is the first 12 hex digits.
        let full =
            c.id.get()
                .map(|id| id.split_once("://").map_or(id, |(_, rest)| rest));
        short_id = full.map(|f| f.get(..12).unwrap_or(f).to_owned());
        put(fields, "container.id", short_id.as_deref());
        put(fields, "container.full_id", full);
        put(fields, "container.name", c.name.get());
        if let Some(image) = &c.image {
            let name = image.name.get();
            put(fields, "container.image", name);
            if let Some(name) = name {
                let (repo, tag) = split_image(name);
                put(fields, "container.image.repository", Some(repo));
                put(fields, "container.image.tag", tag);
            }
            let digest = image
                .id
                .get()
                .and_then(|id| id.split_once('@'))
                .map(|(_, d)| d);
            put(fields, "container.image.digest", digest);
        }
    }
    Some(Target {
        namespace: pod.namespace.get()?.to_owned(),
        pod: pod.name.get()?.to_owned(),
        uid: pod.uid.get().map(str::to_owned),
        container_id: short_id,
    })
}

/// `docker.io/library/nginx:1.27@sha256:…` → (`docker.io/library/nginx`, `1.27`).
fn split_image(name: &str) -> (&str, Option<&str>) {
    let name = name.split_once('@').map_or(name, |(n, _)| n);
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag)),
        _ => (name, None),
    }
}

/// A kprobe argument (`{"file_arg": {"path": …}}`, `{"size_arg": "627"}`, …) as one value.
fn arg_value(arg: &serde_json::Value) -> FieldValue {
    use serde_json::Value;
    let inner = match arg {
        Value::Object(m) => m
            .iter()
            .find(|(k, _)| k.ends_with("_arg"))
            .map(|(_, v)| v)
            .unwrap_or(arg),
        other => other,
    };
    match inner {
        Value::Null => FieldValue::Null,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => FieldValue::I64(i),
            (None, Some(u), _) => FieldValue::from(u),
            (None, None, Some(f)) => FieldValue::F64(f),
            _ => FieldValue::Str(n.to_string().into()),
        },
        Value::String(s) => number_from_text_if_numeric(s),
        Value::Object(m) => match m.get("path").and_then(Value::as_str) {
            Some(path) => FieldValue::Str(path.into()),
            None => FieldValue::Str(inner.to_string().into()),
        },
        Value::Array(items) => FieldValue::List(items.iter().map(arg_value).collect()),
    }
}

fn number_from_text_if_numeric(s: &str) -> FieldValue {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        number_from_text(s)
    } else {
        FieldValue::Str(s.into())
    }
}

/// The path of a `file_arg` / `path_arg`, Falco's `fd.name`.
fn arg_path(arg: &serde_json::Value) -> Option<&str> {
    ["file_arg", "path_arg"]
        .iter()
        .find_map(|k| arg.get(k)?.get("path")?.as_str())
        .filter(|p| !p.is_empty())
}
