//! The live view against API servers: a scripted mock (which lists and watches it opens, in
//! order: bookmarks on, one per kind in the configured namespace, synced only after every
//! initial list) and a fake kube-apiserver over real HTTP reached through kube's client stack
//! (streaming lists, the fallback to paginated lists when the server has none, `continue`
//! tokens, namespace and label scoping, watch events).

use std::collections::BTreeMap;
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use teflon_core::{ClusterView, WorkloadKind, WorkloadRef, WorkloadStatus};
use teflon_k8s::{InitialList, KubeClusterView, ViewConfig};
use tokio::sync::oneshot;
use tower_test::mock;

fn meta(name: &str, labels: &[(&str, &str)], owner: Option<(&str, &str)>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some("shop".to_owned()),
        uid: Some(format!("uid-{name}")),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        owner_references: owner.map(|(kind, n)| {
            vec![OwnerReference {
                api_version: "apps/v1".to_owned(),
                kind: kind.to_owned(),
                name: n.to_owned(),
                uid: format!("uid-{n}"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]
        }),
        ..ObjectMeta::default()
    }
}

fn selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([("app".to_owned(), app.to_owned())])),
        match_expressions: None,
    }
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> String {
    json!({ "apiVersion": api_version, "kind": kind, "metadata": { "resourceVersion": "100" }, "items": items })
        .to_string()
}

