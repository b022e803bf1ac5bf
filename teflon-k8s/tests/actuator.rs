//! ApiServerVerifier tests: every request the actuator sends (method, path, query, JSON
//! body) and how each API answer becomes an `Outcome`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use teflon_core::{
    Action, ActionId, Actuator, Alert, Executed, Outcome, PlannedAction, PodTarget, Priority,
    Timestamp, WorkloadKind, WorkloadRef,
};
use teflon_k8s::{KubeActuator, RetryPolicy};
use tower_test::mock::{self, Handle, SendResponse};

const PDB_429: &str = include_str!("fixtures/eviction-429-pdb-status.json");
const EVICTION_REQUEST: &str = include_str!("fixtures/eviction-request-policy-v1.json");
const EVICTION_OK: &str = include_str!("fixtures/eviction-success-status.json");
const NOT_FOUND: &str = include_str!("fixtures/pod-not-found-status.json");
const CONFLICT: &str = include_str!("fixtures/delete-precondition-conflict-status.json");
const INTERNAL: &str = include_str!("fixtures/internal-error-status.json");
const THROTTLED: &str = include_str!("fixtures/throttled-429-status.json");
const FORBIDDEN: &str = include_str!("fixtures/forbidden-status.json");
const PATCH_TEST_FAILED: &str = include_str!("fixtures/json-patch-test-failed-status.json");
const CRD_MISSING: &str = include_str!("fixtures/crd-not-found-status.json");

const EVENT_TIME: &str = "2023-11-14T22:13:20.123456Z";

fn fixed_clock() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789)
}

fn alert() -> Arc<Alert> {
    Arc::new(
        Alert::test()
            .priority(Priority::Critical)
            .pod("shop", "web-1")
            .output("A shell was spawned in a container (user=root shell=sh)")
            .build(),
    )
}

fn web() -> WorkloadRef {
    WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")
}

fn planned(action: Action) -> PlannedAction {
    PlannedAction {
        id: ActionId(7),
        pod: PodTarget {
            namespace: "shop".to_owned(),
            name: "web-1".to_owned(),
            uid: Some("uid-web-1".to_owned()),
        },
        workload: Some(web()),
        action,
        policy: Arc::from("reap-shells"),
        binary: None,
        alert: alert(),
        deadline: deadline_in(300),
    }
}

/// The action's deadline, `secs` after the fixed clock's now.
fn deadline_in(secs: u64) -> Timestamp {
    let now = fixed_clock()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("the fixed clock is after 1970")
        .as_nanos();
    Timestamp::from_nanos(i64::try_from(now).expect("nanoseconds fit i64"))
        .plus(Duration::from_secs(secs))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The pod the API server holds: web-1 of Deployment web (through ReplicaSet web-7d9f8c).
fn pod_json(uid: &str, extra_labels: &[(&str, &str)]) -> Value {
    let mut l = labels(&[("app", "web"), ("pod-template-hash", "7d9f8c")]);
    l.extend(labels(extra_labels));
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some("web-1".to_owned()),
            namespace: Some("shop".to_owned()),
            uid: Some(uid.to_owned()),
            resource_version: Some("4711".to_owned()),
            labels: Some(l),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".to_owned(),
                kind: "ReplicaSet".to_owned(),
                name: "web-7d9f8c".to_owned(),
                uid: "uid-rs".to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-a".to_owned()),
            ..PodSpec::default()
        }),
        status: None,
    };
    serde_json::to_value(pod).unwrap()
}

fn replica_set_json() -> Value {
    let rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some("web-7d9f8c".to_owned()),
            namespace: Some("shop".to_owned()),
            uid: Some("uid-rs".to_owned()),
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(3),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web"), ("pod-template-hash", "7d9f8c")])),
                match_expressions: None,
            },
            ..ReplicaSetSpec::default()
        },
        status: None,
    };
    serde_json::to_value(rs).unwrap()
}

fn deployment_json() -> Value {
    let d = Deployment {
        metadata: ObjectMeta {
            name: Some("web".to_owned()),
            namespace: Some("shop".to_owned()),
            uid: Some("uid-web".to_owned()),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: Some(3),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                match_expressions: None,
            },
            ..DeploymentSpec::default()
        },
        status: None,
    };
    serde_json::to_value(d).unwrap()
}

type MockHandle = Handle<Request<Body>, Response<Body>>;

/// Plays the API server for one scenario, asserting each request it receives.
struct ApiServerVerifier(MockHandle);

