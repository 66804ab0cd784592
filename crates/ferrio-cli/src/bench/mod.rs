//! `ferrio bench`: a load generator for any Socket.IO server (being written).

use clap::Args;

/// Options of `ferrio bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchOptions {
    /// Scenario: idle, echo, fanout, rooms, polling.
    pub scenario: String,
    /// Server URL.
    pub url: String,
}

/// Runs a benchmark scenario.
pub async fn run(opts: BenchOptions) -> Result<(), String> {
    Err(format!(
        "scenario {:?} against {}: not implemented yet",
        opts.scenario, opts.url
    ))
}
