//! The connections of a listener: how many may be open, how long each may wait for a request
//! head or sit idle, and which one gives its place to a new one.
//!
//! hyper's own `header_read_timeout` cannot be used for this: it also runs while a kept-alive
//! connection waits for its next request, so it would close idle connections after the header
//! timeout (seconds) instead of the idle timeout (which must outlast libcurl's 118 s reuse). So
//! each connection carries a [`Conn`] that its IO ([`TrackedIo`]), its requests
//! ([`Conn::request_started`]) and a [`Watchdog`] share:
//!
//! - from accept, and from the first byte after a response on a kept-alive HTTP/1 connection,
//!   the request head must arrive within `header_read_timeout`;
//! - while a request is in flight, nothing is timed here (the body has its own deadline);
//! - after a response, the connection may sit idle for `idle_timeout` (bytes written count as
//!   activity, so a response being read slowly is not cut; one not read at all is).
//!
//! [`Registry`] counts the open connections. Past `max_connections`, a new connection takes
//! the place of the oldest one that never sent an authenticated request, has none in flight
//! (a silent, trickling or unauthenticated idle connection) and is at least [`MIN_EVICT_AGE`]
//! old; when there is none it is refused at accept (closed with a reset). So however many
//! connections an unauthenticated client opens, file descriptors and memory stay bounded,
//! authenticated senders keep their connections, and a newcomer still gets in while the
//! connections in its way are only held open. The minimum age bounds the expensive path: at
//! most `max_connections` evictions per [`MIN_EVICT_AGE`], however fast a client reconnects;
//! past that, refusing costs an `accept` and a `close`.
//!
//! Size: about 470 lines before its tests, kept in one file: one listener's connection accounting
//! (cap, head and idle timers, eviction order), which work on the same table of connections.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use teflon_metrics::events::{ConnectionClose, ConnectionClosed, ConnectionsOpen};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::config::HttpConfig;

/// A listener's connection limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections, at most.
    pub max_connections: usize,
    /// The kernel's accept queue.
    pub accept_backlog: u32,
    /// Accept (or first byte after a response) → complete request head.
    pub header_read_timeout: Duration,
    /// Response → next request, at most.
    pub idle_timeout: Duration,
    /// Serve HTTP/2 too.
    pub http2: bool,
    /// The `listener` label of the connection metrics.
    pub listener: &'static str,
}

impl ConnectionLimits {
    /// The ingest listener's limits from `http:`.
    pub fn ingest(http: &HttpConfig) -> Self {
        ConnectionLimits {
            max_connections: http.max_connections,
            accept_backlog: http.accept_backlog,
            header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
            idle_timeout: Duration::from_secs(http.idle_timeout_secs),
            http2: http.http2,
            listener: "ingest",
        }
    }

    /// The custom-metrics API's: the defaults, with HTTP/2 (the kube-aggregator speaks it).
    pub fn metrics_api() -> Self {
        ConnectionLimits {
            http2: true,
            listener: "metrics_api",
            ..ConnectionLimits::ingest(&HttpConfig::default())
        }
    }
}

/// No request head is being read.
const NONE: u64 = u64::MAX;

/// A connection younger than this is never evicted (see the module docs).
pub const MIN_EVICT_AGE: Duration = Duration::from_secs(1);

/// One connection's state.
#[derive(Debug)]
pub struct Conn {
    accepted: Instant,
    http2: bool,
    in_flight: AtomicUsize,
    /// When the current request head began, as nanoseconds since `accepted` ([`NONE`]: no
    /// head is being read).
    head_started: AtomicU64,
    /// The last response finished or the last byte written, nanoseconds since `accepted`.
    last_active: AtomicU64,
    authenticated: AtomicBool,
    evicted: Notify,
    /// HTTP/2 streams of the connection read their small bodies one at a time (see
    /// [`crate::state::BodyBudget`]).
    small_bodies: tokio::sync::Semaphore,
}

