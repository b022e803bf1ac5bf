//! The view as it was before it was made compact: every answer computed from whole
//! k8s-openapi objects. Test code only: the compact view must answer every [`ClusterView`]
//! question exactly as this does, for the same objects.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Resource;
use teflon_core::selector::Selector;
use teflon_core::{
    ClusterView, PodInfo, PodSummary, WorkloadKind, WorkloadRef, WorkloadStatus, WorkloadSummary,
};

use super::{ClusterObjects, controller_of, is_available, is_quarantined, is_terminating};

/// Full objects, answered from directly.
#[derive(Debug, Clone)]
pub(crate) struct Reference(pub(crate) ClusterObjects);

fn in_ns<'a, K: Resource>(objects: &'a [K], ns: &'a str) -> impl Iterator<Item = &'a K> + 'a {
    objects
        .iter()
        .filter(move |o| o.meta().namespace.as_deref() == Some(ns))
}

/// The last object named `ns/name` (a store keeps the last one applied).
fn get<'a, K: Resource>(objects: &'a [K], ns: &str, name: &str) -> Option<&'a K> {
    objects.iter().rev().find(|o| {
        o.meta().namespace.as_deref() == Some(ns) && o.meta().name.as_deref() == Some(name)
    })
}

/// The top workload of a pod: Pod → ReplicaSet → Deployment, or the StatefulSet, DaemonSet,
/// Job or other controller that owns it directly; `None` for a standalone pod.
pub(crate) fn resolve_workload<'a>(
    pod: &Pod,
    replica_set: impl Fn(&str) -> Option<&'a ReplicaSet>,
) -> Option<WorkloadRef> {
    let owner = controller_of(&pod.metadata)?;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let kind = match (owner.api_version.split('/').next(), owner.kind.as_str()) {
        (Some("apps"), "ReplicaSet") => {
            let parent = replica_set(&owner.name).and_then(|rs| {
                controller_of(&rs.metadata)
                    .filter(|o| o.kind == "Deployment" && o.api_version.starts_with("apps/"))
                    .map(|o| o.name.clone())
            });
            return Some(match parent {
                Some(dep) => WorkloadRef::new(WorkloadKind::Deployment, ns, dep),
                None => WorkloadRef::new(WorkloadKind::ReplicaSet, ns, owner.name.clone()),
            });
        }
        (Some("apps"), "StatefulSet") => WorkloadKind::StatefulSet,
        (Some("apps"), "DaemonSet") => WorkloadKind::DaemonSet,
        (Some("batch"), "Job") => WorkloadKind::Job,
        (_, other) => WorkloadKind::Other(other.to_owned()),
    };
    Some(WorkloadRef::new(kind, ns, owner.name.clone()))
}

