//! The read port: what the engine needs to know about the cluster, nothing more.
//!
//! Implemented by `teflon-k8s` (reflector stores) and `teflon-sim` (in-memory). Calls are
//! synchronous and must read one consistent snapshot: the engine calls them while deciding.
//!
//! Size: about 430 lines before its tests, kept in one file: the read port and the value types it
//! returns (pods, workloads, PDBs, availability), which its two implementations share.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The kind of the top controller owning a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    /// apps/v1 Deployment (through its ReplicaSet).
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// apps/v1 ReplicaSet with no Deployment above it.
    ReplicaSet,
    /// batch/v1 Job.
    Job,
    /// The replay CLI's assumed-healthy cluster: a workload named after the pod.
    Unknown,
    /// Any other controller kind (CRD-based controllers, ReplicationController…).
    Other(String),
}

impl WorkloadKind {
    /// The `apiVersion` of the kind (`apps/v1`, `batch/v1`); `None` for kinds Teflon does not
    /// know the API of.
    pub const fn api_version(&self) -> Option<&'static str> {
        match self {
            WorkloadKind::Deployment
            | WorkloadKind::StatefulSet
            | WorkloadKind::DaemonSet
            | WorkloadKind::ReplicaSet => Some("apps/v1"),
            WorkloadKind::Job => Some("batch/v1"),
            WorkloadKind::Unknown | WorkloadKind::Other(_) => None,
        }
    }

    /// The Kubernetes kind name.
    pub fn as_str(&self) -> &str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::Unknown => "Unknown",
            WorkloadKind::Other(s) => s,
        }
    }
}

impl FromStr for WorkloadKind {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "Deployment" => WorkloadKind::Deployment,
            "StatefulSet" => WorkloadKind::StatefulSet,
            "DaemonSet" => WorkloadKind::DaemonSet,
            "ReplicaSet" => WorkloadKind::ReplicaSet,
            "Job" => WorkloadKind::Job,
            "Unknown" => WorkloadKind::Unknown,
            other => WorkloadKind::Other(other.to_owned()),
        })
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for WorkloadKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for WorkloadKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(s.parse().unwrap_or(WorkloadKind::Unknown))
    }
}

/// A workload: the top controller of a pod (`Deployment default/web`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkloadRef {
    /// Controller kind.
    pub kind: WorkloadKind,
    /// Namespace.
    pub namespace: String,
    /// Controller name.
    pub name: String,
}

impl WorkloadRef {
    /// A workload reference.
    pub fn new(kind: WorkloadKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        WorkloadRef {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What the cluster knows about one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// The pod's UID (the precondition every action carries).
    pub uid: Option<String>,
    /// The pod's `Ready` condition is `True`.
    pub ready: bool,
    /// The top controller, `None` for a standalone pod (or a quarantined one, cut from its owner).
    pub workload: Option<WorkloadRef>,
}

/// Replica counts of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkloadStatus {
    /// Desired replicas (`spec.replicas`; for a DaemonSet, the scheduled count).
    pub desired: u32,
    /// Pods of the workload whose `Ready` condition is `True`.
    pub available: u32,
}

/// A pod with its labels, for listing (label selectors of the custom-metrics API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    /// Pod name.
    pub name: String,
    /// UID.
    pub uid: Option<String>,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Ready condition is True.
    pub ready: bool,
    /// Top controller.
    pub workload: Option<WorkloadRef>,
}

/// A workload with its labels and replica counts, for listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSummary {
    /// The workload.
    pub workload: WorkloadRef,
    /// The workload object's own labels (`metadata.labels`).
    pub labels: std::collections::BTreeMap<String, String>,
    /// Replica counts.
    pub status: WorkloadStatus,
}

/// A consistent, synchronous view of the cluster.
pub trait ClusterView {
    /// The pod `namespace/name`, if the cluster has it.
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo>;

    /// Replica counts of a workload, if the cluster has it.
    fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus>;

    /// The smallest `status.disruptionsAllowed` among PodDisruptionBudgets selecting this pod,
    /// or `None` when no budget selects it.
    fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32>;

    /// True once the view reflects the cluster (every store's initial list done).
    fn is_synced(&self) -> bool {
        true
    }

