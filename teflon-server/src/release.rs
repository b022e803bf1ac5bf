//! Releases in the server: `POST /v1/release` (authenticated, leader only), the expiry sweep
//! (`expire_after_secs`), and the record of every release: an audit line, the Event (written
//! by the releaser), `teflon_releases_total`, the response history and a notification.
//!
//! The sweep keeps no deadline in memory: every [`EXPIRY_EVERY`] the leader lists the actions
//! in force from the cluster (their deadlines are annotations on the objects) and releases
//! those that are due, so whichever replica leads — after a restart, after a failover —
//! finishes what another one started.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use teflon_core::{
    ActionKind, Clock, Engine, Release, ReleaseCause, ReleaseOutcome, ReleaseTarget, Timestamp,
    Verdict,
};
use teflon_metrics::response::ReleaseRecorded;
use tokio::sync::watch;
use warp::reply::Response;

use crate::audit::AuditLog;
use crate::lifecycle::{Lifecycle, Recorded};
use crate::notify::Facts;
use crate::state::{Counters, SharedState};

/// How often the leader looks for actions whose `expire_after_secs` ran out.
pub const EXPIRY_EVERY: Duration = Duration::from_secs(10);
/// The largest `POST /v1/release` body.
pub const MAX_RELEASE_BODY: u64 = 16 * 1024;

/// The audit line of a release (`"event": "release"`: not a decision).
#[derive(Debug, Serialize)]
pub struct ReleaseRecord<'a> {
    /// Always `release`.
    pub event: &'static str,
    /// When it ended.
    pub time: Timestamp,
    /// What it undid: `quarantine` or `block_binary`.
    pub action: ActionKind,
    /// The pod or policy.
    pub target: &'a ReleaseTarget,
    /// `operator` or `expired`.
    pub cause: &'static str,
    /// `released`, `not_found`, `refused`, `failed`.
    pub outcome: &'static str,
    /// Why, for `refused` and `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_message: Option<&'a str>,
    /// The policy whose action it undid.
    pub policy: Option<&'a str>,
    /// The pod's UID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<&'a str>,
    /// Labels put back.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub restored_labels: &'a BTreeMap<String, String>,
    /// Labels taken off.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub removed_labels: &'a [String],
    /// The NetworkPolicy deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<&'a str>,
    /// Attempts of the API calls.
    pub attempts: u32,
}

impl<'a> ReleaseRecord<'a> {
    /// The record of `r`, ended at `at`.
    pub fn new(r: &'a Release, at: Timestamp) -> Self {
        ReleaseRecord {
            event: "release",
            time: at,
            action: r.target.action(),
            target: &r.target,
            cause: r.cause.as_str(),
            outcome: r.outcome.as_str(),
            outcome_message: r.outcome.message(),
            policy: r.policy.as_deref(),
            uid: r.uid.as_deref(),
            restored_labels: &r.restored_labels,
            removed_labels: &r.removed_labels,
            network_policy: r.network_policy.as_deref(),
            attempts: r.attempts,
        }
    }
}

/// What a release's notification says.
fn release_facts(r: &Release, at: Timestamp) -> Facts {
    let (namespace, pod) = match &r.target {
        ReleaseTarget::Pod {
            namespace, name, ..
        } => (Some(namespace.clone()), Some(name.clone())),
        ReleaseTarget::Policy { namespace, .. } => (Some(namespace.clone()), None),
    };
    let mut extra = vec![(
        "Cause".to_owned(),
        match r.cause {
            ReleaseCause::Operator => "asked by an operator".to_owned(),
            ReleaseCause::Expired => "expire_after_secs ran out".to_owned(),
        },
    )];
    if let ReleaseTarget::Policy { name, .. } = &r.target {
        extra.push(("TracingPolicyNamespaced".to_owned(), name.clone()));
    }
    if !r.restored_labels.is_empty() {
        let keys: Vec<&str> = r.restored_labels.keys().map(String::as_str).collect();
        extra.push(("Labels restored".to_owned(), keys.join(", ")));
    }
    if let Some(m) = r.outcome.message() {
        extra.push(("Why".to_owned(), m.to_owned()));
    }
    Facts {
        verdict: Verdict::Act,
        reason: cause_reason(r).to_owned(),
        policy: r.policy.clone(),
        title: format!(
            "release of {} {}: {}",
            r.target.action(),
            r.target,
            r.outcome.as_str()
        ),
        rule: None,
        namespace,
        pod,
        workload: None,
        action: Some(format!("release ({})", r.target.action())),
        outcome: Some(r.outcome.as_str().to_owned()),
        alert_id: None,
        time: at,
        extra,
    }
}

