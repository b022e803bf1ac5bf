//! Building a [`SimCluster`] from `kubectl get pods,replicasets,deployments,statefulsets,daemonsets,poddisruptionbudgets -A -o json`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::de::DeserializeOwned;
use teflon_core::selector::Selector;
use teflon_core::{WorkloadKind, WorkloadRef};

use crate::cluster::{SimCluster, SimPdb, SimPod, SimWorkload};
use crate::error::SimError;

use crate::budget::IntOrPercent;

/// A workload object of the snapshot, before pods are attached.
#[derive(Debug, Default)]
struct WorkloadObject {
    labels: BTreeMap<String, String>,
    desired: Option<u32>,
    selector_keys: BTreeSet<String>,
    /// `spec.template.metadata.labels`: new pods' labels when the List has no pod to copy.
    template: BTreeMap<String, String>,
}

/// A ReplicaSet: its top controller, `spec.replicas`, its selector's keys.
type RsInfo = (WorkloadRef, Option<i32>, BTreeSet<String>);

/// How a workload names and labels new pods: (from a live ReplicaSet, name prefix, template
/// labels, selector keys of the ReplicaSet).
type PodBase = (bool, String, BTreeMap<String, String>, BTreeSet<String>);

fn parse_item<T: DeserializeOwned>(
    index: usize,
    kind: &str,
    item: serde_json::Value,
) -> Result<T, SimError> {
    let name = item
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .to_owned();
    serde_json::from_value(item).map_err(|source| SimError::Item {
        index,
        kind: kind.to_owned(),
        name,
        source,
    })
}

fn ns_name(index: usize, kind: &str, meta: &ObjectMeta) -> Result<(String, String), SimError> {
    let name = meta.name.clone().ok_or_else(|| SimError::MissingName {
        index,
        kind: kind.to_owned(),
    })?;
    Ok((
        meta.namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        name,
    ))
}

fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

fn replicas(r: Option<i32>) -> u32 {
    u32::try_from(r.unwrap_or(1)).unwrap_or(0)
}

