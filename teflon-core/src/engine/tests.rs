use super::*;
use crate::action::{Action, Outcome};
use crate::alert::Priority;
use crate::cluster::StaticCluster;

fn policies(yaml: &str) -> PolicySet {
    PolicySet::parse(yaml, "test.yaml").unwrap()
}

/// One `delete` policy on shells with the given guard YAML (flow style) and defaults.
fn delete_policy(guard: &str, defaults: &str) -> PolicySet {
    policies(&format!(
        "version: 1\ndefaults: {{{defaults}}}\npolicies:\n  - name: reap-shells\n    match: {{rules: [\"Terminal shell in container\"]}}\n    action: {{type: delete, grace_period_secs: 0}}\n    guard: {{{guard}}}\n"
    ))
}

fn shell(ns: &str, pod: &str, secs: i64) -> Alert {
    Alert::test().pod(ns, pod).at_secs(secs).build()
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn web(desired: u32, ready: u32) -> StaticCluster {
    StaticCluster::new().deployment("shop", "web", desired, ready)
}

fn only(mut ds: Vec<Decision>) -> Decision {
    assert_eq!(ds.len(), 1, "{ds:#?}");
    ds.remove(0)
}

fn deployment(name: &str) -> WorkloadRef {
    WorkloadRef::new(WorkloadKind::Deployment, "shop", name)
}

#[test]
fn alert_matching_no_policy_is_skipped_as_no_match() {
    let mut e = Engine::new(delete_policy("", ""));
    let a = Alert::test()
        .rule("Something else")
        .pod("shop", "web-0")
        .build();
    let d = only(e.decide(a, &web(3, 3), t(0)));
    assert_eq!(
        (d.verdict, d.reason, d.policy),
        (Verdict::Skip, Reason::NoMatch, None)
    );
}

#[test]
fn delete_without_a_pod_target_is_skipped_as_no_target() {
    let mut e = Engine::new(delete_policy("", ""));
    let d = only(e.decide(Alert::test().build(), &web(3, 3), t(0)));
    assert_eq!((d.verdict, d.reason), (Verdict::Skip, Reason::NoTarget));
}

#[test]
fn log_without_a_pod_target_still_acts() {
    let mut e = Engine::new(policies(
        "version: 1\npolicies:\n  - name: audit\n    action: {type: log}\n",
    ));
    let d = only(e.decide(Alert::test().build(), &web(3, 3), t(0)));
    assert_eq!((d.verdict, d.reason), (Verdict::Act, Reason::Matched));
    assert!(d.infection.is_none());
}

#[test]
fn pod_in_protected_namespace_is_skipped() {
    let mut e = Engine::new(delete_policy("", ""));
    let view = StaticCluster::new().deployment("kube-system", "coredns", 2, 2);
    let d = only(e.decide(shell("kube-system", "coredns-0", 0), &view, t(0)));
    assert_eq!((d.verdict, d.reason), (Verdict::Skip, Reason::Protected));
}

#[test]
fn protected_namespaces_are_globs() {
    let mut e = Engine::new(delete_policy("", "protected_namespaces: [\"infra-*\"]"));
    let view = StaticCluster::new().deployment("infra-db", "pg", 3, 3);
    let d = only(e.decide(shell("infra-db", "pg-0", 0), &view, t(0)));
    assert_eq!(d.reason, Reason::Protected);
}

#[test]
fn healthy_deployment_pod_is_deleted_with_its_uid_precondition() {
    let mut e = Engine::new(delete_policy("", ""));
    let d = only(e.decide(shell("shop", "web-0", 0), &web(3, 3), t(0)));
    assert_eq!((d.verdict, d.reason), (Verdict::Act, Reason::Matched));
    assert_eq!(d.workload, Some(deployment("web")));
    let plan = d.plan.unwrap();
    assert_eq!(plan.pod.uid.as_deref(), Some("uid-web-0"));
    assert_eq!(
        plan.action,
        Action::Delete {
            grace_period_secs: Some(0)
        }
    );
}

#[test]
fn second_alert_for_a_reaped_pod_is_a_duplicate() {
    let mut e = Engine::new(delete_policy("", "dedup_window_secs: 0"));
    let view = web(3, 3);
    only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    let d = only(e.decide(shell("shop", "web-0", 500), &view, t(500)));
    assert_eq!((d.verdict, d.reason), (Verdict::Skip, Reason::Duplicate));
}

#[test]
fn same_pod_and_policy_within_the_dedup_window_is_a_duplicate_and_after_it_is_not() {
    let mut e = Engine::new(policies(
        "version: 1\ndefaults: {dedup_window_secs: 60}\npolicies:\n  - name: audit\n    action: {type: log}\n",
    ));
    let view = web(3, 3);
    assert_eq!(
        only(e.decide(shell("shop", "web-0", 0), &view, t(0))).reason,
        Reason::Matched
    );
    assert_eq!(
        only(e.decide(shell("shop", "web-0", 59), &view, t(59))).reason,
        Reason::Duplicate
    );
    assert_eq!(
        only(e.decide(shell("shop", "web-0", 61), &view, t(61))).reason,
        Reason::Matched
    );
}

#[test]
fn statefulset_replacement_with_the_same_name_is_not_a_duplicate() {
    let mut e = Engine::new(delete_policy("", "dedup_window_secs: 0"));
    let mut view = StaticCluster::new().workload(WorkloadKind::StatefulSet, "shop", "db", 3, 3);
    let first = only(e.decide(shell("shop", "db-0", 0), &view, t(0)));
    e.record(first.plan.unwrap().id, &Outcome::Success, t(0));
    let sts = WorkloadRef::new(WorkloadKind::StatefulSet, "shop", "db");
    view.add_pod(&sts, "db-0", "uid-db-0-new", true);
    let d = only(e.decide(shell("shop", "db-0", 100), &view, t(100)));
    assert_eq!((d.verdict, d.reason), (Verdict::Act, Reason::Matched));
    assert_eq!(d.plan.unwrap().pod.uid.as_deref(), Some("uid-db-0-new"));
}

#[test]
fn pod_unknown_to_the_cluster_is_skipped_as_pod_not_found() {
    let mut e = Engine::new(delete_policy("", ""));
    let d = only(e.decide(shell("shop", "ghost", 0), &web(3, 3), t(0)));
    assert_eq!((d.verdict, d.reason), (Verdict::Skip, Reason::PodNotFound));
}

#[test]
fn alert_uid_that_differs_from_the_cluster_pod_is_pod_not_found() {
    let mut e = Engine::new(delete_policy("", ""));
    let a = Alert::test()
        .pod("shop", "web-0")
        .uid("some-older-pod")
        .build();
    let d = only(e.decide(a, &web(3, 3), t(0)));
    assert_eq!(d.reason, Reason::PodNotFound);
}

#[test]
fn standalone_pod_is_skipped_by_default() {
    let mut e = Engine::new(delete_policy("", ""));
    let view = StaticCluster::new().standalone("shop", "debug");
    let d = only(e.decide(shell("shop", "debug", 0), &view, t(0)));
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Skip, Reason::StandalonePod)
    );
}

