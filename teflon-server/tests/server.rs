//! The server through its routes (`warp::test`), a real listener (TLS and client
//! certificates), graceful shutdown, hot reload and the metrics it emits.

mod support;
use support::counter;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use teflon_core::{Actuator, ClusterView, Executed, Outcome, PlannedAction, StaticCluster};
use teflon_server::{AuthConfig, Authenticator, ClusterBackend, Config, Server, ShutdownReport};

const TOKEN: &str = "t0ken-for-tests";

const POLICIES: &str = r#"version: 1
policies:
  - name: reap-shells
    match: {rules: ["Terminal shell in container"]}
    action: {type: delete}
    guard: {min_available: 1}
  - name: log-the-rest
    match: {}
    action: {type: log}
"#;

/// Falco's documented alert (fixture 01), about pod `default/web-<i>` of the test cluster.
fn alert(i: usize) -> String {
    include_str!("fixtures/falco/01-terminal-shell-k8s-pod-syscall.json")
        .trim()
        .replace('\n', "")
        .replace("\"kubecon\"", &format!("\"web-{i}\""))
}

fn lines(n: usize) -> String {
    (0..n).map(|i| alert(i % 6) + "\n").collect()
}

/// Records every action; optionally takes its time; answers the scripted results first,
/// then success at the first attempt.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<String>>>,
    delay: Option<Duration>,
    script: Arc<Mutex<std::collections::VecDeque<Executed>>>,
}

impl Actuator for Recorder {
    fn execute(&self, action: &PlannedAction) -> impl Future<Output = Executed> + Send {
        let calls = self.calls.clone();
        let delay = self.delay;
        let scripted = self.script.lock().expect("the script lock").pop_front();
        let what = format!(
            "{} {}/{}",
            action.action.kind(),
            action.pod.namespace,
            action.pod.name
        );
        async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            calls.lock().expect("the calls lock").push(what);
            scripted.unwrap_or_else(|| Outcome::Success.into())
        }
    }
}

/// A view that reports itself synced only once its flag is set.
struct Unsynced(StaticCluster, Arc<AtomicBool>);

impl ClusterView for Unsynced {
    fn pod(&self, namespace: &str, name: &str) -> Option<teflon_core::PodInfo> {
        self.0.pod(namespace, name)
    }
    fn workload(&self, w: &teflon_core::WorkloadRef) -> Option<teflon_core::WorkloadStatus> {
        ClusterView::workload(&self.0, w)
    }
    fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
        self.0.disruptions_allowed(namespace, pod)
    }
    fn is_synced(&self) -> bool {
        self.1.load(Ordering::SeqCst)
    }
}

struct Harness {
    server: Server,
    dir: tempfile::TempDir,
    actions: Arc<Mutex<Vec<String>>>,
    script: Arc<Mutex<std::collections::VecDeque<Executed>>>,
}

impl Harness {
    fn policy_file(&self) -> PathBuf {
        self.dir.path().join("policies.yaml")
    }

    async fn post(&self, path: &str, auth: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        let mut req = warp::test::request().method("POST").path(path).body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.reply(&self.server.routes()).await;
        let json = serde_json::from_slice(res.body()).unwrap_or(serde_json::Value::Null);
        (res.status().as_u16(), json)
    }

    /// A GET with the harness's token.
    async fn get(&self, path: &str) -> (u16, String) {
        self.get_as(path, Some(BEARER)).await
    }

    async fn get_as(&self, path: &str, auth: Option<&str>) -> (u16, String) {
        let mut req = warp::test::request().method("GET").path(path);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.reply(&self.server.routes()).await;
        (
            res.status().as_u16(),
            String::from_utf8_lossy(res.body()).into_owned(),
        )
    }

    async fn shutdown(
        self,
    ) -> (
        ShutdownReport,
        Vec<serde_json::Value>,
        Vec<String>,
        tempfile::TempDir,
    ) {
        let report = self.server.shutdown().await;
        let lines = audit_lines(&self.dir.path().join("audit.jsonl"));
        let actions = self.actions.lock().unwrap().clone();
        (report, lines, actions, self.dir)
    }
}

fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

struct Options {
    queue_capacity: usize,
    max_body_bytes: u64,
    delay: Option<Duration>,
    synced: bool,
    /// With `synced: false`: the view syncs when this turns true.
    sync_flag: Option<Arc<AtomicBool>>,
    may_act: Option<tokio::sync::watch::Receiver<bool>>,
    audit_log: Option<PathBuf>,
    /// Run in this directory (a restart of an earlier harness's server) instead of a new one.
    dir: Option<tempfile::TempDir>,
    /// The server's clock (default: the tokio clock).
    clock: Option<teflon_server::Clock>,
    /// Keep the ingest journal (its writer syncs in real time while the paused clock jumps
    /// ahead, so tests that time decisions leave it off).
    journal: bool,
    /// Look up pods the view does not know.
    lookup: Option<Arc<dyn teflon_server::backend::PodLookup>>,
    http: teflon_server::config::HttpConfig,
    max_alerts_per_request: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            queue_capacity: 1000,
            max_body_bytes: 1_048_576,
            delay: None,
            synced: true,
            sync_flag: None,
            may_act: None,
            audit_log: None,
            dir: None,
            clock: None,
            journal: false,
            lookup: None,
            http: teflon_server::config::HttpConfig::default(),
            max_alerts_per_request: teflon_server::config::DEFAULT_MAX_ALERTS_PER_REQUEST,
        }
    }
}

async fn harness(mut opts: Options) -> Harness {
    let dir = opts
        .dir
        .take()
        .unwrap_or_else(|| tempfile::tempdir().unwrap());
    std::fs::write(dir.path().join("policies.yaml"), POLICIES).unwrap();
    let mut config = Config::new(
        dir.path().join("policies.yaml"),
        AuthConfig {
            token_env: Some("UNUSED".into()),
            ..AuthConfig::default()
        },
    );
    config.audit_log = Some(
        opts.audit_log
            .unwrap_or_else(|| dir.path().join("audit.jsonl")),
    );
    config.queue_capacity = opts.queue_capacity;
    config.max_body_bytes = opts.max_body_bytes;
    config.http = opts.http;
    config.max_alerts_per_request = opts.max_alerts_per_request;
    config.listen = ([127, 0, 0, 1], 0).into();
    let cluster = StaticCluster::new().deployment("default", "web", 6, 6);
    let view: teflon_server::SharedView = if opts.synced {
        Arc::new(cluster)
    } else {
        Arc::new(Unsynced(
            cluster,
            opts.sync_flag
                .unwrap_or_else(|| Arc::new(AtomicBool::new(false))),
        ))
    };
    let recorder = Recorder {
        delay: opts.delay,
        ..Recorder::default()
    };
    let actions = recorder.calls.clone();
    let script = recorder.script.clone();
    let (mut backend, _events) = ClusterBackend::custom(view, Arc::new(recorder));
    backend.lookup = opts.lookup;
    let mut builder = Server::builder(config)
        .cluster(backend)
        .authenticator(Authenticator::with_token(TOKEN))
        .without_exporter();
    if let Some(clock) = opts.clock {
        builder = builder.clock(clock);
    }
    if !opts.journal {
        builder = builder.without_journal();
    }
    if let Some(may_act) = opts.may_act {
        builder = builder.may_act(may_act);
    }
    let server = builder.start().await.unwrap();
    Harness {
        server,
        dir,
        actions,
        script,
    }
}

