//! Every manifest of `deploy/manifests/` and every object of each rendered overlay of
//! `deploy/kustomize/` deserializes into its k8s-openapi type (with no field k8s-openapi does
//! not know, which catches typos the API server would silently drop), RBAC is least privilege,
//! the Deployment is hardened, and the ConfigMap holds a valid server config and policy set.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One YAML document and where it came from.
#[derive(Debug, Clone)]
struct Doc {
    origin: String,
    value: Value,
}

impl Doc {
    fn api_version(&self) -> &str {
        self.value["apiVersion"].as_str().unwrap_or("")
    }

    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    fn typed<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.value.clone())
            .unwrap_or_else(|e| panic!("{} ({}/{}): {e}", self.origin, self.kind(), self.name()))
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn parse_docs(origin: &str, text: &str) -> Vec<Doc> {
    let values: Vec<Value> = serde_saphyr::from_str_multiple(text)
        .unwrap_or_else(|e| panic!("{origin}: not valid YAML: {e}"));
    values
        .into_iter()
        .filter(|v| !v.is_null())
        .map(|value| Doc {
            origin: origin.to_owned(),
            value,
        })
        .collect()
}

/// The YAML files of `dir` (relative to the repository root), but its kustomization.yaml.
fn dir_docs(dir: &str) -> Vec<Doc> {
    let path = repo_root().join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", path.display());
    files
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).expect("readable manifest");
            parse_docs(&format!("{dir}/{}", file_name(file)), &text)
        })
        .collect()
}

/// `deploy/manifests/` and `deploy/custom-metrics/` (APIServices, their RBAC, the example HPA).
fn manifest_docs() -> Vec<Doc> {
    let mut docs = dir_docs("deploy/manifests");
    if repo_root().join("deploy/custom-metrics").is_dir() {
        docs.extend(dir_docs("deploy/custom-metrics"));
    }
    docs
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The kubectl to render overlays with: `$KUBECTL`, else `kubectl` on PATH.
fn kubectl() -> Option<String> {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let works = Command::new(&bin)
        .args(["version", "--client"])
        .output()
        .is_ok_and(|out| out.status.success());
    works.then_some(bin)
}

/// `kubectl kustomize deploy/kustomize/<dir>`, or `None` (with the reason printed) when there is
/// no kubectl outside CI. In CI (env `CI` set) a missing kubectl is a failure.
fn render(dir: &str) -> Option<Vec<Doc>> {
    // Rendered once per overlay for the whole test binary.
    static RENDERED: OnceLock<Mutex<BTreeMap<String, Option<Vec<Doc>>>>> = OnceLock::new();
    let cache = RENDERED.get_or_init(Mutex::default);
    if let Some(docs) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(dir) {
        return docs.clone();
    }
    let docs = render_uncached(dir);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(dir.to_owned(), docs.clone());
    docs
}

fn render_uncached(dir: &str) -> Option<Vec<Doc>> {
    let Some(bin) = kubectl() else {
        let why = "kubectl is not on PATH (nor in $KUBECTL): cannot render the kustomize overlays; \
                   install Debian's `kubernetes-client` package";
        if std::env::var_os("CI").is_some() {
            panic!("{why} (CI is set, so this is a failure)");
        }
        eprintln!("skipping {dir}: {why}");
        return None;
    };
    let path = repo_root().join("deploy/kustomize").join(dir);
    let out = Command::new(&bin)
        .arg("kustomize")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("running {bin} kustomize {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{bin} kustomize deploy/kustomize/{dir} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("kubectl prints UTF-8");
    let docs = parse_docs(&format!("kustomize/{dir}"), &text);
    assert!(!docs.is_empty(), "kustomize/{dir} rendered nothing");
    Some(docs)
}

const OVERLAYS: [&str; 3] = ["base", "overlays/production", "overlays/demo"];

/// Keys present in `original` but lost by the typed round trip: fields k8s-openapi (hence the
/// API server) does not know.
fn unknown_fields(original: &Value, round_trip: &Value, path: &str, out: &mut Vec<String>) {
    match (original, round_trip) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                let here = format!("{path}.{key}");
                match b.get(key) {
                    Some(other) => unknown_fields(value, other, &here, out),
                    None if value.is_null() => {}
                    None => out.push(here),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(doc: &Doc) -> Result<(), String> {
    let typed: T = serde_json::from_value(doc.value.clone())
        .map_err(|e| format!("{} {}/{}: {e}", doc.origin, doc.kind(), doc.name()))?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    unknown_fields(&doc.value, &back, "", &mut unknown);
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} {}/{}: fields unknown to Kubernetes: {}",
            doc.origin,
            doc.kind(),
            doc.name(),
            unknown.join(", ")
        ))
    }
}

/// Deserialize a document into the k8s-openapi type its apiVersion and kind name.
fn check_object(doc: &Doc) -> Result<(), String> {
    if doc.name().is_empty() {
        return Err(format!(
            "{}: {} without metadata.name",
            doc.origin,
            doc.kind()
        ));
    }
    match (doc.api_version(), doc.kind()) {
        ("v1", "Namespace") => round_trip::<Namespace>(doc),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc),
        ("v1", "Secret") => round_trip::<Secret>(doc),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(doc),
        ("v1", "Service") => round_trip::<Service>(doc),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(doc),
        ("apps/v1", "DaemonSet") => round_trip::<DaemonSet>(doc),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(doc),
        ("networking.k8s.io/v1", "NetworkPolicy") => round_trip::<NetworkPolicy>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(doc),
        ("apiregistration.k8s.io/v1", "APIService") => round_trip::<APIService>(doc),
        ("autoscaling/v2", "HorizontalPodAutoscaler") => round_trip::<HorizontalPodAutoscaler>(doc),
        ("keda.sh/v1alpha1", "ScaledObject") => round_trip::<keda::ScaledObject>(doc),
        (api, kind) => Err(format!(
            "{}: no k8s-openapi type wired for {api}/{kind} ({}); add it to check_object",
            doc.origin,
            doc.name()
        )),
    }
}

fn check_all(docs: &[Doc]) {
    let errors: Vec<String> = docs.iter().filter_map(|d| check_object(d).err()).collect();
    assert!(errors.is_empty(), "invalid objects:\n{}", errors.join("\n"));
}

fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> Option<&'a Doc> {
    docs.iter().find(|d| d.kind() == kind && d.name() == name)
}