/// The LIST answer for a path, by kind.
fn list_for(path: &str) -> String {
    let ready = PodStatus {
        phase: Some("Running".to_owned()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".to_owned(),
            status: "True".to_owned(),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    };
    let pod = |name: &str, ready_status: Option<PodStatus>| {
        serde_json::to_value(Pod {
            metadata: meta(name, &[("app", "web")], Some(("ReplicaSet", "web-abc"))),
            spec: None,
            status: ready_status,
        })
        .expect("a Pod serializes")
    };
    match path.rsplit('/').next().unwrap_or_default() {
        "pods" => list(
            "PodList",
            "v1",
            vec![pod("web-1", Some(ready.clone())), pod("web-2", None)],
        ),
        "replicasets" => list(
            "ReplicaSetList",
            "apps/v1",
            vec![
                serde_json::to_value(ReplicaSet {
                    metadata: meta("web-abc", &[("app", "web")], Some(("Deployment", "web"))),
                    spec: ReplicaSetSpec {
                        replicas: Some(2),
                        selector: selector("web"),
                        ..ReplicaSetSpec::default()
                    },
                    status: None,
                })
                .expect("a ReplicaSet serializes"),
            ],
        ),
        "deployments" => list(
            "DeploymentList",
            "apps/v1",
            vec![
                serde_json::to_value(Deployment {
                    metadata: meta("web", &[], None),
                    spec: DeploymentSpec {
                        replicas: Some(2),
                        selector: selector("web"),
                        ..DeploymentSpec::default()
                    },
                    status: None,
                })
                .unwrap(),
            ],
        ),
        "statefulsets" => list("StatefulSetList", "apps/v1", vec![]),
        "daemonsets" => list("DaemonSetList", "apps/v1", vec![]),
        "poddisruptionbudgets" => list(
            "PodDisruptionBudgetList",
            "policy/v1",
            vec![
                serde_json::to_value(PodDisruptionBudget {
                    metadata: meta("web-pdb", &[], None),
                    spec: Some(PodDisruptionBudgetSpec {
                        selector: Some(selector("web")),
                        ..PodDisruptionBudgetSpec::default()
                    }),
                    status: Some(PodDisruptionBudgetStatus {
                        disruptions_allowed: Some(1),
                        ..PodDisruptionBudgetStatus::default()
                    }),
                })
                .unwrap(),
            ],
        ),
        other => panic!("unexpected list of {other}"),
    }
}

const PATHS: [&str; 6] = [
    "/api/v1/namespaces/shop/pods",
    "/apis/apps/v1/namespaces/shop/replicasets",
    "/apis/apps/v1/namespaces/shop/deployments",
    "/apis/apps/v1/namespaces/shop/statefulsets",
    "/apis/apps/v1/namespaces/shop/daemonsets",
    "/apis/policy/v1/namespaces/shop/poddisruptionbudgets",
];

fn ok(body: String) -> Response<Body> {
    Response::builder()
        .status(200)
        .body(Body::from(body.into_bytes()))
        .unwrap()
}

#[tokio::test]
async fn the_view_lists_and_watches_each_kind_with_bookmarks_and_syncs_after_the_last_list() {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (five_answered_tx, five_answered) = oneshot::channel::<()>();
    let (go_tx, go) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let mut lists = Vec::new();
        let mut watches = Vec::new();
        let mut held = Vec::new();
        let mut pdb_list = None;
        let mut five = Some(five_answered_tx);
        let mut go = Some(go);
        while watches.len() < 6 {
            let (request, send) = handle.next_request().await.expect("a request");
            assert_eq!(request.method(), "GET");
            let path = request.uri().path().to_owned();
            let query = request.uri().query().unwrap_or_default().to_owned();
            assert!(PATHS.contains(&path.as_str()), "unexpected path {path}");
            if query.contains("watch=true") {
                assert!(
                    query.contains("allowWatchBookmarks=true"),
                    "bookmarks requested: {query}"
                );
                assert!(
                    query.contains("resourceVersion=100"),
                    "watch from the list's version: {query}"
                );
                watches.push(path);
                held.push(send); // a watch that stays open
                continue;
            }
            assert_eq!(query, "&limit=50", "an initial paged list of {path}");
            lists.push(path.clone());
            if path.ends_with("poddisruptionbudgets") {
                pdb_list = Some(send);
            } else {
                send.send_response(ok(list_for(&path)));
            }
            if lists.len() == 6 {
                // Every list but the PDBs' answered: let the test look, then answer it.
                if let Some(tx) = five.take() {
                    let _ = tx.send(());
                }
                if let Some(rx) = go.take() {
                    rx.await.unwrap();
                }
                if let Some(send) = pdb_list.take() {
                    send.send_response(ok(list_for(PATHS[5])));
                }
            }
        }
        lists.sort();
        watches.sort();
        let mut expected: Vec<String> = PATHS.iter().map(|p| (*p).to_owned()).collect();
        expected.sort();
        assert_eq!(lists, expected);
        assert_eq!(watches, expected);
        // Keep the watches open until the test is done with the view.
        (handle, held)
    });

    let view = KubeClusterView::start(
        client,
        &ViewConfig {
            namespaces: vec!["shop".to_owned()],
            initial_list: InitialList::Paginated,
            ..ViewConfig::default()
        },
    );
    tokio::time::timeout(Duration::from_secs(10), five_answered)
        .await
        .unwrap()
        .unwrap();
    assert!(!view.is_synced(), "the PDB list is not answered yet");
    go_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), view.wait_synced())
        .await
        .unwrap();
    assert!(view.is_synced());

    let web = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
    assert_eq!(
        view.pod("shop", "web-1").unwrap().workload,
        Some(web.clone())
    );
    assert_eq!(
        view.workload(&web),
        Some(WorkloadStatus {
            desired: 2,
            available: 1
        })
    );
    assert_eq!(view.disruptions_allowed("shop", "web-2"), Some(1));
    let (_handle, _held) = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap();
}

