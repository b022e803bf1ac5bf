//! Undoing actions on a real cluster: [`KubeReleaser`] implements the
//! [`Releaser`](teflon_core::Releaser) port.
//!
//! - A quarantined pod: its NetworkPolicy is deleted first (while the pod is still out of
//!   its Services: no moment in service but cut off the network), then one JSON patch, which
//!   tests the pod's UID and the `teflon.io/quarantine` record it read, puts back the labels
//!   the quarantine removed or overwrote, takes off the labels it added, drops the record and
//!   the deadline, and leaves `teflon.io/released` (when, why). Its controller then adopts
//!   the pod again (it matches the selector once more, and has no controller owner since the
//!   quarantine) and, one pod above its desired count, removes the surplus as it always does
//!   (ReplicaSets remove not-ready and newer pods first). A StatefulSet gets back the ordinal
//!   the quarantined pod kept.
//! - A `block_binary` policy: read, checked to be Teflon's (`app.kubernetes.io/managed-by:
//!   teflon`), deleted under a UID and resourceVersion precondition (a policy re-applied by a
//!   new detection meanwhile is read again, and its new deadline counts).
//!
//! The actions in force ([`Releaser::active`](teflon_core::Releaser::active)) are listed from
//! the objects themselves, served from the API server's watch cache: pods with the
//! `teflon.io/quarantined` label and a quarantine record, TracingPolicyNamespaced objects
//! labelled as Teflon's. Deadlines live on the objects, so whichever replica leads releases
//! what is due, across restarts.
//!
//! Size: about 650 lines before its tests, kept in one file: every release (quarantine,
//! block_binary) and the listing of actions in force share the UID checks and the record format.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use teflon_core::{
    ActionKind, ActiveAction, PlannedAction, QUARANTINE_LABEL, Release, ReleaseCause,
    ReleaseOutcome, ReleaseTarget, Releaser, Timestamp, WorkloadKind,
};

use crate::annotations::{
    BINARY_ANNOTATION, EXPIRES_AT_ANNOTATION, MANAGED_BY, POLICY_LABEL, QUARANTINE_ANNOTATION,
    RELEASED_ANNOTATION, TARGET_ANNOTATION,
};
use crate::block_binary::{policy_name_for, tracing_policy_resource};
use crate::ctx::clock_now;
use crate::events::{Clock, EventRecorder, EventSpec, default_reporting_instance, truncate};
use crate::quarantine::QuarantineRecord;
use crate::retry::{Budget, CallError, RetryPolicy};

/// Undoes quarantines and `block_binary` policies, and lists those in force.
///
/// Calls are retried as [`RetryPolicy::short`] says by default (an operator waits for the
/// answer; an expiry that fails is tried again at the next sweep). Every release that
/// finds its object is recorded as an `events.k8s.io/v1` Event. Build the client with
/// [`crate::client`].
#[derive(Clone)]
pub struct KubeReleaser {
    client: Client,
    retry: RetryPolicy,
    events: EventRecorder,
    namespaces: Option<Vec<String>>,
}

impl fmt::Debug for KubeReleaser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeReleaser")
            .field("retry", &self.retry)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl KubeReleaser {
    /// A releaser; Events name `POD_NAME` (else `HOSTNAME`) as the reporting instance.
    pub fn new(client: Client) -> Self {
        KubeReleaser {
            events: EventRecorder {
                client: client.clone(),
                instance: default_reporting_instance(),
                clock: Arc::new(SystemTime::now),
                retry: RetryPolicy::events(),
            },
            client,
            retry: RetryPolicy::short(),
            namespaces: None,
        }
    }

    /// List the actions in force in these namespaces only (one list per namespace), for a
    /// Teflon whose RBAC is bound per namespace; default: cluster-wide.
    pub fn with_namespaces(mut self, namespaces: Vec<String>) -> Self {
        self.namespaces = Some(namespaces);
        self
    }

    /// Use this retry policy for the release's calls.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Set the Events' `reportingInstance`.
    pub fn with_reporting_instance(mut self, instance: impl Into<String>) -> Self {
        self.events.instance = truncate(&instance.into(), 128);
        self
    }

    /// Read "now" (deadlines, annotations, Event times) from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.events.clock = clock;
        self
    }
}

