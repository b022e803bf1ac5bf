//! `quarantine`: take the pod out of its workload and off the network, keep it running.
//!
//! One JSON patch (RFC 6902) tests the pod's UID, removes the labels its owner's selector
//! needs (the controller then releases it and creates a replacement; Services drop it) and
//! adds `teflon.io/quarantined=<policy>`, the policy's labels, `teflon.io/quarantined-pod`
//! and the annotations: `teflon.io/alert`, `teflon.io/quarantine` (what the patch changed:
//! the labels it removed or overwrote with their values, the labels it added, the
//! NetworkPolicy, so that a release undoes exactly that, also from another replica) and,
//! with `expire_after_secs`, `teflon.io/expires-at`. The record is written by the same
//! patch that takes the labels, under the same UID test: there is no moment at which the
//! labels are gone and the record of them is not there. Then a deny-all NetworkPolicy
//! selects this pod alone.
//!
//! A StatefulSet cannot replace a quarantined pod while it runs: the replacement would need
//! the same name. The evidence is kept, and the StatefulSet's replica comes back when the
//! quarantined pod is deleted (a Deployment's or DaemonSet's comes back at once).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use teflon_core::selector::Selector;
use teflon_core::{Alert, Outcome, PlannedAction, QUARANTINE_LABEL, Timestamp};

use crate::annotations::{
    ALERT_ANNOTATION, EXPIRES_AT_ANNOTATION, MANAGED_BY, QUARANTINE_ANNOTATION,
    QUARANTINED_POD_LABEL, alert_summary,
};
use crate::ctx::Ctx;
use crate::names::{bounded_name, label_value_for};
use crate::owner::{SelectorLookup, owner_selector};
use crate::retry::CallError;
use crate::view::controller_of;

/// What a quarantine changed on the pod, kept in its [`QUARANTINE_ANNOTATION`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    /// The policy that quarantined it.
    pub policy: String,
    /// When.
    pub at: Timestamp,
    /// Labels the quarantine removed or overwrote, with the values they had: what a release
    /// puts back.
    pub removed_labels: BTreeMap<String, String>,
    /// Labels the quarantine added that the pod did not have: what a release takes off.
    pub added_labels: Vec<String>,
    /// The deny-all NetworkPolicy isolating the pod, if the policy asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<String>,
}

/// The name of the NetworkPolicy isolating `pod`.
pub fn network_policy_name(pod: &str) -> String {
    bounded_name("teflon-quarantine-", pod)
}

/// RFC 6901 escaping of one path segment.
fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The labels quarantine adds.
pub(crate) fn quarantine_labels(
    policy: &str,
    pod: &str,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut labels = extra.clone();
    labels.insert(QUARANTINE_LABEL.to_owned(), label_value_for(policy));
    labels.insert(QUARANTINED_POD_LABEL.to_owned(), label_value_for(pod));
    labels
}

/// What a quarantine of `pod` that removes `remove_keys` and adds `add_labels` changes: the
/// labels it removes or overwrites (with their values) and those it adds.
pub(crate) fn quarantine_record(
    pod: &Pod,
    remove_keys: &[String],
    add_labels: &BTreeMap<String, String>,
    policy: &str,
    at: Timestamp,
    network_policy: Option<String>,
) -> QuarantineRecord {
    let empty = BTreeMap::new();
    let current = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let mut removed_labels = BTreeMap::new();
    for key in remove_keys {
        if let Some(v) = current.get(key) {
            removed_labels.insert(key.clone(), v.clone());
        }
    }
    let mut added_labels = Vec::new();
    for (k, v) in add_labels {
        match current.get(k) {
            None => added_labels.push(k.clone()),
            Some(old) if old != v => {
                removed_labels.insert(k.clone(), old.clone());
            }
            Some(_) => {}
        }
    }
    QuarantineRecord {
        policy: policy.to_owned(),
        at,
        removed_labels,
        added_labels,
        network_policy,
    }
}

/// Ops that set `annotations` on a pod whose annotations are `current`: one `add` of the
/// whole map when it has none, else one `add` per key.
pub(crate) fn annotation_ops(
    current: Option<&BTreeMap<String, String>>,
    annotations: &BTreeMap<&str, String>,
    ops: &mut Vec<Value>,
) {
    if current.is_none() {
        ops.push(json!({ "op": "add", "path": "/metadata/annotations", "value": annotations }));
    } else {
        for (k, v) in annotations {
            ops.push(json!({ "op": "add", "path": format!("/metadata/annotations/{}", pointer_segment(k)), "value": v }));
        }
    }
}

