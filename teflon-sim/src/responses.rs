//! What Teflon's responses leave on the simulated cluster, as a real cluster keeps them on
//! its objects: the quarantine record of a pod (the `teflon.io/quarantine` annotation), the
//! NetworkPolicies and the Tetragon policies. Below both the cluster (which writes them when it
//! acts) and the releases (which undo them).

use std::collections::{BTreeMap, BTreeSet};

use teflon_core::{Action, PlannedAction, QUARANTINE_LABEL, Timestamp, WorkloadRef};

/// What quarantine changed on one pod (the simulated `teflon.io/quarantine` annotation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimQuarantine {
    pub(crate) policy: String,
    pub(crate) at: Timestamp,
    /// Labels removed or overwritten, with their values.
    pub(crate) removed_labels: BTreeMap<String, String>,
    /// Labels added that the pod did not have.
    pub(crate) added_labels: Vec<String>,
    /// The workload it was taken out of.
    pub(crate) owner: Option<WorkloadRef>,
    pub(crate) network_policy: Option<String>,
    pub(crate) expires_at: Option<Timestamp>,
}

/// A simulated Tetragon `TracingPolicyNamespaced` written by `block_binary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimTracingPolicy {
    pub(crate) policy: String,
    pub(crate) binary: String,
    /// `Kind/name` of the pods it applies to.
    pub(crate) applies_to: String,
    pub(crate) since: Timestamp,
    pub(crate) expires_at: Option<Timestamp>,
}

/// Everything a release can undo.
#[derive(Debug, Clone, Default)]
pub(crate) struct Responses {
    /// By pod (namespace, name).
    pub(crate) quarantines: BTreeMap<(String, String), SimQuarantine>,
    /// (namespace, name).
    pub(crate) network_policies: BTreeSet<(String, String)>,
    /// By (namespace, name).
    pub(crate) tracing_policies: BTreeMap<(String, String), SimTracingPolicy>,
}

/// `[a-z0-9-]`, runs of anything else as one `-`.
fn dns_part(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().map(|c| c.to_ascii_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// The simulated NetworkPolicy isolating `pod`.
pub(crate) fn network_policy_name(pod: &str) -> String {
    format!("teflon-quarantine-{}", dns_part(pod))
}

/// The simulated TracingPolicyNamespaced for `binary` in the pods of `owner` (`Kind/name`).
pub(crate) fn tracing_policy_name(owner: &str, binary: &str) -> String {
    let name = owner.rsplit('/').next().unwrap_or(owner);
    let base = binary.rsplit('/').next().unwrap_or(binary);
    format!("teflon-block-{}-{}", dns_part(name), dns_part(base))
}

/// Quarantine `pod` for `plan`: strip the selector labels `strip`, set the policy's labels and
/// `teflon.io/quarantined`; the record of what changed.
pub(crate) fn quarantine(
    labels: &mut BTreeMap<String, String>,
    strip: &BTreeSet<String>,
    plan: &PlannedAction,
    owner: Option<WorkloadRef>,
    now: Timestamp,
) -> SimQuarantine {
    let (extra, isolate, expire_after) = match &plan.action {
        Action::Quarantine {
            labels,
            network_isolate,
            expire_after,
        } => (labels.clone(), *network_isolate, *expire_after),
        _ => (BTreeMap::new(), true, None),
    };
    let mut add = extra;
    add.insert(QUARANTINE_LABEL.to_owned(), plan.policy.to_string());
    let mut removed_labels = BTreeMap::new();
    for key in strip {
        if !add.contains_key(key)
            && let Some(v) = labels.remove(key)
        {
            removed_labels.insert(key.clone(), v);
        }
    }
    let mut added_labels = Vec::new();
    for (k, v) in add {
        match labels.insert(k.clone(), v.clone()) {
            None => added_labels.push(k),
            Some(old) if old != v => {
                removed_labels.insert(k, old);
            }
            Some(_) => {}
        }
    }
    SimQuarantine {
        policy: plan.policy.to_string(),
        at: now,
        removed_labels,
        added_labels,
        owner,
        network_policy: isolate.then(|| network_policy_name(&plan.pod.name)),
        expires_at: expire_after.map(|e| now.plus(e)),
    }
}
