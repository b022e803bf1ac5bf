//! Quarantine, `block_binary`, release and expiry through the production client stack
//! (`teflon_k8s::client`) against a local API server that keeps state: it stores the pod,
//! applies JSON patches to it as kube-apiserver does (RFC 6902, `test` ops included: a failed
//! one is a 422 and changes nothing), creates and deletes NetworkPolicies, stores server-side
//! applied TracingPolicyNamespaced objects with a resourceVersion and honours delete
//! preconditions, and answers label-selected lists. Real sockets, real time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use teflon_core::{
    Action, ActionId, ActionKind, Actuator, Alert, Outcome, PlannedAction, PodTarget, Priority,
    ReleaseCause, ReleaseOutcome, ReleaseTarget, Releaser, Timestamp, WorkloadKind, WorkloadRef,
};
use teflon_k8s::fake_api::{FakeApiServer, Reply, Request};
use teflon_k8s::{KubeActuator, KubeReleaser, RetryPolicy};

const POD: &str = "/api/v1/namespaces/shop/pods/web-1";
const RS: &str = "/apis/apps/v1/namespaces/shop/replicasets/web-7d9f8c";
const NETPOLS: &str = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies";
const TPS: &str = "/apis/cilium.io/v1alpha1/namespaces/shop/tracingpoliciesnamespaced";

fn status(code: u16, reason: &str, message: &str) -> Reply {
    Reply::Json(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code}).to_string(),
    )
}

/// The objects the API server holds.
#[derive(Default)]
struct Store {
    pod: Option<Value>,
    network_policies: BTreeMap<String, Value>,
    tracing_policies: BTreeMap<String, Value>,
    version: u64,
}

fn original_labels() -> Value {
    json!({ "app": "web", "pod-template-hash": "7d9f8c", "tier": "front", "zone": "a" })
}

fn pod(uid: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "web-1", "namespace": "shop", "uid": uid, "resourceVersion": "1",
            "labels": original_labels(),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8c", "uid": "uid-rs", "controller": true}],
        },
    })
}

fn replica_set() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": { "name": "web-7d9f8c", "namespace": "shop", "uid": "uid-rs" },
        "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "web", "pod-template-hash": "7d9f8c" } } },
    })
}

fn has_label(obj: &Value, key: &str) -> bool {
    obj["metadata"]["labels"].get(key).is_some()
}

fn respond(store: &Mutex<Store>, r: &Request) -> Reply {
    let mut s = store.lock().unwrap();
    s.version += 1;
    let version = s.version;
    let p = r.path.as_str();
    let name = p.rsplit('/').next().unwrap_or_default().to_owned();
    match (r.method.as_str(), p) {
        ("POST", p) if p.ends_with("/events") => Reply::Json(201, String::from_utf8_lossy(&r.body).into_owned()),
        ("GET", RS) => Reply::ok(replica_set().to_string()),
        ("GET", "/apis/apps/v1/namespaces/shop/deployments/web") => Reply::ok(
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "web", "namespace": "shop", "uid": "uid-web" },
                "spec": { "replicas": 3, "selector": { "matchLabels": { "app": "web" } }, "template": {} },
            })
            .to_string(),
        ),
        ("GET", POD) => match &s.pod {
            Some(pod) => Reply::ok(pod.to_string()),
            None => status(404, "NotFound", "pods \"web-1\" not found"),
        },
        ("PATCH", POD) => {
            let Some(pod) = s.pod.as_mut() else {
                return status(404, "NotFound", "pods \"web-1\" not found");
            };
            let patch: json_patch::Patch = match serde_json::from_slice(&r.body) {
                Ok(p) => p,
                Err(e) => return status(400, "BadRequest", &e.to_string()),
            };
            let mut next = pod.clone();
            if let Err(e) = json_patch::patch(&mut next, &patch.0) {
                return status(422, "Invalid", &format!("the server rejected our request due to an error in our request: {e}"));
            }
            // What the ReplicaSet controller does once the selector labels are gone: it
            // releases the pod (drops its ownerReference).
            if !has_label(&next, "app") {
                next["metadata"]["ownerReferences"] = Value::Null;
            }
            *pod = next;
            Reply::ok(pod.to_string())
        }
        ("GET", "/api/v1/pods") => {
            let items: Vec<Value> = s
                .pod
                .iter()
                .filter(|p| has_label(p, "teflon.io/quarantined"))
                .cloned()
                .collect();
            Reply::ok(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}).to_string())
        }
        ("POST", NETPOLS) => {
            let np = r.json();
            let n = np["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            if s.network_policies.contains_key(&n) {
                return status(409, "AlreadyExists", &format!("networkpolicies.networking.k8s.io \"{n}\" already exists"));
            }
            s.network_policies.insert(n, np.clone());
            Reply::Json(201, np.to_string())
        }
        ("DELETE", p) if p.starts_with(NETPOLS) => match s.network_policies.remove(&name) {
            Some(np) => Reply::ok(np.to_string()),
            None => status(404, "NotFound", "not found"),
        },
        ("PATCH", p) if p.starts_with(TPS) => {
            // Server-side apply by one field manager: the applied object, with server fields.
            let mut obj = r.json();
            let created = s
                .tracing_policies
                .get(&name)
                .map(|o| o["metadata"]["creationTimestamp"].clone())
                .unwrap_or_else(|| json!("2023-11-14T21:13:20Z"));
            obj["metadata"]["uid"] = json!("uid-tp");
            obj["metadata"]["resourceVersion"] = json!(version.to_string());
            obj["metadata"]["creationTimestamp"] = created;
            s.tracing_policies.insert(name, obj.clone());
            Reply::ok(obj.to_string())
        }
        ("GET", "/apis/cilium.io/v1alpha1/tracingpoliciesnamespaced") => {
            let items: Vec<Value> = s.tracing_policies.values().cloned().collect();
            Reply::ok(json!({"apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicyNamespacedList", "metadata": {}, "items": items}).to_string())
        }
        ("GET", p) if p.starts_with(TPS) => match s.tracing_policies.get(&name) {
            Some(o) => Reply::ok(o.to_string()),
            None => status(404, "NotFound", "not found"),
        },
        ("DELETE", p) if p.starts_with(TPS) => {
            let Some(obj) = s.tracing_policies.get(&name) else {
                return status(404, "NotFound", "not found");
            };
            let want = r.json()["preconditions"]["resourceVersion"].clone();
            if !want.is_null() && want != obj["metadata"]["resourceVersion"] {
                return status(409, "Conflict", &format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}", obj["metadata"]["resourceVersion"]));
            }
            let obj = s.tracing_policies.remove(&name).unwrap_or_default();
            Reply::ok(obj.to_string())
        }
        _ => status(404, "NotFound", &format!("{} {p}: not served by this test", r.method)),
    }
}

