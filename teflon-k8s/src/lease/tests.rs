//! Lease protocol against a scripted API server (every request's method, path and body is
//! asserted), and, when `TEST_KUBECONFIG` is set, two electors on a real cluster.

#![allow(
    clippy::print_stderr,
    reason = "the real-cluster test says why it skips"
)]

use std::time::Duration;

use http::{Request, Response, StatusCode};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

use super::*;

const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/teflon/leases";
const NOW: &str = "2026-11-23T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().expect("a valid timestamp")
}

fn ago(secs: i64) -> String {
    let t = now()
        .checked_sub(SignedDuration::from_secs(secs))
        .expect("in range");
    // The API server's MicroTime spelling.
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn micro(t: &str) -> String {
    let t: Timestamp = t.parse().expect("a valid timestamp");
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A Lease as the API server returns it.
fn lease(holder: Option<&str>, acquired: &str, renewed: &str, transitions: i32, rv: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "teflon-leader",
            "namespace": "teflon",
            "resourceVersion": rv,
            "uid": "4b6c2d0e-lease",
            "creationTimestamp": "2026-11-23T11:00:00Z"
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": acquired,
            "renewTime": renewed,
            "leaseTransitions": transitions
        }
    })
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": "teflon-leader", "group": "coordination.k8s.io", "kind": "leases"},
        "code": code
    })
}

/// Plays the API server, asserting each request it receives.
struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

impl ApiServerVerifier {
    async fn expect(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> SendResponse<Response<Body>> {
        let (request, send) = self.0.next_request().await.expect("a request");
        assert_eq!(request.method().as_str(), method);
        assert_eq!(request.uri().path(), path, "path of {method}");
        let bytes = request.into_body().collect_bytes().await.expect("a body");
        match body {
            Some(expected) => {
                let got: Value = serde_json::from_slice(&bytes).expect("a JSON body");
                assert_eq!(got, expected, "body of {method} {path}");
            }
            None => assert!(bytes.is_empty(), "{method} {path} has a body"),
        }
        send
    }

    async fn answer(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Value>,
        code: u16,
        reply: Value,
    ) {
        let send = self.expect(method, path, body).await;
        send.send_response(
            Response::builder()
                .status(StatusCode::from_u16(code).expect("a status code"))
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(reply.to_string().into_bytes()))
                .expect("a response"),
        );
    }

    async fn get(&mut self, code: u16, reply: Value) {
        self.answer("GET", &format!("{PATH}/teflon-leader"), None, code, reply)
            .await;
    }

    /// No further request within a second.
    async fn no_more_requests(mut self) {
        let next = tokio::time::timeout(Duration::from_secs(1), self.0.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

fn lock() -> (LeaseLock, ApiServerVerifier) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    (
        LeaseLock::new(client, LeaseConfig::new("teflon", "teflon-a")),
        ApiServerVerifier(handle),
    )
}

/// The Lease body we write: us as holder, renewed now.
fn ours(acquired: &str, transitions: i32, rv: Option<&str>) -> Value {
    let mut metadata = json!({"name": "teflon-leader", "namespace": "teflon"});
    if let Some(rv) = rv {
        metadata = json!({
            "name": "teflon-leader",
            "namespace": "teflon",
            "resourceVersion": rv,
            "uid": "4b6c2d0e-lease",
            "creationTimestamp": "2026-11-23T11:00:00Z"
        });
    }
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": "teflon-a",
            "leaseDurationSeconds": 15,
            "acquireTime": acquired,
            "renewTime": micro(NOW),
            "leaseTransitions": transitions
        }
    })
}

