//! Unit tests of the simulated cluster, the attack model, replay and simulation.

use std::sync::Arc;
use std::time::Duration;

use teflon_core::{
    Action, ActionId, Alert, ClusterView, Engine, Outcome, PlannedAction, PodTarget, PolicySet,
    Priority, Reason, Target, Timestamp, Verdict, WorkloadKind, WorkloadRef,
};

use crate::cluster::QUARANTINE_LABEL;
use crate::simulate::{self, DEFAULT_POLICIES, Scenario};
use crate::{Attackers, SimCluster, SimError, SimEvent};

const SNAPSHOT: &str = include_str!("../tests/fixtures/cluster.json");
const RECOVERY: Duration = Duration::from_secs(15);

fn snapshot() -> SimCluster {
    SimCluster::from_kubectl_list(SNAPSHOT.as_bytes(), RECOVERY).unwrap()
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_000_000 + secs)
}

fn plan(action: Action, ns: &str, pod: &str, uid: Option<&str>) -> PlannedAction {
    PlannedAction {
        id: ActionId(0),
        pod: PodTarget {
            namespace: ns.to_owned(),
            name: pod.to_owned(),
            uid: uid.map(str::to_owned),
        },
        workload: None,
        action,
        policy: Arc::from("test-policy"),
        binary: None,
        alert: Arc::new(Alert::new("x", Priority::Critical, t(0))),
        deadline: t(300),
    }
}

fn delete() -> Action {
    Action::Delete {
        grace_period_secs: Some(0),
    }
}

fn evict() -> Action {
    Action::Evict {
        grace_period_secs: None,
    }
}

fn quarantine() -> Action {
    Action::Quarantine {
        labels: Default::default(),
        network_isolate: true,
        expire_after: None,
    }
}

fn web() -> WorkloadRef {
    WorkloadRef::new(WorkloadKind::Deployment, "shop", "web")
}

fn db() -> WorkloadRef {
    WorkloadRef::new(WorkloadKind::StatefulSet, "shop", "db")
}

#[test]
fn snapshot_pods_resolve_to_their_top_controller() {
    let c = snapshot();
    let owner = |ns: &str, pod: &str| c.pod(ns, pod).unwrap().workload;
    assert_eq!(owner("shop", "web-7d4b9c8f6d-2xkqp"), Some(web()));
    assert_eq!(owner("shop", "db-0"), Some(db()));
    assert_eq!(
        owner("monitoring", "node-exporter-7xk2p"),
        Some(WorkloadRef::new(
            WorkloadKind::DaemonSet,
            "monitoring",
            "node-exporter"
        ))
    );
    assert_eq!(
        owner("kube-system", "coredns-668d6bf9bc-4hwgq"),
        Some(WorkloadRef::new(
            WorkloadKind::Deployment,
            "kube-system",
            "coredns"
        ))
    );
    assert_eq!(
        owner("shop", "migrate-5kx8w"),
        Some(WorkloadRef::new(WorkloadKind::Job, "shop", "migrate"))
    );
    assert_eq!(owner("shop", "debug-shell"), None);
    assert!(c.pod("shop", "nope").is_none());
}

#[test]
fn snapshot_desired_replicas_come_from_specs_and_availability_from_ready_pods() {
    let c = snapshot();
    let status = |w: &WorkloadRef| c.workload(w).unwrap();
    assert_eq!((status(&web()).desired, status(&web()).available), (3, 3));
    assert_eq!((status(&db()).desired, status(&db()).available), (2, 2));
    let ds = WorkloadRef::new(WorkloadKind::DaemonSet, "monitoring", "node-exporter");
    assert_eq!((status(&ds).desired, status(&ds).available), (2, 2));
    // The Job's only pod has Succeeded: not Ready, not a live replica.
    let job = WorkloadRef::new(WorkloadKind::Job, "shop", "migrate");
    assert_eq!((status(&job).desired, status(&job).available), (0, 0));
    assert!(!c.pod("shop", "migrate-5kx8w").unwrap().ready);
    assert_eq!(
        c.pod("shop", "db-0").unwrap().uid.as_deref().map(str::len),
        Some(36)
    );
}

#[test]
fn snapshot_lists_pods_and_workloads_with_labels() {
    let c = snapshot();
    let pods = c.pods_in("shop");
    assert!(
        pods.iter()
            .any(|p| p.name == "db-0" && p.labels.get("app").map(String::as_str) == Some("db"))
    );
    let workloads = c.workloads_in("shop");
    assert!(
        workloads
            .iter()
            .any(|w| w.workload == web() && w.labels.get("app").map(String::as_str) == Some("web"))
    );
}

