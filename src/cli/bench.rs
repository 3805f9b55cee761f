//! `ledger bench`: each figure measured beside its reference in the same run, printed as one
//! table and written to BENCH.md with the command that produced it.

use crate::ledger::{Actor, Ledger, Request, World};
use crate::store::sled_store::SledStore;
use crate::store::{EncodedEvent, EventStore};
use chrono::Utc;
use events::{Command, CommandId, Event, LicenseId, TenantId, TypeCode, UserId};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::{layout, tenant_mix, Churn, Layout, Step};

/// `ledger bench`.
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
    /// Users of the tenant whose projections' peak memory is measured; 0 skips the memory row.
    #[arg(long, default_value_t = 100_000)]
    pub memory_users: usize,
    /// Licences of that tenant (about 90 % of them assigned).
    #[arg(long, default_value_t = 1_000_000)]
    pub memory_licences: u32,
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
}

impl BenchArgs {
    fn runs(&self, scenario: Scenario) -> bool {
        self.only.is_empty() || self.only.contains(&scenario)
    }
}

/// One line of the table.
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) figure: String,
    pub(crate) reference: String,
    pub(crate) ratio: String,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Licences a writer holds per user: the base and its add-ons.
type Held = HashMap<UserId, (LicenseId, Vec<LicenseId>)>;
/// Each generated tenant and its users.
type Tenants = Vec<(TenantId, Vec<UserId>)>;

pub(crate) fn actor() -> Actor {
    Actor {
        id: "bench".into(),
        reason: None,
    }
}

