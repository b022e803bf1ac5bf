//! `teflon-server --config FILE`: the Teflon daemon.
// No unwrap outside tests (clippy.toml allows it in them): never panic on input.
#![warn(clippy::unwrap_used)]

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use teflon_server::logging::{self, LogFormat};

/// The request path allocates per alert (parsed fields, audit line); mimalloc's thread
/// caches make that markedly cheaper than glibc malloc on the server's few cores.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Teflon: decide and act on Falco/Tetragon alerts without taking the service down.
#[derive(Debug, Parser)]
#[command(name = "teflon-server", version)]
struct Args {
    /// The configuration file (YAML; every key in docs/configuration.md).
    #[arg(long, short = 'c', env = "TEFLON_CONFIG")]
    config: PathBuf,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    log_format: LogFormat,
    /// Check the configuration and the policies, then exit.
    #[arg(long)]
    check: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    logging::init(args.log_format, "info");
    let config = teflon_server::Config::load(&args.config)?;
    let policies = teflon_server::load_policies(&config.policies)?;
    if args.check {
        println!(
            "{}: ok ({} policies)",
            args.config.display(),
            policies.len()
        );
        return Ok(());
    }
    let report = teflon_server::run(config, teflon_server::shutdown_signal())
        .await
        .context("teflon-server")?;
    tracing::info!(?report, "bye");
    Ok(())
}
