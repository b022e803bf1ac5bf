//! `teflon replay` end to end: the snapshot, the policies and the alerts of `tests/fixtures`.

mod common;

use std::collections::BTreeSet;

use common::{fixture, run, snapshot, teflon};
use teflon_core::{DecisionRecord, Reason, Verdict};

fn replay_fixture() -> (i32, String, String) {
    run(teflon()
        .arg("replay")
        .arg("--policies")
        .arg(fixture("policies.yaml"))
        .arg("--cluster")
        .arg(snapshot())
        .arg("--format")
        .arg("jsonl")
        .arg(fixture("alerts.jsonl")))
}

fn records(stdout: &str) -> Vec<DecisionRecord> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON decision line"))
        .collect()
}

#[test]
fn replay_prints_exactly_the_expected_jsonl_lines() {
    let (code, stdout, stderr) = replay_fixture();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "");
    let expected = std::fs::read_to_string(fixture("expected-replay.jsonl")).unwrap();
    assert_eq!(stdout, expected);
}

#[test]
fn replay_of_the_fixture_covers_every_reason_code() {
    let (_, stdout, _) = replay_fixture();
    let seen: BTreeSet<Reason> = records(&stdout).iter().map(|r| r.reason).collect();
    let all: BTreeSet<Reason> = Reason::ALL.into_iter().collect();
    assert_eq!(seen, all);
}

#[test]
fn each_reason_comes_from_the_alert_built_for_it() {
    let (_, stdout, _) = replay_fixture();
    let got: Vec<(u64, Verdict, Reason)> = records(&stdout)
        .iter()
        .map(|r| (r.seq, r.verdict, r.reason))
        .collect();
    use Reason::*;
    use Verdict::*;
    assert_eq!(
        got,
        vec![
            (0, Skip, NoMatch),
            (1, Skip, NoTarget),
            (2, Skip, Protected),
            (3, Act, Matched),
            (4, Skip, Duplicate),
            (5, Skip, PodNotFound),
            (6, Skip, StandalonePod),
            (7, Act, Matched),
            (8, Defer, BelowMinAvailable),
            (9, Defer, DisruptionBudget),
            (10, Act, Matched),
            (11, Skip, RateLimited),
            // The first web replacement is Ready 15 s after seq 3: the deferral acts then.
            (8, Act, DeferredReady),
            (12, Skip, ClusterBudget),
            (13, Act, Matched),
            // The PDB never frees db-0: settled at the end when max_defer_secs runs out.
            (9, Skip, DeferExpired),
        ]
    );
}

#[test]
fn a_deferred_action_resolves_with_the_time_of_the_replacement_becoming_ready() {
    let (_, stdout, _) = replay_fixture();
    let r = records(&stdout);
    let ready = r
        .iter()
        .find(|r| r.reason == Reason::DeferredReady)
        .unwrap();
    assert_eq!(ready.time.to_rfc3339(), "2026-11-20T10:00:18.000000000Z");
    let expired = r.iter().find(|r| r.reason == Reason::DeferExpired).unwrap();
    assert_eq!(expired.time.to_rfc3339(), "2026-11-20T10:01:09.000000000Z");
}

#[test]
fn output_is_jsonl_when_stdout_is_not_a_terminal() {
    let (code, stdout, _) = run(teflon()
        .arg("replay")
        .arg("--policies")
        .arg(fixture("policies.yaml"))
        .arg("--cluster")
        .arg(snapshot())
        .arg(fixture("alerts.jsonl")));
    assert_eq!(code, 0);
    assert!(
        stdout.lines().all(|l| l.starts_with("{\"seq\":")),
        "{stdout}"
    );
}

#[test]
fn table_format_has_a_header_a_row_per_decision_and_a_summary() {
    let (code, stdout, _) = run(teflon()
        .arg("replay")
        .arg("--policies")
        .arg(fixture("policies.yaml"))
        .arg("--cluster")
        .arg(snapshot())
        .arg("--format")
        .arg("table")
        .arg(fixture("alerts.jsonl")));
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("SEQ"), "{stdout}");
    for column in [
        "TIME", "RULE", "TARGET", "WORKLOAD", "POLICY", "VERDICT", "ACTION", "REASON",
    ] {
        assert!(lines[0].contains(column), "{}", lines[0]);
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("8 ") && l.contains("deferred_ready"))
    );
    assert_eq!(
        lines.last().copied(),
        Some("14 alerts, 16 decisions: 5 act, 2 defer, 9 skip")
    );
}

