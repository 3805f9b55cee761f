//! Start-up snapshots of the [`World`]: when the writer takes one ([`SnapshotPolicy`]), how
//! the state is encoded and checked, and how a start-up uses one (the snapshot plus the log
//! after it, only when the snapshot belongs to this log).
//!
//! A snapshot is a cache, never the source of truth. It names the sequence it was folded
//! through and carries the hash chain's head for every tenant; on start it is used only if its
//! checksum holds, its format is this binary's, and the log's event at that sequence hashes to
//! what the snapshot says. Anything else is logged and the log is replayed from scratch.
//! `ledger verify` checks that the snapshot plus the events after it equals a full replay.
//!
//! Encoding: `[magic 8][format u32 LE][head u64 LE][blake3 of body, 32][body]`, the body being
//! bincode of [`World`]. The file itself (written whole or not at all) is the store's:
//! [`crate::store::snapshot`].

use super::{Shared, World};
use crate::store::{snapshot as snapshot_file, Error as StoreError, EventStore};
use bincode::Options;
use events::Envelope;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// Where and how often the writer snapshots the state.
#[derive(Clone, Debug)]
pub struct SnapshotPolicy {
    /// The data directory (the snapshot file lives beside the log).
    pub dir: std::path::PathBuf,
    /// Events appended between two snapshots.
    pub every_events: u64,
}

/// Default of [`SnapshotPolicy::every_events`].
pub const SNAPSHOT_EVERY_EVENTS_DEFAULT: u64 = 1_000_000;

impl World {
    /// Start from `snapshot` (see [`crate::ledger::snapshots`]) and fold the events after it,
    /// with every check of [`World::load`]. Refused, naming why, when the snapshot does not
    /// belong to this log: it is beyond the log's head, or the log's event at its sequence
    /// does not hash to the chain head the snapshot holds for that event's tenant.
    pub fn load_after_snapshot(
        store: &dyn EventStore,
        snapshot: World,
        progress: &mut dyn FnMut(u64),
    ) -> Result<World, String> {
        let head = snapshot.head;
        if head > store.head() {
            return Err(format!(
                "the snapshot is at sequence {head}, beyond the log's {}",
                store.head()
            ));
        }
        if head > 0 {
            let mut found = None;
            store
                .scan_ref(head - 1, &mut |event| {
                    found = Some((event.tenant, Envelope::hash_of(event.bytes)));
                    false
                })
                .map_err(|e| e.to_string())?;
            let chained = found.and_then(|(tenant, hash)| {
                let held = snapshot.tenants.get(&tenant)?.last_hash;
                Some(held == hash)
            });
            if chained != Some(true) {
                return Err(format!(
                    "the snapshot does not match the log's event at sequence {head}"
                ));
            }
        }
        let mut world = snapshot;
        world
            .fold_log(store, head, progress)
            .map_err(|e| e.to_string())?;
        world.shrink_to_fit();
        Ok(world)
    }

    /// The state on start: from the snapshot in `dir` when it is sound and belongs to this
    /// log, otherwise (logged) from a full replay. Also says the sequence of the snapshot
    /// used (0: none).
    pub fn load_from_dir(
        store: &dyn EventStore,
        dir: &std::path::Path,
    ) -> Result<(World, u64), StoreError> {
        // Decoding a snapshot builds the state as a replay does.
        let _hold = crate::allocator::HoldFreedMemory::start();
        match read(dir) {
            Ok(Some(snapshot)) => {
                let at = snapshot.head;
                match World::load_after_snapshot(store, snapshot, &mut |_| {}) {
                    Ok(world) => {
                        tracing::info!(
                            snapshot = at,
                            head = world.head,
                            "state read from the snapshot and the log after it"
                        );
                        return Ok((world, at));
                    }
                    Err(reason) => {
                        tracing::warn!(%reason, "snapshot not used; replaying the whole log")
                    }
                }
            }
            Ok(None) => {}
            Err(reason) => tracing::warn!(%reason, "snapshot not used; replaying the whole log"),
        }
        Ok((World::load(store)?, 0))
    }
}

/// Start a snapshot in the background when the log has grown enough since the last one. The
/// snapshot thread copies the state under the read lock (pointers to the tenants and their
/// billing, and the small indexes: the writer waits only that long), then serialises the copy
/// and writes and fsyncs the file outside it. A tenant the writer changes while the copy is
/// alive is cloned on its first change.
pub(super) fn maybe_snapshot(shared: &Arc<Shared>) {
    use std::sync::atomic::Ordering;
    let Some(policy) = shared.snapshots.clone() else {
        return;
    };
    let head = shared.store.head();
    let last = shared.snapshot_head.load(Ordering::Acquire);
    if head < last.saturating_add(policy.every_events.max(1)) {
        return;
    }
    if shared.snapshot_running.swap(true, Ordering::AcqRel) {
        return;
    }
    let snapshotter = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("ledger-snapshot".into())
        .spawn(move || {
            if let Err(reason) = write_snapshot(&snapshotter, &policy) {
                tracing::warn!(%reason, "snapshot not written; the log is intact");
            }
            snapshotter.snapshot_running.store(false, Ordering::Release);
        });
    if spawned.is_err() {
        shared.snapshot_running.store(false, Ordering::Release);
    }
}

