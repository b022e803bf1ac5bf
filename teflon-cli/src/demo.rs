//! `teflon demo`: the real server (teflon-server as a library) on a simulated cluster, under a
//! built-in attack whose Falco alerts go through the real HTTP ingest path with a generated
//! bearer token, with a live summary every second.
//!
//! Size: about 560 lines before its tests, kept in one file: one command: the server, the attack
//! and the live summary run together and share the run's state.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rand::{Rng, SeedableRng};
use teflon_core::{Alert, Fields, Priority, Target, Timestamp, WorkloadKind, WorkloadRef};
use teflon_server::{Authenticator, ClusterBackend, ClusterType, Config, Counters, Server};
use teflon_sim::{Attackers, SharedSim, SimCluster};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The demo's policies: delete shells (keeping half of each workload up), quarantine
/// miners for 30 s (then Teflon releases them by itself: `expire_after_secs`), evict in
/// `payments` (PodDisruptionBudgets respected), log everything else.
pub const DEMO_POLICIES: &str = r#"version: 1
defaults:
  dedup_window_secs: 60
  protected_namespaces: [kube-system]
  guard:
    min_available: 1
    defer: true
    max_defer_secs: 120
policies:
  - name: evict-payments
    match:
      namespaces: [payments]
      rules: ["Terminal shell in container", "Write below binary dir", "Detect crypto miners*"]
    action: {type: evict}
    guard: {min_available: 2}
  - name: quarantine-miners
    match:
      rules: ["Detect crypto miners*"]
      priority: ">=Warning"
    action: {type: quarantine, expire_after_secs: 30}
    guard: {min_available: "50%"}
  - name: reap-shells
    match:
      rules: ["Terminal shell in container", "Write below binary dir"]
    action: {type: delete, grace_period_secs: 0}
    guard: {min_available: "50%"}
  - name: log-the-rest
    match: {}
    action: {type: log}
"#;

/// The simulated workloads: (namespace, Deployment, replicas).
const WORKLOADS: [(&str, &str, u32); 3] = [
    ("shop", "web", 6),
    ("shop", "api", 4),
    ("payments", "worker", 3),
];

/// `teflon demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stop by itself after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// Address of `/metrics` and the HTTP API (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:2804")]
    pub listen: SocketAddr,
    /// Independent attackers.
    #[arg(long, default_value_t = 4)]
    pub attackers: u32,
    /// Mean seconds between two infections by one attacker.
    #[arg(long, value_name = "SECS", default_value_t = 3.0, value_parser = crate::args::seconds)]
    pub infect_every_secs: f64,
    /// Seconds from reaping a pod to its replacement being Ready.
    #[arg(long, value_name = "SECS", default_value_t = 10.0, value_parser = crate::args::seconds)]
    pub recovery_secs: f64,
    /// Harmless alerts per second (logged by the last policy), sent as JSON Lines batches.
    #[arg(long, default_value_t = 40)]
    pub noise_per_sec: u32,
    /// Seed of the attack generator.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the audit log here (default: a fresh file in the temp directory).
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
}

/// Run the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(demo(args))
}

