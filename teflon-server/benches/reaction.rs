//! Reaction time (SPEC §9): alert accepted → first request to the Kubernetes API. Not in CI.
//!
//! `cargo bench -p teflon-server --bench reaction -- rate [ALERTS_PER_SEC] [SECONDS]`: alerts at a
//! fixed rate, each about a different pod.
//!
//! `cargo bench -p teflon-server --bench reaction -- idle [ROUNDS] [IDLE_SECS] [SERVER_IDLE_SECS]
//! [warm|cold]`: one alert after each idle period, so every action is "the first after idle";
//! `warm` runs the keep-warm pings the kube backend runs (`teflon_k8s::client::keep_warm`, every
//! `SERVER_IDLE_SECS / 3`), `cold` does not.
//!
//! The whole server runs in-process (routes, queue, engine task, audit log, metrics exporter,
//! executor) with the real `KubeActuator` on Teflon's production client
//! (`teflon_k8s::client`: connection pool, TLS, timeouts); only the API server is replaced, by a
//! local HTTPS server (`teflon_k8s::fake_api`, a self-signed certificate, TLS 1.3) that
//! timestamps each request and answers like the API server, and closes connections idle for
//! `SERVER_IDLE_SECS` (kube-apiserver: 90 s). Alerts go through the warp filter in-process:
//! "accepted" is when the 202 came back, "sent" when the POST was made.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use teflon_core::StaticCluster;
use teflon_k8s::fake_api::{FakeApiServer, Options, Reply, Request};
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

async fn api_server(arrivals: Arrivals, idle: Duration) -> FakeApiServer {
    let respond = move |r: &Request| {
        let arrived = Instant::now();
        if r.method == "DELETE" {
            let (namespace, name) = r
                .path
                .strip_prefix("/api/v1/namespaces/")
                .and_then(|rest| rest.split_once("/pods/"))
                .unwrap_or(("", ""));
            arrivals
                .lock()
                .expect("arrivals lock")
                .entry(name.to_owned())
                .or_insert(arrived);
            return Reply::ok(
                serde_json::json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
                })
                .to_string(),
            );
        }
        if r.path == "/version" {
            return Reply::ok(r#"{"major":"1","minor":"34","gitVersion":"v1.34.0"}"#);
        }
        // Events: the created object comes back.
        Reply::Json(201, String::from_utf8_lossy(&r.body).into_owned())
    };
    FakeApiServer::start_with(
        Options {
            tls: true,
            idle_timeout: Some(idle),
            ..Options::default()
        },
        Arc::new(respond),
    )
    .await
    .expect("fake API server")
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

struct Bench {
    server: Server,
    api: FakeApiServer,
    arrivals: Arrivals,
    template: String,
    _dir: tempfile::TempDir,
    warm: Option<tokio::task::JoinHandle<()>>,
}

async fn setup(alerts: usize, server_idle: Duration, warm: bool) -> Bench {
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
    // Twice the pods the alerts are about: `min_available: "50%"` lets every one be reaped.
    let per = 2 * alerts.div_ceil(DEPLOYMENTS) as u32;
    let mut cluster = StaticCluster::new();
    for d in 0..DEPLOYMENTS {
        cluster = cluster.deployment("default", &format!("w{d}"), per, per);
    }
    let arrivals: Arrivals = Arc::default();
    let api = api_server(arrivals.clone(), server_idle).await;
    let client = api.client().expect("client");
    let warm = warm.then(|| {
        teflon_k8s::client::keep_warm(
            client.clone(),
            teflon_k8s::client::WARM_CONNECTIONS,
            (server_idle / 3).min(teflon_k8s::client::WARM_EVERY),
        )
    });
    let actuator = teflon_k8s::KubeActuator::new(client);
    let (backend, _events) = ClusterBackend::custom(Arc::new(cluster), Arc::new(actuator));
    let server = Server::builder(config)
        .cluster(backend)
        .authenticator(Authenticator::with_token(TOKEN))
        .start()
        .await
        .expect("server");
    let template = include_str!("../tests/fixtures/falco/01-terminal-shell-k8s-pod-syscall.json")
        .trim()
        .replace('\n', "");
    Bench {
        server,
        api,
        arrivals,
        template,
        _dir: dir,
        warm,
    }
}

