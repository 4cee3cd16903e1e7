//! Command line: one subcommand per role. Every flag also reads a `GNOCCHID_*`
//! environment variable, and its doc comment is its `--help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ServeArgs};

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
}

/// Runs the chosen subcommand to completion.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Serve(serve) => {
            let config = Config::from_args(serve)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(crate::app::serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            print!("{}", crate::http::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
    }
}
