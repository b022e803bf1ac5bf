//! Cluster view at scale: sync time and resident memory of the real `KubeClusterView` and the
//! real `teflon-server` binary against a fake kube-apiserver serving N realistic pods.
//!
//! ```sh
//! cargo bench -p teflon-server --bench cluster_scale -- [--sizes 1000,20000,100000] [--watch-list on|off|both]
//! ```
//!
//! For each size it starts three processes, so no figure includes another's memory:
//! - `serve`: the fake API server (`teflon-k8s/tests/support/apiserver.rs`) with N pods in the
//!   shape of `kubectl get pod -o json` of a workload's pod (managed fields, annotations, env
//!   vars, probes, container statuses: 7.5 KB of JSON each, from
//!   `teflon-k8s/tests/fixtures/pod-deployment.json`), spread over Deployments (3 ReplicaSets
//!   each, 2 of them scaled to 0), StatefulSets, two DaemonSets and PDBs, rendered on demand;
//!   pages with `continue` tokens, then watches; streaming lists on or off (`--watch-list`);
//! - `view`: this bench again, running `KubeClusterView::start` through
//!   `Client::try_from(Config)`, reporting the time to `wait_synced` and its RSS;
//! - `teflon-server` (the release binary, `cluster.type: kube`, `KUBECONFIG` pointing at the
//!   fake server): the time from spawn to `/readyz` = 200 (policies loaded, view synced) and its
//!   RSS once synced (and 2 s later).
//!
//! RSS is `VmRSS` from `/proc/<pid>/status` (the peak is `VmHWM`). The fake server answers
//! faster than a real kube-apiserver (no etcd, no watch cache, no API priority and fairness),
//! so the sync times are the client's share: decoding and storing.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../../teflon-k8s/tests/support/apiserver.rs"]
mod apiserver;

use apiserver::{FakeApiServer, Objects, Options};

// The binaries' allocator, so the view's figures match the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const POD_TEMPLATE: &str = include_str!("../../teflon-k8s/tests/fixtures/pod-deployment.json");
const POLICIES: &str = "version: 1\npolicies:\n  - name: reap-shells\n    match:\n      rules: [\"Terminal shell in container\"]\n    action:\n      type: delete\n";

// -------------------------------------------------------------------------------------------
// The synthetic cluster.
// -------------------------------------------------------------------------------------------

