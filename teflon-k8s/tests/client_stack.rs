//! The actions through the production client stack (`teflon_k8s::client`, i.e.
//! `Client::try_from(Config)` with its connection pool, timeouts and layers) against a local
//! HTTP server answering real API JSON, instead of `Client::new(mock)`, which skips the
//! client builder's layers. Real sockets, real time: no paused clock here.

use std::sync::Arc;
use std::time::Duration;

use teflon_core::{
    Action, ActionId, Actuator, Alert, Executed, Outcome, PlannedAction, PodTarget, Priority,
    Timestamp, WorkloadKind, WorkloadRef,
};
use teflon_k8s::fake_api::{FakeApiServer, Options, Reply, Request};
use teflon_k8s::{KubeActuator, RetryPolicy};

const PDB_429: &str = include_str!("fixtures/eviction-429-pdb-status.json");
const EVICTION_OK: &str = include_str!("fixtures/eviction-success-status.json");
const INTERNAL: &str = include_str!("fixtures/internal-error-status.json");
const FORBIDDEN: &str = include_str!("fixtures/forbidden-status.json");

const EVICT_PATH: &str = "/api/v1/namespaces/shop/pods/web-1/eviction";
const POD_PATH: &str = "/api/v1/namespaces/shop/pods/web-1";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

fn now() -> Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos();
    Timestamp::from_nanos(i64::try_from(nanos).expect("nanoseconds fit i64"))
}

fn planned(action: Action, deadline_secs: u64) -> PlannedAction {
    PlannedAction {
        id: ActionId(1),
        pod: PodTarget {
            namespace: "shop".to_owned(),
            name: "web-1".to_owned(),
            uid: Some("uid-web-1".to_owned()),
        },
        workload: Some(WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")),
        action,
        policy: Arc::from("reap-shells"),
        binary: None,
        alert: Arc::new(
            Alert::test()
                .priority(Priority::Critical)
                .pod("shop", "web-1")
                .build(),
        ),
        deadline: now().plus(Duration::from_secs(deadline_secs)),
    }
}

fn evict() -> Action {
    Action::Evict {
        grace_period_secs: None,
    }
}

fn delete() -> Action {
    Action::Delete {
        grace_period_secs: Some(0),
    }
}

/// Retries that do not make a test wait long: the same rules, shorter delays.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        attempt_timeout: Duration::from_secs(2),
        ..RetryPolicy::default()
    }
}

fn pod_json() -> String {
    r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-1","namespace":"shop","uid":"uid-web-1"}}"#
        .to_owned()
}

/// Events are created (201, the object back); everything else as `other` says.
fn with_events(
    other: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |r: &Request| {
        if r.method == "POST" && r.path == EVENTS_PATH {
            Reply::Json(201, String::from_utf8_lossy(&r.body).into_owned())
        } else {
            other(r)
        }
    }
}

fn count(server: &FakeApiServer, method: &str, path: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

async fn execute(client: kube::Client, retry: RetryPolicy, action: &PlannedAction) -> Executed {
    KubeActuator::new(client)
        .with_retry(retry)
        .execute(action)
        .await
}

#[tokio::test]
async fn a_pdb_refusal_through_the_production_client_is_final_at_the_first_answer() {
    let server = FakeApiServer::start(with_events(|r| {
        if r.path == EVICT_PATH {
            Reply::Json(429, PDB_429.to_owned())
        } else {
            Reply::Json(404, "{}".to_owned())
        }
    }))
    .await
    .unwrap();
    let client = server.client().unwrap();
    let executed = execute(client, RetryPolicy::default(), &planned(evict(), 300)).await;
    assert_eq!(
        executed,
        Executed {
            outcome: Outcome::DisruptionBudget,
            attempts: 1
        }
    );
    // One request: neither Teflon nor the kube client's own retry layer (429 is one of its
    // defaults) sent the refused eviction again.
    assert_eq!(count(&server, "POST", EVICT_PATH), 1);
}

#[tokio::test]
async fn kubes_own_retry_layer_would_resend_the_refused_eviction() {
    // Why `teflon_k8s::client` turns `default_retry` off: with it on, the client resends the
    // Eviction API's 429 by itself, and the PDB's answer comes back late (in the field: as a
    // timeout). This documents the behaviour the test above guards against.
    let server = FakeApiServer::start(with_events(|r| {
        if r.path == EVICT_PATH {
            Reply::Json(429, PDB_429.to_owned())
        } else {
            Reply::Json(404, "{}".to_owned())
        }
    }))
    .await
    .unwrap();
    let mut config = server.config();
    config.default_retry = true;
    let client = kube::Client::try_from(config).unwrap();
    // A short deadline: kube's layer backs off up to 15 times, for minutes.
    let executed = execute(client, quick_retries(), &planned(evict(), 3)).await;
    assert!(
        matches!(executed.outcome, Outcome::Failed(ref why) if why.contains("timed out")),
        "{executed:?}"
    );
    assert!(count(&server, "POST", EVICT_PATH) > 1);
}

#[tokio::test]
async fn server_errors_are_retried_by_teflon_and_counted_as_attempts() {
    let failures = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen = failures.clone();
    let server = FakeApiServer::start(with_events(move |r| {
        if r.method == "DELETE" && r.path == POD_PATH {
            // 503 twice (the kube client would have retried these itself), then the pod.
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                return Reply::Json(503, INTERNAL.replace("500", "503"));
            }
            return Reply::ok(pod_json());
        }
        Reply::Json(404, "{}".to_owned())
    }))
    .await
    .unwrap();
    let executed = execute(
        server.client().unwrap(),
        quick_retries(),
        &planned(delete(), 300),
    )
    .await;
    assert_eq!(
        executed,
        Executed {
            outcome: Outcome::Success,
            attempts: 3
        }
    );
    assert_eq!(count(&server, "DELETE", POD_PATH), 3);
}

