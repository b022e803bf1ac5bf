//! A 202 is a promise (SPEC §6): the real `teflon-server` binary, as a child process, takes
//! batches of alerts from concurrent senders, is killed with SIGKILL mid-stream (no simulated
//! crash: the kernel ends it wherever it is), and is started again on the same files. Every
//! alert that got a 202 must then appear exactly once in the audit log.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "crash-test-token";

const POLICIES: &str = r#"version: 1
defaults:
  dedup_window_secs: 0
policies:
  - name: record
    match: {}
    action: {type: log}
"#;

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port");
    l.local_addr().expect("the port's address")
}

fn start(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_teflon-server"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("teflon-server starts")
}

/// One HTTP/1.1 request on a new connection; the status code (0 when the connection failed).
async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> u16 {
    let Ok(Ok(mut tcp)) =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await
    else {
        return 0;
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: teflon\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    if tcp.write_all(head.as_bytes()).await.is_err()
        || tcp.write_all(body.as_bytes()).await.is_err()
    {
        return 0;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    if !matches!(read, Ok(Ok(_))) {
        return 0;
    }
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

async fn wait_healthy(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while request(addr, "GET", "/readyz", "").await != 200 {
        assert!(
            Instant::now() < deadline,
            "teflon-server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A falcosidekick-shaped alert (with its `uuid`) from Falco's documented fixture.
fn alert(uuid: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(include_str!(
        "fixtures/falco/01-terminal-shell-k8s-pod-syscall.json"
    ))
    .expect("the fixture is JSON");
    v["uuid"] = serde_json::json!(uuid);
    v.to_string()
}

fn audit(path: &Path) -> (HashMap<String, usize>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut ids = HashMap::new();
    let mut broken = 0;
    for line in text.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => {
                *ids.entry(v["alert_id"].as_str().unwrap_or_default().to_owned())
                    .or_insert(0) += 1
            }
            Err(_) => broken += 1,
        }
    }
    (ids, broken)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_that_got_a_202_is_audited_exactly_once_after_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    std::fs::write(dir.path().join("policies.yaml"), POLICIES).unwrap();
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let config = dir.path().join("teflon.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: \"{addr}\"\npolicies: policies.yaml\ncluster: {{type: sim}}\nauth: {{token_file: token}}\naudit_log: audit.jsonl\n"
        ),
    )
    .unwrap();

    // Three times: start, four senders posting batches of 50 alerts as fast as they can,
    // SIGKILL while they are going. Each start replays what the previous one left.
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut unaudited_at_kills = 0;
    for cycle in 0..3 {
        let mut server = start(&config);
        wait_healthy(addr).await;
        let target = accepted.lock().unwrap().len() + 1_500;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut senders = Vec::new();
        for s in 0..4 {
            let accepted = accepted.clone();
            let stop = stop.clone();
            senders.push(tokio::spawn(async move {
                let mut batch_no = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let uuids: Vec<String> = (0..50)
                        .map(|i| format!("c{cycle}-s{s}-b{batch_no}-{i}"))
                        .collect();
                    let body: String = uuids.iter().map(|u| alert(u) + "\n").collect();
                    if request(addr, "POST", "/v1/alerts", &body).await == 202 {
                        accepted.lock().unwrap().extend(uuids);
                    }
                    batch_no += 1;
                }
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while accepted.lock().unwrap().len() < target {
            assert!(Instant::now() < deadline, "too few alerts accepted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill().expect("SIGKILL");
        let _ = server.wait();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in senders {
            let _ = s.await;
        }
        let (ids, _) = audit(&dir.path().join("audit.jsonl"));
        let accepted = accepted.lock().unwrap();
        let unaudited = accepted.iter().filter(|u| !ids.contains_key(*u)).count();
        eprintln!(
            "cycle {cycle}: {} alerts got a 202 so far; {unaudited} had no audit record at the SIGKILL",
            accepted.len()
        );
        unaudited_at_kills += unaudited;
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        unaudited_at_kills > 0,
        "no SIGKILL landed between a 202 and its audit record: the replay was not exercised"
    );

    // Again, on the same files: the journal is replayed first; then a graceful stop.
    let mut server = start(&config);
    wait_healthy(addr).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ids, _) = audit(&dir.path().join("audit.jsonl"));
        if accepted.iter().all(|u| ids.contains_key(u)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = server.wait().expect("teflon-server exits");
    assert!(exit.success(), "{exit:?}");

    let (ids, broken) = audit(&dir.path().join("audit.jsonl"));
    let missing: Vec<&String> = accepted.iter().filter(|u| !ids.contains_key(*u)).collect();
    let twice: Vec<(&String, &usize)> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty(),
        "{} of {} alerts that got a 202 are not in the audit log: {:?}",
        missing.len(),
        accepted.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        twice.is_empty(),
        "audited twice: {:?}",
        &twice[..twice.len().min(5)]
    );
    assert_eq!(broken, 0, "audit lines that are not JSON");
    // After the graceful stop the journal holds nothing.
    let journal = dir.path().join("journal");
    assert_eq!(std::fs::read_dir(&journal).unwrap().count(), 0);
}
