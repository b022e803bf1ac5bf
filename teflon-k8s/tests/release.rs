//! ApiServerVerifier tests of releases and expiry: every request the releaser sends (method,
//! path, query, JSON body), in order, and how each API answer becomes a `ReleaseOutcome`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use teflon_core::{
    ActionKind, Release, ReleaseCause, ReleaseOutcome, ReleaseTarget, Releaser, Timestamp,
};
use teflon_k8s::{KubeReleaser, QuarantineRecord, RetryPolicy};
use tower_test::mock::{self, Handle, SendResponse};

const NOT_FOUND: &str = include_str!("fixtures/pod-not-found-status.json");
const PATCH_TEST_FAILED: &str = include_str!("fixtures/json-patch-test-failed-status.json");
const INTERNAL: &str = include_str!("fixtures/internal-error-status.json");

/// 2023-11-14T22:13:20.123456789Z.
fn fixed_clock() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789)
}

fn now() -> Timestamp {
    Timestamp::from_nanos(1_700_000_000_123_456_789)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn record() -> String {
    serde_json::to_string(&QuarantineRecord {
        policy: "quarantine-miners".to_owned(),
        at: Timestamp::parse_rfc3339("2023-11-14T21:13:20Z").unwrap(),
        removed_labels: labels(&[("app", "web"), ("pod-template-hash", "7d9f8c")]),
        added_labels: vec![
            "forensics".to_owned(),
            "teflon.io/quarantined".to_owned(),
            "teflon.io/quarantined-pod".to_owned(),
        ],
        network_policy: Some("teflon-quarantine-web-1".to_owned()),
    })
    .unwrap()
}

/// web-1 as quarantine left it: selector labels gone (and, with them, the ReplicaSet's
/// ownerReference: the controller released it), quarantine labels and record on, a deadline.
fn quarantined_pod(uid: &str, expires_at: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "web-1", "namespace": "shop", "uid": uid, "resourceVersion": "4712",
            "labels": {
                "forensics": "hold",
                "teflon.io/quarantined": "quarantine-miners",
                "teflon.io/quarantined-pod": "web-1",
                "zone": "a",
            },
            "annotations": {
                "teflon.io/alert": "{}",
                "teflon.io/quarantine": record(),
                "teflon.io/expires-at": expires_at,
            },
        },
    })
}

fn pod_target(uid: Option<&str>) -> ReleaseTarget {
    ReleaseTarget::Pod {
        namespace: "shop".to_owned(),
        name: "web-1".to_owned(),
        uid: uid.map(str::to_owned),
    }
}

fn release_patch(cause: &str) -> Value {
    json!([
        { "op": "test", "path": "/metadata/uid", "value": "uid-web-1" },
        { "op": "test", "path": "/metadata/annotations/teflon.io~1quarantine", "value": record() },
        { "op": "remove", "path": "/metadata/labels/forensics" },
        { "op": "remove", "path": "/metadata/labels/teflon.io~1quarantined" },
        { "op": "remove", "path": "/metadata/labels/teflon.io~1quarantined-pod" },
        { "op": "add", "path": "/metadata/labels/app", "value": "web" },
        { "op": "add", "path": "/metadata/labels/pod-template-hash", "value": "7d9f8c" },
        { "op": "remove", "path": "/metadata/annotations/teflon.io~1quarantine" },
        { "op": "remove", "path": "/metadata/annotations/teflon.io~1expires-at" },
        { "op": "add", "path": "/metadata/annotations/teflon.io~1released",
          "value": json!({"at": "2023-11-14T22:13:20.123456789Z", "cause": cause, "policy": "quarantine-miners"}).to_string() },
    ])
}

const POD_URI: &str = "/api/v1/namespaces/shop/pods/web-1";
const PATCH_URI: &str = "/api/v1/namespaces/shop/pods/web-1?";
const NETPOL_URI: &str =
    "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies/teflon-quarantine-web-1?";