fn all_of<T: DeserializeOwned>(docs: &[Doc], kind: &str) -> Vec<(String, T)> {
    docs.iter()
        .filter(|d| d.kind() == kind)
        .map(|d| (format!("{} {}", d.origin, d.name()), d.typed()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Objects

#[test]
fn every_manifest_deserializes_into_its_kubernetes_type() {
    let docs = manifest_docs();
    check_all(&docs);
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Secret",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ] {
        assert!(
            docs.iter().any(|d| d.kind() == kind),
            "no {kind} in deploy/manifests"
        );
    }
}

#[test]
fn every_object_of_every_rendered_overlay_deserializes_into_its_kubernetes_type() {
    for overlay in OVERLAYS {
        let Some(docs) = render(overlay) else { return };
        check_all(&docs);
        assert!(
            find(&docs, "Deployment", "teflon").is_some(),
            "{overlay}: no Deployment"
        );
    }
}

#[test]
fn unknown_fields_are_caught_by_the_round_trip() {
    let docs = parse_docs(
        "inline",
        "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n",
    );
    let err = check_object(&docs[0]).expect_err("a misspelt field must be reported");
    assert!(err.contains(".spec.selectr"), "{err}");
}

/// The manifests, then each overlay kubectl can render.
fn every_set() -> Vec<(String, Vec<Doc>)> {
    let mut sets = vec![("deploy/manifests".to_owned(), manifest_docs())];
    for overlay in OVERLAYS {
        if let Some(docs) = render(overlay) {
            sets.push((overlay.to_owned(), docs));
        }
    }
    if let Some(docs) = render_with_components(COMPONENT_OVERLAY) {
        sets.push((COMPONENT_OVERLAY.to_owned(), docs));
    }
    sets
}

/// The overlay that opts in to the custom-metrics APIService component.
const COMPONENT_OVERLAY: &str = "overlays/custom-metrics-api";

/// Kustomize components need kustomize ≥ 3.7, which kubectl embeds from 1.21 on (Debian's
/// kubernetes-client is 1.20). `None`, printing why, when kubectl cannot render them.
fn render_with_components(dir: &str) -> Option<Vec<Doc>> {
    let bin = kubectl()?;
    let out = Command::new(&bin)
        .args(["version", "--client", "-o", "json"])
        .output()
        .ok()?;
    let version: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let minor: u32 = version["clientVersion"]["minor"]
        .as_str()
        .map(|m| m.trim_end_matches('+'))
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if minor < 21 {
        eprintln!(
            "skipping {dir}: kubectl 1.{minor} embeds a kustomize without components (needs \
             kubectl ≥ 1.21); its resources are checked from deploy/custom-metrics"
        );
        return None;
    }
    render(dir)
}

// ---------------------------------------------------------------------------------------------
// RBAC

fn rules_of(docs: &[Doc]) -> Vec<(String, PolicyRule)> {
    let mut rules = Vec::new();
    for (name, role) in all_of::<ClusterRole>(docs, "ClusterRole") {
        rules.extend(
            role.rules
                .unwrap_or_default()
                .into_iter()
                .map(|r| (name.clone(), r)),
        );
    }
    for (name, role) in all_of::<Role>(docs, "Role") {
        rules.extend(
            role.rules
                .unwrap_or_default()
                .into_iter()
                .map(|r| (name.clone(), r)),
        );
    }
    rules
}

#[test]
fn rbac_has_no_wildcards_and_no_dangerous_grants() {
    for (set, docs) in every_set() {
        let rules = rules_of(&docs);
        assert!(!rules.is_empty(), "{set}: no RBAC rules");
        for (role, rule) in rules {
            let lists = [
                ("apiGroups", rule.api_groups.clone().unwrap_or_default()),
                ("resources", rule.resources.clone().unwrap_or_default()),
                ("verbs", rule.verbs.clone()),
                (
                    "resourceNames",
                    rule.resource_names.clone().unwrap_or_default(),
                ),
                (
                    "nonResourceURLs",
                    rule.non_resource_urls.clone().unwrap_or_default(),
                ),
            ];
            // The one exception: the HPA controller's read-only access to the metrics Teflon
            // serves, `custom.metrics.k8s.io` resources `*` (get/list/watch), as every metrics
            // adapter grants it; Teflon's own roles have no wildcard at all.
            let metrics_reader = rule.api_groups.as_deref()
                == Some(&["custom.metrics.k8s.io".to_owned()][..])
                && rule
                    .verbs
                    .iter()
                    .all(|v| ["get", "list", "watch"].contains(&v.as_str()));
            for (field, values) in lists {
                if metrics_reader && field == "resources" {
                    continue;
                }
                assert!(
                    values.iter().all(|v| !v.contains('*')),
                    "{set}: {role} has a wildcard in {field}: {values:?}"
                );
            }
            for verb in ["escalate", "bind", "impersonate"] {
                assert!(
                    !rule.verbs.iter().any(|v| v == verb),
                    "{set}: {role} grants {verb}"
                );
            }
            let resources = rule.resources.unwrap_or_default();
            assert!(
                !resources.iter().any(|r| r == "secrets"),
                "{set}: {role} grants access to secrets"
            );
        }
    }
}

/// (apiGroup, resource, verb, resourceName) of every rule of ClusterRole `name`, or of every
/// ClusterRole when `name` is `None`.
fn grants(docs: &[Doc], name: Option<&str>) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for (_, role) in all_of::<ClusterRole>(docs, "ClusterRole") {
        if name.is_some_and(|n| role.metadata.name.as_deref() != Some(n)) {
            continue;
        }
        for rule in role.rules.unwrap_or_default() {
            let names = rule
                .resource_names
                .clone()
                .unwrap_or_else(|| vec![String::new()]);
            for group in rule.api_groups.clone().unwrap_or_default() {
                for resource in rule.resources.clone().unwrap_or_default() {
                    for verb in &rule.verbs {
                        for name in &names {
                            out.insert((
                                group.clone(),
                                resource.clone(),
                                verb.clone(),
                                name.clone(),
                            ));
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn cluster_role_grants_exactly_what_the_k8s_adapter_declares() {
    let path = repo_root().join("deploy/rbac.yaml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "skipping: {} does not exist yet (the k8s adapter's RBAC)",
            path.display()
        );
        return;
    };
    let adapter = grants(&parse_docs("deploy/rbac.yaml", &text), Some("teflon"));
    let ours = grants(&dir_docs("deploy/manifests"), Some("teflon"));
    let missing: Vec<_> = adapter.difference(&ours).collect();
    let extra: Vec<_> = ours.difference(&adapter).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "deploy/manifests/rbac.yaml drifted from deploy/rbac.yaml:\n missing: {missing:?}\n extra: {extra:?}"
    );
}

#[test]
fn lease_permissions_are_a_namespaced_role_on_one_lease() {
    let docs = manifest_docs();
    let cluster_wide = grants(&docs, None);
    assert!(
        !cluster_wide
            .iter()
            .any(|(group, ..)| group == "coordination.k8s.io"),
        "Leases must not be granted cluster-wide"
    );
    let role: Role = find(&docs, "Role", "teflon-leader-election")
        .expect("the lease Role")
        .typed();
    assert_eq!(role.metadata.namespace.as_deref(), Some("teflon"));
    let rules = role.rules.unwrap_or_default();
    for rule in &rules {
        assert_eq!(
            rule.api_groups.as_deref(),
            Some(&["coordination.k8s.io".to_owned()][..])
        );
        assert_eq!(rule.resources.as_deref(), Some(&["leases".to_owned()][..]));
    }
    for rule in rules.iter().filter(|r| r.resource_names.is_some()) {
        assert_eq!(
            rule.resource_names.as_deref(),
            Some(&[teflon_k8s::lease::DEFAULT_LEASE_NAME.to_owned()][..]),
            "the Role names the Lease teflon-k8s uses"
        );
    }
    let verbs: BTreeSet<&str> = rules
        .iter()
        .flat_map(|r| r.verbs.iter().map(String::as_str))
        .collect();
    assert_eq!(verbs, BTreeSet::from(["create", "get", "update"]));
    let binding: RoleBinding = find(&docs, "RoleBinding", "teflon-leader-election")
        .expect("its RoleBinding")
        .typed();
    assert_eq!(binding.role_ref.name, "teflon-leader-election");
}

// ---------------------------------------------------------------------------------------------
// Deployment

fn assert_hardened(set: &str, deployment: &Deployment) {
    let pod = deployment.spec.template.spec.as_ref().expect("pod spec");
    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true), "{set}: pod runAsNonRoot");
    assert_eq!(psc.run_as_user, Some(65532), "{set}: pod runAsUser");
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault"),
        "{set}: pod seccompProfile"
    );
    assert_ne!(pod.host_network, Some(true), "{set}: hostNetwork");
    assert_ne!(pod.host_pid, Some(true), "{set}: hostPID");
    assert_ne!(pod.host_ipc, Some(true), "{set}: hostIPC");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("teflon"),
        "{set}: serviceAccountName"
    );
    let volumes = pod.volumes.clone().unwrap_or_default();
    assert!(
        volumes.iter().all(|v| v.host_path.is_none()),
        "{set}: hostPath volume"
    );
    assert!(
        volumes
            .iter()
            .any(|v| v.name == "audit" && v.empty_dir.is_some()),
        "{set}: the audit log needs an emptyDir (the root filesystem is read-only)"
    );
    for container in &pod.containers {
        let c = &container.name;
        let sc = container
            .security_context
            .as_ref()
            .expect("container securityContext");
        assert_eq!(sc.run_as_non_root, Some(true), "{set}/{c}: runAsNonRoot");
        assert_eq!(sc.run_as_user, Some(65532), "{set}/{c}: runAsUser");
        assert_eq!(
            sc.read_only_root_filesystem,
            Some(true),
            "{set}/{c}: readOnlyRootFilesystem"
        );
        assert_eq!(
            sc.allow_privilege_escalation,
            Some(false),
            "{set}/{c}: allowPrivilegeEscalation"
        );
        assert_ne!(sc.privileged, Some(true), "{set}/{c}: privileged");
        let caps = sc.capabilities.as_ref().expect("capabilities");
        assert_eq!(
            caps.drop.as_deref(),
            Some(&["ALL".to_owned()][..]),
            "{set}/{c}: drop ALL"
        );
        assert!(
            caps.add.as_ref().is_none_or(Vec::is_empty),
            "{set}/{c}: added capabilities"
        );

        let resources = container.resources.as_ref().expect("resources");
        for (what, map) in [
            ("requests", &resources.requests),
            ("limits", &resources.limits),
        ] {
            let map = map
                .as_ref()
                .unwrap_or_else(|| panic!("{set}/{c}: no {what}"));
            for key in ["cpu", "memory"] {
                assert!(map.contains_key(key), "{set}/{c}: no {what}.{key}");
            }
        }

        for (what, probe, path) in [
            ("liveness", &container.liveness_probe, "/healthz"),
            ("readiness", &container.readiness_probe, "/readyz"),
        ] {
            let get = probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .unwrap_or_else(|| panic!("{set}/{c}: no {what} httpGet probe"));
            assert_eq!(get.path.as_deref(), Some(path), "{set}/{c}: {what} path");
        }

        let ports: BTreeSet<i32> = container
            .ports
            .iter()
            .flatten()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(
            ports,
            BTreeSet::from([2804, 6443]),
            "{set}/{c}: container ports"
        );
    }
}

#[test]
fn deployment_is_hardened_in_every_set() {
    for (set, docs) in every_set() {
        let deployment: Deployment = find(&docs, "Deployment", "teflon")
            .expect("Deployment teflon")
            .typed();
        assert_hardened(&set, &deployment);
        let replicas = deployment.spec.replicas;
        let expected = if set.ends_with("demo") { 1 } else { 2 };
        assert_eq!(replicas, Some(expected), "{set}: replicas");
    }
}

/// A memory quantity (`128Mi`, `1Gi`, `512M`, plain bytes) in bytes.
fn memory_bytes(q: &str) -> u64 {
    let units: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().unwrap_or_else(|e| panic!("{q}: {e}")) * factor;
        }
    }
    q.parse().unwrap_or_else(|e| panic!("{q}: {e}"))
}

#[test]
fn memory_request_and_limit_follow_the_sizing_formula_for_150_000_pods() {
    // docs/cluster-view.md, "Sizing" (measured by the cluster_scale bench, BENCHMARKS.md):
    // request = 32 MiB + 0.6 KiB × pods, limit = 140 MiB + 0.6 KiB × pods.
    const PODS: u64 = 150_000;
    const PER_POD: u64 = 615; // 0.6 KiB
    let request_needed = (32 << 20) + PER_POD * PODS;
    let limit_needed = (140 << 20) + PER_POD * PODS;
    for (set, docs) in every_set() {
        let deployment: Deployment = find(&docs, "Deployment", "teflon")
            .expect("Deployment teflon")
            .typed();
        let pod = deployment.spec.template.spec.expect("pod spec");
        let container = pod
            .containers
            .iter()
            .find(|c| c.name == "teflon")
            .expect("container teflon");
        let resources = container.resources.as_ref().expect("resources");
        let get = |map: &Option<
            BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >| { memory_bytes(&map.as_ref().expect("set")["memory"].0) };
        let (request, limit) = (get(&resources.requests), get(&resources.limits));
        assert!(
            request >= request_needed,
            "{set}: memory request {request} B < {request_needed} B"
        );
        assert!(
            limit >= limit_needed,
            "{set}: memory limit {limit} B < {limit_needed} B"
        );
    }
}

#[test]
fn services_and_the_pdb_select_the_deployments_pods_and_name_its_ports() {
    for (set, docs) in every_set() {
        let deployment: Deployment = find(&docs, "Deployment", "teflon")
            .expect("Deployment")
            .typed();
        let template = deployment.spec.template;
        let labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
        let pod = template.spec.expect("pod spec");
        let port_names: BTreeSet<String> = pod
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten().filter_map(|p| p.name.clone()))
            .collect();
        let services = all_of::<Service>(&docs, "Service");
        assert!(
            services.len() >= 2,
            "{set}: ingest and metrics-API Services"
        );
        for (name, service) in services {
            let spec = service.spec.expect("service spec");
            let selector = spec.selector.unwrap_or_default();
            assert!(!selector.is_empty(), "{set}: {name} selects nothing");
            // With several replicas only the leader acts: traffic must go to it alone.
            if deployment.spec.replicas.unwrap_or(1) > 1 {
                assert_eq!(
                    selector
                        .get(teflon_k8s::lease::LEADER_LABEL)
                        .map(String::as_str),
                    Some("true"),
                    "{set}: {name} must select the leader's pod"
                );
            }
            for (k, v) in &selector {
                if k == teflon_k8s::lease::LEADER_LABEL {
                    continue; // put on the leader's pod at run time, not in the template
                }
                assert_eq!(labels.get(k), Some(v), "{set}: {name} selector {k}={v}");
            }
            for port in spec.ports.unwrap_or_default() {
                match port.target_port {
                    Some(IntOrString::String(target)) => {
                        assert!(
                            port_names.contains(&target),
                            "{set}: {name} targets port {target}"
                        )
                    }
                    other => panic!("{set}: {name}: target a named container port, not {other:?}"),
                }
            }
        }
        let pdb: PodDisruptionBudget = find(&docs, "PodDisruptionBudget", "teflon")
            .expect("PDB")
            .typed();
        let selector = pdb
            .spec
            .and_then(|s| s.selector)
            .and_then(|s| s.match_labels);
        for (k, v) in selector.expect("PDB matchLabels") {
            assert_eq!(labels.get(&k), Some(&v), "{set}: PDB selector {k}={v}");
        }
    }
}

