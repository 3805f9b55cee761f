//! The command line (clap): `ledger serve`, ….

use crate::http::{app, App};
use crate::ledger::Ledger;
use crate::store::sled_store::SledStore;
use clap::{Parser, Subcommand};
use rand::RngCore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Event-sourced licensing ledger.
#[derive(Parser, Debug)]
#[command(name = "ledger", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
}

/// What to run.
#[derive(Subcommand, Debug)]
pub enum CliCommand {
    /// Serve the HTTP API on the embedded store.
    Serve(ServeArgs),
}

/// `ledger serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Directory of the embedded store (created if missing).
    #[arg(long, default_value = "./ledger-data")]
    pub data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Root token for creating tenants; never written to disk.
    #[arg(long, env = "LEDGER_ROOT_TOKEN", hide_env_values = true)]
    pub root_token: Option<String>,
    /// Development mode: without a root token, generate one and print it.
    #[arg(long)]
    pub dev: bool,
}

/// Run the parsed command line; the error is printed by `main`.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        CliCommand::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let root_token = match (args.root_token.filter(|t| !t.is_empty()), args.dev) {
        (Some(token), _) => token,
        (None, true) => {
            let mut secret = [0u8; 24];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            let token = format!("root_{}", hex::encode(secret));
            println!("dev root token: {token}");
            token
        }
        (None, false) => {
            return Err(
                "no root token: set LEDGER_ROOT_TOKEN (or --root-token), or pass --dev".into(),
            )
        }
    };
    let store = SledStore::open(&args.data)
        .map_err(|e| format!("cannot open the store in {}: {e}", args.data.display()))?;
    let ledger = Ledger::start(Arc::new(store)).map_err(|e| format!("cannot start: {e}"))?;
    let state = App {
        ledger,
        root_token_hash: crate::http::auth::token_hash(&root_token),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        tracing::info!("listening on http://{local}");
        println!("listening on http://{local}");
        axum::serve(listener, app(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| format!("server failed: {e}"))
    })
}