/// Copy the state under the read lock (tenants and billing are shared, not copied), then
/// serialise and write the copy outside it; the sequence written and the file's size.
fn write_snapshot(shared: &Shared, policy: &SnapshotPolicy) -> Result<(u64, usize), String> {
    use std::sync::atomic::Ordering;
    let started = std::time::Instant::now();
    let copied = shared
        .world
        .read()
        .map(|world| World::clone(&world))
        .map_err(|_| "the state lock is poisoned".to_string())?;
    let held = started.elapsed();
    let bytes = encode(&copied)?;
    snapshot_file::write(&policy.dir, &bytes)?;
    shared.snapshot_head.store(copied.head, Ordering::Release);
    tracing::info!(
        head = copied.head,
        bytes = bytes.len(),
        seconds = started.elapsed().as_secs_f64(),
        state_held_seconds = held.as_secs_f64(),
        "snapshot written"
    );
    Ok((copied.head, bytes.len()))
}

/// On a clean stop, once the writer is idle: write a snapshot when the log grew since the last
/// one (and the policy writes snapshots at all), waiting for one already being written. The
/// sequence written, if one was.
pub(super) fn snapshot_on_stop(shared: &Arc<Shared>) -> Result<Option<u64>, String> {
    use std::sync::atomic::Ordering;
    let Some(policy) = shared.snapshots.clone() else {
        return Ok(None);
    };
    if policy.every_events == u64::MAX {
        return Ok(None);
    }
    while shared.snapshot_running.swap(true, Ordering::AcqRel) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let head = shared.world.read().map(|w| w.head).unwrap_or(0);
    let written = if head > shared.snapshot_head.load(Ordering::Acquire) {
        write_snapshot(shared, &policy).map(|(head, _)| Some(head))
    } else {
        Ok(None)
    };
    shared.snapshot_running.store(false, Ordering::Release);
    written
}

const MAGIC: &[u8; 8] = b"LEDGSNAP";
/// The shape of the serialised state. Bump it whenever a type inside [`World`] changes: a
/// snapshot of another format is ignored, and the log replayed.
pub const SNAPSHOT_FORMAT: u32 = 12;
/// Largest snapshot body read; a corrupt file never allocates beyond it.
pub const SNAPSHOT_BYTES_MAX: u64 = 16 << 30;
const HEADER_BYTES: usize = 8 + 4 + 8 + 32;

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(SNAPSHOT_BYTES_MAX)
}

/// The snapshot bytes of `world`.
pub fn encode(world: &World) -> Result<Vec<u8>, String> {
    let body = options()
        .serialize(world)
        .map_err(|e| format!("cannot serialise the state: {e}"))?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
    bytes.extend_from_slice(&world.head.to_le_bytes());
    bytes.extend_from_slice(blake3::hash(&body).as_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// The state in snapshot bytes, if they are whole and of this binary's format.
pub fn decode(bytes: &[u8]) -> Result<World, String> {
    decode_from(bytes)
}

/// Hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Bytes read from a snapshot at a time: the body streams from the file into the decoder, so a
/// start-up never holds the whole file in memory besides the state it decodes.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// [`decode`] from a reader: the header, then the body decoded as it streams in and hashed on
/// the way; the state is returned only if the body hashes to the header's checksum and nothing
/// follows it.
fn decode_from(reader: impl Read) -> Result<World, String> {
    let mut reader = reader;
    let mut header = [0u8; HEADER_BYTES];
    reader
        .read_exact(&mut header)
        .map_err(|_| "not a snapshot file".to_string())?;
    if &header[..8] != MAGIC {
        return Err("not a snapshot file".into());
    }
    let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if format != SNAPSHOT_FORMAT {
        return Err(format!(
            "snapshot format {format}, this binary writes {SNAPSHOT_FORMAT}"
        ));
    }
    let head = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
    let mut body = std::io::BufReader::with_capacity(
        READ_BUFFER_BYTES,
        Hashing {
            inner: reader,
            hasher: blake3::Hasher::new(),
        },
    );
    let decoded: Result<World, _> = options().deserialize_from(&mut body);
    // Whatever follows the state is hashed too: a longer body fails the checksum below.
    let rest = std::io::copy(&mut body, &mut std::io::sink())
        .map_err(|e| format!("cannot read the snapshot: {e}"))?;
    let hashing = body.into_inner();
    if hashing.hasher.finalize().as_bytes() != &header[20..52] {
        return Err("snapshot checksum mismatch".into());
    }
    let world = decoded.map_err(|e| format!("undecodable snapshot: {e}"))?;
    if rest != 0 {
        return Err(format!("{rest} bytes after the state in the snapshot"));
    }
    if world.head != head {
        return Err(format!(
            "snapshot header says sequence {head}, its state {}",
            world.head
        ));
    }
    Ok(world)
}

/// The snapshot in `dir`: `Ok(None)` when there is none, `Err` when it is unusable.
pub fn read(dir: &Path) -> Result<Option<World>, String> {
    match snapshot_file::open(dir)? {
        Some(file) => decode_from(file).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_snapshot_is_refused_not_trusted() {
        let world = World {
            head: 7,
            ..World::default()
        };
        let bytes = encode(&world).unwrap();
        assert_eq!(decode(&bytes).unwrap(), world);
        for at in [0, 9, 13, HEADER_BYTES - 1, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(decode(&damaged).is_err(), "byte {at} flipped");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