#[test]
fn standalone_pod_is_reaped_without_availability_step_when_allowed() {
    let mut e = Engine::new(delete_policy("standalone_pods: act, min_available: 5", ""));
    let view = StaticCluster::new().standalone("shop", "debug");
    let d = only(e.decide(shell("shop", "debug", 0), &view, t(0)));
    assert_eq!((d.verdict, d.reason), (Verdict::Act, Reason::Matched));
    assert_eq!(d.workload, None);
}

#[test]
fn workload_max_actions_per_window_rate_limits() {
    let mut e = Engine::new(delete_policy(
        "max_actions: 1, window_secs: 60, min_available: 0",
        "",
    ));
    let view = web(5, 5);
    assert_eq!(
        only(e.decide(shell("shop", "web-0", 0), &view, t(0))).reason,
        Reason::Matched
    );
    let d = only(e.decide(shell("shop", "web-1", 30), &view, t(30)));
    assert_eq!((d.verdict, d.reason), (Verdict::Skip, Reason::RateLimited));
    assert_eq!(
        only(e.decide(shell("shop", "web-2", 61), &view, t(61))).reason,
        Reason::Matched
    );
}

#[test]
fn cluster_budget_caps_disruptive_actions_across_workloads() {
    let mut e = Engine::new(delete_policy(
        "min_available: 0",
        "cluster_max_actions: 1, cluster_window_secs: 60",
    ));
    let view = web(3, 3).deployment("shop", "api", 3, 3);
    assert_eq!(
        only(e.decide(shell("shop", "web-0", 0), &view, t(0))).reason,
        Reason::Matched
    );
    let d = only(e.decide(shell("shop", "api-0", 1), &view, t(1)));
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Skip, Reason::ClusterBudget)
    );
}