    /// Every pod of `namespace`, with labels. Views that cannot list return nothing.
    fn pods_in(&self, namespace: &str) -> Vec<PodSummary> {
        let _ = namespace;
        Vec::new()
    }

    /// Every workload (Deployment, StatefulSet, …) of `namespace`, with labels.
    fn workloads_in(&self, namespace: &str) -> Vec<WorkloadSummary> {
        let _ = namespace;
        Vec::new()
    }
}

impl<T: ClusterView + ?Sized> ClusterView for &T {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        (**self).pod(namespace, name)
    }
    fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
        (**self).workload(workload)
    }
    fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
        (**self).disruptions_allowed(namespace, pod)
    }
    fn is_synced(&self) -> bool {
        (**self).is_synced()
    }
    fn pods_in(&self, namespace: &str) -> Vec<PodSummary> {
        (**self).pods_in(namespace)
    }
    fn workloads_in(&self, namespace: &str) -> Vec<WorkloadSummary> {
        (**self).workloads_in(namespace)
    }
}

impl<T: ClusterView + ?Sized> ClusterView for std::sync::Arc<T> {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        (**self).pod(namespace, name)
    }
    fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
        (**self).workload(workload)
    }
    fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
        (**self).disruptions_allowed(namespace, pod)
    }
    fn is_synced(&self) -> bool {
        (**self).is_synced()
    }
    fn pods_in(&self, namespace: &str) -> Vec<PodSummary> {
        (**self).pods_in(namespace)
    }
    fn workloads_in(&self, namespace: &str) -> Vec<WorkloadSummary> {
        (**self).workloads_in(namespace)
    }
}

