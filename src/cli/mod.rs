//! The command line (clap): `ledger serve`, `replay`, `export`, `verify`.

pub mod backup;
pub mod offline;
pub mod store;
pub mod whatif;

use crate::http::{app, App};
use crate::ledger::Ledger;
use crate::store::postgres::Access;
use crate::store::sled_store::SledStore;
use clap::{Parser, Subcommand};
use rand::RngCore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Events read on start (after the snapshot, if one was used) from which `serve` reopens the
/// store before serving, to give back what sled's cache kept of the records it read. Before
/// the vendored sled's cache counted pages stored as blobs (`vendor/sled/PATCHED.md`), that was
/// every record, about 200 bytes an event; now it is at most the store's cache.
const STORE_REOPEN_EVENTS_MIN: u64 = 1_000_000;

/// Event-sourced licensing ledger.
#[derive(Parser, Debug)]
#[command(name = "ledger", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
    /// Log lines on stderr as text or as JSON objects.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What to run.
#[derive(Subcommand, Debug)]
pub enum CliCommand {
    /// Serve the HTTP API on the embedded store.
    Serve(ServeArgs),
    /// Compute a month's invoice from a full replay of the log (or of an export), printing
    /// exactly the bytes `GET /invoices/{month}` answers.
    Replay(ReplayArgs),
    /// Apply a bulk-import CSV (or only check it with --dry-run), offline on the store or
    /// against a running server with --url.
    Import(ImportArgs),
    /// Write a tenant's events as JSON lines or CSV to stdout.
    Export(ExportArgs),
    /// Copy a serving ledger's log over HTTP into a directory (a consistent copy, continued
    /// on the next run), then verify it: an online backup; the directory is a data directory
    /// to restore from.
    Backup(backup::BackupArgs),
    /// Check sequences, checksums and hash chains, and that every projection rebuilt from each
    /// tenant's stream equals the global replay. Exits non-zero naming the first bad sequence.
    Verify(VerifyArgs),
    /// Preview commands (the body of `POST /what-if` in a file) against the store without a
    /// server: who would be blocked, which rules break, how this month's bill moves. Writes
    /// nothing.
    WhatIf(whatif::WhatIfArgs),
}

/// `ledger replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[arg(long, default_value = "./ledger-data")]
    pub data: PathBuf,
    /// Where the log is: `sled` (the embedded store in --data) or a PostgreSQL connection
    /// string, `postgres://user@host:port/database`.
    #[arg(
        long,
        env = "LEDGER_STORE",
        hide_env_values = true,
        default_value = "sled"
    )]
    pub store: store::StoreSpec,
    #[arg(long)]
    pub tenant: events::TenantId,
    /// `YYYY-MM`.
    #[arg(long)]
    pub month: String,
    /// Replay an export (`ledger export --format jsonl`) instead of the store.
    #[arg(long)]
    pub from: Option<PathBuf>,
}

/// `ledger import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    #[arg(long, default_value = "./ledger-data")]
    pub data: PathBuf,
    /// Where the log is: `sled` (the embedded store in --data) or a PostgreSQL connection
    /// string, `postgres://user@host:port/database`.
    #[arg(
        long,
        env = "LEDGER_STORE",
        hide_env_values = true,
        default_value = "sled"
    )]
    pub store: store::StoreSpec,
    #[arg(long)]
    pub tenant: events::TenantId,
    /// The CSV file: `Ext Key, Number, User, Addon license 1 … N`.
    pub file: PathBuf,
    /// Validate and report only.
    #[arg(long)]
    pub dry_run: bool,
    /// A running server's base URL (e.g. http://127.0.0.1:8080); the token comes from
    /// LEDGER_TOKEN.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token for --url.
    #[arg(long, env = "LEDGER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `ledger export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[arg(long, default_value = "./ledger-data")]
    pub data: PathBuf,
    /// Where the log is: `sled` (the embedded store in --data) or a PostgreSQL connection
    /// string, `postgres://user@host:port/database`.
    #[arg(
        long,
        env = "LEDGER_STORE",
        hide_env_values = true,
        default_value = "sled"
    )]
    pub store: store::StoreSpec,
    #[arg(long)]
    pub tenant: events::TenantId,
    /// Only events recorded at or after this RFC 3339 instant.
    #[arg(long)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events recorded before this RFC 3339 instant.
    #[arg(long)]
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: offline::ExportFormat,
}