/// The patch: `test` the UID, `remove` the selector labels the pod has, `add` the
/// quarantine labels, the alert annotation, the quarantine record and the deadline.
pub(crate) fn quarantine_patch(
    pod: &Pod,
    expected_uid: Option<&str>,
    remove_keys: &[String],
    add_labels: &BTreeMap<String, String>,
    alert: &Alert,
    record: &QuarantineRecord,
    expires_at: Option<Timestamp>,
) -> Value {
    let mut ops = Vec::new();
    if let Some(uid) = expected_uid {
        ops.push(json!({ "op": "test", "path": "/metadata/uid", "value": uid }));
    }
    let current = pod.metadata.labels.as_ref();
    let mut removed = Vec::new();
    for key in remove_keys {
        if current.is_some_and(|l| l.contains_key(key))
            && !add_labels.contains_key(key)
            && !removed.contains(&key)
        {
            ops.push(json!({ "op": "remove", "path": format!("/metadata/labels/{}", pointer_segment(key)) }));
            removed.push(key);
        }
    }
    if current.is_none() {
        ops.push(json!({ "op": "add", "path": "/metadata/labels", "value": add_labels }));
    } else {
        for (k, v) in add_labels {
            ops.push(json!({ "op": "add", "path": format!("/metadata/labels/{}", pointer_segment(k)), "value": v }));
        }
    }
    let mut annotations = BTreeMap::from([
        (ALERT_ANNOTATION, alert_summary(alert)),
        (
            QUARANTINE_ANNOTATION,
            serde_json::to_string(record).unwrap_or_default(),
        ),
    ]);
    if let Some(t) = expires_at {
        annotations.insert(EXPIRES_AT_ANNOTATION, t.to_rfc3339());
    }
    annotation_ops(pod.metadata.annotations.as_ref(), &annotations, &mut ops);
    Value::Array(ops)
}

/// The deny-all NetworkPolicy for one pod: both policy types, no rules. Owned by the pod,
/// so it goes away with the evidence.
pub(crate) fn network_policy(
    pod: &Pod,
    namespace: &str,
    pod_name: &str,
    policy: &str,
) -> NetworkPolicy {
    let owner = pod.metadata.uid.as_ref().map(|uid| {
        vec![OwnerReference {
            api_version: "v1".to_owned(),
            kind: "Pod".to_owned(),
            name: pod_name.to_owned(),
            uid: uid.clone(),
            controller: None,
            block_owner_deletion: None,
        }]
    });
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(network_policy_name(pod_name)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                (QUARANTINE_LABEL.to_owned(), label_value_for(policy)),
            ])),
            owner_references: owner,
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    QUARANTINED_POD_LABEL.to_owned(),
                    label_value_for(pod_name),
                )])),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: None,
            egress: None,
        }),
    }
}

fn failed(a: &PlannedAction, what: &str, e: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(format!(
        "quarantine pod {}/{}: {what}: {e}",
        a.pod.namespace, a.pod.name
    ))
}