const BEARER: &str = "Bearer t0ken-for-tests";

#[tokio::test(start_paused = true)]
async fn an_alert_with_the_right_token_is_accepted_decided_acted_on_and_audited() {
    let h = harness(Options::default()).await;
    let (code, body) = h.post("/v1/alerts", Some(BEARER), &alert(0)).await;
    assert_eq!(code, 202);
    assert_eq!(body, serde_json::json!({"accepted": 1}));
    let (report, lines, actions, _dir) = h.shutdown().await;
    assert_eq!(report.alerts_accepted, 1);
    assert_eq!(report.engine.alerts, 1);
    assert_eq!(actions, ["delete default/web-0"]);
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    assert_eq!(l["seq"], 0);
    assert_eq!(l["rule"], "Terminal shell in container");
    assert_eq!(l["policy"], "reap-shells");
    assert_eq!(l["verdict"], "act");
    assert_eq!(l["reason"], "matched");
    assert_eq!(l["outcome"], "success");
    assert_eq!(
        l["target"],
        serde_json::json!({"namespace": "default", "pod": "web-0"})
    );
    assert!(l["alert_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(l["received_at"].is_string() && l["acted_at"].is_string());
}

#[tokio::test(start_paused = true)]
async fn alerts_wait_in_the_queue_until_the_cluster_view_has_synced() {
    let flag = Arc::new(AtomicBool::new(false));
    let h = harness(Options {
        synced: false,
        sync_flag: Some(flag.clone()),
        ..Options::default()
    })
    .await;
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &alert(0)).await;
    assert_eq!(code, 202);
    // A view that has not synced would answer `pod_not_found`: nothing is decided yet.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(h.actions.lock().unwrap().is_empty());
    let (_, decisions) = h.get("/v1/decisions").await;
    assert_eq!(decisions.trim(), "[]");
    assert_eq!(h.get("/readyz").await.0, 503);
    flag.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.get("/readyz").await.0, 200);
    let (report, lines, actions, _dir) = h.shutdown().await;
    assert_eq!(actions, ["delete default/web-0"]);
    assert_eq!(report.engine.alerts, 1);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["reason"], "matched");
}

#[tokio::test(start_paused = true)]
async fn a_server_stopped_before_its_view_synced_decides_nothing_and_says_so() {
    let h = harness(Options {
        synced: false,
        ..Options::default()
    })
    .await;
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &lines(3)).await;
    assert_eq!(code, 202);
    let (report, lines, actions, _dir) = h.shutdown().await;
    assert!(actions.is_empty());
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(report.engine.alerts, 0);
    assert_eq!(report.engine.undecided, 3);
}

