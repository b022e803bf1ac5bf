//! Notifications against local webhooks (real sockets, real time): the JSON sink gets the
//! audit record, the Slack sink a message with the facts, headers come from files; a failing
//! webhook is retried and counted as failed, a hanging one fills its queue and the rest is
//! dropped and counted, and every alert is still decided and audited.

mod support;
use support::counter;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use metrics_util::debugging::DebuggingRecorder;
use serde_json::Value;
use teflon_core::{Actuator, Executed, Outcome, PlannedAction, StaticCluster};
use teflon_server::{
    AuthConfig, Authenticator, ClusterBackend, Config, Counters, NotifyConfig, Server,
};
use warp::Filter;

const TOKEN: &str = "notify-t0ken";
const POLICIES: &str = r#"version: 1
defaults: {dedup_window_secs: 0, cluster_max_actions: null}
policies:
  - name: reap-shells
    match: {rules: ["Terminal shell in container"]}
    action: {type: delete}
    guard: {min_available: 0}
"#;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail,
    Hang,
}

/// What a webhook received: (authorization header, body).
type Received = Arc<Mutex<Vec<(Option<String>, Bytes)>>>;

async fn webhook(mode: Mode) -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    let r = received.clone();
    let route = warp::post()
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::bytes())
        .then(move |auth: Option<String>, body: Bytes| {
            let r = r.clone();
            async move {
                r.lock().unwrap().push((auth, body));
                let mut r = warp::reply::Response::new("ok".into());
                match mode {
                    Mode::Ok => {}
                    // Unavailable, come back at once (so the test need not wait the backoff).
                    Mode::Fail => {
                        *r.status_mut() = warp::http::StatusCode::SERVICE_UNAVAILABLE;
                        r.headers_mut()
                            .insert("retry-after", warp::http::HeaderValue::from_static("0"));
                    }
                    Mode::Hang => std::future::pending::<()>().await,
                }
                r
            }
        })
        .boxed();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(teflon_server::serve::serve(
        listener,
        None,
        route,
        std::future::pending(),
    ));
    (addr, received)
}

#[derive(Clone)]
struct Instant0;

impl Actuator for Instant0 {
    fn execute(&self, _: &PlannedAction) -> impl Future<Output = Executed> + Send {
        std::future::ready(Outcome::Success.into())
    }
}

fn alert(i: usize) -> String {
    include_str!("fixtures/falco/01-terminal-shell-k8s-pod-syscall.json")
        .trim()
        .replace('\n', "")
        .replace("\"kubecon\"", &format!("\"web-{i}\""))
}

async fn server(dir: &Path, notify: Vec<NotifyConfig>) -> Server {
    std::fs::write(dir.join("policies.yaml"), POLICIES).unwrap();
    let mut config = Config::new(
        dir.join("policies.yaml"),
        AuthConfig {
            token_env: Some("UNUSED".into()),
            ..AuthConfig::default()
        },
    );
    config.audit_log = Some(dir.join("audit.jsonl"));
    config.notify = notify;
    let view = Arc::new(StaticCluster::new().deployment("default", "web", 64, 64));
    let (backend, _events) = ClusterBackend::custom(view, Arc::new(Instant0));
    Server::builder(config)
        .cluster(backend)
        .authenticator(Authenticator::with_token(TOKEN))
        .without_exporter()
        .start()
        .await
        .unwrap()
}

async fn post(server: &Server, body: &str) {
    let res = warp::test::request()
        .method("POST")
        .path("/v1/alerts")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(body)
        .reply(&server.routes())
        .await;
    assert_eq!(res.status(), 202);
}

async fn until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn sink(yaml: &str) -> NotifyConfig {
    serde_saphyr::from_str(yaml).unwrap()
}

