//! Values and response bodies of the `custom.metrics.k8s.io` API (SPEC §8).
//!
//! Everything here is pure: [`handle`] maps a request path and query to a status code and a
//! JSON body, reading an [`AttackSnapshot`] and a [`ClusterView`]. The HTTPS listener in
//! teflon-server only moves bytes. Shapes follow what adapters built on
//! `sigs.k8s.io/custom-metrics-apiserver` answer (see `tests/fixtures/SOURCES.md`):
//!
//! - `v1beta2` items carry `metric: {name, selector}` and `windowSeconds`;
//! - `v1beta1` items carry `metricName` and spell the window `window` (its Go struct tag);
//! - values are Kubernetes quantities in canonical decimal-SI form (`"3"`, `"1500m"`, `"2k"`);
//! - a by-name request for an object the cluster does not have is a `Status` 404, never an
//!   empty list: the HPA controller keys object metrics by `describedObject.name`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use teflon_core::{ClusterView, PodSummary, WorkloadKind, WorkloadRef, WorkloadStats};

use crate::snapshot::AttackSnapshot;

/// The API group served.
pub const GROUP: &str = "custom.metrics.k8s.io";

/// The attack rate per minute over the time observed (workloads, namespaces).
pub const INFECTION_RATE_PER_MINUTE: &str = "teflon_infection_rate_per_minute";
/// Replicas needed ÷ current replicas (workloads).
pub const ATTACK_PRESSURE: &str = "teflon_attack_pressure";
/// Pods currently infected (workloads).
pub const INFECTED_PODS: &str = "teflon_infected_pods";
/// 1 when the pod is infected, else 0 (pods).
pub const POD_INFECTED: &str = "teflon_pod_infected";

/// Counter `{namespace, workload, direction}`: replica changes made by Teflon's autoscaler
/// (`direction` is `up` or `down`). Kept beside the values the autoscaler follows; the
/// exporter describes it with the others.
pub const AUTOSCALE_CHANGES_TOTAL: &str = "teflon_autoscale_changes_total";

/// The autoscaler changed a workload's replicas.
#[derive(Debug, Clone, Copy)]
pub struct AutoscaleChanged<'a> {
    /// The workload.
    pub workload: &'a WorkloadRef,
    /// Replicas before.
    pub from: u32,
    /// Replicas after.
    pub to: u32,
}

impl AutoscaleChanged<'_> {
    /// `up` or `down`.
    pub fn direction(&self) -> &'static str {
        if self.to >= self.from { "up" } else { "down" }
    }

    /// Count it.
    pub fn emit(self) {
        metrics::counter!(
            AUTOSCALE_CHANGES_TOTAL,
            crate::names::label::NAMESPACE => self.workload.namespace.clone(),
            crate::names::label::WORKLOAD => self.workload.name.clone(),
            "direction" => self.direction()
        )
        .increment(1);
    }
}

/// A served version of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    /// `custom.metrics.k8s.io/v1beta1` (`metricName`, `window`).
    V1Beta1,
    /// `custom.metrics.k8s.io/v1beta2` (`metric: {name, selector}`, `windowSeconds`).
    V1Beta2,
}

impl ApiVersion {
    /// Every served version, preferred first.
    pub const ALL: [ApiVersion; 2] = [ApiVersion::V1Beta2, ApiVersion::V1Beta1];

    /// `v1beta1` or `v1beta2`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1Beta1 => "v1beta1",
            ApiVersion::V1Beta2 => "v1beta2",
        }
    }

    /// `custom.metrics.k8s.io/<version>`.
    pub fn group_version(self) -> &'static str {
        match self {
            ApiVersion::V1Beta1 => "custom.metrics.k8s.io/v1beta1",
            ApiVersion::V1Beta2 => "custom.metrics.k8s.io/v1beta2",
        }
    }

    /// The version named by a path segment.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "v1beta1" => Some(ApiVersion::V1Beta1),
            "v1beta2" => Some(ApiVersion::V1Beta2),
            _ => None,
        }
    }
}