/// `ledger verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    #[arg(long, default_value = "./ledger-data")]
    pub data: PathBuf,
    /// Where the log is: `sled` (the embedded store in --data) or a PostgreSQL connection
    /// string, `postgres://user@host:port/database`.
    #[arg(
        long,
        env = "LEDGER_STORE",
        hide_env_values = true,
        default_value = "sled"
    )]
    pub store: store::StoreSpec,
}

/// `ledger serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Directory of the embedded store (created if missing); with a PostgreSQL store, where
    /// this node keeps its start-up snapshot.
    #[arg(long, default_value = "./ledger-data")]
    pub data: PathBuf,
    /// Where the log is: `sled` (the embedded store in --data) or a PostgreSQL connection
    /// string, `postgres://user@host:port/database`.
    #[arg(
        long,
        env = "LEDGER_STORE",
        hide_env_values = true,
        default_value = "sled"
    )]
    pub store: store::StoreSpec,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// With a PostgreSQL store: the URL other nodes forward writes to while this node holds
    /// the write lease (default: `http://` and the address it listens on).
    #[arg(long, env = "LEDGER_ADVERTISE")]
    pub advertise: Option<String>,
    /// Root token for creating tenants; never written to disk.
    #[arg(long, env = "LEDGER_ROOT_TOKEN", hide_env_values = true)]
    pub root_token: Option<String>,
    /// Development mode: without a root token, generate one and print it.
    #[arg(long)]
    pub dev: bool,
    /// Seconds between looks for due expiry reminders to deliver to webhooks.
    #[arg(long, default_value_t = 60)]
    pub reminder_interval_secs: u64,
    /// Events appended between two start-up snapshots (0: never write one; an existing
    /// snapshot is still used on start).
    #[arg(long, default_value_t = crate::ledger::SNAPSHOT_EVERY_EVENTS_DEFAULT)]
    pub snapshot_every: u64,
}

/// Run the parsed command line; the error is printed by `main`.
pub fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        CliCommand::Serve(args) => serve(args),
        CliCommand::Replay(args) => {
            let billing = match &args.from {
                Some(file) => offline::replay_billing_from_export(file, args.tenant)?,
                None => offline::replay_billing(
                    args.store.open(&args.data, Access::Read)?.as_ref(),
                    args.tenant,
                )?,
            };
            let bytes = offline::replay_invoice(&billing, &args.month)?;
            let mut out = std::io::stdout().lock();
            std::io::Write::write_all(&mut out, &bytes).map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut out).map_err(|e| e.to_string())
        }
        CliCommand::Import(args) => offline::import(&args),
        CliCommand::Export(args) => {
            let store = args.store.open(&args.data, Access::Read)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            offline::export(
                store.as_ref(),
                args.tenant,
                args.since,
                args.until,
                args.format,
                &mut out,
            )?;
            std::io::Write::flush(&mut out).map_err(|e| e.to_string())
        }
        CliCommand::WhatIf(args) => whatif::run(args),
        CliCommand::Backup(args) => backup::run(&args),
        CliCommand::Verify(args) => {
            let store = args.store.open(&args.data, Access::Read)?;
            // A PostgreSQL store's snapshot, if this node keeps one, is in --data.
            let snapshots = Some(args.data.as_path()).filter(|dir| dir.exists());
            let report = offline::verify(store.as_ref(), snapshots)?;
            println!("{report}");
            Ok(())
        }
    }
}