/// Kubernetes' name-suffix alphabet.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn suffix(seed: u64, len: usize) -> String {
    let mut x = splitmix(seed);
    (0..len)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn uid(kind: u64, i: u64) -> String {
    let a = splitmix(kind << 40 | i);
    let b = splitmix(a);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        0x8000 | ((b >> 48) as u16 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

#[derive(Clone, Copy)]
enum Owner {
    /// Deployment index.
    Deployment(u32),
    /// StatefulSet index.
    StatefulSet(u32),
    /// DaemonSet index.
    DaemonSet(u32),
}

#[derive(Clone, Copy)]
struct PodSlot {
    namespace: u32,
    owner: Owner,
    ordinal: u32,
    node: u32,
}

struct Workload {
    namespace: u32,
    name: String,
    replicas: u32,
    hash: String,
}

/// A pod JSON template: literal pieces and named holes.
enum Piece {
    Lit(String),
    /// A JSON value in place of a `"@@J:name@@"` string.
    Json(String),
    /// Text inside a string, in place of `@@T:name@@`.
    Text(String),
}

fn template(value: &Value) -> Vec<Piece> {
    let s = serde_json::to_string(value).expect("serializable");
    let mut pieces = Vec::new();
    let mut rest = s.as_str();
    while let Some(start) = rest.find("@@") {
        let end = start + 2 + rest[start + 2..].find("@@").expect("closed hole");
        let hole = &rest[start + 2..end];
        let (lit, after) = (&rest[..start], &rest[end + 2..]);
        if let Some(name) = hole.strip_prefix("J:") {
            pieces.push(Piece::Lit(
                lit.strip_suffix('"').expect("quoted").to_owned(),
            ));
            pieces.push(Piece::Json(name.to_owned()));
            rest = after.strip_prefix('"').expect("quoted");
        } else {
            pieces.push(Piece::Lit(lit.to_owned()));
            pieces.push(Piece::Text(
                hole.strip_prefix("T:").expect("T: or J:").to_owned(),
            ));
            rest = after;
        }
    }
    pieces.push(Piece::Lit(rest.to_owned()));
    pieces
}

fn pod_template() -> Vec<Piece> {
    let mut p: Value = serde_json::from_str(POD_TEMPLATE).expect("the fixture");
    let hole = |name: &str| Value::from(format!("@@J:{name}@@"));
    let m = &mut p["metadata"];
    for (field, name) in [
        ("name", "name"),
        ("namespace", "namespace"),
        ("uid", "uid"),
        ("generateName", "generate_name"),
        ("labels", "labels"),
        ("ownerReferences", "owners"),
        ("resourceVersion", "rv"),
    ] {
        m[field] = hole(name);
    }
    // The managed-fields key naming the owner's UID, and the pod IP's.
    let owners = &mut m["managedFields"][0]["fieldsV1"]["f:metadata"]["f:ownerReferences"];
    let obj = owners.as_object_mut().expect("an object");
    obj.retain(|k, _| k == ".");
    obj.insert("k:{\"uid\":\"@@T:owner_uid@@\"}".to_owned(), json!({}));
    let ips = &mut p["metadata"]["managedFields"][1]["fieldsV1"]["f:status"]["f:podIPs"];
    let obj = ips.as_object_mut().expect("an object");
    obj.retain(|k, _| k == ".");
    obj.insert(
        "k:{\"ip\":\"@@T:pod_ip@@\"}".to_owned(),
        json!({".": {}, "f:ip": {}}),
    );
    p["spec"]["nodeName"] = hole("node");
    p["status"]["podIP"] = hole("pod_ip");
    p["status"]["podIPs"][0]["ip"] = hole("pod_ip");
    p["status"]["hostIP"] = hole("host_ip");
    p["status"]["hostIPs"][0]["ip"] = hole("host_ip");
    p["status"]["containerStatuses"][0]["containerID"] = hole("container_id");
    template(&p)
}

#[allow(clippy::too_many_arguments)]
/// A workload object (Deployment, ReplicaSet, StatefulSet, DaemonSet) with the pod spec of the
/// template, as the API serves it.
fn workload_json(
    kind: &str,
    api_version: &str,
    namespace: &str,
    name: &str,
    labels: Value,
    owner: Option<Value>,
    spec_extra: Value,
    status: Value,
) -> String {
    let pod: Value = serde_json::from_str(POD_TEMPLATE).expect("the fixture");
    let mut spec = json!({
        "selector": { "matchLabels": { "app": labels["app"].clone() } },
        "template": {
            "metadata": { "labels": labels.clone(), "annotations": pod["metadata"]["annotations"].clone() },
            "spec": pod["spec"].clone(),
        },
    });
    for (k, v) in spec_extra.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    let mut o = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid(splitmix(name.len() as u64) ^ u64::from(kind.as_bytes()[0]), splitmix(name.bytes().map(u64::from).sum())),
            "resourceVersion": "900",
            "generation": 3,
            "creationTimestamp": "2026-08-01T09:12:44Z",
            "labels": labels,
            "annotations": { "deployment.kubernetes.io/revision": "3" },
            "managedFields": [{
                "apiVersion": api_version, "fieldsType": "FieldsV1", "manager": "kubectl",
                "operation": "Update", "time": "2026-08-01T09:12:44Z",
                "fieldsV1": { "f:spec": { "f:replicas": {}, "f:template": { "f:spec": { "f:containers": {} } } } },
            }],
        },
        "spec": spec,
        "status": status,
    });
    if let Some(owner) = owner {
        o["metadata"]["ownerReferences"] = json!([owner]);
    }
    serde_json::to_string(&o).expect("serializable")
}

struct Cluster {
    namespaces: Vec<String>,
    pods: Vec<PodSlot>,
    deployments: Vec<Workload>,
    stateful_sets: Vec<Workload>,
    daemon_sets: Vec<Workload>,
    /// (namespace, JSON) of the other kinds, rendered once.
    rendered: std::collections::HashMap<&'static str, Vec<(u32, String)>>,
    template: Vec<Piece>,
    nodes: u32,
}