/// RFC 6901 escaping of one path segment.
fn pointer(prefix: &str, key: &str) -> String {
    format!("{prefix}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// The release patch of `pod`, whose quarantine record is `raw` (`record` parsed): test the
/// UID and the record, put back what the quarantine removed or overwrote, take off what it
/// added, drop the record and the deadline, note the release.
pub(crate) fn release_patch(
    pod: &Pod,
    raw: &str,
    record: &QuarantineRecord,
    cause: ReleaseCause,
    now: Timestamp,
) -> Value {
    let mut ops = Vec::new();
    if let Some(uid) = &pod.metadata.uid {
        ops.push(json!({ "op": "test", "path": "/metadata/uid", "value": uid }));
    }
    ops.push(json!({ "op": "test", "path": pointer("/metadata/annotations", QUARANTINE_ANNOTATION), "value": raw }));
    match &pod.metadata.labels {
        Some(labels) => {
            for key in &record.added_labels {
                if labels.contains_key(key) && !record.removed_labels.contains_key(key) {
                    ops.push(json!({ "op": "remove", "path": pointer("/metadata/labels", key) }));
                }
            }
            for (k, v) in &record.removed_labels {
                ops.push(
                    json!({ "op": "add", "path": pointer("/metadata/labels", k), "value": v }),
                );
            }
        }
        None if !record.removed_labels.is_empty() => {
            ops.push(
                json!({ "op": "add", "path": "/metadata/labels", "value": record.removed_labels }),
            );
        }
        None => {}
    }
    ops.push(
        json!({ "op": "remove", "path": pointer("/metadata/annotations", QUARANTINE_ANNOTATION) }),
    );
    if pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(EXPIRES_AT_ANNOTATION))
    {
        ops.push(json!({ "op": "remove", "path": pointer("/metadata/annotations", EXPIRES_AT_ANNOTATION) }));
    }
    let released =
        json!({ "at": now, "cause": cause.as_str(), "policy": record.policy }).to_string();
    ops.push(json!({ "op": "add", "path": pointer("/metadata/annotations", RELEASED_ANNOTATION), "value": released }));
    Value::Array(ops)
}

/// The labels a release of `pod` takes off: those the quarantine added that are still there.
fn labels_taken_off(pod: &Pod, record: &QuarantineRecord) -> Vec<String> {
    let labels = pod.metadata.labels.as_ref();
    record
        .added_labels
        .iter()
        .filter(|k| {
            labels.is_some_and(|l| l.contains_key(*k)) && !record.removed_labels.contains_key(*k)
        })
        .cloned()
        .collect()
}

/// Whether an expiry may go ahead: the object's own deadline has come.
fn check_deadline(
    annotations: Option<&BTreeMap<String, String>>,
    now: Timestamp,
    what: &str,
) -> Result<(), ReleaseOutcome> {
    let deadline = annotations
        .and_then(|a| a.get(EXPIRES_AT_ANNOTATION))
        .and_then(|t| Timestamp::parse_rfc3339(t).ok());
    match deadline {
        Some(t) if t <= now => Ok(()),
        Some(t) => Err(ReleaseOutcome::Refused(format!(
            "{what} is not due: it expires at {t}"
        ))),
        None => Err(ReleaseOutcome::Refused(format!(
            "{what} has no deadline ({EXPIRES_AT_ANNOTATION}) any more"
        ))),
    }
}

fn failed(what: &str, e: &CallError) -> ReleaseOutcome {
    ReleaseOutcome::Failed(format!("{what}: {e}"))
}

struct Ctx<'a> {
    client: &'a Client,
    budget: &'a Budget<'a>,
    now: Timestamp,
}

