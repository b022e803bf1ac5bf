use super::*;
use crate::alert::{Priority, Target};
use crate::time::Timestamp;

const SPEC_EXAMPLE: &str = r#"version: 1
defaults:
  dedup_window_secs: 60
  protected_namespaces: [kube-system, kube-public, kube-node-lease]
  cluster_max_actions: 20
  cluster_window_secs: 60
  guard:
    min_available: 1
    standalone_pods: skip
    max_actions: null
    window_secs: 60
    defer: true
    max_defer_secs: 300
policies:
  - name: reap-shells
    match:
      rules: ["Terminal shell in container", "Drop and execute new binary*"]
      priority: ">=Warning"
      sources: [syscall]
      tags: {all: [container], any: [mitre_execution, T1059], none: [test]}
      namespaces: [prod-*, default]
      exclude_namespaces: [falco]
      fields:
        proc.name: [sh, bash]
        container.image.repository: {glob: "docker.io/library/*"}
        fd.sport: 4444
        proc.pname: {exists: true}
        user.name: {not: [root]}
    action:
      type: delete
      grace_period_secs: 0
    guard: {min_available: "50%"}
    dry_run: false
    continue: false
"#;

fn errors_of(src: &str) -> Vec<String> {
    PolicySet::parse(src, "policies.yaml")
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn spec_alert() -> Alert {
    Alert::test()
        .rule("Terminal shell in container")
        .priority(Priority::Critical)
        .pod("default", "web-1")
        .tag("container")
        .tag("T1059")
        .field("proc.name", "bash")
        .field("container.image.repository", "docker.io/library/nginx")
        .field("fd.sport", 4444i64)
        .field("proc.pname", "runc")
        .field("user.name", "www-data")
        .build()
}

#[test]
fn spec_example_compiles_with_every_key() {
    let set = PolicySet::parse(SPEC_EXAMPLE, "policies.yaml").unwrap();
    assert_eq!(set.len(), 1);
    let p = &set.policies()[0];
    assert_eq!(&*p.name, "reap-shells");
    assert_eq!(
        p.action,
        Action::Delete {
            grace_period_secs: Some(0)
        }
    );
    assert_eq!(p.guard.min_available, MinAvailable::Percent(50));
    assert_eq!(p.guard.max_defer, Duration::from_secs(300));
    assert_eq!(set.defaults().cluster_max_actions, Some(20));
    assert!(set.defaults().protected_namespaces.is_match("kube-system"));
}

#[test]
fn spec_example_matches_an_alert_meeting_every_condition() {
    let set = PolicySet::parse(SPEC_EXAMPLE, "policies.yaml").unwrap();
    assert_eq!(set.matching(&spec_alert()).count(), 1);
}

#[test]
fn each_spec_condition_can_reject_the_alert() {
    let set = PolicySet::parse(SPEC_EXAMPLE, "policies.yaml").unwrap();
    let mut cases: Vec<(&str, Alert)> = Vec::new();
    let mut a = spec_alert();
    a.rule = "Other rule".into();
    cases.push(("rule", a));
    let mut a = spec_alert();
    a.priority = Priority::Notice;
    cases.push(("priority", a));
    let mut a = spec_alert();
    a.source = "k8s_audit".into();
    cases.push(("source", a));
    let mut a = spec_alert();
    a.tags.retain(|t| t != "container");
    cases.push(("tags.all", a));
    let mut a = spec_alert();
    a.tags.retain(|t| t != "T1059");
    cases.push(("tags.any", a));
    let mut a = spec_alert();
    a.tags.push("test".into());
    cases.push(("tags.none", a));
    cases.push(("namespaces", {
        let mut a = spec_alert();
        a.target = Some(Target::new("staging", "web-1"));
        a
    }));
    cases.push(("fields list", {
        let mut a = spec_alert();
        a.fields.insert("proc.name", "zsh");
        a
    }));
    cases.push(("fields glob", {
        let mut a = spec_alert();
        a.fields.insert("container.image.repository", "quay.io/x");
        a
    }));
    cases.push(("fields scalar", {
        let mut a = spec_alert();
        a.fields.insert("fd.sport", 80i64);
        a
    }));
    cases.push(("fields exists", {
        let mut a = spec_alert();
        a.fields.insert("proc.pname", "<NA>");
        a
    }));
    cases.push(("fields not", {
        let mut a = spec_alert();
        a.fields.insert("user.name", "root");
        a
    }));
    for (what, alert) in cases {
        assert_eq!(set.matching(&alert).count(), 0, "{what} should reject");
    }
}

#[test]
fn prod_glob_namespace_matches_and_excluded_namespace_does_not() {
    let src = "version: 1\npolicies:\n  - name: p\n    match: {namespaces: [prod-*], exclude_namespaces: [prod-secret]}\n    action: {type: log}\n";
    let set = PolicySet::parse(src, "p.yaml").unwrap();
    let a = Alert::test().pod("prod-eu", "x").build();
    assert_eq!(set.matching(&a).count(), 1);
    let a = Alert::test().pod("prod-secret", "x").build();
    assert_eq!(set.matching(&a).count(), 0);
}

#[test]
fn empty_match_matches_every_alert() {
    let src = "version: 1\npolicies:\n  - name: all\n    action: {type: log}\n";
    let set = PolicySet::parse(src, "p.yaml").unwrap();
    let a = Alert::new("anything", Priority::Debug, Timestamp::EPOCH);
    assert_eq!(set.matching(&a).count(), 1);
}

#[test]
fn typo_in_priority_names_file_line_and_column() {
    let src = "version: 1\npolicies:\n  - name: p\n    match:\n      priority: \">=Critcal\"\n    action: {type: delete}\n";
    let errs = errors_of(src);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "policies.yaml:5:17: unknown priority \"Critcal\" (expected one of Emergency"
        ),
        "{}",
        errs[0]
    );
}

