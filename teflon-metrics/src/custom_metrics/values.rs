//! The values served: one sample per object, read from the attack snapshot and the cluster.

use std::collections::BTreeMap;

use teflon_core::selector::{Selector, StructuredSelector};
use teflon_core::{ClusterView, PodSummary, WorkloadRef, WorkloadStats};

use super::quantity::format_quantity;
use super::resource::{ApiVersion, CustomMetric, MetricResource};
use super::wire::{
    Empty, MetricIdentifier, MetricValueItem, MetricValueList, MetricValueV1Beta1,
    MetricValueV1Beta2, ObjectReference, metric_not_found, rfc3339_seconds, to_json,
};
use crate::snapshot::AttackSnapshot;

pub(super) struct Sample {
    pub(super) object: ObjectReference,
    pub(super) value: f64,
}

pub(super) struct Ctx<'a> {
    pub(super) version: ApiVersion,
    pub(super) snapshot: &'a AttackSnapshot,
    pub(super) metric: CustomMetric,
    pub(super) metric_selector: Option<StructuredSelector>,
}

impl Ctx<'_> {
    pub(super) fn list(&self, samples: Vec<Sample>) -> (u16, String) {
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

pub(super) fn namespace_metric<'a>(
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

pub(super) fn pod_metric(
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

pub(super) fn workload_metric(
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
