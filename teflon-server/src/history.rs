//! The response history behind `GET /v1/actions?namespace=&since=&limit=`: the actions taken,
//! each with its current state and how to undo it.
//!
//! Two sources, merged at every request: the actions this replica executed and the releases
//! it recorded (in memory, the latest [`CAPACITY`] of each), and the actions in force read
//! from the cluster itself (quarantined pods, Teflon's TracingPolicyNamespaced objects), so
//! that what is still in force after a restart or a failover — what an operator may need to
//! undo — is always listed, with its deadline.
//!
//! Size: about 540 lines before its tests, kept in one file: the merge of the two sources of the
//! response history and its query; both sides share the entry type and the ordering.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::{Value, json};
use teflon_core::{
    ActionKind, ActiveAction, DynReleaser, PlannedAction, Release, ReleaseCause, ReleaseOutcome,
    ReleaseTarget, Timestamp, WorkloadRef,
};
use warp::reply::Response;

use crate::audit::AuditRecord;

/// Actions (and, separately, releases) remembered per replica.
pub const CAPACITY: usize = 10_000;
/// Default and largest `limit` of `GET /v1/actions`.
pub const DEFAULT_LIMIT: usize = 500;
/// How long `GET /v1/actions` waits for the cluster's list of actions in force.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct ActionEntry {
    at: Timestamp,
    action: ActionKind,
    namespace: String,
    pod: String,
    uid: Option<String>,
    workload: Option<WorkloadRef>,
    policy: String,
    rule: String,
    alert_id: String,
    outcome: &'static str,
    outcome_message: Option<String>,
    undo: Option<ReleaseTarget>,
    expires_at: Option<Timestamp>,
    binary: Option<String>,
}

#[derive(Debug, Clone)]
struct ReleaseEntry {
    at: Timestamp,
    target: ReleaseTarget,
    cause: ReleaseCause,
    policy: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    actions: VecDeque<ActionEntry>,
    releases: VecDeque<ReleaseEntry>,
}

/// Executed actions and releases, the latest [`CAPACITY`] of each.
#[derive(Debug)]
pub struct History {
    inner: Mutex<Inner>,
    capacity: usize,
}

fn push<T>(q: &mut VecDeque<T>, item: T, capacity: usize) {
    if q.len() >= capacity {
        q.pop_front();
    }
    q.push_back(item);
}

