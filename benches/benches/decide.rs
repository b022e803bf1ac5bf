//! `decide` throughput: one alert through the engine with 1, 100 and 1,000 policies.
//!
//! Alerts are the 20 real Falco fixtures (parsed once, outside the timing); the cluster has a
//! 6-replica Deployment holding every fixture pod, so matched alerts walk every guard step.
//! The shell policy is `dry_run` so the engine keeps deciding the full path instead of
//! settling into `duplicate` after the first reap; `dedup_window_secs: 0` for the same reason.

use std::hint::black_box;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use teflon_core::{Alert, Engine, PolicySet, StaticCluster, Timestamp, WorkloadKind, WorkloadRef};

const ALERTS: &str = include_str!("../fixtures/alerts.jsonl");

/// `n` policies (at least 3) in the shape real rule sets take: three dry-run policies on the
/// fixtures' rules first, then policies on
/// other rule names (exact and glob), priorities, namespaces, tags and fields.
fn policy_file(n: usize) -> String {
    let mut y = String::from(
        "version: 1\ndefaults: {dedup_window_secs: 0, cluster_max_actions: null}\npolicies:\n  - name: reap-shells\n    match:\n      rules: [\"Terminal shell in container\"]\n      priority: \">=Notice\"\n      exclude_namespaces: [falco]\n      fields: {proc.name: {not: [falco]}}\n    action: {type: delete, grace_period_secs: 0}\n    guard: {min_available: \"50%\"}\n    dry_run: true\n  - name: api-contact\n    match: {rules: [\"Contact K8S API Server*\"], tags: {none: [test]}}\n    action: {type: evict}\n    dry_run: true\n  - name: sensitive-reads\n    match: {rules: [\"Read sensitive file*\"], priority: \">=Warning\"}\n    action: {type: quarantine}\n    dry_run: true\n",
    );
    for i in 3..n {
        let (matcher, action) = match i % 5 {
            0 => (
                format!("rules: [\"Custom rule {i}\"], priority: \">=Warning\""),
                "delete",
            ),
            1 => (
                format!("rules: [\"Team {i} *\"], namespaces: [\"team-{i}-*\"]"),
                "evict",
            ),
            2 => (
                format!("rules: [\"Rule {i}\"], tags: {{all: [container, t{i}]}}"),
                "quarantine",
            ),
            3 => (
                format!("rules: [\"Miner {i}\"], fields: {{fd.sport: {i}}}"),
                "delete",
            ),
            _ => (
                format!("rules: [\"Audit {i}\"], sources: [k8s_audit]"),
                "log",
            ),
        };
        y.push_str(&format!(
            "  - name: p{i}\n    match: {{{matcher}}}\n    action: {{type: {action}}}\n"
        ));
    }
    y
}

fn alerts() -> Vec<Arc<Alert>> {
    let parsed = teflon_falco::parse_batch(ALERTS.as_bytes()).expect("fixtures parse");
    parsed.into_iter().map(Arc::new).collect()
}

fn cluster(alerts: &[Arc<Alert>]) -> StaticCluster {
    let mut c = StaticCluster::new();
    for ns in [
        "default",
        "openfaas-fn",
        "fission-function",
        "trigger-falco-rule",
    ] {
        c = c.deployment(ns, "web", 6, 6);
    }
    for (i, a) in alerts.iter().enumerate() {
        if let Some(t) = &a.target {
            let w = WorkloadRef::new(WorkloadKind::Deployment, t.namespace.clone(), "web");
            c.add_pod(&w, &t.pod, &format!("uid-{i}"), true);
        }
    }
    c
}

/// The bench must exercise the full path: some alerts reach `act` through every guard.
fn check_realistic(alerts: &[Arc<Alert>], view: &StaticCluster) {
    let set = PolicySet::parse(&policy_file(100), "bench.yaml").expect("bench policies parse");
    let mut engine = Engine::new(set);
    let decisions: Vec<_> = alerts
        .iter()
        .flat_map(|a| engine.decide(a.clone(), view, a.time))
        .collect();
    let acted = decisions
        .iter()
        .filter(|d| d.verdict == teflon_core::Verdict::Act)
        .count();
    assert!(
        acted >= 3,
        "only {acted} of {} fixture alerts reach act",
        decisions.len()
    );
}

/// One benchmark group: `alerts` cycled through engines with 3, 100 and 1,000 policies.
fn decide_group(c: &mut Criterion, name: &str, alerts: &[Arc<Alert>], view: &StaticCluster) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    for n in [3usize, 100, 1000] {
        let set = PolicySet::parse(&policy_file(n), "bench.yaml").expect("bench policies parse");
        let mut engine = Engine::new(set);
        let mut i = 0usize;
        let mut now = 1_700_000_000_000_000_000i64;
        group.bench_with_input(BenchmarkId::new("policies", n), &n, |b, _| {
            b.iter(|| {
                let alert = alerts[i % alerts.len()].clone();
                i += 1;
                now += 1_000_000;
                black_box(engine.decide(alert, view, Timestamp::from_nanos(now)))
            })
        });
    }
    group.finish();
}

fn bench_decide(c: &mut Criterion) {
    let alerts = alerts();
    let view = cluster(&alerts);
    check_realistic(&alerts, &view);
    decide_group(c, "decide", &alerts, &view);

    // Worst case: every alert carries a rule name the engine has never seen, so the
    // rule-candidate cache misses and the hash index + compiled glob set run each time.
    let fresh: Vec<Arc<Alert>> = (0..50_000)
        .map(|j| {
            let mut a = (*alerts[j % alerts.len()]).clone();
            a.rule = format!("{} #{j}", a.rule);
            Arc::new(a)
        })
        .collect();
    decide_group(c, "decide_uncached_rule", &fresh, &view);
}

criterion_group!(benches, bench_decide);
criterion_main!(benches);
