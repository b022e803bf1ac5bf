//! RBAC derived from the calls themselves: every action (for every owner kind), releases and
//! expiry (a quarantined pod, a `block_binary` policy, the listing of actions in force), the
//! cluster view, Events, the scale subresource and leader election run through the production client
//! against a local API server that records each request; each request is turned into the
//! (API group, resource, verb) kube-apiserver authorizes (its `RequestInfoFactory` rules, plus
//! the `create` a server-side apply also needs when it creates the object), and the kit's
//! RBAC must grant exactly that set: no verb missing (a 403 on every real cluster), none to
//! spare.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use serde_json::{Value, json};
use teflon_core::{
    Action, ActionId, Actuator, Alert, ClusterView, Outcome, PlannedAction, PodTarget, Timestamp,
    WorkloadKind, WorkloadRef,
};
use teflon_core::{ReleaseCause, ReleaseOutcome, ReleaseTarget, Releaser};
use teflon_k8s::fake_api::{FakeApiServer, Reply, Request};
use teflon_k8s::lease::{LeaseConfig, LeaseLock};
use teflon_k8s::{KubeActuator, KubeClusterView, KubeReleaser, RetryPolicy, ViewConfig};

/// What kube-apiserver authorizes a request as.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Attr {
    /// A resource request: (group, resource[/subresource], verb).
    Resource(String, String, String),
    /// A non-resource URL and verb.
    NonResource(String, String),
}

/// kube-apiserver's `RequestInfoFactory`, for the paths Teflon uses: `/api/v1/...` and
/// `/apis/{group}/{version}/...`, namespaced or not, with name and subresource; GET is
/// `get` with a name, else `list`, or `watch` with `watch=true`; POST `create`; PUT
/// `update`; PATCH `patch`; DELETE `delete`. A server-side apply (PATCH with
/// `application/apply-patch+yaml`) is also authorized as `create` when the object does not
/// exist yet (`k8s.io/apiserver/pkg/endpoints/handlers/patch.go`), so it needs both.
fn attributes(r: &Request) -> Vec<Attr> {
    let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => {
            return vec![Attr::NonResource(r.path.clone(), r.method.to_lowercase())];
        }
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    let (resource, name, sub) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => panic!("unexpected API path {}", r.path),
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_owned(),
    };
    let verb = match (r.method.as_str(), name) {
        ("GET", _) if r.has_param("watch", "true") || r.has_param("watch", "1") => "watch",
        ("GET", Some(_)) => "get",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        (m, _) => panic!("unexpected method {m} {}", r.path),
    };
    let attr = |verb: &str| Attr::Resource(group.to_owned(), resource.clone(), verb.to_owned());
    let mut out = vec![attr(verb)];
    if verb == "patch"
        && r.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/apply-patch"))
    {
        out.push(attr("create"));
    }
    out
}

fn owner(kind: &str, api_version: &str, name: &str) -> Value {
    json!([{ "apiVersion": api_version, "kind": kind, "name": name, "uid": format!("uid-{name}"), "controller": true }])
}

/// The pods this API server holds: one per owner kind, and a standalone one.
fn pod(name: &str) -> Option<Value> {
    let owners = match name {
        "web-1" => owner("ReplicaSet", "apps/v1", "web-7d9f8c"),
        "db-0" => owner("StatefulSet", "apps/v1", "db"),
        "agent-x" => owner("DaemonSet", "apps/v1", "agent"),
        "migrate-x" => owner("Job", "batch/v1", "migrate"),
        "solo" | "quarantined-x" => json!([]),
        _ => return None,
    };
    if name == "quarantined-x" {
        // As quarantine leaves a pod: the record of what it changed, a deadline.
        let record = json!({
            "policy": "reap", "at": "2023-11-14T21:13:20Z",
            "removed_labels": { "app": "web" }, "added_labels": ["teflon.io/quarantined"],
            "network_policy": "teflon-quarantine-quarantined-x",
        });
        return Some(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": name, "namespace": "shop", "uid": "uid-quarantined-x", "resourceVersion": "7",
                "labels": { "teflon.io/quarantined": "reap" },
                "annotations": { "teflon.io/quarantine": record.to_string(), "teflon.io/expires-at": "2023-11-14T22:13:20Z" },
            },
        }));
    }
    Some(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "resourceVersion": "7", "labels": { "app": name }, "ownerReferences": owners,
        },
    }))
}

