//! `bench`: each figure of the ledger measured beside its reference in the same run, printed
//! as one table and written to BENCH.md (see `tools::bench`).
//!
//! ```sh
//! cargo run --release -p tools --bin bench -- --events 10000000 --seconds 3
//! ```
//!
//! The hidden subcommand `load` is the child process of the memory row: it replays a store
//! and prints its own peak RSS as JSON (the memory row runs this very binary for it).

use clap::{Parser, Subcommand};
use tools::bench::memory::{load_and_report, BenchLoadArgs, LOAD_COMMAND};
use tools::bench::{BenchArgs, COMMAND};

/// mimalloc, as in the `ledger` binary: replay and the writer are measured with the allocator
/// the server runs with (and the memory row's peak RSS is that of the same allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure append, replay, start-up, invoice and query speed and the projections' peak memory
/// beside their references, and write the table to BENCH.md.
#[derive(Parser, Debug)]
#[command(name = "bench", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
    #[command(subcommand)]
    child: Option<Child>,
}

/// The bench's own child processes.
#[derive(Subcommand, Debug)]
enum Child {
    /// The child process of the memory row: replay the whole log and print the peak RSS as
    /// JSON.
    #[command(name = LOAD_COMMAND, hide = true)]
    Load(BenchLoadArgs),
}

fn main() {
    // As the ledger runs (and the `load` child with it).
    ledger::allocator::use_small_pages();
    let cli = Cli::parse();
    // The bench drives the router with many thousands of requests: a log line each would be
    // measured along with them, so it logs warnings only unless RUST_LOG says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let done = match cli.child {
        Some(Child::Load(args)) => load_and_report(&args.data, args.scan_only).and_then(|report| {
            let line = serde_json::to_string(&report).map_err(|e| e.to_string())?;
            println!("{line}");
            Ok(())
        }),
        None => {
            // BENCH.md names the command that reproduces it, whatever path ran this binary.
            let command_line = std::iter::once(COMMAND.to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" ");
            tools::bench::run(cli.args, &command_line)
        }
    };
    if let Err(message) = done {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
