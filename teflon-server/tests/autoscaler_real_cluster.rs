//! The autoscaler against a real API server: it changes a Deployment's replicas through the
//! `scale` subresource. Runs only when `TEST_KUBECONFIG` names a kubeconfig (and the crate is
//! built with the `kube` feature); otherwise it says why it skips.

#[cfg(not(feature = "kube"))]
#[test]
fn autoscaler_scales_a_real_deployment_through_the_scale_subresource() {
    eprintln!("skipped: teflon-server built without the `kube` feature");
}

#[cfg(feature = "kube")]
mod real {
    use std::sync::Arc;
    use std::time::Duration;

    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, DeleteParams, PostParams};
    use teflon_core::autoscale::AutoscaleSpec;
    use teflon_core::{StaticCluster, Timestamp, WorkloadKind, WorkloadRef, WorkloadStats};
    use teflon_k8s::KubeScaler;
    use teflon_metrics::AttackSnapshot;
    use teflon_server::SharedView;
    use teflon_server::autoscaler::AutoscaleLoop;

    async fn client() -> Option<kube::Client> {
        let Ok(path) = std::env::var("TEST_KUBECONFIG") else {
            eprintln!("skipped: set TEST_KUBECONFIG to a kubeconfig to run the real-cluster test");
            return None;
        };
        Some(
            teflon_k8s::client::from_kubeconfig(std::path::Path::new(&path))
                .await
                .expect("a client for TEST_KUBECONFIG"),
        )
    }

    fn deployment(name: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]}
                }
            }
        }))
        .expect("a valid Deployment")
    }

    fn attacked(workload: &WorkloadRef, needed: u32) -> AttackSnapshot {
        AttackSnapshot {
            at: Timestamp::from_secs(0),
            window: Duration::from_secs(60),
            workloads: vec![WorkloadStats {
                workload: workload.clone(),
                infections_total: 6,
                hits_total: 0,
                backlog: 0,
                infected_pods: 1,
                infection_rate_per_minute: 6.0,
                time_to_recreation: Some(Duration::from_secs(20)),
                reaps_total: 5,
                desired: 1,
                available: 1,
                available_ratio: 1.0,
                min_available: 1,
                replicas_needed: needed,
                attack_pressure: f64::from(needed),
            }],
            infected_pods: Default::default(),
        }
    }

    #[tokio::test]
    async fn autoscaler_scales_a_real_deployment_through_the_scale_subresource() {
        let Some(client) = client().await else {
            return;
        };
        let ns = format!("teflon-autoscale-test-{}", std::process::id());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create namespace");
        let result = async {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            deployments
                .create(&PostParams::default(), &deployment("web"))
                .await
                .map_err(|e| format!("create deployment: {e}"))?;
            let web = WorkloadRef::new(WorkloadKind::Deployment, ns.clone(), "web");
            let spec = AutoscaleSpec {
                workload: web.clone(),
                min_replicas: 1,
                max_replicas: 4,
                cooldown: Duration::from_secs(60),
                scale_down_stabilization: Duration::from_secs(300),
            };
            // Current replicas come from the scale subresource; the view is only a fallback.
            let view: SharedView = Arc::new(StaticCluster::new());
            let mut lp = AutoscaleLoop::new(vec![spec], KubeScaler::new(client.clone()), view);
            let applied = lp.tick(&attacked(&web, 3), Timestamp::from_secs(0)).await;
            if applied.len() != 1 || applied[0].to != 3 {
                return Err(format!(
                    "expected one change to 3 replicas, got {applied:?}"
                ));
            }
            let d = deployments
                .get("web")
                .await
                .map_err(|e| format!("get: {e}"))?;
            let replicas = d.spec.replicas;
            if replicas != Some(3) {
                return Err(format!("spec.replicas is {replicas:?}, expected 3"));
            }
            // Above max_replicas: clamped to 4 once the cooldown has passed.
            let applied = lp.tick(&attacked(&web, 9), Timestamp::from_secs(61)).await;
            let d = deployments
                .get("web")
                .await
                .map_err(|e| format!("get: {e}"))?;
            let replicas = d.spec.replicas;
            if applied.len() != 1 || replicas != Some(4) {
                return Err(format!(
                    "expected 4 replicas, got {replicas:?} ({applied:?})"
                ));
            }
            Ok::<(), String>(())
        }
        .await;
        let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
        if let Err(e) = result {
            panic!("{e}");
        }
    }
}
