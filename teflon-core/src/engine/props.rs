//! Property tests of the engine's promises: availability is never taken below `min_available`
//! by the engine's own actions, no pod is acted on twice, and decisions are deterministic.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;
use crate::action::{Outcome, PlannedAction};
use crate::alert::Priority;
use crate::cluster::StaticCluster;

#[derive(Debug, Clone)]
enum Op {
    /// An alert for the i-th current pod (modulo), or for a pod the cluster never had.
    Alert { pod: usize, ghost: bool, dt: u8 },
    /// The oldest pending action is executed (the pod leaves) or fails.
    Execute { fail: bool, dt: u8 },
    /// A replacement pod becomes Ready.
    Recover { dt: u8 },
    /// Time passes.
    Tick { dt: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..16, prop::bool::weighted(0.1), 0u8..10).prop_map(|(pod, ghost, dt)| Op::Alert { pod, ghost, dt }),
        3 => (prop::bool::weighted(0.15), 0u8..5).prop_map(|(fail, dt)| Op::Execute { fail, dt }),
        2 => (0u8..20).prop_map(|dt| Op::Recover { dt }),
        1 => (0u8..60).prop_map(|dt| Op::Tick { dt }),
    ]
}

struct Run {
    records: Vec<String>,
    acted_uids: Vec<String>,
    min_ready_seen: u32,
    /// Pods (name, uid) whose last planned action ended `Failed`, with no plan since.
    failed: Vec<(String, String)>,
    engine: Engine,
    view: StaticCluster,
    now: i64,
}

