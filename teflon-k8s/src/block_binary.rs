//! `block_binary`: a Tetragon `TracingPolicyNamespaced` that SIGKILLs the binary in the
//! workload's pods. Falco's detection becomes in-kernel prevention.
//!
//! Two hooks: `security_bprm_check` with `matchArgs` on the executed file (kills whoever
//! tries to exec the binary, before it runs) and `fd_install` with `matchBinaries` (kills
//! an instance already running as soon as it opens a file). Written with server-side apply
//! under one name per (workload, binary), so repeating the action changes nothing but the
//! `teflon.io/expires-at` deadline (with `expire_after_secs`: a new detection keeps the
//! block in force that much longer).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use teflon_core::{Outcome, PlannedAction, Timestamp, WorkloadKind, WorkloadRef};

use crate::annotations::{
    ALERT_ANNOTATION, BINARY_ANNOTATION, EXPIRES_AT_ANNOTATION, MANAGED_BY, POLICY_LABEL,
    TARGET_ANNOTATION, alert_summary,
};
use crate::ctx::{Ctx, FIELD_MANAGER};
use crate::names::{dns_label_part, fnv1a64, label_value_for};
use crate::owner::{SelectorLookup, owner_selector};

/// The Tetragon resource written.
pub fn tracing_policy_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cilium.io", "v1alpha1", "TracingPolicyNamespaced"),
        "tracingpoliciesnamespaced",
    )
}

/// `teflon-block-<workload>-<binary basename>-<hash>`: DNS-safe, ≤ 63 characters, and
/// distinct for distinct (kind, workload, binary) even when the readable part collides.
pub fn tracing_policy_name(owner_kind: &str, owner_name: &str, binary: &str) -> String {
    let hash = fnv1a64(&[owner_kind, owner_name, binary]) as u32;
    let base = binary.rsplit('/').next().unwrap_or(binary);
    let readable = dns_label_part(
        &format!("{owner_name}-{base}"),
        63 - "teflon-block-".len() - 9,
    );
    if readable.is_empty() {
        format!("teflon-block-{hash:08x}")
    } else {
        format!("teflon-block-{readable}-{hash:08x}")
    }
}

/// The name of the TracingPolicyNamespaced that `block_binary` writes for `a`, when it can
/// write one (the alert names a binary, the workload's kind is known).
pub(crate) fn policy_name_for(a: &PlannedAction) -> Option<String> {
    let binary = a.binary.as_deref().filter(|b| !b.is_empty())?;
    let (kind, owner) = match &a.workload {
        Some(w) => (workload_api(&w.kind)?.1, w.name.as_str()),
        None => ("Pod", a.pod.name.as_str()),
    };
    Some(tracing_policy_name(kind, owner, binary))
}

/// The TracingPolicyNamespaced object.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tracing_policy(
    namespace: &str,
    name: &str,
    selector: &LabelSelector,
    binary: &str,
    policy: &str,
    target: &str,
    alert_summary: &str,
    expires_at: Option<Timestamp>,
) -> Value {
    let sigkill = json!([{ "action": "Sigkill" }]);
    let mut annotations = json!({
        BINARY_ANNOTATION: binary,
        TARGET_ANNOTATION: target,
        ALERT_ANNOTATION: alert_summary,
    });
    if let Some(t) = expires_at {
        annotations[EXPIRES_AT_ANNOTATION] = json!(t.to_rfc3339());
    }
    json!({
        "apiVersion": "cilium.io/v1alpha1",
        "kind": "TracingPolicyNamespaced",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                MANAGED_BY.0: MANAGED_BY.1,
                POLICY_LABEL: label_value_for(policy),
            },
            "annotations": annotations,
        },
        "spec": {
            "podSelector": selector,
            "kprobes": [
                {
                    "call": "security_bprm_check",
                    "syscall": false,
                    "args": [{ "index": 0, "type": "linux_binprm" }],
                    "selectors": [{
                        "matchArgs": [{ "index": 0, "operator": "Equal", "values": [binary] }],
                        "matchActions": sigkill,
                    }],
                },
                {
                    "call": "fd_install",
                    "syscall": false,
                    "selectors": [{
                        "matchBinaries": [{ "operator": "In", "values": [binary] }],
                        "matchActions": sigkill,
                    }],
                },
            ],
        },
    })
}

/// `(apiVersion, kind)` of a workload whose pods Teflon can select.
fn workload_api(kind: &WorkloadKind) -> Option<(&'static str, &str)> {
    Some((kind.api_version()?, kind.as_str()))
}

fn failed(a: &PlannedAction, e: impl std::fmt::Display) -> Outcome {
    Outcome::Failed(format!(
        "block_binary in {}/{}: {e}",
        a.pod.namespace, a.pod.name
    ))
}