async fn release_pod(
    ctx: &Ctx<'_>,
    target: &ReleaseTarget,
    namespace: &str,
    name: &str,
    want_uid: Option<&str>,
    cause: ReleaseCause,
) -> Release {
    let end = |outcome| Release::ended(target, cause, outcome);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let pod = match ctx.budget.call("get pod", || pods.get(name)).await {
        Ok(p) => p,
        Err(e) if e.code() == Some(404) => return end(ReleaseOutcome::NotFound),
        Err(e) => return end(failed("read the pod", &e)),
    };
    let uid = pod.metadata.uid.clone();
    if let Some(want) = want_uid
        && uid.as_deref() != Some(want)
    {
        return end(ReleaseOutcome::Refused(format!(
            "pod {namespace}/{name} has UID {}, not {want}: it is another pod now; nothing changed",
            uid.as_deref().unwrap_or("(none)")
        )));
    }
    let annotations = pod.metadata.annotations.as_ref();
    let Some(raw) = annotations
        .and_then(|a| a.get(QUARANTINE_ANNOTATION))
        .cloned()
    else {
        return Release {
            uid,
            ..end(ReleaseOutcome::Refused(format!(
                "pod {namespace}/{name} is not quarantined by Teflon (no {QUARANTINE_ANNOTATION} annotation): nothing to release"
            )))
        };
    };
    let record: QuarantineRecord = match serde_json::from_str(&raw) {
        Ok(r) => r,
        Err(e) => {
            return Release {
                uid,
                ..end(ReleaseOutcome::Refused(format!(
                    "the {QUARANTINE_ANNOTATION} annotation of pod {namespace}/{name} cannot be read ({e}); restore its labels by hand"
                )))
            };
        }
    };
    let mut out = Release {
        policy: Some(record.policy.clone()),
        uid: uid.clone(),
        ..end(ReleaseOutcome::Released)
    };
    if cause == ReleaseCause::Expired
        && let Err(refused) = check_deadline(
            annotations,
            ctx.now,
            &format!("the quarantine of pod {namespace}/{name}"),
        )
    {
        out.outcome = refused;
        return out;
    }
    if let Some(np) = &record.network_policy {
        let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), namespace);
        let dp = DeleteParams::default();
        match ctx
            .budget
            .call("delete network policy", || api.delete(np, &dp))
            .await
        {
            // 404: deleted by an earlier attempt, or never created.
            Ok(_) => {}
            Err(e) if e.code() == Some(404) => {}
            Err(e) => {
                out.outcome = failed(
                    &format!("delete NetworkPolicy {np} (the pod is still quarantined)"),
                    &e,
                );
                return out;
            }
        }
        out.network_policy = Some(np.clone());
    }
    let taken_off = labels_taken_off(&pod, &record);
    let patch = release_patch(&pod, &raw, &record, cause, ctx.now);
    let patch: Patch<()> = match serde_json::from_value(patch) {
        Ok(p) => Patch::Json(p),
        Err(e) => {
            out.outcome = ReleaseOutcome::Failed(format!("build the patch: {e}"));
            return out;
        }
    };
    let pp = PatchParams::default();
    let patched = ctx
        .budget
        .call("patch pod", || pods.patch(name, &pp, &patch))
        .await;
    match patched {
        Ok(_) => {}
        Err(e) if e.code() == Some(404) => {
            out.outcome = ReleaseOutcome::NotFound;
            return out;
        }
        // A failed `test` (another pod by that name, a record changed meanwhile) or a
        // `remove` of a label no longer there (an earlier, timed-out attempt did apply):
        // look before judging.
        Err(e) if e.code() == Some(422) => {
            match ctx.budget.call("get pod", || pods.get(name)).await {
                Ok(p) if p.metadata.uid != uid => {
                    out.outcome = ReleaseOutcome::NotFound;
                    return out;
                }
                Ok(p)
                    if p.metadata
                        .annotations
                        .as_ref()
                        .is_none_or(|a| !a.contains_key(QUARANTINE_ANNOTATION)) => {}
                Ok(_) => {
                    out.outcome = failed("patch the pod", &e);
                    return out;
                }
                Err(e2) if e2.code() == Some(404) => {
                    out.outcome = ReleaseOutcome::NotFound;
                    return out;
                }
                Err(e2) => {
                    out.outcome = ReleaseOutcome::Failed(format!(
                        "patch the pod: {e}; then reading it back: {e2}"
                    ));
                    return out;
                }
            }
        }
        Err(e) => {
            out.outcome = failed("patch the pod", &e);
            return out;
        }
    }
    out.restored_labels = record.removed_labels;
    out.removed_labels = taken_off;
    out
}

