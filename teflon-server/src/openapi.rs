//! OpenAPI documents of the custom-metrics API, for the kube-aggregator.
//!
//! The aggregator downloads every APIService's OpenAPI: `GET /openapi/v3` first (a discovery
//! document, `{"paths": {"apis/<group>/<version>": {"serverRelativeURL": …}}}`, whose paths it
//! then proxies), falling back on a 404 to `GET /openapi/v2` (a Swagger 2.0 document it converts).
//! Both are requested with `Accept: application/json`, and the group-version documents with
//! `If-None-Match` once an `ETag` was seen. A server that answers 404 to both is logged as
//! "OpenAPI spec does not exist" on every resync, so both are served: small documents that
//! describe the `GET` paths of `custom.metrics.k8s.io` (v1beta1, v1beta2) and their
//! `MetricValueList`, each with a stable `ETag` (a hash of the body).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

use serde_json::{Value, json};

/// The API versions served.
pub const VERSIONS: [&str; 2] = ["v1beta1", "v1beta2"];

/// A document and its `ETag` (quoted, as the header carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The JSON body.
    pub body: String,
    /// `"<hex>"`.
    pub etag: String,
}

impl Document {
    fn new(value: &Value) -> Self {
        let body = value.to_string();
        let mut h = DefaultHasher::new();
        body.hash(&mut h);
        Document {
            etag: format!("\"{:016x}\"", h.finish()),
            body,
        }
    }

    /// The `ETag` without quotes (the `hash` of a v3 discovery URL).
    pub fn hash(&self) -> &str {
        self.etag.trim_matches('"')
    }

    /// True when an `If-None-Match` header value names this document's `ETag`.
    pub fn matches(&self, if_none_match: &str) -> bool {
        if_none_match
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t == self.etag || t.strip_prefix("W/") == Some(&self.etag))
    }
}

fn metric_value_schema(version: &str, reference: &str) -> Value {
    let described = json!({
        "type": "object",
        "description": "The object the metric is about.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "name": {"type": "string"},
            "namespace": {"type": "string"}
        }
    });
    let mut properties = json!({
        "describedObject": described,
        "timestamp": {"type": "string", "format": "date-time"},
        "windowSeconds": {"type": "integer", "format": "int64"},
        "value": {"type": "string", "description": "A Kubernetes quantity, e.g. \"1500m\"."}
    });
    if version == "v1beta1" {
        properties["metricName"] = json!({"type": "string"});
        properties["selector"] = json!({"type": "object"});
    } else {
        properties["metric"] = json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "selector": {"type": "object"}}
        });
    }
    json!({
        "MetricValue": {
            "type": "object",
            "required": ["describedObject", "timestamp", "value"],
            "properties": properties
        },
        "MetricValueList": {
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "items": {"type": "array", "items": {"$ref": format!("{reference}MetricValue")}}
            }
        }
    })
}

/// The definition names, as the upstream custom-metrics types are named.
fn definition_prefix(version: &str) -> String {
    format!("io.k8s.metrics.pkg.apis.custom_metrics.{version}.")
}

/// The `GET` paths of one version, each answering `MetricValueList` at `list_ref`.
fn paths(version: &str, list_ref: &str, v3: bool) -> Value {
    let base = format!("/apis/custom.metrics.k8s.io/{version}");
    let ok = if v3 {
        json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": list_ref}}}})
    } else {
        json!({"description": "OK", "schema": {"$ref": list_ref}})
    };
    let param = |name: &str| {
        if v3 {
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
        } else {
            json!({"name": name, "in": "path", "required": true, "type": "string"})
        }
    };
    let selector = if v3 {
        json!({"name": "labelSelector", "in": "query", "schema": {"type": "string"}})
    } else {
        json!({"name": "labelSelector", "in": "query", "type": "string"})
    };
    let get = |id: &str, params: Vec<Value>| {
        json!({
            "get": {
                "operationId": id,
                "produces": if v3 { Value::Null } else { json!(["application/json"]) },
                "parameters": params,
                "responses": {"200": ok.clone()}
            }
        })
    };
    let strip_null = |mut v: Value| {
        if let Some(get) = v.get_mut("get").and_then(Value::as_object_mut) {
            get.retain(|_, x| !x.is_null());
        }
        v
    };
    let mut out = serde_json::Map::new();
    out.insert(
        format!("{base}/namespaces/{{namespace}}/{{resource}}/{{name}}/{{metric}}"),
        strip_null(get(
            &format!("getNamespacedMetricValue{version}"),
            vec![
                param("namespace"),
                param("resource"),
                param("name"),
                param("metric"),
                selector.clone(),
            ],
        )),
    );
    out.insert(
        format!("{base}/namespaces/{{namespace}}/metrics/{{metric}}"),
        strip_null(get(
            &format!("getNamespaceMetricValue{version}"),
            vec![param("namespace"), param("metric")],
        )),
    );
    Value::Object(out)
}

