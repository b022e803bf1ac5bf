//! What `block_binary` applies is a valid `TracingPolicyNamespaced` by Tetragon's own CRD
//! (`tests/fixtures/cilium.io_tracingpoliciesnamespaced.yaml`, copied from the Tetragon
//! repository): the object sent through the production client is checked against the CRD's
//! `openAPIV3Schema` the way kube-apiserver checks a custom resource: types, `required`,
//! `enum`, `pattern`, bounds, formats, and unknown fields (which the API server would prune
//! or, with `fieldValidation=Strict`, refuse), plus the CRD's CEL rules
//! (`x-kubernetes-validations`). Tetragon's own enforcing examples must pass the same check.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use teflon_core::{
    Action, ActionId, Actuator, Alert, Outcome, PlannedAction, PodTarget, Timestamp, WorkloadKind,
    WorkloadRef,
};
use teflon_k8s::fake_api::{FakeApiServer, Reply, Request};
use teflon_k8s::{KubeActuator, RetryPolicy};

const CRD: &str = include_str!("fixtures/cilium.io_tracingpoliciesnamespaced.yaml");
const EXAMPLES: [&str; 2] = [
    include_str!("fixtures/file_monitoring_enforce.yaml"),
    include_str!("fixtures/network_egress_cluster_enforce.yaml"),
];

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("valid YAML")
}

/// The served version's `openAPIV3Schema`.
fn schema() -> Value {
    let crd = yaml(CRD);
    let version = crd["spec"]["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == "v1alpha1"))
        .expect("v1alpha1");
    version["schema"]["openAPIV3Schema"].clone()
}

// ------------------------------------------------------------------ structural schema check

fn type_ok(schema: &Value, v: &Value) -> bool {
    if schema["x-kubernetes-int-or-string"] == true {
        return v.is_i64() || v.is_u64() || v.is_string();
    }
    match schema["type"].as_str() {
        None => true,
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        Some(other) => panic!("schema type {other} not handled"),
    }
}

/// Every violation of `schema` by `v`, as `path: what`.
fn check(schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    if v.is_null() && schema["nullable"] == true {
        return;
    }
    if !type_ok(schema, v) {
        out.push(format!("{path}: expected {}, got {v}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        out.push(format!("{path}: {v} is not one of {allowed:?}"));
    }
    if let Some(s) = v.as_str() {
        if let Some(p) = schema["pattern"].as_str()
            && !regex::Regex::new(p).expect("a valid pattern").is_match(s)
        {
            out.push(format!("{path}: {s:?} does not match {p}"));
        }
        if let Some(max) = schema["maxLength"].as_u64()
            && s.chars().count() as u64 > max
        {
            out.push(format!("{path}: longer than {max}"));
        }
    }
    if let Some(n) = v.as_i64() {
        if let Some(min) = schema["minimum"].as_i64()
            && n < min
        {
            out.push(format!("{path}: {n} < minimum {min}"));
        }
        if schema["format"] == "int32" && i32::try_from(n).is_err() {
            out.push(format!("{path}: {n} is not an int32"));
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(max) = schema["maxItems"].as_u64()
            && items.len() as u64 > max
        {
            out.push(format!("{path}: more than {max} items"));
        }
        for (i, item) in items.iter().enumerate() {
            check(&schema["items"], item, &format!("{path}[{i}]"), out);
        }
    }
    if let Some(fields) = v.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            if !fields.contains_key(req.as_str().unwrap_or_default()) {
                out.push(format!("{path}: missing required {req}"));
            }
        }
        let properties = schema["properties"].as_object();
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
        for (key, value) in fields {
            let at = format!("{path}.{key}");
            match (
                properties.and_then(|p| p.get(key)),
                &schema["additionalProperties"],
            ) {
                (Some(sub), _) => check(sub, value, &at, out),
                (None, extra) if extra.is_object() => check(extra, value, &at, out),
                // `metadata` of a custom resource is checked by the API server itself.
                (None, _) if preserve || path == "$.metadata" => {}
                (None, _) => out.push(format!("{at}: unknown field")),
            }
        }
        for rule in schema["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let expr = rule["rule"].as_str().expect("a rule");
            if !Cel::new(expr).eval(v) {
                out.push(format!("{path}: {} ({expr})", rule["message"]));
            }
        }
    }
}

/// The CEL the CRD's rules are written in: `has(self.f)`, `self.f` (a boolean), `!`, `&&`,
/// `||` and parentheses. Anything else panics, so a new kind of rule cannot pass unchecked.
struct Cel<'a> {
    src: &'a str,
    at: usize,
}

impl<'a> Cel<'a> {
    fn new(src: &'a str) -> Self {
        Cel { src, at: 0 }
    }

    fn eval(mut self, this: &Value) -> bool {
        let v = self.or(this);
        self.skip();
        assert_eq!(self.at, self.src.len(), "CEL not understood: {}", self.src);
        v
    }

    fn skip(&mut self) {
        while self.src[self.at..].starts_with(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip();
        if self.src[self.at..].starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self, this: &Value) -> bool {
        let mut v = self.and(this);
        while self.eat("||") {
            let rhs = self.and(this);
            v = v || rhs;
        }
        v
    }

    fn and(&mut self, this: &Value) -> bool {
        let mut v = self.unary(this);
        while self.eat("&&") {
            let rhs = self.unary(this);
            v = v && rhs;
        }
        v
    }

    fn unary(&mut self, this: &Value) -> bool {
        if self.eat("!") {
            return !self.unary(this);
        }
        if self.eat("(") {
            let v = self.or(this);
            assert!(self.eat(")"), "CEL not understood: {}", self.src);
            return v;
        }
        if self.eat("has(") {
            let path = self.path();
            assert!(self.eat(")"), "CEL not understood: {}", self.src);
            return lookup(this, &path).is_some();
        }
        let path = self.path();
        match lookup(this, &path) {
            Some(Value::Bool(b)) => *b,
            None => false,
            Some(other) => panic!("CEL: self.{} is {other}, not a boolean", path.join(".")),
        }
    }

    /// `self.a.b…`: the field names.
    fn path(&mut self) -> Vec<&'a str> {
        assert!(self.eat("self"), "CEL not understood: {}", self.src);
        let mut path = Vec::new();
        while self.src[self.at..].starts_with('.') {
            self.at += 1;
            let start = self.at;
            while self.src[self.at..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                self.at += 1;
            }
            path.push(&self.src[start..self.at]);
        }
        assert!(!path.is_empty(), "CEL not understood: {}", self.src);
        path
    }
}

fn lookup<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn violations(object: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(&schema(), object, "$", &mut out);
    out
}

// ------------------------------------------------------------------ the applied objects

fn plan(pod: &str, workload: Option<WorkloadRef>, binary: &str) -> PlannedAction {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    PlannedAction {
        id: ActionId(1),
        pod: PodTarget {
            namespace: "shop".to_owned(),
            name: pod.to_owned(),
            uid: Some(format!("uid-{pod}")),
        },
        workload,
        action: Action::BlockBinary {
            binary_fields: vec!["proc.exepath".to_owned()],
            expire_after: None,
        },
        policy: Arc::from("block-netcat"),
        binary: Some(binary.to_owned()),
        alert: Arc::new(
            Alert::test()
                .pod("shop", pod)
                .output("Netcat runs inside container (user=root command=nc -l 4444)")
                .build(),
        ),
        deadline: Timestamp::from_nanos(i64::try_from(now).unwrap()).plus(Duration::from_secs(30)),
    }
}

/// The TracingPolicyNamespaced bodies `block_binary` sends, through the production client.
async fn applied() -> Vec<Request> {
    let server = FakeApiServer::start(|r: &Request| {
        let p = r.path.as_str();
        match r.method.as_str() {
            "GET" if p.ends_with("/deployments/web") => Reply::ok(
                json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "web", "namespace": "shop"},
                    "spec": {
                        "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]},
                        "template": {"spec": {"containers": []}},
                    },
                })
                .to_string(),
            ),
            "GET" if p.ends_with("/pods/solo") => Reply::ok(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "namespace": "shop", "uid": "uid-solo", "labels": {"run": "solo"}}})
                    .to_string(),
            ),
            "PATCH" | "POST" => {
                Reply::Json(200, String::from_utf8_lossy(&r.body).into_owned())
            }
            _ => Reply::Json(404, "{}".to_owned()),
        }
    })
    .await
    .unwrap();
    let actuator = KubeActuator::new(server.client().unwrap()).with_retry(RetryPolicy::once());
    let web = Some(WorkloadRef::new(WorkloadKind::Deployment, "shop", "web"));
    let long_path = format!("/opt/{}/nc", "x".repeat(200));
    for p in [
        plan("web-1", web.clone(), "/usr/bin/nc"),
        plan("web-1", web, &long_path),
        plan("solo", None, "/tmp/.x/miner"),
    ] {
        assert_eq!(actuator.execute(&p).await.outcome, Outcome::Success);
    }
    server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/tracingpoliciesnamespaced/"))
        .collect()
}

