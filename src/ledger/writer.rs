//! The group-commit writer: one thread takes every command waiting, decides each in order
//! against the latest state, appends all their events as one batch, flushes once, and only
//! then answers every caller. A failed append stops writes for good (what reached the disk is
//! unknown until a restart); reads go on from the durable log.

use super::snapshots::maybe_snapshot;
use super::{CostDelta, ExecError, Request, Shared, World, Written};
use crate::idempotency::Lookup;
use crate::store::{EncodedEvent, EventStore};
use chrono::Utc;
use events::{CommandId, Event, TenantId};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Commands decided and flushed together at most.
pub const JOBS_PER_BATCH_MAX: usize = 1024;
/// Commands waiting for the writer before callers wait to enqueue.
pub const QUEUE_DEPTH_MAX: usize = 8192;

pub(super) struct Job {
    pub(super) request: Request,
    pub(super) command_id: CommandId,
    /// The command id came from an `Idempotency-Key`.
    pub(super) keyed: bool,
    pub(super) preview_cost: bool,
    pub(super) reply: oneshot::Sender<Result<Written, ExecError>>,
}

/// On a log shared with other nodes, attempts to rebuild the state from the log after a failed
/// append (one a second) before the process gives up and exits for its supervisor to restart.
const RELOAD_ATTEMPTS_MAX: u32 = 60;