/// A ready pod of ReplicaSet web-abc as watch-event JSON.
fn pod_event(kind: &str, name: &str) -> String {
    let pod = Pod {
        metadata: ObjectMeta {
            resource_version: Some("101".to_owned()),
            ..meta(name, &[("app", "web")], Some(("ReplicaSet", "web-abc")))
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: "True".to_owned(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    };
    format!("{}\n", json!({ "type": kind, "object": pod }))
}

#[tokio::test]
async fn a_reap_through_the_actuator_is_measured_when_the_replacement_is_ready() {
    use std::sync::Arc;

    use teflon_core::{Action, ActionId, Actuator, Alert, Outcome, PlannedAction, PodTarget};
    use teflon_k8s::{KubeActuator, RecreationHandle};

    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        let mut pods_watch = None;
        let mut deleted = false;
        loop {
            let Some((request, send)) = handle.next_request().await else {
                return held.len();
            };
            let path = request.uri().path().to_owned();
            let query = request.uri().query().unwrap_or_default().to_owned();
            match request.method().as_str() {
                "GET" if query.contains("watch=true") => {
                    if path.ends_with("/pods") && pods_watch.is_none() && !deleted {
                        pods_watch = Some(send);
                    } else {
                        held.push(send);
                    }
                }
                "GET" => send.send_response(ok(list_for(&path))),
                "DELETE" => {
                    assert_eq!(path, "/api/v1/namespaces/shop/pods/web-1");
                    deleted = true;
                    send.send_response(ok(serde_json::to_string(&json!({
                        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": { "name": "web-1", "kind": "pods", "uid": "uid-web-1" },
                    }))
                    .unwrap()));
                    // The ReplicaSet's replacement appears, Ready; the old pod goes.
                    if let Some(watch) = pods_watch.take() {
                        let body = format!(
                            "{}{}",
                            pod_event("DELETED", "web-1"),
                            pod_event("ADDED", "web-3")
                        );
                        watch.send_response(ok(body));
                    }
                }
                "POST" => {
                    assert_eq!(path, "/apis/events.k8s.io/v1/namespaces/shop/events");
                    send.send_response(
                        Response::builder()
                            .status(201)
                            .body(Body::from(b"{}".to_vec()))
                            .unwrap(),
                    );
                }
                other => panic!("unexpected {other} {path}"),
            }
        }
    });

    let view = KubeClusterView::start(
        client.clone(),
        &ViewConfig {
            namespaces: vec!["shop".to_owned()],
            initial_list: InitialList::Paginated,
            ..ViewConfig::default()
        },
    );
    tokio::time::timeout(Duration::from_secs(10), view.wait_synced())
        .await
        .unwrap();
    let (recreation, mut measurements) = RecreationHandle::spawn(view.clone());
    let actuator = KubeActuator::new(client).with_recreation(recreation);
    let web = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
    let action = PlannedAction {
        id: ActionId(1),
        pod: PodTarget {
            namespace: "shop".to_owned(),
            name: "web-1".to_owned(),
            uid: Some("uid-web-1".to_owned()),
        },
        workload: Some(web.clone()),
        action: Action::Delete {
            grace_period_secs: Some(0),
        },
        policy: Arc::from("reap-shells"),
        binary: None,
        alert: Arc::new(Alert::test().pod("shop", "web-1").build()),
        deadline: teflon_core::Timestamp::from_nanos(
            i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos(),
            )
            .unwrap(),
        )
        .plus(Duration::from_secs(300)),
    };
    assert_eq!(actuator.execute(&action).await.outcome, Outcome::Success);
    let measured = tokio::time::timeout(Duration::from_secs(10), measurements.recv())
        .await
        .expect("a measurement within the tracker's tick")
        .expect("the channel is open");
    assert_eq!(measured.workload, web);
    assert_eq!(view.pod("shop", "web-1"), None);
    assert!(view.pod("shop", "web-3").unwrap().ready);
    drop((view, actuator, measurements));
    server.abort();
}

// ---------------------------------------------------------------------------------------------
// Against a fake kube-apiserver over HTTP, through `Client::try_from(Config)`.
// ---------------------------------------------------------------------------------------------

#[path = "support/apiserver.rs"]
mod apiserver;

use std::sync::Arc;

use apiserver::{FakeApiServer, Options, Seen, StaticObjects};

fn http_client(server: &FakeApiServer) -> Client {
    let config = kube::Config::new(server.url().parse().unwrap());
    Client::try_from(config).unwrap()
}