impl Bench {
    /// POST the alert about pod number `i`; when it was sent and accepted.
    async fn post(
        &self,
        i: usize,
        routes: &warp::filters::BoxedFilter<(warp::reply::Response,)>,
    ) -> (String, Instant, Instant) {
        let pod = format!("w{}-{}", i % DEPLOYMENTS, i / DEPLOYMENTS);
        let body = self.template.replace("\"kubecon\"", &format!("\"{pod}\""));
        let posted = Instant::now();
        let res = warp::test::request()
            .method("POST")
            .path("/v1/alerts")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(body)
            .reply(routes)
            .await;
        let accepted = Instant::now();
        assert_eq!(res.status(), 202, "{:?}", res.body());
        (pod, posted, accepted)
    }

    async fn finish(self, sent: HashMap<String, (Instant, Instant)>) {
        if let Some(w) = self.warm {
            w.abort();
        }
        let done = self.server.shutdown().await;
        let arrivals = self.arrivals.lock().expect("arrivals lock").clone();
        let mut from_accepted = Vec::with_capacity(sent.len());
        let mut from_posted = Vec::with_capacity(sent.len());
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
            "alerts accepted {}, decided {}, first API requests {} ({} arrived before the 202 did), TLS connections opened {}",
            done.alerts_accepted,
            done.engine.alerts,
            from_accepted.len(),
            before_202,
            self.api.connections()
        );
        if from_accepted.is_empty() {
            println!("no API request arrived");
            return;
        }
        report("accepted (202) -> first API request", from_accepted);
        report("POSTed -> first API request", from_posted);
    }
}

async fn rate(rate: u64, seconds: u64) {
    let total = usize::try_from(rate * seconds).expect("alert count");
    let bench = setup(total, Duration::from_secs(90), true).await;
    let routes = bench.server.routes();
    let mut sent = HashMap::with_capacity(total);
    let mut every = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    println!(
        "# {total} alerts at {rate}/s, each about a different pod of {DEPLOYMENTS} Deployments"
    );
    for i in 0..total {
        every.tick().await;
        let (pod, posted, accepted) = bench.post(i, &routes).await;
        sent.insert(pod, (posted, accepted));
    }
    bench.finish(sent).await;
}

async fn idle(rounds: usize, idle_secs: u64, server_idle_secs: u64, warm: bool) {
    let bench = setup(rounds, Duration::from_secs(server_idle_secs), warm).await;
    let routes = bench.server.routes();
    println!(
        "# {rounds} alerts, each after {idle_secs} s idle; the API server closes connections idle {server_idle_secs} s; keep-warm {}",
        if warm { "on" } else { "off" }
    );
    // The first action of a fresh server is one "after idle" too: no sleep before it.
    let mut sent = HashMap::with_capacity(rounds);
    for i in 0..rounds {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(idle_secs)).await;
        }
        let (pod, posted, accepted) = bench.post(i, &routes).await;
        sent.insert(pod, (posted, accepted));
        // Let it act before idling again.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bench.finish(sent).await;
}

fn main() {
    // `cargo bench` passes `--bench`; the words and numbers are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let num = |i: usize, default: u64| {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
            .max(1)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("idle") => runtime.block_on(idle(
            usize::try_from(num(1, 5)).unwrap_or(5),
            num(2, 95),
            num(3, 90),
            args.get(4).map(String::as_str) != Some("cold"),
        )),
        _ => {
            // `rate` or, as before, the numbers alone.
            let offset = usize::from(args.first().map(String::as_str) == Some("rate"));
            runtime.block_on(rate(num(offset, 1000), num(offset + 1, 10)));
        }
    }
}
