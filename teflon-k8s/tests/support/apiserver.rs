//! A local fake kube-apiserver over real HTTP/1.1, for the view's tests and the scale bench:
//! clients reach it through kube's own client stack (`Client::try_from(Config)`), not a mock.
//!
//! It serves the six kinds the view watches, as the API server does:
//! - LIST with `limit` pages and opaque `continue` tokens, `metadata.resourceVersion` on the list;
//! - WATCH from a resourceVersion, held open, carrying whatever [`FakeApiServer::push`] sends;
//! - streaming lists (`sendInitialEvents=true`): every object as `ADDED`, then the `BOOKMARK`
//!   annotated `k8s.io/initial-events-end`; or, with `watch_list: false` (the `WatchList`
//!   feature gate off, as in Kubernetes 1.33), the 422 `Invalid` Status kube-apiserver answers.
//!
//! Objects come from an [`Objects`] source that writes each one's JSON on demand, so a bench
//! can serve 100 000 pods without holding them.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

/// The resources the view watches: (URL prefix, plural, list kind).
pub const RESOURCES: [(&str, &str, &str, &str); 6] = [
    ("/api/v1", "pods", "PodList", "v1"),
    ("/apis/apps/v1", "replicasets", "ReplicaSetList", "apps/v1"),
    ("/apis/apps/v1", "deployments", "DeploymentList", "apps/v1"),
    (
        "/apis/apps/v1",
        "statefulsets",
        "StatefulSetList",
        "apps/v1",
    ),
    ("/apis/apps/v1", "daemonsets", "DaemonSetList", "apps/v1"),
    (
        "/apis/policy/v1",
        "poddisruptionbudgets",
        "PodDisruptionBudgetList",
        "policy/v1",
    ),
];

/// Where the objects come from.
pub trait Objects: Send + Sync + 'static {
    /// How many objects of `plural` there are.
    fn len(&self, plural: &str) -> usize;
    /// The namespace of object `i`.
    fn namespace(&self, plural: &str, i: usize) -> String;
    /// Whether object `i` carries label `key=value` (for `labelSelector=key=value`).
    fn has_label(&self, plural: &str, i: usize, key: &str, value: &str) -> bool;
    /// Append object `i`'s JSON (with `kind` and `apiVersion`) to `out`.
    fn write(&self, plural: &str, i: usize, out: &mut Vec<u8>);
}

/// Objects held as JSON values, for tests.
#[derive(Debug, Default, Clone)]
pub struct StaticObjects {
    by_plural: std::collections::HashMap<String, Vec<serde_json::Value>>,
}

impl StaticObjects {
    /// Add an object (any k8s-openapi type), under its kind's plural.
    pub fn with<K>(mut self, object: &K) -> Self
    where
        K: k8s_openapi::Resource + serde::Serialize,
    {
        let mut v = serde_json::to_value(object).expect("serializable");
        v["kind"] = K::KIND.into();
        v["apiVersion"] = K::API_VERSION.into();
        self.by_plural
            .entry(K::URL_PATH_SEGMENT.to_owned())
            .or_default()
            .push(v);
        self
    }
}

impl Objects for StaticObjects {
    fn len(&self, plural: &str) -> usize {
        self.by_plural.get(plural).map_or(0, Vec::len)
    }
    fn namespace(&self, plural: &str, i: usize) -> String {
        self.by_plural[plural][i]["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
    fn has_label(&self, plural: &str, i: usize, key: &str, value: &str) -> bool {
        self.by_plural[plural][i]["metadata"]["labels"][key].as_str() == Some(value)
    }
    fn write(&self, plural: &str, i: usize, out: &mut Vec<u8>) {
        serde_json::to_writer(out, &self.by_plural[plural][i]).expect("writable");
    }
}

/// How the server behaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Streaming lists supported (the `WatchList` feature gate on).
    pub watch_list: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { watch_list: true }
    }
}

/// A request the server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Raw query string.
    pub query: String,
}

