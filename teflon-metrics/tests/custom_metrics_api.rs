//! Route tests of the custom-metrics API: Teflon's answers compared field by field with real
//! adapter answers (`tests/fixtures/`, see SOURCES.md).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use teflon_core::{StaticCluster, Timestamp, WorkloadKind, WorkloadRef, WorkloadStats};
use teflon_metrics::AttackSnapshot;
use teflon_metrics::custom_metrics::handle;

const V1BETA1_DISCOVERY: &str = include_str!("fixtures/v1beta1-discovery-apiresourcelist.json");
const V1BETA1_PODS: &str = include_str!("fixtures/v1beta1-pods-metricvaluelist.json");
const V1BETA2_PODS: &str = include_str!("fixtures/v1beta2-pods-metricvaluelist.json");
const V1BETA2_OBJECT: &str = include_str!("fixtures/v1beta2-object-metricvaluelist-keptn.json");
const V1BETA2_OBJECT_SELECTOR: &str =
    include_str!("fixtures/v1beta2-object-metricvaluelist-keptn-labelselector.json");

fn cluster() -> StaticCluster {
    StaticCluster::new()
        .deployment("shop", "web", 4, 4)
        .deployment("shop", "api", 2, 2)
        .workload(WorkloadKind::StatefulSet, "shop", "db", 2, 2)
        .deployment("blog", "wp", 1, 1)
}

fn stats(
    kind: WorkloadKind,
    ns: &str,
    name: &str,
    rate: f64,
    infected: u32,
    needed: u32,
) -> WorkloadStats {
    WorkloadStats {
        workload: WorkloadRef::new(kind, ns, name),
        infections_total: 9,
        hits_total: 0,
        backlog: 0,
        infected_pods: infected,
        infection_rate_per_minute: rate,
        time_to_recreation: Some(Duration::from_secs(20)),
        reaps_total: 7,
        desired: 4,
        available: 3,
        available_ratio: 0.75,
        min_available: 2,
        replicas_needed: needed,
        attack_pressure: f64::from(needed) / 4.0,
    }
}

fn snapshot() -> AttackSnapshot {
    AttackSnapshot {
        at: Timestamp::parse_rfc3339("2026-11-23T12:00:05.123456789Z").expect("a valid timestamp"),
        window: Duration::from_secs(120),
        workloads: vec![
            stats(WorkloadKind::Deployment, "shop", "web", 4.5, 2, 6),
            stats(WorkloadKind::StatefulSet, "shop", "db", 1.0, 0, 3),
            stats(WorkloadKind::Deployment, "blog", "wp", 2.0, 1, 2),
        ],
        infected_pods: BTreeSet::from([
            ("shop".to_owned(), "web-1".to_owned()),
            ("shop".to_owned(), "web-3".to_owned()),
            ("blog".to_owned(), "wp-0".to_owned()),
        ]),
    }
}

fn get(path: &str, query: Option<&str>) -> (u16, Value) {
    let (status, body) = handle(path, query, &snapshot(), &cluster());
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, json)
}

