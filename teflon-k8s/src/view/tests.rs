use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use teflon_core::{ClusterView, WorkloadKind, WorkloadRef, WorkloadStatus};

use super::*;
use crate::testing::*;

fn web_cluster(pods: Vec<Pod>) -> KubeClusterView {
    KubeClusterView::from_objects(ClusterObjects {
        pods,
        replica_sets: vec![replica_set(
            "shop",
            "web-abc",
            Some("web"),
            &[("app", "web"), ("pod-template-hash", "abc")],
        )],
        deployments: vec![deployment("shop", "web", 3, &[("app", "web")])],
        ..ClusterObjects::default()
    })
}

fn web_pod(name: &str, ready: bool) -> PodB {
    PodB::new("shop", name)
        .labels(&[("app", "web"), ("pod-template-hash", "abc")])
        .rs("web-abc")
        .ready(ready)
}

fn web() -> WorkloadRef {
    WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")
}

#[test]
fn a_replica_set_pod_resolves_to_its_deployment() {
    let view = web_cluster(vec![web_pod("web-1", true).build()]);
    let info = view.pod("shop", "web-1").unwrap();
    assert_eq!(info.workload, Some(web()));
    assert_eq!(info.uid.as_deref(), Some("uid-web-1"));
    assert!(info.ready);
}

#[test]
fn a_replica_set_without_a_deployment_is_the_workload() {
    let rs = replica_set("shop", "lone", None, &[("app", "lone")]);
    let pod = PodB::new("shop", "lone-1").rs("lone").build();
    assert_eq!(
        resolve_workload(&pod, |_| Some(Arc::new(rs.clone()))),
        Some(WorkloadRef::new(WorkloadKind::ReplicaSet, "shop", "lone"))
    );
}

#[test]
fn an_unknown_replica_set_is_reported_as_a_replica_set() {
    let pod = PodB::new("shop", "x-1").rs("x-123").build();
    assert_eq!(
        resolve_workload(&pod, |_| None),
        Some(WorkloadRef::new(WorkloadKind::ReplicaSet, "shop", "x-123"))
    );
}

#[test]
fn stateful_set_daemon_set_job_and_other_owners_resolve_directly() {
    let cases = [
        ("apps/v1", "StatefulSet", WorkloadKind::StatefulSet),
        ("apps/v1", "DaemonSet", WorkloadKind::DaemonSet),
        ("batch/v1", "Job", WorkloadKind::Job),
        (
            "argoproj.io/v1alpha1",
            "Rollout",
            WorkloadKind::Other("Rollout".to_owned()),
        ),
        (
            "v1",
            "ReplicationController",
            WorkloadKind::Other("ReplicationController".to_owned()),
        ),
    ];
    for (api, kind, expected) in cases {
        let pod = PodB::new("ns", "p").owned_by(api, kind, "owner").build();
        assert_eq!(
            resolve_workload(&pod, |_| None),
            Some(WorkloadRef::new(expected, "ns", "owner"))
        );
    }
}

#[test]
fn a_pod_without_a_controller_owner_is_standalone() {
    let mut pod = PodB::new("ns", "p")
        .owned_by("apps/v1", "ReplicaSet", "rs")
        .build();
    if let Some(o) = pod.metadata.owner_references.as_mut() {
        o[0].controller = None;
    }
    assert_eq!(resolve_workload(&pod, |_| None), None);
    assert_eq!(
        resolve_workload(&PodB::new("ns", "bare").build(), |_| None),
        None
    );
}

#[test]
fn availability_counts_ready_pods_not_status_fields() {
    let view = web_cluster(vec![
        web_pod("web-1", true).build(),
        web_pod("web-2", false).build(),
        web_pod("web-3", true).terminating().build(),
        PodB::new("shop", "web-4")
            .labels(&[("app", "web")])
            .rs("web-abc")
            .build(),
        // Another workload's ready pod in the same namespace.
        PodB::new("shop", "db-0")
            .owned_by("apps/v1", "StatefulSet", "db")
            .ready(true)
            .build(),
    ]);
    assert_eq!(
        view.workload(&web()),
        Some(WorkloadStatus {
            desired: 3,
            available: 1
        })
    );
}

#[test]
fn a_quarantined_pod_leaves_its_workload() {
    let view = web_cluster(vec![
        web_pod("web-1", true).build(),
        web_pod("web-2", true)
            .labels(&[(QUARANTINED_LABEL, "reap-shells")])
            .build(),
    ]);
    assert_eq!(view.pod("shop", "web-2").unwrap().workload, None);
    assert_eq!(view.workload(&web()).unwrap().available, 1);
}

#[test]
fn desired_comes_from_spec_and_daemon_sets_from_scheduled_count() {
    let view = KubeClusterView::from_objects(ClusterObjects {
        pods: vec![
            PodB::new("ns", "db-0")
                .owned_by("apps/v1", "StatefulSet", "db")
                .ready(true)
                .build(),
            PodB::new("ns", "agent-x")
                .owned_by("apps/v1", "DaemonSet", "agent")
                .ready(true)
                .build(),
        ],
        stateful_sets: vec![stateful_set("ns", "db", None)],
        daemon_sets: vec![daemon_set("ns", "agent", 4)],
        ..ClusterObjects::default()
    });
    let db = WorkloadRef::new(WorkloadKind::StatefulSet, "ns", "db");
    let agent = WorkloadRef::new(WorkloadKind::DaemonSet, "ns", "agent");
    assert_eq!(
        view.workload(&db),
        Some(WorkloadStatus {
            desired: 1,
            available: 1
        })
    );
    assert_eq!(
        view.workload(&agent),
        Some(WorkloadStatus {
            desired: 4,
            available: 1
        })
    );
}