/// Where the policy applies: the workload's selector, or for a standalone pod its own labels.
async fn target_selector(
    ctx: &Ctx<'_>,
    a: &PlannedAction,
) -> Result<(LabelSelector, String, String), Outcome> {
    match &a.workload {
        Some(w) => {
            let WorkloadRef {
                kind,
                namespace,
                name,
            } = w;
            let Some((api_version, k)) = workload_api(kind) else {
                return Err(failed(
                    a,
                    format!("cannot select the pods of {w} (unsupported kind)"),
                ));
            };
            match owner_selector(ctx, namespace, api_version, k, name).await {
                Ok(SelectorLookup::Found(sel)) => Ok((sel, k.to_owned(), name.clone())),
                Ok(SelectorLookup::Unsupported) => Err(failed(a, format!("{w} has no selector"))),
                Err(e) if e.code() == Some(404) => Err(Outcome::Gone),
                Err(e) => Err(failed(a, format!("read {w}: {e}"))),
            }
        }
        None => {
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &a.pod.namespace);
            let pod = match ctx.budget.call("get pod", || pods.get(&a.pod.name)).await {
                Ok(p) => p,
                Err(e) if e.code() == Some(404) => return Err(Outcome::Gone),
                Err(e) => return Err(failed(a, format!("read pod: {e}"))),
            };
            let labels: BTreeMap<String, String> = pod.metadata.labels.unwrap_or_default();
            if labels.is_empty() {
                // An empty podSelector would kill the binary in every pod of the namespace.
                return Err(failed(
                    a,
                    "the standalone pod has no labels to select it by; refusing a namespace-wide policy",
                ));
            }
            let sel = LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            };
            Ok((sel, "Pod".to_owned(), a.pod.name.clone()))
        }
    }
}

/// Create or update the TracingPolicyNamespaced for `a`.
pub(crate) async fn block_binary(ctx: &Ctx<'_>, a: &PlannedAction) -> Outcome {
    let Some(binary) = a.binary.as_deref().filter(|b| !b.is_empty()) else {
        return failed(
            a,
            "the alert names no binary (none of the policy's binary fields is set)",
        );
    };
    let (selector, kind, owner) = match target_selector(ctx, a).await {
        Ok(t) => t,
        Err(outcome) => return outcome,
    };
    if selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
    {
        return failed(
            a,
            "the workload's selector is empty; refusing a namespace-wide policy",
        );
    }
    let ns = a.pod.namespace.as_str();
    let name = tracing_policy_name(&kind, &owner, binary);
    let target = format!("{kind}/{owner}");
    let obj = tracing_policy(
        ns,
        &name,
        &selector,
        binary,
        &a.policy,
        &target,
        &alert_summary(&a.alert),
        a.action.expire_after().map(|e| ctx.now.plus(e)),
    );
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &tracing_policy_resource());
    // Strict: a field Tetragon's CRD does not know is refused (422), not silently pruned
    // from a policy that would then not kill.
    let pp = PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict();
    let patch = Patch::Apply(obj);
    match ctx
        .budget
        .call("apply tracing policy", || api.patch(&name, &pp, &patch))
        .await
    {
        Ok(_) => Outcome::Success,
        Err(e) if e.code() == Some(404) => failed(
            a,
            format!(
                "{e} (is Tetragon installed? the cilium.io/v1alpha1 TracingPolicyNamespaced CRD is missing)"
            ),
        ),
        Err(e) => failed(a, format!("apply TracingPolicyNamespaced {name}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_are_dns_labels_and_differ_per_binary_path() {
        let a = tracing_policy_name("Deployment", "web", "/usr/bin/nc");
        let b = tracing_policy_name("Deployment", "web", "/bin/nc");
        assert_ne!(a, b);
        assert_eq!(
            a,
            tracing_policy_name("Deployment", "web", "/usr/bin/nc"),
            "stable"
        );
        let long = tracing_policy_name("StatefulSet", &"Very_Long.Name".repeat(10), "/opt/x/ＮＣ");
        for n in [&a, &b, &long] {
            assert!(n.len() <= 63, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
            assert!(!n.ends_with('-') && n.starts_with("teflon-block-"), "{n}");
        }
    }

    #[test]
    fn the_policy_kills_on_exec_and_on_any_running_instance() {
        let sel = LabelSelector {
            match_labels: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
            match_expressions: None,
        };
        let p = tracing_policy(
            "shop",
            "n",
            &sel,
            "/usr/bin/nc",
            "reap",
            "Deployment/web",
            "{}",
            Some(Timestamp::from_secs(60)),
        );
        assert_eq!(
            p["metadata"]["annotations"][EXPIRES_AT_ANNOTATION],
            "1970-01-01T00:01:00.000000000Z"
        );
        assert_eq!(
            p["spec"]["podSelector"],
            json!({ "matchLabels": { "app": "web" } })
        );
        let kprobes = p["spec"]["kprobes"].as_array().unwrap();
        assert_eq!(
            kprobes[0]["selectors"][0]["matchArgs"][0]["values"],
            json!(["/usr/bin/nc"])
        );
        assert_eq!(
            kprobes[1]["selectors"][0]["matchBinaries"][0],
            json!({ "operator": "In", "values": ["/usr/bin/nc"] })
        );
        for k in kprobes {
            assert_eq!(
                k["selectors"][0]["matchActions"],
                json!([{ "action": "Sigkill" }])
            );
        }
    }
}