impl Seen {
    /// The value of query parameter `name`, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| percent_decode(v))
        })
    }
    /// A watch request.
    pub fn is_watch(&self) -> bool {
        self.param("watch").as_deref() == Some("true")
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 3 <= b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(x) => {
                        out.push(x);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct State {
    objects: Arc<dyn Objects>,
    options: Options,
    seen: Mutex<Vec<Seen>>,
    arrived: tokio::sync::Notify,
    events: broadcast::Sender<(String, Bytes)>,
    resource_version: AtomicU64,
}

/// A running fake API server; stops when dropped.
pub struct FakeApiServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApiServer {
    /// Listen on `127.0.0.1:port` (0 = any free port) and serve `objects`.
    pub async fn start(objects: Arc<dyn Objects>, options: Options, port: u16) -> FakeApiServer {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let (events, _) = broadcast::channel(1024);
        let state = Arc::new(State {
            objects,
            options,
            seen: Mutex::new(Vec::new()),
            arrived: tokio::sync::Notify::new(),
            events,
            resource_version: AtomicU64::new(1000),
        });
        let s = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let s = Arc::clone(&s);
                        async move { Ok::<_, Infallible>(handle(&s, req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeApiServer { addr, state, task }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }

    /// Wait until a request matching `pred` has arrived; returns it.
    pub async fn wait_for(&self, pred: impl Fn(&Seen) -> bool) -> Seen {
        loop {
            let arrived = self.state.arrived.notified();
            if let Some(s) = self.seen().into_iter().find(|s| pred(s)) {
                return s;
            }
            arrived.await;
        }
    }

    /// Send a watch event (`{"type":"ADDED","object":{…}}`) to every open watch of `plural`;
    /// `object` gets the next resourceVersion.
    pub fn push(&self, plural: &str, kind: &str, mut object: serde_json::Value) {
        let rv = self.state.resource_version.fetch_add(1, Ordering::SeqCst) + 1;
        object["metadata"]["resourceVersion"] = rv.to_string().into();
        let mut line = serde_json::to_vec(&serde_json::json!({ "type": kind, "object": object }))
            .expect("serializable");
        line.push(b'\n');
        let _ = self
            .state
            .events
            .send((plural.to_owned(), Bytes::from(line)));
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn full(status: u16, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .expect("a response")
}

/// `/api/v1/pods`, `/api/v1/namespaces/ns/pods` … → (namespace, plural, list kind, apiVersion).
fn route(path: &str) -> Option<(Option<String>, &'static str, &'static str, &'static str)> {
    for (prefix, plural, list_kind, api_version) in RESOURCES {
        let Some(rest) = path.strip_prefix(prefix) else {
            continue;
        };
        if rest == format!("/{plural}") {
            return Some((None, plural, list_kind, api_version));
        }
        if let Some(ns_rest) = rest.strip_prefix("/namespaces/")
            && let Some((ns, tail)) = ns_rest.split_once('/')
            && tail == plural
        {
            return Some((Some(ns.to_owned()), plural, list_kind, api_version));
        }
    }
    None
}

fn status(code: u16, reason: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    }))
    .expect("serializable")
}

/// What kube-apiserver answers a `sendInitialEvents` watch when the WatchList feature gate is
/// off (`errors.NewInvalid` of the ListOptions from `ValidateListOptions`).
pub const WATCH_LIST_DISABLED: &str =
    include_str!("../fixtures/watch-list-disabled-422-status.json");

fn handle(s: &State, req: Request<Incoming>) -> Response<Body> {
    let seen = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or_default().to_owned(),
    };
    s.seen.lock().expect("lock").push(seen.clone());
    s.arrived.notify_waiters();
    let Some((namespace, plural, list_kind, api_version)) = route(&seen.path) else {
        return full(
            404,
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
    };
    if seen.method != "GET" {
        return full(405, status(405, "MethodNotAllowed", "only GET is served"));
    }
    let selector = seen.param("labelSelector").and_then(|sel| {
        sel.split_once('=')
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
    });
    let matching = {
        let objects = Arc::clone(&s.objects);
        move |i: usize| {
            namespace
                .as_deref()
                .is_none_or(|ns| objects.namespace(plural, i) == ns)
                && selector
                    .as_ref()
                    .is_none_or(|(k, v)| objects.has_label(plural, i, k, v))
        }
    };
    let rv = s.resource_version.load(Ordering::SeqCst);
    if seen.is_watch() {
        let initial = seen.param("sendInitialEvents").as_deref() == Some("true");
        if initial && !s.options.watch_list {
            return full(422, WATCH_LIST_DISABLED.trim().as_bytes().to_vec());
        }
        let kind = list_kind.trim_end_matches("List").to_owned();
        let objects = Arc::clone(&s.objects);
        let total = objects.len(plural);
        // Initial events, one per frame as kube-apiserver flushes them, then the end bookmark.
        let first = futures::stream::unfold(0usize, move |mut i| {
            let objects = Arc::clone(&objects);
            let matching = matching.clone();
            let kind = kind.clone();
            async move {
                if !initial || i > total {
                    return None;
                }
                let mut out = Vec::new();
                if i == total {
                    out.extend_from_slice(
                        serde_json::to_string(&serde_json::json!({
                            "type": "BOOKMARK",
                            "object": { "kind": kind, "apiVersion": api_version, "metadata": {
                                "resourceVersion": rv.to_string(),
                                "annotations": { "k8s.io/initial-events-end": "true" },
                            }},
                        }))
                        .expect("serializable")
                        .as_bytes(),
                    );
                    out.push(b'\n');
                    return Some((Ok(Frame::data(Bytes::from(out))), total + 1));
                }
                while i < total && !matching(i) {
                    i += 1;
                }
                if i < total {
                    out.extend_from_slice(b"{\"type\":\"ADDED\",\"object\":");
                    objects.write(plural, i, &mut out);
                    out.extend_from_slice(b"}\n");
                    i += 1;
                }
                Some((Ok(Frame::data(Bytes::from(out))), i))
            }
        });
        let rx = s.events.subscribe();
        let later = futures::stream::unfold(rx, move |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok((p, line)) if p == plural => return Some((Ok(Frame::data(line)), rx)),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let body = StreamBody::new(first.chain(later).boxed());
        return Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(BodyExt::boxed_unsync(body))
            .expect("a response");
    }
    // A paginated LIST: `continue` is the index to resume scanning at.
    let limit = seen
        .param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let mut i = match seen.param("continue") {
        None => 0,
        Some(token) => match token.strip_prefix("i:").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return full(400, status(400, "BadRequest", "invalid continue token")),
        },
    };
    let total = s.objects.len(plural);
    let mut out = Vec::with_capacity(64 * 1024);
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(list_kind.as_bytes());
    out.extend_from_slice(b"\",\"apiVersion\":\"");
    out.extend_from_slice(api_version.as_bytes());
    out.extend_from_slice(b"\",\"items\":[");
    let mut n = 0;
    while i < total && n < limit {
        if matching(i) {
            if n > 0 {
                out.push(b',');
            }
            s.objects.write(plural, i, &mut out);
            n += 1;
        }
        i += 1;
    }
    let more = (i..total).any(&matching);
    out.extend_from_slice(b"],\"metadata\":{\"resourceVersion\":\"");
    out.extend_from_slice(rv.to_string().as_bytes());
    out.push(b'"');
    if more {
        out.extend_from_slice(format!(",\"continue\":\"i:{i}\"").as_bytes());
    }
    out.extend_from_slice(b"}}");
    full(200, out)
}