/// The reason a release record has for notification filters: `released` or `expired`.
fn cause_reason(r: &Release) -> &'static str {
    match r.cause {
        ReleaseCause::Operator => "released",
        ReleaseCause::Expired => "expired",
    }
}

/// Record a release (engine task): a released pod is decided afresh, the audit line, the
/// metric, the history, the webhooks.
pub(crate) fn record(
    engine: &mut Engine,
    audit: &mut AuditLog,
    lifecycle: &Lifecycle,
    counters: &Counters,
    recorded: Recorded,
) {
    let Recorded { release: r, at } = recorded;
    if let (
        ReleaseOutcome::Released,
        ReleaseTarget::Pod {
            namespace, name, ..
        },
    ) = (&r.outcome, &r.target)
    {
        engine.released(namespace, name, r.uid.as_deref());
    }
    audit.append_event(&ReleaseRecord::new(&r, at));
    Counters::add(&counters.audit_records, 1);
    if r.outcome == ReleaseOutcome::Released {
        Counters::add(&counters.releases, 1);
    }
    ReleaseRecorded {
        action: r.target.action(),
        cause: r.cause,
        outcome: &r.outcome,
    }
    .emit();
    lifecycle.history.release(&r, at);
    lifecycle.notifier.offer(
        Verdict::Act,
        cause_reason(&r),
        r.policy.as_deref(),
        || {
            serde_json::to_vec(&ReleaseRecord::new(&r, at))
                .ok()
                .map(bytes::Bytes::from)
        },
        || release_facts(&r, at),
    );
}

/// The expiry sweep: while this replica may act, every `every` list the actions in force and
/// release those whose deadline has come. A failing expiry is recorded once until it
/// succeeds or stops failing; a listing that fails is logged once per streak.
pub(crate) async fn sweep(
    lifecycle: Lifecycle,
    may_act: watch::Receiver<bool>,
    clock: Clock,
    every: Duration,
) {
    let Some(releaser) = lifecycle.releaser.clone() else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listing_failed = false;
    let mut failing: HashSet<ReleaseTarget> = HashSet::new();
    loop {
        tick.tick().await;
        if !*may_act.borrow() {
            continue;
        }
        let active = match releaser.active_boxed().await {
            Ok(a) => {
                if listing_failed {
                    tracing::info!("expiry: the actions in force can be listed again");
                    listing_failed = false;
                }
                a
            }
            Err(e) => {
                if !listing_failed {
                    tracing::warn!(error = %e, "expiry: cannot list the actions in force; expired quarantines and block_binary policies stay until this works");
                    listing_failed = true;
                }
                continue;
            }
        };
        let now = clock();
        for a in active.iter().filter(|a| a.is_expired(now)) {
            if !*may_act.borrow() {
                break;
            }
            let r = releaser
                .release_boxed(&a.target, ReleaseCause::Expired)
                .await;
            match &r.outcome {
                ReleaseOutcome::Released => {
                    failing.remove(&a.target);
                    lifecycle.record(r, clock());
                }
                ReleaseOutcome::Failed(why) => {
                    if failing.insert(a.target.clone()) {
                        tracing::warn!(target = %a.target, error = %why, "expiry failed; retried at every sweep");
                        lifecycle.record(r, clock());
                    }
                }
                // Not due after all (re-applied meanwhile), or gone: nothing happened.
                ReleaseOutcome::NotFound | ReleaseOutcome::Refused(_) => {
                    failing.remove(&a.target);
                }
            }
        }
    }
}

/// `POST /v1/release` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseRequest {
    namespace: String,
    #[serde(default)]
    pod: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    policy: Option<String>,
}

impl ReleaseRequest {
    fn target(self) -> Result<ReleaseTarget, String> {
        if self.namespace.is_empty() {
            return Err("`namespace` must not be empty".to_owned());
        }
        match (self.pod, self.policy) {
            (Some(pod), None) if !pod.is_empty() => Ok(ReleaseTarget::Pod {
                namespace: self.namespace,
                name: pod,
                uid: self.uid.filter(|u| !u.is_empty()),
            }),
            (None, Some(policy)) if !policy.is_empty() => {
                if self.uid.is_some() {
                    return Err("`uid` goes with `pod`, not `policy`".to_owned());
                }
                Ok(ReleaseTarget::Policy {
                    namespace: self.namespace,
                    name: policy,
                })
            }
            _ => Err(
                "give `pod` (a quarantined pod) or `policy` (a block_binary TracingPolicyNamespaced), one of them"
                    .to_owned(),
            ),
        }
    }
}

