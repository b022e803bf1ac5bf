//! Confirming `pod_not_found` (SPEC §4): a pod the cluster view does not know is looked up at
//! the API server before the engine concludes it does not exist. The view may be behind: a
//! pod created a moment ago, or while the watches were down and re-listing. One call, only in
//! that rare case: a LIST of the one pod by name (and by the view's label selector, so a pod
//! outside Teflon's scope stays unknown), which the view's `list` permission already covers.

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::retry::{RetryPolicy, with_retry};
use crate::view::{KubeClusterView, ViewConfig, WithPod};

/// What the API server says of a pod the view does not know.
#[derive(Debug, Clone)]
pub enum Looked {
    /// It exists: decide against this view, which holds it.
    Found(Box<WithPod>),
    /// It does not (or is outside Teflon's scope): `pod_not_found` is right.
    Absent,
}

/// The look-up got no answer (the API server is down or unreachable): ask again later.
#[derive(Debug, thiserror::Error)]
#[error("looking up pod {namespace}/{name}: {message}")]
pub struct LookupError {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Why.
    pub message: String,
}

/// Looks pods up for the engine.
#[derive(Clone)]
pub struct PodLookup {
    client: Client,
    view: KubeClusterView,
    namespaces: Vec<String>,
    pod_selector: Option<String>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for PodLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLookup")
            .field("namespaces", &self.namespaces)
            .field("pod_selector", &self.pod_selector)
            .finish_non_exhaustive()
    }
}

impl PodLookup {
    /// Look-ups for `view`, within the scope `config` gave it.
    pub fn new(client: Client, view: KubeClusterView, config: &ViewConfig) -> Self {
        PodLookup {
            client,
            view,
            namespaces: config.namespaces.clone(),
            pod_selector: config.pod_selector.clone(),
            retry: RetryPolicy::short(),
        }
    }

    /// Is `namespace/name` a pod, by the API server?
    pub async fn lookup(&self, namespace: &str, name: &str) -> Result<Looked, LookupError> {
        if !self.namespaces.is_empty() && !self.namespaces.iter().any(|n| n == namespace) {
            return Ok(Looked::Absent);
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut params = ListParams::default().fields(&format!("metadata.name={name}"));
        if let Some(selector) = &self.pod_selector {
            params = params.labels(selector);
        }
        match with_retry(&self.retry, "look up pod", || api.list(&params)).await {
            Ok(list) => Ok(match list.items.first() {
                Some(pod) => Looked::Found(Box::new(self.view.with_pod(pod))),
                None => Looked::Absent,
            }),
            // Teflon may not read that namespace (bound by RoleBindings to some): it cannot
            // act there either.
            Err(e) if e.code() == Some(403) => Ok(Looked::Absent),
            Err(e) => Err(LookupError {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                message: e.to_string(),
            }),
        }
    }
}