fn run(desired: u32, min_available: u32, defer: bool, ops: &[Op]) -> Run {
    let yaml = format!(
        "version: 1\ndefaults: {{cluster_max_actions: null, dedup_window_secs: 5}}\npolicies:\n  - name: reap\n    action: {{type: delete}}\n    guard: {{min_available: {min_available}, defer: {defer}, max_defer_secs: 40}}\n"
    );
    let mut engine = Engine::new(PolicySet::parse(&yaml, "p").unwrap());
    let web = WorkloadRef::new(WorkloadKind::Deployment, "shop", "web");
    let mut view = StaticCluster::new().deployment("shop", "web", desired, desired);
    let mut pods: Vec<(String, String)> = (0..desired)
        .map(|i| (format!("web-{i}"), format!("uid-web-{i}")))
        .collect();
    let mut pending: VecDeque<PlannedAction> = VecDeque::new();
    let mut removed = 0u32;
    let mut next_replacement = 0u32;
    let mut now = 0i64;
    let mut out = Run {
        records: Vec::new(),
        acted_uids: Vec::new(),
        min_ready_seen: desired,
        failed: Vec::new(),
        engine: Engine::new(PolicySet::parse(&yaml, "p").unwrap()),
        view: StaticCluster::new(),
        now: 0,
    };
    let ready = |view: &StaticCluster| view.workload(&web).map_or(0, |s| s.available);
    let take = |ds: Vec<Decision>, pending: &mut VecDeque<PlannedAction>, out: &mut Run| {
        for d in ds {
            out.records.push(format!("{:?}", d.record()));
            if let Some(plan) = d.plan {
                out.acted_uids
                    .push(plan.pod.uid.clone().unwrap_or_default());
                out.failed.retain(|(n, _)| *n != plan.pod.name);
                pending.push_back(plan);
            }
        }
    };
    for op in ops {
        match op {
            Op::Alert { pod, ghost, dt } => {
                now += i64::from(*dt);
                let name = if *ghost || pods.is_empty() {
                    "ghost".to_owned()
                } else {
                    pods[pod % pods.len()].0.clone()
                };
                let alert = Alert::test()
                    .priority(Priority::Critical)
                    .pod("shop", &name)
                    .at_secs(now)
                    .build();
                let ds = engine.decide(alert, &view, Timestamp::from_secs(now));
                take(ds, &mut pending, &mut out);
            }
            Op::Execute { fail, dt } => {
                now += i64::from(*dt);
                if let Some(plan) = pending.pop_front() {
                    let outcome = if *fail {
                        if !pending.iter().any(|p| p.pod.name == plan.pod.name) {
                            out.failed.push((
                                plan.pod.name.clone(),
                                plan.pod.uid.clone().unwrap_or_default(),
                            ));
                        }
                        Outcome::Failed("injected".into())
                    } else if pods
                        .iter()
                        .any(|(n, u)| *n == plan.pod.name && Some(u) == plan.pod.uid.as_ref())
                    {
                        view.remove_pod("shop", &plan.pod.name);
                        pods.retain(|(n, _)| *n != plan.pod.name);
                        removed += 1;
                        Outcome::Success
                    } else {
                        Outcome::Gone
                    };
                    engine.record(plan.id, &outcome, Timestamp::from_secs(now));
                }
            }
            Op::Recover { dt } => {
                now += i64::from(*dt);
                if removed > 0 {
                    removed -= 1;
                    let name = format!("web-r{next_replacement}");
                    let uid = format!("uid-r{next_replacement}");
                    next_replacement += 1;
                    view.add_pod(&web, &name, &uid, true);
                    pods.push((name, uid));
                    let ds = engine.tick(&view, Timestamp::from_secs(now));
                    take(ds, &mut pending, &mut out);
                }
            }
            Op::Tick { dt } => {
                now += i64::from(*dt);
                let ds = engine.tick(&view, Timestamp::from_secs(now));
                take(ds, &mut pending, &mut out);
            }
        }
        // The worst case: every pending action executes now.
        let pending_ready = pending
            .iter()
            .filter(|p| {
                pods.iter()
                    .any(|(n, u)| *n == p.pod.name && Some(u) == p.pod.uid.as_ref())
            })
            .count() as u32;
        out.min_ready_seen = out
            .min_ready_seen
            .min(ready(&view).saturating_sub(pending_ready));
    }
    out.engine = engine;
    out.view = view;
    out.now = now;
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn engine_never_takes_a_workload_below_min_available(
        desired in 1u32..7,
        min in 0u32..7,
        defer in any::<bool>(),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let min = min.min(desired);
        let r = run(desired, min, defer, &ops);
        prop_assert!(r.min_ready_seen >= min, "ready fell to {} < min_available {}", r.min_ready_seen, min);
    }

    #[test]
    fn engine_never_acts_twice_on_the_same_pod(
        desired in 1u32..7,
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let r = run(desired, 0, true, &ops);
        let mut uids = r.acted_uids.clone();
        uids.sort();
        let before = uids.len();
        uids.dedup();
        // A failed action may be retried; the injected failures are the only repeats allowed.
        let failures = ops.iter().filter(|o| matches!(o, Op::Execute { fail: true, .. })).count();
        prop_assert!(before - uids.len() <= failures, "acted {} times on {} pods", before, uids.len());
    }

    #[test]
    fn after_a_failed_outcome_the_pod_is_still_actionable(
        desired in 1u32..7,
        min in 0u32..7,
        defer in any::<bool>(),
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let mut r = run(desired, min.min(desired), defer, &ops);
        // Past the dedup window (5 s) and every deferral's deadline (40 s): a new alert about
        // a pod whose action failed is decided afresh, never `duplicate` (it was not reaped).
        let now = Timestamp::from_secs(r.now + 100);
        r.engine.tick(&r.view, now);
        for (name, uid) in &r.failed {
            if r.view.pod("shop", name).is_none_or(|p| p.uid.as_deref() != Some(uid)) {
                continue;
            }
            let alert = Alert::test().priority(Priority::Critical).pod("shop", name).build();
            for d in r.engine.decide(alert, &r.view, now) {
                if d.alert.target.as_ref().is_some_and(|t| t.pod == *name) {
                    prop_assert_ne!(d.reason, Reason::Duplicate, "{} after a failed action", name);
                }
            }
        }
    }

    #[test]
    fn decisions_are_deterministic(
        desired in 1u32..7,
        min in 0u32..7,
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let a = run(desired, min.min(desired), true, &ops);
        let b = run(desired, min.min(desired), true, &ops);
        prop_assert_eq!(a.records, b.records);
    }

    #[test]
    fn priority_order_is_total_and_consistent_with_parsing(a in 0usize..8, b in 0usize..8, upper in any::<bool>()) {
        let pa = Priority::ALL[a];
        let pb = Priority::ALL[b];
        let relations = [pa < pb, pa == pb, pa > pb];
        prop_assert_eq!(relations.iter().filter(|r| **r).count(), 1);
        // ALL is most severe first: a lower index outranks.
        prop_assert_eq!(pa > pb, a < b);
        let text = if upper { pa.as_str().to_uppercase() } else { pa.as_str().to_lowercase() };
        prop_assert_eq!(text.parse::<Priority>().ok(), Some(pa));
    }
}
