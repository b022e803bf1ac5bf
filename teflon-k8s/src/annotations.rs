//! The labels and annotations Teflon writes on the objects it acts on or creates, and the
//! alert summary it leaves in [`ALERT_ANNOTATION`]. The quarantine label itself is
//! [`teflon_core::QUARANTINE_LABEL`]: the policy language reserves it too.

use serde_json::json;
use teflon_core::Alert;

use crate::events::truncate;

/// Label every object Teflon creates carries.
pub(crate) const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "teflon");

/// Annotation with the alert that caused an action (JSON: rule, priority, time, source, output).
pub const ALERT_ANNOTATION: &str = "teflon.io/alert";
/// Annotation with the time Teflon undoes the action by itself (RFC 3339), on quarantined
/// pods and `block_binary` policies whose policy has `expire_after_secs`.
pub const EXPIRES_AT_ANNOTATION: &str = "teflon.io/expires-at";

/// Label selecting exactly one quarantined pod (value: its name, or a hash of a long one).
pub const QUARANTINED_POD_LABEL: &str = "teflon.io/quarantined-pod";
/// Annotation with what the quarantine changed, so that a release undoes exactly that
/// (JSON, [`QuarantineRecord`](crate::QuarantineRecord)).
pub const QUARANTINE_ANNOTATION: &str = "teflon.io/quarantine";
/// Annotation a release leaves on the pod: when, why, and the policy whose quarantine it
/// undid (JSON).
pub const RELEASED_ANNOTATION: &str = "teflon.io/released";

/// Label with the policy that created a TracingPolicyNamespaced.
pub(crate) const POLICY_LABEL: &str = "teflon.io/policy";
/// Annotation with the binary a TracingPolicyNamespaced kills.
pub(crate) const BINARY_ANNOTATION: &str = "teflon.io/binary";
/// Annotation with the pods it applies to (`Deployment/web`, `Pod/solo`).
pub(crate) const TARGET_ANNOTATION: &str = "teflon.io/target";

/// The alert, summarised for annotations: JSON with rule, priority, time, source, output.
pub(crate) fn alert_summary(alert: &Alert) -> String {
    json!({
        "rule": alert.rule,
        "priority": alert.priority.as_str(),
        "time": alert.time.to_rfc3339(),
        "source": alert.source,
        "output": truncate(&alert.output, 1024),
    })
    .to_string()
}