#[tokio::test]
async fn a_missing_lease_is_created_with_us_as_holder() {
    let (mut lock, mut server) = lock();
    let api = tokio::spawn(async move {
        server
            .get(
                404,
                status(
                    404,
                    "NotFound",
                    "leases.coordination.k8s.io \"teflon-leader\" not found",
                ),
            )
            .await;
        let created = ours(&micro(NOW), 0, None);
        server
            .answer("POST", PATH, Some(created.clone()), 201, created)
            .await;
        server.no_more_requests().await;
    });
    assert!(lock.try_acquire_or_renew(now()).await.expect("a round"));
    api.await.expect("the scenario");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_the_resource_version_read() {
    let (mut lock, mut server) = lock();
    let api = tokio::spawn(async move {
        server
            .get(200, lease(Some("teflon-b"), &ago(600), &ago(60), 2, "7"))
            .await;
        let body = ours(&micro(NOW), 3, Some("7"));
        let mut reply = body.clone();
        reply["metadata"]["resourceVersion"] = json!("8");
        server
            .answer(
                "PUT",
                &format!("{PATH}/teflon-leader"),
                Some(body),
                200,
                reply,
            )
            .await;
        server.no_more_requests().await;
    });
    assert!(lock.try_acquire_or_renew(now()).await.expect("a round"));
    api.await.expect("the scenario");
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once() {
    let (mut lock, mut server) = lock();
    let api = tokio::spawn(async move {
        server
            .get(200, lease(None, &ago(600), &ago(1), 4, "11"))
            .await;
        let body = ours(&micro(NOW), 5, Some("11"));
        server
            .answer(
                "PUT",
                &format!("{PATH}/teflon-leader"),
                Some(body.clone()),
                200,
                body,
            )
            .await;
        server.no_more_requests().await;
    });
    assert!(lock.try_acquire_or_renew(now()).await.expect("a round"));
    api.await.expect("the scenario");
}

#[tokio::test]
async fn a_lease_held_by_another_replica_is_left_alone() {
    let (mut lock, mut server) = lock();
    let api = tokio::spawn(async move {
        server
            .get(200, lease(Some("teflon-b"), &ago(600), &ago(3), 2, "7"))
            .await;
        server.no_more_requests().await;
    });
    assert!(!lock.try_acquire_or_renew(now()).await.expect("a round"));
    api.await.expect("the scenario");
}

#[tokio::test]
async fn our_own_lease_is_renewed_keeping_its_acquire_time() {
    let (mut lock, mut server) = lock();
    let acquired = ago(600);
    let api = tokio::spawn(async move {
        server
            .get(200, lease(Some("teflon-a"), &acquired, &ago(2), 1, "9"))
            .await;
        let body = ours(&acquired, 1, Some("9"));
        server
            .answer(
                "PUT",
                &format!("{PATH}/teflon-leader"),
                Some(body.clone()),
                200,
                body,
            )
            .await;
        server.no_more_requests().await;
    });
    assert!(lock.try_acquire_or_renew(now()).await.expect("a round"));
    api.await.expect("the scenario");
}

#[tokio::test]
async fn a_conflict_on_update_means_another_replica_won() {
    let (mut lock, mut server) = lock();
    let api = tokio::spawn(async move {
        server
            .get(200, lease(Some("teflon-a"), &ago(600), &ago(2), 1, "9"))
            .await;
        let body = ours(&ago(600), 1, Some("9"));
        let conflict = status(
            409,
            "Conflict",
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"teflon-leader\": the object has been modified; please apply your changes to the latest version and try again",
        );
        server
            .answer(
                "PUT",
                &format!("{PATH}/teflon-leader"),
                Some(body),
                409,
                conflict,
            )
            .await;
        server.no_more_requests().await;
    });
    assert!(!lock.try_acquire_or_renew(now()).await.expect("a round"));
    api.await.expect("the scenario");
}

#[tokio::test]
async fn a_conflict_on_create_means_another_replica_created_it_first() {
    let (mut lock, mut server) = lock();
    let api = tokio::spawn(async move {
        server.get(404, status(404, "NotFound", "not found")).await;
        let body = ours(&micro(NOW), 0, None);
        server
            .answer(
                "POST",
                PATH,
                Some(body),
                409,
                status(409, "AlreadyExists", "already exists"),
            )
            .await;
        server.no_more_requests().await;
    });
    assert!(!lock.try_acquire_or_renew(now()).await.expect("a round"));
    api.await.expect("the scenario");
}

#[tokio::test]
async fn a_server_error_is_reported_not_taken_for_leadership() {
    let (mut lock, mut server) = lock();
    let api = tokio::spawn(async move {
        server
            .get(403, status(403, "Forbidden", "leases is forbidden"))
            .await;
    });
    let err = lock
        .try_acquire_or_renew(now())
        .await
        .expect_err("403 is an error");
    assert!(err.to_string().contains("teflon/teflon-leader"), "{err}");
    api.await.expect("the scenario");
}

#[tokio::test(start_paused = true)]
async fn a_lease_that_stops_changing_expires_by_our_clock_whatever_its_renew_time_says() {
    let (mut lock, mut server) = lock();
    // The holder's clock runs an hour ahead: its renewTime looks fresh by ours forever.
    let future = now()
        .checked_add(SignedDuration::from_secs(3600))
        .expect("in range")
        .to_string();
    let held = lease(Some("teflon-b"), &future, &future, 2, "7");
    let api = tokio::spawn(async move {
        server.get(200, held.clone()).await;
        server.get(200, held.clone()).await;
        server.get(200, held).await;
        let body = ours(&micro(NOW), 3, Some("7"));
        server
            .answer(
                "PUT",
                &format!("{PATH}/teflon-leader"),
                Some(body.clone()),
                200,
                body,
            )
            .await;
    });
    assert!(!lock.try_acquire_or_renew(now()).await.expect("first round"));
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(
        !lock
            .try_acquire_or_renew(now())
            .await
            .expect("10 s later: still held")
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(
        lock.try_acquire_or_renew(now())
            .await
            .expect("15 s unchanged: expired")
    );
    api.await.expect("the scenario");
}

#[tokio::test]
async fn release_empties_the_holder_so_a_follower_takes_over_at_once() {
    let (mut lock, mut server) = lock();
    let api = tokio::spawn(async move {
        server
            .get(200, lease(Some("teflon-a"), &ago(600), &ago(1), 1, "9"))
            .await;
        let mut body = lease(None, &ago(600), &micro(NOW), 1, "9");
        body["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("holderIdentity");
        body["spec"]["leaseDurationSeconds"] = json!(1);
        server
            .answer(
                "PUT",
                &format!("{PATH}/teflon-leader"),
                Some(body.clone()),
                200,
                body,
            )
            .await;
        server.no_more_requests().await;
    });
    lock.release(now()).await.expect("released");
    api.await.expect("the scenario");
}

#[tokio::test]
async fn release_leaves_a_lease_held_by_someone_else_alone() {
    let (mut lock, mut server) = lock();
    let api = tokio::spawn(async move {
        server
            .get(200, lease(Some("teflon-b"), &ago(600), &ago(1), 1, "9"))
            .await;
        server.no_more_requests().await;
    });
    lock.release(now()).await.expect("nothing to release");
    api.await.expect("the scenario");
}

#[tokio::test(start_paused = true)]
async fn the_elector_leads_after_acquiring_and_releases_on_shutdown() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut server = ApiServerVerifier(handle);
    let elector =
        LeaderElector::spawn(client, LeaseConfig::new("teflon", "teflon-a")).expect("valid config");
    let mut leading = elector.watch();
    assert!(!elector.is_leader(), "nobody leads before the first round");

    // Round 1: create. The body's times are the real clock's, so only the path is checked.
    let (request, send) = server.0.next_request().await.expect("GET");
    assert_eq!(request.method(), "GET");
    send.send_response(
        Response::builder()
            .status(404)
            .body(Body::from(
                status(404, "NotFound", "not found")
                    .to_string()
                    .into_bytes(),
            ))
            .expect("a response"),
    );
    let (request, send) = server.0.next_request().await.expect("POST");
    assert_eq!(
        (request.method().as_str(), request.uri().path()),
        ("POST", PATH)
    );
    let bytes = request.into_body().collect_bytes().await.expect("a body");
    let created: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(created["spec"]["holderIdentity"], "teflon-a");
    let mut stored = created.clone();
    stored["metadata"]["resourceVersion"] = json!("1");
    send.send_response(
        Response::builder()
            .status(201)
            .body(Body::from(stored.to_string().into_bytes()))
            .expect("a response"),
    );
    leading.wait_for(|l| *l).await.expect("leadership");
    assert!(elector.is_leader());

    // Shutdown: step down, then release (GET + PUT with no holder).
    let shutdown = tokio::spawn(elector.shutdown());
    let (request, send) = server.0.next_request().await.expect("GET before release");
    assert_eq!(request.method(), "GET");
    send.send_response(
        Response::builder()
            .status(200)
            .body(Body::from(stored.to_string().into_bytes()))
            .expect("a response"),
    );
    let (request, send) = server.0.next_request().await.expect("PUT release");
    assert_eq!(request.method(), "PUT");
    let bytes = request.into_body().collect_bytes().await.expect("a body");
    let released: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert!(
        released["spec"].get("holderIdentity").is_none(),
        "{released}"
    );
    assert_eq!(released["metadata"]["resourceVersion"], "1");
    assert!(!*leading.borrow(), "stepped down before releasing");
    send.send_response(
        Response::builder()
            .status(200)
            .body(Body::from(released.to_string().into_bytes()))
            .expect("a response"),
    );
    shutdown.await.expect("shut down");
}

#[test]
fn default_timings_fail_over_within_seventeen_seconds() {
    let config = LeaseConfig::new("teflon", "teflon-a");
    config.validate().expect("defaults are valid");
    assert_eq!(config.failover_time(), Duration::from_secs(17));
}

#[test]
fn a_renew_deadline_at_or_past_the_lease_duration_is_refused() {
    let mut config = LeaseConfig::new("teflon", "teflon-a");
    config.renew_deadline = config.lease_duration;
    let err = config.validate().expect_err("two leaders possible");
    assert!(err.to_string().contains("renew_deadline"), "{err}");
    let mut config = LeaseConfig::new("teflon", "teflon-a");
    config.retry_period = Duration::ZERO;
    assert!(config.validate().is_err());
}

/// Two electors on one Lease in a fresh namespace of the cluster `TEST_KUBECONFIG` names.
#[tokio::test]
async fn two_electors_on_a_real_cluster_elect_one_leader_and_fail_over_after_release() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::DeleteParams;

    let Ok(path) = std::env::var("TEST_KUBECONFIG") else {
        eprintln!("skipping the real-cluster lease test: TEST_KUBECONFIG is not set");
        return;
    };
    let client = crate::client::from_kubeconfig(std::path::Path::new(&path))
        .await
        .expect("a client for TEST_KUBECONFIG");

    let ns_name = format!("teflon-lease-test-{:08x}", rand::random::<u32>());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(json!({"metadata": {"name": ns_name}})).expect("a namespace");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");

    let timings = |identity: &str| LeaseConfig {
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(500),
        ..LeaseConfig::new(ns_name.clone(), identity)
    };
    let a = LeaderElector::spawn(client.clone(), timings("elector-a")).expect("a");
    let b = LeaderElector::spawn(client.clone(), timings("elector-b")).expect("b");

    let result = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !(a.is_leader() || b.is_leader()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "nobody became leader"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Let a few rounds pass: exactly one leads throughout.
        for _ in 0..20 {
            assert!(a.is_leader() != b.is_leader(), "exactly one leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (leader, follower) = if a.is_leader() { (a, b) } else { (b, a) };
        let released_at = tokio::time::Instant::now();
        leader.shutdown().await;
        let mut watch = follower.watch();
        tokio::time::timeout(Duration::from_secs(5), watch.wait_for(|l| *l))
            .await
            .expect("the follower takes over within the retry period after a release")
            .expect("leadership");
        eprintln!("failover after release took {:?}", released_at.elapsed());
        follower.shutdown().await;
    };
    // Clean up even when an assertion fails.
    let outcome = tokio::spawn(result).await;
    namespaces
        .delete(&ns_name, &DeleteParams::default())
        .await
        .expect("namespace deleted");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

const POD_PATH: &str = "/api/v1/namespaces/teflon/pods/teflon-a";

fn pod_reply() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "teflon-a", "namespace": "teflon", "uid": "uid-teflon-a", "resourceVersion": "7"}
    })
}

fn label_patch(value: Value) -> Value {
    json!({"metadata": {"labels": {LEADER_LABEL: value}}})
}

#[tokio::test]
async fn leader_label_is_one_merge_patch_on_our_own_pod() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut api = ApiServerVerifier(handle);
    let server = tokio::spawn(async move {
        let (request, send) = api.0.next_request().await.expect("a request");
        assert_eq!(request.method().as_str(), "PATCH");
        assert_eq!(request.uri().path(), POD_PATH);
        assert_eq!(
            request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/merge-patch+json")
        );
        let bytes = request.into_body().collect_bytes().await.expect("a body");
        let got: Value = serde_json::from_slice(&bytes).expect("a JSON body");
        assert_eq!(got, label_patch(json!("true")));
        send.send_response(
            Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(pod_reply().to_string().into_bytes()))
                .expect("a response"),
        );
        api
    });
    label_pod_as_leader(&client, "teflon", "teflon-a", true)
        .await
        .expect("labelled");
    server.await.expect("the verifier").no_more_requests().await;
}

