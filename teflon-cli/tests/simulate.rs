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
