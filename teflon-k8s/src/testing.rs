//! Builders for k8s-openapi objects in unit tests.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetStatus, Deployment, DeploymentSpec, ReplicaSet,
    ReplicaSetSpec, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};

use std::collections::BTreeMap;

pub(crate) fn label_map<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

pub(crate) fn meta(ns: &str, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.to_owned()),
        name: Some(name.to_owned()),
        uid: Some(format!("uid-{name}")),
        labels: if labels.is_empty() {
            None
        } else {
            Some(label_map(labels.iter().copied()))
        },
        ..ObjectMeta::default()
    }
}

pub(crate) fn owner(api_version: &str, kind: &str, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        uid: format!("uid-{name}"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

pub(crate) fn selector(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(label_map(labels.iter().copied())),
        match_expressions: None,
    }
}

/// A pod builder.
#[derive(Debug, Clone)]
pub(crate) struct PodB(pub Pod);

impl PodB {
    pub(crate) fn new(ns: &str, name: &str) -> Self {
        PodB(Pod {
            metadata: meta(ns, name, &[]),
            ..Pod::default()
        })
    }
    pub(crate) fn labels(mut self, labels: &[(&str, &str)]) -> Self {
        let l = self.0.metadata.labels.get_or_insert_default();
        for (k, v) in labels {
            l.insert((*k).to_owned(), (*v).to_owned());
        }
        self
    }
    pub(crate) fn uid(mut self, uid: &str) -> Self {
        self.0.metadata.uid = Some(uid.to_owned());
        self
    }
    pub(crate) fn owned_by(mut self, api_version: &str, kind: &str, name: &str) -> Self {
        self.0
            .metadata
            .owner_references
            .get_or_insert_default()
            .push(owner(api_version, kind, name));
        self
    }
    pub(crate) fn rs(self, name: &str) -> Self {
        self.owned_by("apps/v1", "ReplicaSet", name)
    }
    pub(crate) fn ready(mut self, ready: bool) -> Self {
        self.0.status = Some(PodStatus {
            phase: Some("Running".to_owned()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: if ready { "True" } else { "False" }.to_owned(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        self
    }
    pub(crate) fn terminating(mut self) -> Self {
        self.0.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        self
    }
    pub(crate) fn node(mut self, node: &str) -> Self {
        self.0.spec.get_or_insert_default().node_name = Some(node.to_owned());
        self
    }
    pub(crate) fn build(self) -> Pod {
        self.0
    }
}

pub(crate) fn replica_set(
    ns: &str,
    name: &str,
    deployment: Option<&str>,
    sel: &[(&str, &str)],
) -> ReplicaSet {
    let mut m = meta(ns, name, sel);
    if let Some(d) = deployment {
        m.owner_references = Some(vec![owner("apps/v1", "Deployment", d)]);
    }
    ReplicaSet {
        metadata: m,
        spec: ReplicaSetSpec {
            replicas: Some(3),
            selector: selector(sel),
            ..ReplicaSetSpec::default()
        },
        status: None,
    }
}

pub(crate) fn deployment(ns: &str, name: &str, replicas: i32, sel: &[(&str, &str)]) -> Deployment {
    Deployment {
        metadata: meta(ns, name, &[]),
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: selector(sel),
            ..DeploymentSpec::default()
        },
        status: None,
    }
}

pub(crate) fn stateful_set(ns: &str, name: &str, replicas: Option<i32>) -> StatefulSet {
    StatefulSet {
        metadata: meta(ns, name, &[]),
        spec: StatefulSetSpec {
            replicas,
            selector: selector(&[("app", name)]),
            ..StatefulSetSpec::default()
        },
        status: None,
    }
}

pub(crate) fn daemon_set(ns: &str, name: &str, desired_scheduled: i32) -> DaemonSet {
    DaemonSet {
        metadata: meta(ns, name, &[]),
        spec: DaemonSetSpec {
            selector: selector(&[("app", name)]),
            ..DaemonSetSpec::default()
        },
        status: Some(DaemonSetStatus {
            desired_number_scheduled: desired_scheduled,
            // Stale on purpose: the view must not trust it.
            number_ready: 99,
            ..DaemonSetStatus::default()
        }),
    }
}

pub(crate) fn pdb(
    ns: &str,
    name: &str,
    sel: Option<LabelSelector>,
    allowed: i32,
) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(ns, name, &[]),
        spec: Some(PodDisruptionBudgetSpec {
            selector: sel,
            ..PodDisruptionBudgetSpec::default()
        }),
        status: Some(PodDisruptionBudgetStatus {
            disruptions_allowed: Some(allowed),
            ..PodDisruptionBudgetStatus::default()
        }),
    }
}
