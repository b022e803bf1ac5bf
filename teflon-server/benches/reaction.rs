//! Reaction time (SPEC §9): alert accepted → first request to the Kubernetes API, at a fixed
//! alert rate. Not in CI; run with
//! `cargo bench -p teflon-server --bench reaction -- [ALERTS_PER_SEC] [SECONDS]`.
//!
//! The whole server runs in-process (routes, queue, engine task, audit log, metrics exporter,
//! executor) with the real `KubeActuator`; only the API server is replaced: the kube client's
//! transport is a local service that timestamps each request on arrival and answers like the
//! API server would (the deleted Pod for a DELETE, the object back for a POST). Every alert is
//! about a different pod, so every one is acted on. Alerts go through the warp filter
//! in-process: "accepted" is when the 202 came back, "sent" when the POST was made.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use kube::client::Body;
use teflon_core::StaticCluster;
use teflon_server::{AuthConfig, Authenticator, ClusterBackend, Config, Server};

const TOKEN: &str = "reaction-bench";
const DEPLOYMENTS: usize = 100;

const POLICIES: &str = r#"version: 1
defaults:
  cluster_max_actions: null
policies:
  - name: reap-shells
    match: {rules: ["Terminal shell in container"]}
    action: {type: delete, grace_period_secs: 0}
    guard: {min_available: "50%"}
"#;

/// When the first DELETE for each pod reached the "API server".
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

fn api_server(arrivals: Arrivals) -> kube::Client {
    let service = tower::service_fn(move |req: Request<Body>| {
        let arrived = Instant::now();
        let arrivals = arrivals.clone();
        async move {
            let (parts, body) = req.into_parts();
            let path = parts.uri.path().to_owned();
            let answer = if parts.method == http::Method::DELETE {
                let (namespace, name) = path
                    .strip_prefix("/api/v1/namespaces/")
                    .and_then(|rest| rest.split_once("/pods/"))
                    .unwrap_or(("", ""));
                arrivals
                    .lock()
                    .expect("arrivals lock")
                    .entry(name.to_owned())
                    .or_insert(arrived);
                serde_json::json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
                })
                .to_string()
                .into_bytes()
            } else {
                // Events: the created object comes back.
                body.collect_bytes()
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default()
            };
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::from(answer))
                    .expect("response"),
            )
        }
    });
    kube::Client::new(service, "default")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(what: &str, mut d: Vec<Duration>) {
    d.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what}: n={} p50={:.3} ms p90={:.3} ms p99={:.3} ms max={:.3} ms",
        d.len(),
        ms(percentile(&d, 0.50)),
        ms(percentile(&d, 0.90)),
        ms(percentile(&d, 0.99)),
        ms(d[d.len() - 1])
    );
}

async fn run(rate: u64, seconds: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("policies.yaml"), POLICIES).expect("policies");
    let mut config = Config::new(
        dir.path().join("policies.yaml"),
        AuthConfig {
            token_env: Some("UNUSED".into()),
            ..AuthConfig::default()
        },
    );
    config.audit_log = Some(dir.path().join("audit.jsonl"));
    let total = usize::try_from(rate * seconds).expect("alert count");
    // Twice the pods the alerts are about: `min_available: "50%"` lets every one be reaped.
    let per = 2 * total.div_ceil(DEPLOYMENTS) as u32;
    let mut cluster = StaticCluster::new();
    for d in 0..DEPLOYMENTS {
        cluster = cluster.deployment("default", &format!("w{d}"), per, per);
    }
    let arrivals: Arrivals = Arc::default();
    let actuator = teflon_k8s::KubeActuator::new(api_server(arrivals.clone()));
    let (backend, _events) = ClusterBackend::custom(Arc::new(cluster), Arc::new(actuator));
    let server = Server::builder(config)
        .cluster(backend)
        .authenticator(Authenticator::with_token(TOKEN))
        .start()
        .await
        .expect("server");
    let routes = server.routes();
    let template = include_str!("../tests/fixtures/falco/01-terminal-shell-k8s-pod-syscall.json")
        .trim()
        .replace('\n', "");
    let bearer = format!("Bearer {TOKEN}");
    let mut sent = HashMap::with_capacity(total);
    let mut every = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    println!(
        "# {total} alerts at {rate}/s, each about a different pod of {DEPLOYMENTS} Deployments"
    );
    for i in 0..total {
        every.tick().await;
        let pod = format!("w{}-{}", i % DEPLOYMENTS, i / DEPLOYMENTS);
        let body = template.replace("\"kubecon\"", &format!("\"{pod}\""));
        let posted = Instant::now();
        let res = warp::test::request()
            .method("POST")
            .path("/v1/alerts")
            .header("authorization", &bearer)
            .body(body)
            .reply(&routes)
            .await;
        let accepted = Instant::now();
        assert_eq!(res.status(), 202, "{:?}", res.body());
        sent.insert(pod, (posted, accepted));
    }
    let done = server.shutdown().await;
    let arrivals = arrivals.lock().expect("arrivals lock").clone();
    let mut from_accepted = Vec::with_capacity(total);
    let mut from_posted = Vec::with_capacity(total);
    let mut before_202 = 0;
    for (pod, (posted, accepted)) in &sent {
        if let Some(at) = arrivals.get(pod) {
            from_posted.push(at.duration_since(*posted));
            if *at < *accepted {
                before_202 += 1;
            }
            from_accepted.push(at.saturating_duration_since(*accepted));
        }
    }
    println!(
        "alerts accepted {}, decided {}, first API requests {} ({} arrived before the 202 did)",
        done.alerts_accepted,
        done.engine.alerts,
        from_accepted.len(),
        before_202
    );
    if from_accepted.is_empty() {
        println!("no API request arrived");
        return;
    }
    report("accepted (202) -> first API request", from_accepted);
    report("POSTed -> first API request", from_posted);
}

fn main() {
    // `cargo bench` passes `--bench`; the numbers are ours.
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rate = args.first().copied().unwrap_or(1000).max(1);
    let seconds = args.get(1).copied().unwrap_or(10).max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(rate, seconds));
}
