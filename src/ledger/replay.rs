//! Replaying the log into a [`World`], with every check of [`World::load`], on every core.
//!
//! Tenants never read each other's state, so their events fold apart: this thread reads the
//! log and checks that sequences follow each other, and hands each tenant's events, in order,
//! to one of a few folder threads (a tenant keeps its folder; new tenants are dealt out in
//! turn as they first appear). A folder decodes and hashes its events, checks their tenant
//! versions and hash chains, and folds them into its own part of the world. What an event
//! changes in the indexes all tenants share (API keys, idempotency) depends on the order of
//! events across tenants, so folders only collect it, and it is applied here afterwards in
//! sequence order. The world that comes out equals a fold of the events one by one.

use super::world::{SharedEffect, TenantMap};
use super::World;
use crate::store::{Error as StoreError, EventRef, EventStore};
use events::{Envelope, EventHash, TenantId};
use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, Receiver};

/// Events per chunk handed from the log reader to a folder.
const CHUNK_EVENTS: usize = 1024;
/// Chunks the log reader may read ahead of each folder.
const CHUNKS_AHEAD: usize = 16;
/// Folder threads at most.
const FOLDERS_MAX: usize = 8;

/// A folder per core and one more, so that a folder holding a large tenant does not leave a
/// core idle while the others wait for their chunks.
fn folder_count() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |cores| cores.get())
        .saturating_add(1)
        .clamp(2, FOLDERS_MAX)
}

/// Stored events for one folder, copied out of their records into one buffer.
struct Chunk {
    bytes: Vec<u8>,
    /// Sequence, tenant and the end of the event's bytes in `bytes`, in sequence order.
    events: Vec<(u64, TenantId, usize)>,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            bytes: Vec::with_capacity(CHUNK_EVENTS * 256),
            events: Vec::with_capacity(CHUNK_EVENTS),
        }
    }
}

/// Which folder each tenant's events go to.
struct Owners {
    of: HashMap<TenantId, usize>,
    folders: usize,
}

impl Owners {
    fn folder_of(&mut self, tenant: TenantId) -> usize {
        let next = self.of.len() % self.folders;
        *self.of.entry(tenant).or_insert(next)
    }

    /// Move every entry of the map `field` picks from `world` into the same map of its
    /// tenant's folder's part.
    fn deal<V>(
        &mut self,
        world: &mut World,
        parts: &mut [World],
        field: fn(&mut World) -> &mut TenantMap<V>,
    ) {
        for (tenant, value) in field(world).drain() {
            field(&mut parts[self.folder_of(tenant)]).insert(tenant, value);
        }
    }
}

/// What one folder did: its tenants' state and projections, the shared effects of their
/// events with each one's sequence, and the event it could not fold, if one.
struct Folded {
    part: World,
    shared: Vec<(u64, SharedEffect)>,
    failure: Option<StoreError>,
}

fn fold_chunks(mut part: World, chunks: Receiver<Chunk>) -> Folded {
    let mut shared = Vec::new();
    for chunk in chunks {
        let mut start = 0;
        for &(seq, tenant, end) in &chunk.events {
            let stored = EventRef {
                seq,
                tenant,
                bytes: &chunk.bytes[start..end],
            };
            start = end;
            match part.fold_stored(stored) {
                Ok(envelope) => shared.extend(SharedEffect::of(&envelope).map(|e| (seq, e))),
                // Returning drops the receiver, which stops the reader.
                Err(failure) => {
                    return Folded {
                        part,
                        shared,
                        failure: Some(failure),
                    }
                }
            }
        }
    }
    Folded {
        part,
        shared,
        failure: None,
    }
}

fn seq_of(error: &StoreError) -> u64 {
    match error {
        StoreError::Corrupt { seq, .. } => *seq,
        _ => u64::MAX,
    }
}