async fn cluster() -> (FakeApiServer, Arc<Mutex<Store>>) {
    let store = Arc::new(Mutex::new(Store {
        pod: Some(pod("uid-web-1")),
        ..Store::default()
    }));
    let s = store.clone();
    let server = FakeApiServer::start(move |r: &Request| respond(&s, r))
        .await
        .unwrap();
    (server, store)
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    Timestamp::from_nanos(i64::try_from(d.as_nanos()).unwrap())
}

fn plan(action: Action) -> PlannedAction {
    PlannedAction {
        id: ActionId(1),
        pod: PodTarget {
            namespace: "shop".to_owned(),
            name: "web-1".to_owned(),
            uid: Some("uid-web-1".to_owned()),
        },
        workload: Some(WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")),
        action,
        policy: Arc::from("quarantine-miners"),
        binary: Some("/usr/bin/xmrig".to_owned()),
        alert: Arc::new(
            Alert::test()
                .priority(Priority::Critical)
                .pod("shop", "web-1")
                .build(),
        ),
        deadline: now().plus(Duration::from_secs(30)),
    }
}

fn quarantine(expire_after_secs: u64) -> Action {
    Action::Quarantine {
        labels: BTreeMap::from([("tier".to_owned(), "quarantined".to_owned())]),
        network_isolate: true,
        expire_after: Some(Duration::from_secs(expire_after_secs)),
    }
}

/// A releaser whose clock runs `ahead` of the real one (as it is `ahead` later).
fn releaser(server: &FakeApiServer, ahead: Duration) -> KubeReleaser {
    KubeReleaser::new(server.client().unwrap())
        .with_retry(RetryPolicy::once())
        .with_clock(Arc::new(move || SystemTime::now() + ahead))
}

fn actuator(server: &FakeApiServer) -> KubeActuator {
    KubeActuator::new(server.client().unwrap()).with_retry(RetryPolicy::once())
}

#[tokio::test]
async fn quarantine_then_release_gives_back_exactly_the_labels_and_deletes_the_network_policy() {
    let (server, store) = cluster().await;
    let a = plan(quarantine(600));
    assert_eq!(
        actuator(&server).execute(&a).await.outcome,
        Outcome::Success
    );
    {
        let s = store.lock().unwrap();
        let labels = &s.pod.as_ref().unwrap()["metadata"]["labels"];
        assert!(
            labels.get("app").is_none(),
            "out of its ReplicaSet: {labels}"
        );
        assert_eq!(labels["tier"], "quarantined");
        assert!(s.network_policies.contains_key("teflon-quarantine-web-1"));
    }

    let releaser = releaser(&server, Duration::ZERO);
    let active = releaser.active().await.unwrap();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].action, ActionKind::Quarantine);
    let deadline = active[0]
        .expires_at
        .expect("expire_after_secs wrote a deadline");
    let left = deadline.since(now());
    assert!(
        left > Duration::from_secs(590) && left <= Duration::from_secs(600),
        "{left:?}"
    );
    assert_eq!(releaser.target_of(&a), Some(active[0].target.clone()));

    let r = releaser
        .release(&active[0].target, ReleaseCause::Operator)
        .await;
    assert_eq!(r.outcome, ReleaseOutcome::Released, "{r:?}");
    {
        let s = store.lock().unwrap();
        let pod = s.pod.as_ref().unwrap();
        assert_eq!(
            pod["metadata"]["labels"],
            original_labels(),
            "exactly the labels it had"
        );
        assert!(
            pod["metadata"]["annotations"]
                .get("teflon.io/quarantine")
                .is_none()
        );
        assert!(
            pod["metadata"]["annotations"]
                .get("teflon.io/expires-at")
                .is_none()
        );
        assert!(
            pod["metadata"]["annotations"]
                .get("teflon.io/released")
                .is_some()
        );
        assert!(s.network_policies.is_empty(), "the NetworkPolicy is gone");
    }
    assert_eq!(
        releaser.active().await.unwrap(),
        [],
        "nothing in force any more"
    );
    // Releasing again changes nothing and says why.
    let again = releaser
        .release(&active[0].target, ReleaseCause::Operator)
        .await;
    assert!(
        matches!(&again.outcome, ReleaseOutcome::Refused(m) if m.contains("not quarantined")),
        "{again:?}"
    );
    let events = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/events"))
        .map(|r| r.json()["action"].as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(events, ["quarantine", "release", "release"]);
}