#[test]
fn pdb_with_no_disruptions_allowed_defers() {
    let mut e = Engine::new(delete_policy("min_available: 0", ""));
    let view = web(3, 3).pdb("shop", "web-0", 0);
    let d = only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Defer, Reason::DisruptionBudget)
    );
    assert!(d.plan.is_none());
}

#[test]
fn pdb_block_is_skipped_when_defer_is_off() {
    let mut e = Engine::new(delete_policy("min_available: 0, defer: false", ""));
    let view = web(3, 3).pdb("shop", "web-0", 0);
    let d = only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Skip, Reason::DisruptionBudget)
    );
}

#[test]
fn acting_below_min_available_defers() {
    let mut e = Engine::new(delete_policy("min_available: 3", ""));
    let d = only(e.decide(shell("shop", "web-0", 0), &web(3, 3), t(0)));
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Defer, Reason::BelowMinAvailable)
    );
}

#[test]
fn below_min_available_is_skipped_when_defer_is_off() {
    let mut e = Engine::new(delete_policy("min_available: 3, defer: false", ""));
    let d = only(e.decide(shell("shop", "web-0", 0), &web(3, 3), t(0)));
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Skip, Reason::BelowMinAvailable)
    );
}

#[test]
fn unready_pod_does_not_count_against_availability() {
    // 3 desired, 2 Ready + the infected pod not Ready: reaping it leaves 2 ≥ 2.
    let mut e = Engine::new(delete_policy("min_available: 2", ""));
    let mut view = web(3, 3);
    view.set_ready("shop", "web-0", false);
    let d = only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    assert_eq!(d.reason, Reason::Matched);
}

#[test]
fn percent_min_available_is_of_desired_replicas_rounded_up() {
    // 50% of 4 = 2: with 4 Ready, two reaps pass; the third would leave 1.
    let mut e = Engine::new(delete_policy(
        "min_available: \"50%\", defer: false",
        "dedup_window_secs: 0",
    ));
    let view = web(4, 4);
    assert_eq!(
        only(e.decide(shell("shop", "web-0", 0), &view, t(0))).reason,
        Reason::Matched
    );
    assert_eq!(
        only(e.decide(shell("shop", "web-1", 0), &view, t(0))).reason,
        Reason::Matched
    );
    assert_eq!(
        only(e.decide(shell("shop", "web-2", 0), &view, t(0))).reason,
        Reason::BelowMinAvailable
    );
}

#[test]
fn pods_already_being_reaped_count_against_availability_until_the_view_catches_up() {
    let mut e = Engine::new(delete_policy("min_available: 2", ""));
    let mut view = web(3, 3);
    let first = only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    assert_eq!(first.reason, Reason::Matched);
    // The view still shows web-0 Ready: web-1 must wait.
    let second = only(e.decide(shell("shop", "web-1", 1), &view, t(1)));
    assert_eq!(
        (second.verdict, second.reason),
        (Verdict::Defer, Reason::BelowMinAvailable)
    );
    // web-0 is gone; its replacement is not Ready yet: still 2 available, still waiting.
    view.remove_pod("shop", "web-0");
    e.record(first.plan.unwrap().id, &Outcome::Success, t(2));
    assert!(e.tick(&view, t(2)).is_empty());
    // The replacement becomes Ready: the deferred action goes.
    view.add_pod(&deployment("web"), "web-x1", "uid-x1", true);
    let d = only(e.tick(&view, t(17)));
    assert_eq!(
        (d.seq, d.verdict, d.reason),
        (1, Verdict::Act, Reason::DeferredReady)
    );
    assert_eq!(d.plan.unwrap().pod.name, "web-1");
}

