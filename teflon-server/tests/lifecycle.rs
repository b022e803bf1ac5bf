//! The response lifecycle through the server's routes, on the simulated cluster: release over
//! `POST /v1/release` (authenticated, UID-checked, audited, counted), expiry by itself, the
//! history of `GET /v1/actions`, and a follower that refuses to act.

mod support;
use support::counter;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use serde_json::{Value, json};
use teflon_core::{Alert, Priority, WorkloadKind, WorkloadRef};
use teflon_server::{AuthConfig, Authenticator, ClusterBackend, Config, Counters, Server};
use teflon_sim::{SharedSim, SimCluster};

const TOKEN: &str = "lifecycle-t0ken";
const BEARER: &str = "Bearer lifecycle-t0ken";

const POLICIES: &str = r#"version: 1
defaults: {dedup_window_secs: 0}
policies:
  - name: quarantine-miners
    match: {rules: ["Detect crypto miners*"]}
    action: {type: quarantine, expire_after_secs: 60, labels: {forensics: hold}}
    guard: {min_available: 1}
  - name: block-netcat
    match: {rules: ["Netcat*"]}
    action: {type: block_binary, expire_after_secs: 600}
  - name: log-the-rest
    match: {}
    action: {type: log}
"#;

fn web() -> WorkloadRef {
    WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")
}

struct Harness {
    server: Server,
    sim: SharedSim,
    dir: tempfile::TempDir,
}

async fn harness(may_act: Option<tokio::sync::watch::Receiver<bool>>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policies.yaml"), POLICIES).unwrap();
    let mut config = Config::new(
        dir.path().join("policies.yaml"),
        AuthConfig {
            token_env: Some("UNUSED".into()),
            ..AuthConfig::default()
        },
    );
    config.audit_log = Some(dir.path().join("audit.jsonl"));
    let clock = teflon_server::tokio_clock();
    let sim = SharedSim::new(
        SimCluster::new(Duration::from_secs(10)).with_deployment("shop", "web", 3),
        clock.clone(),
    );
    let mut builder = Server::builder(config)
        .cluster(ClusterBackend::sim(sim.clone()))
        .clock(clock)
        .authenticator(Authenticator::with_token(TOKEN))
        .without_exporter()
        // Paused clock: the journal writer syncs in real time while virtual time jumps.
        .without_journal();
    if let Some(rx) = may_act {
        builder = builder.may_act(rx);
    }
    Harness {
        server: builder.start().await.unwrap(),
        sim,
        dir,
    }
}

impl Harness {
    async fn request(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let mut req = warp::test::request().method(method).path(path).body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.reply(&self.server.routes()).await;
        (
            res.status().as_u16(),
            serde_json::from_slice(res.body()).unwrap_or(Value::Null),
        )
    }

    async fn alert(&self, rule: &str, pod: &str) {
        let a = Alert::test()
            .rule(rule)
            .priority(Priority::Critical)
            .pod("shop", pod)
            .field("proc.exepath", "/usr/bin/nc")
            .build();
        let (code, _) = self
            .request(
                "POST",
                "/v1/alerts",
                Some(BEARER),
                &teflon_falco::to_falco_json(&a),
            )
            .await;
        assert_eq!(code, 202);
    }

    fn pod(&self) -> String {
        self.sim.with(|c| c.available_pods(&web()))[0].clone()
    }

    fn labels(&self, pod: &str) -> BTreeMap<String, String> {
        self.sim.with(|c| c.pod_labels("shop", pod)).unwrap()
    }

    /// Virtual time passes (the test's clock is paused) until `done` holds.
    async fn until(&self, what: &str, done: impl Fn(&Harness) -> bool) {
        for _ in 0..400 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: not within 20 s");
    }

    async fn actions(&self, query: &str) -> Vec<Value> {
        let (code, body) = self
            .request("GET", &format!("/v1/actions{query}"), Some(BEARER), "")
            .await;
        assert_eq!(code, 200, "{body}");
        body["actions"].as_array().unwrap().clone()
    }
}