impl Conn {
    fn new(http2: bool) -> Self {
        Conn {
            accepted: Instant::now(),
            http2,
            in_flight: AtomicUsize::new(0),
            // The first request head is due from accept.
            head_started: AtomicU64::new(0),
            last_active: AtomicU64::new(0),
            authenticated: AtomicBool::new(false),
            evicted: Notify::new(),
            small_bodies: tokio::sync::Semaphore::new(1),
        }
    }

    fn since_accepted(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_nanos()).unwrap_or(NONE - 1)
    }

    fn at(&self, nanos: u64) -> Instant {
        self.accepted + Duration::from_nanos(nanos)
    }

    /// A request head was read: the request is in flight until the guard drops.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The connection sent an authenticated request: it is never evicted for a newcomer.
    pub fn authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }

    fn read(&self) {
        // HTTP/2 reads are frames of any stream (pings, settings): only the idle time counts.
        if !self.http2
            && self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == NONE
        {
            self.head_started
                .store(self.since_accepted(), Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last_active
            .store(self.since_accepted(), Ordering::Relaxed);
    }

    fn evictable(&self) -> bool {
        !self.authenticated.load(Ordering::Relaxed) && self.in_flight.load(Ordering::Relaxed) == 0
    }

    /// When the connection is to be closed, and why; `None` while a request is in flight.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, ConnectionClose)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let head = self.head_started.load(Ordering::Relaxed);
        Some(if head != NONE {
            (
                self.at(head) + limits.header_read_timeout,
                ConnectionClose::HeaderTimeout,
            )
        } else {
            (
                self.at(self.last_active.load(Ordering::Relaxed)) + limits.idle_timeout,
                ConnectionClose::IdleTimeout,
            )
        })
    }
}

/// A request in flight on a connection (see [`Conn::request_started`]).
#[derive(Debug)]
pub struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.wrote();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection a request came on, in the request's extensions: the routes mark it
/// authenticated.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    /// The connection.
    pub conn: Arc<Conn>,
    /// The request is an HTTP/2 stream.
    pub http2: bool,
}

impl ConnHandle {
    /// For an HTTP/2 stream, the connection's turn to read a small body (streams of one
    /// connection take turns); `None` for HTTP/1, which reads one request at a time anyway.
    pub async fn small_body_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        if self.http2 {
            self.conn.small_bodies.acquire().await.ok()
        } else {
            None
        }
    }
}

/// A connection's IO, reporting reads and writes to its [`Conn`].
#[derive(Debug)]
pub struct TrackedIo<T> {
    inner: T,
    conn: Arc<Conn>,
}

impl<T> TrackedIo<T> {
    /// Track `inner` as `conn`'s IO.
    pub fn new(inner: T, conn: Arc<Conn>) -> Self {
        TrackedIo { inner, conn }
    }

    /// The wrapped IO.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Resolves when its connection is to be closed: a deadline of [`Conn`] passed, or the
/// registry evicted it. Polled beside the connection, in the same task, so it sees every
/// change the connection's IO and requests make; its timer is re-armed only when a deadline
/// moves earlier (a request head starting), and otherwise fires at the old deadline and
/// re-arms once, so a busy connection costs no timer work per request.
#[derive(Debug)]
pub struct Watchdog {
    conn: Arc<Conn>,
    limits: ConnectionLimits,
    sleep: Pin<Box<Sleep>>,
    armed: Instant,
}

impl Watchdog {
    /// Watch `conn` with `limits`.
    pub fn new(conn: Arc<Conn>, limits: ConnectionLimits) -> Self {
        let armed = conn
            .deadline(&limits)
            .map_or(Instant::now() + limits.idle_timeout, |(d, _)| d);
        Watchdog {
            conn,
            limits,
            sleep: Box::pin(tokio::time::sleep_until(armed)),
            armed,
        }
    }

