//! The `teflon` command: `check`, `replay`, `simulate` and `demo` (SPEC §5), and `release` and
//! `history` against a running server.
//!
//! Each command is a function writing to the `impl Write` it is given, so tests run them
//! without a process; `main.rs` only parses arguments, wires stdin/stdout/stderr and turns the
//! result into an exit code. Decisions come from `teflon-core`, the cluster and the attack model
//! from `teflon-sim`, alerts from `teflon-falco` / `teflon-tetragon`: this crate only formats.
// No unwrap outside tests (clippy.toml allows it in them): never panic on input.
#![warn(clippy::unwrap_used)]

pub mod args;
pub mod check;
pub mod cli;
pub mod demo;
pub mod input;
pub mod plot;
pub mod remote;
pub mod replay;
pub mod simulate;
pub mod table;

pub use cli::{Cli, Command};

/// How a command ended, as the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: all good.
    Ok,
    /// 1: the command could not do its job (invalid policies, unreadable files).
    Failure,
    /// 2: done, but some input lines were malformed and skipped.
    Malformed,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Failure => 1,
            Exit::Malformed => 2,
        }
    }
}