/// Run every scenario and write the table.
pub fn run(args: BenchArgs, command_line: &str) -> Result<(), String> {
    let scratch_holder;
    let scratch = match &args.scratch {
        Some(dir) => dir.clone(),
        None => {
            scratch_holder = tempfile_dir()?;
            scratch_holder.clone()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    if args.runs(Scenario::Append) {
        eprintln!("append: {} writers for {} s …", args.writers, args.seconds);
        rows.extend(runtime.block_on(append_scenario(&scratch.join("append"), &args))?);
    }
    if args.runs(Scenario::Log) {
        eprintln!("building a log of {} events …", args.events);
        rows.extend(log_scenarios(&scratch.join("log"), args.events)?);
    }
    if args.runs(Scenario::Import) {
        eprintln!("importing {} rows …", args.import_rows);
        rows.push(import_scenario(&scratch.join("import"), args.import_rows)?);
    }
    if args.runs(Scenario::Http) && args.http_seconds > 0 {
        rows.extend(super::bench_http::http_rows(
            &runtime,
            &scratch.join("http"),
            &args,
        ));
    }
    if args.runs(Scenario::Memory) && args.memory_users > 0 {
        eprintln!(
            "memory: {} users, {} licences …",
            args.memory_users, args.memory_licences
        );
        rows.push(super::bench_memory::memory_row(
            &scratch.join("memory"),
            args.memory_users,
            args.memory_licences,
        )?);
    }
    let table = render(&rows, command_line);
    println!("{table}");
    std::fs::write(&args.out, &table)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    if args.scratch.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("ledger-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn render(rows: &[Row], command_line: &str) -> String {
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(&format!(
        "Command: `{command_line}`  \nMachine: {}  \nDate: {}\n\n",
        machine(),
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    ));
    out.push_str("| scenario | figure | reference in the same run | ratio |\n|---|---|---|---|\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.scenario, row.figure, row.reference, row.ratio
        ));
    }
    out
}

/// Set up one large tenant in `ledger`, returning its users.
async fn setup_tenant(ledger: &Ledger, users: usize) -> Result<(TenantId, Vec<UserId>), String> {
    let plan = setup_layout(ledger, users).await?;
    Ok((plan.tenant, plan.users))
}

/// Set up one large tenant (seeded group tree, restrictions, users) in `ledger`, returning the
/// layout whose commands made it.
pub(crate) async fn setup_layout(ledger: &Ledger, users: usize) -> Result<Layout, String> {
    let shape = &tenant_mix(7, 1, 0, users)[0];
    let plan = layout(shape, 11);
    for command in plan.setup.iter().cloned() {
        let request = Request {
            tenant: plan.tenant,
            actor: actor(),
            expected_version: None,
            command,
        };
        ledger.execute(request).await.map_err(|e| e.to_string())?;
    }
    Ok(plan)
}

/// The commands of one churn step for a writer that tracks its users' licences.
fn step_commands(step: &Step, held: &Held) -> Vec<Command> {
    match step {
        Step::Take { user, addons } => vec![Command::AssignByType {
            user: *user,
            license_type: TypeCode::from("phone_system"),
            addons: addons.clone(),
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

fn track(held: &mut Held, step: &Step, produced: &[Event]) {
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

async fn append_scenario(dir: &Path, args: &BenchArgs) -> Result<Vec<Row>, String> {
    let store = Arc::new(SledStore::open(dir).map_err(|e| e.to_string())?);
    let ledger = Ledger::start(store.clone()).map_err(|e| e.to_string())?;
    let (tenant, users) = setup_tenant(&ledger, 20_000).await?;
    let first_seq = store.head();
    let first_batches = ledger.batches_committed();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let per_writer = users.len() / args.writers.max(1);
    let mut tasks = Vec::new();
    for writer in 0..args.writers.max(1) {
        let mine = users[writer * per_writer..(writer + 1) * per_writer].to_vec();
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut churn = Churn::new(mine, writer as u64);
            let mut held = HashMap::new();
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let step = churn.next_step();
                let mut produced = Vec::new();
                for command in step_commands(&step, &held) {
                    let request = Request {
                        tenant,
                        actor: actor(),
                        expected_version: None,
                        command,
                    };
                    let started = Instant::now();
                    if let Ok(done) = ledger.execute(request).await {
                        produced.extend(done.events);
                    }
                    latencies.push(started.elapsed());
                }
                track(&mut held, &step, &produced);
            }
            latencies
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let events = store.head() - first_seq;
    let batches = (ledger.batches_committed() - first_batches).max(1);
    let rate = events as f64 / elapsed;
    // Reference: the same encoded bytes into raw sled, one key per event, batches of the same
    // mean size, one flush per batch.
    let mut appended = Vec::new();
    store
        .scan(first_seq, &mut |e| {
            appended.push(e);
            true
        })
        .map_err(|e| e.to_string())?;
    let batch_size = (events / batches).max(1) as usize;
    let raw_rate = raw_sled_append(&dir.with_extension("raw"), &appended, batch_size)?;
    Ok(vec![Row {
        scenario: format!(
            "durable append through the ledger, {} writers",
            args.writers
        ),
        figure: format!(
            "{rate:.0} events/s; commit p50 {} p99 {}; mean batch {batch_size} events",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99))
        ),
        reference: format!(
            "raw sled, same bytes, batches of {batch_size}, one flush each: {raw_rate:.0} events/s"
        ),
        ratio: format!("{:.0} % of raw", 100.0 * rate / raw_rate),
    }])
}

fn raw_sled_append(dir: &Path, events: &[EncodedEvent], batch_size: usize) -> Result<f64, String> {
    let db = sled::open(dir).map_err(|e| e.to_string())?;
    let tree = db.open_tree("raw").map_err(|e| e.to_string())?;
    let started = Instant::now();
    for chunk in events.chunks(batch_size) {
        let mut batch = sled::Batch::default();
        for e in chunk {
            batch.insert(&e.seq.to_be_bytes()[..], &e.bytes[..]);
        }
        tree.apply_batch(batch).map_err(|e| e.to_string())?;
        db.flush().map_err(|e| e.to_string())?;
    }
    Ok(events.len() as f64 / started.elapsed().as_secs_f64())
}

/// Build a log of about `target` events: a tenant mix, then churn, appended in large batches.
fn build_log(store: &SledStore, target: u64) -> Result<(World, Tenants), String> {
    let mut world = World::default();
    let mut encoded = Vec::new();
    // The churn is spread over time, as in life (10 ms a step), so that as-of queries at past
    // instants have history to fold; the setup happens at the start.
    let start = events::time::truncate_to_micros(Utc::now()) - chrono::Duration::days(7);
    let now = start;
    let mut tenants = Vec::new();
    let large_users = ((target / 20) as usize).clamp(1_000, 100_000);
    for (index, shape) in tenant_mix(3, 3, 200, large_users).iter().enumerate() {
        let plan = layout(shape, index as u64);
        for command in plan.setup {
            let request = Request {
                tenant: plan.tenant,
                actor: actor(),
                expected_version: None,
                command,
            };
            world
                .decide_into(&request, CommandId::new_random(), now, &mut encoded)
                .map_err(|e| e.to_string())?;
            flush_if_large(store, &mut encoded, 0)?;
        }
        tenants.push((plan.tenant, plan.users));
    }
    let mut churns: Vec<(TenantId, Churn, Held)> = tenants
        .iter()
        .enumerate()
        .map(|(i, (t, users))| (*t, Churn::new(users.clone(), i as u64), HashMap::new()))
        .collect();
    let mut round = 0usize;
    while world.head < target {
        // Large tenants get most of the churn, as they would in life.
        let index = if round.is_multiple_of(4) {
            round / 4 % churns.len()
        } else {
            round % 3
        };
        round += 1;
        let now = start + chrono::Duration::milliseconds(10 * round as i64);
        let (tenant, churn, held) = &mut churns[index];
        let step = churn.next_step();
        let mut produced = Vec::new();
        for command in step_commands(&step, held) {
            let request = Request {
                tenant: *tenant,
                actor: actor(),
                expected_version: None,
                command,
            };
            if let Ok(done) =
                world.decide_into(&request, CommandId::new_random(), now, &mut encoded)
            {
                produced.extend(done.events);
            }
        }
        track(held, &step, &produced);
        flush_if_large(store, &mut encoded, 4096)?;
    }
    flush_if_large(store, &mut encoded, 0)?;
    Ok((world, tenants))
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

fn log_scenarios(dir: &Path, target: u64) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let (tenant, user, group, events, encoded_bytes) = {
        let store = SledStore::open(dir).map_err(|e| e.to_string())?;
        let (world, tenants) = build_log(&store, target)?;
        let (tenant, users) = &tenants[0];
        let user = users[users.len() / 2];
        let group = world.tenants[tenant].users[&user].group;
        let mut bytes = 0u64;
        store
            .scan(0, &mut |e| {
                bytes += e.bytes.len() as u64;
                true
            })
            .map_err(|e| e.to_string())?;
        (*tenant, user, group, world.head, bytes)
    };
    let store = SledStore::open(dir).map_err(|e| e.to_string())?;
    // Raw scan: read every record and split it into events, no decoding of envelopes.
    let started = Instant::now();
    let mut raw_events = 0u64;
    store
        .scan(0, &mut |_| {
            raw_events += 1;
            true
        })
        .map_err(|e| e.to_string())?;
    let raw_rate = raw_events as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let world = World::load(&store).map_err(|e| e.to_string())?;
    let replay_seconds = started.elapsed().as_secs_f64();
    let replay_rate = world.head as f64 / replay_seconds;
    rows.push(Row {
        scenario: format!("replay: read + decode + fold every projection, {events} events"),
        figure: format!("{replay_rate:.0} events/s"),
        reference: format!("raw scan of the same records: {raw_rate:.0} events/s"),
        ratio: format!("{:.0} % of raw", 100.0 * replay_rate / raw_rate),
    });
    let disk = dir_bytes(dir);
    rows.push(Row {
        scenario: "disk per event".into(),
        figure: format!("{:.0} bytes", disk as f64 / events as f64),
        reference: format!(
            "encoded event: {:.0} bytes",
            encoded_bytes as f64 / events as f64
        ),
        ratio: format!("{:.1}×", disk as f64 / encoded_bytes as f64),
    });
    drop(store);
    let started = Instant::now();
    let store = Arc::new(SledStore::open(dir).map_err(|e| e.to_string())?);
    let ledger = Ledger::start(store.clone()).map_err(|e| e.to_string())?;
    let full_replay = started.elapsed().as_secs_f64();
    rows.push(Row {
        scenario: format!("start-up on a {events}-event log, no snapshot (full replay)"),
        figure: format!("{full_replay:.2} s until ready"),
        reference: "—".into(),
        ratio: "—".into(),
    });
    let history = {
        let world = ledger.read();
        let line = world
            .timelines
            .get(&tenant)
            .ok_or("the large tenant has no history")?;
        match (line.first(), line.last()) {
            (Some(first), Some(last)) => (first.0, last.0),
            _ => return Err("the large tenant has no history".into()),
        }
    };
    // What a server that snapshots leaves behind: the state at the head in a snapshot file.
    let started = Instant::now();
    // As the server's snapshot thread does: copy under the read lock, serialise outside it.
    let copy_started = Instant::now();
    let copy = World::clone(&ledger.read());
    let held = copy_started.elapsed().as_secs_f64();
    // The writer's first change to a tenant the copy still shares clones that tenant: time one
    // write to the large tenant while the copy is alive.
    let write_started = Instant::now();
    let one_user = Request {
        tenant,
        actor: actor(),
        expected_version: None,
        command: Command::CreateUsers(vec![events::NewUser {
            user: UserId::new_random(),
            name: "snapshot bench".into(),
            group,
            extension: None,
            number: None,
        }]),
    };
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(ledger.execute(one_user))
        .map_err(|e| e.to_string())?;
    let first_write = write_started.elapsed().as_secs_f64();
    let bytes = crate::ledger::snapshots::encode(&copy)?;
    drop(copy);
    crate::store::snapshot::write(dir, &bytes)?;
    let written = started.elapsed().as_secs_f64();
    // What `Ledger::start_with` does before it spawns the writer (the store stays open: the
    // running ledger holds sled's lock).
    let started = Instant::now();
    let (resumed, used) = World::load_from_dir(store.as_ref(), dir).map_err(|e| e.to_string())?;
    let from_snapshot = started.elapsed().as_secs_f64();
    if used != events || resumed.head != events + 1 {
        return Err(format!(
            "the snapshot was not used (snapshot {used}, head {})",
            resumed.head
        ));
    }
    drop(resumed);
    rows.push(Row {
        scenario: format!("start-up on a {events}-event log from its snapshot"),
        figure: format!(
            "{from_snapshot:.2} s until ready (snapshot {:.0} MB, written in {written:.2} s in \
             the background: the state lock held {:.0} ms for the copy; the first write to the \
             large tenant meanwhile {:.0} ms, as it clones the tenant)",
            bytes.len() as f64 / 1e6,
            held * 1e3,
            first_write * 1e3
        ),
        reference: format!("full replay: {full_replay:.2} s"),
        ratio: format!("{:.1}× faster", full_replay / from_snapshot.max(1e-9)),
    });
    let _ = std::fs::remove_file(dir.join(crate::store::snapshot::SNAPSHOT_FILE));
    let started = Instant::now();
    let billing = super::offline::replay_billing(store.as_ref(), tenant)?;
    let month = projections::Month::of(Utc::now(), billing.timezone);
    let _ = projections::invoice(&billing, month);
    rows.push(Row {
        scenario: format!("invoice for one month from scratch, {events} events"),
        figure: format!("{:.2} s", started.elapsed().as_secs_f64()),
        reference: "—".into(),
        ratio: "—".into(),
    });
    rows.extend(query_rows(&ledger, tenant, user, group, history));
    Ok(rows)
}

/// A tenant with `rows` users and licences, then one import file giving each a phone_system
/// licence, an extension, a number and two add-ons: validated and applied as one batch.
fn import_scenario(dir: &Path, rows: usize) -> Result<Row, String> {
    let store = SledStore::open(dir).map_err(|e| e.to_string())?;
    let mut world = World::default();
    let tenant = TenantId::new_random();
    let now = Utc::now();
    let mut encoded = Vec::new();
    let group = events::GroupId::new_random();
    let mut setup = vec![
        Command::CreateTenant {
            name: "importer".into(),
            billing_timezone: "UTC".into(),
            currency: "EUR".into(),
        },
        Command::CreateGroup {
            group,
            name: "everyone".into(),
            parent: None,
        },
    ];
    let mut remaining = rows as u32;
    while remaining > 0 {
        let quantity = remaining.min(events::decide::PROVISION_QUANTITY_MAX);
        for code in ["phone_system", "device_ip_phone", "call_recording"] {
            setup.push(Command::ProvisionLicenses {
                license_type: code.into(),
                quantity,
            });
        }
        remaining -= quantity;
    }
    let names: Vec<String> = (0..rows).map(|i| format!("user {i:06}")).collect();
    for chunk in names.chunks(events::decide::USERS_PER_BATCH_MAX) {
        setup.push(Command::CreateUsers(
            chunk
                .iter()
                .map(|name| events::NewUser {
                    user: UserId::new_random(),
                    name: name.clone(),
                    group,
                    extension: None,
                    number: None,
                })
                .collect(),
        ));
    }
    for command in setup {
        let request = Request {
            tenant,
            actor: actor(),
            expected_version: None,
            command,
        };
        world
            .decide_into(&request, CommandId::new_random(), now, &mut encoded)
            .map_err(|e| e.to_string())?;
    }
    store.append(&encoded).map_err(|e| e.to_string())?;
    encoded.clear();
    let mut csv = String::from("Ext Key,Number,User,Addon license 1,Addon license 2\n");
    for (i, name) in names.iter().enumerate() {
        csv.push_str(&format!(
            "{},{},{name},device_ip_phone,call_recording\n",
            1000 + i,
            420_000_000 + i
        ));
    }
    let started = Instant::now();
    let parsed = crate::http::imports::parse_csv(csv.as_bytes())?;
    let request = Request {
        tenant,
        actor: actor(),
        expected_version: None,
        command: Command::Import(parsed),
    };
    let done = world
        .decide_into(&request, CommandId::new_random(), now, &mut encoded)
        .map_err(|e| e.to_string())?;
    store.append(&encoded).map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Row {
        scenario: format!("bulk import of {rows} rows (parse, validate, apply, flush)"),
        figure: format!("{seconds:.2} s, {} events", done.events.len()),
        reference: "—".into(),
        ratio: "—".into(),
    })
}

fn time_many(samples: usize, mut work: impl FnMut()) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        work();
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// `history`: the first and last instants of the large tenant's generated history (the as-of
/// queries ask about instants inside it).
fn query_rows(
    ledger: &Ledger,
    tenant: TenantId,
    user: UserId,
    group: events::GroupId,
    history: (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
) -> Vec<Row> {
    let now = Utc::now();
    let phone = TypeCode::from("phone_system");
    let mut rows = Vec::new();
    let mut add = |name: &str, times: (Duration, Duration)| {
        rows.push(query_row(name, times, "—".into(), "—".into()));
    };
    add(
        "usage",
        time_many(2000, || {
            let world = ledger.read();
            std::hint::black_box(projections::usage(&world.tenants[&tenant]));
        }),
    );
    add(
        "group state",
        time_many(2000, || {
            let world = ledger.read();
            std::hint::black_box(
                projections::group_state(&world.tenants[&tenant], group, now).is_some(),
            );
        }),
    );
    add(
        "explain (entitlement)",
        time_many(2000, || {
            let world = ledger.read();
            std::hint::black_box(projections::entitlement(
                &world.tenants[&tenant],
                user,
                &phone,
                now,
            ));
        }),
    );
    let (first, last) = history;
    add(
        "as-of group state, an instant after the tenant's last event (the live state)",
        time_many(2000, || {
            let answer = ledger.with_tenant_at(tenant, now, |t| {
                projections::group_state(t, group, now).is_some()
            });
            std::hint::black_box(answer.ok());
        }),
    );
    let span = (last - first).num_milliseconds().max(1);
    let spread = |count: i64, stride: i64| -> Vec<_> {
        (0..count)
            .map(|i| {
                first
                    + chrono::Duration::milliseconds(span * (i * stride % count + 1) / (count + 1))
            })
            .collect()
    };
    // `usage?at=` answers from the usage history, by binary search.
    let many = spread(2000, 997);
    let mut next = many.iter().cycle();
    add(
        "as-of usage (usage history), 2000 distinct past instants",
        time_many(many.len(), || {
            let at = *next.next().expect("cycle");
            std::hint::black_box(ledger.read().usage_at(tenant, at).1.len());
        }),
    );
    // Group state and explain at past instants: the part of the tenant they read, rebuilt
    // from the past index. The reference folds a past state from the nearest one kept, as
    // every as-of question did before the index (and as one still does if it cannot answer).
    let folded_instants = spread(40, 37);
    let mut next = folded_instants.iter().cycle();
    let folded = time_many(folded_instants.len(), || {
        let at = *next.next().expect("cycle");
        let answer = ledger.with_tenant_at(tenant, at, |t| {
            (
                projections::group_state(t, group, at).is_some(),
                projections::entitlement(t, user, &phone, at).is_some_and(|e| e.allowed),
            )
        });
        std::hint::black_box(answer.ok());
    });
    let mut next = many.iter().cycle();
    let state = time_many(many.len(), || {
        let at = *next.next().expect("cycle");
        let answer = ledger.with_view_at(tenant, at, None, |t| {
            projections::group_state(t, group, at).is_some()
        });
        std::hint::black_box(answer.ok());
    });
    let mut next = many.iter().cycle();
    let explain = time_many(many.len(), || {
        let at = *next.next().expect("cycle");
        let answer = ledger.with_view_at(tenant, at, Some(user), |t| {
            projections::entitlement(t, user, &phone, at).is_some_and(|e| e.allowed)
        });
        std::hint::black_box(answer.ok());
    });
    let reference = format!(
        "group state + explain from a folded past state, 40 distinct past instants: p50 {} p99 {}",
        ms(folded.0),
        ms(folded.1)
    );
    for (name, (p50, p99)) in [
        (
            "as-of group state (past index), 2000 distinct past instants",
            state,
        ),
        (
            "as-of explain (past index), 2000 distinct past instants",
            explain,
        ),
    ] {
        let ratio = format!(
            "{:.0}× faster at p99",
            folded.1.as_secs_f64() / p99.as_secs_f64().max(1e-9)
        );
        rows.push(query_row(name, (p50, p99), reference.clone(), ratio));
    }
    rows
}

/// A row of an in-process query's latency percentiles.
fn query_row(
    name: &str,
    (p50, p99): (Duration, Duration),
    reference: String,
    ratio: String,
) -> Row {
    Row {
        scenario: format!("query in process: {name}"),
        figure: format!("p50 {} p99 {}", ms(p50), ms(p99)),
        reference,
        ratio,
    }
}