async fn release_policy(
    ctx: &Ctx<'_>,
    target: &ReleaseTarget,
    namespace: &str,
    name: &str,
    cause: ReleaseCause,
) -> (Release, Option<ObjectReference>) {
    let end = |outcome| Release::ended(target, cause, outcome);
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &tracing_policy_resource());
    // Twice at most: a policy re-applied between the read and the delete is read again.
    for _ in 0..2 {
        let obj = match ctx
            .budget
            .call("get tracing policy", || api.get(name))
            .await
        {
            Ok(o) => o,
            Err(e) if e.code() == Some(404) => return (end(ReleaseOutcome::NotFound), None),
            Err(e) => return (end(failed("read the TracingPolicyNamespaced", &e)), None),
        };
        let labels = obj.metadata.labels.as_ref();
        if labels.and_then(|l| l.get(MANAGED_BY.0)).map(String::as_str) != Some(MANAGED_BY.1) {
            return (
                end(ReleaseOutcome::Refused(format!(
                    "TracingPolicyNamespaced {namespace}/{name} was not created by Teflon (no {}={} label): nothing deleted",
                    MANAGED_BY.0, MANAGED_BY.1
                ))),
                None,
            );
        }
        let annotations = obj.metadata.annotations.as_ref();
        let regarding = annotations
            .and_then(|a| a.get(TARGET_ANNOTATION))
            .and_then(|t| workload_reference(namespace, t));
        let mut out = Release {
            policy: labels.and_then(|l| l.get(POLICY_LABEL)).cloned(),
            uid: obj.metadata.uid.clone(),
            ..end(ReleaseOutcome::Released)
        };
        if cause == ReleaseCause::Expired
            && let Err(refused) = check_deadline(
                annotations,
                ctx.now,
                &format!("TracingPolicyNamespaced {namespace}/{name}"),
            )
        {
            out.outcome = refused;
            return (out, regarding);
        }
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: obj.metadata.uid.clone(),
                resource_version: obj.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match ctx
            .budget
            .call("delete tracing policy", || api.delete(name, &dp))
            .await
        {
            Ok(_) => return (out, regarding),
            Err(e) if e.code() == Some(404) => {
                out.outcome = ReleaseOutcome::NotFound;
                return (out, regarding);
            }
            // The precondition: changed since it was read.
            Err(e) if e.code() == Some(409) => continue,
            Err(e) => {
                out.outcome = failed("delete the TracingPolicyNamespaced", &e);
                return (out, regarding);
            }
        }
    }
    (
        end(ReleaseOutcome::Failed(format!(
            "TracingPolicyNamespaced {namespace}/{name} changed while it was being deleted; try again"
        ))),
        None,
    )
}

/// The workload `Kind/name` (a `teflon.io/target` annotation) as an Event's `regarding`.
fn workload_reference(namespace: &str, target: &str) -> Option<ObjectReference> {
    let (kind, name) = target.split_once('/')?;
    let api_version = match kind {
        "Pod" => "v1",
        _ => kind.parse::<WorkloadKind>().ok()?.api_version()?,
    };
    Some(ObjectReference {
        api_version: Some(api_version.to_owned()),
        kind: Some(kind.to_owned()),
        namespace: Some(namespace.to_owned()),
        name: Some(name.to_owned()),
        ..ObjectReference::default()
    })
}

/// The Event's note: what was released, why, and what it came to.
fn release_note(r: &Release) -> String {
    let mut note = format!(
        "release {} ({}",
        r.target,
        match r.cause {
            ReleaseCause::Operator => "asked by an operator",
            ReleaseCause::Expired => "expire_after_secs ran out",
        }
    );
    if let Some(p) = &r.policy {
        note.push_str(&format!("; policy {p}"));
    }
    note.push_str(&format!("): {}", r.outcome));
    if !r.restored_labels.is_empty() {
        let keys: Vec<&str> = r.restored_labels.keys().map(String::as_str).collect();
        note.push_str(&format!("; labels restored: {}", keys.join(", ")));
    }
    if let Some(np) = r
        .network_policy
        .as_ref()
        .filter(|_| r.outcome == ReleaseOutcome::Released)
    {
        note.push_str(&format!("; NetworkPolicy {np} deleted"));
    }
    note
}

