//! `evict`: the Eviction API (`policy/v1`), so the API server enforces PodDisruptionBudgets.

use serde_json::{Value, json};
use teflon_core::{Outcome, PodTarget};

use crate::ctx::Ctx;

/// The Eviction body, built by hand: `deleteOptions` carries the UID precondition and the
/// grace period exactly as the API server expects them.
pub(crate) fn eviction_body(pod: &PodTarget, grace_period_secs: Option<u32>) -> Value {
    let mut body = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": pod.name, "namespace": pod.namespace },
    });
    let mut options = serde_json::Map::new();
    if let Some(uid) = &pod.uid {
        options.insert("preconditions".to_owned(), json!({ "uid": uid }));
    }
    if let Some(g) = grace_period_secs {
        options.insert("gracePeriodSeconds".to_owned(), json!(g));
    }
    if !options.is_empty() {
        body["deleteOptions"] = Value::Object(options);
    }
    body
}

/// Evict the pod. 429 with a DisruptionBudget cause → `DisruptionBudget` (final, not retried);
/// 404 → `Gone`; 409 (UID precondition) → `Gone`.
pub(crate) async fn evict(
    ctx: &Ctx<'_>,
    pod: &PodTarget,
    grace_period_secs: Option<u32>,
) -> Outcome {
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/eviction",
        pod.namespace, pod.name
    );
    let body = match serde_json::to_vec(&eviction_body(pod, grace_period_secs)) {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(format!("evict pod {}/{}: {e}", pod.namespace, pod.name)),
    };
    let result = ctx
        .budget
        .call("evict pod", || {
            let request = http::Request::post(path.as_str())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            async move {
                let request = request.map_err(kube::Error::HttpError)?;
                ctx.client.request_text(request).await
            }
        })
        .await;
    match result {
        Ok(_) => Outcome::Success,
        Err(e) if e.is_disruption_budget() => Outcome::DisruptionBudget,
        Err(e) if matches!(e.code(), Some(404 | 409)) => Outcome::Gone,
        Err(e) => Outcome::Failed(format!("evict pod {}/{}: {e}", pod.namespace, pod.name)),
    }
}