#[test]
fn pdb_disruptions_allowed_is_recomputed_from_healthy_pods() {
    let mut c = snapshot();
    // minAvailable 2 of 2 healthy.
    assert_eq!(c.disruptions_allowed("shop", "db-0"), Some(0));
    assert_eq!(c.disruptions_allowed("shop", "web-7d4b9c8f6d-2xkqp"), None);
    c.set_desired(&db(), 3, t(0));
    assert_eq!(
        c.disruptions_allowed("shop", "db-0"),
        Some(0),
        "db-2 is not Ready yet"
    );
    c.advance_to(t(15));
    assert_eq!(c.disruptions_allowed("shop", "db-0"), Some(1));
}

#[test]
fn percent_max_unavailable_budgets_follow_the_workload_scale() {
    let mut c = SimCluster::new(RECOVERY)
        .with_deployment("shop", "api", 4)
        .with_pdb_max_unavailable("shop", "api", "api", "50%");
    let pods = c.available_pods(&WorkloadRef::new(WorkloadKind::Deployment, "shop", "api"));
    assert_eq!(c.disruptions_allowed("shop", &pods[0]), Some(2));
    assert_eq!(
        c.apply(&plan(evict(), "shop", &pods[0], None), t(0)),
        Outcome::Success
    );
    assert_eq!(c.disruptions_allowed("shop", &pods[1]), Some(1));
}

#[test]
fn eviction_is_refused_when_the_budget_allows_no_disruption_but_delete_goes_through() {
    let mut c = snapshot();
    assert_eq!(
        c.apply(&plan(evict(), "shop", "db-0", None), t(0)),
        Outcome::DisruptionBudget
    );
    assert!(c.pod("shop", "db-0").unwrap().ready);
    let old_uid = c.pod("shop", "db-0").unwrap().uid;
    assert_eq!(
        c.apply(&plan(delete(), "shop", "db-0", old_uid.as_deref()), t(0)),
        Outcome::Success
    );
    // A StatefulSet replacement keeps the name, gets a new UID, and is not Ready yet.
    let replacement = c.pod("shop", "db-0").unwrap();
    assert_ne!(replacement.uid, old_uid);
    assert!(!replacement.ready);
    assert_eq!(replacement.workload, Some(db()));
}

#[test]
fn a_replacement_gets_a_new_name_and_is_ready_after_the_recovery_time() {
    let mut c = snapshot();
    assert_eq!(
        c.apply(&plan(delete(), "shop", "web-7d4b9c8f6d-2xkqp", None), t(0)),
        Outcome::Success
    );
    assert!(c.pod("shop", "web-7d4b9c8f6d-2xkqp").is_none());
    assert_eq!(c.workload(&web()).unwrap().available, 2);
    assert_eq!(c.next_event_time(), Some(t(15)));
    assert!(c.advance_to(t(14)).is_empty());
    let events = c.advance_to(t(20));
    let [
        SimEvent::Recreated {
            workload,
            pod,
            took,
            at,
        },
    ] = events.as_slice()
    else {
        panic!("expected one recreation, got {events:?}");
    };
    assert_eq!((workload, *took, *at), (&web(), RECOVERY, t(15)));
    assert!(
        pod.starts_with("web-7d4b9c8f6d-") && pod != "web-7d4b9c8f6d-2xkqp",
        "{pod}"
    );
    assert_eq!(c.pod("shop", pod).unwrap().workload, Some(web()));
    assert_eq!(c.workload(&web()).unwrap().available, 3);
    assert_eq!(c.next_event_time(), None);
}

#[test]
fn a_different_uid_or_an_unknown_pod_is_gone() {
    let mut c = snapshot();
    assert_eq!(
        c.apply(&plan(delete(), "shop", "db-1", Some("someone-else")), t(0)),
        Outcome::Gone
    );
    assert!(c.pod("shop", "db-1").is_some());
    assert_eq!(
        c.apply(&plan(delete(), "shop", "ghost", None), t(0)),
        Outcome::Gone
    );
}