#[test]
fn unknown_key_names_file_line_and_column_and_the_expected_keys() {
    let src = "version: 1\npolicies:\n  - name: p\n    match:\n      priorty: Warning\n    action: {type: delete}\n";
    let errs = errors_of(src);
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("policies.yaml:5:7: "), "{}", errs[0]);
    assert!(errs[0].contains("priorty"), "{}", errs[0]);
    assert!(
        errs[0].contains("priority"),
        "should list the expected keys: {}",
        errs[0]
    );
}

#[test]
fn bad_glob_names_file_line_and_column() {
    let src = "version: 1\npolicies:\n  - name: p\n    match:\n      rules: [\"Terminal [shell\"]\n    action: {type: delete}\n";
    let errs = errors_of(src);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("policies.yaml:5:15: rules: invalid glob \"Terminal [shell\""),
        "{}",
        errs[0]
    );
}

#[test]
fn duplicate_name_points_at_the_second_and_mentions_the_first() {
    let src = "version: 1\npolicies:\n  - name: p\n    action: {type: log}\n  - name: p\n    action: {type: log}\n";
    let errs = errors_of(src);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with(
            "policies.yaml:5:11: duplicate policy name \"p\" (first defined on line 3)"
        ),
        "{}",
        errs[0]
    );
}

#[test]
fn every_validation_error_is_reported_not_just_the_first() {
    let src = "version: 1\npolicies:\n  - name: Bad_Name\n    match: {priority: Hgh}\n    action: {type: delete}\n    guard: {min_available: \"150%\"}\n";
    let errs = errors_of(src);
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].starts_with("policies.yaml:3:"));
    assert!(errs[1].starts_with("policies.yaml:4:"));
    assert!(errs[2].contains("between 0% and 100%"));
}

#[test]
fn unknown_action_type_lists_the_valid_ones() {
    let src = "version: 1\npolicies:\n  - name: p\n    action: {type: kill}\n";
    let errs = errors_of(src);
    assert!(errs[0].starts_with("policies.yaml:4:"), "{}", errs[0]);
    assert!(errs[0].contains("quarantine"), "{}", errs[0]);
}

#[test]
fn action_keys_for_another_action_are_rejected() {
    let src = "version: 1\npolicies:\n  - name: p\n    action: {type: log, grace_period_secs: 5}\n";
    let errs = errors_of(src);
    assert!(
        errs[0].contains("`grace_period_secs` applies to delete and evict"),
        "{}",
        errs[0]
    );
}

#[test]
fn wrong_version_is_rejected() {
    let errs = errors_of("version: 2\npolicies: []\n");
    assert!(
        errs[0].starts_with("policies.yaml:1:10: unsupported policy file version 2"),
        "{}",
        errs[0]
    );
}

#[test]
fn json_policy_files_are_accepted() {
    let src = r#"{"version": 1, "policies": [{"name": "j", "match": {"priority": ">=Error"}, "action": {"type": "evict"}}]}"#;
    let set = PolicySet::parse(src, "p.json").unwrap();
    assert_eq!(set.policies()[0].action.kind(), ActionKind::Evict);
}

