//! `scale`: read and set the replicas of a Deployment or StatefulSet through its `scale`
//! subresource, and [`KubeScaler`], the autoscaler's [`Scaler`] of a real cluster (one
//! `events.k8s.io/v1` Event per change, through the actions' [`EventRecorder`]).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v1::Scale;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::future::Future;

use k8s_openapi::api::core::v1::ObjectReference;
use teflon_core::autoscale::{ScaleDecision, Scaler, ScalerError};
use teflon_core::{WorkloadKind, WorkloadRef};

use crate::events::{EventRecorder, EventSpec};
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

impl From<ScaleError> for ScalerError {
    fn from(e: ScaleError) -> Self {
        match e {
            ScaleError::Unsupported(w) => ScalerError::Unsupported(w),
            ScaleError::NotFound(w) => ScalerError::NotFound(w),
            ScaleError::Api { workload, message } => ScalerError::Failed { workload, message },
        }
    }
}

/// The [`Scaler`] of a real cluster: the `scale` subresource of Deployments and StatefulSets,
/// current replicas from it, and an `events.k8s.io/v1` Event per change (`AttackScaleUp` /
/// `AttackScaleDown`, regarding the workload).
#[derive(Clone)]
pub struct KubeScaler {
    client: Client,
    events: EventRecorder,
}

impl std::fmt::Debug for KubeScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeScaler")
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl KubeScaler {
    /// Scale through `client` (build it with [`crate::client`]); Events name `POD_NAME`
    /// (else `HOSTNAME`) as the reporting instance.
    pub fn new(client: Client) -> Self {
        KubeScaler {
            events: EventRecorder::new(client.clone()),
            client,
        }
    }

    fn event(d: &ScaleDecision) -> EventSpec {
        let w = &d.workload;
        EventSpec {
            regarding: ObjectReference {
                api_version: w.kind.api_version().map(str::to_owned),
                kind: Some(w.kind.as_str().to_owned()),
                name: Some(w.name.clone()),
                namespace: Some(w.namespace.clone()),
                ..ObjectReference::default()
            },
            action: "Scale".to_owned(),
            reason: if d.to > d.from {
                "AttackScaleUp"
            } else {
                "AttackScaleDown"
            }
            .to_owned(),
            note: format!("replicas {} -> {}: {}", d.from, d.to, d.reason),
            warning: false,
        }
    }
}

impl Scaler for KubeScaler {
    fn scale(
        &self,
        workload: &WorkloadRef,
        replicas: u32,
    ) -> impl Future<Output = Result<(), ScalerError>> + Send {
        let client = self.client.clone();
        let workload = workload.clone();
        async move {
            scale(&client, &workload, replicas)
                .await
                .map(|_| ())
                .map_err(ScalerError::from)
        }
    }

    fn current_replicas(
        &self,
        workload: &WorkloadRef,
    ) -> impl Future<Output = Result<Option<u32>, ScalerError>> + Send {
        let client = self.client.clone();
        let workload = workload.clone();
        async move {
            match get_scale(&client, &workload).await {
                Ok(s) => Ok(Some(s.desired)),
                Err(ScaleError::NotFound(_)) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    }

    fn announce(&self, decision: &ScaleDecision) -> impl Future<Output = ()> + Send {
        let events = self.events.clone();
        let spec = Self::event(decision);
        async move { events.record(spec).await }
    }
}