#[tokio::test]
async fn the_json_sink_gets_the_audit_record_and_the_slack_sink_the_facts_with_headers_from_files()
{
    let dir = tempfile::tempdir().unwrap();
    let (json_addr, json_got) = webhook(Mode::Ok).await;
    let (slack_addr, slack_got) = webhook(Mode::Ok).await;
    let (skip_addr, skip_got) = webhook(Mode::Ok).await;
    std::fs::write(dir.path().join("token"), "Bearer s3cret\n").unwrap();
    let token = dir.path().join("token");
    let sinks = vec![
        sink(&format!(
            "{{name: audit-copy, url: 'http://{json_addr}/hook', headers_from_files: {{Authorization: '{}'}}}}",
            token.display()
        )),
        sink(&format!(
            "{{name: secops, url: 'http://{slack_addr}/services/x', format: slack, link: 'https://grafana.example/d/teflon?var-namespace={{namespace}}&var-pod={{pod}}'}}"
        )),
        sink(&format!(
            "{{name: skips-only, url: 'http://{skip_addr}/', filter: {{verdicts: [skip]}}}}"
        )),
    ];
    let server = server(dir.path(), sinks).await;
    post(&server, &alert(1)).await;
    until("both webhooks got the act", || {
        json_got.lock().unwrap().len() == 1 && slack_got.lock().unwrap().len() == 1
    })
    .await;
    let _ = server.shutdown().await;

    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let (auth, body) = json_got.lock().unwrap()[0].clone();
    assert_eq!(
        auth.as_deref(),
        Some("Bearer s3cret"),
        "the header from the file, trimmed"
    );
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        audit.lines().next().unwrap(),
        "the audit record, byte for byte"
    );
    let slack: Value = serde_json::from_slice(&slack_got.lock().unwrap()[0].1).unwrap();
    assert_eq!(
        slack["blocks"][0]["text"]["text"],
        "Teflon: delete default/web-1: success"
    );
    let fields = slack["blocks"][1]["fields"].to_string();
    for expected in [
        "*Rule*\\nTerminal shell in container",
        "*Pod*\\ndefault/web-1",
        "*Workload*\\nDeployment default/web",
        "*Action*\\ndelete (policy reap-shells)",
        "*Outcome*\\nsuccess",
    ] {
        assert!(fields.contains(expected), "{expected} not in {fields}");
    }
    assert!(
        slack["blocks"][2]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with(
                "<https://grafana.example/d/teflon?var-namespace=default&var-pod=web-1|Open>"
            )
    );
    assert!(
        skip_got.lock().unwrap().is_empty(),
        "its filter wants skips only"
    );
}

#[test]
fn a_failing_webhook_is_retried_and_a_hanging_one_drops_what_does_not_fit_while_every_alert_is_audited()
 {
    const ALERTS: usize = 40;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (fail_requests, hang_requests, audited) = metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let (fail_addr, fail_got) = webhook(Mode::Fail).await;
            let (hang_addr, hang_got) = webhook(Mode::Hang).await;
            let sinks = vec![
                sink(&format!("{{name: failing, url: 'http://{fail_addr}/', max_attempts: 2, queue_capacity: 64}}")),
                sink(&format!("{{name: hanging, url: 'http://{hang_addr}/', max_attempts: 1, timeout_secs: 1, queue_capacity: 2}}")),
            ];
            let server = server(dir.path(), sinks).await;
            let started = Instant::now();
            for i in 0..ALERTS {
                post(&server, &alert(i)).await;
            }
            let counters = server.state().counters.clone();
            until("every alert decided and audited", || {
                Counters::get(&counters.audit_records) == ALERTS as u64
            })
            .await;
            let decided_in = started.elapsed();
            until("the failing webhook got every message twice", || {
                fail_got.lock().unwrap().len() == 2 * ALERTS
            })
            .await;
            let _ = server.shutdown().await;
            let audited = std::fs::read_to_string(dir.path().join("audit.jsonl"))
                .unwrap()
                .lines()
                .count();
            // Not a timing assertion: the hanging webhook holds each attempt 1 s, so had
            // decisions waited for it, 40 alerts would take 40 s; they take milliseconds.
            eprintln!("{ALERTS} alerts decided and audited in {decided_in:?}");
            let hang_requests = hang_got.lock().unwrap().len();
            (fail_got.lock().unwrap().len(), hang_requests, audited)
        })
    });
    assert_eq!(audited, ALERTS, "a dead webhook loses no audit record");
    assert_eq!(
        fail_requests,
        2 * ALERTS,
        "each message: 1 attempt + 1 retry"
    );
    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(
        counter(
            &snap,
            teflon_metrics::names::NOTIFICATIONS_TOTAL,
            &[("sink", "failing"), ("result", "failed")]
        ),
        ALERTS as u64
    );
    assert_eq!(
        counter(
            &snap,
            teflon_metrics::names::NOTIFICATIONS_TOTAL,
            &[("sink", "failing"), ("result", "sent")]
        ),
        0
    );
    let hang_failed = counter(
        &snap,
        teflon_metrics::names::NOTIFICATIONS_TOTAL,
        &[("sink", "hanging"), ("result", "failed")],
    );
    let hang_dropped = counter(
        &snap,
        teflon_metrics::names::NOTIFICATIONS_TOTAL,
        &[("sink", "hanging"), ("result", "dropped")],
    );
    assert_eq!(
        hang_failed + hang_dropped,
        ALERTS as u64,
        "every message accounted for: failed {hang_failed}, dropped {hang_dropped}"
    );
    assert_eq!(hang_failed, hang_requests as u64, "one attempt each");
    assert!(
        hang_dropped >= (ALERTS - 3 - 2) as u64,
        "a queue of 2 and one in flight: the rest dropped, {hang_dropped}"
    );
}