/// Quarantine the pod of `a`.
pub(crate) async fn quarantine(
    ctx: &Ctx<'_>,
    a: &PlannedAction,
    extra_labels: &BTreeMap<String, String>,
    network_isolate: bool,
    expire_after: Option<Duration>,
) -> Outcome {
    let (ns, name) = (a.pod.namespace.as_str(), a.pod.name.as_str());
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pod = match ctx.budget.call("get pod", || pods.get(name)).await {
        Ok(p) => p,
        Err(e) if e.code() == Some(404) => return Outcome::Gone,
        Err(e) => return failed(a, "read pod", e),
    };
    if a.pod.uid.is_some() && pod.metadata.uid != a.pod.uid {
        return Outcome::Gone;
    }
    let already = pod
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(QUARANTINE_LABEL));
    if !already {
        let remove_keys = match controller_of(&pod.metadata) {
            None => Vec::new(),
            Some(owner) => {
                match owner_selector(ctx, ns, &owner.api_version, &owner.kind, &owner.name).await {
                    Ok(SelectorLookup::Found(sel)) => {
                        Selector::from_api(Some(&sel)).required_keys()
                    }
                    Ok(SelectorLookup::Unsupported) => {
                        return failed(
                            a,
                            "unsupported owner",
                            format!(
                                "cannot tell which labels take the pod out of {} {} (supported: ReplicaSet, StatefulSet, DaemonSet, Job)",
                                owner.kind, owner.name
                            ),
                        );
                    }
                    Err(e) => {
                        return failed(a, &format!("read owner {} {}", owner.kind, owner.name), e);
                    }
                }
            }
        };
        let add = quarantine_labels(&a.policy, name, extra_labels);
        let record = quarantine_record(
            &pod,
            &remove_keys,
            &add,
            &a.policy,
            ctx.now,
            network_isolate.then(|| network_policy_name(name)),
        );
        let patch = quarantine_patch(
            &pod,
            pod.metadata.uid.as_deref(),
            &remove_keys,
            &add,
            &a.alert,
            &record,
            expire_after.map(|e| ctx.now.plus(e)),
        );
        let patch: Patch<()> = match serde_json::from_value(patch) {
            Ok(p) => Patch::Json(p),
            Err(e) => return failed(a, "build patch", e),
        };
        let pp = PatchParams::default();
        let patched = ctx
            .budget
            .call("patch pod", || pods.patch(name, &pp, &patch))
            .await;
        match patched {
            Ok(_) => {}
            Err(e) if e.code() == Some(404) => return Outcome::Gone,
            // A failed `test` (another pod by that name) or a `remove` of a label that is no
            // longer there (an earlier, timed-out attempt did apply): look before judging.
            Err(e) if e.code() == Some(422) => {
                match recheck(ctx, &pods, name, pod.metadata.uid.as_deref()).await {
                    Recheck::Quarantined => {}
                    Recheck::Gone => return Outcome::Gone,
                    Recheck::NotQuarantined => return failed(a, "patch pod", e),
                    Recheck::Unknown(e2) => {
                        return failed(a, "patch pod", format!("{e}; then reading it back: {e2}"));
                    }
                }
            }
            Err(e) => return failed(a, "patch pod", e),
        }
    }
    if network_isolate {
        let np_api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), ns);
        let np = network_policy(&pod, ns, name, &a.policy);
        let pp = PostParams::default();
        match ctx
            .budget
            .call("create network policy", || np_api.create(&pp, &np))
            .await
        {
            Ok(_) => {}
            // Same name = same pod: already isolated (a retried or repeated quarantine).
            Err(e) if e.code() == Some(409) => {}
            Err(e) => {
                return failed(
                    a,
                    "labels changed, but creating the NetworkPolicy failed",
                    e,
                );
            }
        }
    }
    Outcome::Success
}

enum Recheck {
    Quarantined,
    Gone,
    NotQuarantined,
    Unknown(CallError),
}

async fn recheck(ctx: &Ctx<'_>, pods: &Api<Pod>, name: &str, uid: Option<&str>) -> Recheck {
    match ctx.budget.call("get pod", || pods.get(name)).await {
        Ok(p) if uid.is_some() && p.metadata.uid.as_deref() != uid => Recheck::Gone,
        Ok(p)
            if p.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(QUARANTINE_LABEL)) =>
        {
            Recheck::Quarantined
        }
        Ok(_) => Recheck::NotQuarantined,
        Err(e) if e.code() == Some(404) => Recheck::Gone,
        Err(e) => Recheck::Unknown(e),
    }
}

#[cfg(test)]
mod tests {
    use teflon_core::Alert;

    use super::*;
    use crate::testing::PodB;

    fn alert() -> Alert {
        Alert::test().pod("shop", "web-1").output("shell").build()
    }

    fn patch_of(
        pod: &Pod,
        uid: Option<&str>,
        remove: &[String],
        add: &BTreeMap<String, String>,
    ) -> Value {
        let record = quarantine_record(pod, remove, add, "reap", Timestamp::from_secs(1), None);
        quarantine_patch(pod, uid, remove, add, &alert(), &record, None)
    }

    #[test]
    fn a_pod_without_labels_or_annotations_gets_whole_maps_added() {
        let pod = PodB::new("shop", "bare").uid("u-1").build();
        let add = quarantine_labels("reap", "bare", &BTreeMap::new());
        let patch = patch_of(&pod, Some("u-1"), &["app".to_owned()], &add);
        let ops = patch.as_array().unwrap();
        assert_eq!(
            ops[0],
            json!({ "op": "test", "path": "/metadata/uid", "value": "u-1" })
        );
        assert_eq!(ops[1]["path"], "/metadata/labels");
        assert_eq!(
            ops[1]["value"],
            json!({ "teflon.io/quarantined": "reap", "teflon.io/quarantined-pod": "bare" })
        );
        assert_eq!(ops[2]["path"], "/metadata/annotations");
        assert_eq!(ops.len(), 3, "nothing to remove from a pod with no labels");
    }