fn to_u32(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Reference {
    /// The PodInfo of a pod object, against these objects' ReplicaSets.
    pub(crate) fn pod_info(&self, pod: &Pod) -> PodInfo {
        PodInfo {
            uid: pod.metadata.uid.clone(),
            ready: is_available(pod),
            workload: self.workload_of(pod),
        }
    }

    pub(crate) fn workload_of(&self, pod: &Pod) -> Option<WorkloadRef> {
        if is_quarantined(pod) {
            return None;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        resolve_workload(pod, |rs| get(&self.0.replica_sets, ns, rs))
    }

    pub(crate) fn workload_pods<'a>(&'a self, workload: &'a WorkloadRef) -> Vec<&'a Pod> {
        self.live_pods_in(&workload.namespace)
            .filter(|p| self.workload_of(p).as_ref() == Some(workload))
            .collect()
    }

    /// The pods of `ns` a store would hold (the last one of each name).
    fn live_pods_in<'a>(&'a self, ns: &'a str) -> impl Iterator<Item = &'a Pod> + 'a {
        in_ns(&self.0.pods, ns).filter(move |p| {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            get(&self.0.pods, ns, name).is_some_and(|last| std::ptr::eq(last, *p))
        })
    }
}

impl ClusterView for Reference {
    fn pod(&self, namespace: &str, name: &str) -> Option<PodInfo> {
        Some(self.pod_info(get(&self.0.pods, namespace, name)?))
    }

    fn workload(&self, workload: &WorkloadRef) -> Option<WorkloadStatus> {
        let (ns, name) = (workload.namespace.as_str(), workload.name.as_str());
        let o = &self.0;
        let desired = match &workload.kind {
            WorkloadKind::Deployment => Some(to_u32(
                get(&o.deployments, ns, name)?.spec.replicas.unwrap_or(1),
            )),
            WorkloadKind::StatefulSet => Some(to_u32(
                get(&o.stateful_sets, ns, name)?.spec.replicas.unwrap_or(1),
            )),
            WorkloadKind::ReplicaSet => Some(to_u32(
                get(&o.replica_sets, ns, name)?.spec.replicas.unwrap_or(1),
            )),
            WorkloadKind::DaemonSet => {
                let ds = get(&o.daemon_sets, ns, name)?;
                Some(to_u32(
                    ds.status.as_ref().map_or(0, |s| s.desired_number_scheduled),
                ))
            }
            WorkloadKind::Job | WorkloadKind::Other(_) | WorkloadKind::Unknown => None,
        };
        let pods = self.workload_pods(workload);
        let available = count_u32(pods.iter().filter(|p| is_available(p)).count());
        match desired {
            Some(desired) => Some(WorkloadStatus { desired, available }),
            None if pods.is_empty() => None,
            None => Some(WorkloadStatus {
                desired: count_u32(pods.iter().filter(|p| !is_terminating(p)).count()),
                available,
            }),
        }
    }

    fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
        let pod = get(&self.0.pods, namespace, pod)?;
        let pdbs: Vec<_> = in_ns(&self.0.pdbs, namespace)
            .filter(|pdb| {
                let name = pdb.metadata.name.as_deref().unwrap_or_default();
                get(&self.0.pdbs, namespace, name).is_some_and(|last| std::ptr::eq(last, *pdb))
            })
            .collect();
        pdbs.iter()
            .filter(|pdb| {
                pdb.spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .is_some_and(|sel| {
                        let labels = pod.metadata.labels.as_ref();
                        Selector::from_api(Some(sel))
                            .matches_by(|k| labels.and_then(|l| l.get(k)).map(String::as_str))
                    })
            })
            .map(|pdb| {
                pdb.status
                    .as_ref()
                    .map_or(0, |s| s.disruptions_allowed.unwrap_or(0))
            })
            .min()
    }

    fn pods_in(&self, namespace: &str) -> Vec<PodSummary> {
        self.live_pods_in(namespace)
            .map(|p| PodSummary {
                name: p.metadata.name.clone().unwrap_or_default(),
                uid: p.metadata.uid.clone(),
                labels: p.metadata.labels.clone().unwrap_or_default(),
                ready: is_available(p),
                workload: self.workload_of(p),
            })
            .collect()
    }

    fn workloads_in(&self, namespace: &str) -> Vec<WorkloadSummary> {
        fn summaries<K: Resource>(
            view: &Reference,
            kind: WorkloadKind,
            namespace: &str,
            objects: &[K],
        ) -> Vec<WorkloadSummary> {
            in_ns(objects, namespace)
                .filter_map(|o| {
                    let meta = o.meta();
                    let name = meta.name.clone()?;
                    // Only the last object of a name is stored.
                    if !get(objects, namespace, &name).is_some_and(|last| std::ptr::eq(last, o)) {
                        return None;
                    }
                    let w = WorkloadRef::new(
                        kind.clone(),
                        meta.namespace.clone().unwrap_or_default(),
                        name,
                    );
                    let status = view.workload(&w)?;
                    Some(WorkloadSummary {
                        workload: w,
                        labels: meta.labels.clone().unwrap_or_default(),
                        status,
                    })
                })
                .collect()
        }
        let o = &self.0;
        let mut out = summaries(self, WorkloadKind::Deployment, namespace, &o.deployments);
        out.extend(summaries(
            self,
            WorkloadKind::StatefulSet,
            namespace,
            &o.stateful_sets,
        ));
        out.extend(summaries(
            self,
            WorkloadKind::DaemonSet,
            namespace,
            &o.daemon_sets,
        ));
        out
    }
}