pub(super) fn writer_loop(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Job>) {
    loop {
        if let Some(node) = &shared.node {
            if !super::follower::follow_until_writer(&shared, node) {
                return;
            }
        }
        maybe_snapshot(&shared);
        loop {
            let Some(first) = receiver.blocking_recv() else {
                return;
            };
            let mut jobs = vec![first];
            while jobs.len() < JOBS_PER_BATCH_MAX {
                match receiver.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            if !commit_batch(&shared, jobs) {
                // Stepped down: whatever still waits goes to the next writer, through its
                // caller's retry.
                while let Ok(job) = receiver.try_recv() {
                    let _ = job.reply.send(Err(ExecError::NotWriter));
                }
                break;
            }
            maybe_snapshot(&shared);
        }
    }
}

/// Decide, append and answer one batch; `false` when this node stepped down from writing (a
/// failed append on a log shared with other nodes).
fn commit_batch(shared: &Shared, jobs: Vec<Job>) -> bool {
    let stopped = shared
        .stopped
        .lock()
        .map(|s| s.clone())
        .unwrap_or_else(|p| p.into_inner().clone());
    if let Some(reason) = stopped {
        for job in jobs {
            let _ = job
                .reply
                .send(Err(ExecError::WritesStopped(reason.clone())));
        }
        return true;
    }
    let mut world = shared
        .world
        .write()
        .expect("the ledger state lock is poisoned");
    let clock = events::time::truncate_to_micros(Utc::now());
    let now = world.last_recorded_at.map_or(clock, |last| last.max(clock));
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut encoded: Vec<EncodedEvent> = Vec::new();
    for job in jobs {
        let lookup = if job.keyed {
            world
                .idempotency
                .lookup(job.request.tenant, job.command_id, now)
        } else {
            Lookup::Fresh
        };
        let tenant = job.request.tenant;
        let before = job
            .preview_cost
            .then(|| world.billing.get(&tenant).map(|b| month_now(b, now)));
        let outcome = match lookup {
            Lookup::Fresh => world
                .decide_into(&job.request, job.command_id, now, &mut encoded)
                .map(|mut done| {
                    if let Some(before) = before {
                        done.cost = Some(cost_delta(&world, tenant, now, before, &done.events));
                    }
                    done
                }),
            Lookup::Mismatch => Err(ExecError::IdempotencyKeyReused),
            Lookup::Replay(record) => {
                replay(shared.store.as_ref(), &encoded, job.request.tenant, record)
            }
        };
        outcomes.push((job.reply, outcome));
    }
    let started = std::time::Instant::now();
    let appended = shared.store.append(&encoded);
    if !encoded.is_empty() {
        shared
            .batches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    crate::metrics::batch_committed(
        outcomes.len(),
        encoded.len(),
        started.elapsed().as_secs_f64(),
    );
    if let (Err(error), Some(node)) = (&appended, &shared.node) {
        // The database knows what was committed: step down, let another node (or this one,
        // later) take the lease, and rebuild the state from the log meanwhile.
        tracing::error!(%error, "append failed; this node steps down from writing");
        node.writer
            .store(false, std::sync::atomic::Ordering::Release);
        node.lease.release_lease();
        let mut attempts = 0;
        loop {
            match World::load(shared.store.as_ref()) {
                Ok(reloaded) => {
                    *world = reloaded;
                    publish_keys(shared, &world);
                    break;
                }
                Err(reload) if attempts < RELOAD_ATTEMPTS_MAX => {
                    attempts += 1;
                    tracing::warn!(%reload, attempts, "cannot rebuild the state yet");
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                Err(reload) => {
                    tracing::error!(%reload, "cannot rebuild the state; stopping");
                    std::process::exit(70);
                }
            }
        }
        shared.head_watch.send_replace(world.head);
        drop(world);
        let reason = error.to_string();
        for (reply, outcome) in outcomes {
            let failed = outcome.and(Err(ExecError::WritesStopped(reason.clone())));
            let _ = reply.send(failed);
        }
        return false;
    }
    if let Err(error) = appended {
        tracing::error!(%error, "append failed; writes stop, reads go on from the durable log");
        let reason = error.to_string();
        if let Ok(mut stopped) = shared.stopped.lock() {
            *stopped = Some(reason.clone());
        }
        // The in-memory state holds events that may not be durable: rebuild it from the log,
        // which shows only what was acknowledged as durable.
        match World::load(shared.store.as_ref()) {
            Ok(reloaded) => {
                *world = reloaded;
                publish_keys(shared, &world);
            }
            Err(reload) => {
                tracing::error!(%reload, "cannot reload the state; stopping");
                std::process::exit(70);
            }
        }
        drop(world);
        for (reply, outcome) in outcomes {
            let failed = outcome.and(Err(ExecError::WritesStopped(reason.clone())));
            let _ = reply.send(failed);
        }
        return true;
    }
    let keys_changed = outcomes.iter().any(|(_, outcome)| {
        outcome.as_ref().is_ok_and(|written| {
            !written.replayed
                && written.events.iter().any(|event| {
                    matches!(
                        event,
                        Event::ApiKeyIssued { .. }
                            | Event::ScopedApiKeyIssued { .. }
                            | Event::ApiKeyRevoked { .. }
                    )
                })
        })
    });
    if keys_changed {
        publish_keys(shared, &world);
    }
    shared.head_watch.send_replace(world.head);
    drop(world);
    for (reply, outcome) in outcomes {
        // The caller may have gone away; its write is durable all the same.
        let _ = reply.send(outcome);
    }
    true
}

/// Make the key index of `world` (durable by now) the one requests authenticate with.
pub(super) fn publish_keys(shared: &Shared, world: &World) {
    let mut keys = shared.keys.write().unwrap_or_else(|p| p.into_inner());
    keys.clone_from(&world.keys);
}

/// A tenant's billing month containing `now` and its figures.
fn month_now(
    billing: &projections::Billing,
    now: chrono::DateTime<Utc>,
) -> (
    projections::Month,
    std::collections::BTreeMap<events::TypeCode, projections::TypeMonth>,
) {
    let month = projections::Month::of(now, billing.timezone);
    (month, billing.month(month))
}

/// How `events` moved this month's peaks and amounts, per type they touched.
fn cost_delta(
    world: &World,
    tenant: TenantId,
    now: chrono::DateTime<Utc>,
    before: Option<(
        projections::Month,
        std::collections::BTreeMap<events::TypeCode, projections::TypeMonth>,
    )>,
    produced: &[Event],
) -> std::collections::BTreeMap<events::TypeCode, CostDelta> {
    let mut out = std::collections::BTreeMap::new();
    let Some(billing) = world.billing.get(&tenant) else {
        return out;
    };
    let (month, after) = month_now(billing, now);
    let before = before
        .filter(|(m, _)| *m == month)
        .map(|(_, figures)| figures)
        .unwrap_or_default();
    let end = month.end(billing.timezone);
    for event in produced {
        for t in projections::touches(event).types {
            let peak = |figures: &std::collections::BTreeMap<
                events::TypeCode,
                projections::TypeMonth,
            >| { figures.get(t).map_or(0, |f| f.peak_units) };
            let (was, now_units) = (peak(&before), peak(&after));
            let price = billing.price_at(t, end).unwrap_or(0);
            let delta = (now_units as i64 - was as i64).saturating_mul(price);
            out.insert(
                t.clone(),
                CostDelta {
                    peak_units_before: was,
                    peak_units_after: now_units,
                    amount_minor_delta: delta,
                },
            );
        }
    }
    out
}

/// The answer of an earlier keyed command, from its events (durable, or in this batch).
fn replay(
    store: &dyn EventStore,
    batch: &[EncodedEvent],
    tenant: TenantId,
    record: crate::idempotency::Record,
) -> Result<Written, ExecError> {
    let mut found = Vec::new();
    let wanted = |seq: u64| (record.first_seq..=record.last_seq).contains(&seq);
    for stored in batch.iter().filter(|e| wanted(e.seq)) {
        found.push(stored.clone());
    }
    if found.is_empty() {
        store.scan_tenant(tenant, record.first_seq - 1, &mut |e| {
            let more = e.seq < record.last_seq;
            if wanted(e.seq) {
                found.push(e);
            }
            more
        })?;
    }
    let mut events = Vec::with_capacity(found.len());
    for stored in found {
        events.push(stored.decode()?.event);
    }
    Ok(Written {
        seq: record.last_seq,
        version: record.version,
        events,
        replayed: true,
        cost: None,
    })
}
