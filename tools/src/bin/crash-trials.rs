//! `crash-trials`: SIGKILL trials of the real `ledger` binary (see `tools::crash`).
//!
//! ```sh
//! cargo build --release
//! cargo run --release -p tools --bin crash-trials -- --binary target/release/ledger --trials 100
//! # three nodes on one PostgreSQL log; odd trials SIGKILL the writer, even ones crash the database
//! cargo run --release -p tools --bin crash-trials -- --binary target/release/ledger \
//!     --store postgres --nodes 3 --trials 20
//! ```
//!
//! Prints one line per trial and a summary; exits non-zero naming the trial, its seed and the
//! first problem when an acknowledged write is lost, a sequence has a gap or a replay differs.

use clap::builder::TypedValueParser;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use tools::crash::{run_cluster_trials, run_trials, Options, NODES, SEED_DEFAULT};

/// Crash trials: start the binary, drive concurrent writes of every kind, SIGKILL it at a
/// seeded random moment, restart it and check that nothing acknowledged was lost.
#[derive(Parser, Debug)]
#[command(name = "crash-trials")]
struct Args {
    /// The `ledger` executable.
    #[arg(long)]
    binary: PathBuf,
    /// How many trials.
    #[arg(long, default_value_t = 10)]
    trials: u64,
    /// The seed of the first trial (the others follow from it).
    #[arg(long, default_value_t = SEED_DEFAULT)]
    seed: u64,
    /// Where trial data directories are made (default: a new directory under the system's
    /// temporary directory).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Keep the data directory of a failing trial.
    #[arg(long)]
    keep: bool,
    /// The store the server runs on: sled, or PostgreSQL in a throw-away cluster started from
    /// the machine's server binaries (`scripts/install-postgres.sh`), a new database per trial.
    #[arg(long, value_enum, default_value = "sled")]
    store: Store,
    /// 1: one server, SIGKILLed and restarted. 3: three nodes on one PostgreSQL log under load
    /// (needs `--store postgres`); odd trials SIGKILL the writer node, even ones crash the
    /// database (`pg_ctl stop -m immediate`); every write is retried with its
    /// `Idempotency-Key` until acknowledged and must be applied exactly once.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::PossibleValuesParser::new(["1", "3"]).map(|n| n.parse::<usize>().unwrap_or(1)))]
    nodes: usize,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Store {
    Sled,
    Postgres,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.binary.is_file() {
        eprintln!("crash-trials: no executable at {}", args.binary.display());
        return ExitCode::from(2);
    }
    let default_scratch = args.scratch.is_none();
    let scratch = args.scratch.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("ledger-crash-trials-{}", std::process::id()))
    });
    let cluster = match args.store {
        Store::Sled => None,
        Store::Postgres => {
            let started = tools::postgres::find_server_binaries()
                .and_then(|bin| tools::postgres::Cluster::start(&bin, &scratch.join("postgres")));
            match started {
                Ok(cluster) => Some(cluster),
                Err(e) => {
                    eprintln!("crash-trials: cannot start PostgreSQL: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    let options = Options {
        binary: args.binary,
        trials: args.trials,
        seed: args.seed,
        scratch: scratch.clone(),
        keep: args.keep,
        postgres: cluster.as_ref().map(|c| c.connection_string()),
    };
    println!(
        "crash-trials: {} trials of {} from seed {}",
        options.trials,
        options.binary.display(),
        options.seed
    );
    let summary = match (&cluster, args.nodes) {
        (Some(cluster), NODES) => {
            run_cluster_trials(&options, &|| cluster.crash_and_restart(), |report| {
                println!("{report}")
            })
        }
        (None, NODES) => {
            eprintln!("crash-trials: --nodes {NODES} needs --store postgres");
            return ExitCode::from(2);
        }
        _ => run_trials(&options, |report| println!("{report}")),
    };
    drop(cluster);
    if default_scratch {
        // Empty unless a failing trial's data was kept.
        let _ = std::fs::remove_dir(&options.scratch);
    }
    println!("{summary}");
    if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
