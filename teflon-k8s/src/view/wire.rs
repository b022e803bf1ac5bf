//! What the view decodes from the API server: the few fields that decisions, guards and metrics
//! read, nothing more.
//!
//! Each type here is a [`kube::Resource`] (through k8s-openapi's `Resource` + `Metadata`) with
//! the URL of the real kind, so `Api<PodWire>` lists and watches `/api/v1/pods`; its
//! `Deserialize` keeps a handful of fields and lets serde skip the rest of the object (managed
//! fields, containers, container statuses, annotations, volumes…) without allocating it. The
//! whole object is never built, not even for a moment: that is what keeps the initial list of a
//! big cluster cheap.
//!
//! `metadata` holds only what the watcher itself reads (name, namespace, UID,
//! `resourceVersion`); labels, the controller reference and the rest are plain fields.

use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// A controller owner reference (`controller: true`), as resolution needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Controller {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnerRaw {
    api_version: String,
    kind: String,
    name: String,
    #[serde(default)]
    controller: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaRaw {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerRaw>>,
    /// Only whether it is set matters.
    #[serde(default)]
    deletion_timestamp: Option<IgnoredAny>,
}

impl MetaRaw {
    fn identity(&mut self) -> ObjectMeta {
        ObjectMeta {
            name: self.name.take(),
            namespace: self.namespace.take(),
            uid: self.uid.take(),
            resource_version: self.resource_version.take(),
            ..ObjectMeta::default()
        }
    }

    /// The first owner reference with `controller: true`, as `metav1.GetControllerOf` does.
    fn controller(&mut self) -> Option<Controller> {
        self.owner_references
            .take()?
            .into_iter()
            .find(|o| o.controller == Some(true))
            .map(|o| Controller {
                api_version: o.api_version,
                kind: o.kind,
                name: o.name,
            })
    }
}

/// The identity part of full metadata (what `MetaRaw::identity` keeps).
fn identity_of(meta: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectMeta::default()
    }
}

fn controller_of_full(meta: &ObjectMeta) -> Option<Controller> {
    super::controller_of(meta).map(|o| Controller {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        name: o.name.clone(),
    })
}

/// A pod: identity, labels, controller, readiness, phase, deletion, node.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "PodRaw")]
pub(crate) struct PodWire {
    pub(crate) metadata: ObjectMeta,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) controller: Option<Controller>,
    /// `metadata.deletionTimestamp` is set.
    pub(crate) terminating: bool,
    /// `spec.nodeName`.
    pub(crate) node: Option<String>,
    /// `status.phase`.
    pub(crate) phase: Option<String>,
    /// The `Ready` condition is `True`.
    pub(crate) ready: bool,
}

#[derive(Deserialize)]
struct PodRaw {
    #[serde(default)]
    metadata: MetaRaw,
    #[serde(default)]
    spec: Option<PodSpecRaw>,
    #[serde(default)]
    status: Option<PodStatusRaw>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpecRaw {
    #[serde(default)]
    node_name: Option<String>,
}

#[derive(Deserialize)]
struct PodStatusRaw {
    #[serde(default)]
    phase: Option<String>,
    #[serde(default)]
    conditions: Option<Vec<ConditionRaw>>,
}

#[derive(Deserialize)]
struct ConditionRaw {
    #[serde(rename = "type")]
    type_: String,
    status: String,
}

impl From<PodRaw> for PodWire {
    fn from(mut raw: PodRaw) -> Self {
        let ready = raw
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        PodWire {
            metadata: raw.metadata.identity(),
            labels: raw.metadata.labels.take().unwrap_or_default(),
            controller: raw.metadata.controller(),
            terminating: raw.metadata.deletion_timestamp.is_some(),
            node: raw.spec.and_then(|s| s.node_name),
            phase: raw.status.and_then(|s| s.phase),
            ready,
        }
    }
}

impl PodWire {
    /// The same fields, read from a full object (a pod fetched by GET, a snapshot, a test).
    pub(crate) fn from_pod(pod: &Pod) -> Self {
        PodWire {
            metadata: identity_of(&pod.metadata),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            controller: controller_of_full(&pod.metadata),
            terminating: super::is_terminating(pod),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            phase: pod.status.as_ref().and_then(|s| s.phase.clone()),
            ready: super::is_pod_ready(pod),
        }
    }
}

#[derive(Deserialize, Default)]
struct ReplicasRaw {
    #[serde(default)]
    replicas: Option<i32>,
}

/// A ReplicaSet: the Deployment above it and `spec.replicas`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "ReplicaSetRaw")]
pub(crate) struct ReplicaSetWire {
    pub(crate) metadata: ObjectMeta,
    pub(crate) controller: Option<Controller>,
    pub(crate) replicas: Option<i32>,
}

#[derive(Deserialize)]
struct ReplicaSetRaw {
    #[serde(default)]
    metadata: MetaRaw,
    #[serde(default)]
    spec: Option<ReplicasRaw>,
}

impl From<ReplicaSetRaw> for ReplicaSetWire {
    fn from(mut raw: ReplicaSetRaw) -> Self {
        ReplicaSetWire {
            metadata: raw.metadata.identity(),
            controller: raw.metadata.controller(),
            replicas: raw.spec.and_then(|s| s.replicas),
        }
    }
}

/// A Deployment or StatefulSet: its own labels and `spec.replicas`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "ScaledRaw")]
pub(crate) struct ScaledWire {
    pub(crate) metadata: ObjectMeta,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) replicas: Option<i32>,
}