#[tokio::test]
async fn leader_label_follows_leadership_and_is_removed_when_the_election_ends() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut api = ApiServerVerifier(handle);
    let (tx, rx) = watch::channel(false);
    let task = tokio::spawn(mirror_leader_label(
        client,
        "teflon".to_owned(),
        "teflon-a".to_owned(),
        rx,
        Duration::from_secs(2),
    ));
    // A follower first clears any label a crashed earlier run of this pod left behind.
    api.answer(
        "PATCH",
        POD_PATH,
        Some(label_patch(Value::Null)),
        200,
        pod_reply(),
    )
    .await;
    tx.send(true).expect("the mirror listens");
    api.answer(
        "PATCH",
        POD_PATH,
        Some(label_patch(json!("true"))),
        200,
        pod_reply(),
    )
    .await;
    // The election ends (its sender is dropped): the label comes off and the task ends.
    drop(tx);
    api.answer(
        "PATCH",
        POD_PATH,
        Some(label_patch(Value::Null)),
        200,
        pod_reply(),
    )
    .await;
    task.await.expect("the mirror task ends");
    api.no_more_requests().await;
}

#[tokio::test(start_paused = true)]
async fn leader_label_is_retried_when_the_api_server_fails() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let mut api = ApiServerVerifier(handle);
    let (tx, rx) = watch::channel(true);
    let task = tokio::spawn(mirror_leader_label(
        client,
        "teflon".to_owned(),
        "teflon-a".to_owned(),
        rx,
        Duration::from_secs(2),
    ));
    api.answer(
        "PATCH",
        POD_PATH,
        Some(label_patch(json!("true"))),
        500,
        status(500, "InternalError", "etcd timeout"),
    )
    .await;
    api.answer(
        "PATCH",
        POD_PATH,
        Some(label_patch(json!("true"))),
        200,
        pod_reply(),
    )
    .await;
    drop(tx);
    api.answer(
        "PATCH",
        POD_PATH,
        Some(label_patch(Value::Null)),
        200,
        pod_reply(),
    )
    .await;
    task.await.expect("the mirror task ends");
}