fn audit(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn quarantined(h: &Harness, pod: &str) -> bool {
    h.labels(pod).contains_key("teflon.io/quarantined")
}

#[tokio::test(start_paused = true)]
async fn an_operator_releases_a_quarantined_pod_over_http_and_gets_its_labels_back() {
    let h = harness(None).await;
    let pod = h.pod();
    let before = h.labels(&pod);
    let uid = h.sim.with(|c| c.pod_uid("shop", &pod)).unwrap();
    h.alert("Detect crypto miners using the Stratum protocol", &pod)
        .await;
    h.until("quarantined", |h| quarantined(h, &pod)).await;

    let actions = h.actions("?namespace=shop").await;
    assert_eq!(actions.len(), 1, "{actions:#?}");
    assert_eq!(actions[0]["state"], "active");
    assert_eq!(actions[0]["action"], "quarantine");
    assert_eq!(actions[0]["undo"]["path"], "/v1/release");
    assert_eq!(
        actions[0]["undo"]["body"],
        json!({"namespace": "shop", "pod": pod, "uid": uid})
    );
    assert!(actions[0]["expires_at"].is_string());
    assert_eq!(h.actions("?namespace=other").await, Vec::<Value>::new());

    let body = json!({"namespace": "shop", "pod": pod}).to_string();
    let (code, _) = h.request("POST", "/v1/release", None, &body).await;
    assert_eq!(code, 401, "unauthenticated: refused");
    let (code, reply) = h
        .request(
            "POST",
            "/v1/release",
            Some(BEARER),
            r#"{"namespace":"shop"}"#,
        )
        .await;
    assert_eq!(code, 400, "{reply}");
    let wrong = json!({"namespace": "shop", "pod": pod, "uid": "uid-of-another-pod"}).to_string();
    let (code, reply) = h.request("POST", "/v1/release", Some(BEARER), &wrong).await;
    assert_eq!(code, 409, "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("another pod now")
    );
    assert!(quarantined(&h, &pod), "nothing changed so far");

    let (code, reply) = h.request("POST", "/v1/release", Some(BEARER), &body).await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["outcome"], "released");
    assert_eq!(reply["policy"], "quarantine-miners");
    assert_eq!(reply["network_policy"], format!("teflon-quarantine-{pod}"));
    assert_eq!(h.labels(&pod), before, "exactly the labels it had");
    assert!(
        !h.sim
            .with(|c| c.has_network_policy("shop", &format!("teflon-quarantine-{pod}")))
    );

    // The engine task records the release (history, audit) just after the answer.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let actions = h.actions("?since=1h").await;
    assert_eq!(actions[0]["state"], "released", "{actions:#?}");
    assert!(actions[0]["undo"].is_null());
    let (code, _) = h.request("POST", "/v1/release", Some(BEARER), &body).await;
    assert_eq!(code, 409, "nothing left to release");

    let counters = h.server.state().counters.clone();
    let dir = h.dir;
    let _ = h.server.shutdown().await;
    assert_eq!(Counters::get(&counters.releases), 1);
    let lines = audit(&dir.path().join("audit.jsonl"));
    let releases: Vec<&Value> = lines.iter().filter(|l| l["event"] == "release").collect();
    assert_eq!(
        releases.len(),
        3,
        "the refused ones are audited too: {releases:#?}"
    );
    let done = releases
        .iter()
        .find(|l| l["outcome"] == "released")
        .unwrap();
    assert_eq!(done["cause"], "operator");
    assert_eq!(done["target"]["name"], pod.as_str());
    assert_eq!(done["restored_labels"]["app"], "web");
}