impl History {
    /// Keep the latest `capacity` actions and releases.
    pub fn new(capacity: usize) -> Self {
        History {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An executed action and its audit record; `undo` releases it (when it took effect and
    /// can be undone).
    pub(crate) fn action(
        &self,
        plan: &PlannedAction,
        record: &AuditRecord,
        undo: Option<ReleaseTarget>,
    ) {
        let at = record.acted_at.unwrap_or(record.decision.time);
        let entry = ActionEntry {
            at,
            action: plan.action.kind(),
            namespace: plan.pod.namespace.clone(),
            pod: plan.pod.name.clone(),
            uid: plan.pod.uid.clone(),
            workload: plan.workload.clone(),
            policy: plan.policy.to_string(),
            rule: plan.alert.rule.clone(),
            alert_id: record.alert_id.clone(),
            outcome: record.outcome.unwrap_or("unknown"),
            outcome_message: record.outcome_message.clone(),
            expires_at: undo
                .as_ref()
                .and(plan.action.expire_after())
                .map(|e| at.plus(e)),
            undo,
            binary: plan.binary.clone(),
        };
        push(&mut self.lock().actions, entry, self.capacity);
    }

    /// A release (that released something).
    pub(crate) fn release(&self, r: &Release, at: Timestamp) {
        if r.outcome != ReleaseOutcome::Released {
            return;
        }
        let entry = ReleaseEntry {
            at,
            target: r.target.clone(),
            cause: r.cause,
            policy: r.policy.clone(),
        };
        push(&mut self.lock().releases, entry, self.capacity);
    }
}

/// An action's state now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// In force: the pod is quarantined, the policy kills the binary.
    Active,
    /// Undone by an operator.
    Released,
    /// Undone when its `expire_after_secs` ran out.
    Expired,
    /// Done and not reversible (delete, evict): the controller replaced the pod.
    Done,
    /// Not in force any more, and not released by Teflon: the pod or policy was deleted.
    Gone,
    /// The action did not take effect.
    Failed,
}

/// How to undo an action.
#[derive(Debug, Clone, Serialize)]
pub struct Undo {
    /// `POST`.
    pub method: &'static str,
    /// `/v1/release`.
    pub path: &'static str,
    /// The request body.
    pub body: Value,
    /// The same with the CLI.
    pub command: String,
}

impl Undo {
    fn of(target: &ReleaseTarget) -> Undo {
        let body = match target {
            ReleaseTarget::Pod {
                namespace,
                name,
                uid: Some(uid),
            } => json!({ "namespace": namespace, "pod": name, "uid": uid }),
            ReleaseTarget::Pod {
                namespace, name, ..
            } => json!({ "namespace": namespace, "pod": name }),
            ReleaseTarget::Policy { namespace, name } => {
                json!({ "namespace": namespace, "policy": name })
            }
        };
        let mut command = target.command();
        if let ReleaseTarget::Pod { uid: Some(uid), .. } = target {
            command.push_str(&format!(" --uid {uid}"));
        }
        Undo {
            method: "POST",
            path: "/v1/release",
            body,
            command,
        }
    }
}

/// One line of `GET /v1/actions`.
#[derive(Debug, Clone, Serialize)]
pub struct ActionView {
    /// When the action was taken (from the cluster's record for actions in force that this
    /// replica did not execute).
    pub time: Option<Timestamp>,
    /// The action.
    pub action: ActionKind,
    /// Namespace.
    pub namespace: String,
    /// The pod it was taken on (none for a `block_binary` policy known from the cluster only).
    pub pod: Option<String>,
    /// The pod's UID.
    pub uid: Option<String>,
    /// Its workload (`Deployment shop/web`), or what a `block_binary` policy applies to.
    pub workload: Option<String>,
    /// The deciding policy.
    pub policy: Option<String>,
    /// The alert's rule.
    pub rule: Option<String>,
    /// The alert's id (the audit log has its decision).
    pub alert_id: Option<String>,
    /// The action's outcome (`success`, `gone`, `disruption_budget`, `failed`).
    pub outcome: Option<&'static str>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome_message: Option<String>,
    /// Its state now.
    pub state: State,
    /// When Teflon undoes it by itself.
    pub expires_at: Option<Timestamp>,
    /// When it was released or expired.
    pub released_at: Option<Timestamp>,
    /// `block_binary`: the binary killed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// The object that holds it in force: the pod's NetworkPolicy, the TracingPolicyNamespaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// How to undo it (active actions only).
    pub undo: Option<Undo>,
    /// What else to know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

fn same_target(a: &ReleaseTarget, b: &ReleaseTarget) -> bool {
    match (a, b) {
        (
            ReleaseTarget::Pod {
                namespace: na,
                name: a,
                uid: ua,
            },
            ReleaseTarget::Pod {
                namespace: nb,
                name: b,
                uid: ub,
            },
        ) => na == nb && a == b && (ua.is_none() || ub.is_none() || ua == ub),
        (a, b) => a == b,
    }
}

fn object_of(target: &ReleaseTarget, active: Option<&ActiveAction>) -> Option<String> {
    match target {
        ReleaseTarget::Policy { name, .. } => Some(format!("TracingPolicyNamespaced/{name}")),
        ReleaseTarget::Pod { .. } => active
            .and_then(|a| a.network_policy.as_ref())
            .map(|np| format!("NetworkPolicy/{np}")),
    }
}

/// Merge what this replica remembers with what is in force in the cluster (`active`; `None`
/// when it could not be listed), newest first.
pub(crate) fn views(history: &History, active: Option<&[ActiveAction]>) -> Vec<ActionView> {
    let inner = history.lock();
    let active_list = active.unwrap_or(&[]);
    let mut matched = vec![false; active_list.len()];
    let mut out = Vec::with_capacity(inner.actions.len() + active_list.len());
    for a in inner.actions.iter().rev() {
        let mut v = ActionView {
            time: Some(a.at),
            action: a.action,
            namespace: a.namespace.clone(),
            pod: Some(a.pod.clone()),
            uid: a.uid.clone(),
            workload: a.workload.as_ref().map(ToString::to_string),
            policy: Some(a.policy.clone()),
            rule: Some(a.rule.clone()),
            alert_id: Some(a.alert_id.clone()).filter(|s| !s.is_empty()),
            outcome: Some(a.outcome),
            outcome_message: a.outcome_message.clone(),
            state: State::Done,
            expires_at: None,
            released_at: None,
            binary: a.binary.clone(),
            object: None,
            undo: None,
            note: None,
        };
        match (a.outcome, &a.undo) {
            ("success" | "gone", _)
                if !matches!(a.action, ActionKind::Quarantine | ActionKind::BlockBinary) =>
            {
                v.state = State::Done;
                v.note = Some("not reversible: the pod was deleted and its controller replaced it");
            }
            ("gone", _) => {
                v.state = State::Gone;
                v.note = Some("the pod was gone before the action");
            }
            ("success", Some(target)) => {
                let in_force = active_list
                    .iter()
                    .position(|x| same_target(&x.target, target));
                let released = inner
                    .releases
                    .iter()
                    .rev()
                    .find(|r| same_target(&r.target, target) && r.at >= a.at);
                v.object = object_of(target, in_force.map(|i| &active_list[i]));
                match (in_force, released) {
                    (Some(i), _) => {
                        matched[i] = true;
                        v.state = State::Active;
                        v.expires_at = active_list[i].expires_at;
                        v.undo = Some(Undo::of(&active_list[i].target));
                    }
                    (None, Some(r)) => {
                        v.state = match r.cause {
                            ReleaseCause::Operator => State::Released,
                            ReleaseCause::Expired => State::Expired,
                        };
                        v.released_at = Some(r.at);
                    }
                    (None, None) if active.is_none() => {
                        // The cluster could not be asked: most likely still in force.
                        v.state = State::Active;
                        v.expires_at = a.expires_at;
                        v.undo = Some(Undo::of(target));
                        v.note = Some("state not confirmed: the cluster could not be listed");
                    }
                    (None, None) => {
                        v.state = State::Gone;
                        v.note = Some(
                            "no longer in force, and not released by Teflon: the pod or policy was deleted",
                        );
                    }
                }
            }
            ("success", None) => {
                v.state = State::Done;
            }
            _ => {
                v.state = State::Failed;
            }
        }
        out.push(v);
    }
    // In force in the cluster, from before this replica's memory (a restart, a failover).
    for (i, a) in active_list.iter().enumerate() {
        if matched[i] {
            continue;
        }
        let (pod, uid) = match &a.target {
            ReleaseTarget::Pod { name, uid, .. } => (Some(name.clone()), uid.clone()),
            ReleaseTarget::Policy { .. } => (None, None),
        };
        out.push(ActionView {
            time: a.since,
            action: a.action,
            namespace: a.target.namespace().to_owned(),
            pod,
            uid,
            workload: a.applies_to.clone(),
            policy: a.policy.clone(),
            rule: None,
            alert_id: None,
            outcome: Some("success"),
            outcome_message: None,
            state: State::Active,
            expires_at: a.expires_at,
            released_at: None,
            binary: a.binary.clone(),
            object: object_of(&a.target, Some(a)),
            undo: Some(Undo::of(&a.target)),
            note: None,
        });
    }
    // Releases of actions this replica did not execute.
    for r in inner.releases.iter().rev() {
        let known = inner
            .actions
            .iter()
            .any(|a| a.undo.as_ref().is_some_and(|t| same_target(t, &r.target)));
        if known {
            continue;
        }
        let (pod, uid) = match &r.target {
            ReleaseTarget::Pod { name, uid, .. } => (Some(name.clone()), uid.clone()),
            ReleaseTarget::Policy { .. } => (None, None),
        };
        out.push(ActionView {
            time: None,
            action: r.target.action(),
            namespace: r.target.namespace().to_owned(),
            pod,
            uid,
            workload: None,
            policy: r.policy.clone(),
            rule: None,
            alert_id: None,
            outcome: Some("success"),
            outcome_message: None,
            state: match r.cause {
                ReleaseCause::Operator => State::Released,
                ReleaseCause::Expired => State::Expired,
            },
            expires_at: None,
            released_at: Some(r.at),
            binary: None,
            object: object_of(&r.target, None),
            undo: None,
            note: Some("taken before this replica started"),
        });
    }
    out.sort_by(|a, b| {
        let t = |v: &ActionView| v.time.or(v.released_at);
        t(b).cmp(&t(a))
    });
    out
}

/// `since`: an RFC 3339 time, or a duration back from `now` (`90s`, `15m`, `2h`, `7d`).
pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Ok(t) = Timestamp::parse_rfc3339(text) {
        return Ok(t);
    }
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().map_err(|_| {
        format!("since: {text:?} is neither an RFC 3339 time nor a duration like 15m")
    })?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => {
            return Err(format!(
                "since: unknown unit {unit:?} in {text:?} (s, m, h or d)"
            ));
        }
    };
    Ok(now.minus(Duration::from_secs(secs)))
}

fn json_reply(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response {
    let mut r = Response::new(body.into().into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

#[derive(Serialize)]
struct Body<'a> {
    actions: &'a [ActionView],
    /// Set when the cluster could not be listed (states of actions in force unconfirmed).
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

/// Handle `GET /v1/actions` (already authenticated): the `history` merged with the actions
/// in force that `releaser` lists.
pub(crate) async fn reply(
    history: &History,
    releaser: Option<&Arc<dyn DynReleaser>>,
    now: Timestamp,
    query: &str,
) -> Response {
    let bad = |m: String| json_reply(StatusCode::BAD_REQUEST, json!({ "error": m }).to_string());
    let mut namespace = None;
    let mut since = None;
    let mut limit = DEFAULT_LIMIT;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode_str(&v.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned();
        match k {
            "namespace" if !v.is_empty() => namespace = Some(v),
            "namespace" => {}
            "since" => match parse_since(&v, now) {
                Ok(t) => since = Some(t),
                Err(e) => return bad(e),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) => limit = n.min(CAPACITY),
                Err(_) => return bad(format!("limit must be a non-negative integer, got {v:?}")),
            },
            other => {
                return bad(format!(
                    "unknown parameter {other:?} (namespace, since, limit)"
                ));
            }
        }
    }
    let (active, warning) = match releaser {
        None => (Some(Vec::new()), None),
        Some(r) => match tokio::time::timeout(LIST_TIMEOUT, r.active_boxed()).await {
            Ok(Ok(a)) => (Some(a), None),
            Ok(Err(e)) => (
                None,
                Some(format!("the actions in force could not be listed: {e}")),
            ),
            Err(_) => (
                None,
                Some("the actions in force could not be listed within 10 s".to_owned()),
            ),
        },
    };
    let mut all = views(history, active.as_deref());
    all.retain(|v| {
        namespace.as_ref().is_none_or(|ns| &v.namespace == ns)
            && since.is_none_or(|s| v.time.or(v.released_at).is_none_or(|t| t >= s))
    });
    all.truncate(limit);
    let body = Body {
        actions: &all,
        warning,
    };
    match serde_json::to_vec(&body) {
        Ok(b) => json_reply(StatusCode::OK, b),
        Err(e) => json_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": e.to_string() }).to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use teflon_core::{
        Action, ActionId, Alert, DecisionRecord, PodTarget, Reason, Verdict, WorkloadKind,
    };

    use super::*;
    use crate::audit::AuditTail;

    fn plan(action: Action, pod: &str) -> PlannedAction {
        PlannedAction {
            id: ActionId(1),
            pod: PodTarget {
                namespace: "shop".into(),
                name: pod.into(),
                uid: Some(format!("uid-{pod}")),
            },
            workload: Some(WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")),
            action,
            policy: Arc::from("p"),
            binary: None,
            alert: Arc::new(Alert::test().pod("shop", pod).build()),
            deadline: Timestamp::from_secs(300),
        }
    }

    fn record(p: &PlannedAction, at: i64, outcome: &'static str) -> AuditRecord {
        let decision = DecisionRecord {
            seq: 0,
            time: Timestamp::from_secs(at),
            rule: p.alert.rule.clone(),
            priority: p.alert.priority,
            target: None,
            workload: None,
            policy: Some("p".into()),
            verdict: Verdict::Act,
            action: Some(p.action.kind()),
            reason: Reason::Matched,
            dry_run: false,
        };
        let mut r = AuditRecord::new(decision, &AuditTail::decided("a-1", None, None));
        r.outcome = Some(outcome);
        r.acted_at = Some(Timestamp::from_secs(at));
        r
    }

    fn pod(name: &str) -> ReleaseTarget {
        ReleaseTarget::Pod {
            namespace: "shop".into(),
            name: name.into(),
            uid: Some(format!("uid-{name}")),
        }
    }

    fn quarantine() -> Action {
        Action::Quarantine {
            labels: Default::default(),
            network_isolate: true,
            expire_after: Some(Duration::from_secs(60)),
        }
    }

    fn active(name: &str) -> ActiveAction {
        ActiveAction {
            action: ActionKind::Quarantine,
            target: pod(name),
            policy: Some("p".into()),
            since: Some(Timestamp::from_secs(1)),
            expires_at: Some(Timestamp::from_secs(61)),
            binary: None,
            applies_to: None,
            network_policy: Some(format!("teflon-quarantine-{name}")),
        }
    }

    #[test]
    fn each_action_shows_its_state_now_and_how_to_undo_it() {
        let h = History::new(100);
        let q1 = plan(quarantine(), "web-1");
        let q2 = plan(quarantine(), "web-2");
        let q3 = plan(quarantine(), "web-3");
        let d = plan(
            Action::Delete {
                grace_period_secs: None,
            },
            "web-4",
        );
        h.action(&q1, &record(&q1, 1, "success"), Some(pod("web-1")));
        h.action(&q2, &record(&q2, 2, "success"), Some(pod("web-2")));
        h.action(&q3, &record(&q3, 3, "success"), Some(pod("web-3")));
        h.action(&d, &record(&d, 4, "success"), None);
        let released = Release::ended(
            &pod("web-2"),
            ReleaseCause::Expired,
            ReleaseOutcome::Released,
        );
        h.release(&released, Timestamp::from_secs(62));
        let refused = Release::ended(
            &pod("web-3"),
            ReleaseCause::Operator,
            ReleaseOutcome::Refused("no".into()),
        );
        h.release(&refused, Timestamp::from_secs(63));
        // web-1 is in force; web-5 is in force from before this replica; web-3 vanished.
        let v = views(&h, Some(&[active("web-1"), active("web-5")]));
        let by_pod = |p: &str| v.iter().find(|x| x.pod.as_deref() == Some(p)).unwrap();
        assert_eq!(by_pod("web-1").state, State::Active);
        assert_eq!(
            by_pod("web-1").undo.as_ref().unwrap().command,
            "teflon release --namespace shop --pod web-1 --uid uid-web-1"
        );
        assert_eq!(
            by_pod("web-1").object.as_deref(),
            Some("NetworkPolicy/teflon-quarantine-web-1")
        );
        assert_eq!(by_pod("web-1").expires_at, Some(Timestamp::from_secs(61)));
        assert_eq!(by_pod("web-2").state, State::Expired);
        assert_eq!(by_pod("web-2").released_at, Some(Timestamp::from_secs(62)));
        assert!(by_pod("web-2").undo.is_none());
        assert_eq!(
            by_pod("web-3").state,
            State::Gone,
            "a refused release released nothing"
        );
        assert_eq!(by_pod("web-4").state, State::Done);
        assert_eq!(by_pod("web-5").state, State::Active);
        assert_eq!(by_pod("web-5").time, Some(Timestamp::from_secs(1)));
        // Newest first; the one known from the cluster only sorts by its `since`.
        let order: Vec<&str> = v.iter().map(|x| x.pod.as_deref().unwrap()).collect();
        assert_eq!(order, ["web-4", "web-3", "web-2", "web-1", "web-5"]);
    }

    #[test]
    fn without_the_cluster_an_action_is_reported_active_but_unconfirmed() {
        let h = History::new(100);
        let q = plan(quarantine(), "web-1");
        h.action(&q, &record(&q, 1, "success"), Some(pod("web-1")));
        let v = views(&h, None);
        assert_eq!(v[0].state, State::Active);
        assert_eq!(v[0].expires_at, Some(Timestamp::from_secs(61)));
        assert!(v[0].note.unwrap().contains("not confirmed"));
    }

    #[test]
    fn since_takes_a_time_or_a_duration_back() {
        let now = Timestamp::from_secs(10_000);
        assert_eq!(
            parse_since("15m", now).unwrap(),
            Timestamp::from_secs(10_000 - 900)
        );
        assert_eq!(
            parse_since("2h", now).unwrap(),
            Timestamp::from_secs(10_000 - 7200)
        );
        assert_eq!(
            parse_since("1970-01-01T00:00:05Z", now).unwrap(),
            Timestamp::from_secs(5)
        );
        assert!(parse_since("soon", now).is_err());
        assert!(parse_since("5w", now).unwrap_err().contains("unknown unit"));
    }
}
