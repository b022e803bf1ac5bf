//! Bounded, jittered retries for API calls, and the classification of what went wrong.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use kube::core::Status;
use rand::Rng;
use tokio::time::Instant;

/// How hard to try one API call: Teflon's one place where retries are decided (the kube
/// client's own retry layer is off, see [`crate::client`]).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call in all, the first included (`u32::MAX`: until the deadline).
    pub max_attempts: u32,
    /// Give up once this much time has passed since the first attempt. For an action the
    /// earlier of this and the action's own deadline ([`teflon_core::PlannedAction::deadline`])
    /// applies.
    pub total: Duration,
    /// One attempt that has not answered after this long counts as timed out.
    pub attempt_timeout: Duration,
    /// Delay before the first retry; doubled each time, with jitter.
    pub base_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// For actions (SPEC §4): failures that can pass are retried with backoff for up to
    /// 300 s (`action_deadline_secs`), across an API server outage; a retry at least every 5 s
    /// once the backoff has grown, so that an action goes through within seconds of the API
    /// server coming back.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: u32::MAX,
            total: Duration::from_secs(300),
            attempt_timeout: Duration::from_secs(5),
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries (one attempt), same timeouts.
    pub fn once() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// For Events: two attempts within 3 s, so that a failing Event delays an action's
    /// outcome little.
    pub fn events() -> Self {
        RetryPolicy {
            max_attempts: 2,
            total: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(2),
            ..RetryPolicy::default()
        }
    }

    /// For reads and writes that a caller repeats by itself (the autoscaler's scale calls,
    /// pod look-ups): four attempts within 10 s.
    pub fn short() -> Self {
        RetryPolicy {
            max_attempts: 4,
            total: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(3),
            max_delay: Duration::from_secs(2),
            ..RetryPolicy::default()
        }
    }

    /// The delay before retry number `retry` (1-based): `base × 2^(retry-1)`, capped, times a
    /// random factor in [0.5, 1) so that many actors do not retry in step.
    fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max_delay);
        exp.mul_f64(rand::rng().random_range(0.5..1.0))
    }
}

/// The retry budget of one action (or one stand-alone call): its policy, the time it must be
/// done by, and the retries spent so far over all of its calls.
#[derive(Debug)]
pub(crate) struct Budget<'a> {
    policy: &'a RetryPolicy,
    deadline: Instant,
    retries: AtomicU32,
}

impl<'a> Budget<'a> {
    /// A budget of `policy.total` from now, or less when `deadline` (time left until the
    /// action's own deadline) is shorter.
    pub(crate) fn new(policy: &'a RetryPolicy, left: Option<Duration>) -> Self {
        let total = left.map_or(policy.total, |l| l.min(policy.total));
        Budget {
            policy,
            deadline: Instant::now() + total,
            retries: AtomicU32::new(0),
        }
    }

    /// Attempts made by the calls so far, the first included: `1 + retries`.
    pub(crate) fn attempts(&self) -> u32 {
        self.retries.load(Ordering::Relaxed).saturating_add(1)
    }

    /// Runs `op` until it succeeds, fails for good, or the attempts or the time run out.
    /// Every call gets at least one attempt, even when the deadline has passed.
    ///
    /// Only calls whose repetition cannot act twice go through here: every mutating call
    /// carries a UID precondition or is idempotent by name, so a retry after an ambiguous
    /// failure either does the same thing again or answers 404/409/422, which callers map.
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let policy = self.policy;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let left = self.deadline.saturating_duration_since(Instant::now());
            let timeout = if left.is_zero() {
                policy.attempt_timeout
            } else {
                policy.attempt_timeout.min(left)
            };
            let err = match tokio::time::timeout(timeout, op()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => CallError::from(e),
                Err(_) => CallError::Timeout,
            };
            if !err.is_retryable() || attempt >= policy.max_attempts {
                return Err(err);
            }
            let delay = policy.delay(attempt);
            if Instant::now() + delay >= self.deadline {
                return Err(err);
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(what, attempt, error = %err, ?delay, "retrying Kubernetes API call");
            tokio::time::sleep(delay).await;
        }
    }
}