/// A metric Teflon serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomMetric {
    /// [`INFECTION_RATE_PER_MINUTE`].
    InfectionRatePerMinute,
    /// [`ATTACK_PRESSURE`].
    AttackPressure,
    /// [`INFECTED_PODS`].
    InfectedPods,
    /// [`POD_INFECTED`].
    PodInfected,
}

impl CustomMetric {
    /// Every metric.
    pub const ALL: [CustomMetric; 4] = [
        CustomMetric::InfectionRatePerMinute,
        CustomMetric::AttackPressure,
        CustomMetric::InfectedPods,
        CustomMetric::PodInfected,
    ];

    /// The metric name.
    pub fn name(self) -> &'static str {
        match self {
            CustomMetric::InfectionRatePerMinute => INFECTION_RATE_PER_MINUTE,
            CustomMetric::AttackPressure => ATTACK_PRESSURE,
            CustomMetric::InfectedPods => INFECTED_PODS,
            CustomMetric::PodInfected => POD_INFECTED,
        }
    }

    /// The metric with this name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s)
    }

    /// True when the metric is served for objects of `resource`.
    pub fn applies_to(self, resource: MetricResource) -> bool {
        match resource {
            MetricResource::Deployments | MetricResource::StatefulSets => matches!(
                self,
                CustomMetric::InfectionRatePerMinute
                    | CustomMetric::AttackPressure
                    | CustomMetric::InfectedPods
            ),
            MetricResource::Pods => self == CustomMetric::PodInfected,
            MetricResource::Namespaces => self == CustomMetric::InfectionRatePerMinute,
        }
    }

    /// True for values computed over the sliding window (they carry `windowSeconds`).
    pub fn is_windowed(self) -> bool {
        matches!(
            self,
            CustomMetric::InfectionRatePerMinute | CustomMetric::AttackPressure
        )
    }
}

/// A resource metrics are described for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricResource {
    /// `deployments.apps`.
    Deployments,
    /// `statefulsets.apps`.
    StatefulSets,
    /// `pods`.
    Pods,
    /// `namespaces` (root-scoped).
    Namespaces,
}

impl MetricResource {
    /// Every resource, in discovery order.
    pub const ALL: [MetricResource; 4] = [
        MetricResource::Pods,
        MetricResource::Deployments,
        MetricResource::StatefulSets,
        MetricResource::Namespaces,
    ];

