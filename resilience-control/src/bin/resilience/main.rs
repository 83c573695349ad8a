//! `resilience`: run the demo, serve the control plane, measure the hot path, and control
//! chaos on a running instance.
//!
//! ```text
//! resilience demo                 # a simulated service through an outage and back
//! resilience serve -c config.toml # control plane + HTTP endpoints until Ctrl-C
//! resilience bench                # hot-path overhead with percentiles
//! resilience chaos list|inject|end|stop|resume          # one running instance (--url)
//! resilience chaos list|inject|end|stop|resume --fleet  # every instance, through Redis
//! ```

mod bench;
mod chaos;
mod demo;
mod serve;
mod wiring;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Fault tolerance with no cost on the hot path: circuit breakers, chaos and metering.
#[derive(Parser, Debug)]
#[command(name = "resilience", version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML); environment variables override it.
    #[arg(long, short, global = true, env = "RESILIENCE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A simulated service: workers call flaky dependencies through breakers, chaos strikes
    /// mid-run, health falls and recovers, usage is metered (to the Redis of REDIS_URL, or
    /// to resilience-usage.jsonl when none is configured); ends with a summary. Ctrl-C or
    /// SIGTERM ends it early, flushing everything.
    Demo(demo::Args),
    /// Runs the control plane and its HTTP endpoints from the configuration until Ctrl-C or
    /// SIGTERM, then stops the loops, ends chaos and flushes metering before exiting.
    Serve,
    /// Measures the hot path (breaker, chaos check, meter record) with percentiles.
    Bench(bench::Args),
    /// Lists, starts, ends, stops or resumes chaos: on the running instance at --url (its HTTP
    /// endpoints; changes need its admin token in RESILIENCE_ADMIN_TOKEN), or with --fleet on
    /// every instance through the fleet's Redis.
    Chaos {
        #[command(subcommand)]
        action: chaos::Action,
        /// The instance's HTTP address.
        #[arg(
            long,
            global = true,
            default_value = "http://127.0.0.1:9090",
            env = "RESILIENCE_URL"
        )]
        url: String,
        /// Act on the whole fleet through Redis (REDIS_URL or `redis_url` in the configuration,
        /// and its namespace) instead of one instance: the stop is persisted, so instances
        /// started later obey it too.
        #[arg(long, global = true)]
        fleet: bool,
    },
}

/// Parses durations like `20s`, `1m30s`, `500ms`.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e} (e.g. 20s, 1m, 500ms)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo(args) => demo::run(cli.config.as_deref(), args).await,
            Command::Serve => serve::run(cli.config.as_deref()).await,
            Command::Bench(args) => bench::run(&args),
            Command::Chaos {
                action,
                fleet: true,
                ..
            } => chaos::run_fleet(action, cli.config.as_deref()).await,
            Command::Chaos { action, url, .. } => {
                chaos::run(action, &url, cli.config.as_deref()).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            // For audit trails, as every error of the library reports it.
            eprintln!(
                "  governance: {}",
                resilience_control::GovernanceHash::for_process()
            );
            ExitCode::FAILURE
        }
    }
}

/// What a command can fail with.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