/// Runs one stand-alone call under `policy` (its own budget of `policy.total`).
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    op: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    Budget::new(policy, None).call(what, op).await
}

/// Why an API call failed (crate-internal: callers see [`teflon_core::Outcome`]s or this
/// crate's public errors, never `kube::Error`).
#[derive(Debug, Clone)]
pub(crate) enum CallError {
    /// The API server answered with an error `Status`.
    Api(Box<Status>),
    /// No answer within the attempt timeout.
    Timeout,
    /// The connection failed (refused, reset, TLS…).
    Transport(String),
    /// Anything else (a response we could not read, a request we could not build).
    Other(String),
}

impl CallError {
    /// The HTTP status code, when the server answered.
    pub(crate) fn code(&self) -> Option<u16> {
        match self {
            CallError::Api(s) => Some(s.code),
            _ => None,
        }
    }

    /// A 429 that is a PodDisruptionBudget refusing an eviction: final, not "try later".
    pub(crate) fn is_disruption_budget(&self) -> bool {
        let CallError::Api(s) = self else {
            return false;
        };
        s.code == 429
            && (s
                .details
                .as_ref()
                .is_some_and(|d| d.causes.iter().any(|c| c.reason == "DisruptionBudget"))
                || s.message.contains("disruption budget"))
    }

    /// A 409 because a precondition (UID or resourceVersion) does not hold: sending the same
    /// request again cannot pass. For a UID precondition, a different object has that name
    /// now (the registry store's "Precondition failed: UID in precondition").
    fn is_precondition(&self) -> bool {
        let CallError::Api(s) = self else {
            return false;
        };
        s.code == 409 && s.message.contains("Precondition failed")
    }

    /// Worth another attempt (SPEC §4): 5xx, 429 other than a PDB refusal, a write conflict
    /// (409 `Conflict` that is not a failed precondition: "the object has been modified"),
    /// timeouts and connection errors. 403, 404, 422, `AlreadyExists` and the UID and
    /// resourceVersion preconditions are final.
    fn is_retryable(&self) -> bool {
        match self {
            CallError::Api(s) => {
                s.code >= 500
                    || (s.code == 429 && !self.is_disruption_budget())
                    || (s.code == 409 && s.reason == "Conflict" && !self.is_precondition())
            }
            CallError::Timeout | CallError::Transport(_) => true,
            CallError::Other(_) => false,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Api(s) if s.message.is_empty() => write!(f, "HTTP {} {}", s.code, s.reason),
            CallError::Api(s) => write!(f, "HTTP {} {}: {}", s.code, s.reason, s.message),
            CallError::Timeout => f.write_str("timed out"),
            CallError::Transport(e) => write!(f, "connection error: {e}"),
            CallError::Other(e) => f.write_str(e),
        }
    }
}