#[test]
fn deferral_expires_after_max_defer_secs() {
    let mut e = Engine::new(delete_policy("min_available: 3, max_defer_secs: 300", ""));
    let view = web(3, 3);
    only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    assert!(e.tick(&view, t(299)).is_empty());
    assert_eq!(e.next_deadline(t(299)), Some(t(300)));
    let d = only(e.tick(&view, t(300)));
    assert_eq!(
        (d.seq, d.verdict, d.reason),
        (0, Verdict::Skip, Reason::DeferExpired)
    );
    assert!(e.deferrals().is_empty());
}

#[test]
fn a_deferral_never_acts_after_its_deadline_even_when_the_first_recheck_comes_later() {
    let mut e = Engine::new(delete_policy("min_available: 3, max_defer_secs: 10", ""));
    let mut view = web(3, 3);
    assert_eq!(
        only(e.decide(shell("shop", "web-0", 0), &view, t(0))).verdict,
        Verdict::Defer
    );
    // A fourth pod becomes Ready only after the deadline (t=10), and nothing re-checked the
    // deferral in between: it has expired, it must not act.
    view.add_pod(&deployment("web"), "web-3", "uid-web-3", true);
    let d = only(e.tick(&view, t(11)));
    assert_eq!(
        (d.seq, d.verdict, d.reason, d.plan.is_none()),
        (0, Verdict::Skip, Reason::DeferExpired, true)
    );
    assert!(e.deferrals().is_empty());
}

#[test]
fn next_deadline_is_the_next_one_after_now_even_when_older_ones_have_passed() {
    let yaml = "version: 1\npolicies:\n  - name: careful\n    match: {rules: [\"Careful\"]}\n    action: {type: delete}\n    guard: {min_available: 3, max_defer_secs: 300, max_actions: 5, window_secs: 10}\n  - name: urgent\n    match: {rules: [\"Urgent\"]}\n    action: {type: delete}\n    guard: {min_available: 0}\n";
    let mut e = Engine::new(policies(yaml));
    let view = web(3, 3);
    // An action at t=0 on the workload: its rate window ends at t=10.
    let b = Alert::test().rule("Urgent").pod("shop", "web-1").build();
    assert_eq!(only(e.decide(b, &view, t(0))).reason, Reason::Matched);
    let a = Alert::test()
        .rule("Careful")
        .pod("shop", "web-0")
        .at_secs(20)
        .build();
    assert_eq!(only(e.decide(a, &view, t(20))).verdict, Verdict::Defer);
    // The window's end (t=10) is in the past: the next deadline is the expiry, not "none"
    // (the cluster budget's window, 60 s after the action, may free up first).
    assert_eq!(e.next_deadline(t(20)), Some(t(60)));
    assert_eq!(e.next_deadline(t(60)), Some(t(320)));
    assert_eq!(e.next_deadline(t(320)), None);
}

#[test]
fn deferral_whose_pod_disappears_resolves_as_pod_not_found() {
    let mut e = Engine::new(delete_policy("min_available: 3", ""));
    let mut view = web(3, 3);
    only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    view.remove_pod("shop", "web-0");
    let d = only(e.tick(&view, t(5)));
    assert_eq!((d.verdict, d.reason), (Verdict::Skip, Reason::PodNotFound));
}

#[test]
fn deferral_whose_pod_was_reaped_by_another_policy_resolves_as_duplicate() {
    let yaml = "version: 1\npolicies:\n  - name: careful\n    match: {rules: [\"Careful\"]}\n    action: {type: delete}\n    guard: {min_available: 3}\n  - name: urgent\n    match: {rules: [\"Urgent\"]}\n    action: {type: delete}\n    guard: {min_available: 0}\n";
    let mut e = Engine::new(policies(yaml));
    let view = web(3, 3);
    let a = Alert::test().rule("Careful").pod("shop", "web-0").build();
    assert_eq!(only(e.decide(a, &view, t(0))).verdict, Verdict::Defer);
    let b = Alert::test().rule("Urgent").pod("shop", "web-0").build();
    let ds = e.decide(b, &view, t(1));
    // The old deferral is re-checked first and is still blocked; the urgent one acts.
    let d = only(ds);
    assert_eq!((d.seq, d.reason), (1, Reason::Matched));
    let resolved = only(e.tick(&view, t(2)));
    assert_eq!(
        (resolved.seq, resolved.verdict, resolved.reason),
        (0, Verdict::Skip, Reason::Duplicate)
    );
}