    /// Resolves with the reason the connection must be closed.
    pub async fn expired(&mut self) -> ConnectionClose {
        let evicted = self.conn.clone();
        let evicted = evicted.evicted.notified();
        tokio::pin!(evicted);
        std::future::poll_fn(|cx| {
            if evicted.as_mut().poll(cx).is_ready() {
                return Poll::Ready(ConnectionClose::Evicted);
            }
            self.poll_deadline(cx)
        })
        .await
    }

    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<ConnectionClose> {
        loop {
            let deadline = self.conn.deadline(&self.limits);
            if let Some((at, _)) = deadline
                && at < self.armed
            {
                self.armed = at;
                self.sleep.as_mut().reset(at);
            }
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // The armed time passed: expired, unless activity moved the deadline on.
            match self.conn.deadline(&self.limits) {
                Some((at, why)) if at <= Instant::now() => return Poll::Ready(why),
                Some((at, _)) => self.armed = at,
                None => self.armed = Instant::now() + self.limits.idle_timeout,
            }
            self.sleep.as_mut().reset(self.armed);
        }
    }
}

/// What to do with a connection just accepted.
#[derive(Debug)]
pub enum Admission {
    /// Serve it.
    Admitted(Admitted),
    /// Close it at once: the listener is full of connections that may not be evicted.
    Refused,
}

/// A connection counted in its [`Registry`] until dropped.
#[derive(Debug)]
pub struct Admitted {
    conn: Arc<Conn>,
    registry: Arc<Registry>,
}

impl Admitted {
    /// Its state.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let open = self.registry.open.fetch_sub(1, Ordering::Relaxed) - 1;
        ConnectionsOpen {
            listener: self.registry.limits.listener,
            open,
        }
        .emit();
    }
}

/// The open connections of a listener.
#[derive(Debug)]
pub struct Registry {
    limits: ConnectionLimits,
    open: AtomicUsize,
    /// Connections that may be evicted, oldest first (authenticated and closed ones are
    /// dropped as they are met).
    candidates: Mutex<VecDeque<Weak<Conn>>>,
}

