//! Bounded, jittered retries for API calls, and the classification of what went wrong.

use std::future::Future;
use std::time::Duration;

use kube::core::Status;
use rand::Rng;
use tokio::time::Instant;

/// How hard to try one API call.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Give up once this much time has passed since the first attempt.
    pub total: Duration,
    /// One attempt that has not answered after this long counts as timed out.
    pub attempt_timeout: Duration,
    /// Delay before the first retry; doubled each time, with jitter.
    pub base_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            total: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(3),
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
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

    /// Worth another attempt: 5xx, 429 (other than a PDB refusal), timeouts, connection errors.
    fn is_retryable(&self) -> bool {
        match self {
            CallError::Api(s) => s.code >= 500 || (s.code == 429 && !self.is_disruption_budget()),
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

/// Runs `op` until it succeeds, fails for good, or the policy's attempts or time run out.
///
/// Only calls whose repetition cannot act twice go through here: every mutating call
/// carries a UID precondition or is idempotent by name, so a retry after an ambiguous
/// failure either does the same thing again or answers 404/409/422, which callers map.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut op: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let left = policy.total.saturating_sub(start.elapsed());
        let err = match tokio::time::timeout(policy.attempt_timeout.min(left), op()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => CallError::from(e),
            Err(_) => CallError::Timeout,
        };
        if !err.is_retryable() || attempt >= policy.max_attempts {
            return Err(err);
        }
        let delay = policy.delay(attempt);
        if start.elapsed() + delay >= policy.total {
            return Err(err);
        }
        tracing::debug!(what, attempt, error = %err, ?delay, "retrying Kubernetes API call");
        tokio::time::sleep(delay).await;
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
        let p = RetryPolicy::default();
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