fn workload(kind: &str, api_version: &str, name: &str) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": { "name": name, "namespace": "shop", "uid": format!("uid-{name}") },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": { "app": name } },
            "template": { "metadata": { "labels": { "app": name } }, "spec": { "containers": [] } },
        },
    })
}

fn scale(name: &str) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": { "name": name, "namespace": "shop" },
        "spec": { "replicas": 3 }, "status": { "replicas": 3 },
    })
}

fn respond(leases: &std::sync::Mutex<Option<Value>>, r: &Request) -> Reply {
    let ok = |v: Value| Reply::ok(v.to_string());
    let echo = |code: u16| Reply::Json(code, String::from_utf8_lossy(&r.body).into_owned());
    let p = r.path.as_str();
    match r.method.as_str() {
        // A streaming list (`sendInitialEvents`): refused as by a server with WatchList off,
        // so the view falls back to paginated lists and plain watches (both verbs appear).
        "GET" if r.has_param("sendInitialEvents", "true") => Reply::Json(
            422,
            include_str!("fixtures/watch-list-disabled-422-status.json").to_owned(),
        ),
        "GET" if r.has_param("watch", "true") || r.has_param("watch", "1") => Reply::OpenStream,
        "GET" if p == "/version" => ok(json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0"})),
        "GET" if p.ends_with("/scale") => ok(scale("web")),
        "GET" if p.contains("/leases/") => match leases.lock().unwrap().clone() {
            Some(l) => ok(l),
            None => Reply::Json(
                404,
                r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#.to_owned(),
            ),
        },
        "GET" if p.contains("/tracingpoliciesnamespaced/") => ok(json!({
            "apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicyNamespaced",
            "metadata": {
                "name": p.rsplit('/').next().unwrap_or_default(), "namespace": "shop",
                "uid": "uid-tp", "resourceVersion": "9",
                "labels": { "app.kubernetes.io/managed-by": "teflon", "teflon.io/policy": "reap" },
                "annotations": { "teflon.io/target": "Deployment/web", "teflon.io/expires-at": "2023-11-14T22:13:20Z" },
            },
            "spec": {},
        })),
        "GET" => {
            let name = p.rsplit('/').next().unwrap_or_default();
            if let Some(pod) = p.contains("/pods/").then(|| pod(name)).flatten() {
                return ok(pod);
            }
            match name {
                "web-7d9f8c" => ok(workload("ReplicaSet", "apps/v1", name)),
                "web" => ok(workload("Deployment", "apps/v1", name)),
                "db" => ok(workload("StatefulSet", "apps/v1", name)),
                "agent" => ok(workload("DaemonSet", "apps/v1", name)),
                "migrate" => ok(workload("Job", "batch/v1", name)),
                // A collection: an empty list (the view's initial lists).
                _ => ok(json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "1"}, "items": []})),
            }
        }
        "POST" | "PUT" if p.contains("/leases") => {
            let mut lease = r.json();
            lease["metadata"]["resourceVersion"] = json!("2");
            *leases.lock().unwrap() = Some(lease.clone());
            Reply::Json(if r.method == "POST" { 201 } else { 200 }, lease.to_string())
        }
        "POST" if p.ends_with("/eviction") => Reply::Json(
            201,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}"#.to_owned(),
        ),
        "POST" => echo(201),
        "PATCH" if p.ends_with("/scale") => ok(scale("web")),
        "PATCH" if p.contains("/pods/") => {
            let name = p.rsplit('/').next().unwrap_or_default();
            ok(pod(name).unwrap_or_else(
                || json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}}),
            ))
        }
        "PATCH" => echo(200),
        "DELETE" if p.contains("/pods/") => {
            ok(pod(p.rsplit('/').next().unwrap_or_default()).unwrap_or(Value::Null))
        }
        "DELETE" => ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})),
        _ => Reply::Json(405, "{}".to_owned()),
    }
}

fn plan(pod: &str, workload: Option<WorkloadRef>, action: Action) -> PlannedAction {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    PlannedAction {
        id: ActionId(1),
        pod: PodTarget {
            namespace: "shop".to_owned(),
            name: pod.to_owned(),
            uid: Some(format!("uid-{pod}")),
        },
        workload,
        action,
        policy: Arc::from("reap"),
        binary: Some("/usr/bin/nc".to_owned()),
        alert: Arc::new(Alert::test().pod("shop", pod).build()),
        deadline: Timestamp::from_nanos(i64::try_from(now).unwrap()).plus(Duration::from_secs(30)),
    }
}

