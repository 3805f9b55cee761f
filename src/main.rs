//! `ledger`: the command-line entry point.

use clap::Parser;

/// mimalloc: replay and the writer allocate many small, short-lived values (event payloads,
/// strings); it cuts their cost compared with the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    ledger::allocator::use_small_pages();
    let cli = ledger::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        ledger::cli::LogFormat::Text => logs.init(),
        ledger::cli::LogFormat::Json => logs.json().init(),
    }
    if let Err(message) = ledger::cli::run(cli) {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