fn v2_document() -> Value {
    let mut definitions = serde_json::Map::new();
    let mut all_paths = serde_json::Map::new();
    for version in VERSIONS {
        let prefix = definition_prefix(version);
        let reference = format!("#/definitions/{prefix}");
        if let Value::Object(defs) = metric_value_schema(version, &reference) {
            for (name, schema) in defs {
                definitions.insert(format!("{prefix}{name}"), schema);
            }
        }
        if let Value::Object(p) = paths(version, &format!("{reference}MetricValueList"), false) {
            all_paths.extend(p);
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Teflon custom metrics", "version": "v1beta2"},
        "paths": all_paths,
        "definitions": definitions
    })
}

fn v3_document(version: &str) -> Value {
    let prefix = definition_prefix(version);
    let reference = format!("#/components/schemas/{prefix}");
    let mut schemas = serde_json::Map::new();
    if let Value::Object(defs) = metric_value_schema(version, &reference) {
        for (name, schema) in defs {
            schemas.insert(format!("{prefix}{name}"), schema);
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Teflon custom metrics", "version": version},
        "paths": paths(version, &format!("{reference}MetricValueList"), true),
        "components": {"schemas": schemas}
    })
}

static V2: LazyLock<Document> = LazyLock::new(|| Document::new(&v2_document()));
static V3: LazyLock<Vec<(&'static str, Document)>> = LazyLock::new(|| {
    VERSIONS
        .iter()
        .map(|v| (*v, Document::new(&v3_document(v))))
        .collect()
});
static V3_DISCOVERY: LazyLock<Document> = LazyLock::new(|| {
    let mut paths = serde_json::Map::new();
    for (version, doc) in V3.iter() {
        paths.insert(
            format!("apis/custom.metrics.k8s.io/{version}"),
            json!({
                "serverRelativeURL": format!(
                    "/openapi/v3/apis/custom.metrics.k8s.io/{version}?hash={}",
                    doc.hash()
                )
            }),
        );
    }
    Document::new(&json!({ "paths": paths }))
});

/// `GET /openapi/v2`.
pub fn v2() -> &'static Document {
    &V2
}

/// `GET /openapi/v3`.
pub fn v3_discovery() -> &'static Document {
    &V3_DISCOVERY
}

/// `GET /openapi/v3/apis/custom.metrics.k8s.io/{version}`.
pub fn v3(version: &str) -> Option<&'static Document> {
    V3.iter().find(|(v, _)| *v == version).map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(d: &Document) -> Value {
        serde_json::from_str(&d.body).unwrap()
    }

    #[test]
    fn the_v2_document_is_swagger_with_the_paths_and_resolvable_references() {
        let v = parse(v2());
        assert_eq!(v["swagger"], "2.0");
        let paths = v["paths"].as_object().unwrap();
        assert!(paths.contains_key(
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/{resource}/{name}/{metric}"
        ));
        assert!(paths.contains_key(
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/metrics/{metric}"
        ));
        // Every $ref names a definition of the document.
        let body = &v2().body;
        for r in body.split("\"$ref\":\"#/definitions/").skip(1) {
            let name = r.split('"').next().unwrap();
            assert!(v["definitions"].get(name).is_some(), "dangling $ref {name}");
        }
    }

    #[test]
    fn v3_discovery_points_at_each_version_with_its_hash() {
        let d = parse(v3_discovery());
        for version in VERSIONS {
            let url =
                d["paths"][format!("apis/custom.metrics.k8s.io/{version}")]["serverRelativeURL"]
                    .as_str()
                    .unwrap();
            let doc = v3(version).unwrap();
            assert_eq!(
                url,
                format!(
                    "/openapi/v3/apis/custom.metrics.k8s.io/{version}?hash={}",
                    doc.hash()
                )
            );
            let v = parse(doc);
            assert_eq!(v["openapi"], "3.0.0");
            let list = format!("io.k8s.metrics.pkg.apis.custom_metrics.{version}.MetricValueList");
            assert!(v["components"]["schemas"].get(&list).is_some());
        }
        assert!(v3("v1").is_none());
    }

    #[test]
    fn etags_are_stable_quoted_and_matched_by_if_none_match() {
        let d = v2();
        assert_eq!(d, &Document::new(&v2_document()));
        assert!(d.etag.starts_with('"') && d.etag.ends_with('"'));
        assert!(d.matches(&d.etag));
        assert!(d.matches(&format!("W/{}, \"other\"", d.etag)));
        assert!(!d.matches("\"other\""));
    }
}