impl ApiServerVerifier {
    /// The next request must be `method uri` with this JSON body (or none).
    async fn expect(
        &mut self,
        method: &str,
        uri: &str,
        body: Option<Value>,
    ) -> (SendResponse<Response<Body>>, Option<String>) {
        let (request, send) = self
            .0
            .next_request()
            .await
            .expect("the actuator sends a request");
        assert_eq!(request.method().as_str(), method, "method of {uri}");
        assert_eq!(request.uri().to_string(), uri);
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = request.into_body().collect_bytes().await.unwrap();
        match body {
            Some(expected) => {
                let got: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    panic!(
                        "{method} {uri}: body is not JSON ({e}): {}",
                        String::from_utf8_lossy(&bytes)
                    )
                });
                assert_eq!(got, expected, "body of {method} {uri}");
            }
            None => assert!(
                bytes.is_empty(),
                "{method} {uri} has a body: {}",
                String::from_utf8_lossy(&bytes)
            ),
        }
        (send, content_type)
    }

    /// Expect the request and answer it.
    async fn answer(
        &mut self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        code: u16,
        reply: &str,
    ) -> Option<String> {
        let (send, content_type) = self.expect(method, uri, body).await;
        send.send_response(
            Response::builder()
                .status(StatusCode::from_u16(code).unwrap())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(reply.as_bytes().to_vec()))
                .unwrap(),
        );
        content_type
    }

    /// The Event for this action: pod web-1 (or `regarding`), action, reason, note, type.
    async fn event(&mut self, regarding: Value, action: &str, note: &str, type_: &str, code: u16) {
        let name = format!(
            "{}.{:x}",
            regarding["name"].as_str().unwrap(),
            1_700_000_000_123_456_789u64
        );
        let body = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": { "name": name, "namespace": "shop" },
            "eventTime": EVENT_TIME,
            "reportingController": "teflon.io/teflon",
            "reportingInstance": "teflon-test-0",
            "action": action,
            "reason": "reap-shells",
            "note": note,
            "type": type_,
            "regarding": regarding,
        });
        let reply = if code < 300 {
            body.to_string()
        } else {
            INTERNAL.to_owned()
        };
        self.answer(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/shop/events?",
            Some(body),
            code,
            &reply,
        )
        .await;
    }

    /// A Warning Event whose note starts with `note_prefix` (failure texts carry server messages).
    async fn warning_event(&mut self, regarding: Value, action: &str, note_prefix: &str) {
        let (request, send) = self
            .0
            .next_request()
            .await
            .expect("the actuator records an Event");
        assert_eq!(request.method().as_str(), "POST");
        assert_eq!(
            request.uri().to_string(),
            "/apis/events.k8s.io/v1/namespaces/shop/events?"
        );
        let mut got: Value =
            serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap()).unwrap();
        let note = got["note"].as_str().unwrap().to_owned();
        assert!(
            note.starts_with(note_prefix),
            "note {note:?} does not start with {note_prefix:?}"
        );
        got["note"] = Value::Null;
        let name = format!(
            "{}.{:x}",
            regarding["name"].as_str().unwrap(),
            1_700_000_000_123_456_789u64
        );
        let expected = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": { "name": name, "namespace": "shop" },
            "eventTime": EVENT_TIME,
            "reportingController": "teflon.io/teflon",
            "reportingInstance": "teflon-test-0",
            "action": action,
            "reason": "reap-shells",
            "note": null,
            "type": "Warning",
            "regarding": regarding,
        });
        assert_eq!(got, expected);
        send.send_response(
            Response::builder()
                .status(201)
                .body(Body::from(b"{}".to_vec()))
                .unwrap(),
        );
    }

    fn pod_ref() -> Value {
        json!({ "apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "uid-web-1" })
    }

    async fn pod_event(&mut self, action: &str, note: &str, type_: &str) {
        let regarding = json!({ "apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "uid-web-1" });
        self.event(regarding, action, note, type_, 201).await;
    }

    /// After the scenario: no further request may come.
    async fn done(mut self) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_secs(30), self.0.next_request()).await
        {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

/// Runs `action` against a scripted API server; its outcome.
async fn run<F, Fut>(action: PlannedAction, scenario: F) -> Outcome
where
    F: FnOnce(ApiServerVerifier) -> Fut + Send + 'static,
    Fut: Future<Output = ApiServerVerifier> + Send,
{
    run_executed(action, scenario).await.outcome
}

/// Runs `action` against a scripted API server; its outcome and attempts.
async fn run_executed<F, Fut>(action: PlannedAction, scenario: F) -> Executed
where
    F: FnOnce(ApiServerVerifier) -> Fut + Send + 'static,
    Fut: Future<Output = ApiServerVerifier> + Send,
{
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let actuator = KubeActuator::new(client)
        .with_reporting_instance("teflon-test-0")
        .with_clock(Arc::new(fixed_clock))
        .with_retry(RetryPolicy::default());
    let verifier =
        tokio::spawn(async move { scenario(ApiServerVerifier(handle)).await.done().await });
    let executed = actuator.execute(&action).await;
    tokio::time::timeout(Duration::from_secs(60), verifier)
        .await
        .expect("the scenario finished")
        .expect("the scenario's assertions held");
    executed
}

// ---------------------------------------------------------------- delete

const DELETE_URI: &str = "/api/v1/namespaces/shop/pods/web-1?";

fn delete_body() -> Value {
    json!({ "gracePeriodSeconds": 0, "preconditions": { "uid": "uid-web-1" } })
}

fn delete_action() -> PlannedAction {
    planned(Action::Delete {
        grace_period_secs: Some(0),
    })
}

const DELETE_NOTE_SUCCESS: &str =
    "delete pod shop/web-1 for rule \"Terminal shell in container\" (Critical): success";
const DELETE_NOTE_GONE: &str =
    "delete pod shop/web-1 for rule \"Terminal shell in container\" (Critical): gone";

#[tokio::test(start_paused = true)]
async fn delete_sends_the_uid_precondition_and_grace_period_and_records_an_event() {
    let outcome = run(delete_action(), |mut api| async move {
        api.answer(
            "DELETE",
            DELETE_URI,
            Some(delete_body()),
            200,
            &pod_json("uid-web-1", &[]).to_string(),
        )
        .await;
        api.pod_event("delete", DELETE_NOTE_SUCCESS, "Normal").await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn delete_of_a_pod_that_is_not_there_is_gone() {
    let outcome = run(delete_action(), |mut api| async move {
        api.answer("DELETE", DELETE_URI, Some(delete_body()), 404, NOT_FOUND)
            .await;
        api.pod_event("delete", DELETE_NOTE_GONE, "Normal").await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Gone);
}

#[tokio::test(start_paused = true)]
async fn delete_whose_uid_precondition_fails_is_gone_and_not_retried() {
    let outcome = run(delete_action(), |mut api| async move {
        api.answer("DELETE", DELETE_URI, Some(delete_body()), 409, CONFLICT)
            .await;
        api.pod_event("delete", DELETE_NOTE_GONE, "Normal").await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Gone);
}

#[tokio::test(start_paused = true)]
async fn delete_is_retried_after_a_server_error_and_then_succeeds() {
    let executed = run_executed(delete_action(), |mut api| async move {
        api.answer("DELETE", DELETE_URI, Some(delete_body()), 500, INTERNAL)
            .await;
        api.answer(
            "DELETE",
            DELETE_URI,
            Some(delete_body()),
            200,
            &pod_json("uid-web-1", &[]).to_string(),
        )
        .await;
        api.pod_event("delete", DELETE_NOTE_SUCCESS, "Normal").await;
        api
    })
    .await;
    assert_eq!(
        executed,
        Executed {
            outcome: Outcome::Success,
            attempts: 2
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_a_timed_out_delete_that_did_delete_is_gone() {
    let outcome = run(delete_action(), |mut api| async move {
        // The first attempt is never answered (the server deleted the pod, the answer was lost).
        let (_unanswered, _) = api.expect("DELETE", DELETE_URI, Some(delete_body())).await;
        api.answer("DELETE", DELETE_URI, Some(delete_body()), 404, NOT_FOUND)
            .await;
        api.pod_event("delete", DELETE_NOTE_GONE, "Normal").await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Gone);
}

#[tokio::test(start_paused = true)]
async fn delete_keeps_retrying_server_errors_until_the_actions_deadline_then_fails() {
    let mut action = delete_action();
    action.deadline = deadline_in(20);
    let executed = run_executed(action, |mut api| async move {
        // 500s for as long as the actuator asks: it must stop by itself at the deadline, then
        // record a Warning Event.
        let mut deletes = 0u32;
        loop {
            let (request, send) = api.0.next_request().await.expect("a request");
            if request.method() == "DELETE" {
                assert_eq!(request.uri().to_string(), DELETE_URI);
                deletes += 1;
                send.send_response(
                    Response::builder()
                        .status(500)
                        .body(Body::from(INTERNAL.as_bytes().to_vec()))
                        .unwrap(),
                );
                continue;
            }
            assert_eq!(request.method(), "POST", "the Event after {deletes} deletes");
            let event: Value =
                serde_json::from_slice(&request.into_body().collect_bytes().await.unwrap())
                    .unwrap();
            assert_eq!(event["type"], "Warning");
            assert_eq!(
                event["note"],
                "delete pod shop/web-1 for rule \"Terminal shell in container\" (Critical): failed: delete pod shop/web-1: HTTP 500 : etcdserver: request timed out"
            );
            send.send_response(
                Response::builder()
                    .status(201)
                    .body(Body::from(b"{}".to_vec()))
                    .unwrap(),
            );
            assert!(deletes > 4, "only {deletes} attempts in 20 s");
            break;
        }
        api
    })
    .await;
    assert!(
        matches!(executed.outcome, Outcome::Failed(ref why) if why.contains("500")),
        "{executed:?}"
    );
    assert!(executed.attempts > 4, "{executed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_forbidden_delete_fails_at_once_without_retry() {
    let outcome = run(delete_action(), |mut api| async move {
        api.answer("DELETE", DELETE_URI, Some(delete_body()), 403, FORBIDDEN).await;
        api.warning_event(ApiServerVerifier::pod_ref(), "delete", "delete pod shop/web-1 for rule \"Terminal shell in container\" (Critical): failed: delete pod shop/web-1: HTTP 403 Forbidden: pods \"web-1\" is forbidden").await;
        api
    })
    .await;
    assert!(
        matches!(outcome, Outcome::Failed(ref why) if why.contains("forbidden")),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn delete_without_a_grace_period_or_uid_sends_neither() {
    let mut action = planned(Action::Delete {
        grace_period_secs: None,
    });
    action.pod.uid = None;
    let outcome = run(action, |mut api| async move {
        api.answer(
            "DELETE",
            DELETE_URI,
            Some(json!({})),
            200,
            &pod_json("uid-web-1", &[]).to_string(),
        )
        .await;
        let regarding =
            json!({ "apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-1" });
        api.event(regarding, "delete", DELETE_NOTE_SUCCESS, "Normal", 201)
            .await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn a_failing_event_never_changes_the_outcome() {
    let outcome = run(delete_action(), |mut api| async move {
        api.answer("DELETE", DELETE_URI, Some(delete_body()), 200, &pod_json("uid-web-1", &[]).to_string())
            .await;
        let regarding = json!({ "apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "uid-web-1" });
        // Two attempts (RetryPolicy::events), then the action's outcome stands.
        for _ in 0..2 {
            api.event(regarding.clone(), "delete", DELETE_NOTE_SUCCESS, "Normal", 500).await;
        }
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Success);
}

// ---------------------------------------------------------------- evict

const EVICT_URI: &str = "/api/v1/namespaces/shop/pods/web-1/eviction";

/// The documented policy/v1 Eviction, for our pod, plus `deleteOptions`.
fn eviction_body(grace: Option<u32>) -> Value {
    let mut body: Value = serde_json::from_str(EVICTION_REQUEST).unwrap();
    body["metadata"] = json!({ "name": "web-1", "namespace": "shop" });
    body["deleteOptions"] = json!({ "preconditions": { "uid": "uid-web-1" } });
    if let Some(g) = grace {
        body["deleteOptions"]["gracePeriodSeconds"] = json!(g);
    }
    body
}

fn evict_note(outcome: &str) -> String {
    format!("evict pod shop/web-1 for rule \"Terminal shell in container\" (Critical): {outcome}")
}

#[tokio::test(start_paused = true)]
async fn evict_posts_a_policy_v1_eviction_with_delete_options() {
    let outcome = run(
        planned(Action::Evict {
            grace_period_secs: Some(30),
        }),
        |mut api| async move {
            let ct = api
                .answer(
                    "POST",
                    EVICT_URI,
                    Some(eviction_body(Some(30))),
                    201,
                    EVICTION_OK,
                )
                .await;
            assert_eq!(ct.as_deref(), Some("application/json"));
            api.pod_event("evict", &evict_note("success"), "Normal")
                .await;
            api
        },
    )
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn evict_without_a_grace_period_sends_only_the_precondition() {
    let outcome = run(
        planned(Action::Evict {
            grace_period_secs: None,
        }),
        |mut api| async move {
            api.answer(
                "POST",
                EVICT_URI,
                Some(eviction_body(None)),
                201,
                EVICTION_OK,
            )
            .await;
            api.pod_event("evict", &evict_note("success"), "Normal")
                .await;
            api
        },
    )
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn an_eviction_refused_by_a_disruption_budget_is_reported_and_not_retried() {
    let outcome = run(
        planned(Action::Evict {
            grace_period_secs: None,
        }),
        |mut api| async move {
            api.answer("POST", EVICT_URI, Some(eviction_body(None)), 429, PDB_429)
                .await;
            api.pod_event("evict", &evict_note("disruption_budget"), "Warning")
                .await;
            api
        },
    )
    .await;
    assert_eq!(outcome, Outcome::DisruptionBudget);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_eviction_is_retried() {
    let outcome = run(
        planned(Action::Evict {
            grace_period_secs: None,
        }),
        |mut api| async move {
            api.answer("POST", EVICT_URI, Some(eviction_body(None)), 429, THROTTLED)
                .await;
            api.answer(
                "POST",
                EVICT_URI,
                Some(eviction_body(None)),
                201,
                EVICTION_OK,
            )
            .await;
            api.pod_event("evict", &evict_note("success"), "Normal")
                .await;
            api
        },
    )
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn evicting_a_missing_pod_is_gone() {
    let outcome = run(
        planned(Action::Evict {
            grace_period_secs: None,
        }),
        |mut api| async move {
            api.answer("POST", EVICT_URI, Some(eviction_body(None)), 404, NOT_FOUND)
                .await;
            api.pod_event("evict", &evict_note("gone"), "Normal").await;
            api
        },
    )
    .await;
    assert_eq!(outcome, Outcome::Gone);
}

#[tokio::test(start_paused = true)]
async fn an_eviction_whose_uid_precondition_fails_is_gone() {
    let outcome = run(
        planned(Action::Evict {
            grace_period_secs: None,
        }),
        |mut api| async move {
            api.answer("POST", EVICT_URI, Some(eviction_body(None)), 409, CONFLICT)
                .await;
            api.pod_event("evict", &evict_note("gone"), "Normal").await;
            api
        },
    )
    .await;
    assert_eq!(outcome, Outcome::Gone);
}

#[tokio::test(start_paused = true)]
async fn an_eviction_that_times_out_is_retried_and_a_server_error_then_succeeds() {
    let outcome = run(
        planned(Action::Evict {
            grace_period_secs: None,
        }),
        |mut api| async move {
            let (_unanswered, _) = api
                .expect("POST", EVICT_URI, Some(eviction_body(None)))
                .await;
            api.answer("POST", EVICT_URI, Some(eviction_body(None)), 500, INTERNAL)
                .await;
            api.answer(
                "POST",
                EVICT_URI,
                Some(eviction_body(None)),
                201,
                EVICTION_OK,
            )
            .await;
            api.pod_event("evict", &evict_note("success"), "Normal")
                .await;
            api
        },
    )
    .await;
    assert_eq!(outcome, Outcome::Success);
}

// ---------------------------------------------------------------- quarantine

const POD_URI: &str = "/api/v1/namespaces/shop/pods/web-1";
const RS_URI: &str = "/apis/apps/v1/namespaces/shop/replicasets/web-7d9f8c";
const PATCH_URI: &str = "/api/v1/namespaces/shop/pods/web-1?";
const NETPOL_URI: &str = "/apis/networking.k8s.io/v1/namespaces/shop/networkpolicies?";

fn quarantine_action(network_isolate: bool) -> PlannedAction {
    planned(Action::Quarantine {
        labels: labels(&[("forensics", "hold")]),
        network_isolate,
        expire_after: None,
    })
}

fn alert_annotation() -> String {
    json!({
        "rule": "Terminal shell in container",
        "priority": "Critical",
        "time": "1970-01-12T13:46:40.000000000Z",
        "source": "syscall",
        "output": "A shell was spawned in a container (user=root shell=sh)",
    })
    .to_string()
}

fn quarantine_patch() -> Value {
    quarantine_patch_with(true)
}

/// The `teflon.io/quarantine` record of web-1's quarantine at the fixed clock's time.
fn quarantine_record(removed: &[(&str, &str)], network_policy: bool) -> String {
    let record = teflon_k8s::QuarantineRecord {
        policy: "reap-shells".to_owned(),
        at: Timestamp::parse_rfc3339("2023-11-14T22:13:20.123456789Z").unwrap(),
        removed_labels: labels(removed),
        added_labels: vec![
            "forensics".to_owned(),
            "teflon.io/quarantined".to_owned(),
            "teflon.io/quarantined-pod".to_owned(),
        ],
        network_policy: network_policy.then(|| "teflon-quarantine-web-1".to_owned()),
    };
    serde_json::to_string(&record).unwrap()
}

/// The annotations quarantine adds: the alert, and the record of what it changed.
fn quarantine_annotations(removed: &[(&str, &str)], network_policy: bool) -> Value {
    json!({
        "teflon.io/alert": alert_annotation(),
        "teflon.io/quarantine": quarantine_record(removed, network_policy),
    })
}

fn quarantine_patch_with(network_policy: bool) -> Value {
    json!([
        { "op": "test", "path": "/metadata/uid", "value": "uid-web-1" },
        { "op": "remove", "path": "/metadata/labels/app" },
        { "op": "remove", "path": "/metadata/labels/pod-template-hash" },
        { "op": "add", "path": "/metadata/labels/forensics", "value": "hold" },
        { "op": "add", "path": "/metadata/labels/teflon.io~1quarantined", "value": "reap-shells" },
        { "op": "add", "path": "/metadata/labels/teflon.io~1quarantined-pod", "value": "web-1" },
        { "op": "add", "path": "/metadata/annotations", "value": quarantine_annotations(&[("app", "web"), ("pod-template-hash", "7d9f8c")], network_policy) },
    ])
}

fn network_policy() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "teflon-quarantine-web-1",
            "namespace": "shop",
            "labels": { "app.kubernetes.io/managed-by": "teflon", "teflon.io/quarantined": "reap-shells" },
            "ownerReferences": [{ "apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "uid-web-1" }],
        },
        "spec": {
            "podSelector": { "matchLabels": { "teflon.io/quarantined-pod": "web-1" } },
            "policyTypes": ["Ingress", "Egress"],
        },
    })
}

fn quarantine_note(outcome: &str) -> String {
    format!(
        "quarantine pod shop/web-1 for rule \"Terminal shell in container\" (Critical): {outcome}"
    )
}

#[tokio::test(start_paused = true)]
async fn quarantine_removes_the_selector_labels_in_one_uid_tested_patch_then_isolates_the_pod() {
    let outcome = run(quarantine_action(true), |mut api| async move {
        api.answer(
            "GET",
            POD_URI,
            None,
            200,
            &pod_json("uid-web-1", &[]).to_string(),
        )
        .await;
        api.answer("GET", RS_URI, None, 200, &replica_set_json().to_string())
            .await;
        let quarantined = pod_json("uid-web-1", &[("teflon.io/quarantined", "reap-shells")]);
        let ct = api
            .answer(
                "PATCH",
                PATCH_URI,
                Some(quarantine_patch()),
                200,
                &quarantined.to_string(),
            )
            .await;
        assert_eq!(ct.as_deref(), Some("application/json-patch+json"));
        api.answer(
            "POST",
            NETPOL_URI,
            Some(network_policy()),
            201,
            &network_policy().to_string(),
        )
        .await;
        api.pod_event("quarantine", &quarantine_note("success"), "Normal")
            .await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn quarantine_without_network_isolation_creates_no_network_policy() {
    let outcome = run(quarantine_action(false), |mut api| async move {
        api.answer(
            "GET",
            POD_URI,
            None,
            200,
            &pod_json("uid-web-1", &[]).to_string(),
        )
        .await;
        api.answer("GET", RS_URI, None, 200, &replica_set_json().to_string())
            .await;
        api.answer(
            "PATCH",
            PATCH_URI,
            Some(quarantine_patch_with(false)),
            200,
            &pod_json("uid-web-1", &[]).to_string(),
        )
        .await;
        api.pod_event("quarantine", &quarantine_note("success"), "Normal")
            .await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn quarantine_of_a_pod_replaced_under_the_same_name_is_gone_without_a_patch() {
    let outcome = run(quarantine_action(true), |mut api| async move {
        api.answer(
            "GET",
            POD_URI,
            None,
            200,
            &pod_json("uid-of-the-replacement", &[]).to_string(),
        )
        .await;
        api.pod_event("quarantine", &quarantine_note("gone"), "Normal")
            .await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Gone);
}

#[tokio::test(start_paused = true)]
async fn quarantine_of_a_missing_pod_is_gone() {
    let outcome = run(quarantine_action(true), |mut api| async move {
        api.answer("GET", POD_URI, None, 404, NOT_FOUND).await;
        api.pod_event("quarantine", &quarantine_note("gone"), "Normal")
            .await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Gone);
}

#[tokio::test(start_paused = true)]
async fn a_patch_that_timed_out_but_applied_is_recognised_on_the_retry() {
    let outcome = run(quarantine_action(true), |mut api| async move {
        api.answer(
            "GET",
            POD_URI,
            None,
            200,
            &pod_json("uid-web-1", &[]).to_string(),
        )
        .await;
        api.answer("GET", RS_URI, None, 200, &replica_set_json().to_string())
            .await;
        let (_unanswered, _) = api
            .expect("PATCH", PATCH_URI, Some(quarantine_patch()))
            .await;
        // The labels are gone now, so the same patch's `remove` fails: look again.
        api.answer(
            "PATCH",
            PATCH_URI,
            Some(quarantine_patch()),
            422,
            PATCH_TEST_FAILED,
        )
        .await;
        let quarantined = pod_json("uid-web-1", &[("teflon.io/quarantined", "reap-shells")]);
        api.answer("GET", POD_URI, None, 200, &quarantined.to_string())
            .await;
        api.answer(
            "POST",
            NETPOL_URI,
            Some(network_policy()),
            201,
            &network_policy().to_string(),
        )
        .await;
        api.pod_event("quarantine", &quarantine_note("success"), "Normal")
            .await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn a_failed_uid_test_in_the_patch_is_gone() {
    let outcome = run(quarantine_action(true), |mut api| async move {
        api.answer(
            "GET",
            POD_URI,
            None,
            200,
            &pod_json("uid-web-1", &[]).to_string(),
        )
        .await;
        api.answer("GET", RS_URI, None, 200, &replica_set_json().to_string())
            .await;
        api.answer(
            "PATCH",
            PATCH_URI,
            Some(quarantine_patch()),
            422,
            PATCH_TEST_FAILED,
        )
        .await;
        api.answer(
            "GET",
            POD_URI,
            None,
            200,
            &pod_json("uid-new", &[]).to_string(),
        )
        .await;
        api.pod_event("quarantine", &quarantine_note("gone"), "Normal")
            .await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Gone);
}

#[tokio::test(start_paused = true)]
async fn an_existing_network_policy_of_the_same_name_counts_as_isolated() {
    const EXISTS: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"networkpolicies.networking.k8s.io \"teflon-quarantine-web-1\" already exists","reason":"AlreadyExists","details":{"name":"teflon-quarantine-web-1","group":"networking.k8s.io","kind":"networkpolicies"},"code":409}"#;
    let outcome = run(quarantine_action(true), |mut api| async move {
        api.answer(
            "GET",
            POD_URI,
            None,
            200,
            &pod_json("uid-web-1", &[]).to_string(),
        )
        .await;
        api.answer("GET", RS_URI, None, 200, &replica_set_json().to_string())
            .await;
        api.answer(
            "PATCH",
            PATCH_URI,
            Some(quarantine_patch()),
            200,
            &pod_json("uid-web-1", &[]).to_string(),
        )
        .await;
        api.answer("POST", NETPOL_URI, Some(network_policy()), 409, EXISTS)
            .await;
        api.pod_event("quarantine", &quarantine_note("success"), "Normal")
            .await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn a_quarantine_whose_network_policy_fails_reports_failure() {
    let outcome = run(quarantine_action(true), |mut api| async move {
        api.answer("GET", POD_URI, None, 200, &pod_json("uid-web-1", &[]).to_string()).await;
        api.answer("GET", RS_URI, None, 200, &replica_set_json().to_string()).await;
        api.answer("PATCH", PATCH_URI, Some(quarantine_patch()), 200, &pod_json("uid-web-1", &[]).to_string())
            .await;
        api.answer("POST", NETPOL_URI, Some(network_policy()), 403, FORBIDDEN).await;
        api.warning_event(ApiServerVerifier::pod_ref(), "quarantine", &quarantine_note("failed: quarantine pod shop/web-1: labels changed, but creating the NetworkPolicy failed: HTTP 403")).await;
        api
    })
    .await;
    assert!(
        matches!(outcome, Outcome::Failed(ref why) if why.contains("NetworkPolicy")),
        "{outcome:?}"
    );
}

// ---------------------------------------------------------------- block_binary

const DEPLOYMENT_URI: &str = "/apis/apps/v1/namespaces/shop/deployments/web";

fn block_action() -> PlannedAction {
    let mut a = planned(Action::BlockBinary {
        binary_fields: vec!["proc.exepath".to_owned()],
        expire_after: None,
    });
    a.binary = Some("/usr/bin/nc".to_owned());
    a
}

fn tracing_policy(name: &str) -> Value {
    let sigkill = json!([{ "action": "Sigkill" }]);
    json!({
        "apiVersion": "cilium.io/v1alpha1",
        "kind": "TracingPolicyNamespaced",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": { "app.kubernetes.io/managed-by": "teflon", "teflon.io/policy": "reap-shells" },
            "annotations": {
                "teflon.io/binary": "/usr/bin/nc",
                "teflon.io/target": "Deployment/web",
                "teflon.io/alert": alert_annotation(),
            },
        },
        "spec": {
            "podSelector": { "matchLabels": { "app": "web" } },
            "kprobes": [
                {
                    "call": "security_bprm_check",
                    "syscall": false,
                    "args": [{ "index": 0, "type": "linux_binprm" }],
                    "selectors": [{
                        "matchArgs": [{ "index": 0, "operator": "Equal", "values": ["/usr/bin/nc"] }],
                        "matchActions": sigkill,
                    }],
                },
                {
                    "call": "fd_install",
                    "syscall": false,
                    "selectors": [{
                        "matchBinaries": [{ "operator": "In", "values": ["/usr/bin/nc"] }],
                        "matchActions": sigkill,
                    }],
                },
            ],
        },
    })
}

fn block_note(outcome: &str) -> String {
    format!(
        "block_binary pod shop/web-1 for rule \"Terminal shell in container\" (Critical): {outcome} [binary /usr/bin/nc]"
    )
}

fn deployment_regarding() -> Value {
    json!({ "apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web" })
}

#[tokio::test(start_paused = true)]
async fn block_binary_applies_a_tracing_policy_selecting_the_workloads_pods() {
    let name = teflon_k8s::tracing_policy_name("Deployment", "web", "/usr/bin/nc");
    assert!(
        name.starts_with("teflon-block-web-nc-") && name.len() <= 63,
        "{name}"
    );
    let outcome = run(block_action(), move |mut api| async move {
        api.answer("GET", DEPLOYMENT_URI, None, 200, &deployment_json().to_string()).await;
        let uri = format!("/apis/cilium.io/v1alpha1/namespaces/shop/tracingpoliciesnamespaced/{name}?&force=true&fieldManager=teflon&fieldValidation=Strict");
        let ct = api.answer("PATCH", &uri, Some(tracing_policy(&name)), 200, &tracing_policy(&name).to_string()).await;
        assert_eq!(ct.as_deref(), Some("application/apply-patch+yaml"));
        api.event(deployment_regarding(), "block_binary", &block_note("success"), "Normal", 201).await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn block_binary_without_tetragon_installed_fails_and_says_so() {
    let name = teflon_k8s::tracing_policy_name("Deployment", "web", "/usr/bin/nc");
    let outcome = run(block_action(), move |mut api| async move {
        api.answer("GET", DEPLOYMENT_URI, None, 200, &deployment_json().to_string()).await;
        let uri = format!("/apis/cilium.io/v1alpha1/namespaces/shop/tracingpoliciesnamespaced/{name}?&force=true&fieldManager=teflon&fieldValidation=Strict");
        api.answer("PATCH", &uri, Some(tracing_policy(&name)), 404, CRD_MISSING).await;
        api.warning_event(deployment_regarding(), "block_binary", "block_binary pod shop/web-1 for rule \"Terminal shell in container\" (Critical): failed: block_binary in shop/web-1: HTTP 404 NotFound: the server could not find the requested resource (is Tetragon installed?").await;
        api
    })
    .await;
    assert!(
        matches!(outcome, Outcome::Failed(ref why) if why.contains("Tetragon")),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn block_binary_without_a_binary_makes_no_api_call_but_the_event() {
    let mut action = block_action();
    action.binary = None;
    let outcome = run(action, |mut api| async move {
        api.warning_event(deployment_regarding(), "block_binary", "block_binary pod shop/web-1 for rule \"Terminal shell in container\" (Critical): failed: block_binary in shop/web-1: the alert names no binary").await;
        api
    })
    .await;
    assert!(
        matches!(outcome, Outcome::Failed(ref why) if why.contains("no binary")),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn block_binary_for_a_deleted_workload_is_gone() {
    let outcome = run(block_action(), |mut api| async move {
        api.answer("GET", DEPLOYMENT_URI, None, 404, NOT_FOUND)
            .await;
        api.event(
            deployment_regarding(),
            "block_binary",
            &block_note("gone"),
            "Normal",
            201,
        )
        .await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Gone);
}

// ---------------------------------------------------------------- log and scale

#[tokio::test(start_paused = true)]
async fn log_makes_no_api_call() {
    let outcome = run(planned(Action::Log), |api| async move { api }).await;
    assert_eq!(outcome, Outcome::Success);
}

fn scale_json(spec: i32, status: i32) -> String {
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": { "name": "web", "namespace": "shop", "uid": "uid-web", "resourceVersion": "99" },
        "spec": { "replicas": spec },
        "status": { "replicas": status, "selector": "app=web" },
    })
    .to_string()
}

#[tokio::test(start_paused = true)]
async fn scale_patches_the_scale_subresource_and_get_scale_reads_it() {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let verifier = tokio::spawn(async move {
        let mut api = ApiServerVerifier(handle);
        let uri = "/apis/apps/v1/namespaces/shop/deployments/web/scale?";
        api.answer(
            "PATCH",
            uri,
            Some(json!({ "spec": { "replicas": 5 } })),
            500,
            INTERNAL,
        )
        .await;
        let ct = api
            .answer(
                "PATCH",
                uri,
                Some(json!({ "spec": { "replicas": 5 } })),
                200,
                &scale_json(5, 3),
            )
            .await;
        assert_eq!(ct.as_deref(), Some("application/merge-patch+json"));
        api.answer(
            "GET",
            "/apis/apps/v1/namespaces/shop/deployments/web/scale",
            None,
            200,
            &scale_json(5, 4),
        )
        .await;
        api.answer(
            "GET",
            "/apis/apps/v1/namespaces/shop/statefulsets/db/scale",
            None,
            404,
            NOT_FOUND,
        )
        .await;
        api.done().await;
    });
    let after = teflon_k8s::scale(&client, &web(), 5).await.unwrap();
    assert_eq!(
        after,
        teflon_k8s::ScaleState {
            desired: 5,
            current: 3
        }
    );
    let now = teflon_k8s::get_scale(&client, &web()).await.unwrap();
    assert_eq!(
        now,
        teflon_k8s::ScaleState {
            desired: 5,
            current: 4
        }
    );
    let db = WorkloadRef::new(WorkloadKind::StatefulSet, "shop", "db");
    assert!(matches!(
        teflon_k8s::get_scale(&client, &db).await,
        Err(teflon_k8s::ScaleError::NotFound(_))
    ));
    let ds = WorkloadRef::new(WorkloadKind::DaemonSet, "shop", "agent");
    assert!(matches!(
        teflon_k8s::scale(&client, &ds, 2).await,
        Err(teflon_k8s::ScaleError::Unsupported(_))
    ));
    verifier.await.unwrap();
}

fn owned_pod_json(
    uid: &str,
    owner_api: &str,
    owner_kind: &str,
    owner: &str,
    pod_labels: &[(&str, &str)],
) -> Value {
    let mut pod = pod_json(uid, &[]);
    pod["metadata"]["labels"] = json!(labels(pod_labels));
    pod["metadata"]["ownerReferences"] = json!([{
        "apiVersion": owner_api, "kind": owner_kind, "name": owner, "uid": "uid-owner",
        "controller": true, "blockOwnerDeletion": true,
    }]);
    pod
}

#[tokio::test(start_paused = true)]
async fn quarantine_of_a_stateful_set_pod_removes_the_stateful_sets_selector_labels() {
    let mut action = quarantine_action(false);
    action.workload = Some(WorkloadRef::new(WorkloadKind::StatefulSet, "shop", "db"));
    let sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": { "name": "db", "namespace": "shop", "uid": "uid-owner" },
        "spec": {
            "serviceName": "db",
            "selector": { "matchLabels": { "app": "db" }, "matchExpressions": [{ "key": "tier", "operator": "In", "values": ["data"] }] },
            "template": { "metadata": { "labels": { "app": "db", "tier": "data" } }, "spec": { "containers": [] } },
        },
    });
    let outcome = run(action, move |mut api| async move {
        let pod = owned_pod_json("uid-web-1", "apps/v1", "StatefulSet", "db", &[("app", "db"), ("tier", "data"), ("zone", "a")]);
        api.answer("GET", POD_URI, None, 200, &pod.to_string()).await;
        api.answer("GET", "/apis/apps/v1/namespaces/shop/statefulsets/db", None, 200, &sts.to_string()).await;
        let patch = json!([
            { "op": "test", "path": "/metadata/uid", "value": "uid-web-1" },
            { "op": "remove", "path": "/metadata/labels/app" },
            { "op": "remove", "path": "/metadata/labels/tier" },
            { "op": "add", "path": "/metadata/labels/forensics", "value": "hold" },
            { "op": "add", "path": "/metadata/labels/teflon.io~1quarantined", "value": "reap-shells" },
            { "op": "add", "path": "/metadata/labels/teflon.io~1quarantined-pod", "value": "web-1" },
            { "op": "add", "path": "/metadata/annotations", "value": quarantine_annotations(&[("app", "db"), ("tier", "data")], false) },
        ]);
        api.answer("PATCH", PATCH_URI, Some(patch), 200, &pod.to_string()).await;
        api.pod_event("quarantine", &quarantine_note("success"), "Normal").await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn quarantine_refuses_an_owner_whose_selector_it_cannot_read() {
    let outcome = run(quarantine_action(true), |mut api| async move {
        let pod = owned_pod_json("uid-web-1", "argoproj.io/v1alpha1", "Rollout", "web", &[("app", "web")]);
        api.answer("GET", POD_URI, None, 200, &pod.to_string()).await;
        api.warning_event(
            ApiServerVerifier::pod_ref(),
            "quarantine",
            &quarantine_note("failed: quarantine pod shop/web-1: unsupported owner: cannot tell which labels take the pod out of Rollout web"),
        )
        .await;
        api
    })
    .await;
    assert!(
        matches!(outcome, Outcome::Failed(ref why) if why.contains("Rollout")),
        "{outcome:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn block_binary_for_a_standalone_pod_selects_it_by_its_own_labels() {
    let mut action = block_action();
    action.workload = None;
    let name = teflon_k8s::tracing_policy_name("Pod", "web-1", "/usr/bin/nc");
    let outcome = run(action, move |mut api| async move {
        let mut pod = pod_json("uid-web-1", &[]);
        pod["metadata"]["labels"] = json!({ "run": "debug" });
        pod["metadata"]["ownerReferences"] = Value::Null;
        api.answer("GET", POD_URI, None, 200, &pod.to_string()).await;
        let mut body = tracing_policy(&name);
        body["spec"]["podSelector"] = json!({ "matchLabels": { "run": "debug" } });
        body["metadata"]["annotations"]["teflon.io/target"] = json!("Pod/web-1");
        let uri = format!("/apis/cilium.io/v1alpha1/namespaces/shop/tracingpoliciesnamespaced/{name}?&force=true&fieldManager=teflon&fieldValidation=Strict");
        api.answer("PATCH", &uri, Some(body.clone()), 200, &body.to_string()).await;
        api.pod_event("block_binary", &block_note("success"), "Normal").await;
        api
    })
    .await;
    assert_eq!(outcome, Outcome::Success);
}

#[tokio::test(start_paused = true)]
async fn block_binary_refuses_a_standalone_pod_without_labels() {
    let mut action = block_action();
    action.workload = None;
    let outcome = run(action, |mut api| async move {
        let mut pod = pod_json("uid-web-1", &[]);
        pod["metadata"]["labels"] = Value::Null;
        api.answer("GET", POD_URI, None, 200, &pod.to_string()).await;
        api.warning_event(
            ApiServerVerifier::pod_ref(),
            "block_binary",
            "block_binary pod shop/web-1 for rule \"Terminal shell in container\" (Critical): failed: block_binary in shop/web-1: the standalone pod has no labels",
        )
        .await;
        api
    })
    .await;
    assert!(
        matches!(outcome, Outcome::Failed(ref why) if why.contains("refusing")),
        "{outcome:?}"
    );
}
