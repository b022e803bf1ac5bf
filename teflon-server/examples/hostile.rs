//! The attacker and the probes of `scripts/hostile.sh` (not a test).
//!
//! The attacker runs phases of hostile traffic against a running teflon-server and prints, for
//! each, what it did and the server's peak RSS, file descriptors and CPU (read from /proc, so
//! the server must run on this machine); it appends each phase's name, start and end (Unix
//! milliseconds) to PHASES_FILE. The probes, a process of their own (the script runs the
//! attacker at a lower priority, so that on a machine it shares with the server it stands for
//! an attacker elsewhere), send authenticated alerts: one on a kept-alive connection every 10 ms
//! (as Falco's libcurl does) and one on a fresh connection every 100 ms; on SIGINT they print
//! their latencies and failures per phase of PHASES_FILE.
//!
//! ```sh
//! hostile attack ADDR TOKEN SERVER_PID PHASES_FILE [PHASE_SECS] [PHASES]   # PHASES: a,b,… (default all)
//! hostile probe ADDR TOKEN PHASES_FILE
//! hostile silent-worker ADDR COUNT SECONDS                                 # (spawned by the silent phase)
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use teflon_metrics::names;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

const ALERT: &str = include_str!("../tests/fixtures/falco/01-terminal-shell-k8s-pod-syscall.json");

fn alert_line() -> String {
    ALERT.trim().replace('\n', "")
}

/// A Falco alert with another source, namespace and pod.
fn alert_with(source: &str, namespace: &str, pod: &str) -> String {
    alert_line()
        .replace(
            "\"source\":\"syscall\"",
            &format!("\"source\":\"{source}\""),
        )
        .replace("\"kubecon\"", &format!("\"{pod}\""))
        .replace(
            "\"k8s.ns.name\":\"default\"",
            &format!("\"k8s.ns.name\":\"{namespace}\""),
        )
}

/// A small xorshift: random enough for names, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn name(&mut self, prefix: &str) -> String {
        format!("{prefix}-{:x}", self.next())
    }
}

fn post(path: &str, token: Option<&str>, body: &str, close: bool) -> Vec<u8> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "POST {path} HTTP/1.1\r\nHost: teflon\r\n{auth}{connection}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Read one HTTP/1.1 response (head and `Content-Length` body); its status and body.
async fn response(tcp: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, buf[head_end..head_end + len].to_vec()))
}

/// One request on a fresh connection.
async fn once(addr: SocketAddr, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(request).await?;
    response(&mut tcp).await
}

async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> std::io::Result<(u16, Vec<u8>)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: teflon\r\n{auth}Connection: close\r\n\r\n");
    once(addr, req.as_bytes()).await
}

/// Now, in Unix milliseconds (comparable across processes).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Latencies of 202s and failures, with the time (Unix ms) they were sent.
#[derive(Default)]
struct Samples {
    ok: Mutex<Vec<(u64, Duration)>>,
    failed: Mutex<Vec<(u64, String)>>,
}

impl Samples {
    fn ok(&self, at: u64, took: Duration) {
        self.ok.lock().unwrap().push((at, took));
    }
    fn failed(&self, at: u64, why: impl Into<String>) {
        self.failed.lock().unwrap().push((at, why.into()));
    }
    /// (count, p50, p99, max, failures, first failure) between `from` and `to`.
    fn window(&self, from: u64, to: u64) -> String {
        let mut lat: Vec<Duration> = self
            .ok
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, d)| *d)
            .collect();
        lat.sort_unstable();
        let failed: Vec<String> = self
            .failed
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, w)| w.clone())
            .collect();
        let q = |p: f64| {
            lat.get(((lat.len() as f64 * p).ceil() as usize).saturating_sub(1))
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        format!(
            "n={} p50={:.2}ms p99={:.2}ms max={:.2}ms failed={}{}",
            lat.len(),
            q(0.50),
            q(0.99),
            lat.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            failed.len(),
            failed
                .first()
                .map(|w| format!(" (first: {w})"))
                .unwrap_or_default()
        )
    }
}