const EVENTS_URI: &str = "/apis/events.k8s.io/v1/namespaces/shop/events?";
const TP_NAME: &str = "teflon-block-web-xmrig-1a2b3c4d";

fn tp_uri() -> String {
    format!("/apis/cilium.io/v1alpha1/namespaces/shop/tracingpoliciesnamespaced/{TP_NAME}")
}

type MockHandle = Handle<Request<Body>, Response<Body>>;

/// Plays the API server for one scenario, asserting each request it receives.
struct ApiServerVerifier(MockHandle);

impl ApiServerVerifier {
    async fn expect(
        &mut self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (SendResponse<Response<Body>>, Value) {
        let (request, send) = self
            .0
            .next_request()
            .await
            .expect("the releaser sends a request");
        assert_eq!(request.method().as_str(), method, "method of {uri}");
        assert_eq!(request.uri().to_string(), uri);
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let got: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(expected) = body {
            assert_eq!(got, expected, "body of {method} {uri}");
        }
        (send, got)
    }

    async fn answer(
        &mut self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        code: u16,
        reply: &str,
    ) -> Value {
        let (send, got) = self.expect(method, uri, body).await;
        send.send_response(
            Response::builder()
                .status(StatusCode::from_u16(code).unwrap())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(reply.as_bytes().to_vec()))
                .unwrap(),
        );
        got
    }

    /// The release's Event: regarding `regarding`, action `release`, the policy as reason,
    /// a note starting with `note_prefix`.
    async fn event(&mut self, regarding: Value, note_prefix: &str, type_: &str) {
        let got = self.answer("POST", EVENTS_URI, None, 201, "{}").await;
        assert_eq!(got["action"], "release");
        assert_eq!(got["reason"], "quarantine-miners");
        assert_eq!(got["type"], type_);
        assert_eq!(got["regarding"], regarding);
        assert_eq!(got["reportingInstance"], "teflon-test-0");
        let note = got["note"].as_str().unwrap();
        assert!(note.starts_with(note_prefix), "{note:?} ≠ {note_prefix:?}…");
    }