#[test]
fn a_quarantine_expires_by_itself_and_the_pod_is_then_decided_afresh() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let h = harness(None).await;
            let pod = h.pod();
            let before = h.labels(&pod);
            h.alert("Detect crypto miners using the Stratum protocol", &pod)
                .await;
            h.until("quarantined", |h| quarantined(h, &pod)).await;
            // expire_after_secs: 60, swept every 10 s.
            tokio::time::sleep(Duration::from_secs(50)).await;
            assert!(quarantined(&h, &pod), "not before its deadline");
            h.until("expired", |h| !quarantined(h, &pod)).await;
            assert_eq!(h.labels(&pod), before);
            tokio::time::sleep(Duration::from_millis(100)).await;
            let actions = h.actions("").await;
            assert_eq!(actions[0]["state"], "expired", "{actions:#?}");
            // Back in service and no longer "reaped": a new detection quarantines it again.
            h.alert("Detect crypto miners using the Stratum protocol", &pod)
                .await;
            h.until("quarantined again", |h| quarantined(h, &pod)).await;
            let dir = h.dir;
            let _ = h.server.shutdown().await;
            let lines = audit(&dir.path().join("audit.jsonl"));
            let expired: Vec<&Value> = lines
                .iter()
                .filter(|l| l["event"] == "release" && l["cause"] == "expired")
                .collect();
            assert_eq!(expired.len(), 1, "{lines:#?}");
            assert_eq!(expired[0]["outcome"], "released");
        });
    });
    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(
        counter(
            &snap,
            teflon_metrics::names::RELEASES_TOTAL,
            &[
                ("action", "quarantine"),
                ("cause", "expired"),
                ("outcome", "released")
            ]
        ),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_block_binary_policy_is_listed_with_its_undo_and_released_by_name() {
    let h = harness(None).await;
    let pod = h.pod();
    h.alert("Netcat remote code execution in container", &pod)
        .await;
    let mut actions = Vec::new();
    for _ in 0..100 {
        actions = h.actions("").await;
        if !actions.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(actions[0]["action"], "block_binary", "{actions:#?}");
    assert_eq!(actions[0]["state"], "active");
    let undo = actions[0]["undo"]["body"].clone();
    assert_eq!(undo["namespace"], "shop");
    let name = undo["policy"].as_str().unwrap().to_owned();
    assert!(
        actions[0]["undo"]["command"]
            .as_str()
            .unwrap()
            .ends_with(&format!("--policy {name}"))
    );
    let (code, reply) = h
        .request("POST", "/v1/release", Some(BEARER), &undo.to_string())
        .await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["action"], "block_binary");
    let (code, _) = h
        .request("POST", "/v1/release", Some(BEARER), &undo.to_string())
        .await;
    assert_eq!(code, 404, "gone now");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.actions("").await[0]["state"], "released");
}

#[tokio::test(start_paused = true)]
async fn a_follower_refuses_to_release_and_does_not_expire_anything() {
    let (tx, rx) = tokio::sync::watch::channel(true);
    let h = harness(Some(rx)).await;
    let pod = h.pod();
    h.alert("Detect crypto miners using the Stratum protocol", &pod)
        .await;
    h.until("quarantined", |h| quarantined(h, &pod)).await;
    tx.send(false).unwrap();
    let body = json!({"namespace": "shop", "pod": pod}).to_string();
    let (code, reply) = h.request("POST", "/v1/release", Some(BEARER), &body).await;
    assert_eq!(code, 503, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("not the leader"));
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(quarantined(&h, &pod), "only the leader lets it expire");
    tx.send(true).unwrap();
    h.until("expired once leading", |h| !quarantined(h, &pod))
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_server_lists_the_quarantine_another_run_took_and_lets_it_expire() {
    let first = harness(None).await;
    let pod = first.pod();
    let before = first.labels(&pod);
    first
        .alert("Detect crypto miners using the Stratum protocol", &pod)
        .await;
    first.until("quarantined", |h| quarantined(h, &pod)).await;
    let sim = first.sim.clone();
    let _ = first.server.shutdown().await;

    // A new process (or a new leader): nothing in memory, the record is on the pod.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policies.yaml"), POLICIES).unwrap();
    let mut config = Config::new(
        dir.path().join("policies.yaml"),
        AuthConfig {
            token_env: Some("UNUSED".into()),
            ..AuthConfig::default()
        },
    );
    config.audit_log = Some(dir.path().join("audit.jsonl"));
    let server = Server::builder(config)
        .cluster(ClusterBackend::sim(sim.clone()))
        .clock(teflon_server::tokio_clock())
        .authenticator(Authenticator::with_token(TOKEN))
        .without_exporter()
        .without_journal()
        .start()
        .await
        .unwrap();
    let second = Harness { server, sim, dir };
    let actions = second.actions("").await;
    assert_eq!(actions.len(), 1, "{actions:#?}");
    assert_eq!(actions[0]["state"], "active");
    assert_eq!(actions[0]["policy"], "quarantine-miners");
    assert!(actions[0]["rule"].is_null(), "known from the cluster only");
    tokio::time::sleep(Duration::from_secs(50)).await;
    second
        .until("expired by the new run", |h| !quarantined(h, &pod))
        .await;
    assert_eq!(second.labels(&pod), before);
}