/// An authenticated alert every `every` on one kept-alive connection, reconnecting when the
/// connection breaks (as libcurl does).
async fn keepalive_probe(
    addr: SocketAddr,
    token: String,
    every: Duration,
    samples: Arc<Samples>,
    stop: Arc<AtomicBool>,
) {
    let request = post("/v1/alerts", Some(&token), &alert_line(), false);
    let mut conn: Option<TcpStream> = None;
    let mut tick = tokio::time::interval(every);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let (at, started) = (now_ms(), Instant::now());
        let result = async {
            if conn.is_none() {
                conn = Some(TcpStream::connect(addr).await?);
            }
            let tcp = conn
                .as_mut()
                .ok_or_else(|| std::io::Error::other("no connection"))?;
            tcp.write_all(&request).await?;
            response(tcp).await
        };
        match tokio::time::timeout(Duration::from_secs(5), result).await {
            Ok(Ok((202, _))) => samples.ok(at, started.elapsed()),
            Ok(Ok((code, _))) => {
                samples.failed(at, format!("status {code}"));
                conn = None;
            }
            Ok(Err(e)) => {
                samples.failed(at, format!("keep-alive: {e}"));
                conn = None;
            }
            Err(_) => {
                samples.failed(at, "keep-alive: no answer within 5 s");
                conn = None;
            }
        }
    }
}

/// An authenticated alert every `every`, each on a fresh connection.
async fn fresh_probe(
    addr: SocketAddr,
    token: String,
    every: Duration,
    samples: Arc<Samples>,
    stop: Arc<AtomicBool>,
) {
    let request = post("/v1/alerts", Some(&token), &alert_line(), true);
    let mut tick = tokio::time::interval(every);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let (at, started) = (now_ms(), Instant::now());
        match tokio::time::timeout(Duration::from_secs(5), once(addr, &request)).await {
            Ok(Ok((202, _))) => samples.ok(at, started.elapsed()),
            Ok(Ok((code, _))) => samples.failed(at, format!("status {code}")),
            Ok(Err(e)) => samples.failed(at, format!("fresh: {e}")),
            Err(_) => samples.failed(at, "fresh: no answer within 5 s"),
        }
    }
}

/// The server's RSS (MiB) and open file descriptors.
fn server_usage(pid: u32) -> (f64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

/// CPU seconds the process `pid` has used (user + system).
fn cpu_secs(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) in parentheses.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// The server's connection metrics, from `/metrics`.
async fn connection_metrics(addr: SocketAddr) -> String {
    match get(addr, "/metrics", None).await {
        Ok((200, body)) => String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.starts_with(names::HTTP_CONNECTIONS))
            .map(|l| {
                l.replace(names::HTTP_CONNECTIONS, "")
                    .replace("{listener=\"ingest\",", "{")
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => format!("(/metrics: {other:?})"),
    }
}

struct Ctx {
    addr: SocketAddr,
    pid: u32,
    secs: u64,
    phases_file: std::path::PathBuf,
}

impl Ctx {
    /// Run `attack` for the phase, sampling the server; print the phase's line.
    async fn phase<F>(&self, name: &str, attack: F)
    where
        F: std::future::Future<Output = String> + Send + 'static,
    {
        let (started, started_ms) = (Instant::now(), now_ms());
        let (server_cpu, own_cpu) = (cpu_secs(self.pid), cpu_secs(std::process::id()));
        let stop = Arc::new(AtomicBool::new(false));
        let pid = self.pid;
        let sampler = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let (mut rss, mut fds) = (0f64, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let (r, f) = server_usage(pid);
                    rss = rss.max(r);
                    fds = fds.max(f);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                (rss, fds)
            })
        };
        let attack = tokio::spawn(attack);
        tokio::time::sleep(Duration::from_secs(self.secs)).await;
        let ended = Instant::now();
        let note = match tokio::time::timeout(Duration::from_secs(30), attack).await {
            Ok(Ok(note)) => note,
            Ok(Err(e)) => format!("attack task failed: {e}"),
            Err(_) => "attack did not stop within 30 s".to_owned(),
        };
        stop.store(true, Ordering::Relaxed);
        let (rss, fds) = sampler.await.unwrap_or((f64::NAN, 0));
        let (rss_now, fds_now) = server_usage(self.pid);
        let wall = ended.duration_since(started).as_secs_f64();
        let server_cpu = (cpu_secs(self.pid) - server_cpu) / wall * 100.0;
        let own_cpu = (cpu_secs(std::process::id()) - own_cpu) / wall * 100.0;
        println!("== {name} ({wall:.0} s)");
        println!("   attack: {note}");
        println!(
            "   server: peak RSS {rss:.1} MiB, peak fds {fds}; after: RSS {rss_now:.1} MiB, fds {fds_now}; CPU {server_cpu:.0} % of a core (attacker {own_cpu:.0} %, load average {})",
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .unwrap_or("?")
        );
        println!("   connections: {}", connection_metrics(self.addr).await);
        let line = format!("{name}\t{started_ms}\t{}\n", now_ms());
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.phases_file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
        if let Err(e) = appended {
            println!(
                "   (cannot record the phase in {}: {e})",
                self.phases_file.display()
            );
        }
    }
}

