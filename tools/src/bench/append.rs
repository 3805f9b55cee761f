//! The append row: durable appends through the ledger by many writers churning on one large
//! tenant, beside the same bytes written into raw sled in batches of the same mean size.

use super::common::{ms, percentile, request, setup_layout, step_commands, track, BenchArgs, Row};
use crate::Churn;
use events::{TenantId, UserId};
use ledger::ledger::Ledger;
use ledger::store::sled_store::SledStore;
use ledger::store::{EncodedEvent, EventStore};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set up one large tenant in `ledger`, returning its users.
async fn setup_tenant(ledger: &Ledger, users: usize) -> Result<(TenantId, Vec<UserId>), String> {
    let plan = setup_layout(ledger, users).await?;
    Ok((plan.tenant, plan.users))
}

pub(super) async fn append_scenario(dir: &Path, args: &BenchArgs) -> Result<Vec<Row>, String> {
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
                    let asked = request(tenant, command);
                    let started = Instant::now();
                    if let Ok(done) = ledger.execute(asked).await {
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
