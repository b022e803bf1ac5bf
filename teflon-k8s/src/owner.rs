//! The label selector of a pod's owner, read from the API server: which labels keep a pod in
//! its workload (quarantine removes them) and which pods a workload selects (`block_binary`
//! kills the binary in them).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::Api;

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
    let c = ctx.client.clone();
    let group = api_version.split('/').next().unwrap_or_default();
    let sel = match (group, kind) {
        ("apps", "ReplicaSet") => {
            let api: Api<ReplicaSet> = Api::namespaced(c, namespace);
            Some(
                ctx.budget
                    .call("get replicaset", || api.get(name))
                    .await?
                    .spec
                    .selector,
            )
        }
        ("apps", "Deployment") => {
            let api: Api<Deployment> = Api::namespaced(c, namespace);
            Some(
                ctx.budget
                    .call("get deployment", || api.get(name))
                    .await?
                    .spec
                    .selector,
            )
        }
        ("apps", "StatefulSet") => {
            let api: Api<StatefulSet> = Api::namespaced(c, namespace);
            Some(
                ctx.budget
                    .call("get statefulset", || api.get(name))
                    .await?
                    .spec
                    .selector,
            )
        }
        ("apps", "DaemonSet") => {
            let api: Api<DaemonSet> = Api::namespaced(c, namespace);
            Some(
                ctx.budget
                    .call("get daemonset", || api.get(name))
                    .await?
                    .spec
                    .selector,
            )
        }
        ("batch", "Job") => {
            let api: Api<Job> = Api::namespaced(c, namespace);
            ctx.budget
                .call("get job", || api.get(name))
                .await?
                .spec
                .and_then(|s| s.selector)
        }
        _ => None,
    };
    Ok(sel.map_or(SelectorLookup::Unsupported, SelectorLookup::Found))
}
