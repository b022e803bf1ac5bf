//! `teflon simulate`.

mod common;

use common::{run, teflon};

fn simulate(out: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    run(teflon()
        .args([
            "simulate",
            "--seed",
            "42",
            "--replicas",
            "3",
            "--attackers",
            "2",
            "--duration-secs",
            "300",
        ])
        .args(extra)
        .arg("--out")
        .arg(out))
}

#[test]
fn the_same_seed_writes_the_same_csv() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = simulate(a.path(), &[]);
    assert_eq!(code, 0, "{stderr}");
    simulate(b.path(), &[]);
    let csv_a = std::fs::read_to_string(a.path().join("timeseries.csv")).unwrap();
    let csv_b = std::fs::read_to_string(b.path().join("timeseries.csv")).unwrap();
    assert_eq!(csv_a, csv_b);
    assert!(csv_a.starts_with("time_secs,available,infected,desired,"));
    assert!(stdout.contains("seed 42"), "{stdout}");
}

#[test]
fn the_summary_names_availability_dwell_time_reaps_deferrals_and_skips() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stdout, _) = simulate(dir.path(), &[]);
    for key in [
        "availability:",
        "min ",
        "mean ",
        "infected pod-seconds:",
        "reaps:",
        "deferrals:",
        "skips:",
    ] {
        assert!(stdout.contains(key), "{key} missing from {stdout}");
    }
}

#[test]
fn the_plot_is_an_svg_with_the_three_series() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = simulate(dir.path(), &["--autoscale"]);
    assert_eq!(code, 0, "{stderr}");
    let svg = std::fs::read_to_string(dir.path().join("plot.svg")).unwrap();
    assert!(svg.starts_with("<svg"));
    for label in ["available", "infected", "desired"] {
        assert!(svg.contains(label), "{label}");
    }
}

#[test]
fn nonsense_durations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = simulate(dir.path(), &["--step-secs", "0"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--step-secs"), "{stderr}");
}

#[test]
fn attack_phases_are_shown_and_bound_the_attack() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = simulate(
        dir.path(),
        &[
            "--infect-every-secs",
            "2",
            "--attack-phases",
            "30-90, 200-240",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("attack phases:        30-90s, 200-240s"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(dir.path().join("timeseries.csv")).unwrap();
    // infections_total (column 7) is 0 before the first phase and still between the phases.
    let infections = |at: &str| -> u64 {
        let line = csv.lines().find(|l| l.starts_with(at)).unwrap();
        line.split(',').nth(6).unwrap().parse().unwrap()
    };
    assert_eq!(infections("25.000,"), 0);
    assert!(infections("90.000,") > 0);
    assert_eq!(infections("195.000,"), infections("95.000,"));
    assert!(infections("245.000,") > infections("195.000,"));

    let (code, stdout, stderr) = simulate(
        dir.path(),
        &["--attack-from-secs", "60", "--attack-until-secs", "120"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("attack phases:        60-120s"), "{stdout}");
}

#[test]
fn nonsense_attack_phases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (&["--attack-phases", "30"][..], "not FROM-UNTIL"),
        (
            &["--attack-phases", "90-30"][..],
            "must stop after it starts",
        ),
        (&["--attack-phases", "a-30"][..], "not a number"),
        (
            &["--attack-from-secs", "100", "--attack-until-secs", "50"][..],
            "must stop after it starts",
        ),
    ] {
        let (code, _, stderr) = simulate(dir.path(), args);
        assert_eq!(code, 1, "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn seconds_that_are_not_a_finite_non_negative_number_are_a_usage_error_not_a_panic() {
    for (command, flag) in [
        ("demo", "--recovery-secs"),
        ("demo", "--infect-every-secs"),
        ("simulate", "--step-secs"),
        ("simulate", "--attack-from-secs"),
        ("replay", "--recovery-secs"),
    ] {
        for value in ["nan", "inf", "-1", "soon"] {
            let arg = format!("{flag}={value}");
            let (code, _, stderr) = run(teflon().args([command, arg.as_str()]));
            assert_eq!(code, 2, "{command} {flag} {value}: {stderr}");
            assert!(stderr.contains("not a number of seconds"), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}
