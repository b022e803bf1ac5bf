//! Against a real API server: runs only when `TEST_KUBECONFIG` names a kubeconfig file.
//!
//! The cluster needs an API server and kube-controller-manager (ReplicaSet controller); a
//! kubelet and a scheduler are not needed: the test marks pods Ready itself through the
//! `pods/status` subresource. It works in its own namespace, `teflon-test-<random>`, and
//! deletes it at the end, whatever happened. Teflon's side (the view, every action, scale)
//! runs as a ServiceAccount bound to exactly the kit's ClusterRole (`deploy/rbac.yaml`) by
//! impersonation, so RBAC is enforced as in production (releases included: a quarantined pod
//! gets its labels back, the block_binary policy is deleted); Tetragon's TracingPolicyNamespaced
//! CRD is installed from the repository's copy when the cluster lacks it (and removed after).
//! The kubeconfig's user needs cluster-admin-like rights: namespaces, ClusterRoles, CRDs,
//! impersonation, and in the namespace Deployments, PodDisruptionBudgets, pods (and
//! `pods/status`), ServiceAccounts, RoleBindings and Events.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, Namespace, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec, ServiceAccount,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use rand::Rng;
use serde_json::json;
use teflon_core::QUARANTINE_LABEL;
use teflon_core::{
    Action, ActionId, Actuator, Alert, ClusterView, Outcome, PlannedAction, PodTarget, Priority,
    Releaser, WorkloadKind, WorkloadRef,
};
use teflon_k8s::{KubeActuator, KubeClusterView, RecreationHandle, ViewConfig};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The admin client of `TEST_KUBECONFIG`, and its configuration (to impersonate Teflon's
/// ServiceAccount with).
async fn client_from_env() -> Option<(Client, kube::Config)> {
    let Some(path) = std::env::var_os("TEST_KUBECONFIG") else {
        eprintln!(
            "skipping real-cluster test: TEST_KUBECONFIG is not set (set it to a kubeconfig path to run against a real API server)"
        );
        return None;
    };
    let config = teflon_k8s::client::kubeconfig(std::path::Path::new(&path))
        .await
        .unwrap_or_else(|e| panic!("TEST_KUBECONFIG: {e}"));
    // Teflon's own client constructor: the kube client's retries off, as in production.
    let client = teflon_k8s::client::from_config(config.clone())
        .unwrap_or_else(|e| panic!("TEST_KUBECONFIG: {e}"));
    Some((client, config))
}

/// A client that is Teflon's ServiceAccount `teflon` in `ns`, with exactly the kit's
/// ClusterRole (`deploy/rbac.yaml`, created as `name`) bound in `ns`: a missing verb is a 403
/// here, as in production.
async fn as_teflon(
    admin: &Client,
    config: &kube::Config,
    ns: &str,
    name: &str,
) -> TestResult<Client> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(include_str!("../../deploy/rbac.yaml"))?;
    let mut role: ClusterRole = docs
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .map(serde_json::from_value)
        .ok_or("deploy/rbac.yaml has a ClusterRole")??;
    role.metadata = ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await?;
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "teflon"}}))?;
    Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await?;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "teflon"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "teflon", "namespace": ns}],
    }))?;
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await?;
    let mut config = config.clone();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:teflon"));
    Ok(teflon_k8s::client::from_config(config)?)
}

/// Install Tetragon's TracingPolicyNamespaced CRD (the repository's copy of Tetragon's own)
/// unless the cluster has it; `true` when this test installed it (and must remove it).
async fn ensure_tetragon_crd(admin: &Client) -> TestResult<bool> {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    if crds
        .get_opt("tracingpoliciesnamespaced.cilium.io")
        .await?
        .is_some()
    {
        return Ok(false);
    }
    let crd: CustomResourceDefinition = serde_saphyr::from_str(include_str!(
        "fixtures/cilium.io_tracingpoliciesnamespaced.yaml"
    ))?;
    crds.create(&PostParams::default(), &crd).await?;
    wait_for("the Tetragon CRD to be established", 30, || async {
        let crd = crds.get("tracingpoliciesnamespaced.cilium.io").await?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        Ok(established.then_some(()))
    })
    .await?;
    Ok(true)
}