/// `teflon.io/expires-at`, parsed.
fn expires_at(annotations: Option<&BTreeMap<String, String>>) -> Option<Timestamp> {
    annotations
        .and_then(|a| a.get(EXPIRES_AT_ANNOTATION))
        .and_then(|t| Timestamp::parse_rfc3339(t).ok())
}

/// A quarantined pod as an action in force (`None` without a readable quarantine record: a
/// pod quarantined by a Teflon that wrote none cannot be released by this one).
pub(crate) fn active_quarantine(pod: &Pod) -> Option<ActiveAction> {
    let annotations = pod.metadata.annotations.as_ref();
    let record: QuarantineRecord =
        serde_json::from_str(annotations?.get(QUARANTINE_ANNOTATION)?).ok()?;
    Some(ActiveAction {
        action: ActionKind::Quarantine,
        target: ReleaseTarget::Pod {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
            uid: pod.metadata.uid.clone(),
        },
        policy: Some(record.policy),
        since: Some(record.at),
        expires_at: expires_at(annotations),
        binary: None,
        applies_to: None,
        network_policy: record.network_policy,
    })
}

/// A Teflon TracingPolicyNamespaced as an action in force.
pub(crate) fn active_block(obj: &DynamicObject) -> Option<ActiveAction> {
    let annotations = obj.metadata.annotations.as_ref();
    Some(ActiveAction {
        action: ActionKind::BlockBinary,
        target: ReleaseTarget::Policy {
            namespace: obj.metadata.namespace.clone()?,
            name: obj.metadata.name.clone()?,
        },
        policy: obj
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POLICY_LABEL))
            .cloned(),
        since: obj
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| Timestamp::from_nanos(i64::try_from(t.0.as_nanosecond()).unwrap_or(i64::MAX))),
        expires_at: expires_at(annotations),
        binary: annotations.and_then(|a| a.get(BINARY_ANNOTATION)).cloned(),
        applies_to: annotations.and_then(|a| a.get(TARGET_ANNOTATION)).cloned(),
        network_policy: None,
    })
}

impl Releaser for KubeReleaser {
    async fn release(&self, target: &ReleaseTarget, cause: ReleaseCause) -> Release {
        let budget = Budget::new(&self.retry, None);
        let ctx = Ctx {
            client: &self.client,
            budget: &budget,
            now: clock_now(&self.events.clock),
        };
        let (mut release, regarding) = match target {
            ReleaseTarget::Pod {
                namespace,
                name,
                uid,
            } => {
                let r = release_pod(&ctx, target, namespace, name, uid.as_deref(), cause).await;
                let regarding = ObjectReference {
                    api_version: Some("v1".to_owned()),
                    kind: Some("Pod".to_owned()),
                    namespace: Some(namespace.clone()),
                    name: Some(name.clone()),
                    uid: r.uid.clone(),
                    ..ObjectReference::default()
                };
                (r, Some(regarding))
            }
            ReleaseTarget::Policy { namespace, name } => {
                release_policy(&ctx, target, namespace, name, cause).await
            }
        };
        release.attempts = budget.attempts();
        tracing::info!(
            target = %release.target, cause = release.cause.as_str(),
            outcome = %release.outcome, attempts = release.attempts, "release"
        );
        // An Event about an object that is not there would regard nothing.
        if release.outcome != ReleaseOutcome::NotFound
            && let Some(regarding) = regarding
        {
            self.events
                .record(EventSpec {
                    regarding,
                    action: "release".to_owned(),
                    reason: release
                        .policy
                        .clone()
                        .unwrap_or_else(|| "teflon".to_owned()),
                    note: release_note(&release),
                    warning: matches!(release.outcome, ReleaseOutcome::Failed(_)),
                })
                .await;
        }
        release
    }

