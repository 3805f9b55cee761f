//! The rows over one built log: replay beside a raw scan, disk per event, start-up without and
//! with a snapshot, an invoice from scratch, then the in-process queries ([`super::queries`]
//! is called from here with the ledger started on that log).

use super::common::{flush_if_large, request, step_commands, track, Held, Row};
use super::queries::query_rows;
use crate::{layout, tenant_mix, Churn};
use chrono::Utc;
use events::{Command, CommandId, TenantId, UserId};
use ledger::ledger::{Ledger, World};
use ledger::store::sled_store::SledStore;
use ledger::store::EventStore;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

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

/// Runs of the fresh-process replay: the first after a pause is often slower (the guest's
/// memory touched anew), so the row gives the median.
const FRESH_REPLAYS: usize = 3;

/// The replay as a server's start-up does it: in a process of its own (the bench's `load`
/// child), not in this one, which holds the state it built the log with. The median of
/// [`FRESH_REPLAYS`] runs, beside the replay in this process.
fn fresh_replay_row(dir: &Path, events: u64, in_process_rate: f64) -> Result<Row, String> {
    let mut rates = Vec::with_capacity(FRESH_REPLAYS);
    for _ in 0..FRESH_REPLAYS {
        let report = super::memory::run_child(dir, false)?;
        if report.events != events {
            return Err(format!(
                "the child replayed {} events, not {events}",
                report.events
            ));
        }
        rates.push(report.events as f64 / report.replay_seconds.max(1e-9));
    }
    let runs = rates
        .iter()
        .map(|r| format!("{r:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    Ok(Row {
        scenario: format!(
            "replay in a fresh process, as a server starts without a snapshot: read + decode + \
             fold every projection, {events} events"
        ),
        figure: format!("{median:.0} events/s, median of {FRESH_REPLAYS} runs ({runs})"),
        reference: format!(
            "the same replay in the process that built the log: {in_process_rate:.0} events/s"
        ),
        ratio: format!("{:.2}×", median / in_process_rate),
    })
}

/// Each generated tenant and its users.
type Tenants = Vec<(TenantId, Vec<UserId>)>;

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
            world
                .decide_into(
                    &request(plan.tenant, command),
                    CommandId::new_random(),
                    now,
                    &mut encoded,
                )
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
            let asked = request(*tenant, command);
            if let Ok(done) = world.decide_into(&asked, CommandId::new_random(), now, &mut encoded)
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

pub(super) fn log_scenarios(dir: &Path, target: u64) -> Result<Vec<Row>, String> {
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
    rows.push(fresh_replay_row(dir, events, replay_rate)?);
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
    let one_user = request(
        tenant,
        Command::CreateUsers(vec![events::NewUser {
            user: UserId::new_random(),
            name: "snapshot bench".into(),
            group,
            extension: None,
            number: None,
        }]),
    );
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(ledger.execute(one_user))
        .map_err(|e| e.to_string())?;
    let first_write = write_started.elapsed().as_secs_f64();
    let bytes = ledger::ledger::snapshots::encode(&copy)?;
    drop(copy);
    ledger::store::snapshot::write(dir, &bytes)?;
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
    let _ = std::fs::remove_file(dir.join(ledger::store::snapshot::SNAPSHOT_FILE));
    let started = Instant::now();
    let billing = ledger::cli::offline::replay_billing(store.as_ref(), tenant)?;
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
