//! Shared helpers for the `teflon` integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// A file of `teflon-cli/tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The kubectl-shaped cluster snapshot (kept with the simulator that parses it).
pub fn snapshot() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../teflon-sim/tests/fixtures/cluster.json")
}

/// The `teflon` binary.
pub fn teflon() -> assert_cmd::Command {
    assert_cmd::cargo::cargo_bin_cmd!("teflon")
}

/// Run and return (exit code, stdout, stderr).
pub fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().expect("teflon runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    )
}