fn ok(path: &str, query: Option<&str>) -> Value {
    let (status, json) = get(path, query);
    assert_eq!(status, 200, "{path}: {json}");
    json
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every key of `fixture` is in `ours` with the same JSON type, recursively (array elements
/// against the fixture's first element), except the `skip`ped paths; `ours` has no key the
/// fixture lacks except `extra`.
fn assert_same_shape(ours: &Value, fixture: &Value, at: &str, skip: &[&str], extra: &[&str]) {
    if skip.contains(&at) {
        return;
    }
    assert_eq!(
        type_of(ours),
        type_of(fixture),
        "{at}: {ours} vs fixture {fixture}"
    );
    match (ours, fixture) {
        (Value::Object(o), Value::Object(f)) => {
            for (k, fv) in f {
                let path = format!("{at}.{k}");
                if skip.contains(&path.as_str()) {
                    continue;
                }
                let ov = o
                    .get(k)
                    .unwrap_or_else(|| panic!("{path} missing in {ours}"));
                assert_same_shape(ov, fv, &path, skip, extra);
            }
            for k in o.keys() {
                let path = format!("{at}.{k}");
                assert!(
                    f.contains_key(k) || extra.contains(&path.as_str()),
                    "{path} is not in the fixture"
                );
            }
        }
        (Value::Array(o), Value::Array(f)) => {
            if let Some(first) = f.first() {
                for (i, ov) in o.iter().enumerate() {
                    assert_same_shape(ov, first, &format!("{at}[]"), skip, extra);
                    let _ = i;
                }
            }
        }
        _ => {}
    }
}

fn fixture(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().unwrap()
}

fn is_rfc3339_seconds(s: &str) -> bool {
    Timestamp::parse_rfc3339(s).is_ok() && s.ends_with('Z') && !s.contains('.')
}

#[test]
fn v1beta1_discovery_has_the_shape_of_a_real_adapter() {
    let ours = ok("/apis/custom.metrics.k8s.io/v1beta1", None);
    let f = fixture(V1BETA1_DISCOVERY);
    assert_same_shape(&ours, &f, "", &[], &[]);
    assert_eq!(ours["kind"], f["kind"]);
    assert_eq!(ours["apiVersion"], f["apiVersion"]);
    assert_eq!(ours["groupVersion"], f["groupVersion"]);
    for r in ours["resources"].as_array().unwrap() {
        assert_eq!(r["kind"], "MetricValueList");
        assert_eq!(r["verbs"], json!(["get"]));
        assert_eq!(r["singularName"], "");
    }
}

#[test]
fn discovery_lists_one_resource_per_resource_and_metric() {
    let ours = ok("/apis/custom.metrics.k8s.io/v1beta2/", None);
    assert_eq!(ours["groupVersion"], "custom.metrics.k8s.io/v1beta2");
    let names: Vec<(&str, bool)> = ours["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["namespaced"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("pods/teflon_pod_infected", true),
            ("deployments.apps/teflon_infection_rate_per_minute", true),
            ("deployments.apps/teflon_attack_pressure", true),
            ("deployments.apps/teflon_infected_pods", true),
            ("statefulsets.apps/teflon_infection_rate_per_minute", true),
            ("statefulsets.apps/teflon_attack_pressure", true),
            ("statefulsets.apps/teflon_infected_pods", true),
            // Namespaces are cluster-scoped: real adapters say `namespaced: false` (fixture).
            ("namespaces/teflon_infection_rate_per_minute", false),
        ]
    );
}

#[test]
fn v1beta2_pod_metrics_have_the_shape_of_a_real_adapter() {
    let ours = ok(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/teflon_pod_infected",
        Some("labelSelector=app%3Dweb"),
    );
    let f = fixture(V1BETA2_PODS);
    assert_same_shape(&ours, &f, "", &[], &[]);
    assert_eq!(ours["kind"], f["kind"]);
    assert_eq!(ours["apiVersion"], f["apiVersion"]);
    assert_eq!(ours["metadata"], json!({}));
    for (item, fi) in items(&ours).iter().zip(items(&f).iter().cycle()) {
        assert_eq!(
            item["describedObject"]["kind"],
            fi["describedObject"]["kind"]
        );
        assert_eq!(
            item["describedObject"]["apiVersion"],
            fi["describedObject"]["apiVersion"]
        );
        assert_eq!(item["describedObject"]["namespace"], "shop");
        assert_eq!(
            item["metric"],
            json!({"name": "teflon_pod_infected", "selector": null})
        );
        assert!(is_rfc3339_seconds(item["timestamp"].as_str().unwrap()));
        assert!(
            item.get("windowSeconds").is_none(),
            "an instantaneous value has no window"
        );
    }
}

#[test]
fn pod_metrics_give_one_item_per_selected_pod_with_1_when_infected() {
    let ours = ok(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/teflon_pod_infected",
        Some("labelSelector=app+in+%28web%29"),
    );
    let got: Vec<(&str, &str)> = items(&ours)
        .iter()
        .map(|i| {
            (
                i["describedObject"]["name"].as_str().unwrap(),
                i["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("web-0", "0"),
            ("web-1", "1"),
            ("web-2", "0"),
            ("web-3", "1")
        ]
    );
}

#[test]
fn pod_metrics_without_a_selector_cover_every_pod_of_the_namespace() {
    let ours = ok(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/%2A/teflon_pod_infected",
        None,
    );
    assert_eq!(items(&ours).len(), 4 + 2 + 2);
}

#[test]
fn a_single_pod_by_name_answers_its_value_and_an_unknown_pod_is_a_404() {
    let ours = ok(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-3/teflon_pod_infected",
        None,
    );
    assert_eq!(items(&ours)[0]["value"], "1");
    let (status, body) = get(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-9/teflon_pod_infected",
        None,
    );
    assert_eq!(status, 404);
    assert_eq!(body["kind"], "Status");
}

#[test]
fn v1beta1_pod_metrics_use_metric_name_instead_of_metric() {
    let ours = ok(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/teflon_pod_infected",
        Some("labelSelector=app=web"),
    );
    let f = fixture(V1BETA1_PODS);
    // selfLink was removed from Kubernetes in 1.20; "/__internal" was a 2018 adapter's bug.
    assert_same_shape(&ours, &f, "", &[".metadata.selfLink"], &[]);
    assert_eq!(ours["kind"], f["kind"]);
    assert_eq!(ours["apiVersion"], "custom.metrics.k8s.io/v1beta1");
    let item = &items(&ours)[1];
    assert_eq!(item["metricName"], "teflon_pod_infected");
    assert!(item.get("metric").is_none());
    assert_eq!(item["describedObject"]["kind"], "Pod");
    assert_eq!(item["describedObject"]["apiVersion"], "/v1");
    assert_eq!(item["value"], "1");
}

#[test]
fn v1beta2_object_metrics_have_the_shape_of_a_real_adapter() {
    let ours = ok(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/web/teflon_infection_rate_per_minute",
        None,
    );
    let f = fixture(V1BETA2_OBJECT);
    // The fixture's adapter echoes a selector; with no metricLabelSelector it is null (as in
    // the pods fixture). windowSeconds is optional in the API and ours carries it for rates.
    assert_same_shape(
        &ours,
        &f,
        "",
        &[".items[].metric.selector"],
        &[".items[].windowSeconds"],
    );
    let item = &items(&ours)[0];
    assert_eq!(
        item["describedObject"],
        json!({"kind": "Deployment", "namespace": "shop", "name": "web", "apiVersion": "apps/v1"})
    );
    assert_eq!(
        item["metric"],
        json!({"name": "teflon_infection_rate_per_minute", "selector": null})
    );
    assert_eq!(item["timestamp"], "2026-11-23T12:00:05Z");
    assert_eq!(item["windowSeconds"], 120);
    assert_eq!(item["value"], "4500m");
}

#[test]
fn object_metrics_with_a_wildcard_follow_the_label_selector_and_echo_the_metric_selector() {
    let ours = ok(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/*/teflon_infected_pods",
        Some("labelSelector=app%20notin%20(api)&metricLabelSelector=app%3Dfrontend"),
    );
    let f = fixture(V1BETA2_OBJECT_SELECTOR);
    assert_same_shape(&ours, &f, "", &[], &[]);
    let item = &items(&ours)[0];
    assert_eq!(items(&ours).len(), 1);
    assert_eq!(item["describedObject"]["name"], "web");
    assert_eq!(
        item["metric"]["selector"],
        f["items"][0]["metric"]["selector"]
    );
    assert_eq!(item["value"], "2");
}

#[test]
fn attack_pressure_is_replicas_needed_over_current_replicas() {
    // 6 replicas needed, 4 desired → 1.5.
    let ours = ok(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/web/teflon_attack_pressure",
        None,
    );
    assert_eq!(items(&ours)[0]["value"], "1500m");
    // A workload never attacked has no pressure.
    let ours = ok(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/api/teflon_attack_pressure",
        None,
    );
    assert_eq!(items(&ours)[0]["value"], "0");
}

#[test]
fn statefulsets_are_served_like_deployments() {
    let ours = ok(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/statefulsets.apps/db/teflon_attack_pressure",
        None,
    );
    let item = &items(&ours)[0];
    assert_eq!(item["describedObject"]["kind"], "StatefulSet");
    assert_eq!(item["describedObject"]["apiVersion"], "apps/v1");
    assert_eq!(item["value"], "1500m");
}

#[test]
fn a_missing_object_by_name_is_a_404_status_not_an_empty_list() {
    let (status, body) = get(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/ghost/teflon_attack_pressure",
        None,
    );
    assert_eq!(status, 404);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["reason"], "NotFound");
    assert_eq!(body["code"], 404);
    assert_eq!(body["details"]["group"], "custom.metrics.k8s.io");
    assert_eq!(body["details"]["kind"], "deployments.apps");
    assert!(body["message"].as_str().unwrap().contains("ghost"));
    // A StatefulSet is not a Deployment of the same name.
    let (status, _) = get(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/db/teflon_attack_pressure",
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn unknown_metrics_resources_and_paths_are_404_statuses() {
    for path in [
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/web/http_requests",
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/web/teflon_pod_infected",
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/teflon_attack_pressure",
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/services/web/teflon_attack_pressure",
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/metrics/teflon_attack_pressure",
        "/apis/custom.metrics.k8s.io/v1/namespaces/shop/deployments.apps/web/teflon_attack_pressure",
        "/apis/custom.metrics.k8s.io/v1beta2/a/b/c/d/e/f/g",
        "/metrics",
        "",
    ] {
        let (status, body) = get(path, None);
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["kind"], "Status", "{path}");
        assert_eq!(body["code"], 404, "{path}");
    }
}

#[test]
fn a_malformed_label_selector_is_a_400_status() {
    let (status, body) = get(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/teflon_pod_infected",
        Some("labelSelector=app%20in%20(web"),
    );
    assert_eq!(status, 400);
    assert_eq!(body["reason"], "BadRequest");
}

#[test]
fn namespace_metrics_sum_the_rates_of_the_namespace() {
    let ours = ok(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/metrics/teflon_infection_rate_per_minute",
        None,
    );
    let item = &items(&ours)[0];
    assert_eq!(
        item["describedObject"],
        json!({"kind": "Namespace", "name": "shop", "apiVersion": "/v1"})
    );
    assert_eq!(item["value"], "5500m");
    assert_eq!(item["windowSeconds"], 120);
    let quiet = ok(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/quiet/metrics/teflon_infection_rate_per_minute",
        None,
    );
    assert_eq!(items(&quiet)[0]["value"], "0");
}

#[test]
fn v1beta1_spells_the_window_window_and_v1beta2_spells_it_window_seconds() {
    let path = |v: &str| {
        format!(
            "/apis/custom.metrics.k8s.io/{v}/namespaces/blog/deployments.apps/wp/teflon_infection_rate_per_minute"
        )
    };
    let b1 = ok(&path("v1beta1"), None);
    let b2 = ok(&path("v1beta2"), None);
    let (i1, i2) = (&items(&b1)[0], &items(&b2)[0]);
    assert_eq!(i1["window"], 120);
    assert!(i1.get("windowSeconds").is_none());
    assert_eq!(i2["windowSeconds"], 120);
    assert!(i2.get("window").is_none());
    assert_eq!(i1["metricName"], "teflon_infection_rate_per_minute");
    assert_eq!(i2["metric"]["name"], "teflon_infection_rate_per_minute");
    assert_eq!(i1["value"], i2["value"]);
    assert_eq!(i1["describedObject"], i2["describedObject"]);
}

#[test]
fn the_api_group_lists_both_versions_with_v1beta2_preferred() {
    let ours = ok("/apis/custom.metrics.k8s.io", None);
    assert_eq!(ours["kind"], "APIGroup");
    assert_eq!(ours["preferredVersion"]["version"], "v1beta2");
    assert_eq!(ours["versions"].as_array().unwrap().len(), 2);
}

/// A view that answers lookups but cannot list (as a reflector-backed view may not).
struct LookupOnly(StaticCluster);

impl teflon_core::ClusterView for LookupOnly {
    fn pod(&self, namespace: &str, name: &str) -> Option<teflon_core::PodInfo> {
        self.0.pod(namespace, name)
    }
    fn workload(&self, w: &WorkloadRef) -> Option<teflon_core::WorkloadStatus> {
        teflon_core::ClusterView::workload(&self.0, w)
    }
    fn disruptions_allowed(&self, namespace: &str, pod: &str) -> Option<i32> {
        self.0.disruptions_allowed(namespace, pod)
    }
}

#[test]
fn by_name_requests_work_with_a_view_that_cannot_list() {
    use teflon_core::ClusterView as _;
    let view = LookupOnly(cluster());
    assert!(view.workloads_in("shop").is_empty());
    let (status, body) = handle(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/web/teflon_attack_pressure",
        None,
        &snapshot(),
        &view,
    );
    assert_eq!(status, 200, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["items"][0]["value"], "1500m");
    let (status, body) = handle(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-1/teflon_pod_infected",
        None,
        &snapshot(),
        &view,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = handle(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/ghost/teflon_attack_pressure",
        None,
        &snapshot(),
        &view,
    );
    assert_eq!(status, 404);
}