impl Cluster {
    /// `n` pods: two DaemonSets in `kube-system` on every node (30 pods a node), then
    /// workloads of 10 replicas (one StatefulSet in eight, the rest Deployments), 500 pods a
    /// namespace.
    fn new(n: u32) -> Cluster {
        let nodes = (n / 30).max(3);
        let mut c = Cluster {
            namespaces: vec!["kube-system".to_owned()],
            pods: Vec::with_capacity(n as usize),
            deployments: Vec::new(),
            stateful_sets: Vec::new(),
            daemon_sets: Vec::new(),
            rendered: Default::default(),
            template: pod_template(),
            nodes,
        };
        for (d, name) in ["node-exporter", "fluent-bit"].into_iter().enumerate() {
            let per = nodes.min(n / 8);
            c.daemon_sets.push(Workload {
                namespace: 0,
                name: name.to_owned(),
                replicas: per,
                hash: suffix(77 + d as u64, 10),
            });
            for node in 0..per {
                c.pods.push(PodSlot {
                    namespace: 0,
                    owner: Owner::DaemonSet(d as u32),
                    ordinal: node,
                    node,
                });
            }
        }
        let mut k = 0u32;
        while (c.pods.len() as u32) < n {
            let ns =
                1 + (c.pods.len() as u32).saturating_sub(c.daemon_sets.len() as u32 * nodes) / 500;
            while c.namespaces.len() as u32 <= ns {
                c.namespaces.push(format!("team-{:03}", c.namespaces.len()));
            }
            let replicas = 10.min(n - c.pods.len() as u32);
            let w = Workload {
                namespace: ns,
                name: format!("app-{k:05}"),
                replicas,
                hash: suffix(u64::from(k), 10),
            };
            let owner = if k % 8 == 7 {
                c.stateful_sets.push(w);
                Owner::StatefulSet(c.stateful_sets.len() as u32 - 1)
            } else {
                c.deployments.push(w);
                Owner::Deployment(c.deployments.len() as u32 - 1)
            };
            for ordinal in 0..replicas {
                let i = c.pods.len() as u32;
                c.pods.push(PodSlot {
                    namespace: ns,
                    owner,
                    ordinal,
                    node: splitmix(u64::from(i)) as u32 % nodes,
                });
            }
            k += 1;
        }
        c.render();
        c
    }

    fn render(&mut self) {
        let mut rs = Vec::new();
        let mut deps = Vec::new();
        let mut pdbs = Vec::new();
        for (i, d) in self.deployments.iter().enumerate() {
            let ns = &self.namespaces[d.namespace as usize];
            let labels = json!({ "app": d.name, "app.kubernetes.io/part-of": ns });
            deps.push((
                d.namespace,
                workload_json(
                    "Deployment", "apps/v1", ns, &d.name, labels.clone(), None,
                    json!({ "replicas": d.replicas, "revisionHistoryLimit": 10, "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" } } }),
                    json!({ "replicas": d.replicas, "readyReplicas": d.replicas, "availableReplicas": d.replicas, "updatedReplicas": d.replicas, "observedGeneration": 3 }),
                ),
            ));
            // The current ReplicaSet and two old ones scaled to 0, as revisionHistoryLimit keeps.
            for (rev, hash) in [
                d.hash.clone(),
                suffix(1_000_000 + i as u64, 10),
                suffix(2_000_000 + i as u64, 10),
            ]
            .into_iter()
            .enumerate()
            {
                let mut l = labels.clone();
                l["pod-template-hash"] = hash.clone().into();
                let replicas = if rev == 0 { d.replicas } else { 0 };
                rs.push((
                    d.namespace,
                    workload_json(
                        "ReplicaSet", "apps/v1", ns, &format!("{}-{hash}", d.name), l,
                        Some(json!({ "apiVersion": "apps/v1", "kind": "Deployment", "name": d.name, "uid": uid(2, i as u64), "controller": true, "blockOwnerDeletion": true })),
                        json!({ "replicas": replicas }),
                        json!({ "replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "fullyLabeledReplicas": replicas, "observedGeneration": 3 }),
                    ),
                ));
            }
            if i % 2 == 0 {
                pdbs.push((
                    d.namespace,
                    serde_json::to_string(&json!({
                        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                        "metadata": { "name": d.name, "namespace": ns, "uid": uid(3, i as u64), "resourceVersion": "900", "generation": 1 },
                        "spec": { "maxUnavailable": 1, "selector": { "matchLabels": { "app": d.name } } },
                        "status": { "currentHealthy": d.replicas, "desiredHealthy": d.replicas.saturating_sub(1), "disruptionsAllowed": 1, "expectedPods": d.replicas, "observedGeneration": 1 },
                    }))
                    .expect("serializable"),
                ));
            }
        }
        let sts = self
            .stateful_sets
            .iter()
            .map(|s| {
                let ns = &self.namespaces[s.namespace as usize];
                (
                    s.namespace,
                    workload_json(
                        "StatefulSet", "apps/v1", ns, &s.name, json!({ "app": s.name }), None,
                        json!({ "replicas": s.replicas, "serviceName": s.name, "podManagementPolicy": "OrderedReady" }),
                        json!({ "replicas": s.replicas, "readyReplicas": s.replicas, "currentReplicas": s.replicas, "updatedReplicas": s.replicas, "currentRevision": format!("{}-{}", s.name, s.hash), "observedGeneration": 3 }),
                    ),
                )
            })
            .collect();
        let ds = self
            .daemon_sets
            .iter()
            .map(|d| {
                (
                    0,
                    workload_json(
                        "DaemonSet", "apps/v1", "kube-system", &d.name, json!({ "app": d.name }), None,
                        json!({ "updateStrategy": { "type": "RollingUpdate" } }),
                        json!({ "desiredNumberScheduled": d.replicas, "currentNumberScheduled": d.replicas, "numberReady": d.replicas, "numberAvailable": d.replicas, "numberMisscheduled": 0, "observedGeneration": 3 }),
                    ),
                )
            })
            .collect();
        self.rendered.insert("replicasets", rs);
        self.rendered.insert("deployments", deps);
        self.rendered.insert("statefulsets", sts);
        self.rendered.insert("daemonsets", ds);
        self.rendered.insert("poddisruptionbudgets", pdbs);
    }