    /// The group-qualified resource, as the HPA controller spells it in paths.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricResource::Deployments => "deployments.apps",
            MetricResource::StatefulSets => "statefulsets.apps",
            MetricResource::Pods => "pods",
            MetricResource::Namespaces => "namespaces",
        }
    }

    /// The resource named by a path segment (the group may be left out).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "deployments.apps" | "deployments" => Some(MetricResource::Deployments),
            "statefulsets.apps" | "statefulsets" => Some(MetricResource::StatefulSets),
            "pods" => Some(MetricResource::Pods),
            "namespaces" => Some(MetricResource::Namespaces),
            _ => None,
        }
    }

    /// The object kind (`describedObject.kind`).
    pub fn kind(self) -> &'static str {
        match self {
            MetricResource::Deployments => "Deployment",
            MetricResource::StatefulSets => "StatefulSet",
            MetricResource::Pods => "Pod",
            MetricResource::Namespaces => "Namespace",
        }
    }

    /// `describedObject.apiVersion`, written `group/version` as the apiserver library does
    /// (so the core group is `/v1`, as in the v1beta2 fixture).
    pub fn described_api_version(self) -> &'static str {
        match self {
            MetricResource::Deployments | MetricResource::StatefulSets => "apps/v1",
            MetricResource::Pods | MetricResource::Namespaces => "/v1",
        }
    }

    /// Namespaced resources (everything but `namespaces`).
    pub fn namespaced(self) -> bool {
        self != MetricResource::Namespaces
    }

    fn workload_kind(self) -> Option<WorkloadKind> {
        match self {
            MetricResource::Deployments => Some(WorkloadKind::Deployment),
            MetricResource::StatefulSets => Some(WorkloadKind::StatefulSet),
            MetricResource::Pods | MetricResource::Namespaces => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quantities
// ---------------------------------------------------------------------------------------------

/// A value as a Kubernetes quantity in canonical decimal-SI form, rounded to the nearest
/// milli-unit: `3` → `"3"`, `1.5` → `"1500m"`, `0.0004` → `"0"`, `2000` → `"2k"`.
///
/// Not-a-number counts as 0; infinities and values beyond the range of `i64` milli-units are
/// clamped (the HPA only needs to see "very large").
pub fn format_quantity(value: f64) -> String {
    let milli = if value.is_nan() {
        0
    } else {
        // `as` saturates for out-of-range floats, which is the clamp we want.
        (value * 1000.0).round() as i64
    };
    format_milli_quantity(milli)
}

/// A quantity of `milli` thousandths, in canonical decimal-SI form.
pub fn format_milli_quantity(milli: i64) -> String {
    if milli == 0 {
        return "0".to_owned();
    }
    let negative = milli < 0;
    let mut mantissa = milli.unsigned_abs();
    // Exponents of 10³ from milli (index 0) upward, as resource.Quantity canonicalizes.
    const SUFFIXES: [&str; 8] = ["m", "", "k", "M", "G", "T", "P", "E"];
    let mut exp = 0;
    while exp + 1 < SUFFIXES.len() && mantissa.is_multiple_of(1000) {
        mantissa /= 1000;
        exp += 1;
    }
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    let _ = write!(out, "{mantissa}{}", SUFFIXES[exp]);
    out
}

// Label selectors: one module for the project, in teflon-core.
pub use teflon_core::selector::{Selector, SelectorError, StructuredSelector};

// ---------------------------------------------------------------------------------------------
// Response bodies
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiResourceList {
    kind: &'static str,
    api_version: &'static str,
    group_version: &'static str,
    resources: Vec<ApiResource>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiResource {
    name: String,
    singular_name: &'static str,
    namespaced: bool,
    kind: &'static str,
    verbs: [&'static str; 1],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiGroup {
    kind: &'static str,
    api_version: &'static str,
    name: &'static str,
    versions: Vec<GroupVersionForDiscovery>,
    preferred_version: GroupVersionForDiscovery,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupVersionForDiscovery {
    group_version: &'static str,
    version: &'static str,
}

#[derive(Debug, Default, Serialize)]
struct Empty {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricValueList {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    items: Vec<MetricValueItem>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum MetricValueItem {
    V1Beta1(MetricValueV1Beta1),
    V1Beta2(MetricValueV1Beta2),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricValueV1Beta1 {
    described_object: ObjectReference,
    metric_name: &'static str,
    timestamp: String,
    // The v1beta1 Go struct tag is `json:"window,omitempty"`.
    #[serde(rename = "window", skip_serializing_if = "Option::is_none")]
    window_seconds: Option<u64>,
    value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricValueV1Beta2 {
    described_object: ObjectReference,
    metric: MetricIdentifier,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_seconds: Option<u64>,
    value: String,
}

#[derive(Debug, Serialize)]
struct MetricIdentifier {
    name: &'static str,
    selector: Option<StructuredSelector>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ObjectReference {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
    api_version: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    status: &'static str,
    message: String,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<StatusDetails>,
    code: u16,
}

#[derive(Debug, Serialize)]
struct StatusDetails {
    name: String,
    group: &'static str,
    kind: String,
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing these plain structs cannot fail; answer a bare Status if it ever does.
    serde_json::to_string(value).unwrap_or_else(|_| {
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","reason":"InternalError","code":500}"#
            .to_owned()
    })
}

/// The `APIResourceList` served at `/apis/custom.metrics.k8s.io/<version>`: one resource per
/// (resource, metric) pair.
pub fn discovery(version: ApiVersion) -> String {
    let mut resources = Vec::new();
    for resource in MetricResource::ALL {
        for metric in CustomMetric::ALL {
            if metric.applies_to(resource) {
                resources.push(ApiResource {
                    name: format!("{}/{}", resource.as_str(), metric.name()),
                    singular_name: "",
                    namespaced: resource.namespaced(),
                    kind: "MetricValueList",
                    verbs: ["get"],
                });
            }
        }
    }
    to_json(&ApiResourceList {
        kind: "APIResourceList",
        api_version: "v1",
        group_version: version.group_version(),
        resources,
    })
}

/// The `APIGroup` served at `/apis/custom.metrics.k8s.io` (the aggregator usually answers
/// this itself; served for direct clients).
pub fn api_group() -> String {
    let gv = |v: ApiVersion| GroupVersionForDiscovery {
        group_version: v.group_version(),
        version: v.as_str(),
    };
    to_json(&ApiGroup {
        kind: "APIGroup",
        api_version: "v1",
        name: GROUP,
        versions: ApiVersion::ALL.into_iter().map(gv).collect(),
        preferred_version: gv(ApiVersion::V1Beta2),
    })
}

/// A `Status` 404 body.
pub fn not_found(message: impl Into<String>, name: &str, kind: &str) -> String {
    to_json(&Status {
        kind: "Status",
        api_version: "v1",
        metadata: Empty {},
        status: "Failure",
        message: message.into(),
        reason: "NotFound",
        details: Some(StatusDetails {
            name: name.to_owned(),
            group: GROUP,
            kind: kind.to_owned(),
        }),
        code: 404,
    })
}

/// A `Status` body for any other failure (`reason` as Kubernetes spells it: `BadRequest`,
/// `MethodNotAllowed`, `Unauthorized`…).
pub fn status(code: u16, reason: &'static str, message: impl Into<String>) -> String {
    to_json(&Status {
        kind: "Status",
        api_version: "v1",
        metadata: Empty {},
        status: "Failure",
        message: message.into(),
        reason,
        details: None,
        code,
    })
}

fn metric_not_found(metric: &str, resource: &str, name: &str) -> (u16, String) {
    (
        404,
        not_found(
            format!("the server could not find the metric {metric} for {resource} {name}"),
            metric,
            resource,
        ),
    )
}

/// `metav1.Time`: RFC 3339, UTC, whole seconds.
fn rfc3339_seconds(at: teflon_core::Timestamp) -> String {
    let full = at.to_rfc3339();
    match full.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => full,
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Decode `%XX` escapes (and `+` as a space when `plus_is_space`); invalid escapes stay as
/// they are, invalid UTF-8 is replaced.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameters this API reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricQuery {
    /// `labelSelector`: which objects (for `*` requests).
    pub label_selector: Option<String>,
    /// `metricLabelSelector`: which series of the metric (echoed in `metric.selector`).
    pub metric_label_selector: Option<String>,
}

impl MetricQuery {
    /// Read a raw query string (`labelSelector=app%3Dweb&…`).
    pub fn parse(query: &str) -> Self {
        let mut q = MetricQuery::default();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match percent_decode(k, true).as_str() {
                "labelSelector" => q.label_selector = Some(percent_decode(v, true)),
                "metricLabelSelector" => q.metric_label_selector = Some(percent_decode(v, true)),
                _ => {}
            }
        }
        q
    }
}

struct Sample {
    object: ObjectReference,
    value: f64,
}

struct Ctx<'a> {
    version: ApiVersion,
    snapshot: &'a AttackSnapshot,
    metric: CustomMetric,
    metric_selector: Option<StructuredSelector>,
}

impl Ctx<'_> {
    fn list(&self, samples: Vec<Sample>) -> (u16, String) {
        let timestamp = rfc3339_seconds(self.snapshot.at);
        let window = if self.metric.is_windowed() {
            Some(self.snapshot.window.as_secs())
        } else {
            None
        };
        let items = samples
            .into_iter()
            .map(|s| match self.version {
                ApiVersion::V1Beta1 => MetricValueItem::V1Beta1(MetricValueV1Beta1 {
                    described_object: s.object,
                    metric_name: self.metric.name(),
                    timestamp: timestamp.clone(),
                    window_seconds: window,
                    value: format_quantity(s.value),
                }),
                ApiVersion::V1Beta2 => MetricValueItem::V1Beta2(MetricValueV1Beta2 {
                    described_object: s.object,
                    metric: MetricIdentifier {
                        name: self.metric.name(),
                        selector: self.metric_selector.clone(),
                    },
                    timestamp: timestamp.clone(),
                    window_seconds: window,
                    value: format_quantity(s.value),
                }),
            })
            .collect();
        (
            200,
            to_json(&MetricValueList {
                kind: "MetricValueList",
                api_version: self.version.group_version(),
                metadata: Empty {},
                items,
            }),
        )
    }
}

/// The value of an object metric for a workload: from the snapshot's stats, with attack
/// pressure recomputed against the cluster's current desired replicas (the HPA multiplies it by
/// the current replicas, so a stale denominator would make it overshoot).
fn workload_value(metric: CustomMetric, stats: Option<&WorkloadStats>, desired_now: u32) -> f64 {
    let Some(s) = stats else {
        return 0.0;
    };
    match metric {
        CustomMetric::InfectionRatePerMinute => s.infection_rate_per_minute,
        CustomMetric::AttackPressure => {
            f64::from(s.replicas_needed) / f64::from(desired_now.max(1))
        }
        CustomMetric::InfectedPods => f64::from(s.infected_pods),
        CustomMetric::PodInfected => 0.0,
    }
}

fn parse_selector(raw: Option<&str>) -> Result<Selector, (u16, String)> {
    match raw {
        None => Ok(Selector::everything()),
        Some(s) => Selector::parse(s).map_err(|e| (400, status(400, "BadRequest", e.to_string()))),
    }
}

/// Answer one `GET` of the custom-metrics API: `path` as requested (with
/// `/apis/custom.metrics.k8s.io/` in front; percent-escapes allowed), `query` the raw query
/// string. Returns the HTTP status and the JSON body. Never panics on input.
pub fn handle(
    path: &str,
    query: Option<&str>,
    snapshot: &AttackSnapshot,
    cluster: &dyn ClusterView,
) -> (u16, String) {
    let query = MetricQuery::parse(query.unwrap_or(""));
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let not_served = || {
        (
            404,
            status(
                404,
                "NotFound",
                format!("the server could not find the requested resource {path}"),
            ),
        )
    };
    let rest = match segs.as_slice() {
        ["apis", GROUP] => return (200, api_group()),
        ["apis", GROUP, version, rest @ ..] => match ApiVersion::parse(version) {
            Some(v) => (v, rest),
            None => return not_served(),
        },
        _ => return not_served(),
    };
    let (version, rest) = rest;
    let metric_selector = match query.metric_label_selector.as_deref() {
        None => None,
        Some(raw) => match Selector::parse(raw) {
            Ok(s) if s.is_empty() => None,
            Ok(s) => Some(s.to_structured()),
            Err(e) => return (400, status(400, "BadRequest", e.to_string())),
        },
    };
    let ctx = |metric| Ctx {
        version,
        snapshot,
        metric,
        metric_selector: metric_selector.clone(),
    };
    match rest {
        [] => (200, discovery(version)),
        // Namespace metrics: `/namespaces/{ns}/metrics/{metric}`, and the root-scoped spelling
        // `/namespaces/{ns}/{metric}`.
        ["namespaces", ns, "metrics", metric] | ["namespaces", ns, metric] => {
            namespace_metric(ctx, ns, metric)
        }
        ["namespaces", ns, resource, name, metric] => {
            let Some(res) = MetricResource::parse(resource) else {
                return metric_not_found(metric, resource, name);
            };
            let Some(m) = CustomMetric::parse(metric).filter(|m| m.applies_to(res)) else {
                return metric_not_found(metric, res.as_str(), name);
            };
            let selector = match parse_selector(query.label_selector.as_deref()) {
                Ok(s) => s,
                Err(e) => return e,
            };
            match res {
                MetricResource::Pods => pod_metric(&ctx(m), cluster, ns, name, &selector),
                MetricResource::Deployments | MetricResource::StatefulSets => {
                    workload_metric(&ctx(m), cluster, res, ns, name, &selector)
                }
                MetricResource::Namespaces => metric_not_found(metric, res.as_str(), name),
            }
        }
        _ => not_served(),
    }
}

fn namespace_metric<'a>(
    ctx: impl Fn(CustomMetric) -> Ctx<'a>,
    ns: &str,
    metric: &str,
) -> (u16, String) {
    let res = MetricResource::Namespaces;
    let Some(m) = CustomMetric::parse(metric).filter(|m| m.applies_to(res)) else {
        return metric_not_found(metric, res.as_str(), ns);
    };
    if ns == "*" {
        // Listing namespaces needs a view of them, which Teflon does not keep.
        return metric_not_found(metric, res.as_str(), ns);
    }
    let c = ctx(m);
    let value = c.snapshot.namespace_rate_per_minute(ns);
    c.list(vec![Sample {
        object: ObjectReference {
            kind: res.kind(),
            namespace: None,
            name: ns.to_owned(),
            api_version: res.described_api_version(),
        },
        value,
    }])
}

fn pod_metric(
    ctx: &Ctx<'_>,
    cluster: &dyn ClusterView,
    ns: &str,
    name: &str,
    selector: &Selector,
) -> (u16, String) {
    let res = MetricResource::Pods;
    let sample = |p: &PodSummary| Sample {
        object: ObjectReference {
            kind: res.kind(),
            namespace: Some(ns.to_owned()),
            name: p.name.clone(),
            api_version: res.described_api_version(),
        },
        value: if ctx.snapshot.is_infected(ns, &p.name) {
            1.0
        } else {
            0.0
        },
    };
    let mut pods = cluster.pods_in(ns);
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    if name == "*" {
        ctx.list(
            pods.iter()
                .filter(|p| selector.matches(&p.labels))
                .map(sample)
                .collect(),
        )
    } else {
        // Views that cannot list still answer for one pod.
        let found = pods.iter().find(|p| p.name == name).cloned().or_else(|| {
            cluster.pod(ns, name).map(|info| PodSummary {
                name: name.to_owned(),
                uid: info.uid,
                labels: BTreeMap::new(),
                ready: info.ready,
                workload: info.workload,
            })
        });
        match found {
            Some(p) => ctx.list(vec![sample(&p)]),
            None => metric_not_found(ctx.metric.name(), res.as_str(), name),
        }
    }
}

fn workload_metric(
    ctx: &Ctx<'_>,
    cluster: &dyn ClusterView,
    res: MetricResource,
    ns: &str,
    name: &str,
    selector: &Selector,
) -> (u16, String) {
    let Some(kind) = res.workload_kind() else {
        return metric_not_found(ctx.metric.name(), res.as_str(), name);
    };
    let mut workloads: Vec<_> = cluster
        .workloads_in(ns)
        .into_iter()
        .filter(|w| w.workload.kind == kind)
        .collect();
    workloads.sort_by(|a, b| a.workload.name.cmp(&b.workload.name));
    let sample = |w: &teflon_core::WorkloadSummary| {
        let wref = WorkloadRef::new(kind.clone(), ns, w.workload.name.clone());
        Sample {
            object: ObjectReference {
                kind: res.kind(),
                namespace: Some(ns.to_owned()),
                name: w.workload.name.clone(),
                api_version: res.described_api_version(),
            },
            value: workload_value(ctx.metric, ctx.snapshot.workload(&wref), w.status.desired),
        }
    };
    if name == "*" {
        ctx.list(
            workloads
                .iter()
                .filter(|w| selector.matches(&w.labels))
                .map(sample)
                .collect(),
        )
    } else {
        // Views that cannot list still answer for one workload.
        let found = workloads
            .iter()
            .find(|w| w.workload.name == name)
            .cloned()
            .or_else(|| {
                let wref = WorkloadRef::new(kind.clone(), ns, name);
                cluster
                    .workload(&wref)
                    .map(|status| teflon_core::WorkloadSummary {
                        workload: wref,
                        labels: BTreeMap::new(),
                        status,
                    })
            });
        match found {
            Some(w) => ctx.list(vec![sample(&w)]),
            None => metric_not_found(ctx.metric.name(), res.as_str(), name),
        }
    }
}

/// The window the snapshot's rates are computed over, in whole seconds (`windowSeconds`).
pub fn window_seconds(snapshot: &AttackSnapshot) -> u64 {
    snapshot.window.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn integers_are_plain_and_fractions_are_milli_units() {
        assert_eq!(format_quantity(0.0), "0");
        assert_eq!(format_quantity(3.0), "3");
        assert_eq!(format_quantity(1.5), "1500m");
        assert_eq!(format_quantity(0.9), "900m");
        assert_eq!(format_quantity(0.0004), "0");
        assert_eq!(format_quantity(0.0006), "1m");
        assert_eq!(format_quantity(2.0 / 3.0), "667m");
        assert_eq!(format_quantity(-1.25), "-1250m");
    }

    #[test]
    fn quantities_take_the_canonical_decimal_si_suffix() {
        assert_eq!(format_quantity(1000.0), "1k");
        assert_eq!(format_quantity(1500.0), "1500");
        assert_eq!(format_quantity(2_000_000.0), "2M");
        assert_eq!(format_milli_quantity(1), "1m");
        assert_eq!(format_milli_quantity(1_000), "1");
    }

    #[test]
    fn non_finite_values_do_not_panic() {
        assert_eq!(format_quantity(f64::NAN), "0");
        assert!(!format_quantity(f64::INFINITY).is_empty());
        assert!(format_quantity(f64::NEG_INFINITY).starts_with('-'));
        assert!(!format_milli_quantity(i64::MIN).is_empty());
    }

    #[test]
    fn percent_escapes_and_plus_signs_are_decoded_in_queries() {
        let q = MetricQuery::parse("labelSelector=app%3Dfrontend%2Ctier+in+%28a%29&x=1");
        assert_eq!(
            q.label_selector.as_deref(),
            Some("app=frontend,tier in (a)")
        );
        assert_eq!(percent_decode("%2A", false), "*");
        assert_eq!(percent_decode("%", false), "%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%ff", false), "\u{fffd}");
    }

    proptest::proptest! {
        #[test]
        fn percent_decoding_never_panics(input in "[%0-9a-fA-F+zZ\\PC]{0,32}") {
            let _ = percent_decode(&input, true);
        }

        #[test]
        fn quantities_round_trip_to_the_nearest_milli(milli in -10_000_000i64..10_000_000) {
            let q = format_milli_quantity(milli);
            let back = if let Some(m) = q.strip_suffix('m') {
                m.parse::<i64>().unwrap()
            } else if let Some(k) = q.strip_suffix('k') {
                k.parse::<i64>().unwrap() * 1_000_000
            } else if let Some(mega) = q.strip_suffix('M') {
                mega.parse::<i64>().unwrap() * 1_000_000_000
            } else {
                q.parse::<i64>().unwrap() * 1000
            };
            proptest::prop_assert_eq!(back, milli);
        }
    }
}