/// Every call Teflon makes, through the production client; the requests the server saw.
async fn every_call() -> Vec<Request> {
    let leases = Arc::new(std::sync::Mutex::new(None));
    let l = leases.clone();
    let server = FakeApiServer::start(move |r: &Request| respond(&l, r))
        .await
        .unwrap();
    let client = server.client().unwrap();

    // The cluster view: list and watch of every kind it reflects.
    let view = KubeClusterView::start(client.clone(), &ViewConfig::default());
    tokio::time::timeout(Duration::from_secs(10), view.wait_synced())
        .await
        .expect("the view syncs");
    assert!(view.is_synced());

    // Confirming a pod the view does not know (`pod_not_found`).
    let lookup =
        teflon_k8s::lookup::PodLookup::new(client.clone(), view.clone(), &ViewConfig::default());
    lookup.lookup("shop", "web-new").await.expect("an answer");

    // Every action, for every owner kind it reads a selector from.
    let actuator = KubeActuator::new(client.clone()).with_retry(RetryPolicy::once());
    let w = |kind: WorkloadKind, name: &str| Some(WorkloadRef::new(kind, "shop", name));
    let quarantine = || Action::Quarantine {
        labels: BTreeMap::new(),
        network_isolate: true,
        expire_after: None,
    };
    let block = || Action::BlockBinary {
        binary_fields: vec!["proc.exepath".to_owned()],
        expire_after: None,
    };
    let plans = [
        plan(
            "web-1",
            w(WorkloadKind::Deployment, "web"),
            Action::Delete {
                grace_period_secs: Some(0),
            },
        ),
        plan(
            "web-1",
            w(WorkloadKind::Deployment, "web"),
            Action::Evict {
                grace_period_secs: None,
            },
        ),
        plan("web-1", w(WorkloadKind::Deployment, "web"), quarantine()),
        plan("db-0", w(WorkloadKind::StatefulSet, "db"), quarantine()),
        plan("agent-x", w(WorkloadKind::DaemonSet, "agent"), quarantine()),
        plan("migrate-x", w(WorkloadKind::Job, "migrate"), quarantine()),
        plan("web-1", w(WorkloadKind::Deployment, "web"), block()),
        plan("web-1", w(WorkloadKind::ReplicaSet, "web-7d9f8c"), block()),
        plan("db-0", w(WorkloadKind::StatefulSet, "db"), block()),
        plan("agent-x", w(WorkloadKind::DaemonSet, "agent"), block()),
        plan("migrate-x", w(WorkloadKind::Job, "migrate"), block()),
        plan("solo", None, block()),
    ];
    for p in &plans {
        let executed = actuator.execute(p).await;
        assert_eq!(
            executed.outcome,
            Outcome::Success,
            "{:?} {}",
            p.action,
            p.pod.name
        );
    }

    // Releases, by an operator and by expiry, and the listing of actions in force that the
    // expiry sweep and `GET /v1/actions` make.
    let releaser = KubeReleaser::new(client.clone()).with_retry(RetryPolicy::once());
    releaser.active().await.unwrap();
    let releases = [
        ReleaseTarget::Pod {
            namespace: "shop".to_owned(),
            name: "quarantined-x".to_owned(),
            uid: Some("uid-quarantined-x".to_owned()),
        },
        ReleaseTarget::Policy {
            namespace: "shop".to_owned(),
            name: "teflon-block-web-nc-1a2b3c4d".to_owned(),
        },
    ];
    for target in &releases {
        for cause in [ReleaseCause::Operator, ReleaseCause::Expired] {
            let r = releaser.release(target, cause).await;
            assert_eq!(r.outcome, ReleaseOutcome::Released, "{target} ({cause:?})");
        }
    }

    // The autoscaler's scale subresource.
    let web = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
    let db = WorkloadRef::new(WorkloadKind::StatefulSet, "shop", "db");
    for target in [&web, &db] {
        teflon_k8s::get_scale(&client, target).await.unwrap();
        teflon_k8s::scale(&client, target, 4).await.unwrap();
    }

    // Leader election: create, renew, release the Lease; label the leader's pod.
    let mut lock = LeaseLock::new(client.clone(), LeaseConfig::new("teflon", "teflon-0"));
    let now = k8s_openapi::jiff::Timestamp::now();
    assert!(lock.try_acquire_or_renew(now).await.unwrap(), "created");
    assert!(lock.try_acquire_or_renew(now).await.unwrap(), "renewed");
    lock.release(now).await.unwrap();
    teflon_k8s::lease::label_pod_as_leader(&client, "teflon", "teflon-0", true)
        .await
        .unwrap();

    // The keep-warm pings.
    let warm = teflon_k8s::client::keep_warm(client, 1, Duration::from_secs(3600));
    for _ in 0..500 {
        if server.requests().iter().any(|r| r.path == "/version") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    warm.abort();
    server.requests()
}

fn rules_of(rules: Option<Vec<PolicyRule>>, out: &mut BTreeSet<Attr>) {
    for rule in rules.unwrap_or_default() {
        for group in rule.api_groups.clone().unwrap_or_default() {
            for resource in rule.resources.clone().unwrap_or_default() {
                for verb in &rule.verbs {
                    out.insert(Attr::Resource(
                        group.clone(),
                        resource.clone(),
                        verb.clone(),
                    ));
                }
            }
        }
    }
}

fn docs(text: &str) -> Vec<Value> {
    let values: Vec<Value> = serde_saphyr::from_str_multiple(text).unwrap();
    values.into_iter().filter(|v| !v.is_null()).collect()
}

/// What the kit grants: ClusterRole `teflon` of `deploy/rbac.yaml` and, for the Lease, the
/// Role `teflon-leader-election` of `deploy/manifests/rbac.yaml`.
fn granted() -> BTreeSet<Attr> {
    let mut out = BTreeSet::new();
    for doc in docs(include_str!("../../deploy/rbac.yaml")) {
        if doc["kind"] == "ClusterRole" && doc["metadata"]["name"] == "teflon" {
            let role: ClusterRole = serde_json::from_value(doc).unwrap();
            rules_of(role.rules, &mut out);
        }
    }
    for doc in docs(include_str!("../../deploy/manifests/rbac.yaml")) {
        if doc["kind"] == "Role" && doc["metadata"]["name"] == "teflon-leader-election" {
            let role: Role = serde_json::from_value(doc).unwrap();
            rules_of(role.rules, &mut out);
        }
    }
    out
}

#[tokio::test]
async fn the_kits_rbac_grants_exactly_the_verbs_teflons_calls_need() {
    let requests = every_call().await;
    let mut needed = BTreeSet::new();
    let mut non_resource = BTreeSet::new();
    for r in &requests {
        for a in attributes(r) {
            match a {
                Attr::NonResource(path, verb) => {
                    non_resource.insert((path, verb));
                }
                a => {
                    needed.insert(a);
                }
            }
        }
    }
    let granted = granted();
    let missing: Vec<&Attr> = needed.difference(&granted).collect();
    let unused: Vec<&Attr> = granted.difference(&needed).collect();
    assert!(
        missing.is_empty(),
        "calls the kit's RBAC does not allow (a 403 on every real cluster): {missing:?}"
    );
    assert!(
        unused.is_empty(),
        "RBAC grants that no call needs (least privilege): {unused:?}"
    );
    // The only non-resource URL is /version, which every client may read
    // (`system:public-info-viewer`).
    assert_eq!(
        non_resource,
        BTreeSet::from([("/version".to_owned(), "get".to_owned())])
    );
}

#[test]
fn apply_needs_create_and_watches_are_told_from_lists() {
    let req = |method: &str, path: &str, query: &str, ct: Option<&str>| Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        content_type: ct.map(str::to_owned),
        body: Vec::new(),
        connection: 0,
    };
    let r =
        |g: &str, res: &str, v: &str| Attr::Resource(g.to_owned(), res.to_owned(), v.to_owned());
    assert_eq!(
        attributes(&req(
            "PATCH",
            "/apis/cilium.io/v1alpha1/namespaces/shop/tracingpoliciesnamespaced/x",
            "fieldManager=teflon&force=true",
            Some("application/apply-patch+yaml"),
        )),
        [
            r("cilium.io", "tracingpoliciesnamespaced", "patch"),
            r("cilium.io", "tracingpoliciesnamespaced", "create")
        ]
    );
    assert_eq!(
        attributes(&req(
            "GET",
            "/api/v1/pods",
            "watch=true&resourceVersion=1",
            None
        )),
        [r("", "pods", "watch")]
    );
    assert_eq!(
        attributes(&req("GET", "/api/v1/pods", "limit=500", None)),
        [r("", "pods", "list")]
    );
    assert_eq!(
        attributes(&req(
            "POST",
            "/api/v1/namespaces/shop/pods/web-1/eviction",
            "",
            Some("application/json")
        )),
        [r("", "pods/eviction", "create")]
    );
    assert_eq!(
        attributes(&req(
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/web/scale",
            "",
            Some("application/merge-patch+json")
        )),
        [r("apps", "deployments/scale", "patch")]
    );
}