#[test]
fn an_unknown_workload_is_none_and_a_job_is_counted_from_its_pods() {
    let view = KubeClusterView::from_objects(ClusterObjects {
        pods: vec![
            PodB::new("ns", "batch-1")
                .owned_by("batch/v1", "Job", "batch")
                .ready(true)
                .build(),
            PodB::new("ns", "batch-2")
                .owned_by("batch/v1", "Job", "batch")
                .ready(false)
                .build(),
        ],
        ..ClusterObjects::default()
    });
    assert_eq!(
        view.workload(&WorkloadRef::new(WorkloadKind::Deployment, "ns", "nope")),
        None
    );
    assert_eq!(
        view.workload(&WorkloadRef::new(WorkloadKind::Job, "ns", "batch")),
        Some(WorkloadStatus {
            desired: 2,
            available: 1
        })
    );
}

#[test]
fn disruptions_allowed_is_the_minimum_over_matching_budgets() {
    let view = KubeClusterView::from_objects(ClusterObjects {
        pods: vec![
            web_pod("web-1", true).build(),
            PodB::new("shop", "other").labels(&[("app", "db")]).build(),
        ],
        pdbs: vec![
            pdb("shop", "loose", Some(selector(&[("app", "web")])), 2),
            pdb(
                "shop",
                "tight",
                Some(LabelSelector {
                    match_labels: None,
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: "app".to_owned(),
                        operator: "In".to_owned(),
                        values: Some(vec!["web".to_owned(), "api".to_owned()]),
                    }]),
                }),
                0,
            ),
            pdb("elsewhere", "foreign", Some(LabelSelector::default()), -1),
        ],
        ..ClusterObjects::default()
    });
    assert_eq!(view.disruptions_allowed("shop", "web-1"), Some(0));
    assert_eq!(view.disruptions_allowed("shop", "other"), None);
    assert_eq!(view.disruptions_allowed("shop", "missing"), None);
}

#[test]
fn an_empty_pdb_selector_matches_every_pod_and_a_missing_one_none() {
    let view = KubeClusterView::from_objects(ClusterObjects {
        pods: vec![PodB::new("ns", "p").build()],
        pdbs: vec![
            pdb("ns", "all", Some(LabelSelector::default()), 1),
            pdb("ns", "none", None, 0),
        ],
        ..ClusterObjects::default()
    });
    assert_eq!(view.disruptions_allowed("ns", "p"), Some(1));
}

#[test]
fn a_view_built_from_objects_is_synced_and_finds_nothing_unknown() {
    let view = web_cluster(vec![]);
    assert!(view.is_synced());
    assert_eq!(view.pod("shop", "ghost"), None);
}

#[tokio::test]
async fn the_recreation_snapshot_knows_every_current_pod_and_the_node() {
    let view = web_cluster(vec![
        web_pod("web-1", true).uid("u1").node("node-a").build(),
        web_pod("web-2", false).uid("u2").build(),
        web_pod("web-q", true)
            .uid("uq")
            .labels(&[(QUARANTINED_LABEL, "p")])
            .build(),
    ]);
    let (handle, _rx) = crate::recreation::RecreationHandle::spawn(view);
    let action = teflon_core::PlannedAction {
        id: teflon_core::ActionId(1),
        pod: teflon_core::PodTarget {
            namespace: "shop".to_owned(),
            name: "web-1".to_owned(),
            uid: Some("u1".to_owned()),
        },
        workload: Some(web()),
        action: teflon_core::Action::Delete {
            grace_period_secs: None,
        },
        policy: Arc::from("p"),
        binary: None,
        alert: Arc::new(teflon_core::Alert::test().build()),
        deadline: teflon_core::Timestamp::EPOCH,
    };
    let before = handle.before(&action).unwrap();
    assert_eq!(before.node.as_deref(), Some("node-a"));
    let mut known: Vec<&str> = before.known_uids.iter().map(String::as_str).collect();
    known.sort_unstable();
    assert_eq!(known, ["u1", "u2"]);
}

#[test]
fn listing_gives_pods_with_labels_and_workloads_with_their_own_labels() {
    let mut labelled = deployment("shop", "web", 3, &[("app", "web")]);
    labelled.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
    let view = KubeClusterView::from_objects(ClusterObjects {
        pods: vec![
            web_pod("web-1", true).build(),
            web_pod("web-2", false).build(),
            PodB::new("other", "x").ready(true).build(),
        ],
        replica_sets: vec![replica_set(
            "shop",
            "web-abc",
            Some("web"),
            &[("app", "web"), ("pod-template-hash", "abc")],
        )],
        deployments: vec![labelled],
        ..ClusterObjects::default()
    });
    let mut pods = view.pods_in("shop");
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[0].name, "web-1");
    assert_eq!(pods[0].labels.get("app").map(String::as_str), Some("web"));
    assert!(pods[0].ready && !pods[1].ready);
    assert_eq!(pods[0].workload, Some(web()));
    let workloads = view.workloads_in("shop");
    assert_eq!(workloads.len(), 1);
    assert_eq!(workloads[0].workload, web());
    assert_eq!(
        workloads[0].labels.get("app").map(String::as_str),
        Some("web")
    );
    assert_eq!(
        workloads[0].status,
        WorkloadStatus {
            desired: 3,
            available: 1
        }
    );
    assert!(view.workloads_in("other").is_empty());
}
