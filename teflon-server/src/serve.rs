//! Serving the warp filter over TCP or TLS (rustls, with optional client certificates) through
//! hyper-util, with graceful shutdown, within a listener's [`ConnectionLimits`] (see
//! [`crate::connections`]). warp 0.4 has no TLS of its own; the rustls configuration comes
//! from [`crate::tls`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use socket2::TcpKeepalive;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use teflon_metrics::events::ConnectionClosed;

use crate::auth::VerifiedClientCert;
use crate::connections::{
    Admission, Conn, ConnHandle, ConnectionLimits, Registry, TrackedIo, Watchdog,
};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a connection's read buffer holds. hyper grows it with the reads (to the size of
/// a large batch) and keeps it while the connection lives, since it reads ahead to notice a
/// peer that closes while a response is pending: 256 keep-alive senders of 160 KiB batches
/// held 54 MiB of buffers that way (heaptrack). Headers must fit in it; bodies are read
/// through it in pieces of at most this size.
const READ_BUFFER_MAX: usize = 32 * 1024;
/// TCP keepalive on accepted connections: the connection of a sender whose node died without
/// closing it (no FIN, no RST) is closed after 60 s of silence and 9 unanswered probes 10 s
/// apart (Linux's default count), instead of holding a socket and a task forever. Live idle
/// keep-alive senders answer the probes and are not affected.
const KEEPALIVE: TcpKeepalive = TcpKeepalive::new()
    .with_time(Duration::from_secs(60))
    .with_interval(Duration::from_secs(10));
/// How long shutdown waits for open connections to finish their requests.
pub const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(15);

/// Socket options of an accepted connection (best effort: a failure only loses the option).
fn configure(stream: &tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&KEEPALIVE) {
        tracing::debug!(error = %e, "cannot set TCP keepalive");
    }
}

/// Connections refused at accept per second, at most (sustained).
pub const REFUSALS_PER_SEC: f64 = 1000.0;
/// Refusals in a burst before the rate applies.
const REFUSAL_BURST: f64 = 1000.0;

/// A token bucket of refusals at accept.
#[derive(Debug)]
struct RefusalBudget {
    tokens: f64,
    last: tokio::time::Instant,
}

impl RefusalBudget {
    fn new(now: tokio::time::Instant) -> Self {
        RefusalBudget {
            tokens: REFUSAL_BURST,
            last: now,
        }
    }

    /// Count a refusal at `now`; how long to stop accepting when the budget is spent.
    fn take(&mut self, now: tokio::time::Instant) -> Option<Duration> {
        let refill = now.duration_since(self.last).as_secs_f64() * REFUSALS_PER_SEC;
        self.tokens = (self.tokens + refill).min(REFUSAL_BURST) - 1.0;
        self.last = now;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / REFUSALS_PER_SEC))
    }
}

/// Close a connection refused at accept with a reset, so the client learns at once.
fn refuse(stream: tokio::net::TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Bind `addr` with an accept queue of `backlog` connections.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's `TcpListener::bind` does on Unix: a restart may rebind at once.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// HTTP/2 settings that keep a connection's buffered request data small: DATA beyond the
/// windows waits in the client until the handler reads (and so budgets) what came before.
const H2_STREAM_WINDOW: u32 = 16 * 1024;
/// The protocol's initial connection window (it cannot be lowered).
const H2_CONNECTION_WINDOW: u32 = 65_535;
const H2_MAX_STREAMS: u32 = 32;
const H2_MAX_SEND_BUF: usize = 64 * 1024;
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;

fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Timeouts are the watchdog's (see `connections`): hyper's header timer would also cut
    // kept-alive connections idle between requests.
    builder
        .http1()
        .max_buf_size(READ_BUFFER_MAX)
        .header_read_timeout(None);
    if limits.http2 {
        builder
            .http2()
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .adaptive_window(false)
            .max_concurrent_streams(H2_MAX_STREAMS)
            .max_send_buf_size(H2_MAX_SEND_BUF)
            .max_header_list_size(H2_MAX_HEADER_LIST);
        builder
    } else {
        builder.http1_only()
    }
}

/// Serve `routes` on `listener` with the custom-metrics API's limits (see
/// [`ConnectionLimits::metrics_api`]); see [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    routes: BoxedFilter<(Response,)>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    serve_with(
        listener,
        tls,
        routes,
        ConnectionLimits::metrics_api(),
        shutdown,
    )
    .await;
}