#[test]
fn quarantine_keeps_the_pod_but_cuts_it_from_its_workload() {
    let mut c = snapshot();
    let pod = "web-7d4b9c8f6d-8fz5n";
    assert_eq!(
        c.apply(&plan(quarantine(), "shop", pod, None), t(0)),
        Outcome::Success
    );
    let info = c.pod("shop", pod).unwrap();
    assert!(info.ready);
    assert_eq!(info.workload, None);
    let summary = c
        .pods_in("shop")
        .into_iter()
        .find(|p| p.name == pod)
        .unwrap();
    assert_eq!(
        summary.labels.get(QUARANTINE_LABEL).map(String::as_str),
        Some("test-policy")
    );
    assert!(!summary.labels.contains_key("app"), "{:?}", summary.labels);
    assert_eq!(c.workload(&web()).unwrap().available, 2);
    let events = c.advance_to(t(15));
    assert_eq!(events.len(), 1);
    assert_eq!(c.workload(&web()).unwrap().available, 3);
}

#[test]
fn standalone_pods_never_come_back() {
    let mut c = snapshot();
    assert_eq!(
        c.apply(&plan(delete(), "shop", "debug-shell", None), t(0)),
        Outcome::Success
    );
    assert!(c.pod("shop", "debug-shell").is_none());
    assert_eq!(c.next_event_time(), None);
}

#[test]
fn block_binary_and_log_change_no_pod() {
    let mut c = snapshot();
    let block = Action::BlockBinary {
        binary_fields: vec!["proc.exepath".to_owned()],
        expire_after: None,
    };
    assert_eq!(
        c.apply(&plan(block, "shop", "db-0", None), t(0)),
        Outcome::Success
    );
    assert_eq!(
        c.apply(&plan(Action::Log, "shop", "db-0", None), t(0)),
        Outcome::Success
    );
    assert_eq!(c.workload(&db()).unwrap().available, 2);
}

#[test]
fn healthy_mode_conjures_up_a_ready_pod_of_three_replicas() {
    let mut c = SimCluster::healthy(RECOVERY);
    let info = c.pod("default", "kubecon").unwrap();
    let w = WorkloadRef::new(WorkloadKind::Unknown, "default", "kubecon");
    assert!(info.ready);
    assert_eq!(info.workload.as_ref(), Some(&w));
    assert_eq!(c.workload(&w).unwrap().available, 3);
    assert_eq!(c.disruptions_allowed("default", "kubecon"), None);

    assert_eq!(
        c.apply(&plan(delete(), "default", "kubecon", Some("u-1")), t(0)),
        Outcome::Success
    );
    assert!(
        c.pod("default", "kubecon").is_none(),
        "a reaped pod stays gone"
    );
    let status = c.workload(&w).unwrap();
    assert_eq!((status.desired, status.available), (3, 2));
    assert!(
        c.pod("default", "other").unwrap().ready,
        "other pods are untouched"
    );
    c.advance_to(t(15));
    assert_eq!(c.workload(&w).unwrap().available, 3);
}

#[test]
fn scaling_adds_pods_after_the_recovery_time_and_removes_surplus_at_once() {
    let mut c = SimCluster::new(RECOVERY).with_deployment("shop", "web", 2);
    assert!(c.set_desired(&web(), 4, t(0)));
    assert_eq!(c.workload(&web()).unwrap().available, 2);
    let events = c.advance_to(t(15));
    assert!(
        events
            .iter()
            .all(|e| matches!(e, SimEvent::ScaledUp { .. }))
            && events.len() == 2
    );
    assert_eq!(c.workload(&web()).unwrap().available, 4);
    assert!(c.set_desired(&web(), 1, t(20)));
    assert_eq!(
        c.workload(&web()).unwrap(),
        teflon_core::WorkloadStatus {
            desired: 1,
            available: 1
        }
    );
    assert!(!c.set_desired(&db(), 1, t(20)));
}

#[test]
fn broken_snapshots_are_clear_errors() {
    let e = SimCluster::from_kubectl_list(b"{\n  \"kind\": ", RECOVERY).unwrap_err();
    assert!(matches!(e, SimError::Json { line: 2, .. }), "{e}");
    let e = SimCluster::from_kubectl_list(br#"[1, 2]"#, RECOVERY).unwrap_err();
    assert!(e.to_string().contains("expected a Kubernetes List"), "{e}");
    let bad = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"x"},"spec":{"containers":"nope"}}]}"#;
    let e = SimCluster::from_kubectl_list(bad.as_bytes(), RECOVERY).unwrap_err();
    assert!(e.to_string().starts_with("items[0] (Pod \"p\")"), "{e}");
}