impl From<kube::Error> for CallError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => CallError::Api(s),
            kube::Error::HyperError(e) => CallError::Transport(e.to_string()),
            kube::Error::Service(e) => CallError::Transport(e.to_string()),
            other => CallError::Other(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, body: &str) -> CallError {
        let mut s: Status = serde_json::from_str(body).unwrap();
        s.code = code;
        CallError::Api(Box::new(s))
    }

    #[test]
    fn the_pdb_429_is_final_and_other_429s_are_retried() {
        let pdb = status(
            429,
            include_str!("../tests/fixtures/eviction-429-pdb-status.json"),
        );
        assert!(pdb.is_disruption_budget());
        assert!(!pdb.is_retryable());
        let throttled = status(
            429,
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too many requests","reason":"TooManyRequests","code":429}"#,
        );
        assert!(!throttled.is_disruption_budget());
        assert!(throttled.is_retryable());
    }

    #[test]
    fn server_errors_timeouts_and_connection_errors_are_retried_but_not_client_errors() {
        let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"x","reason":"NotFound","code":404}"#;
        assert!(status(500, body).is_retryable());
        assert!(status(503, body).is_retryable());
        assert!(CallError::Timeout.is_retryable());
        assert!(CallError::Transport("reset".into()).is_retryable());
        for code in [400, 401, 403, 404, 409, 422] {
            assert!(!status(code, body).is_retryable(), "{code}");
        }
    }

    #[test]
    fn a_write_conflict_is_retried_but_the_uid_precondition_and_already_exists_are_final() {
        let uid = status(
            409,
            include_str!("../tests/fixtures/delete-precondition-conflict-status.json"),
        );
        assert!(uid.is_precondition());
        assert!(!uid.is_retryable());
        let modified = status(
            409,
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Operation cannot be fulfilled on poddisruptionbudgets.policy \"web\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","code":409}"#,
        );
        assert!(!modified.is_precondition());
        assert!(modified.is_retryable());
        let exists = status(
            409,
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"networkpolicies.networking.k8s.io \"x\" already exists","reason":"AlreadyExists","code":409}"#,
        );
        assert!(!exists.is_retryable());
        let rv = status(
            409,
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Precondition failed: ResourceVersion in precondition: 99, ResourceVersion in object meta: 100","reason":"Conflict","code":409}"#,
        );
        assert!(rv.is_precondition());
        assert!(!rv.is_retryable(), "the same request cannot pass");
    }

    #[tokio::test(start_paused = true)]
    async fn an_action_budget_retries_until_its_deadline_and_counts_the_retries() {
        let p = RetryPolicy::default();
        let start = Instant::now();
        let budget = Budget::new(&p, Some(Duration::from_secs(30)));
        let mut calls = 0u32;
        let r: Result<(), CallError> = budget
            .call("test", || {
                calls += 1;
                std::future::ready(Err(kube::Error::Api(
                    Status::failure("down", "InternalError")
                        .with_code(500)
                        .boxed(),
                )))
            })
            .await;
        assert_eq!(r.unwrap_err().code(), Some(500));
        let elapsed = start.elapsed();
        // Virtual time: retried until the 30 s left, not the policy's 300 s, and not before
        // the delays (at most 5 s each) would cross it.
        assert!(elapsed <= Duration::from_secs(30), "{elapsed:?}");
        assert!(elapsed >= Duration::from_secs(25), "{elapsed:?}");
        assert!(calls > 4, "{calls} attempts");
        assert_eq!(budget.attempts(), calls);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_deadline_still_gets_one_attempt() {
        let p = RetryPolicy::default();
        let budget = Budget::new(&p, Some(Duration::ZERO));
        let r: Result<u32, CallError> = budget.call("test", || std::future::ready(Ok(7))).await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(budget.attempts(), 1);
    }

    #[test]
    fn delays_grow_and_stay_within_the_cap() {
        let p = RetryPolicy::default();
        for retry in 1..40 {
            let d = p.delay(retry);
            assert!(d <= p.max_delay);
            let floor = p
                .base_delay
                .saturating_mul(1u32.checked_shl(retry - 1).unwrap_or(u32::MAX))
                .min(p.max_delay)
                / 2;
            assert!(d >= floor, "retry {retry}: {d:?} < {floor:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_answers_stops_within_the_attempt_and_time_bounds() {
        let p = RetryPolicy::short();
        let start = Instant::now();
        let mut calls = 0u32;
        let r: Result<(), CallError> = with_retry(&p, "test", || {
            calls += 1;
            std::future::pending::<Result<(), kube::Error>>()
        })
        .await;
        assert!(matches!(r, Err(CallError::Timeout)), "{r:?}");
        assert!((3..=p.max_attempts).contains(&calls), "{calls} attempts");
        // Virtual time (paused clock): the bound holds exactly, nothing real is waited for.
        assert!(start.elapsed() <= p.total);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_error_is_tried_once() {
        let mut calls = 0u32;
        let r: Result<(), CallError> = with_retry(&RetryPolicy::default(), "test", || {
            calls += 1;
            std::future::ready(Err(kube::Error::Api(
                Status::failure("nope", "NotFound").with_code(404).boxed(),
            )))
        })
        .await;
        assert_eq!(r.unwrap_err().code(), Some(404));
        assert_eq!(calls, 1);
    }
}