    #[test]
    fn only_selector_labels_the_pod_has_are_removed_and_keys_are_escaped() {
        let pod = PodB::new("shop", "p")
            .labels(&[
                ("app.kubernetes.io/name", "web"),
                ("we~ird", "x"),
                ("keep", "me"),
            ])
            .build();
        let remove = [
            "app.kubernetes.io/name".to_owned(),
            "we~ird".to_owned(),
            "absent".to_owned(),
        ];
        let patch = patch_of(&pod, None, &remove, &BTreeMap::new());
        let removed: Vec<&str> = patch
            .as_array()
            .unwrap()
            .iter()
            .filter(|op| op["op"] == "remove")
            .map(|op| op["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            removed,
            [
                "/metadata/labels/app.kubernetes.io~1name",
                "/metadata/labels/we~0ird"
            ]
        );
        assert!(
            patch
                .as_array()
                .unwrap()
                .iter()
                .all(|op| op["op"] != "test"),
            "no UID known, no test op"
        );
    }

    #[test]
    fn a_selector_label_the_policy_sets_is_replaced_not_removed() {
        let pod = PodB::new("shop", "p").labels(&[("app", "web")]).build();
        let add = quarantine_labels(
            "reap",
            "p",
            &BTreeMap::from([("app".to_owned(), "quarantined".to_owned())]),
        );
        let patch = patch_of(&pod, None, &["app".to_owned()], &add);
        let ops = patch.as_array().unwrap();
        assert!(ops.iter().all(|op| op["op"] != "remove"));
        assert!(ops.contains(
            &json!({ "op": "add", "path": "/metadata/labels/app", "value": "quarantined" })
        ));
    }

    #[test]
    fn the_record_holds_every_label_removed_or_overwritten_with_its_value_and_every_label_added() {
        let pod = PodB::new("shop", "web-1")
            .uid("u-1")
            .labels(&[
                ("app", "web"),
                ("pod-template-hash", "7d9f8c"),
                ("team", "shop"),
                ("tier", "front"),
            ])
            .build();
        let add = quarantine_labels(
            "reap",
            "web-1",
            &BTreeMap::from([
                ("tier".to_owned(), "quarantined".to_owned()),
                ("team".to_owned(), "shop".to_owned()),
                ("forensics".to_owned(), "hold".to_owned()),
            ]),
        );
        let remove = [
            "app".to_owned(),
            "pod-template-hash".to_owned(),
            "absent".to_owned(),
        ];
        let record = quarantine_record(
            &pod,
            &remove,
            &add,
            "reap",
            Timestamp::from_secs(5),
            Some("teflon-quarantine-web-1".to_owned()),
        );
        assert_eq!(
            record.removed_labels,
            BTreeMap::from([
                ("app".to_owned(), "web".to_owned()),
                ("pod-template-hash".to_owned(), "7d9f8c".to_owned()),
                ("tier".to_owned(), "front".to_owned()),
            ]),
            "removed, and overwritten with its old value; `team` already had that value"
        );
        assert_eq!(
            record.added_labels,
            [
                "forensics",
                "teflon.io/quarantined",
                "teflon.io/quarantined-pod"
            ]
        );
        let patch = quarantine_patch(
            &pod,
            Some("u-1"),
            &remove,
            &add,
            &alert(),
            &record,
            Some(Timestamp::from_secs(65)),
        );
        let ops = patch.as_array().unwrap();
        let annotations = ops.last().unwrap();
        assert_eq!(annotations["path"], "/metadata/annotations");
        let saved: QuarantineRecord = serde_json::from_str(
            annotations["value"][QUARANTINE_ANNOTATION]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(saved, record);
        assert_eq!(
            annotations["value"][EXPIRES_AT_ANNOTATION],
            "1970-01-01T00:01:05.000000000Z"
        );
    }

    #[test]
    fn the_network_policy_of_a_long_named_pod_stays_valid() {
        let long = format!("web-{}", "x".repeat(80));
        let pod = PodB::new("shop", &long).uid("u-9").build();
        let np = network_policy(&pod, "shop", &long, "reap");
        let name = np.metadata.name.unwrap();
        assert!(
            name.len() <= 63 && name.starts_with("teflon-quarantine-web-x"),
            "{name}"
        );
        let selector = np.spec.unwrap().pod_selector.unwrap().match_labels.unwrap();
        let value = &selector[QUARANTINED_POD_LABEL];
        assert!(value.len() <= 63);
        assert_eq!(
            value,
            &quarantine_labels("reap", &long, &BTreeMap::new())[QUARANTINED_POD_LABEL]
        );
        assert_eq!(np.metadata.owner_references.unwrap()[0].uid, "u-9");
    }
}