    fn write_pod(&self, i: usize, out: &mut Vec<u8>) {
        let p = self.pods[i];
        let ns = &self.namespaces[p.namespace as usize];
        let (name, generate_name, labels, owners, owner_uid) = match p.owner {
            Owner::Deployment(d) => {
                let w = &self.deployments[d as usize];
                let base = format!("{}-{}-", w.name, w.hash);
                let owner_uid = uid(4, u64::from(d));
                (
                    format!("{base}{}", suffix(i as u64, 5)),
                    base,
                    json!({ "app": w.name, "app.kubernetes.io/name": w.name, "app.kubernetes.io/part-of": ns, "pod-template-hash": w.hash, "version": "v2.14.1" }),
                    json!([{ "apiVersion": "apps/v1", "blockOwnerDeletion": true, "controller": true, "kind": "ReplicaSet", "name": format!("{}-{}", w.name, w.hash), "uid": owner_uid }]),
                    owner_uid,
                )
            }
            Owner::StatefulSet(s) => {
                let w = &self.stateful_sets[s as usize];
                let name = format!("{}-{}", w.name, p.ordinal);
                let owner_uid = uid(5, u64::from(s));
                (
                    name.clone(),
                    format!("{}-", w.name),
                    json!({ "app": w.name, "apps.kubernetes.io/pod-index": p.ordinal.to_string(), "controller-revision-hash": format!("{}-{}", w.name, w.hash), "statefulset.kubernetes.io/pod-name": name }),
                    json!([{ "apiVersion": "apps/v1", "blockOwnerDeletion": true, "controller": true, "kind": "StatefulSet", "name": w.name, "uid": owner_uid }]),
                    owner_uid,
                )
            }
            Owner::DaemonSet(d) => {
                let w = &self.daemon_sets[d as usize];
                let owner_uid = uid(6, u64::from(d));
                (
                    format!("{}-{}", w.name, suffix(i as u64, 5)),
                    format!("{}-", w.name),
                    json!({ "app": w.name, "controller-revision-hash": w.hash, "pod-template-generation": "3" }),
                    json!([{ "apiVersion": "apps/v1", "blockOwnerDeletion": true, "controller": true, "kind": "DaemonSet", "name": w.name, "uid": owner_uid }]),
                    owner_uid,
                )
            }
        };
        let ip =
            |base: u32, x: u32| format!("10.{}.{}.{}", base + (x >> 16), (x >> 8) & 0xff, x & 0xff);
        for piece in &self.template {
            match piece {
                Piece::Lit(s) => out.extend_from_slice(s.as_bytes()),
                Piece::Text(h) => match h.as_str() {
                    "owner_uid" => out.extend_from_slice(owner_uid.as_bytes()),
                    "pod_ip" => out.extend_from_slice(ip(42, i as u32).as_bytes()),
                    other => panic!("unknown hole {other}"),
                },
                Piece::Json(h) => {
                    let v: Value = match h.as_str() {
                        "name" => name.as_str().into(),
                        "namespace" => ns.as_str().into(),
                        "uid" => uid(1, i as u64).into(),
                        "generate_name" => generate_name.as_str().into(),
                        "labels" => labels.clone(),
                        "owners" => owners.clone(),
                        "rv" => (1000 - (i % 100)).to_string().into(),
                        "node" => format!("node-{:05}", p.node).into(),
                        "pod_ip" => ip(42, i as u32).into(),
                        "host_ip" => ip(0, p.node).into(),
                        "container_id" => format!(
                            "containerd://{:016x}{:016x}{:016x}{:016x}",
                            splitmix(i as u64),
                            splitmix(i as u64 + 1),
                            splitmix(i as u64 + 2),
                            splitmix(i as u64 + 3)
                        )
                        .into(),
                        other => panic!("unknown hole {other}"),
                    };
                    serde_json::to_writer(&mut *out, &v).expect("writable");
                }
            }
        }
    }
}

