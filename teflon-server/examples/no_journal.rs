//! `no_journal --config FILE`: teflon-server without its ingest journal, for
//! `scripts/journal-cost.sh` only (what durability costs, BENCHMARKS.md). Never deploy it:
//! a 202 from it is lost on SIGKILL.
#![warn(clippy::unwrap_used)]

use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let config = match (args.next().as_deref(), args.next()) {
        (Some("--config"), Some(path)) => PathBuf::from(path),
        _ => anyhow::bail!("usage: no_journal --config FILE"),
    };
    teflon_server::logging::init(teflon_server::logging::LogFormat::Text, "info");
    let config = teflon_server::Config::load(&config)?;
    let mut server = teflon_server::Server::builder(config)
        .without_journal()
        .start()
        .await?;
    server.listen().await?;
    teflon_server::shutdown_signal().await;
    let report = server.shutdown().await;
    tracing::info!(?report, "bye");
    Ok(())
}
