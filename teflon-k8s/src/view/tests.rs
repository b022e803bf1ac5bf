use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use teflon_core::{ClusterView, WorkloadKind, WorkloadRef, WorkloadStatus};

use super::reference::Reference;
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

fn workload_in(objects: ClusterObjects, pod: &str) -> Option<WorkloadRef> {
    let pods = objects.pods.clone();
    let view = KubeClusterView::from_objects(objects.clone());
    let info = view.pod(
        pods[0].metadata.namespace.as_deref().unwrap_or_default(),
        pod,
    );
    // The reference (whole objects) agrees.
    assert_eq!(
        info,
        Reference(objects).pod(
            pods[0].metadata.namespace.as_deref().unwrap_or_default(),
            pod
        )
    );
    info?.workload
}

#[test]
fn a_replica_set_without_a_deployment_is_the_workload() {
    let objects = ClusterObjects {
        pods: vec![PodB::new("shop", "lone-1").rs("lone").build()],
        replica_sets: vec![replica_set("shop", "lone", None, &[("app", "lone")])],
        ..ClusterObjects::default()
    };
    assert_eq!(
        workload_in(objects, "lone-1"),
        Some(WorkloadRef::new(WorkloadKind::ReplicaSet, "shop", "lone"))
    );
}

#[test]
fn an_unknown_replica_set_is_reported_as_a_replica_set() {
    let objects = ClusterObjects {
        pods: vec![PodB::new("shop", "x-1").rs("x-123").build()],
        ..ClusterObjects::default()
    };
    assert_eq!(
        workload_in(objects, "x-1"),
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
        // A ReplicaSet of another API group is not an apps/v1 ReplicaSet.
        (
            "example.com/v1",
            "ReplicaSet",
            WorkloadKind::Other("ReplicaSet".to_owned()),
        ),
    ];
    for (api, kind, expected) in cases {
        let objects = ClusterObjects {
            pods: vec![PodB::new("ns", "p").owned_by(api, kind, "owner").build()],
            ..ClusterObjects::default()
        };
        assert_eq!(
            workload_in(objects, "p"),
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
    let objects = ClusterObjects {
        pods: vec![pod, PodB::new("ns", "bare").build()],
        ..ClusterObjects::default()
    };
    assert_eq!(workload_in(objects.clone(), "p"), None);
    assert_eq!(workload_in(objects, "bare"), None);
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
            .labels(&[(QUARANTINE_LABEL, "reap-shells")])
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
            .labels(&[(QUARANTINE_LABEL, "p")])
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

// ---------------------------------------------------------------------------------------------
// The compact view against the whole objects.
// ---------------------------------------------------------------------------------------------

mod same_answers {
    use std::collections::BTreeMap;

    use k8s_openapi::api::apps::v1::{DaemonSetStatus, ReplicaSetSpec};
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        LabelSelector, LabelSelectorRequirement, OwnerReference, Time,
    };
    use proptest::prelude::*;
    use teflon_core::{ClusterView, WorkloadKind, WorkloadRef};

    use super::super::reference::Reference;
    use super::super::wire::PodWire;
    use super::super::*;
    use crate::testing::*;

    const NAMESPACES: [&str; 2] = ["a", "b"];
    const POD_NAMES: [&str; 8] = ["p-0", "p-1", "p-2", "p-3", "p-4", "p-5", "p-6", "p-7"];
    const OWNER_NAMES: [&str; 4] = ["w-0", "w-1", "w-2", "w-3"];

    fn kinds() -> Vec<WorkloadKind> {
        vec![
            WorkloadKind::Deployment,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSet,
            WorkloadKind::ReplicaSet,
            WorkloadKind::Job,
            WorkloadKind::Unknown,
            WorkloadKind::Other("Rollout".to_owned()),
            WorkloadKind::Other("ReplicaSet".to_owned()),
            WorkloadKind::Other("Deployment".to_owned()),
        ]
    }

    /// Every question `ClusterView` can be asked about these objects, and the view's extras,
    /// answered the same by the compact view and by the whole objects.
    pub(super) fn assert_same_answers(objects: &ClusterObjects, extra_pods: &[Pod]) {
        let view = KubeClusterView::from_objects(objects.clone());
        let reference = Reference(objects.clone());
        assert!(view.is_synced());
        for ns in NAMESPACES {
            for pod in POD_NAMES.iter().chain(&["missing"]) {
                assert_eq!(view.pod(ns, pod), reference.pod(ns, pod), "pod {ns}/{pod}");
                assert_eq!(
                    view.disruptions_allowed(ns, pod),
                    reference.disruptions_allowed(ns, pod),
                    "disruptions_allowed {ns}/{pod}"
                );
            }
            for kind in kinds() {
                for name in OWNER_NAMES {
                    let w = WorkloadRef::new(kind.clone(), ns, name);
                    assert_eq!(view.workload(&w), reference.workload(&w), "workload {w}");
                    let mut got: Vec<String> =
                        view.workload_pods(&w).into_iter().map(|p| p.name).collect();
                    let mut want: Vec<String> = reference
                        .workload_pods(&w)
                        .into_iter()
                        .map(|p| p.metadata.name.clone().unwrap_or_default())
                        .collect();
                    got.sort();
                    want.sort();
                    assert_eq!(got, want, "workload_pods {w}");
                }
            }
            let mut got = view.pods_in(ns);
            let mut want = reference.pods_in(ns);
            got.sort_by(|a, b| a.name.cmp(&b.name));
            want.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(got, want, "pods_in {ns}");
            let mut got = view.workloads_in(ns);
            let mut want = reference.workloads_in(ns);
            got.sort_by(|a, b| a.workload.cmp(&b.workload));
            want.sort_by(|a, b| a.workload.cmp(&b.workload));
            assert_eq!(got, want, "workloads_in {ns}");
        }
        for p in objects.pods.iter().chain(extra_pods) {
            assert_eq!(
                view.pod_info(p),
                reference.pod_info(p),
                "pod_info {:?}",
                p.metadata.name
            );
        }
        // The recreation tracker's snapshot agrees with the objects too.
        for p in &objects.pods {
            let (Some(ns), Some(name)) =
                (p.metadata.namespace.as_deref(), p.metadata.name.as_deref())
            else {
                continue;
            };
            let state = view.pod_state(ns, name).expect("a stored pod");
            let last = objects
                .pods
                .iter()
                .rev()
                .find(|q| {
                    q.metadata.namespace == p.metadata.namespace
                        && q.metadata.name == p.metadata.name
                })
                .expect("itself at least");
            assert_eq!(state.uid, last.metadata.uid);
            assert_eq!(
                state.node,
                last.spec.as_ref().and_then(|s| s.node_name.clone())
            );
            assert_eq!(state.is_available(), is_available(last));
            assert_eq!(state.workload, reference.workload_of(last));
        }
    }

    #[test]
    fn the_unit_fixtures_get_the_same_answers_from_the_compact_view_and_the_whole_objects() {
        let web_rs = replica_set(
            "a",
            "w-0",
            Some("w-1"),
            &[("app", "web"), ("pod-template-hash", "abc")],
        );
        let mut deployment = deployment("a", "w-1", 3, &[("app", "web")]);
        deployment.metadata.labels = Some(label_map([("app", "web")]));
        let web = |name: &str| {
            PodB::new("a", name)
                .labels(&[("app", "web"), ("pod-template-hash", "abc")])
                .rs("w-0")
        };
        let objects = ClusterObjects {
            pods: vec![
                web("p-0").ready(true).node("n1").build(),
                web("p-1").ready(false).build(),
                web("p-2").ready(true).terminating().build(),
                web("p-3")
                    .ready(true)
                    .labels(&[(QUARANTINE_LABEL, "reap")])
                    .build(),
                PodB::new("a", "p-4")
                    .owned_by("apps/v1", "StatefulSet", "w-2")
                    .ready(true)
                    .build(),
                PodB::new("a", "p-5")
                    .owned_by("apps/v1", "DaemonSet", "w-3")
                    .ready(true)
                    .build(),
                PodB::new("b", "p-0")
                    .owned_by("batch/v1", "Job", "w-0")
                    .ready(true)
                    .build(),
                PodB::new("b", "p-1")
                    .owned_by("batch/v1", "Job", "w-0")
                    .terminating()
                    .build(),
                PodB::new("b", "p-2")
                    .owned_by("argoproj.io/v1alpha1", "Rollout", "w-1")
                    .build(),
                PodB::new("b", "p-3").rs("w-3").ready(true).build(),
                PodB::new("b", "p-4").labels(&[("app", "db")]).build(),
            ],
            replica_sets: vec![web_rs, replica_set("b", "w-2", None, &[("app", "x")])],
            deployments: vec![deployment],
            stateful_sets: vec![stateful_set("a", "w-2", None)],
            daemon_sets: vec![daemon_set("a", "w-3", 4)],
            pdbs: vec![
                pdb("a", "loose", Some(selector(&[("app", "web")])), 2),
                pdb(
                    "a",
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
                pdb("b", "all", Some(LabelSelector::default()), 1),
                pdb("b", "none", None, 0),
            ],
        };
        let not_stored = [
            web("p-7").ready(true).build(),
            web("p-7")
                .ready(true)
                .labels(&[(QUARANTINE_LABEL, "x")])
                .build(),
            web("p-7").ready(true).terminating().build(),
            PodB::new("b", "p-7").rs("w-2").ready(true).build(),
        ];
        assert_same_answers(&objects, &not_stored);
    }

    // --- generated clusters --------------------------------------------------------------

    fn pick<T: Clone + std::fmt::Debug + 'static>(items: &'static [T]) -> impl Strategy<Value = T> {
        proptest::sample::select(items)
    }

    fn labels() -> impl Strategy<Value = Option<BTreeMap<String, String>>> {
        let pair = (
            pick(&["app", "tier", "pod-template-hash", QUARANTINE_LABEL]),
            pick(&["web", "db", ""]),
        );
        proptest::option::weighted(
            0.9,
            proptest::collection::vec(pair, 0..4).prop_map(|v| {
                v.into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            }),
        )
    }

    /// Owner references drawn from `(apiVersion, kind)` pairs: mostly the usual ones, with the
    /// odd ones resolution must tell apart (no group version, other groups, old groups).
    fn owner_refs(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Strategy<Value = Option<Vec<OwnerReference>>> {
        let one = (
            pick(pairs),
            pick(&OWNER_NAMES),
            pick(&[Some(true), Some(true), Some(true), Some(false), None]),
        )
            .prop_map(|((api, kind), name, controller)| OwnerReference {
                controller,
                ..owner(api, kind, name)
            });
        proptest::option::weighted(0.9, proptest::collection::vec(one, 0..3))
    }

    const POD_OWNERS: &[(&str, &str)] = &[
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "ReplicaSet"),
        ("apps", "ReplicaSet"),
        ("apps/v1beta2", "ReplicaSet"),
        ("example.com/v1", "ReplicaSet"),
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
        ("v1", "ReplicationController"),
        ("argoproj.io/v1alpha1", "Rollout"),
        ("apps/v1", "Deployment"),
    ];

    const REPLICA_SET_OWNERS: &[(&str, &str)] = &[
        ("apps/v1", "Deployment"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "Deployment"),
        ("apps", "Deployment"),
        ("extensions/v1beta1", "Deployment"),
        ("example.com/v1", "Deployment"),
        ("argoproj.io/v1alpha1", "Rollout"),
    ];

    fn conditions() -> impl Strategy<Value = Option<PodStatus>> {
        let cond = (
            pick(&["Ready", "ContainersReady", "PodScheduled"]),
            pick(&["True", "False", "Unknown"]),
        )
            .prop_map(|(t, s)| PodCondition {
                type_: t.to_owned(),
                status: s.to_owned(),
                ..PodCondition::default()
            });
        proptest::option::weighted(
            0.9,
            (
                proptest::option::of(pick(&[
                    "Pending",
                    "Running",
                    "Succeeded",
                    "Failed",
                    "Unknown",
                    "Weird",
                ])),
                proptest::option::of(proptest::collection::vec(cond, 0..3)),
            )
                .prop_map(|(phase, conditions)| PodStatus {
                    phase: phase.map(str::to_owned),
                    conditions,
                    ..PodStatus::default()
                }),
        )
    }

    prop_compose! {
        fn pod()(
            ns in pick(&NAMESPACES),
            name in pick(&POD_NAMES),
            uid in proptest::option::weighted(0.9, "[a-f0-9]{8}"),
            labels in labels(),
            owners in owner_refs(POD_OWNERS),
            status in conditions(),
            terminating in proptest::bool::weighted(0.2),
            node in proptest::option::of(pick(&["n1", "n2"])),
        ) -> Pod {
            let mut p = PodB::new(ns, name).build();
            p.metadata.uid = uid;
            p.metadata.labels = labels;
            p.metadata.owner_references = owners;
            p.status = status;
            if terminating {
                p.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
            }
            if let Some(n) = node {
                p.spec.get_or_insert_default().node_name = Some(n.to_owned());
            }
            p
        }
    }

    prop_compose! {
        fn replica_set_obj()(
            ns in pick(&NAMESPACES),
            name in pick(&OWNER_NAMES),
            owners in owner_refs(REPLICA_SET_OWNERS),
            replicas in proptest::option::of(-1..5i32),
        ) -> ReplicaSet {
            let mut m = meta(ns, name, &[]);
            m.owner_references = owners;
            ReplicaSet {
                metadata: m,
                spec: ReplicaSetSpec { replicas, ..ReplicaSetSpec::default() },
                status: None,
            }
        }
    }

    prop_compose! {
        fn scaled()(
            ns in pick(&NAMESPACES),
            name in pick(&OWNER_NAMES),
            labels in labels(),
            replicas in proptest::option::of(-1..5i32),
        ) -> (ObjectMeta, Option<i32>) {
            let mut m = meta(ns, name, &[]);
            m.labels = labels;
            (m, replicas)
        }
    }

    fn selector_strategy() -> impl Strategy<Value = Option<LabelSelector>> {
        let expr = (
            pick(&["app", "tier", QUARANTINE_LABEL]),
            pick(&["In", "NotIn", "Exists", "DoesNotExist", "Bogus"]),
            proptest::collection::vec(pick(&["web", "db", ""]), 0..3),
        )
            .prop_map(|(k, op, vs)| LabelSelectorRequirement {
                key: k.to_owned(),
                operator: op.to_owned(),
                values: Some(vs.into_iter().map(str::to_owned).collect()),
            });
        proptest::option::weighted(
            0.85,
            (
                labels(),
                proptest::option::of(proptest::collection::vec(expr, 0..3)),
            )
                .prop_map(|(match_labels, match_expressions)| LabelSelector {
                    match_labels,
                    match_expressions,
                }),
        )
    }

    prop_compose! {
        fn pdb_obj()(
            ns in pick(&NAMESPACES),
            name in pick(&["b-0", "b-1", "b-2"]),
            selector in selector_strategy(),
            status in proptest::option::weighted(0.9, proptest::option::of(-1..4i32)),
        ) -> PodDisruptionBudget {
            PodDisruptionBudget {
                metadata: meta(ns, name, &[]),
                spec: Some(PodDisruptionBudgetSpec { selector, ..PodDisruptionBudgetSpec::default() }),
                status: status.map(|disruptions_allowed| PodDisruptionBudgetStatus {
                    disruptions_allowed,
                    ..PodDisruptionBudgetStatus::default()
                }),
            }
        }
    }

    prop_compose! {
        fn cluster()(
            pods in proptest::collection::vec(pod(), 0..14),
            replica_sets in proptest::collection::vec(replica_set_obj(), 0..6),
            deployments in proptest::collection::vec(scaled(), 0..3),
            stateful_sets in proptest::collection::vec(scaled(), 0..3),
            daemon_sets in proptest::collection::vec((scaled(), proptest::bool::ANY), 0..3),
            pdbs in proptest::collection::vec(pdb_obj(), 0..4),
        ) -> ClusterObjects {
            ClusterObjects {
                pods,
                replica_sets,
                deployments: deployments
                    .into_iter()
                    .map(|(m, replicas)| {
                        let mut d = deployment("", "", 0, &[]);
                        d.metadata = m;
                        d.spec.replicas = replicas;
                        d
                    })
                    .collect(),
                stateful_sets: stateful_sets
                    .into_iter()
                    .map(|(m, replicas)| {
                        let mut s = stateful_set("", "", replicas);
                        s.metadata = m;
                        s
                    })
                    .collect(),
                daemon_sets: daemon_sets
                    .into_iter()
                    .map(|((m, n), with_status)| {
                        let mut d = daemon_set("", "", 0);
                        d.metadata = m;
                        d.status = with_status.then(|| DaemonSetStatus {
                            desired_number_scheduled: n.unwrap_or(0),
                            ..DaemonSetStatus::default()
                        });
                        d
                    })
                    .collect(),
                pdbs,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_generated_cluster_gets_the_same_answers_from_the_compact_view_and_the_whole_objects(
            objects in cluster(),
            extra in proptest::collection::vec(pod(), 0..4),
        ) {
            assert_same_answers(&objects, &extra);
        }

        #[test]
        fn a_pod_decodes_from_json_as_it_reads_from_the_object(p in pod()) {
            let json = serde_json::to_vec(&p).unwrap();
            let decoded: PodWire = serde_json::from_slice(&json).unwrap();
            prop_assert_eq!(decoded, PodWire::from_pod(&p));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding, relists, interning.
// ---------------------------------------------------------------------------------------------

const REALISTIC_POD: &str = include_str!("../../tests/fixtures/pod-deployment.json");

#[test]
fn a_realistic_pod_keeps_only_what_decisions_read() {
    let wire: wire::PodWire = serde_json::from_str(REALISTIC_POD).unwrap();
    assert_eq!(wire.metadata.name.as_deref(), Some("web-7d4b9c8f6d-x2k9p"));
    assert_eq!(wire.metadata.namespace.as_deref(), Some("shop"));
    assert_eq!(
        wire.metadata.uid.as_deref(),
        Some("8f1152d3-2c0c-499a-8c18-9be44c6b0a84")
    );
    assert_eq!(wire.metadata.resource_version.as_deref(), Some("4791"));
    // Nothing else of the metadata is held.
    assert!(wire.metadata.annotations.is_none() && wire.metadata.managed_fields.is_none());
    assert_eq!(wire.labels.len(), 5);
    assert_eq!(
        wire.controller,
        Some(wire::Controller {
            api_version: "apps/v1".to_owned(),
            kind: "ReplicaSet".to_owned(),
            name: "web-7d4b9c8f6d".to_owned(),
        })
    );
    assert!(wire.ready && !wire.terminating);
    assert_eq!(wire.node.as_deref(), Some("node-017"));
    assert_eq!(wire.phase.as_deref(), Some("Running"));
    // The full object, decoded by k8s-openapi, reads the same.
    let full: Pod = serde_json::from_str(REALISTIC_POD).unwrap();
    assert_eq!(wire::PodWire::from_pod(&full), wire);
}

fn wire_pod(ns: &str, name: &str, rs: &str, ready: bool) -> wire::PodWire {
    wire::PodWire::from_pod(
        &PodB::new(ns, name)
            .labels(&[("app", "web")])
            .rs(rs)
            .ready(ready)
            .build(),
    )
}

#[test]
fn a_relist_drops_what_it_did_not_bring_back_and_only_in_its_namespace() {
    let mut s = state::State::default();
    let rs: wire::ReplicaSetWire = wire::from_full(&replica_set(
        "shop",
        "web-abc",
        Some("web"),
        &[("app", "web")],
    ))
    .unwrap();
    let dep: wire::DeploymentWire =
        wire::from_full(&deployment("shop", "web", 3, &[("app", "web")])).unwrap();
    s.put(&rs, 1);
    s.put(&dep, 1);
    for (i, ready) in [true, true, false].into_iter().enumerate() {
        s.put(&wire_pod("shop", &format!("web-{i}"), "web-abc", ready), 1);
    }
    s.put(&wire_pod("other", "x", "x-1", true), 7);
    let web = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
    assert_eq!(
        s.workload(&web),
        Some(WorkloadStatus {
            desired: 3,
            available: 2
        })
    );
    // The relist of `shop` (generation 2) brings back web-1 and web-2 only.
    s.put(&wire_pod("shop", "web-1", "web-abc", true), 2);
    s.put(&wire_pod("shop", "web-2", "web-abc", true), 2);
    s.sweep(state::Kind::Pod, Some("shop"), 2);
    assert_eq!(s.pod("shop", "web-0"), None);
    assert_eq!(
        s.workload(&web),
        Some(WorkloadStatus {
            desired: 3,
            available: 2
        })
    );
    assert_eq!(s.workload_pods(&web).len(), 2);
    // Another namespace's pods and other kinds are left alone.
    assert!(s.pod("other", "x").is_some());
    assert_eq!(s.counts(), [3, 1, 1, 0, 0, 0]);
    // A relist of everything (generation 3) that brings nothing back empties the kind.
    s.sweep(state::Kind::Pod, None, 3);
    assert_eq!(s.counts(), [0, 1, 1, 0, 0, 0]);
    assert_eq!(
        s.workload(&web),
        Some(WorkloadStatus {
            desired: 3,
            available: 0
        })
    );
}

#[test]
fn a_pod_moved_to_another_owner_or_deleted_leaves_the_index() {
    let mut s = state::State::default();
    let a = WorkloadRef::new(WorkloadKind::ReplicaSet, "shop", "a");
    let b = WorkloadRef::new(WorkloadKind::ReplicaSet, "shop", "b");
    s.put(&wire_pod("shop", "p", "a", true), 1);
    // No ReplicaSet object: its desired count is unknown, so no status.
    assert_eq!(s.workload(&a), None);
    assert_eq!(s.workload_pods(&a).len(), 1);
    s.put(&wire_pod("shop", "p", "b", true), 1);
    assert!(s.workload_pods(&a).is_empty());
    assert_eq!(s.workload_pods(&b).len(), 1);
    s.remove(&wire_pod("shop", "p", "b", true));
    assert!(s.workload_pods(&b).is_empty());
    assert_eq!(s.counts(), [0; 6]);
}

#[test]
fn interned_strings_of_deleted_pods_are_forgotten() {
    let mut s = state::State::default();
    for round in 0..8 {
        for i in 0..3000 {
            // Unique labels per pod and round: a StatefulSet-like churn.
            let name = format!("p-{i}");
            let p = PodB::new("ns", &name)
                .labels(&[("pod-name", &format!("{name}-{round}"))])
                .owned_by("apps/v1", "StatefulSet", "db")
                .build();
            s.put(&wire::PodWire::from_pod(&p), round);
        }
    }
    // 3000 pods alive, each with its own name, label value and label set (9000 interned
    // things alive). Without forgetting, 51 000 would be interned (24 000 label sets and
    // values ever seen); a sweep runs once as much was added as was alive after the last one.
    assert_eq!(s.counts()[0], 3000);
    assert!(
        s.interned() <= 2 * 9003 + 4096,
        "interned: {}",
        s.interned()
    );
}

#[test]
fn pod_info_of_a_fetched_pod_follows_the_rules_of_pod() {
    let view = web_cluster(vec![web_pod("web-1", true).build()]);
    // Not in the view (yet): resolved through the view's ReplicaSet to the Deployment.
    let fetched = web_pod("web-9", true).uid("u9").build();
    assert_eq!(view.pod("shop", "web-9"), None);
    assert_eq!(
        view.pod_info(&fetched),
        PodInfo {
            uid: Some("u9".to_owned()),
            ready: true,
            workload: Some(web()),
        }
    );
    // Terminating: not ready. Quarantined: no workload.
    let terminating = web_pod("web-9", true).terminating().build();
    assert!(!view.pod_info(&terminating).ready);
    let quarantined = web_pod("web-9", true)
        .labels(&[(QUARANTINE_LABEL, "reap")])
        .build();
    assert_eq!(view.pod_info(&quarantined).workload, None);
    // A ReplicaSet the view does not hold is the workload itself.
    let unknown_rs = PodB::new("shop", "x").rs("other-rs").ready(true).build();
    assert_eq!(
        view.pod_info(&unknown_rs).workload,
        Some(WorkloadRef::new(
            WorkloadKind::ReplicaSet,
            "shop",
            "other-rs"
        ))
    );
    // A pod the view holds gets the same answer either way.
    let held = web_pod("web-1", true).build();
    assert_eq!(Some(view.pod_info(&held)), view.pod("shop", "web-1"));
}