impl Objects for Cluster {
    fn len(&self, plural: &str) -> usize {
        match plural {
            "pods" => self.pods.len(),
            other => self.rendered.get(other).map_or(0, Vec::len),
        }
    }
    fn namespace(&self, plural: &str, i: usize) -> String {
        let ns = match plural {
            "pods" => self.pods[i].namespace,
            other => self.rendered[other][i].0,
        };
        self.namespaces[ns as usize].clone()
    }
    fn has_label(&self, _: &str, _: usize, _: &str, _: &str) -> bool {
        true
    }
    fn write(&self, plural: &str, i: usize, out: &mut Vec<u8>) {
        match plural {
            "pods" => self.write_pod(i, out),
            other => out.extend_from_slice(self.rendered[other][i].1.as_bytes()),
        }
    }
}

// -------------------------------------------------------------------------------------------
// Measuring.
// -------------------------------------------------------------------------------------------

/// (VmRSS, VmHWM) in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// `serve --pods N [--no-watch-list]`: the fake API server; prints its URL, then serves.
fn serve(args: &[String]) {
    let n: u32 = arg(args, "--pods")
        .and_then(|s| s.parse().ok())
        .expect("--pods N");
    let watch_list = !args.iter().any(|a| a == "--no-watch-list");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let cluster = Arc::new(Cluster::new(n));
        let server = FakeApiServer::start(cluster.clone(), Options { watch_list }, 0).await;
        let json_bytes = if cluster.pods.is_empty() {
            0
        } else {
            let mut out = Vec::new();
            cluster.write_pod(cluster.pods.len() / 2, &mut out);
            out.len()
        };
        println!(
            "{} pods={} replicasets={} deployments={} statefulsets={} daemonsets={} pdbs={} nodes={} pod_json_bytes={json_bytes}",
            server.url(),
            cluster.len("pods"),
            cluster.len("replicasets"),
            cluster.len("deployments"),
            cluster.len("statefulsets"),
            cluster.len("daemonsets"),
            cluster.len("poddisruptionbudgets"),
            cluster.nodes,
        );
        std::io::stdout().flush().expect("stdout");
        std::future::pending::<()>().await;
    });
}