    async fn active(&self) -> Result<Vec<ActiveAction>, String> {
        let budget = Budget::new(&self.retry, None);
        let scopes: Vec<Option<&str>> = match &self.namespaces {
            Some(list) => list.iter().map(|ns| Some(ns.as_str())).collect(),
            None => vec![None],
        };
        // resourceVersion=0: from the API server's watch cache, not a quorum read of etcd.
        let quarantined_lp = ListParams::default().labels(QUARANTINE_LABEL).match_any();
        let teflon_lp = ListParams::default()
            .labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1))
            .match_any();
        let mut out = Vec::new();
        for ns in scopes {
            let pods: Api<Pod> = match ns {
                Some(ns) => Api::namespaced(self.client.clone(), ns),
                None => Api::all(self.client.clone()),
            };
            let quarantined = budget
                .call("list quarantined pods", || pods.list(&quarantined_lp))
                .await
                .map_err(|e| format!("list quarantined pods: {e}"))?;
            out.extend(quarantined.items.iter().filter_map(active_quarantine));
            let resource = tracing_policy_resource();
            let policies: Api<DynamicObject> = match ns {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
                None => Api::all_with(self.client.clone(), &resource),
            };
            match budget
                .call("list tracing policies", || policies.list(&teflon_lp))
                .await
            {
                Ok(list) => out.extend(list.items.iter().filter_map(active_block)),
                // No Tetragon CRD: no block_binary policy can exist.
                Err(e) if e.code() == Some(404) => {}
                Err(e) => return Err(format!("list TracingPolicyNamespaced: {e}")),
            }
        }
        Ok(out)
    }

    fn target_of(&self, action: &PlannedAction) -> Option<ReleaseTarget> {
        target_of(action)
    }
}

