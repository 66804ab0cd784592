//! The `ferrio` binary: `serve` a Socket.IO server, `connect` to one, `bench` one.

mod admin;
mod bench;
mod bundle;
mod config;
mod connect;
mod npm;
mod ops;
mod page;
mod serve;
mod tls;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferrio",
    version,
    about = "Serve, inspect and load-test Socket.IO servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the `serve` options costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a Socket.IO server with the demo chat application.
    Serve {
        /// TOML configuration file.
        #[arg(long, short, env = "FERRIO_CONFIG")]
        config: Option<PathBuf>,
        /// Profile of the configuration file to apply (`[profile.NAME]`).
        #[arg(long, env = "FERRIO_PROFILE")]
        profile: Option<String>,
        #[command(flatten)]
        options: config::ServeOptions,
    },
    /// Connect to a Socket.IO server: print every event as a JSON line, emit from the prompt or once.
    Connect(connect::ConnectOptions),
    /// Load-test a Socket.IO server and print a summary.
    Bench(bench::BenchOptions),
}

fn init_logs(filter: Option<&str>, format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter.unwrap_or("info"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Text => logs.init(),
        // One object per line, fields at the top level, as log collectors expect.
        config::LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            profile,
            options,
        } => {
            let opts = match options.resolve(config.as_ref(), profile.as_deref()) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("ferrio: {e}");
                    return std::process::ExitCode::from(2);
                }
            };
            init_logs(opts.log.as_deref(), opts.log_format.unwrap_or_default());
            // Every serving thread runs a runtime of its own (`serve::run` starts the others).
            let served = one_thread_runtime()
                .map_err(|e| format!("runtime: {e}"))
                .and_then(|rt| rt.block_on(serve::run(opts)).map_err(|e| e.to_string()));
            if let Err(e) = served {
                eprintln!("ferrio: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        Command::Connect(opts) => {
            init_logs(Some("warn"), config::LogFormat::Text);
            if let Err(e) =
                runtime().and_then(|rt| rt.block_on(connect::run(opts)).map_err(|e| e.to_string()))
            {
                eprintln!("ferrio: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
        Command::Bench(opts) => {
            init_logs(Some("warn"), config::LogFormat::Text);
            if let Err(e) = runtime().and_then(|rt| rt.block_on(bench::run(opts))) {
                eprintln!("ferrio: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}

/// A runtime on tokio's current-thread scheduler: each of `ferrio serve`'s serving threads, and the
/// load generator's threads. It has no work stealing to pay for at each wake-up (about a sixth less
/// CPU per echo ack than one worker of the multi-thread scheduler; `bench/runs-2026-11-30e.md`).
pub(crate) fn one_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The runtime of `ferrio connect` and `ferrio bench` (the generator runs its own).
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}