/// `view --url URL [--paginated]`: the view alone, in this process.
fn view(args: &[String]) {
    use teflon_k8s::{InitialList, KubeClusterView, ViewConfig};
    let url = arg(args, "--url").expect("--url").to_owned();
    let initial_list = if args.iter().any(|a| a == "--paginated") {
        InitialList::Paginated
    } else {
        InitialList::Streaming
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let args = args.to_vec();
    rt.block_on(async move {
        let args = &args;
        let client = kube::Client::try_from(kube::Config::new(url.parse().expect("a URL")))
            .expect("a client");
        let pid = std::process::id();
        let (before, _) = rss_kib(pid);
        let t0 = Instant::now();
        let mut config = ViewConfig {
            initial_list,
            ..ViewConfig::default()
        };
        if let Some(n) = arg(args, "--page-size").and_then(|s| s.parse().ok()) {
            config.page_size = n;
        }
        let view = KubeClusterView::start(client, &config);
        view.wait_synced().await;
        let synced = t0.elapsed();
        let (after, peak) = rss_kib(pid);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (settled, _) = rss_kib(pid);
        let c = view.counts();
        println!(
            "{} {} {} {} {} {}",
            synced.as_millis(),
            before,
            after,
            settled,
            peak,
            c.pods
        );
    });
}

fn spawn_self(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().expect("this bench"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn")
}

fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    line.trim().to_owned()
}

fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

struct ServerRun {
    synced: Duration,
    rss: u64,
    settled: u64,
    peak: u64,
}

/// The real binary (or `bin`) against the fake API server at `url`.
fn run_server(url: &str, bin: &str) -> ServerRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    std::fs::write(dir.path().join("policies.yaml"), POLICIES).expect("policies");
    std::fs::write(
        dir.path().join("kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"{url}\"}}}}]\nusers: [{{name: anonymous, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: anonymous}}}}]\ncurrent-context: fake\n"
        ),
    )
    .expect("kubeconfig");
    std::fs::write(
        dir.path().join("config.yaml"),
        format!(
            "listen: \"{listen}\"\npolicies: {}\nauth: none\ncluster: {{type: kube}}\naudit_log: {}\n",
            dir.path().join("policies.yaml").display(),
            dir.path().join("audit.jsonl").display(),
        ),
    )
    .expect("config");
    let t0 = Instant::now();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(dir.path().join("config.yaml"))
        .env("KUBECONFIG", dir.path().join("kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("POD_NAME")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("teflon-server");
    let synced = loop {
        if http_status(&listen, "/readyz") == Some(200) {
            break t0.elapsed();
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("teflon-server exited: {status}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "teflon-server never got ready"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let (rss, _) = rss_kib(child.id());
    std::thread::sleep(Duration::from_secs(2));
    let (settled, peak) = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    ServerRun {
        synced,
        rss,
        settled,
        peak,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => return serve(&args),
        Some("view") => return view(&args),
        _ => {}
    }
    let sizes: Vec<u32> = arg(&args, "--sizes")
        .unwrap_or("1000,20000,100000")
        .split(',')
        .map(|s| s.trim().parse().expect("sizes: 1000,20000"))
        .collect();
    // Another build of teflon-server to compare with (`--server-bin PATH`).
    let bin = arg(&args, "--server-bin")
        .unwrap_or(env!("CARGO_BIN_EXE_teflon-server"))
        .to_owned();
    // `--no-view`: the server only.
    let with_view = !args.iter().any(|a| a == "--no-view");
    let modes: Vec<bool> = match arg(&args, "--watch-list").unwrap_or("both") {
        "on" => vec![true],
        "off" => vec![false],
        _ => vec![true, false],
    };
    println!(
        "| pods | streaming lists | pod JSON | view: synced | view: RSS before → synced (peak) | view: per pod | teflon-server: /readyz 200 | teflon-server: RSS synced / +2 s (peak) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &sizes {
        for &watch_list in &modes {
            let n_s = n.to_string();
            let mut serve_args = vec!["serve", "--pods", n_s.as_str()];
            if !watch_list {
                serve_args.push("--no-watch-list");
            }
            let mut server = spawn_self(&serve_args);
            let banner = first_line(&mut server);
            let url = banner.split_whitespace().next().expect("a URL").to_owned();
            let pod_bytes = banner
                .split_whitespace()
                .find_map(|w| w.strip_prefix("pod_json_bytes="))
                .unwrap_or("?")
                .to_owned();
            eprintln!("fake API server: {banner}");

            let view = if with_view {
                let mut v = spawn_self(&["view", "--url", &url]);
                let line = first_line(&mut v);
                let _ = v.wait();
                let f: Vec<u64> = line
                    .split_whitespace()
                    .map(|x| x.parse().expect("numbers"))
                    .collect();
                let (ms, before, after, settled, peak, held) = (f[0], f[1], f[2], f[3], f[4], f[5]);
                assert_eq!(held, u64::from(n), "the view holds every pod");
                let per_pod = (settled.saturating_sub(before) * 1024) as f64 / f64::from(n.max(1));
                format!(
                    "{:.2} s | {:.1} → {:.1} MiB ({:.1}) | {per_pod:.0} B",
                    ms as f64 / 1000.0,
                    mib(before),
                    mib(settled.max(after)),
                    mib(peak),
                )
            } else {
                "– | – | –".to_owned()
            };

            let s = run_server(&url, &bin);
            let _ = server.kill();
            let _ = server.wait();
            println!(
                "| {n} | {} | {pod_bytes} B | {view} | {:.2} s | {:.1} / {:.1} MiB ({:.1}) |",
                if watch_list {
                    "on"
                } else {
                    "off (422, paginated)"
                },
                s.synced.as_secs_f64(),
                mib(s.rss),
                mib(s.settled),
                mib(s.peak),
            );
        }
    }
}
