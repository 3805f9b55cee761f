//! `Idempotency-Key`: the same key with the same request returns the first result and appends
//! nothing; with a different request it is a conflict.
//!
//! Nothing besides the events is stored. A keyed command's `command_id` is a version-8 UUID
//! built from the tenant and key (56 bits) and the request's fingerprint (the rest), so the log
//! itself says which key a command used and what it asked; the index is rebuilt on start-up
//! and survives restarts. Keys are remembered for [`IDEMPOTENCY_WINDOW_HOURS`].

use chrono::{DateTime, Duration, Utc};
use events::{CommandId, Envelope, TenantId};
use std::collections::HashMap;
use uuid::Uuid;

/// How long a key is remembered after its command.
pub const IDEMPOTENCY_WINDOW_HOURS: i64 = 24;
/// Longest key accepted, in bytes.
pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 200;

type Slot = [u8; 7];

fn key_hash(tenant: TenantId, key: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"ledger idempotency key\0");
    hasher.update(tenant.as_uuid().as_bytes());
    hasher.update(key.as_bytes());
    *hasher.finalize().as_bytes()
}

/// The command id of a keyed request: tenant+key in bytes 0..6 and 7, the request's
/// fingerprint in the rest (version and variant bits aside).
pub fn command_id(tenant: TenantId, key: &str, fingerprint: &[u8; 32]) -> CommandId {
    let k = key_hash(tenant, key);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&k[..6]);
    bytes[7] = k[6];
    bytes[6] = fingerprint[0];
    bytes[8..].copy_from_slice(&fingerprint[1..9]);
    CommandId(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

fn slot(id: CommandId) -> Option<Slot> {
    let uuid = id.as_uuid();
    if uuid.get_version_num() != 8 {
        return None;
    }
    let b = uuid.as_bytes();
    Some([b[0], b[1], b[2], b[3], b[4], b[5], b[7]])
}

/// An id the server chooses for a keyed request (a user, group or tenant id), the same on
/// every retry; random without a key.
pub fn chosen_id(tenant: TenantId, key: Option<&str>, purpose: &str) -> Uuid {
    match key {
        None => Uuid::new_v4(),
        Some(key) => {
            let mut hasher = blake3::Hasher::new();
            hasher.update(&key_hash(tenant, key));
            hasher.update(purpose.as_bytes());
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
            uuid::Builder::from_random_bytes(bytes).into_uuid()
        }
    }
}

/// The events a keyed command produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub command_id: CommandId,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Tenant version after the command.
    pub version: u64,
    pub recorded_at: DateTime<Utc>,
}

/// What to do with a keyed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The key is new: run the command.
    Fresh,
    /// The same request ran before: answer with its result.
    Replay(Record),
    /// The key ran with a different request.
    Mismatch,
}

/// What the index keeps of one stored event of a keyed command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyed {
    tenant: TenantId,
    slot: Slot,
    command_id: CommandId,
    seq: u64,
    version: u64,
    recorded_at: DateTime<Utc>,
}

impl Keyed {
    /// `None` for an event of a command sent without an `Idempotency-Key`.
    pub fn of(envelope: &Envelope) -> Option<Keyed> {
        Some(Keyed {
            tenant: envelope.tenant,
            slot: slot(envelope.command_id)?,
            command_id: envelope.command_id,
            seq: envelope.seq,
            version: envelope.version,
            recorded_at: envelope.recorded_at,
        })
    }
}

/// Keyed commands of the last [`IDEMPOTENCY_WINDOW_HOURS`], per tenant and key.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Index {
    records: HashMap<(TenantId, Slot), Record>,
    inserted_since_prune: usize,
}

impl Index {
    /// Note one stored event.
    pub fn observe(&mut self, envelope: &Envelope) {
        if let Some(keyed) = Keyed::of(envelope) {
            self.observe_keyed(keyed);
        }
    }

    /// Note one stored event of a keyed command. The index depends on the order events are
    /// noted in (it prunes as it grows): note them in sequence order.
    pub fn observe_keyed(&mut self, keyed: Keyed) {
        let record = Record {
            command_id: keyed.command_id,
            first_seq: keyed.seq,
            last_seq: keyed.seq,
            version: keyed.version,
            recorded_at: keyed.recorded_at,
        };
        let entry = self
            .records
            .entry((keyed.tenant, keyed.slot))
            .or_insert(record);
        if entry.command_id == keyed.command_id {
            entry.last_seq = keyed.seq;
            entry.version = keyed.version;
        } else {
            // The same key reused after its window: the newer command owns it.
            *entry = record;
        }
        self.inserted_since_prune += 1;
        if self.inserted_since_prune > 4096 && self.inserted_since_prune > self.records.len() {
            self.prune(keyed.recorded_at);
        }
    }

    /// What a keyed request with `command_id` should do at `now`.
    pub fn lookup(&self, tenant: TenantId, command_id: CommandId, now: DateTime<Utc>) -> Lookup {
        let Some(slot) = slot(command_id) else {
            return Lookup::Fresh;
        };
        match self.records.get(&(tenant, slot)) {
            Some(r) if r.recorded_at + Duration::hours(IDEMPOTENCY_WINDOW_HOURS) < now => {
                Lookup::Fresh
            }
            Some(r) if r.command_id == command_id => Lookup::Replay(*r),
            Some(_) => Lookup::Mismatch,
            None => Lookup::Fresh,
        }
    }

    /// Forget keys older than the window.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let oldest = now - Duration::hours(IDEMPOTENCY_WINDOW_HOURS);
        self.records.retain(|_, r| r.recorded_at >= oldest);
        self.inserted_since_prune = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_and_request_give_the_same_command_id_and_a_different_request_does_not() {
        let tenant = TenantId::new_random();
        let a = command_id(tenant, "k1", &[1; 32]);
        assert_eq!(a, command_id(tenant, "k1", &[1; 32]));
        let b = command_id(tenant, "k1", &[2; 32]);
        assert_ne!(a, b);
        assert_eq!(slot(a), slot(b));
        assert_ne!(slot(a), slot(command_id(tenant, "k2", &[1; 32])));
        assert_ne!(
            slot(a),
            slot(command_id(TenantId::new_random(), "k1", &[1; 32]))
        );
        assert_eq!(slot(CommandId::new_random()), None);
    }
}