    fn pod_ref() -> Value {
        json!({ "apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "uid-web-1" })
    }

    async fn done(mut self) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_secs(30), self.0.next_request()).await
        {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

fn releaser(client: Client) -> KubeReleaser {
    KubeReleaser::new(client)
        .with_reporting_instance("teflon-test-0")
        .with_clock(Arc::new(fixed_clock))
        .with_retry(RetryPolicy::short())
}

async fn run<F, Fut>(target: ReleaseTarget, cause: ReleaseCause, scenario: F) -> Release
where
    F: FnOnce(ApiServerVerifier) -> Fut + Send + 'static,
    Fut: Future<Output = ApiServerVerifier> + Send,
{
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let releaser = releaser(Client::new(service, "default"));
    let verifier =
        tokio::spawn(async move { scenario(ApiServerVerifier(handle)).await.done().await });
    let release = releaser.release(&target, cause).await;
    tokio::time::timeout(Duration::from_secs(60), verifier)
        .await
        .expect("the scenario finished")
        .expect("the scenario's assertions held");
    release
}

#[tokio::test(start_paused = true)]
async fn release_deletes_the_network_policy_then_restores_the_labels_in_one_tested_patch() {
    let pod = quarantined_pod("uid-web-1", "2023-11-14T23:13:20Z");
    let r = run(
        pod_target(Some("uid-web-1")),
        ReleaseCause::Operator,
        move |mut api| async move {
            api.answer("GET", POD_URI, None, 200, &pod.to_string())
                .await;
            api.answer("DELETE", NETPOL_URI, None, 200, "{}").await;
            api.answer(
                "PATCH",
                PATCH_URI,
                Some(release_patch("operator")),
                200,
                "{}",
            )
            .await;
            api.event(
                ApiServerVerifier::pod_ref(),
                "release pod shop/web-1 (asked by an operator; policy quarantine-miners): released; labels restored: app, pod-template-hash; NetworkPolicy teflon-quarantine-web-1 deleted",
                "Normal",
            )
            .await;
            api
        },
    )
    .await;
    assert_eq!(r.outcome, ReleaseOutcome::Released);
    assert_eq!(
        r.restored_labels,
        labels(&[("app", "web"), ("pod-template-hash", "7d9f8c")])
    );
    assert_eq!(
        r.removed_labels,
        [
            "forensics",
            "teflon.io/quarantined",
            "teflon.io/quarantined-pod"
        ]
    );
    assert_eq!(r.network_policy.as_deref(), Some("teflon-quarantine-web-1"));
    assert_eq!(r.policy.as_deref(), Some("quarantine-miners"));
    assert_eq!(r.uid.as_deref(), Some("uid-web-1"));
    assert_eq!(r.attempts, 1);
}

#[tokio::test(start_paused = true)]
async fn release_is_refused_when_the_uid_no_longer_matches_and_changes_nothing() {
    let pod = quarantined_pod("uid-of-the-replacement", "2023-11-14T23:13:20Z");
    let r = run(
        pod_target(Some("uid-web-1")),
        ReleaseCause::Operator,
        move |mut api| async move {
            api.answer("GET", POD_URI, None, 200, &pod.to_string())
                .await;
            // Refused before anything changed: no DELETE, no PATCH; the Event says why.
            let got = api.answer("POST", EVENTS_URI, None, 201, "{}").await;
            assert!(
                got["note"]
                    .as_str()
                    .unwrap()
                    .contains("has UID uid-of-the-replacement, not uid-web-1"),
                "{got}"
            );
            api
        },
    )
    .await;
    assert!(
        matches!(&r.outcome, ReleaseOutcome::Refused(m) if m.contains("another pod now")),
        "{:?}",
        r.outcome
    );
}

#[tokio::test(start_paused = true)]
async fn a_pod_teflon_did_not_quarantine_is_not_touched() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop", "uid": "uid-web-1", "labels": {"app": "web"}}});
    let r = run(
        pod_target(None),
        ReleaseCause::Operator,
        move |mut api| async move {
            api.answer("GET", POD_URI, None, 200, &pod.to_string())
                .await;
            let got = api.answer("POST", EVENTS_URI, None, 201, "{}").await;
            assert_eq!(got["reason"], "teflon", "no policy known");
            api
        },
    )
    .await;
    assert!(
        matches!(&r.outcome, ReleaseOutcome::Refused(m) if m.contains("not quarantined by Teflon")),
        "{:?}",
        r.outcome
    );
}

#[tokio::test(start_paused = true)]
async fn release_of_a_missing_pod_is_not_found_without_an_event() {
    let r = run(
        pod_target(None),
        ReleaseCause::Operator,
        |mut api| async move {
            api.answer("GET", POD_URI, None, 404, NOT_FOUND).await;
            api
        },
    )
    .await;
    assert_eq!(r.outcome, ReleaseOutcome::NotFound);
}

#[tokio::test(start_paused = true)]
async fn an_expiry_of_a_pod_whose_deadline_moved_is_refused_and_changes_nothing() {
    // The deadline on the object is an hour ahead of the clock.
    let pod = quarantined_pod("uid-web-1", "2023-11-14T23:13:20Z");
    let r = run(
        pod_target(Some("uid-web-1")),
        ReleaseCause::Expired,
        move |mut api| async move {
            api.answer("GET", POD_URI, None, 200, &pod.to_string())
                .await;
            api.event(
                ApiServerVerifier::pod_ref(),
                "release pod shop/web-1 (expire_after_secs ran out; policy quarantine-miners): refused: the quarantine of pod shop/web-1 is not due",
                "Normal",
            )
            .await;
            api
        },
    )
    .await;
    assert!(matches!(r.outcome, ReleaseOutcome::Refused(_)), "{r:?}");
}

#[tokio::test(start_paused = true)]
async fn an_expiry_that_is_due_releases_and_says_it_expired() {
    let pod = quarantined_pod("uid-web-1", "2023-11-14T22:13:20Z");
    let r = run(
        pod_target(Some("uid-web-1")),
        ReleaseCause::Expired,
        move |mut api| async move {
            api.answer("GET", POD_URI, None, 200, &pod.to_string())
                .await;
            api.answer("DELETE", NETPOL_URI, None, 404, NOT_FOUND).await;
            api.answer(
                "PATCH",
                PATCH_URI,
                Some(release_patch("expired")),
                200,
                "{}",
            )
            .await;
            api.event(
                ApiServerVerifier::pod_ref(),
                "release pod shop/web-1 (expire_after_secs ran out; policy quarantine-miners): released",
                "Normal",
            )
            .await;
            api
        },
    )
    .await;
    assert_eq!(
        r.outcome,
        ReleaseOutcome::Released,
        "a NetworkPolicy already gone is fine"
    );
}

#[tokio::test(start_paused = true)]
async fn a_patch_that_timed_out_but_applied_is_recognised_as_released() {
    let pod = quarantined_pod("uid-web-1", "2023-11-14T23:13:20Z");
    let released = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop", "uid": "uid-web-1", "labels": {"app": "web", "pod-template-hash": "7d9f8c", "zone": "a"}}});
    let r = run(
        pod_target(Some("uid-web-1")),
        ReleaseCause::Operator,
        move |mut api| async move {
            api.answer("GET", POD_URI, None, 200, &pod.to_string())
                .await;
            api.answer("DELETE", NETPOL_URI, None, 200, "{}").await;
            let (_unanswered, _) = api
                .expect("PATCH", PATCH_URI, Some(release_patch("operator")))
                .await;
            // The retry finds its own earlier patch applied: the `test` of the record fails.
            api.answer(
                "PATCH",
                PATCH_URI,
                Some(release_patch("operator")),
                422,
                PATCH_TEST_FAILED,
            )
            .await;
            api.answer("GET", POD_URI, None, 200, &released.to_string())
                .await;
            api.event(
                ApiServerVerifier::pod_ref(),
                "release pod shop/web-1",
                "Normal",
            )
            .await;
            api
        },
    )
    .await;
    assert_eq!(r.outcome, ReleaseOutcome::Released);
    assert_eq!(r.attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn a_network_policy_that_cannot_be_deleted_leaves_the_pod_quarantined() {
    let pod = quarantined_pod("uid-web-1", "2023-11-14T23:13:20Z");
    let r = run(
        pod_target(None),
        ReleaseCause::Operator,
        move |mut api| async move {
            api.answer("GET", POD_URI, None, 200, &pod.to_string())
                .await;
            // Four attempts (RetryPolicy::short), all 500: no PATCH follows.
            for _ in 0..4 {
                api.answer("DELETE", NETPOL_URI, None, 500, INTERNAL).await;
            }
            api.event(
                ApiServerVerifier::pod_ref(),
                "release pod shop/web-1",
                "Warning",
            )
            .await;
            api
        },
    )
    .await;
    assert!(
        matches!(&r.outcome, ReleaseOutcome::Failed(m) if m.contains("still quarantined")),
        "{:?}",
        r.outcome
    );
    assert_eq!(r.attempts, 4);
}

fn tracing_policy(managed: bool, expires_at: &str) -> Value {
    let mut labels = json!({ "teflon.io/policy": "quarantine-miners" });
    if managed {
        labels["app.kubernetes.io/managed-by"] = json!("teflon");
    }
    json!({
        "apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicyNamespaced",
        "metadata": {
            "name": TP_NAME, "namespace": "shop", "uid": "uid-tp", "resourceVersion": "99",
            "creationTimestamp": "2023-11-14T21:13:20Z",
            "labels": labels,
            "annotations": {
                "teflon.io/binary": "/usr/bin/xmrig",
                "teflon.io/target": "Deployment/web",
                "teflon.io/expires-at": expires_at,
            },
        },
        "spec": {},
    })
}

fn policy_target() -> ReleaseTarget {
    ReleaseTarget::Policy {
        namespace: "shop".to_owned(),
        name: TP_NAME.to_owned(),
    }
}

fn deployment_ref() -> Value {
    json!({ "apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web" })
}

#[tokio::test(start_paused = true)]
async fn a_block_binary_policy_is_deleted_under_uid_and_resource_version_preconditions() {
    let tp = tracing_policy(true, "2023-11-14T22:13:20Z");
    let r = run(policy_target(), ReleaseCause::Expired, move |mut api| async move {
        api.answer("GET", &tp_uri(), None, 200, &tp.to_string()).await;
        api.answer(
            "DELETE",
            &format!("{}?", tp_uri()),
            Some(json!({ "preconditions": { "uid": "uid-tp", "resourceVersion": "99" } })),
            200,
            &tp.to_string(),
        )
        .await;
        api.event(
            deployment_ref(),
            &format!("release TracingPolicyNamespaced shop/{TP_NAME} (expire_after_secs ran out; policy quarantine-miners): released"),
            "Normal",
        )
        .await;
        api
    })
    .await;
    assert_eq!(r.outcome, ReleaseOutcome::Released);
    assert_eq!(r.policy.as_deref(), Some("quarantine-miners"));
}

#[tokio::test(start_paused = true)]
async fn a_policy_re_applied_between_read_and_delete_is_read_again() {
    let old = tracing_policy(true, "2023-11-14T22:13:20Z");
    let mut renewed = tracing_policy(true, "2023-11-14T23:13:20Z");
    renewed["metadata"]["resourceVersion"] = json!("100");
    let r = run(policy_target(), ReleaseCause::Expired, move |mut api| async move {
        api.answer("GET", &tp_uri(), None, 200, &old.to_string()).await;
        api.answer(
            "DELETE",
            &format!("{}?", tp_uri()),
            Some(json!({ "preconditions": { "uid": "uid-tp", "resourceVersion": "99" } })),
            409,
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Precondition failed: ResourceVersion in precondition: 99, ResourceVersion in object meta: 100","reason":"Conflict","code":409}"#,
        )
        .await;
        // A new detection extended the deadline: not due any more, nothing deleted.
        api.answer("GET", &tp_uri(), None, 200, &renewed.to_string()).await;
        api.event(deployment_ref(), "release TracingPolicyNamespaced", "Normal")
            .await;
        api
    })
    .await;
    assert!(
        matches!(&r.outcome, ReleaseOutcome::Refused(m) if m.contains("not due")),
        "{:?}",
        r.outcome
    );
}

#[tokio::test(start_paused = true)]
async fn a_tracing_policy_teflon_did_not_create_is_not_deleted() {
    let tp = tracing_policy(false, "2023-11-14T22:13:20Z");
    let r = run(
        policy_target(),
        ReleaseCause::Operator,
        move |mut api| async move {
            api.answer("GET", &tp_uri(), None, 200, &tp.to_string())
                .await;
            api
        },
    )
    .await;
    assert!(
        matches!(&r.outcome, ReleaseOutcome::Refused(m) if m.contains("not created by Teflon")),
        "{:?}",
        r.outcome
    );
}

#[tokio::test(start_paused = true)]
async fn the_actions_in_force_are_listed_from_the_watch_cache_by_label() {
    let pods = json!({
        "apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "5"},
        "items": [
            quarantined_pod("uid-web-1", "2023-11-14T22:13:20Z"),
            // Quarantined by a Teflon that wrote no record: cannot be released, not listed.
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "old", "namespace": "shop", "labels": {"teflon.io/quarantined": "x"}}},
        ],
    });
    let tps = json!({
        "apiVersion": "cilium.io/v1alpha1", "kind": "TracingPolicyNamespacedList", "metadata": {"resourceVersion": "5"},
        "items": [tracing_policy(true, "2023-11-14T23:13:20Z")],
    });
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let releaser = releaser(Client::new(service, "default"));
    let verifier = tokio::spawn(async move {
        let mut api = ApiServerVerifier(handle);
        api.answer(
            "GET",
            "/api/v1/pods?&labelSelector=teflon.io%2Fquarantined&resourceVersion=0&resourceVersionMatch=NotOlderThan",
            None,
            200,
            &pods.to_string(),
        )
        .await;
        api.answer(
            "GET",
            "/apis/cilium.io/v1alpha1/tracingpoliciesnamespaced?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dteflon&resourceVersion=0&resourceVersionMatch=NotOlderThan",
            None,
            200,
            &tps.to_string(),
        )
        .await;
        api.done().await;
    });
    let active = releaser.active().await.unwrap();
    verifier.await.unwrap();
    assert_eq!(active.len(), 2, "{active:#?}");
    assert_eq!(active[0].action, ActionKind::Quarantine);
    assert_eq!(active[0].target, pod_target(Some("uid-web-1")));
    assert!(active[0].is_expired(now()));
    assert_eq!(
        active[0].network_policy.as_deref(),
        Some("teflon-quarantine-web-1")
    );
    assert_eq!(active[1].action, ActionKind::BlockBinary);
    assert_eq!(active[1].target, policy_target());
    assert_eq!(active[1].binary.as_deref(), Some("/usr/bin/xmrig"));
    assert_eq!(active[1].applies_to.as_deref(), Some("Deployment/web"));
    assert_eq!(
        active[1].since,
        Some(Timestamp::parse_rfc3339("2023-11-14T21:13:20Z").unwrap())
    );
    assert!(!active[1].is_expired(now()));
}

#[tokio::test(start_paused = true)]
async fn without_tetragon_installed_only_quarantines_are_in_force() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let releaser = releaser(Client::new(service, "default"));
    let verifier = tokio::spawn(async move {
        let mut api = ApiServerVerifier(handle);
        let (send, _) = api.expect("GET", "/api/v1/pods?&labelSelector=teflon.io%2Fquarantined&resourceVersion=0&resourceVersionMatch=NotOlderThan", None).await;
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(
                    br#"{"apiVersion":"v1","kind":"PodList","metadata":{},"items":[]}"#.to_vec(),
                ))
                .unwrap(),
        );
        api.answer(
            "GET",
            "/apis/cilium.io/v1alpha1/tracingpoliciesnamespaced?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dteflon&resourceVersion=0&resourceVersionMatch=NotOlderThan",
            None,
            404,
            include_str!("fixtures/crd-not-found-status.json"),
        )
        .await;
        api.done().await;
    });
    assert_eq!(releaser.active().await.unwrap(), []);
    verifier.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn with_namespaces_the_actions_in_force_are_listed_per_namespace() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let releaser = releaser(Client::new(service, "default"))
        .with_namespaces(vec!["shop".to_owned(), "payments".to_owned()]);
    let empty_pods = r#"{"apiVersion":"v1","kind":"PodList","metadata":{},"items":[]}"#;
    let empty_tps = r#"{"apiVersion":"cilium.io/v1alpha1","kind":"TracingPolicyNamespacedList","metadata":{},"items":[]}"#;
    let verifier = tokio::spawn(async move {
        let mut api = ApiServerVerifier(handle);
        for ns in ["shop", "payments"] {
            api.answer(
                "GET",
                &format!("/api/v1/namespaces/{ns}/pods?&labelSelector=teflon.io%2Fquarantined&resourceVersion=0&resourceVersionMatch=NotOlderThan"),
                None,
                200,
                empty_pods,
            )
            .await;
            api.answer(
                "GET",
                &format!("/apis/cilium.io/v1alpha1/namespaces/{ns}/tracingpoliciesnamespaced?&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dteflon&resourceVersion=0&resourceVersionMatch=NotOlderThan"),
                None,
                200,
                empty_tps,
            )
            .await;
        }
        api.done().await;
    });
    assert_eq!(releaser.active().await.unwrap(), []);
    verifier.await.unwrap();
}
