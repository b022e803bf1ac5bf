//! Confirming `pod_not_found` with one look-up at the API server, through the production
//! client against a local API server: a pod the view does not hold yet is found and answers
//! by the view's rules (its workload, the PDB that selects it, availability); a pod that does
//! not exist is absent; a server that does not answer is an error to retry, never "absent".

use serde_json::json;
use teflon_core::{ClusterView, WorkloadKind, WorkloadRef};
use teflon_k8s::fake_api::{FakeApiServer, Reply, Request};
use teflon_k8s::lookup::{Looked, PodLookup};
use teflon_k8s::{ClusterObjects, KubeClusterView, ViewConfig};

const INTERNAL: &str = include_str!("fixtures/internal-error-status.json");

fn pod(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "labels": {"app": "web", "pod-template-hash": "7d9f8c"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c", "uid": "uid-rs", "controller": true}],
        },
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

/// The view: Deployment web (3 desired), its ReplicaSet, two Ready pods, a PDB that allows
/// no disruption.
fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

fn view() -> KubeClusterView {
    KubeClusterView::from_objects(ClusterObjects {
        pods: vec![from(pod("web-0")), from(pod("web-1"))],
        replica_sets: vec![from(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-7d9f8c", "namespace": "shop", "uid": "uid-rs",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "uid-web", "controller": true}]},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "7d9f8c"}}},
        }))],
        deployments: vec![from(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "uid-web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {}},
        }))],
        pdbs: vec![from(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 2, "desiredHealthy": 3, "expectedPods": 3},
        }))],
        ..ClusterObjects::default()
    })
}

fn list(items: Vec<serde_json::Value>) -> Reply {
    Reply::ok(
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "9"}, "items": items})
            .to_string(),
    )
}

#[tokio::test]
async fn a_pod_the_view_does_not_hold_yet_is_found_and_answers_by_the_views_rules() {
    let server = FakeApiServer::start(|r: &Request| {
        if r.path == "/api/v1/namespaces/shop/pods" && r.query.contains("web-new") {
            list(vec![pod("web-new")])
        } else {
            list(vec![])
        }
    })
    .await
    .expect("fake API server");
    let view = view();
    assert_eq!(view.pod("shop", "web-new"), None);
    let lookup = PodLookup::new(
        server.client().expect("client"),
        view,
        &ViewConfig::default(),
    );
    let Looked::Found(found) = lookup.lookup("shop", "web-new").await.expect("an answer") else {
        panic!("web-new exists");
    };
    let web = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
    let info = found.pod("shop", "web-new").expect("the fetched pod");
    assert_eq!(info.uid.as_deref(), Some("uid-web-new"));
    assert_eq!(info.workload.as_ref(), Some(&web));
    assert!(info.ready);
    // The PDB that selects its labels guards it; it counts as available in its workload.
    assert_eq!(found.disruptions_allowed("shop", "web-new"), Some(0));
    assert_eq!(
        found.workload(&web).map(|s| (s.desired, s.available)),
        Some((3, 3))
    );
    // Everything else answers as the view does.
    assert!(found.pod("shop", "web-0").is_some());
    assert_eq!(found.pod("shop", "nope"), None);

    assert!(matches!(
        lookup.lookup("shop", "web-ghost").await.expect("an answer"),
        Looked::Absent
    ));
    let asked: Vec<Request> = server.requests();
    assert_eq!(asked.len(), 2);
    assert!(asked.iter().all(|r| r.method == "GET"
        && r.path == "/api/v1/namespaces/shop/pods"
        && r.query.contains("fieldSelector=metadata.name")));
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_an_error_to_retry_not_an_absent_pod() {
    let server = FakeApiServer::start(|_: &Request| Reply::Json(500, INTERNAL.to_owned()))
        .await
        .expect("fake API server");
    let lookup = PodLookup::new(
        server.client().expect("client"),
        view(),
        &ViewConfig::default(),
    );
    let err = lookup
        .lookup("shop", "web-new")
        .await
        .expect_err("no answer");
    assert!(err.to_string().contains("500"), "{err}");
    assert!(server.requests().len() > 1, "retried");
}

#[tokio::test]
async fn the_views_scope_bounds_the_look_up() {
    let server = FakeApiServer::start(|_: &Request| list(vec![pod("web-new")]))
        .await
        .expect("fake API server");
    let scoped = ViewConfig {
        namespaces: vec!["other".to_owned()],
        pod_selector: Some("tier=front".to_owned()),
        ..ViewConfig::default()
    };
    let lookup = PodLookup::new(server.client().expect("client"), view(), &scoped);
    // Outside the watched namespaces: not Teflon's, without a call.
    assert!(matches!(
        lookup.lookup("shop", "web-new").await.expect("an answer"),
        Looked::Absent
    ));
    assert!(server.requests().is_empty());
    // Inside: the view's label selector goes with the look-up.
    let _ = lookup.lookup("other", "web-new").await;
    let r = &server.requests()[0];
    assert!(
        r.query.contains("labelSelector=tier%3Dfront"),
        "{}",
        r.query
    );
}
