//! Notifications and the decision path: the decision latency (alert received → decided, the
//! audit records' `decision_latency_us`) with no webhook, a healthy one, a slow one (2 s per
//! answer), a failing one (500, retried with backoff) and a hanging one (never answers), at
//! the same alert rate. Not in CI.
//!
//! `cargo bench -p teflon-server --bench notify -- [ALERTS_PER_SEC] [SECONDS]`
//!
//! The whole server runs in-process (routes, queue, engine task, audit log, metrics exporter,
//! executor, notifier) with an actuator that succeeds at once, so every alert is an `act`
//! decision that the webhook's default filter sends; the webhooks are local HTTP servers.
//! Alerts go through the warp filter in-process, each about a different pod.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use teflon_core::{Actuator, Executed, Outcome, PlannedAction, StaticCluster};
use teflon_metrics::Exporter;
use teflon_server::{AuthConfig, Authenticator, ClusterBackend, Config, NotifyConfig, Server};
use warp::Filter;

const TOKEN: &str = "notify-bench";
const DEPLOYMENTS: usize = 100;
const POLICIES: &str = r#"version: 1
defaults: {dedup_window_secs: 0, cluster_max_actions: null}
policies:
  - name: reap-shells
    match: {rules: ["Terminal shell in container"]}
    action: {type: delete, grace_period_secs: 0}
    guard: {min_available: "50%"}
"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Webhook {
    None,
    Healthy,
    Slow,
    Failing,
    Hanging,
}

impl Webhook {
    fn name(self) -> &'static str {
        match self {
            Webhook::None => "none",
            Webhook::Healthy => "healthy",
            Webhook::Slow => "slow",
            Webhook::Failing => "failing",
            Webhook::Hanging => "hanging",
        }
    }
}

/// A local webhook on its own thread and runtime, so that answering does not take the
/// server's worker threads (on these 2 cores it still shares the CPU).
fn webhook(kind: Webhook) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("webhook runtime");
        runtime.block_on(async move {
            let route = warp::post()
                .and(warp::body::bytes())
                .then(move |_body: Bytes| async move {
                    let mut r = warp::reply::Response::new("ok".into());
                    match kind {
                        Webhook::Slow => tokio::time::sleep(Duration::from_secs(2)).await,
                        Webhook::Failing => {
                            *r.status_mut() = warp::http::StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        Webhook::Hanging => std::future::pending::<()>().await,
                        Webhook::None | Webhook::Healthy => {}
                    }
                    r
                })
                .boxed();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr"))
                .expect("addr sent");
            teflon_server::serve::serve(listener, None, route, std::future::pending()).await;
        });
    });
    rx.recv().expect("webhook address")
}

#[derive(Clone)]
struct AtOnce;

impl Actuator for AtOnce {
    fn execute(&self, _: &PlannedAction) -> impl Future<Output = Executed> + Send {
        std::future::ready(Outcome::Success.into())
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(kind: Webhook, exporter: &Exporter, rate: u64, seconds: u64, print: bool) {
    let total = usize::try_from(rate * seconds).expect("alert count");
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
    if kind != Webhook::None {
        let addr = webhook(kind);
        let sink: NotifyConfig = serde_saphyr::from_str(&format!(
            "{{name: {}, url: 'http://{addr}/hook'}}",
            kind.name()
        ))
        .expect("sink");
        config.notify = vec![sink];
    }
    let per = 2 * total.div_ceil(DEPLOYMENTS) as u32;
    let mut cluster = StaticCluster::new();
    for d in 0..DEPLOYMENTS {
        cluster = cluster.deployment("default", &format!("w{d}"), per, per);
    }
    let (backend, _events) =
        ClusterBackend::custom(std::sync::Arc::new(cluster), std::sync::Arc::new(AtOnce));
    let server = Server::builder(config)
        .cluster(backend)
        .authenticator(Authenticator::with_token(TOKEN))
        .exporter(exporter.clone())
        .start()
        .await
        .expect("server");
    let template = include_str!("../tests/fixtures/falco/01-terminal-shell-k8s-pod-syscall.json")
        .trim()
        .replace('\n', "");
    let routes = server.routes();
    let mut every = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for i in 0..total {
        every.tick().await;
        let pod = format!("w{}-{}", i % DEPLOYMENTS, i / DEPLOYMENTS);
        let res = warp::test::request()
            .method("POST")
            .path("/v1/alerts")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(template.replace("\"kubecon\"", &format!("\"{pod}\"")))
            .reply(&routes)
            .await;
        assert_eq!(res.status(), 202);
    }
    let report = server.shutdown().await;
    let mut latencies: Vec<u64> = std::fs::read_to_string(dir.path().join("audit.jsonl"))
        .expect("audit log")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["decision_latency_us"].as_u64())
        .collect();
    latencies.sort_unstable();
    if !print {
        return;
    }
    let counts: Vec<String> = exporter
        .render()
        .lines()
        .filter(|l| {
            l.starts_with(teflon_metrics::names::NOTIFICATIONS_TOTAL)
                && l.contains(&format!("sink=\"{}\"", kind.name()))
        })
        .map(|l| {
            let result = l
                .split("result=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?");
            format!("{result} {}", l.rsplit(' ').next().unwrap_or("?"))
        })
        .collect();
    println!(
        "{:<8} alerts {:>6} decided {:>6} audited {:>6}  decision latency p50 {:>5} µs  p90 {:>5} µs  p99 {:>6} µs  max {:>7} µs  notifications: {}",
        kind.name(),
        report.alerts_accepted,
        report.engine.alerts,
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0),
        if counts.is_empty() {
            "-".to_owned()
        } else {
            counts.join(", ")
        },
    );
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .filter_map(|a| a.parse().ok())
        .collect();
    let rate = args.first().copied().unwrap_or(1000).max(1);
    let seconds = args.get(1).copied().unwrap_or(5).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let exporter = Exporter::install().expect("exporter");
        println!(
            "# {} alerts per scenario at {rate}/s, every one an act decision sent to the webhook",
            rate * seconds
        );
        // A warm-up run (not reported): first allocations, page faults, connection set-up.
        run(Webhook::None, &exporter, rate, seconds, false).await;
        for kind in [
            Webhook::None,
            Webhook::Healthy,
            Webhook::Slow,
            Webhook::Failing,
            Webhook::Hanging,
            Webhook::None,
        ] {
            run(kind, &exporter, rate, seconds, true).await;
        }
    });
}