/// The answer to `POST /v1/release`.
#[derive(Debug, Serialize)]
struct ReleaseReply<'a> {
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    target: &'a ReleaseTarget,
    action: ActionKind,
    policy: Option<&'a str>,
    uid: Option<&'a str>,
    restored_labels: &'a BTreeMap<String, String>,
    removed_labels: &'a [String],
    network_policy: Option<&'a str>,
    attempts: u32,
}

fn json(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response {
    let mut r = Response::new(body.into().into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }).to_string())
}

/// Handle `POST /v1/release` (already authenticated).
pub(crate) async fn reply(state: &SharedState, body: &[u8]) -> Response {
    let request: ReleaseRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "release: {e} (expected {{\"namespace\": NS, \"pod\": POD}} or {{\"namespace\": NS, \"policy\": NAME}})"
                ),
            );
        }
    };
    let target = match request.target() {
        Ok(t) => t,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("release: {e}")),
    };
    if state.is_leader() == Some(false) {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this replica is not the leader: only the leader acts (the Service routes to it); retry",
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("2"));
        return r;
    }
    let Some(release) = state
        .lifecycle
        .release(&target, ReleaseCause::Operator, &state.clock)
        .await
    else {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            "this cluster backend cannot release actions",
        );
    };
    let code = match release.outcome {
        ReleaseOutcome::Released => StatusCode::OK,
        ReleaseOutcome::NotFound => StatusCode::NOT_FOUND,
        ReleaseOutcome::Refused(_) => StatusCode::CONFLICT,
        ReleaseOutcome::Failed(_) => StatusCode::BAD_GATEWAY,
    };
    let body = ReleaseReply {
        outcome: release.outcome.as_str(),
        message: release.outcome.message(),
        target: &release.target,
        action: release.target.action(),
        policy: release.policy.as_deref(),
        uid: release.uid.as_deref(),
        restored_labels: &release.restored_labels,
        removed_labels: &release.removed_labels,
        network_policy: release.network_policy.as_deref(),
        attempts: release.attempts,
    };
    json(code, serde_json::to_vec(&body).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(body: &str) -> Result<ReleaseTarget, String> {
        serde_json::from_str::<ReleaseRequest>(body)
            .map_err(|e| e.to_string())?
            .target()
    }

    #[test]
    fn a_release_request_names_a_pod_or_a_policy_not_both() {
        assert_eq!(
            target(r#"{"namespace":"shop","pod":"web-1","uid":"u-1"}"#).unwrap(),
            ReleaseTarget::Pod {
                namespace: "shop".into(),
                name: "web-1".into(),
                uid: Some("u-1".into())
            }
        );
        assert_eq!(
            target(r#"{"namespace":"shop","policy":"teflon-block-web-nc"}"#).unwrap(),
            ReleaseTarget::Policy {
                namespace: "shop".into(),
                name: "teflon-block-web-nc".into()
            }
        );
        for bad in [
            r#"{"namespace":"shop"}"#,
            r#"{"namespace":"shop","pod":"a","policy":"b"}"#,
            r#"{"namespace":"","pod":"a"}"#,
            r#"{"namespace":"shop","policy":"b","uid":"u"}"#,
            r#"{"namespace":"shop","pod":"a","podd":"x"}"#,
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_audit_line_of_a_release_says_what_was_undone_and_how() {
        let r = Release {
            policy: Some("quarantine-miners".into()),
            uid: Some("u-1".into()),
            restored_labels: BTreeMap::from([("app".into(), "web".into())]),
            removed_labels: vec!["teflon.io/quarantined".into()],
            network_policy: Some("teflon-quarantine-web-1".into()),
            ..Release::ended(
                &ReleaseTarget::Pod {
                    namespace: "shop".into(),
                    name: "web-1".into(),
                    uid: Some("u-1".into()),
                },
                ReleaseCause::Expired,
                ReleaseOutcome::Released,
            )
        };
        let line = serde_json::to_value(ReleaseRecord::new(&r, Timestamp::from_secs(60))).unwrap();
        assert_eq!(
            line,
            serde_json::json!({
                "event": "release", "time": "1970-01-01T00:01:00.000000000Z", "action": "quarantine",
                "target": {"kind": "pod", "namespace": "shop", "name": "web-1", "uid": "u-1"},
                "cause": "expired", "outcome": "released", "policy": "quarantine-miners", "uid": "u-1",
                "restored_labels": {"app": "web"}, "removed_labels": ["teflon.io/quarantined"],
                "network_policy": "teflon-quarantine-web-1", "attempts": 1,
            })
        );
    }
}