impl Registry {
    /// No connection yet.
    pub fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Registry {
            limits,
            open: AtomicUsize::new(0),
            candidates: Mutex::new(VecDeque::new()),
        })
    }

    /// Connections open now (those being closed included).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Admit a connection just accepted: at the limit, evict the oldest evictable one to
    /// make room, or refuse when there is none.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut candidates = self
            .candidates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.open.load(Ordering::Relaxed) >= self.limits.max_connections {
            let mut evicted = false;
            // Busy candidates go to the back; each is looked at once at most.
            for _ in 0..candidates.len() {
                let Some(weak) = candidates.pop_front() else {
                    break;
                };
                let Some(conn) = weak.upgrade() else { continue };
                if conn.authenticated.load(Ordering::Relaxed) {
                    continue;
                }
                if conn.evictable() {
                    if conn.accepted.elapsed() < MIN_EVICT_AGE {
                        // The oldest idle one is too young: so are the ones behind it.
                        candidates.push_front(weak);
                        break;
                    }
                    conn.evicted.notify_one();
                    evicted = true;
                    break;
                }
                candidates.push_back(weak);
            }
            if !evicted {
                drop(candidates);
                ConnectionClosed {
                    listener: self.limits.listener,
                    reason: ConnectionClose::Refused,
                }
                .emit();
                return Admission::Refused;
            }
        }
        let conn = Arc::new(Conn::new(self.limits.http2));
        candidates.push_back(Arc::downgrade(&conn));
        // Closed and authenticated connections leave the queue lazily; keep it near the limit.
        if candidates.len() > 2 * self.limits.max_connections.max(16) {
            candidates.retain(|w| {
                w.upgrade()
                    .is_some_and(|c| !c.authenticated.load(Ordering::Relaxed))
            });
        }
        drop(candidates);
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        ConnectionsOpen {
            listener: self.limits.listener,
            open,
        }
        .emit();
        Admission::Admitted(Admitted {
            conn,
            registry: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: max,
            accept_backlog: 16,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            http2: false,
            listener: "test",
        }
    }

    fn admitted(a: Admission) -> Admitted {
        match a {
            Admission::Admitted(a) => a,
            Admission::Refused => panic!("refused"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_expires_at_the_header_timeout() {
        let registry = Registry::new(limits(4));
        let a = admitted(registry.admit());
        let mut dog = Watchdog::new(a.conn().clone(), limits(4));
        let start = Instant::now();
        assert_eq!(dog.expired().await, ConnectionClose::HeaderTimeout);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_may_idle_for_the_idle_timeout_then_a_new_head_has_the_header_timeout()
     {
        let registry = Registry::new(limits(4));
        let a = admitted(registry.admit());
        let conn = a.conn().clone();
        let mut dog = Watchdog::new(conn.clone(), limits(4));
        let start = Instant::now();
        // A request 1 s after accept, answered 1 s later.
        tokio::time::sleep(Duration::from_secs(1)).await;
        conn.read();
        let req = conn.request_started();
        // In flight: no deadline, however long it takes.
        assert!(
            tokio::time::timeout(Duration::from_secs(500), dog.expired())
                .await
                .is_err()
        );
        drop(req);
        let answered = Instant::now();
        // Idle: 119 s is fine…
        assert!(
            tokio::time::timeout(Duration::from_secs(119), dog.expired())
                .await
                .is_err()
        );
        // …then the first byte of a new head: 10 s from it.
        conn.read();
        let head = Instant::now();
        assert_eq!(dog.expired().await, ConnectionClose::HeaderTimeout);
        assert_eq!(head.elapsed(), Duration::from_secs(10));
        assert_eq!(answered - start, Duration::from_secs(501));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_at_the_idle_timeout_counted_from_its_last_write() {
        let registry = Registry::new(limits(4));
        let a = admitted(registry.admit());
        let conn = a.conn().clone();
        let mut dog = Watchdog::new(conn.clone(), limits(4));
        conn.read();
        drop(conn.request_started());
        let answered = Instant::now();
        tokio::time::sleep(Duration::from_secs(60)).await;
        // A slow reader took the rest of the response 60 s later.
        conn.wrote();
        assert_eq!(dog.expired().await, ConnectionClose::IdleTimeout);
        assert_eq!(answered.elapsed(), Duration::from_secs(180));
    }

    #[tokio::test(start_paused = true)]
    async fn http2_reads_do_not_start_the_header_timeout() {
        let l = ConnectionLimits {
            http2: true,
            ..limits(4)
        };
        let registry = Registry::new(l);
        let a = admitted(registry.admit());
        let conn = a.conn().clone();
        let mut dog = Watchdog::new(conn.clone(), l);
        drop(conn.request_started());
        let answered = Instant::now();
        tokio::time::sleep(Duration::from_secs(30)).await;
        conn.read(); // a PING
        assert_eq!(dog.expired().await, ConnectionClose::IdleTimeout);
        assert_eq!(answered.elapsed(), Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_limit_the_oldest_unauthenticated_idle_connection_makes_room() {
        let registry = Registry::new(limits(3));
        let trusted = admitted(registry.admit());
        trusted.conn().authenticated();
        let busy = admitted(registry.admit());
        let _req = busy.conn().request_started();
        let silent = admitted(registry.admit());
        assert_eq!(registry.open(), 3);
        let mut silent_dog = Watchdog::new(silent.conn().clone(), limits(3));
        // Too young to be evicted: refused.
        assert!(matches!(registry.admit(), Admission::Refused));
        tokio::time::sleep(MIN_EVICT_AGE).await;
        let newcomer = admitted(registry.admit());
        assert_eq!(silent_dog.expired().await, ConnectionClose::Evicted);
        // Counted until the evicted connection's task drops its admission.
        assert_eq!(registry.open(), 4);
        drop(silent);
        assert_eq!(registry.open(), 3);
        // Now nothing is evictable: the newcomer is in flight, the others as before.
        let _req2 = newcomer.conn().request_started();
        assert!(matches!(registry.admit(), Admission::Refused));
        assert_eq!(registry.open(), 3);
        let mut trusted_dog = Watchdog::new(trusted.conn().clone(), limits(3));
        assert!(
            tokio::time::timeout(Duration::from_secs(1), trusted_dog.expired())
                .await
                .is_err(),
            "the authenticated connection was not evicted"
        );
    }
}