#[test]
fn deferrals_are_rechecked_oldest_first_before_a_newer_alert() {
    let mut e = Engine::new(delete_policy("min_available: 2", ""));
    let mut view = web(3, 2);
    // 2 Ready of 3: nothing can go.
    assert_eq!(
        only(e.decide(shell("shop", "web-0", 0), &view, t(0))).verdict,
        Verdict::Defer
    );
    assert_eq!(
        only(e.decide(shell("shop", "web-1", 1), &view, t(1))).verdict,
        Verdict::Defer
    );
    // A third Ready pod appears; one reap may go: the oldest deferral (web-0) wins.
    view.add_pod(&deployment("web"), "web-2", "uid-web-2", true);
    let ds = e.decide(Alert::test().rule("Unrelated").build(), &view, t(10));
    assert_eq!(ds.len(), 2);
    assert_eq!((ds[0].seq, ds[0].reason), (0, Reason::DeferredReady));
    assert_eq!(ds[1].reason, Reason::NoMatch);
    assert_eq!(e.deferrals().len(), 1);
    assert_eq!(e.deferrals()[0].seq, 1);
}

#[test]
fn deferral_stays_deferred_while_a_rate_limit_blocks_it() {
    let yaml = "version: 1\npolicies:\n  - name: careful\n    match: {rules: [\"Careful\"]}\n    action: {type: delete}\n    guard: {min_available: 2, max_actions: 1, window_secs: 100}\n  - name: urgent\n    match: {rules: [\"Urgent\"]}\n    action: {type: delete}\n    guard: {min_available: 0}\n";
    let mut e = Engine::new(policies(yaml));
    let mut view = web(3, 2);
    let a = Alert::test().rule("Careful").pod("shop", "web-0").build();
    let d = only(e.decide(a, &view, t(0)));
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Defer, Reason::BelowMinAvailable)
    );
    // Another policy reaps web-1: that uses the workload's one action per 100 s.
    let b = Alert::test().rule("Urgent").pod("shop", "web-1").build();
    assert_eq!(only(e.decide(b, &view, t(1))).reason, Reason::Matched);
    // Availability recovers, but the rate limit still blocks the deferral.
    view.add_pod(&deployment("web"), "web-2", "uid-web-2", true);
    view.add_pod(&deployment("web"), "web-3", "uid-web-3", true);
    assert!(e.tick(&view, t(50)).is_empty());
    assert_eq!(e.deferrals()[0].blocked_by, Reason::RateLimited);
    assert!(e.next_deadline(t(50)).is_some_and(|d| d <= t(101)));
    assert!(e.tick(&view, t(100)).is_empty());
    let d = only(e.tick(&view, t(101)));
    assert_eq!((d.seq, d.reason), (0, Reason::DeferredReady));
}

#[test]
fn rate_limit_is_checked_before_availability() {
    let mut e = Engine::new(delete_policy("min_available: 5, max_actions: 0", ""));
    let d = only(e.decide(shell("shop", "web-0", 0), &web(3, 3), t(0)));
    assert_eq!((d.verdict, d.reason), (Verdict::Skip, Reason::RateLimited));
}

#[test]
fn dry_run_gives_the_same_verdicts_without_executing_or_reaping() {
    let yaml = "version: 1\ndefaults: {dedup_window_secs: 0}\npolicies:\n  - name: p\n    action: {type: delete}\n    dry_run: true\n";
    let mut e = Engine::new(policies(yaml));
    let view = web(3, 3);
    let d = only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    assert_eq!(
        (d.verdict, d.reason, d.dry_run),
        (Verdict::Act, Reason::Matched, true)
    );
    assert!(d.plan.is_none());
    assert!(d.infection.is_some(), "dry run still counts the infection");
    // Not reaped: a later alert on the same pod acts again (in dry run).
    let d = only(e.decide(shell("shop", "web-0", 10), &view, t(10)));
    assert_eq!(d.reason, Reason::Matched);
}

