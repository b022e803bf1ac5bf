//! The label selector of a pod's owner, read from the API server: which labels keep a pod in
//! its workload (quarantine removes them) and which pods a workload selects (`block_binary`
//! kills the binary in them).

use std::fmt;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Resource;
use kube::api::Api;
use serde::de::DeserializeOwned;

use crate::ctx::Ctx;
use crate::retry::CallError;

/// An owner's label selector, if Teflon knows how to read it.
pub(crate) enum SelectorLookup {
    Found(LabelSelector),
    Unsupported,
}

/// Reads the `spec.selector` of a ReplicaSet, Deployment, StatefulSet, DaemonSet or Job.
pub(crate) async fn owner_selector(
    ctx: &Ctx<'_>,
    namespace: &str,
    api_version: &str,
    kind: &str,
    name: &str,
) -> Result<SelectorLookup, CallError> {
    let group = api_version.split('/').next().unwrap_or_default();
    let sel = match (group, kind) {
        ("apps", "ReplicaSet") => {
            selector_of::<ReplicaSet>(ctx, namespace, name, "get replicaset", |o| {
                Some(o.spec.selector)
            })
            .await?
        }
        ("apps", "Deployment") => {
            selector_of::<Deployment>(ctx, namespace, name, "get deployment", |o| {
                Some(o.spec.selector)
            })
            .await?
        }
        ("apps", "StatefulSet") => {
            selector_of::<StatefulSet>(ctx, namespace, name, "get statefulset", |o| {
                Some(o.spec.selector)
            })
            .await?
        }
        ("apps", "DaemonSet") => {
            selector_of::<DaemonSet>(ctx, namespace, name, "get daemonset", |o| {
                Some(o.spec.selector)
            })
            .await?
        }
        ("batch", "Job") => {
            selector_of::<Job>(ctx, namespace, name, "get job", |o| o.spec?.selector).await?
        }
        _ => None,
    };
    Ok(sel.map_or(SelectorLookup::Unsupported, SelectorLookup::Found))
}

/// GET the owner `name` of type `K` (retried within the action's budget) and take its selector.
async fn selector_of<K>(
    ctx: &Ctx<'_>,
    namespace: &str,
    name: &str,
    what: &'static str,
    selector: impl FnOnce(K) -> Option<LabelSelector>,
) -> Result<Option<LabelSelector>, CallError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let owner = ctx.budget.call(what, || api.get(name)).await?;
    Ok(selector(owner))
}
