//! A local HTTP(S) server that plays the API server for tests and benches, so that Teflon's
//! calls go through the whole production client stack ([`crate::client::from_config`]:
//! connection pool, timeouts, TLS, the layers `Client::new(mock)` skips) and not a mock
//! service. It records every request (method, path, query, content type, body, connection)
//! and answers what the test's responder says, typically real API JSON.
//!
//! Behind the `test-util` feature; not for production use.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`…
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string (empty when none).
    pub query: String,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// Which accepted connection carried it (0-based, in accept order).
    pub connection: u64,
}

impl Request {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// `query` has `key=value` among its parameters.
    pub fn has_param(&self, key: &str, value: &str) -> bool {
        self.query
            .split('&')
            .any(|kv| kv.split_once('=') == Some((key, value)))
    }
}

/// How to answer a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// This status and JSON body.
    Json(u16, String),
    /// Never answer (the client's attempt times out).
    Hang,
    /// `200` with a body that never ends and sends nothing (a quiet watch).
    OpenStream,
}

impl Reply {
    /// `200` with this JSON.
    pub fn ok(body: impl Into<String>) -> Self {
        Reply::Json(200, body.into())
    }
}

/// Decides the answer to each request.
pub type Responder = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// How the server runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Listen here (default: a free port on 127.0.0.1). Starting a server again on the
    /// address of one that was stopped plays an API server coming back after an outage.
    pub addr: Option<SocketAddr>,
    /// Serve HTTPS with a self-signed certificate for `127.0.0.1` and `localhost`
    /// ([`FakeApiServer::config`] trusts it).
    pub tls: bool,
    /// Close connections idle this long (kube-apiserver: 90 s). Default: never.
    pub idle_timeout: Option<Duration>,
}

#[derive(Debug, Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    connections: AtomicU64,
}

/// A running fake API server; stopped when dropped.
#[derive(Debug)]
pub struct FakeApiServer {
    addr: SocketAddr,
    ca_der: Option<Vec<u8>>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

type ReplyBody = BoxBody<Bytes, Infallible>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn reply_body(reply: Reply) -> Option<hyper::Response<ReplyBody>> {
    let (status, body) = match reply {
        Reply::Hang => return None,
        Reply::OpenStream => {
            let pending = futures::stream::pending::<Result<Frame<Bytes>, Infallible>>();
            return hyper::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(StreamBody::new(pending).boxed())
                .ok();
        }
        Reply::Json(status, body) => (status, body),
    };
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .ok()
}

impl FakeApiServer {
    /// A plain-HTTP server on a free local port.
    pub async fn start(
        respond: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        Self::start_with(Options::default(), Arc::new(respond)).await
    }

    /// A server as `options` say.
    pub async fn start_with(options: Options, respond: Responder) -> std::io::Result<Self> {
        let addr = options
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (acceptor, ca_der) = if options.tls {
            let (acceptor, ca) = tls_acceptor()?;
            (Some(acceptor), Some(ca))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let id = state.connections.fetch_add(1, Ordering::SeqCst);
                let state = state.clone();
                let respond = respond.clone();
                let acceptor = acceptor.clone();
                let idle = options.idle_timeout;
                connections.spawn(async move {
                    let service = service_fn(move |req: hyper::Request<Incoming>| {
                        let state = state.clone();
                        let respond = respond.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let request = Request {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                query: parts.uri.query().unwrap_or_default().to_owned(),
                                content_type: parts
                                    .headers
                                    .get(http::header::CONTENT_TYPE)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned),
                                body,
                                connection: id,
                            };
                            let reply = respond(&request);
                            lock(&state.requests).push(request);
                            match reply_body(reply) {
                                Some(r) => Ok::<_, Infallible>(r),
                                None => std::future::pending().await,
                            }
                        }
                    });
                    let mut builder = http1::Builder::new();
                    builder.timer(TokioTimer::new());
                    // The header timeout also runs while a kept-alive connection waits for
                    // its next request: an idle timeout.
                    builder.header_read_timeout(idle);
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(FakeApiServer {
            addr,
            ca_der,
            shared,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube `Config` for this server (trusting its certificate when it serves HTTPS).
    pub fn config(&self) -> kube::Config {
        let scheme = if self.ca_der.is_some() {
            "https"
        } else {
            "http"
        };
        let url: http::Uri = format!("{scheme}://{}", self.addr)
            .parse()
            .unwrap_or_default();
        let mut config = kube::Config::new(url);
        config.root_cert = self.ca_der.clone().map(|der| vec![der]);
        config
    }

    /// Teflon's production client ([`crate::client::from_config`]) for this server.
    pub fn client(&self) -> Result<kube::Client, crate::client::ClientError> {
        crate::client::from_config(self.config())
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Stop listening and drop every connection (an API server outage).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_acceptor() -> std::io::Result<(tokio_rustls::TlsAcceptor, Vec<u8>)> {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let err = |e: String| std::io::Error::other(e);
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(|e| err(e.to_string()))?;
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .map_err(|e| err(e.to_string()))?;
    Ok((
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        cert.to_vec(),
    ))
}