fn selector_keys(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> BTreeSet<String> {
    // The keys quarantine strips, as teflon-k8s strips them: removing any one deselects.
    Selector::from_api(Some(sel))
        .required_keys()
        .into_iter()
        .collect()
}

impl WorkloadObject {
    /// A controller's own labels, desired replicas, selector keys and pod-template labels.
    fn new(
        meta: ObjectMeta,
        desired: Option<u32>,
        selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
        template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    ) -> Self {
        WorkloadObject {
            labels: meta.labels.unwrap_or_default(),
            desired,
            selector_keys: selector_keys(selector),
            template: template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default(),
        }
    }
}

impl SimCluster {
    /// Build a cluster from the JSON of
    /// `kubectl get pods,replicasets,deployments,statefulsets,daemonsets,poddisruptionbudgets -A -o json`
    /// (a `v1` `List`; a single object's JSON or a typed list such as `PodList` works too).
    ///
    /// Pods are resolved to their top controller (Pod → ReplicaSet → Deployment, StatefulSet,
    /// DaemonSet; any other controller, e.g. a Job, groups the pods it owns). Desired replicas
    /// come from the workload's spec (DaemonSet: `status.desiredNumberScheduled`; controllers
    /// not in the List: the pods they own), readiness from the pods' `Ready` condition, and
    /// PodDisruptionBudgets keep their selector and `minAvailable` / `maxUnavailable`, so
    /// `disruptionsAllowed` follows the pods as they come and go. Kinds other than these are
    /// ignored.
    pub fn from_kubectl_list(json: &[u8], recovery: Duration) -> Result<Self, SimError> {
        let doc: serde_json::Value =
            serde_json::from_slice(json).map_err(|source| SimError::Json {
                line: source.line(),
                column: source.column(),
                source,
            })?;
        let kind = doc
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned();
        let items: Vec<serde_json::Value> = match doc {
            serde_json::Value::Object(mut obj) if kind.ends_with("List") => {
                match obj.remove("items") {
                    Some(serde_json::Value::Array(items)) => items,
                    Some(serde_json::Value::Null) | None => Vec::new(),
                    Some(_) => return Err(SimError::NotAList { kind }),
                }
            }
            serde_json::Value::Object(obj) if obj.contains_key("metadata") => {
                vec![serde_json::Value::Object(obj)]
            }
            _ => return Err(SimError::NotAList { kind }),
        };

        let mut cluster = SimCluster::new(recovery);
        let mut objects: BTreeMap<WorkloadRef, WorkloadObject> = BTreeMap::new();
        // ReplicaSet `ns/name` → the Deployment controlling it (or itself).
        let mut replica_sets: BTreeMap<(String, String), RsInfo> = BTreeMap::new();
        let mut pods: Vec<(usize, Pod)> = Vec::new();

        for (index, item) in items.into_iter().enumerate() {
            let kind = item
                .get("kind")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_owned();
            match kind.as_str() {
                "Pod" => pods.push((index, parse_item(index, &kind, item)?)),
                "Deployment" => {
                    let d: Deployment = parse_item(index, &kind, item)?;
                    let (ns, name) = ns_name(index, &kind, &d.metadata)?;
                    let desired = Some(replicas(d.spec.replicas));
                    objects.insert(
                        WorkloadRef::new(WorkloadKind::Deployment, ns, name),
                        WorkloadObject::new(
                            d.metadata,
                            desired,
                            &d.spec.selector,
                            &d.spec.template,
                        ),
                    );
                }
                "StatefulSet" => {
                    let s: StatefulSet = parse_item(index, &kind, item)?;
                    let (ns, name) = ns_name(index, &kind, &s.metadata)?;
                    let desired = Some(replicas(s.spec.replicas));
                    objects.insert(
                        WorkloadRef::new(WorkloadKind::StatefulSet, ns, name),
                        WorkloadObject::new(
                            s.metadata,
                            desired,
                            &s.spec.selector,
                            &s.spec.template,
                        ),
                    );
                }
                "DaemonSet" => {
                    let s: DaemonSet = parse_item(index, &kind, item)?;
                    let (ns, name) = ns_name(index, &kind, &s.metadata)?;
                    let desired = s
                        .status
                        .as_ref()
                        .and_then(|st| u32::try_from(st.desired_number_scheduled).ok());
                    objects.insert(
                        WorkloadRef::new(WorkloadKind::DaemonSet, ns, name),
                        WorkloadObject::new(
                            s.metadata,
                            desired,
                            &s.spec.selector,
                            &s.spec.template,
                        ),
                    );
                }
                "ReplicaSet" => {
                    let r: ReplicaSet = parse_item(index, &kind, item)?;
                    let (ns, name) = ns_name(index, &kind, &r.metadata)?;
                    let top = match controller_of(&r.metadata) {
                        Some(o) if o.kind == "Deployment" => {
                            WorkloadRef::new(WorkloadKind::Deployment, ns.clone(), o.name.clone())
                        }
                        Some(o) => WorkloadRef::new(
                            o.kind.parse().unwrap_or(WorkloadKind::Unknown),
                            ns.clone(),
                            o.name.clone(),
                        ),
                        None => {
                            WorkloadRef::new(WorkloadKind::ReplicaSet, ns.clone(), name.clone())
                        }
                    };
                    let spec = r.spec;
                    let keys = selector_keys(&spec.selector);
                    if top.kind == WorkloadKind::ReplicaSet {
                        objects.insert(
                            top.clone(),
                            WorkloadObject {
                                labels: r.metadata.labels.clone().unwrap_or_default(),
                                desired: Some(replicas(spec.replicas)),
                                selector_keys: keys.clone(),
                                template: spec
                                    .template
                                    .as_ref()
                                    .and_then(|t| t.metadata.as_ref())
                                    .and_then(|m| m.labels.clone())
                                    .unwrap_or_default(),
                            },
                        );
                    }
                    replica_sets.insert((ns, name), (top, spec.replicas, keys));
                }
                "PodDisruptionBudget" => {
                    let p: PodDisruptionBudget = parse_item(index, &kind, item)?;
                    let (ns, name) = ns_name(index, &kind, &p.metadata)?;
                    let spec = p.spec.unwrap_or_default();
                    cluster.pdbs.insert(
                        (ns, name),
                        SimPdb {
                            selector: Selector::from_api(spec.selector.as_ref()),
                            min_available: IntOrPercent::from_api(spec.min_available.as_ref()),
                            max_unavailable: IntOrPercent::from_api(spec.max_unavailable.as_ref()),
                        },
                    );
                }
                _ => {}
            }
        }

        // Pods: resolve the top workload, count pods per controller not in the List.
        let mut owned_count: BTreeMap<WorkloadRef, u32> = BTreeMap::new();
        // Per workload: (pod base from a live ReplicaSet preferred, template labels, rs selector keys).
        let mut bases: BTreeMap<WorkloadRef, PodBase> = BTreeMap::new();
        for (index, pod) in pods {
            let (ns, name) = ns_name(index, "Pod", &pod.metadata)?;
            let labels: BTreeMap<String, String> = pod.metadata.labels.clone().unwrap_or_default();
            let status = pod.status.as_ref();
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
            let finished = matches!(phase, "Succeeded" | "Failed")
                || pod.metadata.deletion_timestamp.is_some();
            let (owner, base, live_rs, rs_keys) = match controller_of(&pod.metadata) {
                None => (None, String::new(), false, BTreeSet::new()),
                Some(o) if o.kind == "ReplicaSet" => {
                    match replica_sets.get(&(ns.clone(), o.name.clone())) {
                        Some((top, rs_replicas, keys)) => (
                            Some(top.clone()),
                            o.name.clone(),
                            rs_replicas.unwrap_or(1) > 0,
                            keys.clone(),
                        ),
                        None => (
                            Some(WorkloadRef::new(
                                WorkloadKind::ReplicaSet,
                                ns.clone(),
                                o.name.clone(),
                            )),
                            o.name.clone(),
                            true,
                            BTreeSet::new(),
                        ),
                    }
                }
                Some(o) => (
                    Some(WorkloadRef::new(
                        o.kind.parse().unwrap_or(WorkloadKind::Unknown),
                        ns.clone(),
                        o.name.clone(),
                    )),
                    o.name.clone(),
                    true,
                    BTreeSet::new(),
                ),
            };
            if let Some(w) = &owner {
                if !finished {
                    *owned_count.entry(w.clone()).or_default() += 1;
                }
                let slot = bases
                    .entry(w.clone())
                    .or_insert_with(|| (false, base.clone(), labels.clone(), rs_keys.clone()));
                if live_rs && !slot.0 {
                    *slot = (true, base, labels.clone(), rs_keys);
                }
            }
            let uid = pod.metadata.uid.clone();
            let created = cluster.next_id_bump();
            cluster.insert_pod(
                (ns, name),
                SimPod {
                    uid,
                    labels,
                    owner,
                    ready: ready && !finished,
                    ready_at: None,
                    replaces_reap_at: None,
                    finished,
                    quarantined: false,
                    infected: false,
                    created,
                },
            );
        }

        let refs: BTreeSet<WorkloadRef> = objects.keys().chain(bases.keys()).cloned().collect();
        for w in refs {
            let object = objects.remove(&w);
            let (_, pod_base, template, rs_keys) = bases
                .remove(&w)
                .unwrap_or_else(|| (false, w.name.clone(), BTreeMap::new(), BTreeSet::new()));
            let (labels, desired, mut keys, object_template) = match object {
                Some(o) => (o.labels, o.desired, o.selector_keys, o.template),
                None => (BTreeMap::new(), None, BTreeSet::new(), BTreeMap::new()),
            };
            let template = if template.is_empty() {
                object_template
            } else {
                template
            };
            keys.extend(rs_keys);
            let desired = desired.unwrap_or_else(|| owned_count.get(&w).copied().unwrap_or(0));
            cluster.workloads.insert(
                w,
                SimWorkload {
                    labels,
                    desired,
                    selector_keys: keys,
                    template,
                    pod_base,
                },
            );
        }
        Ok(cluster)
    }

    fn next_id_bump(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}
