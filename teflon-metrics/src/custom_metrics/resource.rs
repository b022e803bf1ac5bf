//! What is served: API versions, metrics and the resources they describe.

use teflon_core::WorkloadKind;

use crate::names::{ATTACK_PRESSURE, INFECTED_PODS, INFECTION_RATE_PER_MINUTE, POD_INFECTED};

/// The API group served.
pub const GROUP: &str = "custom.metrics.k8s.io";

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

    pub(super) fn workload_kind(self) -> Option<WorkloadKind> {
        match self {
            MetricResource::Deployments => Some(WorkloadKind::Deployment),
            MetricResource::StatefulSets => Some(WorkloadKind::StatefulSet),
            MetricResource::Pods | MetricResource::Namespaces => None,
        }
    }
}