/// What undoes `action` on a real cluster.
pub fn target_of(action: &PlannedAction) -> Option<ReleaseTarget> {
    match action.action.kind() {
        ActionKind::Quarantine => Some(ReleaseTarget::Pod {
            namespace: action.pod.namespace.clone(),
            name: action.pod.name.clone(),
            uid: action.pod.uid.clone(),
        }),
        ActionKind::BlockBinary => Some(ReleaseTarget::Policy {
            namespace: action.pod.namespace.clone(),
            name: policy_name_for(action)?,
        }),
        ActionKind::Delete | ActionKind::Evict | ActionKind::Log => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quarantine::{quarantine_labels, quarantine_patch, quarantine_record};
    use crate::testing::PodB;
    use teflon_core::Alert;

    /// Applies an RFC 6902 patch the way the API server does (json-patch, as kube-apiserver's
    /// evanphx/json-patch), to a pod's JSON.
    fn apply(pod: &Pod, patch: &Value) -> Pod {
        let mut doc = serde_json::to_value(pod).unwrap();
        let patch: json_patch::Patch = serde_json::from_value(patch.clone()).unwrap();
        json_patch::patch(&mut doc, &patch.0).unwrap();
        serde_json::from_value(doc).unwrap()
    }

    fn quarantined(pod: &Pod, extra: &[(&str, &str)]) -> Pod {
        let extra: BTreeMap<String, String> = extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let add = quarantine_labels("reap", pod.metadata.name.as_deref().unwrap(), &extra);
        let remove = ["app".to_owned(), "pod-template-hash".to_owned()];
        let record = quarantine_record(
            pod,
            &remove,
            &add,
            "reap",
            Timestamp::from_secs(10),
            Some("teflon-quarantine-web-1".to_owned()),
        );
        let alert = Alert::test().pod("shop", "web-1").build();
        let patch = quarantine_patch(
            pod,
            pod.metadata.uid.as_deref(),
            &remove,
            &add,
            &alert,
            &record,
            Some(Timestamp::from_secs(70)),
        );
        apply(pod, &patch)
    }

    fn release(pod: &Pod) -> Pod {
        let raw = pod.metadata.annotations.as_ref().unwrap()[QUARANTINE_ANNOTATION].clone();
        let record: QuarantineRecord = serde_json::from_str(&raw).unwrap();
        let patch = release_patch(
            pod,
            &raw,
            &record,
            ReleaseCause::Operator,
            Timestamp::from_secs(20),
        );
        apply(pod, &patch)
    }

    #[test]
    fn quarantine_then_release_gives_back_exactly_the_labels_the_pod_had() {
        let before = PodB::new("shop", "web-1")
            .uid("u-1")
            .labels(&[
                ("app", "web"),
                ("pod-template-hash", "7d9f8c"),
                ("tier", "front"),
                ("team", "shop"),
            ])
            .build();
        let q = quarantined(
            &before,
            &[
                ("tier", "quarantined"),
                ("team", "shop"),
                ("forensics", "hold"),
            ],
        );
        let labels = q.metadata.labels.clone().unwrap();
        assert!(!labels.contains_key("app") && labels["tier"] == "quarantined");
        let active = active_quarantine(&q).expect("in force");
        assert_eq!(active.expires_at, Some(Timestamp::from_secs(70)));
        assert_eq!(active.policy.as_deref(), Some("reap"));
        let after = release(&q);
        assert_eq!(after.metadata.labels, before.metadata.labels);
        let annotations = after.metadata.annotations.unwrap();
        assert!(!annotations.contains_key(QUARANTINE_ANNOTATION));
        assert!(!annotations.contains_key(EXPIRES_AT_ANNOTATION));
        let released: Value = serde_json::from_str(&annotations[RELEASED_ANNOTATION]).unwrap();
        assert_eq!(
            released,
            json!({"at": "1970-01-01T00:00:20.000000000Z", "cause": "operator", "policy": "reap"})
        );
        assert!(
            annotations.contains_key(crate::ALERT_ANNOTATION),
            "the evidence stays"
        );
    }

    #[test]
    fn a_release_leaves_labels_others_set_meanwhile_alone() {
        let before = PodB::new("shop", "web-1")
            .uid("u-1")
            .labels(&[("app", "web"), ("pod-template-hash", "7d9f8c")])
            .build();
        let mut q = quarantined(&before, &[]);
        q.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("forensics/case".to_owned(), "42".to_owned());
        let after = release(&q);
        let mut expected = before.metadata.labels.clone().unwrap();
        expected.insert("forensics/case".to_owned(), "42".to_owned());
        assert_eq!(after.metadata.labels.unwrap(), expected);
    }

    #[test]
    fn the_release_patch_tests_the_uid_and_the_record_it_read() {
        let before = PodB::new("shop", "web-1")
            .uid("u-1")
            .labels(&[("app", "web")])
            .build();
        let q = quarantined(&before, &[]);
        let raw = q.metadata.annotations.as_ref().unwrap()[QUARANTINE_ANNOTATION].clone();
        let record: QuarantineRecord = serde_json::from_str(&raw).unwrap();
        let patch = release_patch(&q, &raw, &record, ReleaseCause::Expired, Timestamp::EPOCH);
        let ops = patch.as_array().unwrap();
        assert_eq!(
            ops[0],
            json!({"op": "test", "path": "/metadata/uid", "value": "u-1"})
        );
        assert_eq!(
            ops[1],
            json!({"op": "test", "path": "/metadata/annotations/teflon.io~1quarantine", "value": raw})
        );
        // Another pod by that name (a StatefulSet's replacement) fails the test: nothing applies.
        let mut other = q.clone();
        other.metadata.uid = Some("u-2".to_owned());
        let mut doc = serde_json::to_value(&other).unwrap();
        let p: json_patch::Patch = serde_json::from_value(patch).unwrap();
        assert!(json_patch::patch(&mut doc, &p.0).is_err());
    }

    #[test]
    fn an_expiry_waits_for_the_deadline_on_the_object() {
        let a = BTreeMap::from([(
            EXPIRES_AT_ANNOTATION.to_owned(),
            "1970-01-01T00:01:10Z".to_owned(),
        )]);
        assert!(check_deadline(Some(&a), Timestamp::from_secs(70), "x").is_ok());
        assert!(matches!(
            check_deadline(Some(&a), Timestamp::from_secs(69), "x"),
            Err(ReleaseOutcome::Refused(m)) if m.contains("not due")
        ));
        assert!(check_deadline(None, Timestamp::from_secs(70), "x").is_err());
    }

    #[test]
    fn a_pod_without_a_record_is_not_an_action_in_force() {
        let pod = PodB::new("shop", "web-1")
            .labels(&[(QUARANTINE_LABEL, "old")])
            .build();
        assert!(active_quarantine(&pod).is_none());
    }

    #[test]
    fn block_targets_name_the_workload_kind_they_select() {
        let r = workload_reference("shop", "Deployment/web").unwrap();
        assert_eq!(
            (
                r.api_version.as_deref(),
                r.kind.as_deref(),
                r.name.as_deref()
            ),
            (Some("apps/v1"), Some("Deployment"), Some("web"))
        );
        assert!(workload_reference("shop", "Gadget/x").is_none());
    }
}