#[tokio::test]
async fn block_binary_applies_policies_the_real_tetragon_crd_accepts() {
    let requests = applied().await;
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert_eq!(r.method, "PATCH");
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        // Strict: a field the CRD does not know is refused, not silently dropped.
        assert!(r.has_param("fieldValidation", "Strict"), "{}", r.query);
        let object = r.json();
        assert_eq!(object["kind"], "TracingPolicyNamespaced");
        let problems = violations(&object);
        assert!(problems.is_empty(), "{}:\n{}", r.path, problems.join("\n"));
    }
}

#[test]
fn tetragons_own_enforcing_examples_pass_the_check() {
    for example in EXAMPLES {
        let object = yaml(example);
        let problems = violations(&object);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

#[test]
fn the_check_catches_unknown_fields_bad_enums_missing_fields_and_broken_rules() {
    let base = yaml(EXAMPLES[0]);
    let mutate = |f: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        f(&mut v);
        violations(&v)
    };
    let has = |problems: Vec<String>, what: &str| {
        assert!(
            problems.iter().any(|p| p.contains(what)),
            "expected {what:?} in {problems:?}"
        );
    };
    has(
        mutate(&|v| v["spec"]["kprobes"][0]["selectors"][0]["matchAction"] = json!([])),
        "matchAction: unknown field",
    );
    has(
        mutate(&|v| {
            v["spec"]["kprobes"][0]["selectors"][0]["matchActions"] = json!([{"action": "Kill"}])
        }),
        "is not one of",
    );
    has(
        mutate(&|v| {
            v["spec"]["kprobes"][0]
                .as_object_mut()
                .unwrap()
                .remove("call");
        }),
        "missing required",
    );
    has(
        mutate(&|v| {
            v["spec"]["kprobes"][0]
                .as_object_mut()
                .unwrap()
                .remove("returnArg");
        }),
        "ReturnArg not specified",
    );
    has(
        mutate(&|v| v["spec"]["kprobes"][0]["syscall"] = json!("no")),
        "expected \"boolean\"",
    );
}