/// Serve `routes` on `listener` (TLS when `tls` is given) within `limits` until `shutdown`
/// resolves, then stop accepting and wait (bounded) for open connections to finish.
pub async fn serve_with(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    routes: BoxedFilter<(Response,)>,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let graceful = GracefulShutdown::new();
    let registry = Registry::new(limits);
    let builder = Arc::new(builder(&limits));
    let mut refusals = RefusalBudget::new(tokio::time::Instant::now());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and the like: give closing connections a moment.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let admitted = match registry.admit() {
            Admission::Admitted(a) => a,
            Admission::Refused => {
                tracing::debug!(%peer, max = limits.max_connections, "connection refused: at max_connections");
                refuse(stream);
                // A client reconnecting as fast as it is refused must not spend the server's
                // CPU (its quota, in the kit) on refusals: past the rate, stop accepting for a
                // moment and let the kernel's accept queue hold (or drop) the rest.
                if let Some(wait) = refusals.take(tokio::time::Instant::now()) {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = &mut shutdown => break,
                    }
                }
                continue;
            }
        };
        configure(&stream);
        let routes = routes.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let conn = admitted.conn().clone();
            let mut watchdog = Watchdog::new(conn.clone(), limits);
            let served = serve_connection(stream, tls, routes, &builder, watcher, conn);
            tokio::select! {
                biased;
                () = served => {}
                why = watchdog.expired() => {
                    tracing::debug!(%peer, reason = why.as_str(), "connection closed");
                    ConnectionClosed { listener: limits.listener, reason: why }.emit();
                }
            }
            drop(admitted);
        });
    }
    drop(listener);
    if tokio::time::timeout(GRACEFUL_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the graceful timeout; closing them");
    }
}

/// One connection: the TLS handshake when there is one, then HTTP.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    tls: Option<TlsAcceptor>,
    routes: BoxedFilter<(Response,)>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    conn: Arc<Conn>,
) {
    let peer = stream.peer_addr().ok();
    let io = TrackedIo::new(stream, conn.clone());
    let warp_svc = warp::service(routes);
    match tls {
        None => {
            let svc = request_service(warp_svc, conn, false);
            let served = builder.serve_connection(TokioIo::new(io), svc);
            if let Err(e) = watcher.watch(served.into_owned()).await {
                tracing::debug!(?peer, error = %e, "connection error");
            }
        }
        Some(acceptor) => {
            let tls_stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(?peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(?peer, "TLS handshake timed out");
                        return;
                    }
                };
            // rustls only completes the handshake with a certificate the CA verified.
            let verified = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            if verified {
                conn.authenticated();
            }
            let svc = request_service(warp_svc, conn, verified);
            let served = builder.serve_connection(TokioIo::new(tls_stream), svc);
            if let Err(e) = watcher.watch(served.into_owned()).await {
                tracing::debug!(?peer, error = %e, "connection error");
            }
        }
    }
}

/// The per-request service: counts the request in flight on its connection (until the
/// response is handed to hyper), and gives the routes the connection and its certificate.
fn request_service<S>(
    warp_svc: S,
    conn: Arc<Conn>,
    verified: bool,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send,
> + Clone
where
    S: tower::Service<
            http::Request<hyper::body::Incoming>,
            Response = Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        let in_flight = conn.request_started();
        let http2 = req.version() == http::Version::HTTP_2;
        req.extensions_mut().insert(ConnHandle {
            conn: conn.clone(),
            http2,
        });
        if verified {
            req.extensions_mut().insert(VerifiedClientCert);
        }
        let call = warp_svc.clone().oneshot(req);
        async move {
            let response = call.await;
            drop(in_flight);
            response
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_past_the_burst_are_paced_at_the_rate() {
        let t0 = tokio::time::Instant::now();
        let mut budget = RefusalBudget::new(t0);
        for _ in 0..1000 {
            assert_eq!(budget.take(t0), None, "the burst");
        }
        let wait = budget.take(t0).unwrap();
        assert_eq!(wait, Duration::from_millis(1));
        // Sustained: each refusal past the burst is followed by a pause of 1/rate.
        let t1 = t0 + wait;
        assert_eq!(budget.take(t1), Some(Duration::from_millis(1)));
        let t2 = t1 + Duration::from_micros(500);
        assert_eq!(budget.take(t2), Some(Duration::from_micros(1500)));
        // A quiet two seconds refill the burst.
        let t3 = t2 + Duration::from_secs(2);
        for _ in 0..1000 {
            assert_eq!(budget.take(t3), None);
        }
    }

    #[tokio::test]
    async fn accepted_connections_get_nodelay_and_tcp_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        configure(&accepted);
        assert!(accepted.nodelay().unwrap());
        let sock = socket2::SockRef::from(&accepted);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(60));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(10)
        );
    }
}
