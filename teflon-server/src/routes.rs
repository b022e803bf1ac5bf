//! The HTTP API of SPEC §6 as warp filters. Every rejection is recovered into a JSON body
//! with a 4xx status: bad input never gets a 5xx.
//!
//! Size: about 670 lines before its tests, kept in one file: the warp filter tree and its rejection
//! recovery: one table of routes, statuses and bodies.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use serde::Serialize;
use teflon_metrics::events::{AlertRejected, RejectReason};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::auth::VerifiedClientCert;
use crate::connections::ConnHandle;
use crate::ingest::{self, Format};
use crate::queue::{PushError, Queued};
use crate::state::{BodyHold, Counters, SharedState};

/// Default and largest `limit` of `GET /v1/decisions`.
pub const DEFAULT_DECISIONS_LIMIT: usize = 100;

/// Every route, with rejections recovered.
pub fn routes(state: SharedState) -> BoxedFilter<(Response,)> {
    let falco_path = warp::path!("v1" / "alerts").or(warp::path::end()).unify();
    let falco = falco_path
        .and(warp::post())
        .and(ingest(Format::Falco, state.clone()));
    let tetragon = warp::path!("v1" / "tetragon")
        .and(warp::post())
        .and(ingest(Format::Tetragon, state.clone()));

    // Decisions and status name pods, rules and policies: they need the same credentials as
    // ingest. /metrics, /v1/scaling, /healthz and /readyz stay open for Prometheus, KEDA and
    // the kubelet.
    let s = state.clone();
    let decisions = warp::path!("v1" / "decisions")
        .and(warp::get())
        .and(authorized(state.clone()))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(move |denied: Option<Response>, q: String| {
            denied.unwrap_or_else(|| decisions_reply(&s, &q))
        });
    let s = state.clone();
    let status = warp::path!("v1" / "status")
        .and(warp::get())
        .and(authorized(state.clone()))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(move |denied: Option<Response>, q: String| {
            denied.unwrap_or_else(|| status_reply(&s, &q))
        });
    // The response lifecycle (release, history): as protected as ingest, since a release
    // puts a pod back in service.
    let s = state.clone();
    let release = warp::path!("v1" / "release")
        .and(warp::post())
        .and(authorized(state.clone()))
        .and(warp::body::content_length_limit(
            crate::release::MAX_RELEASE_BODY,
        ))
        .and(warp::body::bytes())
        .then(move |denied: Option<Response>, body: Bytes| {
            let s = s.clone();
            async move {
                match denied {
                    Some(r) => r,
                    None => crate::release::reply(&s, &body).await,
                }
            }
        });
    let s = state.clone();
    let actions = warp::path!("v1" / "actions")
        .and(warp::get())
        .and(authorized(state.clone()))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(move |denied: Option<Response>, q: String| {
            let s = s.clone();
            async move {
                match denied {
                    Some(r) => r,
                    None => {
                        let l = &s.lifecycle;
                        crate::history::reply(&l.history, l.releaser.as_ref(), (s.clock)(), &q)
                            .await
                    }
                }
            }
        });
    let s = state.clone();
    let metrics = warp::path!("metrics").and(warp::get()).then(move || {
        let s = s.clone();
        async move {
            let text = s
                .metrics
                .get(|| s.exporter.as_ref().map(|e| e.render()).unwrap_or_default())
                .await;
            let mut r = Response::new(text.into());
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
    });
    // KEDA's metrics-api trigger (and other JSON scalers): as open as /metrics, which carries
    // the same numbers.
    let s = state.clone();
    let scaling = warp::path!("v1" / "scaling" / String / String / String)
        .and(warp::get())
        .map(move |namespace: String, resource: String, name: String| {
            let snap = s.attack_snapshot();
            let (code, body) =
                crate::scaling::reply(&snap, s.view.as_ref(), &namespace, &resource, &name);
            json(code, body)
        });
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| json(StatusCode::OK, r#"{"status":"ok"}"#));
    let s = state;
    // Leadership does not count: a follower accepts and buffers alerts (so the Service may
    // route to it, and a rolling update is not blocked on a replica that never leads).
    let readyz = warp::path!("readyz").and(warp::get()).map(move || {
        let synced = s.view.is_synced();
        // A replica whose audit log cannot be written would decide without a trail: not ready,
        // so the Service sends alerts to another replica.
        let audit_ok = s.audit.is_ok();
        let ready = synced && audit_ok;
        let body = format!(
            r#"{{"ready":{ready},"policies_loaded":true,"cluster_synced":{synced},"audit_ok":{audit_ok}}}"#
        );
        let code = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json(code, body)
    });

    falco
        .or(tetragon)
        .unify()
        .or(decisions)
        .unify()
        .or(status)
        .unify()
        .or(release)
        .unify()
        .or(actions)
        .unify()
        .or(metrics)
        .unify()
        .or(scaling)
        .unify()
        .or(healthz)
        .unify()
        .or(readyz)
        .unify()
        .recover(recover)
        .unify()
        .boxed()
}

/// A JSON response.
fn json(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut r = Response::new(body.into().into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::to_string(&ErrorBody { error: message }).unwrap_or_default();
    json(status, body)
}

fn ingest(format: Format, state: SharedState) -> BoxedFilter<(Response,)> {
    // One Arc clone per request instead of a clone of every shared handle.
    let state = std::sync::Arc::new(state);
    let authorization = warp::header::value("authorization")
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();
    let content_length = warp::header::value("content-length")
        .map(|v: HeaderValue| v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()))
        .or(warp::any().map(|| None))
        .unify();
    authorization
        .and(warp::ext::optional::<VerifiedClientCert>())
        .and(warp::ext::optional::<ConnHandle>())
        .and(content_length)
        .and(warp::body::stream())
        .then(
            move |auth: Option<HeaderValue>,
                  cert: Option<VerifiedClientCert>,
                  conn: Option<ConnHandle>,
                  len: Option<u64>,
                  body| {
                let state = state.clone();
                async move {
                    let credentials = Credentials {
                        authorization: auth,
                        verified_cert: cert.is_some(),
                        conn,
                    };
                    ingest_request(format, &state, credentials, len, body).await
                }
            },
        )
        .boxed()
}

/// What a request presents to authenticate, and the connection it came on.
struct Credentials {
    authorization: Option<HeaderValue>,
    verified_cert: bool,
    conn: Option<ConnHandle>,
}

impl Credentials {
    /// Checks the credentials; an authenticated request marks its connection as one that is
    /// never evicted to make room for a newcomer.
    fn check(&self, state: &SharedState) -> bool {
        let ok = state.auth.check(
            self.authorization.as_ref().map(HeaderValue::as_bytes),
            self.verified_cert,
        );
        if ok && let Some(handle) = &self.conn {
            handle.conn.authenticated();
        }
        ok
    }
}

/// `None` when the request carries the configured credentials (bearer token or a verified
/// client certificate), else the 401 to answer.
fn authorized(state: SharedState) -> BoxedFilter<(Option<Response>,)> {
    warp::header::value("authorization")
        .map(Some)
        .or(warp::any().map(|| None))
        .unify()
        .and(warp::ext::optional::<VerifiedClientCert>())
        .and(warp::ext::optional::<ConnHandle>())
        .map(
            move |auth: Option<HeaderValue>,
                  cert: Option<VerifiedClientCert>,
                  conn: Option<ConnHandle>| {
                let credentials = Credentials {
                    authorization: auth,
                    verified_cert: cert.is_some(),
                    conn,
                };
                if credentials.check(&state) {
                    None
                } else {
                    Some(unauthorized())
                }
            },
        )
        .boxed()
}

fn unauthorized() -> Response {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized: send `Authorization: Bearer <token>` or a client certificate signed by the configured CA",
    );
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// An error the sender should retry in a second.
fn retry_later(status: StatusCode, message: &str) -> Response {
    let mut r = error(status, message);
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// 429: the queue has no room for the request's alerts.
fn overloaded() -> Response {
    retry_later(
        StatusCode::TOO_MANY_REQUESTS,
        "queue full: nothing from this request was accepted; retry later",
    )
}

/// The 429 for a request that arrives while the queue is full (counted as one refusal: its
/// alerts are never parsed).
fn refuse_when_full(state: &SharedState) -> Option<Response> {
    if state.queue.depth() < state.queue.capacity() {
        return None;
    }
    reject(state, RejectReason::Overloaded, 1);
    Some(overloaded())
}

/// 503: this replica stopped taking alerts.
fn shutting_down() -> Response {
    retry_later(
        StatusCode::SERVICE_UNAVAILABLE,
        "shutting down; retry on another replica",
    )
}

fn reject(state: &SharedState, reason: RejectReason, count: u64) {
    AlertRejected { reason, count }.emit();
    Counters::add(&state.counters.alerts_rejected, count);
}

async fn ingest_request<S, B>(
    format: Format,
    state: &SharedState,
    credentials: Credentials,
    content_length: Option<u64>,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let received = Instant::now();
    let received_at = (state.clock)();
    if !state.accepting.load(std::sync::atomic::Ordering::Relaxed) {
        return shutting_down();
    }
    if !credentials.check(state) {
        reject(state, RejectReason::Unauthorized, 1);
        return unauthorized();
    }
    let limit = state.config.max_body_bytes;
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body above max_body_bytes ({limit} bytes); send smaller batches"),
        )
    };
    if content_length.is_some_and(|l| l > limit) {
        reject(state, RejectReason::TooLarge, 1);
        return too_large();
    }
    // A full queue refuses before reading and parsing the body: under overload the cores go
    // to deciding what was accepted, not to parsing what cannot be (counted as one, like the
    // other refusals that never read the body).
    if let Some(refused) = refuse_when_full(state) {
        return refused;
    }
    // Bounded memory for bodies (see `BodyBudget`), held until the body is parsed.
    // Waiting for a turn reads nothing: the body stays in the socket (or HTTP/2's windows).
    let mut hold = state.bodies.hold(content_length, limit);
    let turn = match &credentials.conn {
        Some(c) if !hold.is_large() => c.small_body_turn().await,
        _ => None,
    };
    if hold.start().await.is_err() {
        return shutting_down();
    }
    let read = read_body(body, content_length, limit, &mut hold);
    let buf = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(buf)) => buf,
        Ok(Err(BodyError::Closed)) => return shutting_down(),
        Ok(Err(BodyError::TooSlow(received))) => {
            reject(state, RejectReason::ParseError, 1);
            return error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "request body arriving slower than {} KiB/s ({received} bytes in); send it at once",
                    crate::state::MIN_LARGE_BODY_RATE / 1024
                ),
            );
        }
        Ok(Err(BodyError::TooLarge)) => {
            reject(state, RejectReason::TooLarge, 1);
            return too_large();
        }
        Ok(Err(BodyError::Read(e))) => {
            reject(state, RejectReason::ParseError, 1);
            return error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body: {e}"),
            );
        }
        Err(_) => {
            reject(state, RejectReason::ParseError, 1);
            return error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "request body not received within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            );
        }
    };
    // Bounded parsing (see `SharedState::parsing`); the queue may have filled while waiting.
    let Ok(parsing) = state.parsing.acquire().await else {
        return shutting_down();
    };
    if let Some(refused) = refuse_when_full(state) {
        return refused;
    }
    let alerts = match ingest::parse(format, &buf) {
        Ok(a) => a,
        Err(e) => {
            reject(state, RejectReason::ParseError, 1);
            tracing::debug!(error = %e, "malformed alert batch refused");
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::to_string(&e).unwrap_or_default(),
            );
        }
    };
    let n = alerts.len();
    let cap = state.config.alerts_per_request_cap();
    if n > cap {
        // Retrying can never help: tell the sender how to split instead of 429.
        reject(state, RejectReason::TooLarge, n as u64);
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "{n} alerts in one request; split this batch into at most {cap} alerts (max_alerts_per_request, queue_capacity)"
            ),
        );
    }
    let mut batch = Vec::with_capacity(n);
    for mut alert in alerts {
        if alert.id.is_none() {
            alert.id = Some(state.ids.next());
        }
        batch.push(Queued {
            alert,
            received_at,
            received,
            journal_seq: None,
        });
    }
    // Parsed: the body and its budget, the parse permit and the connection's turn go back
    // before the wait for the journal's sync, which many requests share (group commit); the
    // alerts waiting for it are bounded by the queue room they hold.
    drop((buf, hold, turn, parsing));
    match state.queue.accept(batch).await {
        Ok(()) => {
            // `teflon_alerts_total` is counted by the engine task as it takes them.
            Counters::add(&state.counters.alerts_accepted, n as u64);
            if n == 1 {
                json(StatusCode::ACCEPTED, r#"{"accepted":1}"#)
            } else {
                json(StatusCode::ACCEPTED, format!(r#"{{"accepted":{n}}}"#))
            }
        }
        Err(PushError::Full) => {
            reject(state, RejectReason::Overloaded, n as u64);
            overloaded()
        }
        Err(PushError::Closed) => shutting_down(),
        Err(PushError::Journal) => {
            reject(state, RejectReason::Overloaded, n as u64);
            retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "the journal cannot be written: nothing from this request was accepted; retry later",
            )
        }
    }
}

/// How long a request body may take to arrive once its turn to be read came: a sender that
/// trickles its body must not hold the body budget.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

enum BodyError {
    TooLarge,
    Read(warp::Error),
    Closed,
    /// A large body below the minimum rate, with the bytes received.
    TooSlow(u64),
}

/// The whole body, at most `limit` bytes, each piece held in `hold` before it is kept.
async fn read_body<S, B>(
    body: S,
    content_length: Option<u64>,
    limit: u64,
    hold: &mut BodyHold<'_>,
) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let cap = usize::try_from(content_length.unwrap_or(8192).min(limit)).unwrap_or(8192);
    // A body that arrives in one chunk (the usual case) is used as is, without a copy.
    let mut single: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0u64;
    let mut body = std::pin::pin!(body);
    let started = tokio::time::Instant::now();
    let large = hold.is_large();
    loop {
        let next = if large {
            // Each next piece is due when the body would fall below the minimum rate.
            let due = started
                + crate::state::LARGE_BODY_GRACE
                + Duration::from_secs_f64(total as f64 / crate::state::MIN_LARGE_BODY_RATE as f64);
            match tokio::time::timeout_at(due, body.next()).await {
                Ok(next) => next,
                Err(_) => return Err(BodyError::TooSlow(total)),
            }
        } else {
            body.next().await
        };
        let Some(chunk) = next else { break };
        let mut chunk = chunk.map_err(BodyError::Read)?;
        total += chunk.remaining() as u64;
        if total > limit {
            return Err(BodyError::TooLarge);
        }
        hold.take(chunk.remaining())
            .await
            .map_err(|_| BodyError::Closed)?;
        let bytes = chunk.copy_to_bytes(chunk.remaining());
        match (&mut joined, single.take()) {
            (Some(buf), _) => buf.put(bytes),
            (None, None) => single = Some(bytes),
            (None, Some(first)) => {
                let mut buf = BytesMut::with_capacity(cap.max(first.len() + bytes.len()));
                buf.put(first);
                buf.put(bytes);
                joined = Some(buf);
            }
        }
    }
    Ok(match (joined, single) {
        (Some(b), _) => b.freeze(),
        (None, Some(b)) => b,
        (None, None) => Bytes::new(),
    })
}

