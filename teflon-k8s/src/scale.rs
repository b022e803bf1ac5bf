//! `scale`: read and set the replicas of a Deployment or StatefulSet through its `scale`
//! subresource (used by the autoscaler).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use teflon_core::{WorkloadKind, WorkloadRef};

use crate::retry::{CallError, RetryPolicy, with_retry};

/// Why reading or changing a scale failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// Only Deployments and StatefulSets are scaled.
    #[error("{0} cannot be scaled (only Deployment and StatefulSet are supported)")]
    Unsupported(WorkloadRef),
    /// The workload does not exist.
    #[error("{0} not found")]
    NotFound(WorkloadRef),
    /// The API server refused or did not answer (after retries).
    #[error("scale {workload}: {message}")]
    Api {
        /// The workload.
        workload: WorkloadRef,
        /// What the API server said.
        message: String,
    },
}

/// A workload's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleState {
    /// `spec.replicas`: what is asked for.
    pub desired: u32,
    /// `status.replicas`: what the controller last counted.
    pub current: u32,
}

fn state(s: &Scale) -> ScaleState {
    let n = |x: Option<i32>| u32::try_from(x.unwrap_or(0)).unwrap_or(0);
    ScaleState {
        desired: n(s.spec.as_ref().and_then(|s| s.replicas)),
        current: n(s.status.as_ref().map(|s| s.replicas)),
    }
}

fn map_err(w: &WorkloadRef, e: CallError) -> ScaleError {
    if e.code() == Some(404) {
        ScaleError::NotFound(w.clone())
    } else {
        ScaleError::Api {
            workload: w.clone(),
            message: e.to_string(),
        }
    }
}

/// Read the scale of a Deployment or StatefulSet.
pub async fn get_scale(client: &Client, workload: &WorkloadRef) -> Result<ScaleState, ScaleError> {
    let retry = RetryPolicy::short();
    let name = workload.name.as_str();
    let result = match workload.kind {
        WorkloadKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &workload.namespace);
            with_retry(&retry, "get scale", || api.get_scale(name)).await
        }
        WorkloadKind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), &workload.namespace);
            with_retry(&retry, "get scale", || api.get_scale(name)).await
        }
        _ => return Err(ScaleError::Unsupported(workload.clone())),
    };
    result.map(|s| state(&s)).map_err(|e| map_err(workload, e))
}

/// Set `spec.replicas` of a Deployment or StatefulSet (a merge patch of the `scale`
/// subresource: absolute, so a retry cannot over-scale). Returns the scale after the change.
pub async fn scale(
    client: &Client,
    workload: &WorkloadRef,
    replicas: u32,
) -> Result<ScaleState, ScaleError> {
    let retry = RetryPolicy::short();
    let name = workload.name.as_str();
    let pp = PatchParams::default();
    let patch = Patch::Merge(json!({ "spec": { "replicas": replicas } }));
    let result = match workload.kind {
        WorkloadKind::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &workload.namespace);
            with_retry(&retry, "patch scale", || api.patch_scale(name, &pp, &patch)).await
        }
        WorkloadKind::StatefulSet => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), &workload.namespace);
            with_retry(&retry, "patch scale", || api.patch_scale(name, &pp, &patch)).await
        }
        _ => return Err(ScaleError::Unsupported(workload.clone())),
    };
    result.map(|s| state(&s)).map_err(|e| map_err(workload, e))
}
