//! `delete`: delete the pod, preconditioned on its UID, with the policy's grace period.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use teflon_core::{Outcome, PodTarget};

use crate::ctx::Ctx;

/// The `DeleteOptions` sent: UID precondition (never the pod's replacement) and grace period.
pub(crate) fn delete_params(pod: &PodTarget, grace_period_secs: Option<u32>) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: grace_period_secs,
        preconditions: pod.uid.as_ref().map(|uid| Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

/// Delete the pod. 404 → `Gone`; 409 (the UID precondition failed: a different pod now has
/// that name) → `Gone`. A retry after a timed-out attempt that did delete answers 404 → `Gone`.
pub(crate) async fn delete(
    ctx: &Ctx<'_>,
    pod: &PodTarget,
    grace_period_secs: Option<u32>,
) -> Outcome {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &pod.namespace);
    let dp = delete_params(pod, grace_period_secs);
    match ctx
        .budget
        .call("delete pod", || api.delete(&pod.name, &dp))
        .await
    {
        Ok(_) => Outcome::Success,
        Err(e) if matches!(e.code(), Some(404 | 409)) => Outcome::Gone,
        Err(e) => Outcome::Failed(format!("delete pod {}/{}: {e}", pod.namespace, pod.name)),
    }
}
