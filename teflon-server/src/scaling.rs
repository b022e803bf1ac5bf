//! `GET /v1/scaling/{namespace}/{resource}/{name}`: one workload's attack-as-load numbers as a
//! small JSON object, for KEDA's `metrics-api` trigger (SPEC §8) and anything else that scales
//! on a JSON value (`valueLocation: replicas_needed` or `attack_pressure`).
//!
//! The numbers come from the latest attack snapshot; the pressure is recomputed against the
//! workload's current desired replicas, as the custom-metrics API does. A workload the cluster
//! view has but that was never attacked answers zeros (the scaler's minimum applies); one the
//! view does not have is a 404 and a view not synced yet a 503, so that KEDA counts a failure
//! and applies its `fallback` instead of scaling on a made-up value.

use http::StatusCode;
use serde::Serialize;
use teflon_core::{ClusterView, Timestamp, WorkloadKind, WorkloadRef};
use teflon_metrics::AttackSnapshot;

/// The reply body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingBody {
    /// `Deployment` or `StatefulSet`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Replicas needed to keep `min_available` serving under the attack (Little's law with the
    /// backlog): scale to this (KEDA `metricType: AverageValue`, `targetValue: "1"`).
    pub replicas_needed: u32,
    /// `replicas_needed / desired` against the current desired replicas; above 1 the
    /// attackers are winning (KEDA `metricType: Value`, `targetValue: "1"`).
    pub attack_pressure: f64,
    /// Desired replicas now.
    pub desired: u32,
    /// Ready replicas now.
    pub available: u32,
    /// `min_available` of the policy that last matched, resolved against `desired`.
    pub min_available: u32,
    /// The attack rate (every alert that hits a pod), per minute, over the time observed.
    pub infection_rate_per_minute: f64,
    /// Time to recreation, reaps still waiting counted at least their age.
    pub time_to_recreation_secs: Option<f64>,
    /// Infected pods waiting for their reap.
    pub backlog: u32,
    /// Infected pods now.
    pub infected_pods: u32,
    /// True when the ledger has numbers for the workload (it was attacked within retention).
    pub attacked: bool,
    /// The sliding window of the rates, seconds.
    pub window_secs: u64,
    /// When the numbers were taken.
    pub at: Timestamp,
}

/// The workload kind for a path segment: `deployments` or `statefulsets`, optionally with
/// their group (`deployments.apps`), as `kubectl` spells resources.
pub fn parse_resource(segment: &str) -> Option<WorkloadKind> {
    match segment {
        "deployments" | "deployments.apps" | "deployment" => Some(WorkloadKind::Deployment),
        "statefulsets" | "statefulsets.apps" | "statefulset" => Some(WorkloadKind::StatefulSet),
        _ => None,
    }
}

/// Answer one request: the status and the JSON body.
pub fn reply(
    snapshot: &AttackSnapshot,
    view: &dyn ClusterView,
    namespace: &str,
    resource: &str,
    name: &str,
) -> (StatusCode, String) {
    let err = |code: StatusCode, message: String| {
        let body = serde_json::json!({ "error": message }).to_string();
        (code, body)
    };
    let Some(kind) = parse_resource(resource) else {
        return err(
            StatusCode::NOT_FOUND,
            format!("unknown resource {resource:?}: use deployments or statefulsets"),
        );
    };
    if !view.is_synced() {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "the cluster view has not synced yet".to_owned(),
        );
    }
    let workload = WorkloadRef::new(kind, namespace, name);
    let Some(status) = view.workload(&workload) else {
        return err(
            StatusCode::NOT_FOUND,
            format!("{} {namespace}/{name} not found", workload.kind),
        );
    };
    let stats = snapshot.workload(&workload);
    let needed = stats.map_or(0, |s| s.replicas_needed);
    let body = ScalingBody {
        kind: workload.kind.to_string(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        replicas_needed: needed,
        attack_pressure: f64::from(needed) / f64::from(status.desired.max(1)),
        desired: status.desired,
        available: status.available,
        min_available: stats.map_or(0, |s| s.min_available),
        infection_rate_per_minute: stats.map_or(0.0, |s| s.infection_rate_per_minute),
        time_to_recreation_secs: stats
            .and_then(|s| s.time_to_recreation)
            .map(|d| d.as_secs_f64()),
        backlog: stats.map_or(0, |s| s.backlog),
        infected_pods: stats.map_or(0, |s| s.infected_pods),
        attacked: stats.is_some(),
        window_secs: snapshot.window.as_secs(),
        at: snapshot.at,
    };
    match serde_json::to_string(&body) {
        Ok(b) => (StatusCode::OK, b),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use teflon_core::{StaticCluster, WorkloadStats};

    use super::*;

    fn web() -> WorkloadRef {
        WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")
    }

    fn snapshot() -> AttackSnapshot {
        AttackSnapshot {
            at: Timestamp::from_secs(1_767_225_620),
            window: Duration::from_secs(300),
            workloads: vec![WorkloadStats {
                workload: web(),
                infections_total: 9,
                hits_total: 20,
                backlog: 1,
                infected_pods: 1,
                infection_rate_per_minute: 60.0,
                time_to_recreation: Some(Duration::from_secs(10)),
                reaps_total: 8,
                desired: 3,
                available: 1,
                available_ratio: 1.0 / 3.0,
                min_available: 1,
                replicas_needed: 12,
                attack_pressure: 4.0,
            }],
            infected_pods: Default::default(),
        }
    }

    fn body(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn an_attacked_workload_answers_its_numbers_with_the_pressure_against_desired_now() {
        // The autoscaler already went to 6: the pressure is 12/6, not the snapshot's 12/3.
        let view = StaticCluster::new().deployment("shop", "web", 6, 2);
        let (code, b) = reply(&snapshot(), &view, "shop", "deployments", "web");
        assert_eq!(code, StatusCode::OK);
        let b = body(&b);
        assert_eq!(b["replicas_needed"], 12);
        assert_eq!(b["attack_pressure"], 2.0);
        assert_eq!(
            (b["desired"].as_u64(), b["available"].as_u64()),
            (Some(6), Some(2))
        );
        assert_eq!(b["time_to_recreation_secs"], 10.0);
        assert_eq!(b["backlog"], 1);
        assert_eq!(b["attacked"], true);
        assert_eq!(b["kind"], "Deployment");
    }

    #[test]
    fn a_workload_never_attacked_answers_zeros() {
        let view = StaticCluster::new().workload(WorkloadKind::StatefulSet, "shop", "db", 3, 3);
        let (code, b) = reply(&snapshot(), &view, "shop", "statefulsets.apps", "db");
        assert_eq!(code, StatusCode::OK);
        let b = body(&b);
        assert_eq!(b["replicas_needed"], 0);
        assert_eq!(b["attack_pressure"], 0.0);
        assert_eq!(b["attacked"], false);
        assert_eq!(b["time_to_recreation_secs"], serde_json::Value::Null);
    }

    #[test]
    fn an_unknown_workload_or_resource_is_a_404() {
        let view = StaticCluster::new().deployment("shop", "web", 3, 3);
        let (code, b) = reply(&snapshot(), &view, "shop", "deployments", "nope");
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert!(body(&b)["error"].as_str().unwrap().contains("shop/nope"));
        let (code, _) = reply(&snapshot(), &view, "shop", "daemonsets", "web");
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
}