#[test]
fn alerts_are_read_from_stdin_with_a_dash_or_no_file() {
    let alerts = std::fs::read_to_string(fixture("alerts.jsonl")).unwrap();
    let expected = std::fs::read_to_string(fixture("expected-replay.jsonl")).unwrap();
    for dash in [true, false] {
        let mut cmd = teflon();
        cmd.arg("replay")
            .arg("--policies")
            .arg(fixture("policies.yaml"))
            .arg("--cluster")
            .arg(snapshot())
            .write_stdin(alerts.clone());
        if dash {
            cmd.arg("-");
        }
        let (code, stdout, stderr) = run(&mut cmd);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(stdout, expected);
    }
}

#[test]
fn malformed_lines_are_reported_with_their_line_number_skipped_and_exit_2() {
    let alerts = std::fs::read_to_string(fixture("alerts.jsonl")).unwrap();
    let mut lines: Vec<&str> = alerts.lines().collect();
    lines.insert(
        1,
        "{\"rule\": \"Terminal shell in container\", \"priority\": ",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let (code, stdout, stderr) = run(teflon()
        .arg("replay")
        .arg("--policies")
        .arg(fixture("policies.yaml"))
        .arg("--cluster")
        .arg(snapshot())
        .arg(&path));
    assert_eq!(code, 2);
    let first = stderr.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("{}:2: ", path.display())),
        "{stderr}"
    );
    // Every good alert is still replayed.
    assert_eq!(records(&stdout).len(), 16);
}

#[test]
fn without_a_snapshot_every_pod_is_one_of_three_healthy_replicas() {
    let alert = std::fs::read_to_string(fixture("falco-01-terminal-shell.json")).unwrap();
    let (code, stdout, _) = run(teflon()
        .arg("replay")
        .arg("--policies")
        .arg(fixture("policies.yaml"))
        .write_stdin(format!("{alert}\n{alert}\n")));
    assert_eq!(code, 0);
    assert_eq!(
        stdout.lines().next().unwrap(),
        r#"{"seq":0,"time":"2023-05-25T13:44:05.478445995Z","rule":"Terminal shell in container","priority":"Critical","target":{"namespace":"default","pod":"kubecon"},"workload":{"kind":"Unknown","namespace":"default","name":"kubecon"},"policy":"reap-shells","verdict":"act","action":"delete","reason":"matched","dry_run":false}"#
    );
    assert!(
        stdout
            .lines()
            .nth(1)
            .unwrap()
            .contains(r#""reason":"duplicate""#)
    );
}

#[test]
fn an_unreadable_snapshot_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.json");
    std::fs::write(&path, "{\"kind\": \"Pod\"}").unwrap();
    let (code, stdout, stderr) = run(teflon()
        .arg("replay")
        .arg("--policies")
        .arg(fixture("policies.yaml"))
        .arg("--cluster")
        .arg(&path)
        .arg(fixture("alerts.jsonl")));
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(&format!("{}: expected a Kubernetes List", path.display())),
        "{stderr}"
    );
}

#[test]
fn tetragon_export_lines_are_recognised_and_replayed() {
    let (code, stdout, stderr) = run(teflon()
        .arg("replay")
        .arg("--policies")
        .arg(fixture("tetragon-policies.yaml"))
        .arg(fixture("tetragon-docs-examples.jsonl")));
    assert_eq!(code, 0, "{stderr}");
    let r = records(&stdout);
    assert_eq!(r.len(), 15);
    assert!(
        r.iter()
            // Same pod + same policy within the dedup window is a duplicate, for `log` too.
            .all(|r| r.rule.starts_with("tetragon:")
                && matches!(r.reason, Reason::Matched | Reason::Duplicate)),
        "{stdout}"
    );
    assert!(
        r.iter()
            .any(|r| r.target.as_ref().is_some_and(|t| t.pod == "xwing"))
    );
}