#[test]
fn network_policy_admits_ingest_only_from_falco_and_falcosidekick() {
    let docs = manifest_docs();
    let policy: NetworkPolicy = find(&docs, "NetworkPolicy", "teflon")
        .expect("NetworkPolicy")
        .typed();
    let spec = policy.spec.expect("spec");
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_owned()][..])
    );
    let rules = spec.ingress.expect("ingress rules");
    let port_of = |rule: &k8s_openapi::api::networking::v1::NetworkPolicyIngressRule| -> Vec<i32> {
        rule.ports
            .iter()
            .flatten()
            .filter_map(|p| match &p.port {
                Some(IntOrString::Int(n)) => Some(*n),
                _ => None,
            })
            .collect()
    };
    let ingest: Vec<_> = rules
        .iter()
        .filter(|r| port_of(r).contains(&2804))
        .collect();
    assert_eq!(ingest.len(), 1, "one rule for the ingest port");
    let peers = ingest[0]
        .from
        .as_ref()
        .expect("ingest must name its sources");
    assert_eq!(peers.len(), 1);
    let peer = &peers[0];
    let ns = peer
        .namespace_selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .expect("ns");
    assert_eq!(
        ns.get("kubernetes.io/metadata.name").map(String::as_str),
        Some("falco")
    );
    let pods = peer
        .pod_selector
        .as_ref()
        .and_then(|s| s.match_expressions.as_ref())
        .expect("pods");
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].key, "app.kubernetes.io/name");
    assert_eq!(pods[0].operator, "In");
    assert_eq!(
        pods[0].values.as_deref(),
        Some(&["falco".to_owned(), "falcosidekick".to_owned()][..])
    );
    let metrics_api: Vec<_> = rules
        .iter()
        .filter(|r| port_of(r).contains(&6443))
        .collect();
    assert_eq!(metrics_api.len(), 1, "one rule for the metrics API port");
    assert!(
        metrics_api[0].from.is_none(),
        "the API server may come from outside the pod network"
    );

    for (set, docs) in every_set() {
        let policy: NetworkPolicy = find(&docs, "NetworkPolicy", "teflon")
            .expect("policy")
            .typed();
        for rule in policy.spec.and_then(|s| s.ingress).unwrap_or_default() {
            if port_of(&rule).contains(&2804) || rule.ports.is_none() {
                assert!(
                    rule.from.as_ref().is_some_and(|f| !f.is_empty()),
                    "{set}: the ingest port is open to every source"
                );
            }
        }
    }
}