#[test]
fn the_same_seed_gives_the_same_attacks() {
    let attackers = Attackers {
        count: 2,
        mean_interval: Duration::from_secs(10),
        seed: 7,
    };
    let run = || {
        let mut c = SimCluster::new(RECOVERY).with_deployment("shop", "web", 3);
        let mut stream = attackers.start(t(0));
        (0..20)
            .map(|_| stream.fire_next(&mut c).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn attacks_infect_an_available_pod_with_a_falco_shaped_alert() {
    let mut c = SimCluster::new(RECOVERY).with_deployment("shop", "web", 3);
    let mut stream = Attackers {
        count: 1,
        mean_interval: Duration::from_secs(10),
        seed: 3,
    }
    .start(t(0));
    let attack = stream.fire_next(&mut c).unwrap();
    let alert = attack.alert.unwrap();
    let target = alert.target.clone().unwrap();
    assert_eq!(alert.time, attack.at);
    assert!(attack.at > t(0));
    assert_eq!(target.namespace, "shop");
    assert_eq!(
        alert.fields.get_str("k8s.pod.name"),
        Some(target.pod.as_str())
    );
    assert_eq!(target.uid, c.pod("shop", &target.pod).unwrap().uid);
    assert!(alert.fields.get_str("container.id").is_some());
    assert!(alert.fields.get_str("proc.name").is_some());
    assert_eq!(c.infected_pods(), 1);
}

fn shell(pod: &str, at: i64) -> Alert {
    let mut a = Alert::new("Terminal shell in container", Priority::Notice, t(at));
    a.target = Some(Target::new("shop", pod));
    a
}

#[test]
fn replay_resolves_a_deferral_when_a_replacement_becomes_ready() {
    let policies = PolicySet::parse(DEFAULT_POLICIES, "default.yaml").unwrap();
    let sim = SimCluster::new(RECOVERY).with_deployment("shop", "web", 2);
    let pods = sim.available_pods(&web());
    let steps = crate::replay::replay(
        Engine::new(policies),
        sim,
        vec![
            shell(&pods[0], 0),
            shell(&pods[1], 1),
            Alert::new("Unrelated", Priority::Debug, t(60)),
        ],
    );
    let seen: Vec<(u64, Verdict, Reason, i64)> = steps
        .iter()
        .map(|s| {
            let d = &s.decision;
            (
                d.seq,
                d.verdict,
                d.reason,
                d.decided_at.as_nanos() / 1_000_000_000 - 1_000_000,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, Verdict::Act, Reason::Matched, 0),
            (1, Verdict::Defer, Reason::BelowMinAvailable, 1),
            (1, Verdict::Act, Reason::DeferredReady, 15),
            (2, Verdict::Skip, Reason::NoMatch, 60),
        ]
    );
    assert_eq!(steps[2].outcome, Some(Outcome::Success));
}

#[test]
fn replay_expires_a_deferral_at_its_deadline_when_the_replacement_comes_later() {
    // The rate window of the first reap (60 s) ends before the deferral's deadline (t=101):
    // a passed window end must not hide the deadline, and the replacement that becomes Ready
    // at t=120, with no alert in between, must not make the expired deferral act.
    let yaml = "version: 1\npolicies:\n  - name: reap\n    match: {rules: [\"Terminal shell in container\"]}\n    action: {type: delete}\n    guard: {min_available: 2, max_defer_secs: 100}\n";
    let policies = PolicySet::parse(yaml, "test.yaml").unwrap();
    let sim = SimCluster::new(Duration::from_secs(120)).with_deployment("shop", "web", 3);
    let pods = sim.available_pods(&web());
    let steps = crate::replay::replay(
        Engine::new(policies),
        sim,
        vec![
            shell(&pods[0], 0),
            shell(&pods[1], 1),
            Alert::new("Unrelated", Priority::Debug, t(200)),
        ],
    );
    let seen: Vec<(u64, Verdict, Reason, i64)> = steps
        .iter()
        .map(|s| {
            let d = &s.decision;
            (
                d.seq,
                d.verdict,
                d.reason,
                d.decided_at.as_nanos() / 1_000_000_000 - 1_000_000,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (0, Verdict::Act, Reason::Matched, 0),
            (1, Verdict::Defer, Reason::BelowMinAvailable, 1),
            (1, Verdict::Skip, Reason::DeferExpired, 101),
            (2, Verdict::Skip, Reason::NoMatch, 200),
        ]
    );
}

#[test]
fn the_default_policies_compile() {
    let p = PolicySet::parse(DEFAULT_POLICIES, "default.yaml").unwrap();
    assert_eq!(p.len(), 2);
}

fn small_scenario(replicas: u32, seed: u64) -> Scenario {
    Scenario {
        replicas,
        attackers: Attackers {
            count: 2,
            mean_interval: Duration::from_secs(20),
            seed,
        },
        duration: Duration::from_secs(300),
        ..Scenario::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_time_series() {
    let policies = || PolicySet::parse(DEFAULT_POLICIES, "default.yaml").unwrap();
    let a = simulate::run(&small_scenario(3, 11), policies()).to_csv();
    let b = simulate::run(&small_scenario(3, 11), policies()).to_csv();
    assert_eq!(a, b);
    assert!(a.starts_with(simulate::CSV_HEADER));
    assert_eq!(
        a.lines().count(),
        1 + 61,
        "one sample every 5 s, both ends included"
    );
}

#[test]
fn a_simulation_never_drops_below_min_available_and_counts_its_reaps() {
    let policies = PolicySet::parse(DEFAULT_POLICIES, "default.yaml").unwrap();
    let r = simulate::run(&small_scenario(3, 5), policies);
    assert!(r.summary.min_available >= 1);
    assert!(r.summary.reaps > 0);
    assert!(r.summary.infections > 0);
    assert!(r.summary.mean_ratio <= 1.0 && r.summary.mean_ratio >= r.summary.min_ratio);
    assert!(r.samples.iter().all(|s| s.available <= s.desired));
}

#[test]
fn autoscaling_never_leaves_the_bounds() {
    let policies = PolicySet::parse(DEFAULT_POLICIES, "default.yaml").unwrap();
    let mut s = small_scenario(2, 9);
    s.attackers.count = 4;
    s.attackers.mean_interval = Duration::from_secs(5);
    s.autoscale = Some(simulate::AutoscaleSettings {
        max_replicas: 6,
        cooldown: Duration::from_secs(10),
        scale_down_stabilization: Duration::from_secs(60),
    });
    let r = simulate::run(&s, policies);
    assert!(r.samples.iter().all(|x| (2..=6).contains(&x.desired)));
}

mod props {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

        /// With the default policy (delete, min_available 1, defer, no rate limits or budget)
        /// and the same seed — hence the same attack times — one more replica never lowers the
        /// fewest available pods over the run. (The ratio to desired is not monotone: under a
        /// heavy attack both runs bottom out at min_available, which is a smaller share of more
        /// replicas.)
        #[test]
        fn one_more_replica_never_lowers_the_minimum_of_available_pods(
            replicas in 1u32..6,
            attackers in 1u32..4,
            interval in 5u64..60,
            recovery in 1u64..40,
            seed in any::<u64>(),
        ) {
            let scenario = |replicas| Scenario {
                replicas,
                attackers: Attackers { count: attackers, mean_interval: Duration::from_secs(interval), seed },
                recovery: Duration::from_secs(recovery),
                duration: Duration::from_secs(240),
                step: Duration::from_secs(10),
                ..Scenario::default()
            };
            let policies = || PolicySet::parse(DEFAULT_POLICIES, "default.yaml").unwrap();
            let fewer = simulate::run(&scenario(replicas), policies()).summary.min_available;
            let more = simulate::run(&scenario(replicas + 1), policies()).summary.min_available;
            prop_assert!(more >= fewer, "{} replicas: min {}, {} replicas: min {}", replicas, fewer, replicas + 1, more);
        }
    }
}

/// Poll a future that is ready at once (SharedSim's futures never wait).
fn now_or_never<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("SharedSim futures are ready at once"),
    }
}

#[test]
fn shared_sim_acts_and_scales_at_its_clock_time() {
    use std::sync::atomic::{AtomicI64, Ordering};

    use teflon_core::Actuator;
    use teflon_core::autoscale::Scaler;

    let clock = Arc::new(AtomicI64::new(t(0).as_nanos()));
    let c = clock.clone();
    let shared = crate::SharedSim::new(
        SimCluster::new(RECOVERY).with_deployment("shop", "web", 2),
        Arc::new(move || Timestamp::from_nanos(c.load(Ordering::SeqCst))),
    );
    let pod = shared.lock().available_pods(&web())[0].clone();
    assert_eq!(
        now_or_never(shared.execute(&plan(delete(), "shop", &pod, None))).outcome,
        Outcome::Success
    );
    assert_eq!(shared.workload(&web()).unwrap().available, 1);
    assert_eq!(shared.next_event_time(), Some(t(15)));

    now_or_never(shared.scale(&web(), 3)).unwrap();
    assert!(now_or_never(shared.scale(&db(), 3)).is_err());

    clock.store(t(15).as_nanos(), Ordering::SeqCst);
    let events = shared.advance();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        matches!(&events[0], SimEvent::Recreated { took, .. } if *took == RECOVERY)
            || matches!(&events[1], SimEvent::Recreated { took, .. } if *took == RECOVERY)
    );
    assert_eq!(
        shared.workload(&web()).unwrap(),
        teflon_core::WorkloadStatus {
            desired: 3,
            available: 3
        }
    );
}

#[test]
fn an_older_alert_is_decided_at_its_own_time_without_rewinding_the_cluster() {
    let policies = PolicySet::parse(DEFAULT_POLICIES, "default.yaml").unwrap();
    let sim = SimCluster::new(RECOVERY).with_deployment("shop", "web", 3);
    let pods = sim.available_pods(&web());
    let mut r = crate::Replayer::new(Engine::new(policies), sim);
    r.push(shell(&pods[0], 100));
    let steps = r.push(shell(&pods[1], 90));
    assert_eq!(steps[0].decision.decided_at, t(90));
    assert_eq!(steps[0].decision.reason, Reason::Matched);
    // Both reaps took effect in cluster time: replacements are due 15 s after t = 100.
    assert_eq!(r.sim().next_event_time(), Some(t(115)));
    assert_eq!(r.now(), Some(t(100)));
}

/// The saturation scenario of issue 19: 3 replicas, one attacker hitting a Ready pod about
/// once a second, 10 s to Ready, autoscaling 3–12 with a 15 s cooldown, seed 7.
fn saturation(autoscale: bool, phases: Vec<simulate::AttackPhase>, secs: u64) -> Scenario {
    Scenario {
        replicas: 3,
        attackers: Attackers {
            count: 1,
            mean_interval: Duration::from_secs(1),
            seed: 7,
        },
        phases,
        recovery: Duration::from_secs(10),
        duration: Duration::from_secs(secs),
        step: Duration::from_secs(5),
        autoscale: autoscale.then_some(simulate::AutoscaleSettings {
            max_replicas: 12,
            cooldown: Duration::from_secs(15),
            scale_down_stabilization: Duration::from_secs(120),
        }),
        ..Scenario::default()
    }
}

fn default_policies() -> PolicySet {
    PolicySet::parse(DEFAULT_POLICIES, "default.yaml").unwrap()
}

#[test]
fn under_saturation_the_autoscaler_reaches_ten_replicas_within_30_s_of_onset() {
    let r = simulate::run(&saturation(true, Vec::new(), 300), default_policies());
    let first = r.samples.iter().find(|s| s.desired >= 10).unwrap();
    assert!(
        first.time_secs <= 30.0,
        "10 replicas only at {}s",
        first.time_secs
    );
    // Once scaled, availability never fell below the policy's min_available (1).
    assert!(r.summary.min_available >= 1, "{:?}", r.summary);
}

#[test]
fn after_a_minute_replicas_needed_follows_littles_law_within_20_percent() {
    let r = simulate::run(&saturation(true, Vec::new(), 300), default_policies());
    // m + λ·(TTR + dwell) with the simulated parameters: λ = 1/s, TTR = 10 s, dwell as run.
    let expected = 1.0 + 1.0 * (10.0 + r.summary.mean_dwell_secs);
    for s in r.samples.iter().filter(|s| s.time_secs >= 60.0) {
        let needed = f64::from(s.replicas_needed);
        assert!(
            (needed - expected).abs() <= 0.2 * expected,
            "{}s: {needed} replicas needed, expected {expected:.2} ± 20 %",
            s.time_secs
        );
    }
}

#[test]
fn autoscaling_on_the_attack_at_least_halves_the_attackers_dwell() {
    let fixed = simulate::run(&saturation(false, Vec::new(), 300), default_policies());
    let scaled = simulate::run(&saturation(true, Vec::new(), 300), default_policies());
    // Same seed, same attack times: without scaling the service sits at its floor, one
    // infected pod held back at a time.
    assert_eq!(fixed.summary.attacks, scaled.summary.attacks);
    assert!(
        scaled.summary.infected_pod_seconds * 2.0 <= fixed.summary.infected_pod_seconds,
        "{} infected pod-seconds scaled, {} fixed",
        scaled.summary.infected_pod_seconds,
        fixed.summary.infected_pod_seconds
    );
    assert!(scaled.summary.infected_pod_seconds * 2.0 <= 247.8);
}

#[test]
fn when_the_attack_stops_the_pressure_falls_below_one_within_the_window() {
    let phases = vec![simulate::AttackPhase {
        from: Duration::from_secs(0),
        until: Duration::from_secs(240),
    }];
    let r = simulate::run(&saturation(true, phases, 600), default_policies());
    let during: Vec<_> = r.samples.iter().filter(|s| s.time_secs < 240.0).collect();
    assert!(during.iter().any(|s| s.attack_pressure >= 1.0));
    // The documented decay: below 1 within the rate window (300 s) of the last hit, and
    // min_available from then on; never rising after the attack.
    let after: Vec<_> = r.samples.iter().filter(|s| s.time_secs >= 240.0).collect();
    let below = after.iter().find(|s| s.attack_pressure < 1.0).unwrap();
    assert!(below.time_secs <= 240.0 + 300.0, "{below:?}");
    for pair in after.windows(2) {
        assert!(
            pair[1].replicas_needed <= pair[0].replicas_needed,
            "{pair:?}"
        );
    }
    for s in after.iter().filter(|s| s.time_secs >= 240.0 + 300.0) {
        assert_eq!(s.replicas_needed, 1, "{s:?}");
    }
}

#[test]
fn attack_phases_bound_the_attack() {
    let attackers = Attackers {
        count: 3,
        mean_interval: Duration::from_secs(2),
        seed: 11,
    };
    let phases = [(t(100), t(160)), (t(10), t(40))];
    let mut c = SimCluster::new(RECOVERY).with_deployment("shop", "web", 50);
    let mut stream = attackers.start_in(t(0), &phases);
    let mut times = Vec::new();
    while let Some(a) = stream.fire_next(&mut c) {
        times.push(a.at);
    }
    assert!(times.len() > 30, "{} attacks", times.len());
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    for at in &times {
        assert!(
            phases.iter().any(|(a, b)| a <= at && at < b),
            "attack at {at:?} outside the phases"
        );
    }
    assert!(times.iter().any(|at| *at < t(40)) && times.iter().any(|at| *at >= t(100)));
}

fn pod_release(pod: &str, uid: Option<String>) -> teflon_core::ReleaseTarget {
    teflon_core::ReleaseTarget::Pod {
        namespace: "shop".to_owned(),
        name: pod.to_owned(),
        uid,
    }
}

#[test]
fn release_restores_exactly_the_labels_deletes_the_network_policy_and_the_controller_removes_the_surplus()
 {
    use teflon_core::{ReleaseCause, ReleaseOutcome};
    let mut c = snapshot();
    let pod = "web-7d4b9c8f6d-8fz5n";
    let before = c.pod_labels("shop", pod).unwrap();
    let uid = c.pod_uid("shop", pod);
    let q = Action::Quarantine {
        labels: [
            ("app".to_owned(), "quarantined".to_owned()),
            ("forensics".to_owned(), "hold".to_owned()),
        ]
        .into_iter()
        .collect(),
        network_isolate: true,
        expire_after: Some(Duration::from_secs(600)),
    };
    let mut p = plan(q, "shop", pod, uid.as_deref());
    p.workload = Some(web());
    assert_eq!(c.apply(&p, t(0)), Outcome::Success);
    assert!(c.has_network_policy("shop", &format!("teflon-quarantine-{pod}")));
    assert_eq!(c.pod_labels("shop", pod).unwrap()["app"], "quarantined");
    let active = c.active();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].expires_at, Some(t(600)));
    assert_eq!(c.release_target(&p), Some(active[0].target.clone()));
    // The replacement becomes Ready: 3 of 3 again, plus the quarantined pod.
    c.advance_to(t(15));
    assert_eq!(c.workload(&web()).unwrap().available, 3);

    let r = c.release(
        &pod_release(pod, uid.clone()),
        ReleaseCause::Operator,
        t(20),
    );
    assert_eq!(r.outcome, ReleaseOutcome::Released);
    assert_eq!(
        c.pod_labels("shop", pod).unwrap(),
        before,
        "exactly the labels it had"
    );
    assert!(!c.has_network_policy("shop", &format!("teflon-quarantine-{pod}")));
    assert_eq!(
        c.pod("shop", pod).unwrap().workload,
        Some(web()),
        "adopted again"
    );
    // Four pods for three replicas: the newest (the replacement) went, the released one stays.
    let status = c.workload(&web()).unwrap();
    assert_eq!((status.desired, status.available), (3, 3));
    assert!(c.available_pods(&web()).contains(&pod.to_owned()));
    assert!(c.active().is_empty());
    let again = c.release(&pod_release(pod, uid), ReleaseCause::Operator, t(21));
    assert!(
        matches!(again.outcome, ReleaseOutcome::Refused(_)),
        "{again:?}"
    );
}

