//! A node that shares its log with others (PostgreSQL) and does not hold the write lease: its
//! state follows the log the writer appends to, woken by the writer's notifications and by a
//! poll, and every [`FOLLOW_POLL`] it asks for the lease. Once it has the lease it folds what
//! is left of the log and only then starts writing, so nothing is decided against a stale state
//! and nothing the old writer acknowledged is missed or applied twice.

use super::writer::publish_keys;
use super::{Node, Shared};
use crate::store::EncodedEvent;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait between two looks at the log and at the lease.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Events folded under one hold of the state's write lock at most while following.
const FOLLOW_EVENTS_PER_STEP: usize = 65_536;

/// Follow the log until this node holds the lease and has folded the whole log; returns
/// `false` when following failed for good (the reason is in `shared.stopped`).
pub(super) fn follow_until_writer(shared: &Arc<Shared>, node: &Node) -> bool {
    loop {
        match try_promote(shared, node) {
            Ok(true) => return true,
            Ok(false) => {}
            Err(reason) => {
                stop(shared, reason);
                return false;
            }
        }
        match catch_up(shared, node) {
            Ok(FOLLOW_EVENTS_PER_STEP..) => continue,
            Ok(_) => {}
            Err(reason) if reason.starts_with("corrupt") => {
                stop(shared, format!("following stopped: {reason}"));
                return false;
            }
            Err(reason) => tracing::warn!(%reason, "cannot follow the log"),
        }
        if let Err(error) = node.lease.wait_for_append(FOLLOW_POLL) {
            tracing::warn!(%error, "cannot listen for appends");
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}

/// Take the lease if it is free and, once taken, fold the rest of the log and become the
/// writer: true when this node writes now. An error is fatal to the node's writing (it holds
/// the lease but cannot fold the log).
pub(super) fn try_promote(shared: &Arc<Shared>, node: &Node) -> Result<bool, String> {
    if node.writer.load(Ordering::Acquire) {
        return Ok(true);
    }
    match node.lease.try_take_lease(Some(&node.advertise)) {
        Ok(true) => {}
        Ok(false) => return Ok(false),
        Err(error) => {
            tracing::warn!(%error, "cannot ask for the write lease");
            return Ok(false);
        }
    }
    // The old writer is gone: fold everything it acknowledged before writing.
    loop {
        match catch_up(shared, node) {
            Ok(0) => break,
            Ok(_) => {}
            Err(reason) => return Err(format!("cannot fold the log before writing: {reason}")),
        }
    }
    node.writer.store(true, Ordering::Release);
    tracing::info!(head = shared.store.head(), "this node writes now");
    Ok(true)
}

/// Fold the events after the state's head (up to [`FOLLOW_EVENTS_PER_STEP`]), read outside
/// the state's lock; returns how many.
fn catch_up(shared: &Arc<Shared>, node: &Node) -> Result<usize, String> {
    if let Ok(head) = node.lease.log_head() {
        node.log_head.fetch_max(head, Ordering::AcqRel);
    }
    let after = shared
        .world
        .read()
        .map_err(|_| "the state lock is poisoned".to_string())?
        .head;
    let mut read: Vec<EncodedEvent> = Vec::new();
    shared
        .store
        .scan(after, &mut |event| {
            read.push(event);
            read.len() < FOLLOW_EVENTS_PER_STEP
        })
        .map_err(|e| e.to_string())?;
    if read.is_empty() {
        return Ok(0);
    }
    let mut world = shared
        .world
        .write()
        .map_err(|_| "the state lock is poisoned".to_string())?;
    for event in &read {
        world
            .follow(event.borrowed())
            .map_err(|e| format!("corrupt log: {e}"))?;
    }
    publish_keys(shared, &world);
    let head = world.head;
    drop(world);
    node.log_head.fetch_max(head, Ordering::AcqRel);
    shared.head_watch.send_replace(head);
    Ok(read.len())
}

fn stop(shared: &Shared, reason: String) {
    tracing::error!(%reason, "this node stops following the log");
    if let Ok(mut stopped) = shared.stopped.lock() {
        *stopped = Some(reason);
    }
}