#[test]
fn explicit_null_cluster_budget_means_unlimited_and_absent_means_twenty() {
    let set = PolicySet::parse("version: 1\ndefaults: {cluster_max_actions: null}\n", "p").unwrap();
    assert_eq!(set.defaults().cluster_max_actions, None);
    let set = PolicySet::parse("version: 1\n", "p").unwrap();
    assert_eq!(set.defaults().cluster_max_actions, Some(20));
}

#[test]
fn policy_guard_overrides_defaults_key_by_key() {
    let src = "version: 1\ndefaults:\n  guard: {min_available: 2, max_actions: 3, defer: false}\npolicies:\n  - name: p\n    action: {type: delete}\n    guard: {max_actions: null}\n";
    let set = PolicySet::parse(src, "p").unwrap();
    let g = &set.policies()[0].guard;
    assert_eq!(g.min_available, MinAvailable::Count(2));
    assert_eq!(g.max_actions, None);
    assert!(!g.defer);
}

#[test]
fn quarantine_defaults_to_network_isolation_and_validates_labels() {
    let src =
        "version: 1\npolicies:\n  - name: q\n    action: {type: quarantine, labels: {team: sec}}\n";
    let set = PolicySet::parse(src, "p").unwrap();
    match &set.policies()[0].action {
        Action::Quarantine {
            labels,
            network_isolate,
            expire_after,
        } => {
            assert!(*network_isolate);
            assert_eq!(*expire_after, None, "kept until released by default");
            assert_eq!(labels.get("team").map(String::as_str), Some("sec"));
        }
        other => panic!("{other:?}"),
    }
    let bad = "version: 1\npolicies:\n  - name: q\n    action: {type: quarantine, labels: {\"bad key!\": x}}\n";
    assert!(errors_of(bad)[0].contains("not a valid Kubernetes label name"));
}

#[test]
fn percent_min_available_rounds_up() {
    assert_eq!(MinAvailable::Percent(50).required(3), 2);
    assert_eq!(MinAvailable::Percent(50).required(4), 2);
    assert_eq!(MinAvailable::Percent(34).required(3), 2);
    assert_eq!(MinAvailable::Percent(100).required(5), 5);
    assert_eq!(MinAvailable::Percent(0).required(5), 0);
    assert_eq!(MinAvailable::Count(2).required(10), 2);
}

#[test]
fn bad_field_condition_is_explained() {
    let src = "version: 1\npolicies:\n  - name: p\n    match:\n      fields:\n        proc.name: {regex: \"x\"}\n    action: {type: log}\n";
    let errs = errors_of(src);
    assert!(
        errs[0].starts_with("policies.yaml:6:20: field \"proc.name\": unknown condition `regex`"),
        "{}",
        errs[0]
    );
}

#[test]
fn summary_mentions_action_conditions_and_guard() {
    let set = PolicySet::parse(SPEC_EXAMPLE, "policies.yaml").unwrap();
    let s = set.policies()[0].summary();
    assert!(s.starts_with("reap-shells: delete when rule in"), "{s}");
    assert!(s.contains("min_available=50%"), "{s}");
}

#[test]
fn expire_after_secs_applies_to_quarantine_and_block_binary_only() {
    let src = "version: 1\npolicies:\n  - name: q\n    action: {type: quarantine, expire_after_secs: 600}\n  - name: b\n    action: {type: block_binary, expire_after_secs: 3600}\n";
    let set = PolicySet::parse(src, "p").unwrap();
    assert_eq!(
        set.policies()[0].action.expire_after(),
        Some(Duration::from_secs(600))
    );
    assert_eq!(
        set.policies()[1].action.expire_after(),
        Some(Duration::from_secs(3600))
    );
    assert!(
        set.policies()[0].summary().contains("expires after 600s"),
        "{}",
        set.policies()[0].summary()
    );
    let misplaced =
        "version: 1\npolicies:\n  - name: d\n    action: {type: delete, expire_after_secs: 60}\n";
    let errs = errors_of(misplaced);
    assert!(
        errs[0].starts_with("policies.yaml:4:")
            && errs[0].contains("`expire_after_secs` applies to quarantine and block_binary actions only, not `delete`"),
        "{}",
        errs[0]
    );
    let zero = "version: 1\npolicies:\n  - name: q\n    action: {type: quarantine, expire_after_secs: 0}\n";
    assert!(
        errors_of(zero)[0].contains("at least 1"),
        "{:?}",
        errors_of(zero)
    );
    let huge = "version: 1\npolicies:\n  - name: q\n    action: {type: quarantine, expire_after_secs: 99999999999}\n";
    assert!(
        errors_of(huge)[0].contains("at most"),
        "{:?}",
        errors_of(huge)
    );
}