#[test]
fn release_is_refused_when_the_uid_no_longer_matches() {
    use teflon_core::{ReleaseCause, ReleaseOutcome};
    let mut c = snapshot();
    let pod = "web-7d4b9c8f6d-8fz5n";
    assert_eq!(
        c.apply(&plan(quarantine(), "shop", pod, None), t(0)),
        Outcome::Success
    );
    let labels = c.pod_labels("shop", pod);
    let r = c.release(
        &pod_release(pod, Some("uid-of-another-pod".to_owned())),
        ReleaseCause::Operator,
        t(1),
    );
    assert!(
        matches!(&r.outcome, ReleaseOutcome::Refused(m) if m.contains("another pod now")),
        "{r:?}"
    );
    assert_eq!(c.pod_labels("shop", pod), labels, "nothing changed");
    assert!(c.has_network_policy("shop", &format!("teflon-quarantine-{pod}")));
    assert_eq!(
        c.release(&pod_release("ghost", None), ReleaseCause::Operator, t(1))
            .outcome,
        ReleaseOutcome::NotFound
    );
}

#[test]
fn a_released_stateful_set_pod_gets_its_ordinal_back_without_a_surplus() {
    use teflon_core::{ReleaseCause, ReleaseOutcome};
    let mut c = snapshot();
    let mut p = plan(quarantine(), "shop", "db-0", None);
    p.workload = Some(db());
    assert_eq!(c.apply(&p, t(0)), Outcome::Success);
    c.advance_to(t(30));
    assert_eq!(
        c.workload(&db()).unwrap().available,
        1,
        "the ordinal is taken"
    );
    let r = c.release(&pod_release("db-0", None), ReleaseCause::Operator, t(31));
    assert_eq!(r.outcome, ReleaseOutcome::Released);
    assert_eq!(c.workload(&db()).unwrap().available, 2);
}

