//! `ledger`: the command-line entry point.

use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = ledger::cli::Cli::parse();
    if let Err(message) = ledger::cli::run(cli) {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