/// Open the store in `data` and rebuild the state (from its snapshot when sound); also says
/// the snapshot's sequence (0: none). When that read `reopen_after` events or more, the store
/// is closed and opened again: sled 0.34 keeps in memory every record a scan read, whatever
/// its cache capacity (spacejam/sled#1036) — after a long replay, most of the log.
fn open_and_load(
    data: &std::path::Path,
    reopen_after: u64,
) -> Result<(SledStore, crate::ledger::World, u64), String> {
    let open = || {
        SledStore::open(data)
            .map_err(|e| format!("cannot open the store in {}: {e}", data.display()))
    };
    let store = open()?;
    let (world, snapshot_head) = crate::ledger::World::load_from_dir(&store, data)
        .map_err(|e| format!("cannot start: {e}"))?;
    if world.head - snapshot_head < reopen_after {
        return Ok((store, world, snapshot_head));
    }
    drop(store);
    Ok((open()?, world, snapshot_head))
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
    let snapshots = crate::ledger::SnapshotPolicy {
        dir: args.data.clone(),
        every_events: if args.snapshot_every == 0 {
            u64::MAX
        } else {
            args.snapshot_every
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    // Bound first: a node on a shared log advertises the address it really listens on.
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let ledger = match &args.store {
        store::StoreSpec::Sled => {
            let (store, world, at) = open_and_load(&args.data, STORE_REOPEN_EVENTS_MIN)?;
            Ledger::start_loaded(Arc::new(store), Some(snapshots), world, at)
        }
        store::StoreSpec::Postgres(url) => {
            std::fs::create_dir_all(&args.data)
                .map_err(|e| format!("cannot create {}: {e}", args.data.display()))?;
            let store = Arc::new(
                crate::store::postgres::PostgresStore::open(url, Access::Read)
                    .map_err(|e| format!("cannot open the PostgreSQL store: {e}"))?,
            );
            let (world, at) = crate::ledger::World::load_from_dir(store.as_ref(), &args.data)
                .map_err(|e| format!("cannot start: {e}"))?;
            let advertise = args
                .advertise
                .clone()
                .unwrap_or_else(|| format!("http://{local}"));
            Ledger::start_node(store.clone(), store, advertise, Some(snapshots), world, at)
        }
    }
    .map_err(|e| format!("cannot start: {e}"))?;
    let state = App {
        ledger,
        root_token_hash: crate::http::auth::token_hash(&root_token),
    };
    runtime.block_on(async move {
        crate::reminders::spawn(
            state.ledger.clone(),
            crate::reminders::Delivery {
                interval: std::time::Duration::from_secs(args.reminder_interval_secs.max(1)),
                ..crate::reminders::Delivery::default()
            },
        );
        tracing::info!("listening on http://{local}");
        println!("listening on http://{local}");
        let ledger = state.ledger.clone();
        axum::serve(listener, app(state))
            .with_graceful_shutdown(stop_signal())
            .await
            .map_err(|e| format!("server failed: {e}"))?;
        // Every request in flight was answered, so every acknowledged write is durable and
        // the writer is idle: leave a snapshot so the next start is quick.
        match tokio::task::spawn_blocking(move || ledger.snapshot_on_stop()).await {
            Ok(Ok(Some(seq))) => tracing::info!(seq, "stopped; snapshot written"),
            Ok(Ok(None)) => tracing::info!("stopped"),
            Ok(Err(reason)) => tracing::warn!(%reason, "stopped; no snapshot written"),
            Err(error) => tracing::warn!(%error, "stopped; no snapshot written"),
        }
        Ok(())
    })
}

/// SIGINT (Ctrl-C) or SIGTERM (systemd, container runtimes): stop taking connections, answer
/// the requests in flight, then return.
async fn stop_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    match &mut terminate {
        Ok(terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("stopping: no new connections, answering the requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tests::request;
    use crate::ledger::World;
    use crate::store::EventStore;
    use events::{Command, CommandId, TenantId};

    /// Decide `command` for `tenant` against `world` and append its events to `store`, at a
    /// whole microsecond, as the writer does.
    fn run(world: &mut World, store: &SledStore, tenant: TenantId, command: Command) {
        let request = request(tenant, command);
        let now = events::time::truncate_to_micros(chrono::Utc::now());
        let mut encoded = Vec::new();
        world
            .decide_into(&request, CommandId::new_random(), now, &mut encoded)
            .expect("the command is valid");
        store.append(&encoded).expect("appended");
    }

    #[test]
    fn a_store_reopened_after_a_long_replay_reads_and_appends_as_before() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let tenant = TenantId::new_random();
        let create = Command::CreateTenant {
            name: "Acme".into(),
            billing_timezone: "UTC".into(),
            currency: "EUR".into(),
        };
        let provision = || Command::ProvisionLicenses {
            license_type: "phone_system".into(),
            quantity: 3,
        };
        let head = {
            let store = SledStore::open(dir.path()).expect("store");
            let mut world = World::default();
            run(&mut world, &store, tenant, create);
            run(&mut world, &store, tenant, provision());
            store.head()
        };
        // First with the whole log read counting as long (the store is reopened), then never.
        for (round, bound) in [head, u64::MAX].into_iter().enumerate() {
            let (store, mut world, snapshot_head) =
                open_and_load(dir.path(), bound).expect("opened and loaded");
            assert_eq!(snapshot_head, 0);
            assert_eq!(world.head, store.head());
            run(&mut world, &store, tenant, provision());
            let replayed = World::load(&store).expect("replayed");
            assert!(
                replayed == world,
                "round {round}: the log holds what was appended"
            );
            assert_eq!(
                world.tenants[&tenant].owned[&"phone_system".into()],
                3 + 3 * (round as u64 + 1)
            );
        }
    }
}
