//! `reel`: the text-to-video server and its command line.
//!
//! `reel serve` runs the HTTP API (api crate) over the timely dataflow engine (pipeline),
//! the shipped model (kernels) and sled storage (storage); `reel generate` runs one task
//! in-process; `reel plan` shows what the planner makes of a prompt; `reel cluster --local N`
//! runs N processes on this machine as one timely cluster.

mod backend;
mod cluster;
mod config;
mod generate;
mod keys;
mod runtime;
mod serve;
mod webhooks;

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
    /// Serve as a cluster of N processes on this machine (process 0 here, the others started
    /// and kept running by it), joined by timely over loopback TCP
    Cluster(cluster::ClusterArgs),
    /// Generate one video in-process and write it as MP4
    Generate(generate::GenerateArgs),
    /// Print the scene plan of a prompt as JSON
    Plan(generate::PlanArgs),
    /// Manage API keys (create prints the token once)
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
}

/// Makes every thread allocate from glibc's main arena. With the default (up to eight arenas a
/// core, one per thread that contends), a server that keeps making and dropping frame buffers
/// on a dozen threads fragmented them: RSS grew 7% over a one-hour soak, while with one arena
/// it stays flat (docs/PERFORMANCE.md, "Soak"). Small blocks still come from each thread's
/// cache without a lock. Must run before any other thread starts.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a parameter of the allocator; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn main() -> anyhow::Result<()> {
    one_malloc_arena();
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
        Command::Cluster(args) => cluster::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Plan(args) => generate::plan(args),
        Command::Keys { command } => keys::run(command),
    }
}