#[cfg(any(test, feature = "test-util"))]
mod static_cluster {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, Clone)]
    struct StaticPod {
        uid: String,
        ready: bool,
        workload: Option<WorkloadRef>,
    }

    /// A hand-built cluster for unit tests and benches: workloads with desired replicas, pods, PDBs.
    ///
    /// Availability is counted from the pods' readiness, as the real adapters do; lookups
    /// borrow, so benches measure the engine rather than this double.
    #[derive(Debug, Clone, Default)]
    pub struct StaticCluster {
        /// namespace → pod name → pod.
        pods: BTreeMap<String, BTreeMap<String, StaticPod>>,
        desired: BTreeMap<WorkloadRef, u32>,
        ready: BTreeMap<WorkloadRef, u32>,
        /// namespace → pod name → disruptionsAllowed.
        pdbs: BTreeMap<String, BTreeMap<String, i32>>,
    }

    impl StaticCluster {
        /// An empty cluster.
        pub fn new() -> Self {
            Self::default()
        }

        /// A Deployment `namespace/name` with `ready` Ready pods named `name-0…` of `desired`.
        pub fn deployment(self, namespace: &str, name: &str, desired: u32, ready: u32) -> Self {
            self.workload(WorkloadKind::Deployment, namespace, name, desired, ready)
        }

        /// A workload of any kind with `ready` Ready pods named `name-0…`.
        pub fn workload(
            mut self,
            kind: WorkloadKind,
            namespace: &str,
            name: &str,
            desired: u32,
            ready: u32,
        ) -> Self {
            let w = WorkloadRef::new(kind, namespace, name);
            self.desired.insert(w.clone(), desired);
            for i in 0..ready {
                self.add_pod(&w, &format!("{name}-{i}"), &format!("uid-{name}-{i}"), true);
            }
            self
        }

        /// A standalone pod (no controller owner).
        pub fn standalone(mut self, namespace: &str, name: &str) -> Self {
            self.put(
                namespace,
                name,
                StaticPod {
                    uid: format!("uid-{name}"),
                    ready: true,
                    workload: None,
                },
            );
            self
        }

        /// A PodDisruptionBudget covering `pod` with `disruptionsAllowed = allowed`.
        pub fn pdb(mut self, namespace: &str, pod: &str, allowed: i32) -> Self {
            self.set_pdb(namespace, pod, allowed);
            self
        }

        fn put(&mut self, namespace: &str, name: &str, pod: StaticPod) {
            self.remove_pod(namespace, name);
            if pod.ready
                && let Some(w) = &pod.workload
            {
                *self.ready.entry(w.clone()).or_default() += 1;
            }
            self.pods
                .entry(namespace.to_owned())
                .or_default()
                .insert(name.to_owned(), pod);
        }

        /// Mark a pod Ready or not.
        pub fn set_ready(&mut self, namespace: &str, pod: &str, ready: bool) {
            let Some(p) = self.pods.get_mut(namespace).and_then(|m| m.get_mut(pod)) else {
                return;
            };
            if p.ready != ready
                && let Some(w) = &p.workload
            {
                let n = self.ready.entry(w.clone()).or_default();
                *n = if ready { *n + 1 } else { n.saturating_sub(1) };
            }
            p.ready = ready;
        }

        /// Remove a pod.
        pub fn remove_pod(&mut self, namespace: &str, pod: &str) {
            let Some(old) = self.pods.get_mut(namespace).and_then(|m| m.remove(pod)) else {
                return;
            };
            if old.ready
                && let Some(w) = &old.workload
                && let Some(n) = self.ready.get_mut(w)
            {
                *n = n.saturating_sub(1);
            }
        }

        /// Add a pod to a workload (a replacement).
        pub fn add_pod(&mut self, workload: &WorkloadRef, pod: &str, uid: &str, ready: bool) {
            self.desired.entry(workload.clone()).or_insert(0);
            self.put(
                &workload.namespace,
                pod,
                StaticPod {
                    uid: uid.to_owned(),
                    ready,
                    workload: Some(workload.clone()),
                },
            );
        }

        /// Set a PDB's `disruptionsAllowed` for a pod.
        pub fn set_pdb(&mut self, namespace: &str, pod: &str, allowed: i32) {
            self.pdbs
                .entry(namespace.to_owned())
                .or_default()
                .insert(pod.to_owned(), allowed);
        }
    }

    impl ClusterView for StaticCluster {
        fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
            self.pods.get(namespace)?.get(name).map(|p| PodInfo {
                uid: Some(p.uid.clone()),
                ready: p.ready,
                workload: p.workload.clone(),
            })
        }

        fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
            let desired = *self.desired.get(workload)?;
            Some(WorkloadStatus {
                desired,
                available: self.ready.get(workload).copied().unwrap_or(0),
            })
        }

        fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
            self.pdbs.get(namespace)?.get(pod).copied()
        }

        fn pods_in(&self, namespace: &str) -> Vec<PodSummary> {
            self.pods
                .get(namespace)
                .into_iter()
                .flatten()
                .map(|(name, p)| PodSummary {
                    name: name.clone(),
                    uid: Some(p.uid.clone()),
                    labels: p
                        .workload
                        .as_ref()
                        .map(|w| [("app".to_owned(), w.name.clone())].into_iter().collect())
                        .unwrap_or_default(),
                    ready: p.ready,
                    workload: p.workload.clone(),
                })
                .collect()
        }

        fn workloads_in(&self, namespace: &str) -> Vec<WorkloadSummary> {
            self.desired
                .keys()
                .filter(|w| w.namespace == namespace)
                .filter_map(|w| {
                    Some(WorkloadSummary {
                        workload: w.clone(),
                        labels: [("app".to_owned(), w.name.clone())].into_iter().collect(),
                        status: self.workload(w)?,
                    })
                })
                .collect()
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
pub use static_cluster::StaticCluster;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_kinds_spell_their_api_version_and_unknown_kinds_have_none() {
        let known = [
            (WorkloadKind::Deployment, "apps/v1"),
            (WorkloadKind::StatefulSet, "apps/v1"),
            (WorkloadKind::DaemonSet, "apps/v1"),
            (WorkloadKind::ReplicaSet, "apps/v1"),
            (WorkloadKind::Job, "batch/v1"),
        ];
        for (kind, api_version) in known {
            assert_eq!(kind.api_version(), Some(api_version), "{kind}");
        }
        assert_eq!(WorkloadKind::Unknown.api_version(), None);
        let rc = WorkloadKind::Other("ReplicationController".to_owned());
        assert_eq!(rc.api_version(), None);
    }
}
