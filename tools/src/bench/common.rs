//! What every part of the bench shares: its arguments, a row of the table, a request as the
//! bench sends it, the large tenant it sets up, the commands of a churn step and how a
//! built log is flushed. The scenario modules import this one, never each other (nor the
//! module that runs them).

use crate::{layout, tenant_mix, Layout, Step};
use events::{Command, Event, LicenseId, TenantId, TypeCode, UserId};
use ledger::ledger::{Actor, Ledger, Request};
use ledger::store::sled_store::SledStore;
use ledger::store::{EncodedEvent, EventStore};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The bench's arguments (`cargo run --release -p tools --bin bench -- --help`).
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Events in the log built for the replay, start-up, invoice and query figures.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Seconds of durable-append load.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent writers of the append scenario.
    #[arg(long, default_value_t = 64)]
    pub writers: usize,
    /// Rows of the bulk-import scenario.
    #[arg(long, default_value_t = 100_000)]
    pub import_rows: usize,
    /// Where to write the table.
    #[arg(long, default_value = "BENCH.md")]
    pub out: PathBuf,
    /// Scratch directory for the stores (a temporary one by default).
    #[arg(long)]
    pub scratch: Option<PathBuf>,
    /// Seconds of open-loop load on each HTTP server (ledger, bare axum, PostgreSQL); 0 skips
    /// the HTTP rows.
    #[arg(long, default_value_t = 10)]
    pub http_seconds: u64,
    /// Seconds of the closed-loop probe that finds each HTTP server's capacity.
    #[arg(long, default_value_t = 3)]
    pub http_probe_seconds: u64,
    /// Open-loop rate as a percentage of the probed capacity.
    #[arg(long, default_value_t = 90.0)]
    pub http_load_percent: f64,
    /// Keep-alive HTTP/1.1 connections of the load driver.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Skip the PostgreSQL reference (its cell then says so).
    #[arg(long)]
    pub no_postgres: bool,
    /// Users of the tenant whose projections' peak memory is measured, and on which the
    /// console's pages are timed; 0 skips those rows.
    #[arg(long, default_value_t = 100_000)]
    pub memory_users: usize,
    /// Licences of that tenant (about 90 % of them assigned).
    #[arg(long, default_value_t = 1_000_000)]
    pub memory_licences: u32,
    /// Seconds of usage records sent over HTTP in batches of 1 000; 0 skips that row.
    #[arg(long, default_value_t = 10)]
    pub usage_seconds: u64,
    /// Usage records in the month whose replay and invoice are timed; 0 skips that row.
    #[arg(long, default_value_t = 10_000_000)]
    pub usage_records: u64,
    /// Run only these scenarios (comma-separated); all of them by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Scenario>,
}

/// A group of rows `--only` can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Durable append through the ledger beside raw sled.
    Append,
    /// Replay, disk per event, start-up, invoice and queries over one built log.
    Log,
    /// Bulk import.
    Import,
    /// The HTTP rows.
    Http,
    /// Peak memory of the projections of one large tenant.
    Memory,
    /// Usage records over HTTP, and a month of them replayed into an invoice.
    Usage,
    /// The web console's pages on the memory row's tenant.
    Console,
}

impl BenchArgs {
    pub(crate) fn runs(&self, scenario: Scenario) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }
}

/// One line of the table.
#[derive(Clone)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) figure: String,
    pub(crate) reference: String,
    pub(crate) ratio: String,
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Licences a writer holds per user: the base and its add-ons.
pub(crate) type Held = HashMap<UserId, (LicenseId, Vec<LicenseId>)>;

/// `command` for `tenant`, sent as the bench (no reason, no expected version).
pub(crate) fn request(tenant: TenantId, command: Command) -> Request {
    Request {
        tenant,
        actor: Actor {
            id: "bench".into(),
            reason: None,
            scope: None,
        },
        expected_version: None,
        command,
    }
}

/// Set up one large tenant (seeded group tree, restrictions, users) in `ledger`, returning the
/// layout whose commands made it.
pub(crate) async fn setup_layout(ledger: &Ledger, users: usize) -> Result<Layout, String> {
    let shape = &tenant_mix(7, 1, 0, users)[0];
    let plan = layout(shape, 11);
    for command in plan.setup.iter().cloned() {
        ledger
            .execute(request(plan.tenant, command))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(plan)
}

/// The commands of one churn step for a writer that tracks its users' licences.
pub(crate) fn step_commands(step: &Step, held: &Held) -> Vec<Command> {
    match step {
        Step::Take { user, addons } => vec![Command::AssignByType {
            user: *user,
            license_type: TypeCode::from("phone_system"),
            addons: addons.clone(),
            group: None,
        }],
        Step::GiveBack { user } => match held.get(user) {
            None => vec![],
            Some((base, addons)) => {
                let mut commands: Vec<Command> = addons
                    .iter()
                    .map(|addon| Command::DetachAddon {
                        base: *base,
                        addon: *addon,
                    })
                    .collect();
                commands.push(Command::UnassignLicense { license: *base });
                commands
            }
        },
    }
}

pub(crate) fn track(held: &mut Held, step: &Step, produced: &[Event]) {
    match step {
        Step::Take { user, .. } => {
            let mut base = None;
            let mut addons = Vec::new();
            for event in produced {
                match event {
                    Event::LicenseAssigned { license, .. } => base = Some(*license),
                    Event::AddonAttached { addon, .. } => addons.push(*addon),
                    _ => {}
                }
            }
            if let Some(base) = base {
                held.insert(*user, (base, addons));
            }
        }
        Step::GiveBack { user } => {
            held.remove(user);
        }
    }
}

pub(crate) fn flush_if_large(
    store: &SledStore,
    encoded: &mut Vec<EncodedEvent>,
    threshold: usize,
) -> Result<(), String> {
    if encoded.len() > threshold {
        store.append(encoded).map_err(|e| e.to_string())?;
        encoded.clear();
    }
    Ok(())
}

/// How long a server may take to close its connections once told to stop.
const SERVER_STOP_WAIT: Duration = Duration::from_secs(5);

/// A server on 127.0.0.1 and the way to stop it.
pub(crate) struct Serving {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Serving {
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let abort = self.task.abort_handle();
        if tokio::time::timeout(SERVER_STOP_WAIT, self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

pub(crate) async fn serve(router: axum::Router) -> Result<(SocketAddr, Serving), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok((address, Serving { stop, task }))
}