/// Connections that send nothing, held until `secs` pass (a child process: one process may
/// not hold 20,000 sockets here).
async fn silent_worker(addr: SocketAddr, count: usize, secs: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut held = Vec::with_capacity(count);
    let (mut connected, mut failed) = (0u64, 0u64);
    for _ in 0..count {
        if Instant::now() >= deadline {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                connected += 1;
                held.push(s);
            }
            _ => failed += 1,
        }
    }
    // How many the server has closed by now (evicted or timed out).
    let mut closed = 0u64;
    for s in &held {
        let mut b = [0u8; 1];
        match s.try_read(&mut b) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => closed += 1,
            _ => {}
        }
    }
    tokio::time::sleep_until(deadline.into()).await;
    println!("{connected} {failed} {closed}");
    Ok(())
}

async fn phase_silent(addr: SocketAddr, secs: u64) -> String {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return format!("cannot find myself: {e}"),
    };
    let mut children = Vec::new();
    for _ in 0..2 {
        let child = tokio::process::Command::new(&exe)
            .args([
                "silent-worker",
                &addr.to_string(),
                "10000",
                &secs.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn();
        match child {
            Ok(c) => children.push(c),
            Err(e) => return format!("cannot spawn a worker: {e}"),
        }
    }
    let (mut connected, mut failed, mut closed) = (0u64, 0u64, 0u64);
    for c in children {
        if let Ok(out) = c.wait_with_output().await {
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            let n: Vec<u64> = text
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if let [a, b, c] = n[..] {
                connected += a;
                failed += b;
                closed += c;
            }
        }
    }
    format!(
        "20000 silent connect() attempts: {connected} connected, {failed} failed; {closed} already closed by the server when the last was made"
    )
}

/// `n` connections that each trickle a request head, one byte per second, reconnecting when
/// the server closes them.
async fn phase_header_trickle(addr: SocketAddr, n: usize, secs: u64) -> String {
    let closed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let closed = closed.clone();
        tasks.spawn(async move {
            let head = b"POST /v1/alerts HTTP/1.1\r\nHost: teflon\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            while Instant::now() < deadline {
                let Ok(mut tcp) = TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                for b in head.iter().cycle() {
                    if Instant::now() >= deadline || tcp.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                closed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    format!(
        "{n} connections trickling a request head at 1 B/s; {} closed by the server and reopened",
        closed.load(Ordering::Relaxed)
    )
}

/// `n` connections that each send an unauthenticated `GET /healthz` and stay idle, reopened
/// when the server closes them.
async fn phase_idle_unauth(addr: SocketAddr, n: usize, secs: u64) -> String {
    let reopened = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let reopened = reopened.clone();
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let Ok(mut tcp) = TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                if tcp
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: teflon\r\n\r\n")
                    .await
                    .is_err()
                    || response(&mut tcp).await.is_err()
                {
                    reopened.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let mut b = [0u8; 1];
                let left = deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, tcp.read(&mut b)).await.is_ok() {
                    reopened.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    format!(
        "{n} unauthenticated idle keep-alive connections (GET /healthz, then nothing); {} closed by the server and reopened",
        reopened.load(Ordering::Relaxed)
    )
}

/// `n` authenticated senders declaring 1 MiB bodies and sending 1 byte per second.
async fn phase_body_trickle(addr: SocketAddr, token: String, n: usize, secs: u64) -> String {
    let answers = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let answers = answers.clone();
        let token = token.clone();
        tasks.spawn(async move {
            while Instant::now() < deadline {
                let Ok(mut tcp) = TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let head = format!("POST /v1/alerts HTTP/1.1\r\nHost: teflon\r\nAuthorization: Bearer {token}\r\nContent-Length: 1048576\r\n\r\n");
                if tcp.write_all(head.as_bytes()).await.is_err() {
                    continue;
                }
                let (mut rd, mut wr) = tcp.into_split();
                let writer = async {
                    while Instant::now() < deadline {
                        if wr.write_all(b" ").await.is_err() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                };
                let mut buf = [0u8; 256];
                tokio::select! {
                    () = writer => {}
                    r = rd.read(&mut buf) => {
                        let text = match r { Ok(k) => String::from_utf8_lossy(&buf[..k]).split_whitespace().nth(1).unwrap_or("?").to_owned(), Err(e) => e.to_string() };
                        answers.lock().unwrap().push(text);
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let answers = answers.lock().unwrap();
    format!(
        "{n} authenticated senders trickling 1 MiB bodies at 1 B/s; server answers: {:?}",
        &answers[..answers.len().min(8)]
    )
}

/// `n` HTTP/2 connections with the token, each with 32 streams pushing request bodies as fast
/// as the server's windows allow.
async fn phase_h2_push(addr: SocketAddr, token: String, n: usize, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let granted = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (granted, closed, statuses, token) = (
            granted.clone(),
            closed.clone(),
            statuses.clone(),
            token.clone(),
        );
        tasks.spawn(async move {
            let Ok(tcp) = TcpStream::connect(addr).await else {
                return;
            };
            let Ok(Ok((client, conn))) =
                tokio::time::timeout(Duration::from_secs(5), h2::client::handshake(tcp)).await
            else {
                closed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let conn = tokio::spawn(conn);
            let Ok(mut client) = client.ready().await else {
                closed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let mut streams = Vec::new();
            for _ in 0..32 {
                let req = http::Request::builder()
                    .method("POST")
                    .uri(format!("http://{addr}/v1/alerts"))
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-length", "1048576")
                    .body(())
                    .unwrap_or_default();
                match client.send_request(req, false) {
                    Ok((response, stream)) => {
                        let statuses = statuses.clone();
                        tokio::spawn(async move {
                            let left = deadline.saturating_duration_since(Instant::now())
                                + Duration::from_secs(1);
                            let status = match tokio::time::timeout(left, response).await {
                                Ok(Ok(r)) => r.status().as_u16().to_string(),
                                Ok(Err(e)) => {
                                    if e.is_go_away() || e.is_io() {
                                        "closed".to_owned()
                                    } else {
                                        e.to_string()
                                    }
                                }
                                Err(_) => "pending".to_owned(),
                            };
                            *statuses.lock().unwrap().entry(status).or_default() += 1;
                        });
                        streams.push(stream);
                    }
                    Err(_) => break,
                }
            }
            let chunk = bytes::Bytes::from(vec![b' '; 16 * 1024]);
            while Instant::now() < deadline && !conn.is_finished() {
                for s in &mut streams {
                    // Only what the server's windows grant is sent (h2 holds the rest here).
                    s.reserve_capacity(chunk.len());
                    let k = s.capacity().min(chunk.len());
                    if k > 0 && s.send_data(chunk.slice(..k), false).is_ok() {
                        granted.fetch_add(k as u64, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if conn.is_finished() {
                closed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_millis(1200)).await;
    format!(
        "{n} h2c connections × 32 streams pushing 1 MiB bodies: {} closed by the server; {:.1} MiB of DATA granted by its windows; stream outcomes {:?}",
        closed.load(Ordering::Relaxed),
        granted.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
        statuses.lock().unwrap()
    )
}

/// Authenticated batches of alerts whose source (and, with `workloads`, namespace and pod)
/// are random, from 4 senders, until 100,000 are accepted or `secs` pass; then the size of
/// `/metrics` and `/v1/status`.
async fn phase_random(addr: SocketAddr, token: String, workloads: bool, secs: u64) -> String {
    const ALERTS: u64 = 100_000;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let accepted = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for seed in 1..=4u64 {
        let (accepted, token) = (accepted.clone(), token.clone());
        tasks.spawn(async move {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
            let mut conn: Option<TcpStream> = None;
            while Instant::now() < deadline && accepted.load(Ordering::Relaxed) < ALERTS {
                let body: String = (0..100)
                    .map(|_| {
                        let source = rng.name("src");
                        let (ns, pod) = if workloads {
                            (rng.name("ns"), rng.name("pod"))
                        } else {
                            ("default".to_owned(), "kubecon".to_owned())
                        };
                        alert_with(&source, &ns, &pod) + "\n"
                    })
                    .collect();
                let req = post("/v1/alerts", Some(&token), &body, false);
                if conn.is_none() {
                    conn = TcpStream::connect(addr).await.ok();
                }
                let Some(tcp) = conn.as_mut() else { continue };
                let ok = tcp.write_all(&req).await.is_ok();
                match response(tcp).await {
                    Ok((202, _)) if ok => {
                        accepted.fetch_add(100, Ordering::Relaxed);
                    }
                    Ok((429, _)) => tokio::time::sleep(Duration::from_millis(20)).await,
                    _ => conn = None,
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // Past the 1 s render cache.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let metrics = match get(addr, "/metrics", None).await {
        Ok((200, b)) => {
            let text = String::from_utf8_lossy(&b).to_string();
            let series = text.lines().filter(|l| !l.starts_with('#')).count();
            let sources = text
                .lines()
                .filter(|l| {
                    l.strip_prefix(names::ALERTS_TOTAL)
                        .is_some_and(|r| r.starts_with('{'))
                })
                .count();
            format!(
                "/metrics {series} series ({} KiB), {} series {sources}",
                b.len() / 1024,
                names::ALERTS_TOTAL
            )
        }
        other => format!("/metrics {other:?}"),
    };
    let status = match get(addr, "/v1/status", Some(&token)).await {
        Ok((200, b)) => {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
            format!(
                "/v1/status {} KiB (workloads_total {}, deferrals_total {})",
                b.len() / 1024,
                v["workloads_total"],
                v["deferrals_total"]
            )
        }
        other => format!("/v1/status {other:?}"),
    };
    format!(
        "{} alerts with random sources{} accepted; {metrics}; {status}",
        accepted.load(Ordering::Relaxed),
        if workloads {
            ", namespaces and pods"
        } else {
            ""
        }
    )
}

/// `n` concurrent scrapers of `/metrics`, in a loop.
async fn phase_scrapes(addr: SocketAddr, n: usize, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let scrapes = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let scrapes = scrapes.clone();
        tasks.spawn(async move {
            while Instant::now() < deadline {
                if let Ok((200, _)) = get(addr, "/metrics", None).await {
                    scrapes.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    format!(
        "{n} concurrent unauthenticated /metrics scrapers: {} scrapes",
        scrapes.load(Ordering::Relaxed)
    )
}

/// Statuses the issue found wrong.
async fn phase_statuses(addr: SocketAddr, token: String) -> String {
    let tiny = r#"{"rule":"r","priority":"Warning","time":"2026-01-01T00:00:00Z","output":"x","output_fields":{}}"#;
    let big: String = (0..10_001).map(|_| format!("{tiny}\n")).collect();
    let big = once(addr, &post("/v1/alerts", Some(&token), &big, true)).await;
    let misrouted = once(
        addr,
        &post("/v1/tetragon", Some(&token), &alert_line(), true),
    )
    .await;
    let unknown = once(
        addr,
        &post("/v1/tetragon", Some(&token), r#"{"foo":1}"#, true),
    )
    .await;
    let show = |r: std::io::Result<(u16, Vec<u8>)>| match r {
        Ok((c, b)) => format!("{c} {}", String::from_utf8_lossy(&b)),
        Err(e) => e.to_string(),
    };
    format!(
        "10,001 tiny alerts in one body ({} KiB): {}; a Falco alert on /v1/tetragon: {}; {{\"foo\":1}} on /v1/tetragon: {}",
        (tiny.len() + 1) * 10_001 / 1024,
        show(big),
        show(misrouted),
        show(unknown)
    )
}

/// The probes until SIGINT; then their figures per phase of `phases_file`.
async fn probe(
    addr: SocketAddr,
    token: String,
    phases_file: &std::path::Path,
) -> anyhow::Result<()> {
    let (keepalive, fresh) = (Arc::new(Samples::default()), Arc::new(Samples::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let started = now_ms();
    let probes = [
        tokio::spawn(keepalive_probe(
            addr,
            token.clone(),
            Duration::from_millis(10),
            keepalive.clone(),
            stop.clone(),
        )),
        tokio::spawn(fresh_probe(
            addr,
            token,
            Duration::from_millis(100),
            fresh.clone(),
            stop.clone(),
        )),
    ];
    tokio::signal::ctrl_c().await?;
    stop.store(true, Ordering::Relaxed);
    for p in probes {
        let _ = p.await;
    }
    let ended = now_ms();
    let phases = std::fs::read_to_string(phases_file).unwrap_or_default();
    for line in phases.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (Some(name), Some(Ok(from)), Some(Ok(to))) = (
            f.first(),
            f.get(1).map(|x| x.parse::<u64>()),
            f.get(2).map(|x| x.parse::<u64>()),
        ) else {
            continue;
        };
        println!("== probes during {name}");
        println!(
            "   keep-alive (every 10 ms): {}",
            keepalive.window(from, to)
        );
        println!(
            "   fresh connection (every 100 ms): {}",
            fresh.window(from, to)
        );
    }
    println!("== probes, whole run");
    println!("   keep-alive: {}", keepalive.window(started, ended));
    println!("   fresh connection: {}", fresh.window(started, ended));
    let accepted = keepalive.ok.lock().unwrap().len() + fresh.ok.lock().unwrap().len();
    println!("probe alerts accepted (202): {accepted}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("silent-worker") => {
            let addr: SocketAddr = args.get(2).context("ADDR")?.parse()?;
            let count: usize = args.get(3).context("COUNT")?.parse()?;
            let secs: u64 = args.get(4).context("SECONDS")?.parse()?;
            silent_worker(addr, count, secs).await
        }
        Some("probe") => {
            let [_, _, addr, token, phases_file] = &args[..] else {
                bail!("usage: hostile probe ADDR TOKEN PHASES_FILE");
            };
            probe(addr.parse()?, token.clone(), phases_file.as_ref()).await
        }
        Some("attack") => attack(&args[2..]).await,
        _ => bail!("usage: hostile attack|probe|silent-worker … (see the example's docs)"),
    }
}

async fn attack(args: &[String]) -> anyhow::Result<()> {
    let [addr, token, pid, phases_file, rest @ ..] = args else {
        bail!("usage: hostile attack ADDR TOKEN SERVER_PID PHASES_FILE [PHASE_SECS] [PHASES]");
    };
    let ctx = Ctx {
        addr: addr.parse()?,
        pid: pid.parse()?,
        secs: rest.first().map_or(Ok(15), |s| s.parse())?,
        phases_file: phases_file.into(),
    };
    let all = "baseline,silent,header-trickle,idle-unauth,body-trickle,h2-push,statuses,scrapes,random-sources,random-workloads";
    let phases: Vec<String> = rest
        .get(1)
        .map_or(all, String::as_str)
        .split(',')
        .map(str::to_owned)
        .collect();
    let (addr, token, secs) = (ctx.addr, token.clone(), ctx.secs);
    for phase in &phases {
        match phase.as_str() {
            "baseline" => {
                ctx.phase("baseline: probes only", async { String::from("none") })
                    .await
            }
            "silent" => {
                ctx.phase("silent connections", phase_silent(addr, secs))
                    .await
            }
            "header-trickle" => {
                ctx.phase(
                    "trickled request heads",
                    phase_header_trickle(addr, 4000, secs),
                )
                .await
            }
            "idle-unauth" => {
                ctx.phase(
                    "idle unauthenticated keep-alives",
                    phase_idle_unauth(addr, 4000, secs),
                )
                .await
            }
            "body-trickle" => {
                ctx.phase(
                    "trickled bodies",
                    phase_body_trickle(addr, token.clone(), 8, secs),
                )
                .await
            }
            "h2-push" => {
                ctx.phase(
                    "HTTP/2 pushes",
                    phase_h2_push(addr, token.clone(), 200, secs),
                )
                .await
            }
            "random-sources" => {
                ctx.phase(
                    "random sources",
                    phase_random(addr, token.clone(), false, secs),
                )
                .await
            }
            "random-workloads" => {
                ctx.phase(
                    "random namespaces and pods",
                    phase_random(addr, token.clone(), true, secs),
                )
                .await
            }
            "scrapes" => {
                ctx.phase("concurrent scrapes", phase_scrapes(addr, 12, secs))
                    .await
            }
            "statuses" => {
                ctx.phase("statuses", phase_statuses(addr, token.clone()))
                    .await
            }
            other => bail!("unknown phase {other:?} (expected some of {all})"),
        }
    }
    Ok(())
}