#[tokio::test(start_paused = true)]
async fn a_failed_action_is_audited_with_its_attempts_and_the_pod_is_decided_afresh_later() {
    let h = harness(Options::default()).await;
    h.script.lock().unwrap().push_back(Executed {
        outcome: Outcome::Failed("delete pod default/web-0: connection error".to_owned()),
        attempts: 7,
    });
    assert_eq!(h.post("/v1/alerts", Some(BEARER), &alert(0)).await.0, 202);
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Within the dedup window: a duplicate, as for any pod and policy.
    assert_eq!(h.post("/v1/alerts", Some(BEARER), &alert(0)).await.0, 202);
    // After it: the failed action did not make the pod "reaped", so it is acted on again.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(h.post("/v1/alerts", Some(BEARER), &alert(0)).await.0, 202);
    let (_, lines, actions, _dir) = h.shutdown().await;
    assert_eq!(actions, ["delete default/web-0", "delete default/web-0"]);
    let seen: Vec<(&str, &str, Option<u64>)> = lines
        .iter()
        .map(|l| {
            (
                l["reason"].as_str().unwrap(),
                l["outcome"].as_str().unwrap_or("-"),
                l["attempts"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("matched", "failed", Some(7)),
            ("duplicate", "-", None),
            ("matched", "success", Some(1)),
        ]
    );
    assert!(
        lines[0]["outcome_message"]
            .as_str()
            .unwrap()
            .contains("connection error")
    );
}

#[tokio::test(start_paused = true)]
async fn alerts_accepted_but_not_decided_are_decided_first_at_the_next_start() {
    // A follower accepts (202) and journals; it stops before deciding anything.
    let (_leader, may_act) = tokio::sync::watch::channel(false);
    let at = |secs: i64| -> teflon_server::Clock {
        Arc::new(move || teflon_core::Timestamp::from_secs(secs))
    };
    let h = harness(Options {
        may_act: Some(may_act),
        clock: Some(at(1_000)),
        journal: true,
        ..Options::default()
    })
    .await;
    assert_eq!(h.post("/v1/alerts", Some(BEARER), &lines(3)).await.0, 202);
    let (report, lines_before, actions, dir) = h.shutdown().await;
    assert_eq!((report.engine.undecided, actions.len()), (3, 0));
    assert!(lines_before.is_empty());
    // The next process, a leader, decides them first, with their original receipt time.
    let h = harness(Options {
        dir: Some(dir),
        clock: Some(at(5_000)),
        journal: true,
        ..Options::default()
    })
    .await;
    let (report, lines, actions, dir) = h.shutdown().await;
    assert_eq!(report.engine.alerts, 3);
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert_eq!(lines.len(), 3);
    let ids: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|l| l["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    for l in &lines {
        assert_eq!(l["received_at"], "1970-01-01T00:16:40.000000000Z", "{l}");
        assert_eq!(l["acted_at"], "1970-01-01T01:23:20.000000000Z", "{l}");
    }
    // Drained: the journal is empty, and a third start decides nothing again.
    let journal = dir.path().join("journal");
    assert_eq!(std::fs::read_dir(&journal).unwrap().count(), 0);
    let h = harness(Options {
        dir: Some(dir),
        journal: true,
        ..Options::default()
    })
    .await;
    let (report, lines, _, _dir) = h.shutdown().await;
    assert_eq!(report.engine.alerts, 0);
    assert_eq!(
        lines.len(),
        3,
        "the audit log is appended to, nothing decided twice"
    );
}

/// Answers look-ups from a script: `Some(true)` found (in a view with `web-6`), `Some(false)`
/// absent, `None` no answer; then found.
struct ScriptedLookup {
    answers: Mutex<std::collections::VecDeque<Option<bool>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl teflon_server::backend::PodLookup for ScriptedLookup {
    fn lookup(
        &self,
        namespace: String,
        name: String,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<Option<teflon_server::SharedView>, String>> + Send>,
    > {
        self.asked
            .lock()
            .unwrap()
            .push(format!("{namespace}/{name}"));
        let answer = self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Some(true));
        Box::pin(async move {
            match answer {
                Some(true) => Ok(Some(Arc::new(
                    StaticCluster::new().deployment("default", "web", 7, 7),
                ) as teflon_server::SharedView)),
                Some(false) => Ok(None),
                None => Err("connection refused".to_owned()),
            }
        })
    }
}

fn scripted(answers: &[Option<bool>]) -> (Arc<ScriptedLookup>, Arc<Mutex<Vec<String>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    (
        Arc::new(ScriptedLookup {
            answers: Mutex::new(answers.iter().copied().collect()),
            asked: asked.clone(),
        }),
        asked,
    )
}

#[tokio::test(start_paused = true)]
async fn a_pod_the_view_does_not_know_is_looked_up_before_pod_not_found_is_concluded() {
    // web-6 exists (created after the view's last event); web-7 does not.
    let (lookup, asked) = scripted(&[Some(true), Some(false)]);
    let h = harness(Options {
        lookup: Some(lookup),
        ..Options::default()
    })
    .await;
    assert_eq!(h.post("/v1/alerts", Some(BEARER), &alert(6)).await.0, 202);
    assert_eq!(h.post("/v1/alerts", Some(BEARER), &alert(7)).await.0, 202);
    // A pod the view knows needs no look-up.
    assert_eq!(h.post("/v1/alerts", Some(BEARER), &alert(1)).await.0, 202);
    let (_, lines, actions, _dir) = h.shutdown().await;
    assert_eq!(*asked.lock().unwrap(), ["default/web-6", "default/web-7"]);
    assert_eq!(actions, ["delete default/web-6", "delete default/web-1"]);
    let reasons: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["target"]["pod"].as_str().unwrap(),
                l["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(reasons.contains(&("web-6", "matched")), "{reasons:?}");
    assert!(reasons.contains(&("web-7", "pod_not_found")), "{reasons:?}");
    assert!(reasons.contains(&("web-1", "matched")), "{reasons:?}");
}

#[tokio::test(start_paused = true)]
async fn alerts_wait_in_order_while_the_look_up_gets_no_answer() {
    let (lookup, asked) = scripted(&[None, None, Some(true)]);
    let h = harness(Options {
        lookup: Some(lookup),
        ..Options::default()
    })
    .await;
    assert_eq!(h.post("/v1/alerts", Some(BEARER), &alert(6)).await.0, 202);
    assert_eq!(h.post("/v1/alerts", Some(BEARER), &alert(1)).await.0, 202);
    // The API server does not answer: nothing is decided, not even the alert behind it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.actions.lock().unwrap().is_empty());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, lines, actions, _dir) = h.shutdown().await;
    assert_eq!(asked.lock().unwrap().len(), 3, "retried until it answered");
    assert_eq!(actions, ["delete default/web-6", "delete default/web-1"]);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["reason"] == "matched"), "{lines:?}");
}

#[tokio::test(start_paused = true)]
async fn post_slash_arrays_and_json_lines_are_all_accepted() {
    let h = harness(Options::default()).await;
    let (code, body) = h.post("/", Some(BEARER), &alert(1)).await;
    assert_eq!((code, body["accepted"].as_u64()), (202, Some(1)));
    let array = format!("[{},{}]", alert(2), alert(3));
    let (code, body) = h.post("/v1/alerts", Some(BEARER), &array).await;
    assert_eq!((code, body["accepted"].as_u64()), (202, Some(2)));
    let (code, body) = h.post("/v1/alerts", Some(BEARER), &lines(3)).await;
    assert_eq!((code, body["accepted"].as_u64()), (202, Some(3)));
    let (report, lines, _, _dir) = h.shutdown().await;
    assert_eq!(report.alerts_accepted, 6);
    assert!(lines.len() >= 6);
}

#[tokio::test(start_paused = true)]
async fn a_missing_or_wrong_token_gets_401_and_changes_nothing() {
    let h = harness(Options::default()).await;
    let (code, body) = h.post("/v1/alerts", None, &alert(0)).await;
    assert_eq!(code, 401);
    assert!(body["error"].as_str().unwrap().contains("unauthorized"));
    let (code, _) = h.post("/v1/alerts", Some("Bearer wrong"), &alert(0)).await;
    assert_eq!(code, 401);
    let (code, _) = h.post("/v1/tetragon", Some("Basic dDBrZW4="), "{}").await;
    assert_eq!(code, 401);
    let (report, lines, actions, _dir) = h.shutdown().await;
    assert_eq!(report.alerts_accepted, 0);
    assert!(lines.is_empty());
    assert!(actions.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_malformed_batch_is_refused_whole_with_line_and_column_and_changes_nothing() {
    let h = harness(Options::default()).await;
    let body = format!("{}\n{{\"rule\": oops}}\n{}\n", alert(0), alert(1));
    let (code, err) = h.post("/v1/alerts", Some(BEARER), &body).await;
    assert_eq!(code, 400);
    assert_eq!(err["line"], 2);
    assert!(err["column"].as_u64().unwrap() > 0);
    assert!(err["error"].is_string());
    let (code, err) = h.post("/v1/alerts", Some(BEARER), "").await;
    assert_eq!(code, 400, "{err}");
    let (code, _) = h.post("/v1/alerts", Some(BEARER), "not json at all").await;
    assert_eq!(code, 400);
    let (report, lines, actions, _dir) = h.shutdown().await;
    assert_eq!(report.alerts_accepted, 0);
    assert!(lines.is_empty());
    assert!(actions.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_body_above_the_limit_gets_413() {
    let h = harness(Options {
        max_body_bytes: 512,
        ..Options::default()
    })
    .await;
    let (code, err) = h.post("/v1/alerts", Some(BEARER), &lines(3)).await;
    assert_eq!(code, 413);
    assert!(err["error"].as_str().unwrap().contains("max_body_bytes"));
    let (report, lines, _, _dir) = h.shutdown().await;
    assert_eq!(report.alerts_accepted, 0);
    assert!(lines.is_empty());
}

#[tokio::test(start_paused = true)]
async fn overload_gets_429_with_retry_after_and_nothing_accepted_is_lost() {
    let h = harness(Options {
        queue_capacity: 4,
        ..Options::default()
    })
    .await;
    // A batch larger than the whole queue can never fit: 413, not a 429 to retry forever.
    let (code, err) = h.post("/v1/alerts", Some(BEARER), &lines(5)).await;
    assert_eq!(code, 413, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("split this batch into at most 4 alerts"),
        "{err}"
    );
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &lines(4)).await;
    assert_eq!(code, 202);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let res = warp::test::request()
        .method("POST")
        .path("/v1/alerts")
        .header("authorization", BEARER)
        .body(lines(4))
        .reply(&h.server.routes())
        .await;
    assert_eq!(res.status().as_u16(), 202, "drained: room again");
    let res = warp::test::request()
        .method("POST")
        .path("/v1/alerts")
        .header("authorization", BEARER)
        .body(lines(1))
        .reply(&h.server.routes())
        .await;
    assert_eq!(res.status().as_u16(), 429, "full for now: retry");
    assert_eq!(res.headers()["retry-after"], "1");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut accepted = 8;
    // Bursts without yielding to the engine: some fit, the rest is refused whole.
    let mut refused = 0;
    for _ in 0..10 {
        let (code, body) = h.post("/v1/alerts", Some(BEARER), &lines(3)).await;
        match code {
            202 => accepted += body["accepted"].as_u64().unwrap(),
            429 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(accepted > 8);
    let (report, lines, _, _dir) = h.shutdown().await;
    let _ = refused;
    assert_eq!(report.alerts_accepted, accepted);
    assert_eq!(report.engine.alerts, accepted);
    let seqs: std::collections::BTreeSet<u64> =
        lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs.len() as u64,
        accepted,
        "every accepted alert has an audit record"
    );
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_before_parsing_and_takes_alerts_again_once_drained() {
    let h = harness(Options {
        queue_capacity: 3,
        ..Options::default()
    })
    .await;
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &lines(3)).await;
    assert_eq!(code, 202);
    // Full: even a malformed body is refused with 429, unread (no 400, nothing parsed).
    let (code, body) = h.post("/v1/alerts", Some(BEARER), "{not json").await;
    assert_eq!(code, 429, "{body}");
    // Once the engine has decided the queued alerts, requests are read again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (code, _) = h.post("/v1/alerts", Some(BEARER), "{not json").await;
    assert_eq!(code, 400);
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &lines(2)).await;
    assert_eq!(code, 202);
    let (report, lines, _, _dir) = h.shutdown().await;
    assert_eq!(report.alerts_accepted, 5);
    assert_eq!(lines.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn bodies_wait_for_a_parse_permit_so_parsed_alerts_in_flight_stay_bounded() {
    let h = harness(Options::default()).await;
    let permits = h.server.state().parsing.clone();
    let n = u32::try_from(permits.available_permits()).unwrap();
    assert!(n >= 2, "at least two bodies are parsed at once");
    let all = permits.acquire_many(n).await.unwrap();
    // Every permit is taken: the request waits (its body read, not parsed) instead of adding
    // one more parsed batch to memory.
    let waited = tokio::time::timeout(
        Duration::from_secs(5),
        h.post("/v1/alerts", Some(BEARER), &lines(2)),
    )
    .await;
    assert!(waited.is_err(), "answered without a parse permit");
    drop(all);
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &lines(2)).await;
    assert_eq!(code, 202);
    let (report, lines, _, _dir) = h.shutdown().await;
    assert_eq!(
        report.alerts_accepted, 2,
        "the abandoned request queued nothing"
    );
    assert_eq!(lines.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_batch_above_the_per_request_cap_gets_413_and_changes_nothing() {
    let h = harness(Options {
        max_alerts_per_request: 3,
        ..Options::default()
    })
    .await;
    let (code, err) = h.post("/v1/alerts", Some(BEARER), &lines(4)).await;
    assert_eq!(code, 413);
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("4 alerts in one request; split this batch into at most 3 alerts"),
        "{err}"
    );
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &lines(3)).await;
    assert_eq!(code, 202);
    let (report, lines, _, _dir) = h.shutdown().await;
    assert_eq!(report.alerts_accepted, 3);
    assert_eq!(lines.len(), 3);
}

/// A fresh connection that sent a request head declaring `declared` bytes and `sent` of them.
async fn stalled_body(
    addr: std::net::SocketAddr,
    declared: usize,
    sent: usize,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/alerts HTTP/1.1\r\nHost: teflon\r\nAuthorization: {BEARER}\r\nContent-Length: {declared}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&vec![b' '; sent]).await.unwrap();
    tcp
}

#[tokio::test(start_paused = true)]
async fn tricklers_neither_hold_the_budget_nor_delay_a_normal_alert() {
    use tokio::io::AsyncReadExt;
    let mut h = harness(Options::default()).await;
    let addr = h.server.listen().await.unwrap();
    let bodies = h.server.state().bodies.clone();
    let small = teflon_server::state::SMALL_BUDGET;
    // Sixteen senders of small bodies send 100 of their 60,000 bytes: they hold what they sent.
    let mut small_tricklers = Vec::new();
    for _ in 0..16 {
        small_tricklers.push(stalled_body(addr, 60_000, 100).await);
    }
    // Eight senders declare 1 MiB bodies (the whole large pool) and send 100 bytes.
    let started = tokio::time::Instant::now();
    let mut large_tricklers = Vec::new();
    for _ in 0..8 {
        large_tricklers.push(stalled_body(addr, 1 << 20, 100).await);
    }
    eventually("the tricklers are held", || {
        bodies.small_available() == small - 1600 && bodies.large_available() == 0
    })
    .await;
    // A normal alert on another connection is read and accepted without waiting for them.
    let body = alert(0);
    let head = format!(
        "POST /v1/alerts HTTP/1.1\r\nHost: teflon\r\nAuthorization: {BEARER}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let asked = tokio::time::Instant::now();
    assert_eq!(raw_post(addr, &head, body.as_bytes()).await.unwrap(), 202);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "the normal alert waited for the tricklers: {:?}",
        asked.elapsed()
    );
    // Large bodies below the minimum rate are refused after the grace, and give their
    // reservation back.
    for t in &mut large_tricklers {
        let mut resp = vec![0u8; 1024];
        let n = t.read(&mut resp).await.unwrap();
        assert_eq!(status_of(&resp[..n]).unwrap(), 408);
    }
    let waited = started.elapsed();
    let grace = teflon_server::state::LARGE_BODY_GRACE;
    assert!(waited >= grace && waited < grace * 2, "{waited:?}");
    eventually("the large pool is free", || {
        bodies.large_available() == bodies.large_size()
    })
    .await;
    drop(small_tricklers);
    eventually("the small pool is whole again", || {
        bodies.small_available() == small
    })
    .await;
    let (report, lines, _, _dir) = h.shutdown().await;
    assert_eq!(report.alerts_accepted, 1);
    assert_eq!(lines.len(), 1);
}

/// Send `head` and `body` over a fresh connection, then read the status line of the answer.
async fn raw_post(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(head.as_bytes()).await?;
    tcp.write_all(body).await?;
    let mut resp = vec![0; 1024];
    let n = tcp.read(&mut resp).await?;
    status_of(&resp[..n])
}

/// The status code of a raw HTTP/1.1 response.
fn status_of(resp: &[u8]) -> std::io::Result<u16> {
    let text = String::from_utf8_lossy(resp);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status in {text:?}")))
}

#[tokio::test(start_paused = true)]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_gives_its_budget_back() {
    let mut h = harness(Options::default()).await;
    let addr = h.server.listen().await.unwrap();
    let budget = h.server.state().bodies.clone();
    let total = budget.small_available();
    let body = alert(0);
    let head = |len: usize| {
        format!(
            "POST /v1/alerts HTTP/1.1\r\nHost: teflon\r\nAuthorization: {BEARER}\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    // The body declares one byte more than it sends: the read waits for it, then times out.
    let started = tokio::time::Instant::now();
    let code = raw_post(addr, &head(body.len() + 1), body.as_bytes())
        .await
        .unwrap();
    assert_eq!(code, 408);
    // On the paused clock: the timeout fired, not some other one.
    let timeout = teflon_server::routes::BODY_TIMEOUT;
    let waited = started.elapsed();
    assert!(waited >= timeout && waited < timeout * 2, "{waited:?}");
    assert_eq!(budget.small_available(), total);
    // The whole body on time is accepted, and so is one far larger than a connection's read
    // buffer (it is read through the buffer in pieces).
    let code = raw_post(addr, &head(body.len()), body.as_bytes())
        .await
        .unwrap();
    assert_eq!(code, 202);
    let batch = lines(400);
    assert!(batch.len() > 256 * 1024);
    let code = raw_post(addr, &head(batch.len()), batch.as_bytes())
        .await
        .unwrap();
    assert_eq!(code, 202);
    let rejected = h.server.state().counters.clone();
    let (report, lines, _, _dir) = h.shutdown().await;
    assert_eq!(report.alerts_accepted, 401);
    assert_eq!(lines.len(), 401);
    assert_eq!(
        rejected
            .alerts_rejected
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_replica_whose_audit_log_cannot_be_written_is_not_ready() {
    // Writes to /dev/full fail with ENOSPC, like a full disk.
    let h = harness(Options {
        audit_log: Some(PathBuf::from("/dev/full")),
        ..Options::default()
    })
    .await;
    let (code, body) = h.get_as("/readyz", None).await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &lines(3)).await;
    assert_eq!(code, 202);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (code, body) = h.get_as("/readyz", None).await;
    assert_eq!(code, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["audit_ok"], false);
    assert_eq!(body["cluster_synced"], true);
    let health = h.server.state().audit.clone();
    let _ = h.shutdown().await;
    assert_eq!(health.lines_lost(), 3, "every line is counted as lost");
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_the_queue_and_records_in_flight_actions() {
    let h = harness(Options {
        delay: Some(Duration::from_secs(3)),
        ..Options::default()
    })
    .await;
    for i in 0..4 {
        let (code, _) = h.post("/v1/alerts", Some(BEARER), &alert(i)).await;
        assert_eq!(code, 202);
    }
    // Shut down at once: the alerts are queued, their actions not even started.
    let (report, lines, actions, _dir) = h.shutdown().await;
    assert_eq!(report.engine.alerts, 4);
    assert_eq!(report.engine.abandoned_actions, 0);
    assert_eq!(lines.len(), 4);
    let acted: Vec<&serde_json::Value> = lines.iter().filter(|l| l["verdict"] == "act").collect();
    assert!(!acted.is_empty());
    assert!(acted.iter().all(|l| l["outcome"] == "success"));
    assert_eq!(actions.len(), acted.len());
}

#[tokio::test(start_paused = true)]
async fn posts_after_shutdown_began_are_refused_without_a_5xx_for_input() {
    let h = harness(Options::default()).await;
    h.server
        .state()
        .accepting
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &alert(0)).await;
    assert_eq!(code, 503);
    let _ = h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn decisions_are_listed_newest_first_with_a_limit() {
    let h = harness(Options::default()).await;
    h.post("/v1/alerts", Some(BEARER), &lines(3)).await;
    // Let the engine task decide.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (code, body) = h.get("/v1/decisions?limit=2").await;
    assert_eq!(code, 200);
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 2);
    assert!(list[0]["seq"].as_u64() > list[1]["seq"].as_u64());
    let (code, body) = h.get("/v1/decisions").await;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&body)
            .unwrap()
            .len(),
        3
    );
    let (code, _) = h.get("/v1/decisions?limit=lots").await;
    assert_eq!(code, 400);
    let _ = h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn decisions_and_status_need_credentials_but_probes_and_metrics_do_not() {
    let h = harness(Options::default()).await;
    h.post("/v1/alerts", Some(BEARER), &alert(0)).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for path in ["/v1/decisions", "/v1/status"] {
        let (code, body) = h.get_as(path, None).await;
        assert_eq!(code, 401, "{path} without a token");
        assert!(body.contains("unauthorized"), "{body}");
        assert_eq!(
            h.get_as(path, Some("Bearer wrong")).await.0,
            401,
            "{path} wrong token"
        );
        assert_eq!(h.get(path).await.0, 200, "{path} with the token");
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(h.get_as(path, None).await.0, 200, "{path} is open");
    }
    let _ = h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn status_health_readiness_metrics_and_unknown_routes_answer() {
    let h = harness(Options::default()).await;
    h.post("/v1/alerts", Some(BEARER), &alert(0)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, body) = h.get("/v1/status").await;
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        status["policies"]["names"],
        serde_json::json!(["reap-shells", "log-the-rest"])
    );
    assert!(status["workloads"].is_array());
    assert!(status["deferrals"].is_array());
    assert_eq!(status["alerts_accepted"], 1);
    assert_eq!(
        status["leader"],
        serde_json::Value::Null,
        "no leader election"
    );
    assert_eq!(h.get("/healthz").await.0, 200);
    assert_eq!(h.get("/readyz").await.0, 200);
    let (code, _) = h.get("/metrics").await;
    assert_eq!(code, 200);
    assert_eq!(h.get("/nope").await.0, 404);
    assert_eq!(h.get("/v1/alerts").await.0, 405);
    let _ = h.shutdown().await;

    let unsynced = harness(Options {
        synced: false,
        ..Options::default()
    })
    .await;
    let (code, body) = unsynced.get("/readyz").await;
    assert_eq!(code, 503, "{body}");
    let _ = unsynced.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn tetragon_bodies_are_checked_all_or_nothing() {
    let h = harness(Options::default()).await;
    let (code, err) = h.post("/v1/tetragon", Some(BEARER), "{not json").await;
    assert_eq!(code, 400);
    assert!(err["line"].is_u64());
    let _ = h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn falco_alerts_or_unknown_objects_on_the_tetragon_endpoint_get_400_with_the_reason() {
    let h = harness(Options::default()).await;
    let (code, err) = h.post("/v1/tetragon", Some(BEARER), &alert(0)).await;
    assert_eq!(code, 400);
    assert!(
        err["error"].as_str().unwrap().contains("/v1/alerts"),
        "{err}"
    );
    let (code, err) = h.post("/v1/tetragon", Some(BEARER), r#"{"foo":1}"#).await;
    assert_eq!(code, 400);
    assert!(err["error"].as_str().unwrap().contains("`foo`"), "{err}");
    let (report, lines, _, _dir) = h.shutdown().await;
    assert_eq!(report.alerts_accepted, 0);
    assert!(lines.is_empty());
}

#[tokio::test(start_paused = true)]
async fn status_is_paginated_with_totals() {
    let h = harness(Options::default()).await;
    h.post("/v1/alerts", Some(BEARER), &alert(0)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, body) = h.get("/v1/status").await;
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["limit"], 100);
    assert_eq!(status["offset"], 0);
    assert_eq!(status["workloads_total"], 1, "{status}");
    assert_eq!(status["workloads"].as_array().unwrap().len(), 1);
    assert_eq!(status["next_offset"], serde_json::Value::Null);
    let (_, body) = h.get("/v1/status?limit=0").await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["workloads"].as_array().unwrap().len(), 0);
    assert_eq!(status["workloads_total"], 1);
    assert_eq!(status["next_offset"], 0);
    let (_, body) = h.get("/v1/status?limit=100000&offset=1").await;
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["limit"], 1000, "capped");
    assert_eq!(status["workloads"].as_array().unwrap().len(), 0);
    assert_eq!(h.get("/v1/status?offset=-1").await.0, 400);
    let _ = h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_changed_policy_file_is_reloaded_and_an_invalid_one_keeps_the_old_set() {
    let h = harness(Options::default()).await;
    let names = |h: &Harness| h.server.state().status_snapshot().policies.names.clone();
    let error = |h: &Harness| {
        h.server
            .state()
            .status_snapshot()
            .policies
            .last_error
            .clone()
    };
    std::fs::write(
        h.policy_file(),
        POLICIES.replace("reap-shells", "kill-shells"),
    )
    .unwrap();
    for _ in 0..20 {
        if names(&h).first().map(String::as_str) == Some("kill-shells") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(names(&h), ["kill-shells", "log-the-rest"]);
    assert_eq!(error(&h), None);

    std::fs::write(
        h.policy_file(),
        "version: 1\npolicies:\n  - name: x\n    action: {type: explode}\n",
    )
    .unwrap();
    for _ in 0..20 {
        if error(&h).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let why = error(&h).expect("the bad file is reported");
    assert!(why.contains("policies.yaml:"), "{why}");
    assert_eq!(names(&h), ["kill-shells", "log-the-rest"]);
    // The old set still decides.
    h.post("/v1/alerts", Some(BEARER), &alert(0)).await;
    let (_, lines, _, _dir) = h.shutdown().await;
    assert_eq!(lines[0]["policy"], "kill-shells");
}

#[test]
fn ingest_decisions_rejections_reapings_and_reloads_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let h = harness(Options::default()).await;
            assert_eq!(h.post("/v1/alerts", Some(BEARER), &alert(0)).await.0, 202);
            assert_eq!(h.post("/v1/alerts", None, &alert(1)).await.0, 401);
            assert_eq!(h.post("/v1/alerts", Some(BEARER), "{").await.0, 400);
            std::fs::write(h.policy_file(), "version: 2\n").unwrap();
            for _ in 0..10 {
                if h.server
                    .state()
                    .status_snapshot()
                    .policies
                    .last_error
                    .is_some()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let _ = h.shutdown().await;
        });
    });
    let snap = snapshotter.snapshot().into_vec();
    use teflon_metrics::names;
    assert_eq!(
        counter(
            &snap,
            names::ALERTS_TOTAL,
            &[("source", "syscall"), ("priority", "Critical")]
        ),
        1
    );
    assert_eq!(
        counter(
            &snap,
            names::ALERTS_REJECTED_TOTAL,
            &[("reason", "unauthorized")]
        ),
        1
    );
    assert_eq!(
        counter(
            &snap,
            names::ALERTS_REJECTED_TOTAL,
            &[("reason", "parse_error")]
        ),
        1
    );
    assert_eq!(
        counter(
            &snap,
            names::DECISIONS_TOTAL,
            &[
                ("policy", "reap-shells"),
                ("verdict", "act"),
                ("reason", "matched")
            ]
        ),
        1
    );
    assert_eq!(
        counter(
            &snap,
            names::INFECTIONS_TOTAL,
            &[("namespace", "default"), ("workload", "web")]
        ),
        1
    );
    assert_eq!(
        counter(
            &snap,
            names::REAPINGS_TOTAL,
            &[
                ("namespace", "default"),
                ("workload", "web"),
                ("action", "delete"),
                ("outcome", "success")
            ]
        ),
        1
    );
    assert_eq!(
        counter(&snap, names::POLICY_RELOADS_TOTAL, &[("result", "failure")]),
        1
    );
    assert!(
        snap.iter()
            .any(|(k, _, _, _)| k.key().name() == names::DECISION_LATENCY_SECONDS)
    );
    assert!(
        snap.iter()
            .any(|(k, _, _, _)| k.key().name() == names::INFECTED_PODS)
    );
}

mod tls {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Pki {
        ca_pem: String,
        server_cert: String,
        server_key: String,
        client: (CertificateDer<'static>, PrivateKeyDer<'static>),
        rogue: (CertificateDer<'static>, PrivateKeyDer<'static>),
        ca_der: CertificateDer<'static>,
    }

    fn pki() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["falco".to_owned()])
            .unwrap()
            .signed_by(&client_key, &ca)
            .unwrap();
        let rogue_key = KeyPair::generate().unwrap();
        let rogue = CertificateParams::new(vec!["falco".to_owned()])
            .unwrap()
            .self_signed(&rogue_key)
            .unwrap();
        Pki {
            ca_pem: ca.pem(),
            server_cert: server.pem(),
            server_key: server_key.serialize_pem(),
            client: (
                client.der().clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der())),
            ),
            rogue: (
                rogue.der().clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(rogue_key.serialize_der())),
            ),
            ca_der: ca.der().clone(),
        }
    }

    async fn post_over_tls(
        addr: std::net::SocketAddr,
        pki: &Pki,
        client_cert: Option<&(CertificateDer<'static>, PrivateKeyDer<'static>)>,
        auth: Option<&str>,
    ) -> std::io::Result<u16> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client_cert {
            Some((c, k)) => builder
                .with_client_auth_cert(vec![c.clone()], k.clone_key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await?;
        let body = alert(0);
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "POST /v1/alerts HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(req.as_bytes()).await?;
        let mut resp = Vec::new();
        tls.read_to_end(&mut resp).await?;
        status_of(&resp)
    }

    #[tokio::test]
    async fn a_client_certificate_signed_by_the_ca_authenticates_over_a_real_tls_handshake() {
        let pki = pki();
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("policies.yaml"), POLICIES).unwrap();
        std::fs::write(p("ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(p("server.pem"), &pki.server_cert).unwrap();
        std::fs::write(p("server.key"), &pki.server_key).unwrap();
        std::fs::write(p("token"), TOKEN).unwrap();
        let text = "listen: 127.0.0.1:0\npolicies: policies.yaml\nauth: {token_file: token, client_ca_file: ca.pem}\ntls: {cert_file: server.pem, key_file: server.key}\naudit_log: audit.jsonl\n";
        std::fs::write(p("teflon.yaml"), text).unwrap();
        let config = Config::load(&p("teflon.yaml")).unwrap();
        let (backend, _events) = ClusterBackend::custom(
            Arc::new(StaticCluster::new().deployment("default", "web", 6, 6)),
            Arc::new(Recorder::default()),
        );
        let mut server = Server::builder(config)
            .cluster(backend)
            .without_exporter()
            .start()
            .await
            .unwrap();
        let addr = server.listen().await.unwrap();

        assert_eq!(
            post_over_tls(addr, &pki, Some(&pki.client), None)
                .await
                .unwrap(),
            202
        );
        assert_eq!(post_over_tls(addr, &pki, None, None).await.unwrap(), 401);
        assert_eq!(
            post_over_tls(addr, &pki, None, Some(&format!("Bearer {TOKEN}")))
                .await
                .unwrap(),
            202
        );
        assert_eq!(
            post_over_tls(addr, &pki, None, Some("Bearer nope"))
                .await
                .unwrap(),
            401
        );
        // A certificate from another CA does not get through the handshake.
        assert!(!matches!(
            post_over_tls(addr, &pki, Some(&pki.rogue), None).await,
            Ok(202)
        ));

        let report = server.shutdown().await;
        assert_eq!(report.alerts_accepted, 2);
        assert_eq!(audit_lines(&p("audit.jsonl")).len(), 2);
    }
}

#[tokio::test]
async fn run_serves_a_sim_config_until_its_shutdown_signal_fires_then_drains() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policies.yaml"), POLICIES).unwrap();
    std::fs::write(
        dir.path().join("teflon.yaml"),
        "listen: 127.0.0.1:0\npolicies: policies.yaml\ncluster: {type: sim, recovery_secs: 1}\nauth: none\naudit_log: audit.jsonl\n",
    )
    .unwrap();
    let config = Config::load(&dir.path().join("teflon.yaml")).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(teflon_server::run(config, async {
        let _ = rx.await;
    }));
    // The signal fires (as SIGTERM would); run drains and returns without error.
    tx.send(()).unwrap();
    let report = server.await.unwrap().unwrap();
    assert_eq!(report.alerts_accepted, 0);
    assert!(dir.path().join("audit.jsonl").exists());
}

/// Wait (bounded, on the paused clock) for the engine task to catch up.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(start_paused = true)]
async fn a_follower_buffers_alerts_decides_them_in_order_once_it_leads_and_stops_when_it_no_longer_does()
 {
    let (leader, may_act) = tokio::sync::watch::channel(false);
    let h = harness(Options {
        may_act: Some(may_act),
        ..Options::default()
    })
    .await;
    let audit = h.dir.path().join("audit.jsonl");

    // Follower: accepted and buffered, not decided.
    for i in 0..3 {
        let (code, body) = h.post("/v1/alerts", Some(BEARER), &alert(i)).await;
        assert_eq!((code, body["accepted"].as_u64()), (202, Some(1)));
    }
    // Give the engine task every chance to decide (wrongly): ten ticks on the paused clock.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let status: serde_json::Value = serde_json::from_str(&h.get("/v1/status").await.1).unwrap();
    assert_eq!(status["leader"], false);
    assert_eq!(status["queue_depth"], 3);
    assert_eq!(status["decisions"], 0);
    assert_eq!(
        h.get("/readyz").await.0,
        200,
        "a follower is ready: it buffers"
    );
    assert!(audit_lines(&audit).is_empty());
    assert!(h.actions.lock().unwrap().is_empty());

    // Leader: the buffer is decided in arrival order, acted on and audited.
    leader.send(true).unwrap();
    eventually("3 audit lines", || audit_lines(&audit).len() == 3).await;
    let lines = audit_lines(&audit);
    let mut by_seq: Vec<(u64, String)> = lines
        .iter()
        .map(|l| {
            (
                l["seq"].as_u64().unwrap(),
                l["target"]["pod"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    by_seq.sort();
    assert_eq!(
        by_seq,
        [
            (0, "web-0".to_owned()),
            (1, "web-1".into()),
            (2, "web-2".into())
        ]
    );
    assert!(lines.iter().all(|l| l["outcome"] == "success"));
    let status: serde_json::Value = serde_json::from_str(&h.get("/v1/status").await.1).unwrap();
    assert_eq!(status["leader"], true);
    assert_eq!(status["queue_depth"], 0);

    // Leadership lost: new alerts are accepted and buffered again, not decided.
    leader.send(false).unwrap();
    for i in 3..5 {
        let (code, _) = h.post("/v1/alerts", Some(BEARER), &alert(i)).await;
        assert_eq!(code, 202);
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(audit_lines(&audit).len(), 3);
    assert_eq!(h.server.state().queue.depth(), 2);

    // A follower shutting down reports what it could not decide instead of deciding it.
    let (report, lines, actions, _dir) = h.shutdown().await;
    assert_eq!(report.alerts_accepted, 5);
    assert_eq!(report.engine.alerts, 3);
    assert_eq!(report.engine.undecided, 2);
    assert_eq!(lines.len(), 3);
    assert_eq!(
        actions,
        [
            "delete default/web-0",
            "delete default/web-1",
            "delete default/web-2"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_keda_scaling_endpoint_answers_the_attacked_workload_without_credentials() {
    let h = harness(Options::default()).await;
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &lines(3)).await;
    assert_eq!(code, 202);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (code, body) = h.get_as("/v1/scaling/default/deployments/web", None).await;
    assert_eq!(code, 200, "{body}");
    let b: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(b["attacked"], true, "{b}");
    assert_eq!(b["kind"], "Deployment");
    assert_eq!(b["desired"], 6);
    // Three pods reaped at once: nothing waits, the policy keeps 1 available.
    assert_eq!(b["backlog"], 0, "{b}");
    assert!(b["replicas_needed"].as_u64().is_some_and(|n| n >= 1), "{b}");
    assert!(b["attack_pressure"].is_number(), "{b}");
    let (code, body) = h.get_as("/v1/scaling/default/deployments/nope", None).await;
    assert_eq!(code, 404, "{body}");
    let (code, _) = h.get_as("/v1/scaling/default/daemonsets/web", None).await;
    assert_eq!(code, 404);
    let _ = h.shutdown().await;

    let h = harness(Options {
        synced: false,
        ..Options::default()
    })
    .await;
    let (code, body) = h.get_as("/v1/scaling/default/deployments/web", None).await;
    assert_eq!(code, 503, "{body}");
    let _ = h.shutdown().await;
}

/// Connection limits and timeouts, over a real listener on the paused clock.
mod connections {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn http(max_connections: usize) -> teflon_server::config::HttpConfig {
        teflon_server::config::HttpConfig {
            max_connections,
            ..teflon_server::config::HttpConfig::default()
        }
    }

    /// Read until the server closes the connection (EOF or reset); what was read.
    async fn until_closed(tcp: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// True when a new connection is closed before any answer.
    async fn refused(addr: std::net::SocketAddr) -> bool {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(mut tcp) => until_closed(&mut tcp).await.is_empty(),
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    /// One request on a kept-alive connection; the status code.
    async fn request(tcp: &mut tokio::net::TcpStream, auth: Option<&str>) -> u16 {
        let body = alert(0);
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "POST /v1/alerts HTTP/1.1\r\nHost: teflon\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tcp.read(&mut buf).await.unwrap();
        status_of(&buf[..n]).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_at_the_header_timeout() {
        let mut h = harness(Options::default()).await;
        let addr = h.server.listen().await.unwrap();
        let started = tokio::time::Instant::now();
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(until_closed(&mut silent).await.is_empty());
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
            "{waited:?}"
        );
        // A head trickled a byte at a time is cut at the same deadline.
        let started = tokio::time::Instant::now();
        let mut trickler = tokio::net::TcpStream::connect(addr).await.unwrap();
        for b in b"POST /v1/alerts HTTP/1.1\r\nHost: t".iter().take(12) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if trickler.write_all(&[*b]).await.is_err() {
                break;
            }
        }
        until_closed(&mut trickler).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(10) && waited < Duration::from_secs(13),
            "{waited:?}"
        );
        let _ = h.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_outlives_libcurls_reuse_and_is_closed_at_the_idle_timeout() {
        let mut h = harness(Options::default()).await;
        let addr = h.server.listen().await.unwrap();
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(request(&mut tcp, Some(BEARER)).await, 202);
        // libcurl reuses a connection idle for up to 118 s: it is still served.
        tokio::time::sleep(Duration::from_secs(118)).await;
        assert_eq!(request(&mut tcp, Some(BEARER)).await, 202);
        let answered = tokio::time::Instant::now();
        assert!(until_closed(&mut tcp).await.is_empty());
        let idle = answered.elapsed();
        assert!(
            idle >= Duration::from_secs(120) && idle < Duration::from_secs(121),
            "{idle:?}"
        );
        let (report, _, _, _dir) = h.shutdown().await;
        assert_eq!(report.alerts_accepted, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn past_max_connections_unauthenticated_idle_ones_make_room_and_the_rest_is_refused() {
        let mut h = harness(Options {
            http: http(3),
            ..Options::default()
        })
        .await;
        let addr = h.server.listen().await.unwrap();
        // A sender that authenticated, then two silent connections: the limit.
        let mut sender = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert_eq!(request(&mut sender, Some(BEARER)).await, 202);
        let mut silent1 = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut silent2 = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Connections younger than a second are not evicted: refused at accept (the reset can
        // come before `connect` returns).
        assert!(refused(addr).await);
        tokio::time::sleep(teflon_server::connections::MIN_EVICT_AGE).await;
        // A newcomer: the oldest silent connection gives its place.
        let mut newcomer = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(until_closed(&mut silent1).await.is_empty());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "evicted, not timed out"
        );
        // An unauthenticated request does not protect a connection; an authenticated one does.
        silent2
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: teflon\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = silent2.read(&mut buf).await.unwrap();
        assert_eq!(status_of(&buf[..n]).unwrap(), 200);
        assert_eq!(request(&mut newcomer, Some(BEARER)).await, 202);
        assert_eq!(request(&mut sender, Some(BEARER)).await, 202);
        tokio::time::sleep(teflon_server::connections::MIN_EVICT_AGE).await;
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(until_closed(&mut silent2).await.is_empty());
        assert_eq!(request(&mut third, Some(BEARER)).await, 202);
        // Three authenticated connections: a fourth is refused at accept.
        let started = tokio::time::Instant::now();
        assert!(refused(addr).await);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused at once"
        );
        assert_eq!(request(&mut sender, Some(BEARER)).await, 202);
        let (report, _, _, _dir) = h.shutdown().await;
        assert_eq!(report.alerts_accepted, 5);
    }

    /// The SETTINGS the server answers an HTTP/2 client preface with (id → value), or `None`
    /// when it does not speak HTTP/2.
    async fn h2_settings(addr: std::net::SocketAddr) -> Option<Vec<(u16, u32)>> {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        // An empty SETTINGS frame of our own.
        tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
        let mut head = [0u8; 9];
        if tcp.read_exact(&mut head).await.is_err() || head[3] != 4 {
            return None;
        }
        let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).await.ok()?;
        Some(
            payload
                .chunks_exact(6)
                .map(|c| {
                    (
                        u16::from_be_bytes([c[0], c[1]]),
                        u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                    )
                })
                .collect(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn http2_is_off_unless_enabled_and_then_serves_alerts_through_small_windows() {
        let mut h = harness(Options::default()).await;
        let addr = h.server.listen().await.unwrap();
        assert_eq!(h2_settings(addr).await, None, "h2c refused by default");
        let _ = h.shutdown().await;

        let mut h = harness(Options {
            http: teflon_server::config::HttpConfig {
                http2: true,
                ..teflon_server::config::HttpConfig::default()
            },
            ..Options::default()
        })
        .await;
        let addr = h.server.listen().await.unwrap();
        let settings = h2_settings(addr).await.expect("h2c when enabled");
        // SETTINGS_MAX_CONCURRENT_STREAMS (3), SETTINGS_INITIAL_WINDOW_SIZE (4).
        assert!(settings.contains(&(3, 32)), "{settings:?}");
        assert!(settings.contains(&(4, 16 * 1024)), "{settings:?}");
        // Alerts over h2c: a small body and a large one (read through the small windows), on
        // concurrent streams of one connection.
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let mut responses = Vec::new();
        for body in [alert(0), lines(200)] {
            let req = http::Request::builder()
                .method("POST")
                .uri(format!("http://{addr}/v1/alerts"))
                .header("authorization", BEARER)
                .header("content-length", body.len())
                .body(())
                .unwrap();
            let (response, mut stream) = client.send_request(req, false).unwrap();
            let data = bytes::Bytes::from(body);
            let sender = tokio::spawn(async move {
                let mut at = 0;
                while at < data.len() {
                    stream.reserve_capacity(data.len() - at);
                    let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
                        .await
                        .unwrap()
                        .unwrap();
                    stream
                        .send_data(data.slice(at..at + granted), at + granted == data.len())
                        .unwrap();
                    at += granted;
                }
            });
            responses.push((response, sender));
        }
        for (response, sender) in responses {
            assert_eq!(response.await.unwrap().status(), 202);
            sender.await.unwrap();
        }
        let (report, _, _, _dir) = h.shutdown().await;
        assert_eq!(report.alerts_accepted, 201);
    }
}

#[tokio::test]
async fn autoscale_with_a_backend_that_cannot_scale_fails_at_start_before_anything_listens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policies.yaml"), POLICIES).unwrap();
    let mut config = Config::new(
        dir.path().join("policies.yaml"),
        AuthConfig {
            none: true,
            ..AuthConfig::default()
        },
    );
    config.listen = ([127, 0, 0, 1], 0).into();
    config.autoscale = vec![teflon_server::AutoscaleConfig {
        namespace: "default".to_owned(),
        kind: "Deployment".to_owned(),
        name: "web".to_owned(),
        min_replicas: 2,
        max_replicas: 8,
        cooldown_secs: 60,
        scale_down_stabilization_secs: 300,
    }];
    // A backend with no scaler.
    let start = |config: Config| async move {
        let (backend, _events) = ClusterBackend::custom(
            Arc::new(StaticCluster::new().deployment("default", "web", 6, 6)),
            Arc::new(Recorder::default()),
        );
        Server::builder(config)
            .cluster(backend)
            .without_exporter()
            .without_journal()
            .start()
            .await
            .unwrap_err()
    };
    let err = start(config.clone()).await;
    assert!(matches!(err, teflon_server::ServerError::NoScaler), "{err}");

    // An entry a configuration built in code got wrong is refused at start too, with the
    // same rule as the file's.
    config.autoscale[0].kind = "DaemonSet".to_owned();
    let err = start(config).await;
    assert!(
        matches!(err, teflon_server::ServerError::Autoscale(_)),
        "{err}"
    );
    assert!(err.to_string().contains("DaemonSet"), "{err}");
}

/// A deferral resolved later (here: expired) is audited with the receipt time of the alert it
/// was about, which travels with the alert into the deferral.
#[tokio::test(start_paused = true)]
async fn a_deferral_resolved_later_is_audited_with_its_alerts_receipt_time() {
    let h = harness(Options::default()).await;
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &lines(6)).await;
    assert_eq!(code, 202);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (code, _) = h.post("/v1/alerts", Some(BEARER), &alert(0)).await;
    assert_eq!(code, 202);
    tokio::time::sleep(Duration::from_secs(600)).await;
    let (_, lines, _, _) = h.shutdown().await;
    // web-5 is held back (five of six are being reaped), then expires at max_defer_secs,
    // decided while another alert (30 s later) has been taken meanwhile.
    let of_web5: Vec<_> = lines
        .iter()
        .filter(|l| l["target"]["pod"] == "web-5")
        .collect();
    assert_eq!(of_web5.len(), 2, "{lines:?}");
    assert_eq!(
        (&of_web5[0]["verdict"], &of_web5[1]["reason"]),
        (
            &serde_json::json!("defer"),
            &serde_json::json!("defer_expired")
        )
    );
    assert_eq!(of_web5[1]["received_at"], of_web5[0]["received_at"]);
    assert_eq!(of_web5[1]["alert_id"], of_web5[0]["alert_id"]);
    assert_eq!(
        of_web5[1]["decision_latency_us"], 300_000_000,
        "received → expired"
    );
    let later = lines.iter().find(|l| l["seq"] == 6).unwrap();
    assert_ne!(later["received_at"], of_web5[0]["received_at"]);
}
