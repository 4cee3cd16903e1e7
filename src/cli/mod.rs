//! Command line: one subcommand per role. Every flag also reads a `GNOCCHID_*`
//! environment variable, and its doc comment is its `--help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, IndexConfig, ServeArgs, UpgradeArgs};

/// gnocchid: a time-series database that speaks Gnocchi's REST API v1.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

// Built once at startup: boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role in one process on the embedded defaults (API, processing).
    Serve(ServeArgs),
    /// Print the OpenAPI description of every route (JSON) and exit; the
    /// content of `api-docs/openapi.json`.
    Openapi,
    /// Create or upgrade the index (schema, default archive policies, sack count),
    /// then exit. Several processes may run it at once.
    Upgrade(UpgradeArgs),
}

/// Runs the chosen subcommand to completion.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match args.command {
        Command::Serve(serve) => {
            let config = Config::from_args(serve)?;
            runtime()?.block_on(crate::app::serve(config))?;
        }
        Command::Upgrade(upgrade) => {
            let index = IndexConfig::from_upgrade_args(upgrade)?;
            runtime()?.block_on(crate::app::upgrade(index))?;
        }
        Command::Openapi => print!("{}", crate::http::openapi_json()),
    }
    Ok(ExitCode::SUCCESS)
}