#[derive(Deserialize)]
struct ScaledRaw {
    #[serde(default)]
    metadata: MetaRaw,
    #[serde(default)]
    spec: Option<ReplicasRaw>,
}

impl From<ScaledRaw> for ScaledWire {
    fn from(mut raw: ScaledRaw) -> Self {
        ScaledWire {
            metadata: raw.metadata.identity(),
            labels: raw.metadata.labels.take().unwrap_or_default(),
            replicas: raw.spec.and_then(|s| s.replicas),
        }
    }
}

/// The same shape for both kinds, told apart by the `Api` that fetched them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub(crate) struct DeploymentWire(pub(crate) ScaledWire);

/// See [`DeploymentWire`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub(crate) struct StatefulSetWire(pub(crate) ScaledWire);

/// A DaemonSet: its own labels and `status.desiredNumberScheduled` (0 without a status).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "DaemonSetRaw")]
pub(crate) struct DaemonSetWire {
    pub(crate) metadata: ObjectMeta,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) desired_scheduled: i32,
}

#[derive(Deserialize)]
struct DaemonSetRaw {
    #[serde(default)]
    metadata: MetaRaw,
    #[serde(default)]
    status: Option<DaemonSetStatusRaw>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DaemonSetStatusRaw {
    #[serde(default)]
    desired_number_scheduled: i32,
}

impl From<DaemonSetRaw> for DaemonSetWire {
    fn from(mut raw: DaemonSetRaw) -> Self {
        DaemonSetWire {
            metadata: raw.metadata.identity(),
            labels: raw.metadata.labels.take().unwrap_or_default(),
            desired_scheduled: raw.status.map_or(0, |s| s.desired_number_scheduled),
        }
    }
}

/// A PodDisruptionBudget: its selector and `status.disruptionsAllowed` (0 without a status).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "PdbRaw")]
pub(crate) struct PdbWire {
    pub(crate) metadata: ObjectMeta,
    /// `None`: no selector, which in policy/v1 selects no pod.
    pub(crate) selector: Option<LabelSelector>,
    pub(crate) disruptions_allowed: i32,
}

#[derive(Deserialize)]
struct PdbRaw {
    #[serde(default)]
    metadata: MetaRaw,
    #[serde(default)]
    spec: Option<PdbSpecRaw>,
    #[serde(default)]
    status: Option<PdbStatusRaw>,
}

#[derive(Deserialize)]
struct PdbSpecRaw {
    #[serde(default)]
    selector: Option<LabelSelector>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PdbStatusRaw {
    #[serde(default)]
    disruptions_allowed: Option<i32>,
}

impl From<PdbRaw> for PdbWire {
    fn from(mut raw: PdbRaw) -> Self {
        PdbWire {
            metadata: raw.metadata.identity(),
            selector: raw.spec.and_then(|s| s.selector),
            disruptions_allowed: raw.status.and_then(|s| s.disruptions_allowed).unwrap_or(0),
        }
    }
}

/// The URL, kind and metadata accessors of the real kind `$full` for the wire type `$wire`.
macro_rules! resource_as {
    ($wire:ty, $full:ty, $($meta:tt)+) => {
        impl k8s_openapi::Resource for $wire {
            const API_VERSION: &'static str = <$full as k8s_openapi::Resource>::API_VERSION;
            const GROUP: &'static str = <$full as k8s_openapi::Resource>::GROUP;
            const KIND: &'static str = <$full as k8s_openapi::Resource>::KIND;
            const VERSION: &'static str = <$full as k8s_openapi::Resource>::VERSION;
            const URL_PATH_SEGMENT: &'static str =
                <$full as k8s_openapi::Resource>::URL_PATH_SEGMENT;
            type Scope = NamespaceResourceScope;
        }

        impl k8s_openapi::Metadata for $wire {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.$($meta)+
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.$($meta)+
            }
        }
    };
}

resource_as!(PodWire, Pod, metadata);
resource_as!(ReplicaSetWire, ReplicaSet, metadata);
resource_as!(DeploymentWire, Deployment, 0.metadata);
resource_as!(StatefulSetWire, StatefulSet, 0.metadata);
resource_as!(DaemonSetWire, DaemonSet, metadata);
resource_as!(PdbWire, PodDisruptionBudget, metadata);

/// Decode a full object into its wire form through JSON, the path live objects take. A
/// k8s-openapi object always serializes to JSON its own kind's wire type reads; the error is
/// kept for the caller to report rather than assumed away.
pub(crate) fn from_full<Full, Wire>(object: &Full) -> Result<Wire, serde_json::Error>
where
    Full: serde::Serialize,
    Wire: serde::de::DeserializeOwned,
{
    serde_json::to_value(object).and_then(serde_json::from_value)
}