#[test]
fn continue_yields_a_decision_per_matching_policy_each_seeing_the_previous_state() {
    let yaml = "version: 1\npolicies:\n  - name: first\n    action: {type: delete}\n    guard: {min_available: 0}\n    continue: true\n  - name: second\n    action: {type: evict}\n  - name: third\n    action: {type: log}\n";
    let mut e = Engine::new(policies(yaml));
    let ds = e.decide(shell("shop", "web-0", 0), &web(3, 3), t(0));
    assert_eq!(ds.len(), 2, "stops after `second`, which does not continue");
    assert_eq!(ds[0].reason, Reason::Matched);
    assert_eq!(ds[1].policy.as_deref(), Some("second"));
    assert_eq!(ds[1].reason, Reason::Duplicate);
}

#[test]
fn infection_is_counted_once_per_pod_and_not_for_log_policies() {
    let yaml = "version: 1\ndefaults: {dedup_window_secs: 0}\npolicies:\n  - name: watch\n    match: {rules: [\"Watch\"]}\n    action: {type: log}\n  - name: reap\n    action: {type: delete}\n    guard: {min_available: 3}\n";
    let mut e = Engine::new(policies(yaml));
    let view = web(3, 3);
    let d = only(e.decide(
        Alert::test().rule("Watch").pod("shop", "web-0").build(),
        &view,
        t(0),
    ));
    assert!(d.infection.is_none());
    let d = only(e.decide(shell("shop", "web-0", 1), &view, t(1)));
    assert_eq!(
        d.infection.as_ref().map(|i| i.workload.clone()),
        Some(deployment("web"))
    );
    let d = only(e.decide(shell("shop", "web-0", 2), &view, t(2)));
    assert!(d.infection.is_none(), "same pod again");
    let stats = e.workload_stats(&view, t(2));
    assert_eq!(stats[0].infections_total, 1);
    assert_eq!(stats[0].infected_pods, 1);
}

#[test]
fn reaped_pod_is_no_longer_infected() {
    let mut e = Engine::new(delete_policy("min_available: 0", ""));
    let view = web(3, 3);
    let d = only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    assert_eq!(e.workload_stats(&view, t(0))[0].infected_pods, 1);
    e.record(d.plan.unwrap().id, &Outcome::Success, t(1));
    let s = &e.workload_stats(&view, t(1))[0];
    assert_eq!((s.infected_pods, s.reaps_total), (0, 1));
}

#[test]
fn failed_action_is_not_a_reap_and_refunds_the_rate_limit() {
    let mut e = Engine::new(delete_policy(
        "min_available: 0, max_actions: 1",
        "dedup_window_secs: 0",
    ));
    let view = web(3, 3);
    let d = only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    e.record(d.plan.unwrap().id, &Outcome::Failed("500".into()), t(0));
    let d = only(e.decide(shell("shop", "web-0", 1), &view, t(1)));
    assert_eq!((d.verdict, d.reason), (Verdict::Act, Reason::Matched));
}

#[test]
fn eviction_refused_by_a_pdb_is_retried_as_a_deferral() {
    let yaml = "version: 1\npolicies:\n  - name: ev\n    action: {type: evict}\n    guard: {min_available: 0}\n";
    let mut e = Engine::new(policies(yaml));
    let view = web(3, 3);
    let d = only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    e.record(d.plan.unwrap().id, &Outcome::DisruptionBudget, t(0));
    assert_eq!(e.deferrals().len(), 1);
    assert!(e.tick(&view, t(1)).is_empty(), "waits pdb_retry_after");
    let d = only(e.tick(&view, t(6)));
    assert_eq!(
        (d.seq, d.verdict, d.reason),
        (0, Verdict::Act, Reason::DeferredReady)
    );
}

#[test]
fn block_binary_resolves_the_binary_from_exepath_then_name() {
    let yaml = "version: 1\npolicies:\n  - name: block\n    action: {type: block_binary}\n";
    let mut e = Engine::new(policies(yaml));
    let view = web(3, 3);
    let a = Alert::test()
        .pod("shop", "web-0")
        .field("proc.name", "xmrig")
        .build();
    let d = only(e.decide(a, &view, t(0)));
    assert_eq!(d.reason, Reason::Matched);
    assert_eq!(d.plan.unwrap().binary.as_deref(), Some("xmrig"));
    let a = Alert::test()
        .pod("shop", "web-1")
        .field("proc.exepath", "/tmp/xmrig")
        .field("proc.name", "xmrig")
        .build();
    assert_eq!(
        only(e.decide(a, &view, t(0)))
            .plan
            .unwrap()
            .binary
            .as_deref(),
        Some("/tmp/xmrig")
    );
    let a = Alert::test().pod("shop", "web-2").build();
    assert_eq!(only(e.decide(a, &view, t(0))).reason, Reason::NoTarget);
}

