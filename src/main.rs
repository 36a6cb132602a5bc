//! `reel`: the text-to-video server and its command line.
//!
//! `reel serve` runs the HTTP API (api crate) over the timely dataflow engine (pipeline),
//! the shipped model (kernels) and sled storage (storage); `reel generate` runs one task
//! in-process; `reel plan` shows what the planner makes of a prompt.

mod backend;
mod config;
mod generate;
mod runtime;
mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "reel", version, about = "Text-to-video generation server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (port 8000, data under ./data, CPU backend, shipped model by default)
    Serve(config::Settings),
    /// Generate one video in-process and write it as MP4
    Generate(generate::GenerateArgs),
    /// Print the scene plan of a prompt as JSON
    Plan(generate::PlanArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Each pipeline stage (plan, denoise_step, post_process, encode) is a `debug` span:
        // with RUST_LOG=debug (or reel=debug,pipeline=debug) every one logs its time on close.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .init();
    match Cli::parse().command {
        Command::Serve(settings) => serve::run(settings.resolve()?),
        Command::Generate(args) => generate::run(args),
        Command::Plan(args) => generate::plan(args),
    }
}