impl World {
    /// Fold every event after sequence `after` (the world's head), with every check of
    /// [`World::load`], telling `progress` each sequence read. See the module documentation.
    pub(super) fn fold_log(
        &mut self,
        store: &dyn EventStore,
        after: u64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), StoreError> {
        let _hold = crate::allocator::HoldFreedMemory::start();
        let folders = folder_count();
        let mut owners = Owners {
            of: HashMap::new(),
            folders,
        };
        let mut parts: Vec<World> = (0..folders).map(|_| World::default()).collect();
        owners.deal(self, &mut parts, |w| &mut w.tenants);
        owners.deal(self, &mut parts, |w| &mut w.billing);
        owners.deal(self, &mut parts, |w| &mut w.timelines);
        owners.deal(self, &mut parts, |w| &mut w.usage_history);
        owners.deal(self, &mut parts, |w| &mut w.past);
        let mut expected = after + 1;
        let (scanned, gap, folded) = std::thread::scope(|scope| {
            let mut senders = Vec::with_capacity(folders);
            let mut folders_running = Vec::with_capacity(folders);
            for part in parts {
                let (sender, chunks) = sync_channel::<Chunk>(CHUNKS_AHEAD);
                senders.push(sender);
                folders_running.push(scope.spawn(move || fold_chunks(part, chunks)));
            }
            let mut chunks: Vec<Chunk> = (0..folders).map(|_| Chunk::new()).collect();
            let mut gap = None;
            let scanned = store.scan_ref(after, &mut |stored| {
                if stored.seq != expected {
                    gap = Some(StoreError::Corrupt {
                        seq: stored.seq,
                        reason: format!("expected sequence {expected}"),
                    });
                    return false;
                }
                expected += 1;
                progress(stored.seq);
                let folder = owners.folder_of(stored.tenant);
                let chunk = &mut chunks[folder];
                chunk.bytes.extend_from_slice(stored.bytes);
                chunk
                    .events
                    .push((stored.seq, stored.tenant, chunk.bytes.len()));
                if chunk.events.len() < CHUNK_EVENTS {
                    return true;
                }
                let full = std::mem::replace(chunk, Chunk::new());
                // The folder stopped (a corrupt event): stop reading.
                senders[folder].send(full).is_ok()
            });
            for (chunk, sender) in chunks.into_iter().zip(senders) {
                if !chunk.events.is_empty() {
                    let _ = sender.send(chunk);
                }
            }
            let folded: Vec<_> = folders_running.into_iter().map(|f| f.join()).collect();
            (scanned, gap, folded)
        });
        let mut failures: Vec<StoreError> = gap.into_iter().collect();
        let mut shared = Vec::new();
        for outcome in folded {
            let Ok(Folded {
                part,
                shared: effects,
                failure,
            }) = outcome
            else {
                return Err(StoreError::Io("a log folder panicked".into()));
            };
            self.tenants.extend(part.tenants);
            self.billing.extend(part.billing);
            self.timelines.extend(part.timelines);
            self.usage_history.extend(part.usage_history);
            self.past.extend(part.past);
            self.last_recorded_at = self.last_recorded_at.max(part.last_recorded_at);
            shared.extend(effects);
            failures.extend(failure);
        }
        // The first event that could not be folded: every event before it folded.
        if let Some(first) = failures.into_iter().min_by_key(seq_of) {
            return Err(first);
        }
        scanned?;
        // Stable: an event's effects keep their order.
        shared.sort_by_key(|(seq, _)| *seq);
        for (_, effect) in shared {
            self.apply_shared(effect);
        }
        self.head = expected - 1;
        Ok(())
    }

    /// Decode, hash and check one stored event of a tenant this part holds, and fold it into
    /// the tenant; answers the envelope, for its shared effects.
    /// Fold the event after the head, with every check of a replay: a follower's step.
    pub(super) fn follow(&mut self, stored: EventRef<'_>) -> Result<(), StoreError> {
        if stored.seq != self.head + 1 {
            return Err(StoreError::Corrupt {
                seq: self.head + 1,
                reason: format!("sequence gap: found {}", stored.seq),
            });
        }
        let envelope = self.fold_stored(stored)?;
        for effect in SharedEffect::of(&envelope) {
            self.apply_shared(effect);
        }
        self.head = stored.seq;
        Ok(())
    }

    fn fold_stored(&mut self, stored: EventRef<'_>) -> Result<Envelope, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            seq: stored.seq,
            reason,
        };
        let envelope = Envelope::decode(stored.bytes).map_err(|e| corrupt(e.to_string()))?;
        if envelope.seq != stored.seq || envelope.tenant != stored.tenant {
            return Err(corrupt("envelope disagrees with its record".into()));
        }
        let (version, last_hash) = self
            .tenants
            .get(&envelope.tenant)
            .map_or((0, EventHash::default()), |t| (t.version, t.last_hash));
        if envelope.version != version + 1 {
            return Err(corrupt(format!(
                "tenant version {} follows {}",
                envelope.version, version
            )));
        }
        if envelope.prev_hash != last_hash {
            return Err(corrupt("hash chain broken".into()));
        }
        self.apply_to_tenant(&envelope, Envelope::hash_of(stored.bytes));
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::request;
    use super::*;
    use crate::store::memory::MemoryStore;
    use chrono::{Duration, TimeZone, Utc};
    use events::{Command, CommandId, KeyId, Role};