#[test]
fn replay_sees_only_the_namespaces_and_pods_it_is_scoped_to() {
    // The first decision of each input alert, by its index.
    let scoped = |extra: &[&str]| {
        let (code, stdout, stderr) = run(teflon()
            .arg("replay")
            .arg("--policies")
            .arg(fixture("policies.yaml"))
            .arg("--cluster")
            .arg(snapshot())
            .args(extra)
            .arg("--format")
            .arg("jsonl")
            .arg(fixture("alerts.jsonl")));
        assert_eq!(code, 0, "{stderr}");
        let mut first = std::collections::BTreeMap::new();
        for r in records(&stdout) {
            first.entry(r.seq).or_insert(r);
        }
        first
    };
    let all = scoped(&[]);
    let shop = scoped(&["--namespace", "shop"]);
    let web = scoped(&["--namespace", "shop", "--pod-selector", "app=web"]);
    let (mut hidden_ns, mut hidden_pod, mut acted) = (0, 0, 0);
    for (seq, a) in &all {
        let Some(target) = &a.target else { continue };
        let (s, w) = (&shop[seq], &web[seq]);
        let in_shop = target.namespace == "shop";
        let selected = in_shop && target.pod.starts_with("web-");
        // Outside the scope nothing is acted on, and a decision that looks the pod up finds
        // nothing. (Inside it decisions may differ: fewer actions elsewhere leave more of the
        // cluster budget.)
        if !in_shop {
            assert_ne!(s.verdict, Verdict::Act, "{target:?}");
            hidden_ns += usize::from(s.reason == Reason::PodNotFound);
        }
        if !selected {
            assert_ne!(w.verdict, Verdict::Act, "{target:?}");
            hidden_pod += usize::from(in_shop && w.reason == Reason::PodNotFound);
        } else {
            acted += usize::from(w.verdict == Verdict::Act);
        }
    }
    assert!(
        hidden_ns > 0 && hidden_pod > 0 && acted > 0,
        "{hidden_ns} {hidden_pod} {acted}"
    );
}

#[test]
fn a_pod_selector_without_a_snapshot_or_a_bad_one_is_refused() {
    let (code, _, stderr) = run(teflon()
        .arg("replay")
        .arg("--policies")
        .arg(fixture("policies.yaml"))
        .arg("--pod-selector")
        .arg("app=web")
        .arg(fixture("alerts.jsonl")));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--pod-selector needs --cluster"),
        "{stderr}"
    );
    let (code, _, stderr) = run(teflon()
        .arg("replay")
        .arg("--policies")
        .arg(fixture("policies.yaml"))
        .arg("--cluster")
        .arg(snapshot())
        .arg("--pod-selector")
        .arg("app in web")
        .arg(fixture("alerts.jsonl")));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--pod-selector: label selector"),
        "{stderr}"
    );
}

#[test]
fn a_file_mixing_falco_and_tetragon_lines_is_decided_line_by_line() {
    // A log pipeline that collects both sources saves them into one file. Before, the format
    // was decided by the first line, and every Tetragon line was "missing `rule`" (exit 2).
    let falco = std::fs::read_to_string(fixture("alerts.jsonl")).unwrap();
    let tetragon = std::fs::read_to_string(fixture("tetragon-docs-examples.jsonl")).unwrap();
    let pretty = std::fs::read_to_string(fixture("falco-01-terminal-shell.json")).unwrap();
    let mut falco_lines = falco.lines().filter(|l| !l.trim().is_empty());
    let mut tetragon_lines = tetragon.lines().filter(|l| !l.trim().is_empty());
    let mut mixed = String::new();
    loop {
        let (f, t) = (falco_lines.next(), tetragon_lines.next());
        if f.is_none() && t.is_none() {
            break;
        }
        for line in [t, f].into_iter().flatten() {
            mixed.push_str(line);
            mixed.push('\n');
        }
    }
    // A pretty-printed Falco alert between Tetragon lines is one item too.
    mixed.push_str(&pretty);
    mixed.push('\n');
    mixed.push_str(tetragon.lines().next().unwrap());
    mixed.push('\n');
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    std::fs::write(&path, &mixed).unwrap();

    let replay = |policies: &str| {
        run(teflon()
            .arg("replay")
            .arg("--policies")
            .arg(fixture(policies))
            .arg("--format")
            .arg("jsonl")
            .arg(&path))
    };
    let (code, stdout, stderr) = replay("tetragon-policies.yaml");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "");
    let r = records(&stdout);
    let falco_items = falco.lines().filter(|l| !l.trim().is_empty()).count() + 1;
    let tetragon_items = tetragon.lines().filter(|l| !l.trim().is_empty()).count() + 1;
    // Every item is decided: one record per alert here (`log-tetragon` defers nothing).
    assert_eq!(r.len(), falco_items + tetragon_items, "{stdout}");
    let from_tetragon = r.iter().filter(|r| r.rule.starts_with("tetragon:")).count();
    assert_eq!(from_tetragon, tetragon_items);
    assert!(
        r.iter()
            .filter(|r| r.rule.starts_with("tetragon:"))
            .all(|r| matches!(r.reason, Reason::Matched | Reason::Duplicate)),
        "{stdout}"
    );
    assert!(r.iter().any(|r| r.rule == "Terminal shell in container"));

    // With the Falco policies, the Falco alerts are decided as they are alone in their file.
    let (code, stdout, stderr) = replay("policies.yaml");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        records(&stdout)
            .iter()
            .filter(|r| r.rule.starts_with("tetragon:"))
            .count(),
        tetragon_items
    );
}
