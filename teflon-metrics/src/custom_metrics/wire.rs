//! The JSON bodies of the API (discovery, `MetricValueList`, `Status`), shaped as adapters
//! built on `sigs.k8s.io/custom-metrics-apiserver` write them.

use serde::Serialize;
use teflon_core::selector::StructuredSelector;

use super::resource::{ApiVersion, CustomMetric, GROUP, MetricResource};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiResourceList {
    pub(super) kind: &'static str,
    pub(super) api_version: &'static str,
    pub(super) group_version: &'static str,
    pub(super) resources: Vec<ApiResource>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiResource {
    pub(super) name: String,
    pub(super) singular_name: &'static str,
    pub(super) namespaced: bool,
    pub(super) kind: &'static str,
    pub(super) verbs: [&'static str; 1],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ApiGroup {
    pub(super) kind: &'static str,
    pub(super) api_version: &'static str,
    pub(super) name: &'static str,
    pub(super) versions: Vec<GroupVersionForDiscovery>,
    pub(super) preferred_version: GroupVersionForDiscovery,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct GroupVersionForDiscovery {
    pub(super) group_version: &'static str,
    pub(super) version: &'static str,
}

#[derive(Debug, Default, Serialize)]
pub(super) struct Empty {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MetricValueList {
    pub(super) kind: &'static str,
    pub(super) api_version: &'static str,
    pub(super) metadata: Empty,
    pub(super) items: Vec<MetricValueItem>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum MetricValueItem {
    V1Beta1(MetricValueV1Beta1),
    V1Beta2(MetricValueV1Beta2),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MetricValueV1Beta1 {
    pub(super) described_object: ObjectReference,
    pub(super) metric_name: &'static str,
    pub(super) timestamp: String,
    // The v1beta1 Go struct tag is `json:"window,omitempty"`.
    #[serde(rename = "window", skip_serializing_if = "Option::is_none")]
    pub(super) window_seconds: Option<u64>,
    pub(super) value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MetricValueV1Beta2 {
    pub(super) described_object: ObjectReference,
    pub(super) metric: MetricIdentifier,
    pub(super) timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) window_seconds: Option<u64>,
    pub(super) value: String,
}

#[derive(Debug, Serialize)]
pub(super) struct MetricIdentifier {
    pub(super) name: &'static str,
    pub(super) selector: Option<StructuredSelector>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ObjectReference {
    pub(super) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) namespace: Option<String>,
    pub(super) name: String,
    pub(super) api_version: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Status {
    pub(super) kind: &'static str,
    pub(super) api_version: &'static str,
    pub(super) metadata: Empty,
    pub(super) status: &'static str,
    pub(super) message: String,
    pub(super) reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) details: Option<StatusDetails>,
    pub(super) code: u16,
}

#[derive(Debug, Serialize)]
pub(super) struct StatusDetails {
    pub(super) name: String,
    pub(super) group: &'static str,
    pub(super) kind: String,
}

pub(super) fn to_json<T: Serialize>(value: &T) -> String {
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

pub(super) fn metric_not_found(metric: &str, resource: &str, name: &str) -> (u16, String) {
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
pub(super) fn rfc3339_seconds(at: teflon_core::Timestamp) -> String {
    let full = at.to_rfc3339();
    match full.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => full,
    }
}
