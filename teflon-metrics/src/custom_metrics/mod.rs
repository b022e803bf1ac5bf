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
//!
//! One module per job: `resource` (versions, metrics, resources), `quantity`, `query`
//! (the query string), `values` (the samples) and `wire` (the JSON bodies).

use teflon_core::ClusterView;

use crate::snapshot::AttackSnapshot;

mod quantity;
mod query;
mod resource;
mod values;
mod wire;

pub use quantity::{format_milli_quantity, format_quantity};
pub use query::{MetricQuery, percent_decode};
pub use resource::{ApiVersion, CustomMetric, GROUP, MetricResource};
/// Label selectors: one module for the project, in teflon-core.
pub use teflon_core::selector::{Selector, SelectorError, StructuredSelector};
pub use wire::{api_group, discovery, not_found, status};

/// The autoscaler's replica changes (kept here for the callers that read them from here).
pub use crate::autoscale::AutoscaleChanged;
/// The metric names served, spelled once in [`crate::names`].
pub use crate::names::{ATTACK_PRESSURE, INFECTED_PODS, INFECTION_RATE_PER_MINUTE, POD_INFECTED};

use values::{Ctx, namespace_metric, pod_metric, workload_metric};
use wire::metric_not_found;

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

/// The window the snapshot's rates are computed over, in whole seconds (`windowSeconds`).
pub fn window_seconds(snapshot: &AttackSnapshot) -> u64 {
    snapshot.window.as_secs()
}