#[test]
fn api_services_point_at_the_metrics_api_service_and_the_hpa_uses_attack_pressure() {
    for (set, docs) in every_set() {
        for (name, api) in all_of::<APIService>(&docs, "APIService") {
            let service = api
                .spec
                .and_then(|s| s.service)
                .expect("APIService spec.service");
            let target = docs
                .iter()
                .find(|d| {
                    d.kind() == "Service"
                        && d.name() == service.name.as_deref().unwrap_or("")
                        && d.value["metadata"]["namespace"].as_str() == service.namespace.as_deref()
                })
                .unwrap_or_else(|| panic!("{set}: {name} points at a Service that is not here"));
            let port = service.port.unwrap_or(443);
            let svc: Service = target.typed();
            assert!(
                svc.spec
                    .and_then(|s| s.ports)
                    .unwrap_or_default()
                    .iter()
                    .any(|p| p.port == port),
                "{set}: {name}: Service has no port {port}"
            );
        }
        for (name, hpa) in all_of::<HorizontalPodAutoscaler>(&docs, "HorizontalPodAutoscaler") {
            let metrics = hpa.spec.metrics.unwrap_or_default();
            assert!(
                metrics.iter().any(|m| m
                    .object
                    .as_ref()
                    .is_some_and(|o| o.metric.name == "teflon_attack_pressure")),
                "{set}: {name} does not scale on teflon_attack_pressure"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The ConfigMap: server config (SPEC §6) and policies (SPEC §3)

/// The SPEC §6 config file, strictly, for the cross-checks against the Deployment's mounts.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ServerConfig {
    listen: Option<String>,
    policies: String,
    cluster: Option<ClusterConfig>,
    auth: AuthConfig,
    tls: Option<TlsConfig>,
    metrics_api: Option<MetricsApiConfig>,
    audit_log: Option<String>,
    state_dir: Option<String>,
    queue_capacity: Option<u64>,
    max_body_bytes: Option<u64>,
    autoscale: Option<Vec<AutoscaleConfig>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[allow(dead_code)]
enum ClusterConfig {
    Kube,
    Sim {
        snapshot: Option<String>,
        recovery_secs: Option<u64>,
    },
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthConfig {
    token_file: Option<String>,
    token_env: Option<String>,
    client_ca_file: Option<String>,
    none: Option<bool>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    cert_file: String,
    key_file: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsApiConfig {
    listen: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct AutoscaleConfig {
    namespace: String,
    kind: String,
    name: String,
    min_replicas: u32,
    max_replicas: u32,
    cooldown_secs: Option<u64>,
}

fn config_data(set: &str, docs: &[Doc], key: &str) -> String {
    let cm: ConfigMap = find(docs, "ConfigMap", "teflon-config")
        .expect("ConfigMap teflon-config")
        .typed();
    cm.data
        .and_then(|mut d| d.remove(key))
        .unwrap_or_else(|| panic!("{set}: teflon-config has no {key}"))
}

/// The directory each volume is mounted at, by volume source.
fn mounts(deployment: &Deployment) -> Vec<(String, String)> {
    let pod = deployment.spec.template.spec.clone().expect("pod spec");
    let container = &pod.containers[0];
    let volumes = pod.volumes.unwrap_or_default();
    container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let volume = volumes
                .iter()
                .find(|v| v.name == m.name)
                .expect("mounted volume exists");
            let source = if let Some(cm) = &volume.config_map {
                format!("configmap:{}", cm.name)
            } else if let Some(secret) = &volume.secret {
                format!("secret:{}", secret.secret_name.clone().unwrap_or_default())
            } else if volume.empty_dir.is_some() {
                "emptydir".to_owned()
            } else {
                "other".to_owned()
            };
            (source, m.mount_path.clone())
        })
        .collect()
}

fn assert_under(set: &str, what: &str, file: &str, mounts: &[(String, String)], source: &str) {
    let dir = Path::new(file)
        .parent()
        .and_then(Path::to_str)
        .unwrap_or("");
    assert!(
        mounts.iter().any(|(s, path)| s == source && path == dir),
        "{set}: {what} {file} is not in a mount of {source} (mounts: {mounts:?})"
    );
}

#[test]
fn server_config_is_the_spec_shape_and_its_files_are_mounted() {
    for (set, docs) in every_set() {
        let text = config_data(&set, &docs, "config.yaml");
        // The server's own parser and validation first, then the deployment's invariants.
        if let Err(e) = teflon_server::Config::parse(&text, "config.yaml") {
            panic!("{set}: config.yaml is refused by teflon-server: {e}");
        }
        let config: ServerConfig =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{set}: config.yaml: {e}"));
        let deployment: Deployment = find(&docs, "Deployment", "teflon")
            .expect("Deployment")
            .typed();
        let mounts = mounts(&deployment);

        assert_eq!(
            config.listen.as_deref(),
            Some("0.0.0.0:2804"),
            "{set}: listen"
        );
        assert_under(
            &set,
            "policies",
            &config.policies,
            &mounts,
            "configmap:teflon-config",
        );
        assert_eq!(
            config.policies.rsplit('/').next(),
            Some("policies.yaml"),
            "{set}: policies must be the ConfigMap key policies.yaml"
        );
        let auth = &config.auth;
        assert_ne!(
            auth.none,
            Some(true),
            "{set}: shipped without authentication"
        );
        assert!(
            auth.token_env.is_none(),
            "{set}: the token comes from the Secret file"
        );
        let token = auth.token_file.as_deref().expect("token_file");
        assert_under(
            &set,
            "token_file",
            token,
            &mounts,
            "secret:teflon-ingest-token",
        );
        assert!(
            token.ends_with("/token"),
            "{set}: the Secret key is `token`"
        );
        if let Some(ca) = &auth.client_ca_file {
            assert!(config.tls.is_some(), "{set}: mTLS needs tls");
            assert_under(&set, "client_ca_file", ca, &mounts, "secret:teflon-tls");
        }
        if let Some(tls) = &config.tls {
            assert_under(
                &set,
                "tls.cert_file",
                &tls.cert_file,
                &mounts,
                "secret:teflon-tls",
            );
            assert_under(
                &set,
                "tls.key_file",
                &tls.key_file,
                &mounts,
                "secret:teflon-tls",
            );
        }
        let metrics_api = config.metrics_api.as_ref().expect("metrics_api");
        assert_eq!(
            metrics_api.listen.as_deref(),
            Some("0.0.0.0:6443"),
            "{set}: metrics_api"
        );
        for file in [&metrics_api.cert_file, &metrics_api.key_file]
            .into_iter()
            .flatten()
        {
            assert_under(&set, "metrics_api file", file, &mounts, "secret:teflon-tls");
        }
        let audit = config.audit_log.as_deref().expect("audit_log");
        assert_under(&set, "audit_log", audit, &mounts, "emptydir");
        // The journal must be on a volume that survives a container restart (an OOM kill),
        // never the container's own (read-only) filesystem.
        let state = config.state_dir.as_deref().expect("state_dir");
        assert!(
            mounts
                .iter()
                .any(|(s, path)| s == "emptydir" && path == state),
            "{set}: state_dir {state} is not an emptyDir mount (mounts: {mounts:?})"
        );

        let is_sim = matches!(config.cluster, Some(ClusterConfig::Sim { .. }));
        assert_eq!(is_sim, set.ends_with("demo"), "{set}: cluster.type");
        if set.ends_with("production") {
            assert!(auth.client_ca_file.is_some(), "production: mTLS from Falco");
            let scale = config.autoscale.as_ref().expect("production: autoscale");
            assert!(scale.iter().all(|s| s.min_replicas <= s.max_replicas));
        }
    }
}

#[test]
fn starter_policies_parse_with_the_engines_parser() {
    for (set, docs) in every_set() {
        let text = config_data(&set, &docs, "policies.yaml");
        let policies = teflon_core::PolicySet::parse(&text, "policies.yaml")
            .unwrap_or_else(|e| panic!("{set}: policies.yaml: {e}"));
        let names: Vec<&str> = policies
            .policies()
            .iter()
            .map(|p| p.name.as_ref())
            .collect();
        for expected in [
            "reap-terminal-shells",
            "reap-drop-and-execute",
            "quarantine-miners",
        ] {
            assert!(
                names.contains(&expected),
                "{set}: starter set lacks {expected}: {names:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The detector side: deploy/falco

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_tetragon_forwarder_deserializes_and_posts_to_the_tetragon_endpoint_with_the_token() {
    let docs = parse_docs(
        "deploy/falco/tetragon-forwarder.yaml",
        &read("deploy/falco/tetragon-forwarder.yaml"),
    );
    check_all(&docs);
    let cm: ConfigMap = find(&docs, "ConfigMap", "tetragon-forwarder")
        .expect("ConfigMap")
        .typed();
    let conf = cm
        .data
        .and_then(|mut d| d.remove("fluent-bit.conf"))
        .expect("fluent-bit.conf");
    for line in [
        "Host              teflon.teflon.svc",
        "Port              2804",
        "URI               /v1/tetragon",
        "Format            json_lines",
        "Header            Authorization Bearer ${TEFLON_TOKEN}",
    ] {
        assert!(conf.contains(line), "fluent-bit.conf lacks `{line}`");
    }
    let ds: DaemonSet = find(&docs, "DaemonSet", "tetragon-forwarder")
        .expect("DaemonSet")
        .typed();
    let pod = ds.spec.template.spec.expect("pod spec");
    let env = pod.containers[0].env.clone().unwrap_or_default();
    let token = env
        .iter()
        .find(|e| e.name == "TEFLON_TOKEN")
        .expect("TEFLON_TOKEN");
    let secret = token
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("from a Secret");
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("teflon-ingest-token", "token")
    );
}

#[test]
fn falco_values_send_json_to_teflon_over_mtls_and_sidekick_sends_the_bearer_header() {
    let falco: Value =
        serde_saphyr::from_str(&read("deploy/falco/falco.values.yaml")).expect("YAML");
    let http = &falco["falco"]["http_output"];
    assert_eq!(falco["falco"]["json_output"], true);
    assert_eq!(http["enabled"], true);
    assert_eq!(http["mtls"], true);
    assert_eq!(http["insecure"], false);
    assert_eq!(http["url"], "https://teflon.teflon.svc:2804/v1/alerts");

    let sidekick: Value =
        serde_saphyr::from_str(&read("deploy/falco/falcosidekick.values.yaml")).expect("YAML");
    let webhook = &sidekick["falcosidekick"]["config"]["webhook"];
    assert_eq!(sidekick["falcosidekick"]["enabled"], true);
    assert_eq!(
        webhook["address"],
        "http://teflon.teflon.svc:2804/v1/alerts"
    );
    let headers = webhook["customheaders"].as_str().expect("customheaders");
    assert!(headers.starts_with("Authorization:Bearer "), "{headers}");

    let patch: Vec<Value> =
        serde_saphyr::from_str(&read("deploy/falco/networkpolicy-tetragon-patch.yaml"))
            .expect("YAML");
    assert_eq!(patch[0]["op"], "add");
    assert_eq!(patch[0]["path"], "/spec/ingress/-");
    let _: k8s_openapi::api::networking::v1::NetworkPolicyIngressRule =
        serde_json::from_value(patch[0]["value"].clone()).expect("an ingress rule");
}

// ---------------------------------------------------------------------------------------------
// Observability: deploy/grafana and deploy/prometheus

/// Every metric Teflon exports (teflon-metrics' constants, the single source of names).
fn known_metrics() -> BTreeSet<&'static str> {
    use teflon_metrics::names::*;
    BTreeSet::from([
        ALERTS_TOTAL,
        ALERTS_REJECTED_TOTAL,
        DECISIONS_TOTAL,
        INFECTIONS_TOTAL,
        REAPINGS_TOTAL,
        INFECTED_PODS,
        WORKLOAD_AVAILABLE_RATIO,
        INFECTION_RATE_PER_MINUTE,
        ATTACK_PRESSURE,
        TIME_TO_RECREATION_SECONDS,
        TIME_TO_NEW_INFECTION_SECONDS,
        DECISION_LATENCY_SECONDS,
        ACTION_LATENCY_SECONDS,
        QUEUE_DEPTH,
        POLICY_RELOADS_TOTAL,
        AUDIT_LINES_LOST_TOTAL,
    ])
}

/// The `teflon_…` metric names a PromQL expression uses, histogram suffixes removed.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("teflon_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(base.to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn metrics_in_finds_names_and_strips_histogram_suffixes() {
    let found = metrics_in(
        "histogram_quantile(0.9, rate(teflon_decision_latency_seconds_bucket[5m])) / teflon_queue_depth",
    );
    assert_eq!(
        found,
        BTreeSet::from([
            "teflon_decision_latency_seconds".to_owned(),
            "teflon_queue_depth".to_owned()
        ])
    );
}

#[test]
fn the_dashboard_is_valid_json_and_charts_the_spec_metrics_by_their_exported_names() {
    let dashboard: Value =
        serde_json::from_str(&read("deploy/grafana/teflon-dashboard.json")).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let known = known_metrics();
    let mut used = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for metric in metrics_in(expr) {
                assert!(
                    known.contains(metric.as_str()),
                    "panel {}: unknown metric {metric}",
                    panel["title"]
                );
                used.insert(metric);
            }
        }
    }
    for required in [
        "teflon_infection_rate_per_minute",
        "teflon_reapings_total",
        "teflon_workload_available_ratio",
        "teflon_time_to_recreation_seconds",
        "teflon_attack_pressure",
        "teflon_decision_latency_seconds",
    ] {
        assert!(
            used.contains(required),
            "the dashboard does not chart {required}"
        );
    }
}

#[test]
fn alerting_rules_cover_pressure_failures_and_saturation_with_exported_metrics() {
    let rules: Value =
        serde_saphyr::from_str(&read("deploy/prometheus/teflon-rules.yaml")).expect("YAML");
    let known = known_metrics();
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("alert name").to_owned();
            let expr = rule["expr"].as_str().expect("expr");
            assert!(!metrics_in(expr).is_empty(), "{name}: no teflon metric");
            for metric in metrics_in(expr) {
                assert!(
                    known.contains(metric.as_str()),
                    "{name}: unknown metric {metric}"
                );
            }
            assert!(rule["labels"]["severity"].is_string(), "{name}: severity");
            assert!(
                rule["annotations"]["summary"].is_string(),
                "{name}: summary"
            );
            alerts.insert((name, expr.to_owned()));
        }
    }
    let has =
        |name: &str, needle: &str| alerts.iter().any(|(n, e)| n == name && e.contains(needle));
    assert!(has(
        "TeflonAttackPressureHigh",
        "teflon_attack_pressure) > 1"
    ));
    assert!(has("TeflonReapFailures", "outcome=\"failed\""));
    assert!(has("TeflonQueueSaturated", "teflon_queue_depth"));
}

// ---------------------------------------------------------------------------------------------
// Scaling: the custom-metrics APIService is opt-in; KEDA reads what Teflon serves

#[test]
fn the_base_kit_registers_no_apiservice_and_the_component_registers_both_versions() {
    let base = dir_docs("deploy/manifests");
    assert!(
        !base.iter().any(|d| d.kind() == "APIService"),
        "deploy/manifests must not register custom.metrics.k8s.io (docs/custom-metrics.md: opt-in)"
    );
    let kustomization = read("deploy/manifests/kustomization.yaml");
    assert!(
        !kustomization.contains("custom-metrics\n") && !kustomization.contains("../custom-metrics"),
        "deploy/manifests/kustomization.yaml still pulls in deploy/custom-metrics"
    );
    // The built-in autoscaler keeps its grants in the base kit.
    assert!(find(&base, "ClusterRole", "teflon:autoscaler").is_some());
    for overlay in OVERLAYS {
        if let Some(docs) = render(overlay) {
            assert!(
                !docs.iter().any(|d| d.kind() == "APIService"),
                "{overlay} registers an APIService: it must be opt-in"
            );
        }
    }
    let component: Value = serde_saphyr::from_str(&read(
        "deploy/kustomize/components/custom-metrics-api/kustomization.yaml",
    ))
    .unwrap();
    assert_eq!(component["kind"], "Component");
    assert_eq!(component["apiVersion"], "kustomize.config.k8s.io/v1alpha1");
    let Some(docs) = render_with_components(COMPONENT_OVERLAY) else {
        return;
    };
    check_all(&docs);
    let mut versions: Vec<String> = all_of::<APIService>(&docs, "APIService")
        .into_iter()
        .filter_map(|(_, a)| a.spec.and_then(|s| s.version))
        .collect();
    versions.sort();
    assert_eq!(versions, ["v1beta1", "v1beta2"]);
    assert!(find(&docs, "Deployment", "teflon").is_some());
    assert!(find(&docs, "ClusterRoleBinding", "teflon:system:auth-delegator").is_some());
}

fn keda_docs() -> Vec<Doc> {
    dir_docs("deploy/keda")
}

#[test]
fn keda_objects_deserialize_into_their_types() {
    let docs = keda_docs();
    check_all(&docs);
    let kinds: BTreeSet<&str> = docs.iter().map(Doc::kind).collect();
    assert_eq!(kinds, BTreeSet::from(["NetworkPolicy", "ScaledObject"]));
    // A misspelt field or a number where KEDA wants a string is caught.
    let bad = parse_docs(
        "inline",
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\n\
         spec: {scaleTargetRef: {name: web}, triggers: [{type: metrics-api, metadata: {targetValue: 1}}]}\n",
    );
    assert!(check_object(&bad[0]).is_err());
    let bad = parse_docs(
        "inline",
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\n\
         spec: {scaleTargetRef: {name: web}, fallbak: {}, triggers: []}\n",
    );
    assert!(check_object(&bad[0]).is_err());
}

/// The `/`-separated segments of a URL's path (scheme, host and query left out).
fn scaling_path_segments(url: &str) -> Vec<String> {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split_once('/')
        .map_or("", |(_, p)| p);
    path.split('?')
        .next()
        .unwrap_or("")
        .split('/')
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_metrics_api_scaled_object_reads_replicas_needed_from_teflons_endpoint() {
    let docs = keda_docs();
    let so: keda::ScaledObject = find(&docs, "ScaledObject", "web-attack-pressure")
        .expect("deploy/keda/scaledobject-metrics-api.yaml")
        .typed();
    let namespace = so.metadata.namespace.clone().expect("namespaced");
    let target = &so.spec.scale_target_ref;
    assert_eq!(target.kind.as_deref(), Some("Deployment"));
    let trigger = so
        .spec
        .triggers
        .iter()
        .find(|t| t.type_ == "metrics-api")
        .expect("a metrics-api trigger");
    let meta = &trigger.metadata;
    // The URL is Teflon's Service, port 2804, on the route the server serves, for the workload
    // the ScaledObject scales.
    let url = &meta["url"];
    assert!(url.starts_with("http://teflon.teflon.svc:2804/"), "{url}");
    let seg = scaling_path_segments(url);
    assert_eq!(seg[..2], ["v1", "scaling"], "{url}");
    assert_eq!(seg[2], namespace);
    assert_eq!(
        teflon_server::scaling::parse_resource(&seg[3]),
        Some(teflon_core::WorkloadKind::Deployment)
    );
    assert_eq!(seg[4], target.name);
    // valueLocation names a number of the reply body; AverageValue 1 makes it the replica count.
    let body = teflon_server::scaling::ScalingBody {
        kind: "Deployment".into(),
        namespace: namespace.clone(),
        name: target.name.clone(),
        replicas_needed: 12,
        attack_pressure: 4.0,
        desired: 3,
        available: 1,
        min_available: 1,
        infection_rate_per_minute: 60.0,
        time_to_recreation_secs: Some(10.0),
        backlog: 1,
        infected_pods: 1,
        attacked: true,
        window_secs: 300,
        at: teflon_core::Timestamp::from_secs(0),
    };
    let json = serde_json::to_value(&body).unwrap();
    assert!(
        json[&meta["valueLocation"]].is_number(),
        "{}",
        meta["valueLocation"]
    );
    assert_eq!(meta["valueLocation"], "replicas_needed");
    assert_eq!(trigger.metric_type.as_deref(), Some("AverageValue"));
    assert_eq!(meta["targetValue"], "1");
    assert_eq!(meta.get("format").map(String::as_str), Some("json"));
    assert!(meta.contains_key("activationTargetValue"));
    for key in meta.keys() {
        assert!(
            keda::METRICS_API_KEYS.contains(&key.as_str()),
            "metrics-api has no parameter {key}"
        );
    }
    let fallback = so.spec.fallback.as_ref().expect("a fallback");
    assert!(fallback.failure_threshold > 0 && fallback.replicas > 0);
    let (min, max) = (
        so.spec.min_replica_count.unwrap_or(0),
        so.spec.max_replica_count.unwrap_or(100),
    );
    assert!(min <= fallback.replicas && fallback.replicas <= max);
}

#[test]
fn the_prometheus_scaled_object_queries_a_series_teflon_exports() {
    let docs = keda_docs();
    let so: keda::ScaledObject = find(&docs, "ScaledObject", "web-attack-pressure-prometheus")
        .expect("deploy/keda/scaledobject-prometheus.yaml")
        .typed();
    let trigger = so
        .spec
        .triggers
        .iter()
        .find(|t| t.type_ == "prometheus")
        .expect("a prometheus trigger");
    let meta = &trigger.metadata;
    let used = metrics_in(&meta["query"]);
    assert_eq!(
        used,
        BTreeSet::from([teflon_metrics::names::ATTACK_PRESSURE.to_owned()])
    );
    let known = known_metrics();
    assert!(used.iter().all(|m| known.contains(m.as_str())));
    assert_eq!(trigger.metric_type.as_deref(), Some("Value"));
    assert_eq!(meta["threshold"], "1");
    assert!(meta.contains_key("activationThreshold"));
    for key in meta.keys() {
        assert!(
            keda::PROMETHEUS_KEYS.contains(&key.as_str()),
            "prometheus trigger has no parameter {key}"
        );
    }
}

#[test]
fn the_keda_network_policy_admits_namespace_keda_to_the_ingest_port_of_the_controller() {
    let docs = keda_docs();
    let policy: NetworkPolicy = find(&docs, "NetworkPolicy", "teflon-keda")
        .expect("deploy/keda/networkpolicy-keda.yaml")
        .typed();
    let base: NetworkPolicy = find(&dir_docs("deploy/manifests"), "NetworkPolicy", "teflon")
        .expect("the base NetworkPolicy")
        .typed();
    let spec = policy.spec.expect("spec");
    assert_eq!(
        Some(spec.pod_selector),
        base.spec.map(|s| s.pod_selector),
        "selects the same pods as the base policy"
    );
    let rules = spec.ingress.unwrap_or_default();
    assert_eq!(rules.len(), 1);
    let from = rules[0].from.clone().unwrap_or_default();
    assert_eq!(
        from[0]
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default()
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("keda")
    );
    let ports: Vec<IntOrString> = rules[0]
        .ports
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.port)
        .collect();
    assert_eq!(ports, [IntOrString::Int(2804)]);
}

/// KEDA's ScaledObject (keda.sh/v1alpha1) as its Go types declare it (apis/keda/v1alpha1 of
/// kedacore/keda), strictly: an unknown field is an error, as for the built-in types.
mod keda {
    use std::collections::BTreeMap;

    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde::{Deserialize, Serialize};

    /// The metrics-api trigger's parameters (pkg/scalers/metrics_api_scaler.go).
    pub const METRICS_API_KEYS: [&str; 10] = [
        "targetValue",
        "activationTargetValue",
        "url",
        "format",
        "valueLocation",
        "unsafeSsl",
        "aggregateFromKubeServiceEndpoints",
        "aggregationType",
        "timeout",
        "authMode",
    ];

    /// The prometheus trigger's parameters (pkg/scalers/prometheus_scaler.go).
    pub const PROMETHEUS_KEYS: [&str; 12] = [
        "serverAddress",
        "query",
        "queryParameters",
        "threshold",
        "activationThreshold",
        "namespace",
        "customHeaders",
        "ignoreNullValues",
        "unsafeSsl",
        "awsRegion",
        "timeout",
        "identityOwner",
    ];

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ScaledObject {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        pub spec: Spec,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Spec {
        pub scale_target_ref: ScaleTarget,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub polling_interval: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub initial_cooldown_period: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cooldown_period: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub idle_replica_count: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub min_replica_count: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_replica_count: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub advanced: Option<Advanced>,
        pub triggers: Vec<Trigger>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub fallback: Option<Fallback>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ScaleTarget {
        pub name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub api_version: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub env_source_container_name: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Advanced {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub horizontal_pod_autoscaler_config: Option<HpaConfig>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub restore_to_original_replica_count: Option<bool>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct HpaConfig {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub behavior: Option<HorizontalPodAutoscalerBehavior>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Trigger {
        #[serde(rename = "type")]
        pub type_: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub use_cached_metrics: Option<bool>,
        /// `map[string]string`: every value a string.
        pub metadata: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub authentication_ref: Option<AuthenticationRef>,
        /// `AverageValue`, `Value` or `Utilization`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub metric_type: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct AuthenticationRef {
        pub name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Fallback {
        pub failure_threshold: i32,
        pub replicas: i32,
        /// `static` (default), `currentReplicas`, `currentReplicasIfHigher`,
        /// `currentReplicasIfLower`, `scalingModifiers`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub behavior: Option<String>,
    }
}
