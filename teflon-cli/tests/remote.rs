//! `teflon history` and `teflon release` against a running server (on the simulated
//! cluster, listening on a local port), as an operator runs them.

mod common;

use std::time::Duration;

use common::{run, teflon};
use teflon_core::{WorkloadKind, WorkloadRef};
use teflon_server::{AuthConfig, Authenticator, ClusterBackend, ClusterType, Config, Server};
use teflon_sim::{SharedSim, SimCluster};

const TOKEN: &str = "cli-t0ken";

fn miner_alert(pod: &str) -> String {
    serde_json::json!({
        "output": "Possible miner running",
        "priority": "Critical",
        "rule": "Detect crypto miners using the Stratum protocol",
        "time": "2024-05-01T10:00:00.000000000Z",
        "output_fields": { "k8s.ns.name": "shop", "k8s.pod.name": pod },
    })
    .to_string()
}

#[test]
fn an_operator_sees_the_quarantine_in_the_history_and_releases_it_from_the_cli() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (server, sim, base) = rt.block_on(async {
        let policies = dir.path().join("policies.yaml");
        std::fs::write(&policies, teflon_cli::demo::DEMO_POLICIES).unwrap();
        let mut config = Config::new(&policies, AuthConfig::default());
        config.listen = ([127, 0, 0, 1], 0).into();
        config.cluster.kind = ClusterType::Sim;
        let clock = teflon_server::tokio_clock();
        let sim = SharedSim::new(
            SimCluster::new(Duration::from_secs(5)).with_deployment("shop", "web", 3),
            clock.clone(),
        );
        let mut server = Server::builder(config)
            .cluster(ClusterBackend::sim(sim.clone()))
            .clock(clock)
            .authenticator(Authenticator::with_token(TOKEN))
            .without_exporter()
            .start()
            .await
            .unwrap();
        let addr = server.listen().await.unwrap();
        (server, sim, format!("http://{addr}"))
    });
    let web = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
    let pod = sim.with(|c| c.available_pods(&web))[0].clone();
    let before = sim.with(|c| c.pod_labels("shop", &pod)).unwrap();
    rt.block_on(async {
        let client = teflon_server::http_client::client(None).unwrap();
        let (code, _) = teflon_server::http_client::json_request(
            &client,
            teflon_server::http_client::Method::POST,
            &format!("{base}/v1/alerts"),
            Some(TOKEN),
            Some(miner_alert(&pod).into_bytes()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(code, 202);
        for _ in 0..200 {
            if sim.with(|c| c.pod_labels("shop", &pod)) != Some(before.clone()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not quarantined");
    });

    let (code, stdout, stderr) = run(teflon()
        .args(["history", "--server", &base, "--namespace", "shop"])
        .env("TEFLON_TOKEN", TOKEN));
    assert_eq!(code, 0, "{stderr}");
    let line = stdout.lines().nth(1).unwrap_or_default();
    assert!(
        line.contains("quarantine")
            && line.contains(&format!("shop/{pod}"))
            && line.contains("active")
            && line.contains(&format!("teflon release --namespace shop --pod {pod}")),
        "{stdout}"
    );

    let release = [
        "release",
        "--server",
        &base,
        "--namespace",
        "shop",
        "--pod",
        &pod,
    ];
    let (code, _, stderr) = run(teflon().args(release).env_remove("TEFLON_TOKEN"));
    assert_eq!(code, 1);
    assert!(stderr.contains("unauthorized"), "{stderr}");
    assert_eq!(
        sim.with(|c| c.pod_labels("shop", &pod)).unwrap().get("app"),
        None,
        "still quarantined"
    );

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let (code, stdout, stderr) = run(teflon()
        .args(release)
        .arg("--token-file")
        .arg(&token_file)
        .env_remove("TEFLON_TOKEN"));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "released pod shop/{pod} (quarantine by policy quarantine-miners); labels restored: app=web, pod-template-hash="
        )),
        "{stdout}"
    );
    assert_eq!(sim.with(|c| c.pod_labels("shop", &pod)).unwrap(), before);

    let (code, _, stderr) = run(teflon().args(release).env("TEFLON_TOKEN", TOKEN));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("refused") && stderr.contains("not quarantined"),
        "{stderr}"
    );

    std::thread::sleep(Duration::from_millis(200));
    let (code, stdout, stderr) = run(teflon()
        .args([
            "history", "--server", &base, "--since", "1h", "--format", "json",
        ])
        .env("TEFLON_TOKEN", TOKEN));
    assert_eq!(code, 0, "{stderr}");
    let body: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(body["actions"][0]["state"], "released", "{body:#}");

    rt.block_on(async {
        let _ = server.shutdown().await;
    });
}