fn web_pod(ns: &str, name: &str, ready: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some(ns.to_owned()),
            resource_version: Some("10".to_owned()),
            ..meta(name, &[("app", "web")], Some(("ReplicaSet", "web-abc")))
        },
        spec: None,
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: if ready { "True" } else { "False" }.to_owned(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

/// `shop`: Deployment web (3 replicas) → ReplicaSet web-abc → `pods` pods (every third not
/// Ready), a PDB; `other`: one more pod of another app.
fn shop(pods: usize) -> StaticObjects {
    let mut objects = StaticObjects::default()
        .with(&ReplicaSet {
            metadata: ObjectMeta {
                resource_version: Some("10".to_owned()),
                ..meta("web-abc", &[("app", "web")], Some(("Deployment", "web")))
            },
            spec: ReplicaSetSpec {
                replicas: Some(3),
                selector: selector("web"),
                ..ReplicaSetSpec::default()
            },
            status: None,
        })
        .with(&Deployment {
            metadata: ObjectMeta {
                resource_version: Some("10".to_owned()),
                ..meta("web", &[("app", "web")], None)
            },
            spec: DeploymentSpec {
                replicas: Some(3),
                selector: selector("web"),
                ..DeploymentSpec::default()
            },
            status: None,
        })
        .with(&PodDisruptionBudget {
            metadata: ObjectMeta {
                resource_version: Some("10".to_owned()),
                ..meta("web-pdb", &[], None)
            },
            spec: Some(PodDisruptionBudgetSpec {
                selector: Some(selector("web")),
                ..PodDisruptionBudgetSpec::default()
            }),
            status: Some(PodDisruptionBudgetStatus {
                disruptions_allowed: Some(1),
                ..PodDisruptionBudgetStatus::default()
            }),
        });
    for i in 0..pods {
        objects = objects.with(&web_pod("shop", &format!("web-{i}"), i % 3 != 2));
    }
    let mut other = web_pod("other", "db-0", true);
    other.metadata.labels = Some(BTreeMap::from([("app".to_owned(), "db".to_owned())]));
    objects.with(&other)
}

async fn synced(view: &KubeClusterView) {
    tokio::time::timeout(Duration::from_secs(20), view.wait_synced())
        .await
        .expect("the view syncs");
}

fn first_requests_by_path(seen: &[Seen]) -> BTreeMap<String, Seen> {
    let mut first = BTreeMap::new();
    for s in seen {
        first.entry(s.path.clone()).or_insert_with(|| s.clone());
    }
    first
}

#[tokio::test]
async fn a_streaming_list_syncs_the_view_without_a_single_list_request() {
    let server = FakeApiServer::start(Arc::new(shop(4)), Options { watch_list: true }, 0).await;
    let view = KubeClusterView::start(http_client(&server), &ViewConfig::default());
    synced(&view).await;

    let seen = server.seen();
    assert!(seen.iter().all(Seen::is_watch), "no LIST: {seen:#?}");
    let first = first_requests_by_path(&seen);
    assert_eq!(first.len(), 6, "one watch per kind: {first:#?}");
    for s in first.values() {
        assert_eq!(
            s.param("sendInitialEvents").as_deref(),
            Some("true"),
            "{s:?}"
        );
        assert_eq!(
            s.param("resourceVersionMatch").as_deref(),
            Some("NotOlderThan")
        );
        assert_eq!(s.param("allowWatchBookmarks").as_deref(), Some("true"));
    }
    let web = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
    assert_eq!(
        view.workload(&web),
        Some(WorkloadStatus {
            desired: 3,
            available: 3
        })
    );
    assert_eq!(view.disruptions_allowed("shop", "web-0"), Some(1));
    assert_eq!(view.counts().pods, 5);
}

#[tokio::test]
async fn without_streaming_lists_the_view_falls_back_to_pages_with_continue_tokens() {
    // 251 pods: six pages of 50.
    let server = FakeApiServer::start(Arc::new(shop(250)), Options { watch_list: false }, 0).await;
    let view = KubeClusterView::start(http_client(&server), &ViewConfig::default());
    synced(&view).await;
    assert_eq!(view.counts().pods, 251);

    let pods: Vec<Seen> = server
        .seen()
        .into_iter()
        .filter(|s| s.path == "/api/v1/pods")
        .collect();
    // A streaming attempt, refused with 422; then the pages; then a watch from the list's
    // resourceVersion, without initial events.
    assert_eq!(pods[0].param("sendInitialEvents").as_deref(), Some("true"));
    let lists: Vec<&Seen> = pods.iter().filter(|s| !s.is_watch()).collect();
    assert!(
        lists
            .iter()
            .all(|s| s.param("limit").as_deref() == Some("50"))
    );
    let tokens: Vec<Option<String>> = lists.iter().map(|s| s.param("continue")).collect();
    let expected: Vec<Option<String>> = std::iter::once(None)
        .chain((1..6).map(|i| Some(format!("i:{}", 50 * i))))
        .collect();
    assert_eq!(tokens, expected, "{pods:#?}");
    // The watch starts once the list is applied (the view is synced by then).
    let watch = tokio::time::timeout(
        Duration::from_secs(20),
        server.wait_for(|s| {
            s.path == "/api/v1/pods" && s.is_watch() && s.param("sendInitialEvents").is_none()
        }),
    )
    .await
    .expect("a watch after the list");
    assert_eq!(watch.param("resourceVersion").as_deref(), Some("1000"));
    assert_eq!(watch.param("allowWatchBookmarks").as_deref(), Some("true"));
    // Only one streaming attempt per kind: the fallback is for good.
    let attempts = server
        .seen()
        .iter()
        .filter(|s| s.param("sendInitialEvents").is_some())
        .count();
    assert_eq!(attempts, 6);

    let web = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
    assert_eq!(
        view.workload(&web),
        Some(WorkloadStatus {
            desired: 3,
            available: 167
        })
    );
}

#[tokio::test]
async fn namespaces_and_a_pod_selector_scope_what_is_watched() {
    let server = FakeApiServer::start(Arc::new(shop(3)), Options::default(), 0).await;
    let view = KubeClusterView::start(
        http_client(&server),
        &ViewConfig {
            namespaces: vec!["shop".to_owned(), "other".to_owned(), "shop".to_owned()],
            pod_selector: Some("app=web".to_owned()),
            ..ViewConfig::default()
        },
    );
    synced(&view).await;
    let first = first_requests_by_path(&server.seen());
    // Six kinds in two namespaces (the duplicate is dropped), nothing cluster-wide.
    assert_eq!(first.len(), 12, "{first:#?}");
    assert!(
        first
            .keys()
            .all(|p| p.contains("/namespaces/shop/") || p.contains("/namespaces/other/"))
    );
    for (path, s) in &first {
        let expected = path.ends_with("/pods").then(|| "app=web".to_owned());
        assert_eq!(s.param("labelSelector"), expected, "{path}");
    }
    // The db pod in `other` is not selected; the web pods are.
    assert_eq!(view.pod("other", "db-0"), None);
    assert!(view.pod("shop", "web-0").is_some());
    assert_eq!(view.counts().pods, 3);
    // Owners and budgets are watched whole.
    assert_eq!(view.counts().pdbs, 1);
}

#[tokio::test]
async fn watch_events_change_readiness_and_delete_pods() {
    let server = FakeApiServer::start(Arc::new(shop(3)), Options::default(), 0).await;
    let view = KubeClusterView::start(http_client(&server), &ViewConfig::default());
    synced(&view).await;
    let web = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
    assert_eq!(view.workload(&web).unwrap().available, 2);

    let mut changes = view.subscribe();
    changes.borrow_and_update();
    let to_json = |p: &Pod| {
        let mut v = serde_json::to_value(p).unwrap();
        v["kind"] = "Pod".into();
        v["apiVersion"] = "v1".into();
        v
    };
    server.push("pods", "MODIFIED", to_json(&web_pod("shop", "web-2", true)));
    server.push("pods", "DELETED", to_json(&web_pod("shop", "web-0", true)));
    server.push("pods", "ADDED", to_json(&web_pod("shop", "web-3", false)));
    let until = |want: usize| {
        let view = view.clone();
        let mut changes = changes.clone();
        async move {
            while view.counts().pods != want || view.pod("shop", "web-3").is_none() {
                changes.changed().await.unwrap();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), until(4))
        .await
        .expect("the events arrive");
    assert_eq!(view.pod("shop", "web-0"), None);
    assert!(view.pod("shop", "web-2").unwrap().ready);
    assert!(!view.pod("shop", "web-3").unwrap().ready);
    assert_eq!(view.workload(&web).unwrap().available, 2);
}
