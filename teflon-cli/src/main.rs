//! The `teflon` binary: argument parsing and exit codes; the commands live in the library.
// No unwrap outside tests (clippy.toml allows it in them): never panic on input.
#![warn(clippy::unwrap_used)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use teflon_cli::replay::Terminals;
use teflon_cli::{Cli, Command, Exit, check, demo, remote, replay, simulate};

/// Replay and the demo's server allocate per alert; mimalloc makes that markedly cheaper.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let terminals = Terminals {
        stdout: stdout.is_terminal(),
        stderr: stderr.is_terminal(),
        columns: stdout
            .is_terminal()
            .then(|| console::Term::stdout().size_checked())
            .flatten()
            .map(|(_rows, columns)| usize::from(columns)),
    };
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut err = stderr.lock();
    let result: anyhow::Result<Exit> = match cli.command {
        Command::Check(args) => check::run(&args.policies, &mut out, &mut err).map_err(Into::into),
        Command::Replay(args) => replay::run(
            &args,
            std::io::stdin().lock(),
            &mut out,
            &mut err,
            terminals,
        )
        .map_err(Into::into),
        Command::Simulate(args) => simulate::run(&args, &mut out, &mut err).map_err(Into::into),
        Command::Release(args) => remote::release(&args, &mut out, &mut err),
        Command::History(args) => remote::history(&args, &mut out, &mut err),
        Command::Demo(args) => {
            drop(out);
            drop(err);
            return match demo::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let code = match result {
        Ok(exit) => exit.code(),
        // A closed pipe (`teflon replay … | head`) is not an error worth a message.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            0
        }
        Err(e) => {
            eprintln!("teflon: {e:#}");
            1
        }
    };
    use std::io::Write as _;
    let _ = out.flush();
    ExitCode::from(code)
}