fn decisions_reply(state: &SharedState, query: &str) -> Response {
    let mut limit = DEFAULT_DECISIONS_LIMIT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "limit" {
            match v.parse::<usize>() {
                Ok(n) => limit = n.min(state.decisions.capacity()),
                Err(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("limit must be a non-negative integer, got {v:?}"),
                    );
                }
            }
        }
    }
    json(StatusCode::OK, state.decisions.latest_json(limit))
}

/// Default and largest page of `GET /v1/status` (`limit`, per list).
pub const DEFAULT_STATUS_LIMIT: usize = 100;
/// The largest `limit` of `GET /v1/status`.
pub const MAX_STATUS_LIMIT: usize = 1000;

#[derive(Serialize)]
struct StatusBody<'a> {
    at: teflon_core::Timestamp,
    policies: &'a crate::state::PolicyStatus,
    /// This page of the workloads under attack.
    workloads: &'a [crate::state::WorkloadStatusLine],
    /// This page of the pending deferrals.
    deferrals: &'a [crate::state::DeferralStatus],
    workloads_total: usize,
    deferrals_total: usize,
    offset: usize,
    limit: usize,
    /// The `offset` of the next page, null on the last one.
    next_offset: Option<usize>,
    actions_in_flight: usize,
    queue_depth: usize,
    queue_capacity: usize,
    cluster_synced: bool,
    /// `true` leads, `false` follows (buffers alerts), `null` without leader election.
    leader: Option<bool>,
    alerts_accepted: u64,
    alerts_rejected: u64,
    decisions: u64,
    reaps: u64,
}