#[test]
fn block_binary_is_not_subject_to_availability_guards() {
    let yaml = "version: 1\npolicies:\n  - name: block\n    action: {type: block_binary}\n    guard: {min_available: 10}\n";
    let mut e = Engine::new(policies(yaml));
    let a = Alert::test()
        .pod("shop", "web-0")
        .field("proc.exepath", "/bin/nc")
        .build();
    assert_eq!(only(e.decide(a, &web(3, 3), t(0))).verdict, Verdict::Act);
}

#[test]
fn rule_globs_and_priorities_select_the_policy() {
    let yaml = "version: 1\npolicies:\n  - name: low\n    match: {rules: [\"Drop and execute*\"], priority: \"<Critical\"}\n    action: {type: log}\n  - name: high\n    match: {rules: [\"Drop and execute*\"], priority: \">=Critical\"}\n    action: {type: delete}\n    guard: {min_available: 0}\n";
    let mut e = Engine::new(policies(yaml));
    let view = web(3, 3);
    let a = Alert::test()
        .rule("Drop and execute new binary in container")
        .priority(Priority::Critical)
        .pod("shop", "web-0")
        .build();
    assert_eq!(
        only(e.decide(a, &view, t(0))).policy.as_deref(),
        Some("high")
    );
    let a = Alert::test()
        .rule("Drop and execute new binary in container")
        .priority(Priority::Warning)
        .pod("shop", "web-1")
        .build();
    assert_eq!(
        only(e.decide(a, &view, t(0))).policy.as_deref(),
        Some("low")
    );
}

#[test]
fn hot_reload_keeps_state_and_uses_new_policies() {
    let mut e = Engine::new(delete_policy("min_available: 0", "dedup_window_secs: 0"));
    let view = web(3, 3);
    only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    e.set_policies(policies(
        "version: 1\npolicies:\n  - name: audit\n    action: {type: log}\n",
    ));
    assert_eq!(
        only(e.decide(shell("shop", "web-0", 1), &view, t(1))).reason,
        Reason::Duplicate
    );
    assert_eq!(
        only(e.decide(shell("shop", "web-1", 1), &view, t(1)))
            .policy
            .as_deref(),
        Some("audit")
    );
}

#[test]
fn every_reason_code_has_a_distinct_snake_case_name() {
    let names: std::collections::HashSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names.len(), Reason::ALL.len());
    assert!(
        names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    );
}

#[test]
fn a_released_pod_is_decided_afresh_and_a_release_of_another_uid_changes_nothing() {
    let yaml = "version: 1\ndefaults: {dedup_window_secs: 0}\npolicies:\n  - name: q\n    action: {type: quarantine, expire_after_secs: 60}\n    guard: {min_available: 1}\n";
    let mut e = Engine::new(policies(yaml));
    let view = web(3, 3);
    let d = only(e.decide(shell("shop", "web-0", 0), &view, t(0)));
    assert_eq!(d.reason, Reason::Matched);
    let plan = d.plan.expect("a plan");
    e.record(plan.id, &Outcome::Success, t(1));
    let d = only(e.decide(shell("shop", "web-0", 10), &view, t(10)));
    assert_eq!(d.reason, Reason::Duplicate, "quarantined: reaped");
    e.released("shop", "web-0", Some("uid-of-another-pod"));
    let d = only(e.decide(shell("shop", "web-0", 20), &view, t(20)));
    assert_eq!(d.reason, Reason::Duplicate, "another pod's release");
    e.released("shop", "web-0", Some("uid-web-0"));
    let d = only(e.decide(shell("shop", "web-0", 30), &view, t(30)));
    assert_eq!(
        (d.verdict, d.reason),
        (Verdict::Act, Reason::Matched),
        "back in service: decided afresh"
    );
}