fn workload(ns: &str, name: &str) -> WorkloadRef {
    WorkloadRef::new(WorkloadKind::Deployment, ns, name)
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    teflon_server::logging::init(teflon_server::logging::LogFormat::Text, "warn");
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let token: String = {
        let mut rng = rand::rng();
        (0..32)
            .map(|_| format!("{:x}", rng.random_range(0..16u8)))
            .collect()
    };

    let dir = std::env::temp_dir().join(format!("teflon-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let policy_file = dir.join("policies.yaml");
    std::fs::write(&policy_file, DEMO_POLICIES)
        .with_context(|| format!("cannot write {}", policy_file.display()))?;
    let audit_log = args
        .audit_log
        .clone()
        .unwrap_or_else(|| dir.join("audit.jsonl"));

    let mut config = Config::new(&policy_file, teflon_server::AuthConfig::default());
    config.listen = args.listen;
    config.cluster.kind = ClusterType::Sim;
    config.audit_log = Some(audit_log.clone());

    let recovery = Duration::from_secs_f64(args.recovery_secs.clamp(0.1, 3600.0));
    let mut cluster = SimCluster::new(recovery);
    for (ns, name, replicas) in WORKLOADS {
        cluster = cluster.with_deployment(ns, name, replicas);
    }
    let clock = teflon_server::tokio_clock();
    let sim = SharedSim::new(cluster, clock.clone());
    let mut server = Server::builder(config)
        .cluster(ClusterBackend::sim(sim.clone()))
        .clock(clock.clone())
        .authenticator(Authenticator::with_token(token.clone()))
        .start()
        .await
        .context("cannot start the server")?;
    let addr = server.listen().await.with_context(|| {
        format!(
            "cannot listen on {} (already in use? try `--listen 127.0.0.1:0`)",
            args.listen
        )
    })?;
    let base = format!("http://{addr}");
    let names: Vec<String> = teflon_server::load_policies(&policy_file)?
        .policies()
        .iter()
        .map(|p| p.name.to_string())
        .collect();

    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "Teflon demo: the Teflon server on a simulated cluster under attack."
    );
    let _ = writeln!(
        out,
        "  cluster   {}",
        WORKLOADS
            .iter()
            .map(|(ns, n, r)| format!("{ns}/{n} ({r} replicas)"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "  policies  {} (embedded; file: {})",
        names.join(", "),
        policy_file.display()
    );
    let _ = writeln!(
        out,
        "  attack    {} attackers, each infecting a random Ready pod every ~{}s; replacements Ready {}s after a reap; {} harmless alerts/s; seed {seed}",
        args.attackers, args.infect_every_secs, args.recovery_secs, args.noise_per_sec
    );
    let _ = writeln!(
        out,
        "  ingest    POST {base}/v1/alerts   (Authorization: Bearer {token})"
    );
    let _ = writeln!(out, "  metrics   {base}/metrics");
    let _ = writeln!(
        out,
        "  status    curl -s -H 'Authorization: Bearer {token}' {base}/v1/status"
    );
    let _ = writeln!(
        out,
        "  decisions curl -s -H 'Authorization: Bearer {token}' '{base}/v1/decisions?limit=10'"
    );
    let _ = writeln!(
        out,
        "  history   TEFLON_TOKEN={token} teflon history --server {base}   (what Teflon did, its state, how to undo it)"
    );
    let _ = writeln!(
        out,
        "  release   TEFLON_TOKEN={token} teflon release --server {base} --namespace shop --pod POD   (quarantines also expire by themselves after 30 s)"
    );
    let _ = writeln!(out, "  audit log {}", audit_log.display());
    let _ = writeln!(
        out,
        "  try       curl -s {base}/metrics | grep ^teflon_   (while it runs; {})",
        match args.duration {
            Some(d) => format!("stops after {d}s, Ctrl-C stops earlier"),
            None => "Ctrl-C stops".to_owned(),
        }
    );
    let _ = writeln!(out);
    let header = format!(
        "{:>5} {:>8} {:>7} {:>6} {:>8} {:>8} {:>8} | {}",
        "time",
        "alerts/s",
        "alerts",
        "reaps",
        "released",
        "deferred",
        "infected",
        WORKLOADS
            .iter()
            .map(|(ns, n, _)| format!("{:<22}", format!("{ns}/{n}")))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        out,
        "  (per workload: Ready/desired replicas and attack pressure = replicas needed / desired; above ×1.00 the attackers are winning)"
    );
    let _ = writeln!(out, "{header}");
    let _ = out.flush();
    drop(out);

    let stop = Arc::new(AtomicBool::new(false));
    let posted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let attack = tokio::spawn(attack_loop(
        sim.clone(),
        Attackers {
            count: args.attackers,
            mean_interval: Duration::from_secs_f64(args.infect_every_secs.clamp(0.05, 3600.0)),
            seed,
        },
        addr,
        token.clone(),
        stop.clone(),
        posted.clone(),
        refused.clone(),
        seed,
    ));
    let noise = tokio::spawn(noise_loop(
        sim.clone(),
        args.noise_per_sec,
        addr,
        token.clone(),
        stop.clone(),
        posted.clone(),
        refused.clone(),
        seed,
    ));

    let started = tokio::time::Instant::now();
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await;
    let mut last_alerts = 0u64;
    let deadline = args.duration.map(|d| started + Duration::from_secs(d));
    let mut ctrl_c = std::pin::pin!(teflon_server::shutdown_signal());
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = &mut ctrl_c => break,
        }
        let state = server.state();
        let alerts = Counters::get(&state.counters.alerts_accepted);
        let snap = state.attack_snapshot();
        let status = state.status_snapshot();
        let mut cols = Vec::new();
        for (ns, name, _) in WORKLOADS {
            let w = workload(ns, name);
            let (desired, available) = sim.with(|c| {
                use teflon_core::ClusterView;
                c.workload(&w).map_or((0, 0), |s| (s.desired, s.available))
            });
            let pressure = snap.workload(&w).map_or(0.0, |s| s.attack_pressure);
            cols.push(format!(
                "{:<22}",
                format!("{available}/{desired} ready  ×{pressure:.2}")
            ));
        }
        let line = format!(
            "{:>4}s {:>8} {:>7} {:>6} {:>8} {:>8} {:>8} | {}",
            started.elapsed().as_secs(),
            alerts - last_alerts,
            alerts,
            Counters::get(&state.counters.reaps),
            Counters::get(&state.counters.releases),
            status.deferrals.len(),
            snap.infected_pods.len(),
            cols.join(" ")
        );
        last_alerts = alerts;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
    }

    stop.store(true, Ordering::SeqCst);
    let _ = attack.await;
    let _ = noise.await;
    let counters = server.state().counters.clone();
    let report = server.shutdown().await;
    let audit_lines = std::fs::read_to_string(&audit_log)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Stopped gracefully: {} alerts accepted, {} decided, {} decisions ({} deferred at first), {} actions executed, {} pods reaped, {} released, {} actions failed, {} requests refused.",
        report.alerts_accepted,
        report.engine.alerts,
        Counters::get(&counters.decisions),
        Counters::get(&counters.deferrals),
        Counters::get(&counters.actions),
        Counters::get(&counters.reaps),
        Counters::get(&counters.releases),
        Counters::get(&counters.failed_actions),
        refused.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "Audit log: {} records in {} (one per decision; every accepted alert has at least one).",
        audit_lines,
        audit_log.display()
    );
    let _ = writeln!(
        out,
        "Next: `teflon replay --policies {} --format jsonl <alerts>` runs saved Falco alerts through the same engine.",
        policy_file.display()
    );
    Ok(())
}