/// `?limit=N&offset=M`: the page of both lists.
fn page(query: &str) -> Result<(usize, usize), String> {
    let mut limit = DEFAULT_STATUS_LIMIT;
    let mut offset = 0;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let number = || {
            v.parse::<usize>()
                .map_err(|_| format!("{k} must be a non-negative integer, got {v:?}"))
        };
        match k {
            "limit" => limit = number()?.min(MAX_STATUS_LIMIT),
            "offset" => offset = number()?,
            _ => {}
        }
    }
    Ok((limit, offset))
}

fn slice<T>(all: &[T], offset: usize, limit: usize) -> &[T] {
    let start = offset.min(all.len());
    &all[start..(start + limit).min(all.len())]
}

fn status_reply(state: &SharedState, query: &str) -> Response {
    let (limit, offset) = match page(query) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let snap = state.status_snapshot();
    let c = &state.counters;
    let longest = snap.workloads.len().max(snap.deferrals.len());
    let body = StatusBody {
        at: snap.at,
        policies: &snap.policies,
        workloads: slice(&snap.workloads, offset, limit),
        deferrals: slice(&snap.deferrals, offset, limit),
        workloads_total: snap.workloads.len(),
        deferrals_total: snap.deferrals.len(),
        offset,
        limit,
        next_offset: Some(offset.saturating_add(limit)).filter(|next| *next < longest),
        actions_in_flight: snap.actions_in_flight,
        queue_depth: state.queue.depth(),
        queue_capacity: state.queue.capacity(),
        cluster_synced: state.view.is_synced(),
        leader: state.is_leader(),
        alerts_accepted: Counters::get(&c.alerts_accepted),
        alerts_rejected: Counters::get(&c.alerts_rejected),
        decisions: Counters::get(&c.decisions),
        reaps: Counters::get(&c.reaps),
    };
    match serde_json::to_string(&body) {
        Ok(b) => json(StatusCode::OK, b),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn recover(err: Rejection) -> Result<Response, Infallible> {
    let (code, msg) = if err.is_not_found() {
        (StatusCode::NOT_FOUND, "not found".to_owned())
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".to_owned(),
        )
    } else if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large".to_owned(),
        )
    } else {
        (StatusCode::BAD_REQUEST, format!("bad request: {err:?}"))
    };
    Ok(error(code, &msg).into_response())
}