#[tokio::test]
async fn release_is_refused_when_the_pod_by_that_name_has_another_uid() {
    let (server, store) = cluster().await;
    assert_eq!(
        actuator(&server)
            .execute(&plan(quarantine(600)))
            .await
            .outcome,
        Outcome::Success
    );
    // A StatefulSet-style replacement: same name, new UID, quarantine record copied along
    // (the worst case: it looks quarantined).
    {
        let mut s = store.lock().unwrap();
        let pod = s.pod.as_mut().unwrap();
        pod["metadata"]["uid"] = json!("uid-web-1-new");
    }
    let before = store.lock().unwrap().pod.clone();
    let r = releaser(&server, Duration::ZERO)
        .release(
            &ReleaseTarget::Pod {
                namespace: "shop".to_owned(),
                name: "web-1".to_owned(),
                uid: Some("uid-web-1".to_owned()),
            },
            ReleaseCause::Operator,
        )
        .await;
    assert!(
        matches!(&r.outcome, ReleaseOutcome::Refused(m) if m.contains("another pod now")),
        "{r:?}"
    );
    let s = store.lock().unwrap();
    assert_eq!(s.pod, before, "nothing changed on the pod");
    assert!(
        s.network_policies.contains_key("teflon-quarantine-web-1"),
        "nor its NetworkPolicy"
    );
}

#[tokio::test]
async fn expiry_releases_only_what_is_due_by_the_deadline_on_the_object() {
    let (server, store) = cluster().await;
    let actuator = actuator(&server);
    assert_eq!(
        actuator.execute(&plan(quarantine(60))).await.outcome,
        Outcome::Success
    );
    let block = plan(Action::BlockBinary {
        binary_fields: vec!["proc.exepath".to_owned()],
        expire_after: Some(Duration::from_secs(3600)),
    });
    assert_eq!(actuator.execute(&block).await.outcome, Outcome::Success);

    // Two minutes later (as a new leader would see it): the quarantine is due, the block not.
    let later = releaser(&server, Duration::from_secs(120));
    let at = now().plus(Duration::from_secs(120));
    let active = later.active().await.unwrap();
    let due: Vec<&ReleaseTarget> = active
        .iter()
        .filter(|a| a.is_expired(at))
        .map(|a| &a.target)
        .collect();
    assert_eq!(due.len(), 1, "{active:#?}");
    let block_target = later.target_of(&block).expect("a policy to delete");
    assert!(
        active
            .iter()
            .any(|a| a.target == block_target && !a.is_expired(at))
    );
    // An expiry the deadline does not allow yet changes nothing.
    let early = later.release(&block_target, ReleaseCause::Expired).await;
    assert!(
        matches!(early.outcome, ReleaseOutcome::Refused(_)),
        "{early:?}"
    );
    assert_eq!(store.lock().unwrap().tracing_policies.len(), 1);
    let r = later.release(due[0], ReleaseCause::Expired).await;
    assert_eq!(r.outcome, ReleaseOutcome::Released, "{r:?}");
    assert_eq!(
        store.lock().unwrap().pod.as_ref().unwrap()["metadata"]["labels"],
        original_labels()
    );

    // Two hours later the block is due too: deleted under its resourceVersion.
    let much_later = releaser(&server, Duration::from_secs(7200));
    let r = much_later
        .release(&block_target, ReleaseCause::Expired)
        .await;
    assert_eq!(r.outcome, ReleaseOutcome::Released, "{r:?}");
    assert!(store.lock().unwrap().tracing_policies.is_empty());
    assert_eq!(much_later.active().await.unwrap(), []);
}