#[tokio::test]
async fn a_delete_sent_during_an_api_server_outage_goes_through_when_it_is_back() {
    // Take a free port, then close it: connections are refused, as while kube-apiserver is
    // down.
    let first = FakeApiServer::start(|_: &Request| Reply::ok("{}"))
        .await
        .unwrap();
    let addr = first.addr();
    let config = first.config();
    drop(first);
    let client = teflon_k8s::client::from_config(config).unwrap();
    let action = planned(delete(), 60);
    let running = tokio::spawn(async move { execute(client, quick_retries(), &action).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!running.is_finished(), "still retrying during the outage");
    let back = FakeApiServer::start_with(
        Options {
            addr: Some(addr),
            ..Options::default()
        },
        Arc::new(with_events(|r| {
            if r.method == "DELETE" && r.path == POD_PATH {
                Reply::ok(pod_json())
            } else {
                Reply::Json(404, "{}".to_owned())
            }
        })),
    )
    .await
    .unwrap();
    let executed = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("done once the API server is back")
        .unwrap();
    assert_eq!(executed.outcome, Outcome::Success);
    assert!(executed.attempts > 1, "{executed:?}");
    assert_eq!(count(&back, "DELETE", POD_PATH), 1);
}

/// A local API server whose pod answers `status` with `body` to every call (Events accepted,
/// everything else 404).
async fn pod_answers(status: u16, body: &'static str) -> FakeApiServer {
    FakeApiServer::start(with_events(move |r| {
        if r.path == POD_PATH {
            Reply::Json(status, body.to_owned())
        } else {
            Reply::Json(404, "{}".to_owned())
        }
    }))
    .await
    .unwrap()
}

#[tokio::test]
async fn an_action_that_keeps_failing_ends_failed_at_its_deadline() {
    let server = pod_answers(500, INTERNAL).await;
    let executed = execute(
        server.client().unwrap(),
        quick_retries(),
        &planned(delete(), 2),
    )
    .await;
    assert!(
        matches!(executed.outcome, Outcome::Failed(ref why) if why.contains("500")),
        "{executed:?}"
    );
    let deletes = count(&server, "DELETE", POD_PATH);
    assert!(deletes > 2, "{deletes} attempts");
    assert_eq!(executed.attempts as usize, deletes);
}

#[tokio::test]
async fn a_forbidden_call_is_final_at_once() {
    let server = pod_answers(403, FORBIDDEN).await;
    let executed = execute(
        server.client().unwrap(),
        quick_retries(),
        &planned(delete(), 300),
    )
    .await;
    assert!(
        matches!(executed.outcome, Outcome::Failed(ref why) if why.contains("403")),
        "{executed:?}"
    );
    assert_eq!(executed.attempts, 1);
    assert_eq!(count(&server, "DELETE", POD_PATH), 1);
}

#[tokio::test]
async fn kept_warm_connections_are_the_ones_the_next_actions_use() {
    let server = FakeApiServer::start_with(
        Options {
            tls: true,
            ..Options::default()
        },
        Arc::new(with_events(|r| match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/version") => Reply::ok(
                r#"{"major":"1","minor":"34","gitVersion":"v1.34.0","gitCommit":"","gitTreeState":"clean","buildDate":"2025-08-27T00:00:00Z","goVersion":"go1.24","compiler":"gc","platform":"linux/amd64"}"#,
            ),
            ("DELETE", _) => Reply::ok(pod_json()),
            _ => Reply::Json(404, "{}".to_owned()),
        })),
    )
    .await
    .unwrap();
    let client = server.client().unwrap();
    let warm = teflon_k8s::client::keep_warm(client.clone(), 3, Duration::from_secs(3600));
    for _ in 0..500 {
        if count(&server, "GET", "/version") >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(count(&server, "GET", "/version"), 3);
    assert_eq!(server.connections(), 3, "one TLS connection per ping");
    // Three actions at once, after the warm-up: no new connection, no TLS handshake.
    let actuator = KubeActuator::new(client).with_retry(quick_retries());
    let actions: Vec<PlannedAction> = (0..3).map(|_| planned(delete(), 300)).collect();
    let results = futures::future::join_all(actions.iter().map(|a| actuator.execute(a))).await;
    assert!(
        results.iter().all(|e| e.outcome == Outcome::Success),
        "{results:?}"
    );
    assert_eq!(server.connections(), 3);
    warm.abort();
}

#[tokio::test]
async fn an_eviction_through_the_production_client_succeeds() {
    let server = FakeApiServer::start(with_events(|r| {
        if r.method == "POST" && r.path == EVICT_PATH {
            Reply::Json(201, EVICTION_OK.to_owned())
        } else {
            Reply::Json(404, "{}".to_owned())
        }
    }))
    .await
    .unwrap();
    let executed = execute(
        server.client().unwrap(),
        quick_retries(),
        &planned(evict(), 300),
    )
    .await;
    assert_eq!(executed.outcome, Outcome::Success);
    let eviction = server
        .requests()
        .into_iter()
        .find(|r| r.path == EVICT_PATH)
        .unwrap();
    assert_eq!(eviction.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        eviction.json()["deleteOptions"]["preconditions"]["uid"],
        "uid-web-1"
    );
}