    fn run(
        world: &mut World,
        store: &MemoryStore,
        tenant: TenantId,
        command: Command,
        at: i64,
        key: Option<&str>,
    ) {
        let command_id = key.map_or_else(CommandId::new_random, |k| {
            crate::idempotency::command_id(tenant, k, &[7; 32])
        });
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(at);
        let mut encoded = Vec::new();
        world
            .decide_into(&request(tenant, command), command_id, now, &mut encoded)
            .unwrap();
        store.append(&encoded).unwrap();
    }

    /// Seven tenants (more than there are folders) whose events interleave; API keys issued
    /// in some and revoked in others' turns; over twelve days, keyed commands reusing their
    /// keys after the window, enough for the idempotency index to prune, so its content
    /// depends on the order the tenants' events are noted in. Also: the world halfway.
    fn interleaved_log() -> (MemoryStore, World, World) {
        let store = MemoryStore::default();
        let mut world = World::default();
        let tenants: Vec<TenantId> = (0..7).map(|_| TenantId::new_random()).collect();
        let mut keys = Vec::new();
        for (i, tenant) in tenants.iter().enumerate() {
            let create = Command::CreateTenant {
                name: format!("tenant {i}"),
                billing_timezone: "UTC".into(),
                currency: "EUR".into(),
            };
            run(&mut world, &store, *tenant, create, 0, None);
            let key = KeyId::new_random();
            let issue = Command::IssueKey {
                key,
                name: "ops".into(),
                role: Role::Operator,
                token_hash: [i as u8; 32],
                group: None,
            };
            run(&mut world, &store, *tenant, issue, 0, None);
            keys.push(key);
        }
        let mut halfway = World::default();
        for step in 0..6_000i64 {
            let tenant = tenants[(step * 5 % 7) as usize];
            let provision = Command::ProvisionLicenses {
                license_type: "phone_system".into(),
                quantity: 1,
            };
            // Each key comes back to its tenant after 2 100 minutes, past the window.
            let key = format!("k{}", step % 700);
            run(&mut world, &store, tenant, provision, step * 3, Some(&key));
            if step % 1_000 == 999 {
                let i = (step / 1_000) as usize;
                run(
                    &mut world,
                    &store,
                    tenants[i],
                    Command::RevokeKey { key: keys[i] },
                    step * 3,
                    None,
                );
            }
            if step == 3_000 {
                halfway = world.clone();
            }
        }
        (store, world, halfway)
    }

    #[test]
    fn a_replay_folding_tenants_apart_equals_the_world_folded_event_by_event() {
        let (store, live, halfway) = interleaved_log();
        assert_eq!(live.keys.len(), 1, "six of seven keys revoked");
        let replayed = World::load(&store).unwrap();
        assert!(replayed == live, "the replay differs from the live world");
        let resumed = World::load_after_snapshot(&store, halfway, &mut |_| {}).unwrap();
        assert!(resumed == live, "the replay after a snapshot differs");
    }

    #[test]
    fn a_replay_names_the_first_corrupt_event_whichever_folder_meets_its_own_first() {
        let (store, _, _) = interleaved_log();
        let mut events = store.events();
        // Events of tenants 4 and 6, which fold in different folders: the earlier is named,
        // whichever folder reaches its own first.
        for seq in [40u64, 9] {
            events[seq as usize - 1].bytes = vec![0xff; 8];
        }
        match World::load(&MemoryStore::with_events(events)) {
            Err(StoreError::Corrupt { seq, .. }) => assert_eq!(seq, 9),
            other => panic!("expected corruption at 9, got {other:?}"),
        }
    }

    #[test]
    fn a_replay_refuses_a_log_with_a_missing_sequence() {
        let (store, _, _) = interleaved_log();
        let mut events = store.events();
        events.remove(99);
        match World::load(&MemoryStore::with_events(events)) {
            Err(StoreError::Corrupt { seq, reason }) => {
                assert_eq!(seq, 101);
                assert!(reason.contains("expected sequence 100"), "{reason}");
            }
            other => panic!("expected a gap at 100, got {other:?}"),
        }
    }
}
