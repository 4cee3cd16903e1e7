//! The `gnocchid` binary: parse arguments, start tracing, hand over to [`gnocchid::cli`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = gnocchid::cli::Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GNOCCHID_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match gnocchid::cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("gnocchid: {err:#}");
            ExitCode::FAILURE
        }
    }
}
