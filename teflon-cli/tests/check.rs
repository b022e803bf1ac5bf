//! `teflon check`.

mod common;

use common::{fixture, run, teflon};

#[test]
fn valid_policies_print_one_summary_line_each_and_exit_0() {
    let (code, stdout, stderr) = run(teflon()
        .arg("check")
        .arg("--policies")
        .arg(fixture("policies.yaml")));
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines[1].starts_with("reap-shells: delete when"),
        "{}",
        lines[1]
    );
}

#[test]
fn invalid_policies_print_file_line_column_and_exit_1() {
    let path = fixture("bad-policies.yaml");
    let (code, stdout, stderr) = run(teflon().arg("check").arg("--policies").arg(&path));
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "{}:6:17: unknown priority \"Critcal\" (expected one of Emergency, Alert, Critical, Error, Warning, Notice, Informational, Debug)",
            path.display()
        )
    );
}

#[test]
fn a_missing_policy_file_exits_1() {
    let (code, _, stderr) = run(teflon()
        .arg("check")
        .arg("--policies")
        .arg(fixture("nope.yaml")));
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read the policy file"), "{stderr}");
}