/// Fires the attackers' infections in real time and POSTs each Falco alert (one object per
/// request, as Falco's `http_output` does). One in six becomes a crypto-miner alert.
#[allow(clippy::too_many_arguments)]
async fn attack_loop(
    sim: SharedSim,
    attackers: Attackers,
    addr: SocketAddr,
    token: String,
    stop: Arc<AtomicBool>,
    posted: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    seed: u64,
) {
    let mut rng = seeded_rng(seed ^ 0x6d69_6e65);
    let mut stream = attackers.start(sim.now());
    let mut client = Client::new(addr, token);
    while !stop.load(Ordering::Relaxed) {
        let Some(next) = stream.next_time() else {
            return;
        };
        let wait = next.since(sim.now());
        if !wait.is_zero() {
            tokio::time::sleep(wait.min(Duration::from_millis(200))).await;
            continue;
        }
        let Some(attack) = sim.with(|c| stream.fire_next(c)) else {
            return;
        };
        let Some(mut alert) = attack.alert else {
            continue;
        };
        if rng.random_range(0..6u32) == 0 {
            alert.rule = "Detect crypto miners using the Stratum protocol".to_owned();
            alert.priority = Priority::Critical;
            alert.output = format!(
                "Possible miner running (command=xmrig -o stratum+tcp://pool:3333 {})",
                pod_hint(&alert)
            );
            alert.tags = vec!["container".into(), "mitre_impact".into(), "T1496".into()];
        }
        let body = teflon_falco::to_falco_json(&alert);
        match client.post("/v1/alerts", body.as_bytes()).await {
            Ok(202) => {
                posted.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn pod_hint(alert: &Alert) -> String {
    alert
        .target
        .as_ref()
        .map(|t| format!("k8s.ns={} k8s.pod={}", t.namespace, t.pod))
        .unwrap_or_default()
}

fn seeded_rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Harmless alerts (no policy but `log-the-rest` matches them) about random Ready pods, as
/// one JSON Lines batch every 100 ms.
#[allow(clippy::too_many_arguments)]
async fn noise_loop(
    sim: SharedSim,
    per_sec: u32,
    addr: SocketAddr,
    token: String,
    stop: Arc<AtomicBool>,
    posted: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    seed: u64,
) {
    if per_sec == 0 {
        return;
    }
    let mut rng = seeded_rng(seed ^ 0x6e6f_6973);
    let mut client = Client::new(addr, token);
    let mut every = tokio::time::interval(Duration::from_millis(100));
    let mut owed = 0.0f64;
    while !stop.load(Ordering::Relaxed) {
        every.tick().await;
        owed += f64::from(per_sec) / 10.0;
        let n = owed.floor() as usize;
        owed -= n as f64;
        if n == 0 {
            continue;
        }
        let pods = sim.with(|c| c.all_available_pods());
        if pods.is_empty() {
            continue;
        }
        let now = sim.now();
        let mut body = String::new();
        for _ in 0..n {
            let (ns, pod) = &pods[rng.random_range(0..pods.len())];
            body.push_str(&teflon_falco::to_falco_json(&noise_alert(ns, pod, now)));
            body.push('\n');
        }
        match client.post("/v1/alerts", body.as_bytes()).await {
            Ok(202) => {
                posted.fetch_add(n as u64, Ordering::Relaxed);
            }
            _ => {
                refused.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

fn noise_alert(ns: &str, pod: &str, at: Timestamp) -> Alert {
    let mut a = Alert::new("Packet socket created in container", Priority::Notice, at);
    a.output = format!(
        "Network packet socket was created in a container (k8s.ns={ns} k8s.pod={pod} proc.name=tcpdump)"
    );
    a.tags = vec![
        "container".into(),
        "network".into(),
        "mitre_discovery".into(),
    ];
    let mut fields = Fields::new();
    fields.insert("k8s.ns.name", ns);
    fields.insert("k8s.pod.name", pod);
    fields.insert("proc.name", "tcpdump");
    a.fields = fields;
    a.hostname = Some("demo-node-1".to_owned());
    a.target = Some(Target::new(ns, pod));
    a
}

/// A minimal HTTP/1.1 keep-alive client for POSTing alerts to the demo server.
struct Client {
    addr: SocketAddr,
    token: String,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(addr: SocketAddr, token: String) -> Self {
        Client {
            addr,
            token,
            conn: None,
        }
    }

    /// POST `body` to `path`; the response status.
    async fn post(&mut self, path: &str, body: &[u8]) -> std::io::Result<u16> {
        for attempt in 0..2 {
            match self.try_post(path, body).await {
                Ok(code) => return Ok(code),
                Err(e) if attempt == 1 => return Err(e),
                Err(_) => self.conn = None,
            }
        }
        Ok(0)
    }

    async fn try_post(&mut self, path: &str, body: &[u8]) -> std::io::Result<u16> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.conn = Some(BufReader::new(s));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(std::io::Error::other("no connection"));
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            self.token,
            body.len()
        );
        conn.get_mut().write_all(head.as_bytes()).await?;
        conn.get_mut().write_all(body).await?;
        let mut line = String::new();
        conn.read_line(&mut line).await?;
        let code = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0usize;
        let mut close = false;
        loop {
            line.clear();
            if conn.read_line(&mut line).await? == 0 {
                return Err(std::io::Error::other("connection closed"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            } else if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let mut sink = vec![0u8; length];
        conn.read_exact(&mut sink).await?;
        if close {
            self.conn = None;
        }
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_demo_policies_are_valid() {
        let set = teflon_core::PolicySet::parse(DEMO_POLICIES, "demo.yaml").unwrap();
        let names: Vec<&str> = set.policies().iter().map(|p| &*p.name).collect();
        assert_eq!(
            names,
            [
                "evict-payments",
                "quarantine-miners",
                "reap-shells",
                "log-the-rest"
            ]
        );
    }
}