/// Poll `check` every 200 ms until it yields `Some`, or fail after `secs` seconds saying `what`.
async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut check: F) -> TestResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = TestResult<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("timed out after {secs}s waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn web_deployment(replicas: i32) -> Deployment {
    let app = labels(&[("app", "web")]);
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".to_owned()),
            ..ObjectMeta::default()
        },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(app.clone()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(app),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "web".to_owned(),
                        image: Some("registry.k8s.io/pause:3.10".to_owned()),
                        ..Container::default()
                    }],
                    termination_grace_period_seconds: Some(0),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    }
}

/// Live (not terminating) pods of Deployment web, i.e. still selected by `app=web`.
async fn web_pods(pods: &Api<Pod>) -> TestResult<Vec<Pod>> {
    let list = pods.list(&ListParams::default().labels("app=web")).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

/// What a kubelet would report for a started, ready pod.
async fn mark_ready(pods: &Api<Pod>, name: &str) -> TestResult {
    let now = Time(Timestamp::now());
    let status = PodStatus {
        phase: Some("Running".to_owned()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".to_owned(),
            status: "True".to_owned(),
            last_transition_time: Some(now),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    };
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

/// Mark every live web pod Ready until `n` are; returns their names.
async fn ready_web_pods(pods: &Api<Pod>, n: usize) -> TestResult<Vec<String>> {
    wait_for(
        &format!("{n} web pods from the ReplicaSet controller (needs kube-controller-manager)"),
        90,
        || async {
            let live = web_pods(pods).await?;
            if live.len() < n {
                return Ok(None);
            }
            let mut names = Vec::new();
            for p in &live {
                let name = p.metadata.name.clone().unwrap_or_default();
                let ready = p
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if !ready {
                    mark_ready(pods, &name).await?;
                }
                names.push(name);
            }
            names.sort();
            Ok(Some(names))
        },
    )
    .await
}

fn alert(ns: &str, pod: &str) -> Arc<Alert> {
    Arc::new(
        Alert::test()
            .priority(Priority::Critical)
            .pod(ns, pod)
            .output("real-cluster test alert")
            .build(),
    )
}

fn plan(ns: &str, pod: &Pod, action: Action, id: u64) -> PlannedAction {
    let name = pod.metadata.name.clone().unwrap_or_default();
    PlannedAction {
        id: ActionId(id),
        pod: PodTarget {
            namespace: ns.to_owned(),
            name: name.clone(),
            uid: pod.metadata.uid.clone(),
        },
        workload: Some(WorkloadRef::new(WorkloadKind::Deployment, ns, "web")),
        action,
        policy: Arc::from("real-cluster-test"),
        binary: Some("/usr/bin/nc".to_owned()),
        alert: alert(ns, &name),
        deadline: teflon_core::Timestamp::from_nanos(
            i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            )
            .unwrap_or(i64::MAX),
        )
        .plus(Duration::from_secs(60)),
    }
}

/// `client` sets the stage (the test's admin); `teflon` is what Teflon runs as.
async fn scenario(client: Client, teflon: Client, ns: &str) -> TestResult {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    let web = WorkloadRef::new(WorkloadKind::Deployment, ns, "web");

    deployments
        .create(&PostParams::default(), &web_deployment(3))
        .await?;
    let names = ready_web_pods(&pods, 3).await?;
    eprintln!("3 web pods created by the ReplicaSet controller and marked Ready: {names:?}");

    // The view: watches limited to our namespace, synced after every initial list.
    let view = KubeClusterView::start(
        teflon.clone(),
        &ViewConfig {
            namespaces: vec![ns.to_owned()],
            ..ViewConfig::default()
        },
    );
    tokio::time::timeout(Duration::from_secs(30), view.wait_synced()).await?;
    assert!(view.is_synced());
    wait_for("the view to see 3 available of 3", 30, || async {
        Ok(view
            .workload(&web)
            .filter(|s| s.desired == 3 && s.available == 3)
            .map(|_| ()))
    })
    .await?;
    let info = view.pod(ns, &names[0]).ok_or("the view knows the pod")?;
    assert_eq!(info.workload.as_ref(), Some(&web));
    assert!(info.ready);
    assert_eq!(view.disruptions_allowed(ns, &names[0]), None, "no PDB yet");

    let (recreation, mut recreations) = RecreationHandle::spawn(view.clone());
    let actuator = KubeActuator::new(teflon.clone())
        .with_reporting_instance("teflon-real-cluster-test")
        .with_recreation(recreation);

    // delete: a wrong UID precondition never deletes the pod of that name.
    let victim = pods.get(&names[0]).await?;
    let mut wrong = plan(
        ns,
        &victim,
        Action::Delete {
            grace_period_secs: Some(0),
        },
        1,
    );
    wrong.pod.uid = Some("00000000-0000-0000-0000-000000000000".to_owned());
    assert_eq!(actuator.execute(&wrong).await.outcome, Outcome::Gone);
    assert_eq!(
        pods.get(&names[0]).await?.metadata.uid,
        victim.metadata.uid,
        "still there"
    );

    // delete with the right UID, then again: the second finds it gone.
    let delete = plan(
        ns,
        &victim,
        Action::Delete {
            grace_period_secs: Some(0),
        },
        2,
    );
    assert_eq!(actuator.execute(&delete).await.outcome, Outcome::Success);
    wait_for("the deleted pod to disappear", 30, || async {
        Ok(pods
            .get_opt(&names[0])
            .await?
            .filter(|p| p.metadata.uid == victim.metadata.uid)
            .is_none()
            .then_some(()))
    })
    .await?;
    assert_eq!(actuator.execute(&delete).await.outcome, Outcome::Gone);

    // The replacement: the ReplicaSet creates it, we make it Ready, the tracker reports it.
    ready_web_pods(&pods, 3).await?;
    let measured = tokio::time::timeout(Duration::from_secs(30), recreations.recv())
        .await?
        .ok_or("recreation channel closed")?;
    assert_eq!(measured.workload, web);
    eprintln!("time to recreation after delete: {:?}", measured.duration);
    wait_for("the view to see 3 available again", 30, || async {
        Ok(view.workload(&web).filter(|s| s.available == 3).map(|_| ()))
    })
    .await?;

    // evict with no PDB: succeeds.
    let names = ready_web_pods(&pods, 3).await?;
    let evictee = pods.get(&names[0]).await?;
    let evict = plan(
        ns,
        &evictee,
        Action::Evict {
            grace_period_secs: Some(0),
        },
        3,
    );
    assert_eq!(actuator.execute(&evict).await.outcome, Outcome::Success);
    ready_web_pods(&pods, 3).await?;
    let measured = tokio::time::timeout(Duration::from_secs(30), recreations.recv())
        .await?
        .ok_or("recreation channel closed")?;
    assert_eq!(measured.workload, web);
    eprintln!("time to recreation after evict: {:?}", measured.duration);

    // evict with a PDB that allows no disruption: refused, the pod stays.
    let pdb = PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some("web-pdb".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(0)),
            selector: Some(LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                match_expressions: None,
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    };
    pdbs.create(&PostParams::default(), &pdb).await?;
    let names = ready_web_pods(&pods, 3).await?;
    wait_for("the view to see the PDB", 30, || async {
        Ok(view
            .disruptions_allowed(ns, &names[0])
            .filter(|n| *n < 1)
            .map(|_| ()))
    })
    .await?;
    let protected = pods.get(&names[0]).await?;
    let evict = plan(
        ns,
        &protected,
        Action::Evict {
            grace_period_secs: Some(0),
        },
        4,
    );
    let refused = actuator.execute(&evict).await;
    // At the first answer: neither Teflon nor the kube client resent the eviction.
    assert_eq!(
        (refused.outcome, refused.attempts),
        (Outcome::DisruptionBudget, 1)
    );
    let still = pods.get(&names[0]).await?;
    assert_eq!(still.metadata.uid, protected.metadata.uid);
    assert!(
        still.metadata.deletion_timestamp.is_none(),
        "a refused eviction deletes nothing"
    );

    // quarantine: labels off (the ReplicaSet lets go and replaces it), NetworkPolicy on.
    let suspect = pods.get(&names[1]).await?;
    let suspect_name = names[1].clone();
    let quarantine = plan(
        ns,
        &suspect,
        Action::Quarantine {
            labels: labels(&[("forensics", "hold")]),
            network_isolate: true,
            expire_after: None,
        },
        5,
    );
    assert_eq!(
        actuator.execute(&quarantine).await.outcome,
        Outcome::Success
    );
    let q = pods.get(&suspect_name).await?;
    assert_eq!(
        q.metadata.uid, suspect.metadata.uid,
        "the evidence keeps running"
    );
    let ql = q.metadata.labels.clone().unwrap_or_default();
    assert!(
        !ql.contains_key("app") && !ql.contains_key("pod-template-hash"),
        "{ql:?}"
    );
    assert_eq!(
        ql.get(QUARANTINE_LABEL).map(String::as_str),
        Some("real-cluster-test")
    );
    assert_eq!(ql.get("forensics").map(String::as_str), Some("hold"));
    assert!(
        q.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("teflon.io/alert")
    );
    let netpols: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let np = netpols
        .get(&teflon_k8s::network_policy_name(&suspect_name))
        .await?;
    let np_spec = np.spec.ok_or("NetworkPolicy spec")?;
    assert_eq!(
        np_spec.policy_types,
        Some(vec!["Ingress".to_owned(), "Egress".to_owned()])
    );
    assert!(
        np_spec.ingress.unwrap_or_default().is_empty()
            && np_spec.egress.unwrap_or_default().is_empty()
    );
    let selected: Vec<Pod> = pods
        .list(&ListParams::default().labels(&format!("teflon.io/quarantined-pod={suspect_name}")))
        .await?
        .items;
    assert_eq!(
        selected.len(),
        1,
        "the NetworkPolicy selects the quarantined pod alone"
    );

    // The replacement comes back; the view counts 3 available without the quarantined pod.
    ready_web_pods(&pods, 3).await?;
    let measured = tokio::time::timeout(Duration::from_secs(30), recreations.recv())
        .await?
        .ok_or("recreation channel closed")?;
    assert_eq!(measured.workload, web);
    wait_for(
        "the view to count 3 available besides the quarantined pod",
        30,
        || async { Ok(view.workload(&web).filter(|s| s.available == 3).map(|_| ())) },
    )
    .await?;
    assert_eq!(view.pod(ns, &suspect_name).and_then(|p| p.workload), None);

    // release, under the kit's RBAC: the labels come back exactly, the NetworkPolicy goes, the
    // ReplicaSet adopts the pod again and removes one pod (it has one too many).
    let releaser = teflon_k8s::KubeReleaser::new(teflon.clone());
    let in_force = releaser.active().await?;
    assert!(
        in_force.iter().any(|a| a.target.name() == suspect_name),
        "{in_force:?}"
    );
    let wrong = teflon_core::ReleaseTarget::Pod {
        namespace: ns.to_owned(),
        name: suspect_name.clone(),
        uid: Some("not-its-uid".to_owned()),
    };
    let refused = releaser
        .release(&wrong, teflon_core::ReleaseCause::Operator)
        .await;
    assert!(
        matches!(refused.outcome, teflon_core::ReleaseOutcome::Refused(_)),
        "{refused:?}"
    );
    let right = teflon_core::ReleaseTarget::Pod {
        namespace: ns.to_owned(),
        name: suspect_name.clone(),
        uid: suspect.metadata.uid.clone(),
    };
    let released = releaser
        .release(&right, teflon_core::ReleaseCause::Operator)
        .await;
    assert_eq!(
        released.outcome,
        teflon_core::ReleaseOutcome::Released,
        "{released:?}"
    );
    let back = pods.get(&suspect_name).await?;
    assert_eq!(
        back.metadata.labels, suspect.metadata.labels,
        "exactly its labels"
    );
    assert!(
        netpols
            .get_opt(&teflon_k8s::network_policy_name(&suspect_name))
            .await?
            .is_none(),
        "the NetworkPolicy is gone"
    );
    wait_for("the ReplicaSet to be back at 3 pods", 60, || async {
        Ok((web_pods(&pods).await?.len() == 3).then_some(()))
    })
    .await?;

    // block_binary: Success with Tetragon's CRD installed, a clear failure without it.
    let names = ready_web_pods(&pods, 3).await?;
    let target = pods.get(&names[0]).await?;
    let block = plan(
        ns,
        &target,
        Action::BlockBinary {
            binary_fields: vec!["proc.exepath".to_owned()],
            expire_after: None,
        },
        6,
    );
    // Under the kit's RBAC, against Tetragon's real CRD (installed by the test if missing):
    // the apply creates the policy, and the API server's schema accepts it.
    assert_eq!(actuator.execute(&block).await.outcome, Outcome::Success);
    let policies: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &teflon_k8s::tracing_policy_resource());
    let created = policies.list(&ListParams::default()).await?.items;
    assert_eq!(created.len(), 1, "one TracingPolicyNamespaced");
    let spec = &created[0].data["spec"];
    assert_eq!(
        spec["kprobes"][0]["selectors"][0]["matchActions"][0]["action"], "Sigkill",
        "nothing pruned: {spec}"
    );
    // Its release deletes it (read, checked to be Teflon's, deleted under preconditions).
    let block_target = releaser.target_of(&block).ok_or("a policy to release")?;
    let r = releaser
        .release(&block_target, teflon_core::ReleaseCause::Operator)
        .await;
    assert_eq!(r.outcome, teflon_core::ReleaseOutcome::Released, "{r:?}");
    assert!(
        policies
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
    );

    // Events were recorded by Teflon.
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let ours: Vec<Event> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("teflon.io/teflon"))
        .collect();
    for action in ["delete", "evict", "quarantine", "block_binary", "release"] {
        assert!(
            ours.iter().any(|e| e.action.as_deref() == Some(action)),
            "an Event for {action}"
        );
    }

    // scale: through the scale subresource.
    let after = teflon_k8s::scale(&teflon, &web, 4).await?;
    assert_eq!(after.desired, 4);
    assert_eq!(teflon_k8s::get_scale(&teflon, &web).await?.desired, 4);
    ready_web_pods(&pods, 4).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_evict_quarantine_and_recreation_against_a_real_api_server() {
    let Some((client, config)) = client_from_env().await else {
        return;
    };
    let ns = format!("teflon-test-{:08x}", rand::rng().random::<u32>());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.clone()),
            labels: Some(labels(&[(
                "app.kubernetes.io/created-by",
                "teflon-k8s-tests",
            )])),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("cannot create namespace {ns}: {e}"));
    eprintln!("working in namespace {ns}");
    let role = ns.clone();
    let installed_crd = ensure_tetragon_crd(&client)
        .await
        .unwrap_or_else(|e| panic!("cannot install the Tetragon CRD: {e}"));
    let outcome = AssertUnwindSafe(async {
        let teflon = as_teflon(&client, &config, &ns, &role).await?;
        scenario(client.clone(), teflon, &ns).await
    })
    .catch_unwind()
    .await;
    if let Err(e) = namespaces.delete(&ns, &DeleteParams::default()).await {
        eprintln!("could not delete namespace {ns}: {e} (delete it by hand)");
    }
    if let Err(e) = Api::<ClusterRole>::all(client.clone())
        .delete(&role, &DeleteParams::default())
        .await
    {
        eprintln!("could not delete ClusterRole {role}: {e} (delete it by hand)");
    }
    if installed_crd
        && let Err(e) = Api::<CustomResourceDefinition>::all(client.clone())
            .delete(
                "tracingpoliciesnamespaced.cilium.io",
                &DeleteParams::default(),
            )
            .await
    {
        eprintln!("could not delete the Tetragon CRD this test installed: {e}");
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("real-cluster scenario failed: {e}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