#[test]
fn expiry_waits_for_the_deadline_and_block_binary_policies_are_released_too() {
    use teflon_core::{ReleaseCause, ReleaseOutcome, ReleaseTarget};
    let mut c = snapshot();
    let block = Action::BlockBinary {
        binary_fields: vec!["proc.exepath".to_owned()],
        expire_after: Some(Duration::from_secs(60)),
    };
    let mut p = plan(block, "shop", "db-0", None);
    p.binary = Some("/usr/bin/xmrig".to_owned());
    assert_eq!(c.apply(&p, t(0)), Outcome::Success);
    let target = c.release_target(&p).unwrap();
    assert_eq!(
        target,
        ReleaseTarget::Policy {
            namespace: "shop".to_owned(),
            name: "teflon-block-db-xmrig".to_owned()
        }
    );
    assert_eq!(c.active()[0].applies_to.as_deref(), Some("StatefulSet/db"));
    let early = c.release(&target, ReleaseCause::Expired, t(59));
    assert!(
        matches!(early.outcome, ReleaseOutcome::Refused(_)),
        "{early:?}"
    );
    // A new detection re-applies it: the deadline moves.
    assert_eq!(c.apply(&p, t(30)), Outcome::Success);
    assert!(matches!(
        c.release(&target, ReleaseCause::Expired, t(60)).outcome,
        ReleaseOutcome::Refused(_)
    ));
    assert_eq!(
        c.release(&target, ReleaseCause::Expired, t(90)).outcome,
        ReleaseOutcome::Released
    );
    assert!(c.active().is_empty());
    assert_eq!(
        c.release(&target, ReleaseCause::Operator, t(91)).outcome,
        ReleaseOutcome::NotFound
    );
}
