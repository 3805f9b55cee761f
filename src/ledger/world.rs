//! The folded state of every tenant ([`World`]): how it is rebuilt from the log, and how one
//! event, or one decided request, changes it. [`World::apply`] is the only place the state
//! changes; the writer, the replay and the snapshots all go through it.

use super::{ExecError, KeyGrant, Request, Written};
use crate::store::{EncodedEvent, Error as StoreError, EventStore};
use chrono::Utc;
use events::{
    decide_as, evolve, Command, CommandId, Context, Envelope, Event, EventHash, KeyId, Tenant,
    TenantId,
};
use std::collections::HashMap;
use std::sync::Arc;

/// A map keyed by tenant: hashed with foldhash (randomly seeded, as std's `RandomState`), which
/// costs a fraction of std's SipHash on a 16-byte id; a replay looks up five of these maps for
/// every event.
pub type TenantMap<V> = HashMap<TenantId, V, foldhash::fast::RandomState>;

/// A tenant's version after the last event of each `recorded_at`, in time order.
pub type Timeline = Vec<(chrono::DateTime<Utc>, u64)>;

/// Timelines in a snapshot: instants as microseconds since the epoch (`recorded_at` has no
/// finer part), not RFC 3339 text — a 10 M-event log holds millions of them, and parsing them
/// back was an eighth of a start-up from a snapshot.
mod timeline_micros {
    use super::{Arc, TenantMap, Timeline};
    use serde::de::Error as _;
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        timelines: &TenantMap<Arc<Timeline>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(timelines.len()))?;
        for (tenant, line) in timelines {
            let micros: Vec<(i64, u64)> = line
                .iter()
                .map(|(at, version)| (at.timestamp_micros(), *version))
                .collect();
            map.serialize_entry(tenant, &micros)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<TenantMap<Arc<Timeline>>, D::Error> {
        let raw = TenantMap::<Vec<(i64, u64)>>::deserialize(deserializer)?;
        raw.into_iter()
            .map(|(tenant, line)| {
                let line = line
                    .into_iter()
                    .map(|(micros, version)| {
                        chrono::DateTime::from_timestamp_micros(micros)
                            .map(|at| (at, version))
                            .ok_or_else(|| D::Error::custom("an instant out of range"))
                    })
                    .collect::<Result<Timeline, _>>()?;
                Ok((tenant, Arc::new(line)))
            })
            .collect()
    }
}

/// Every tenant's state and the key index, as folded from the log.
/// Serialisable for start-up snapshots ([`crate::ledger::snapshots`]).
/// Everything per tenant is behind an `Arc`: a snapshot copies the world in the time it takes
/// to copy the pointers (and the key and idempotency indexes), and serialises the copy while
/// the writer goes on; what the writer changes meanwhile is cloned once, on its first change.
#[derive(Clone, Default, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct World {
    pub tenants: TenantMap<Arc<Tenant>>,
    /// Token hash → live key.
    pub keys: HashMap<[u8; 32], KeyGrant>,
    /// Commands sent with an `Idempotency-Key`, recently.
    pub idempotency: crate::idempotency::Index,
    /// Billing figures per tenant, folded from the same events.
    pub billing: TenantMap<Arc<projections::Billing>>,
    /// Per tenant, its version after the last event of each `recorded_at` (one entry per
    /// group commit that touched it): which version an as-of instant means, by binary search.
    #[serde(with = "timeline_micros")]
    pub timelines: TenantMap<Arc<Timeline>>,
    /// Per tenant, its usage at every instant its events were recorded: `usage?at=` without
    /// folding a past state.
    pub usage_history: TenantMap<Arc<projections::UsageHistory>>,
    /// Per tenant, its groups, users and their licences at every version, compactly: as-of
    /// group state and entitlements without folding a past state.
    pub past: TenantMap<Arc<projections::PastIndex>>,
    /// Sequence of the last event folded.
    pub head: u64,
    /// The latest `recorded_at` folded: the writer never stamps an earlier one, so months
    /// and as-of queries stay consistent even if the server clock steps back.
    pub last_recorded_at: Option<chrono::DateTime<Utc>>,
}

impl World {
    /// Replay the whole log from scratch, checking sequences and every tenant's hash chain.
    pub fn load(store: &dyn EventStore) -> Result<World, StoreError> {
        World::load_observed(store, &mut |_| {})
    }

    /// [`World::load`], telling `progress` each sequence read.
    pub fn load_observed(
        store: &dyn EventStore,
        progress: &mut dyn FnMut(u64),
    ) -> Result<World, StoreError> {
        let mut world = World::default();
        world.fold_log(store, 0, progress)?;
        world.shrink_to_fit();
        Ok(world)
    }

    /// Give back the room the per-tenant histories grew into while folding.
    pub(super) fn shrink_to_fit(&mut self) {
        for line in self.timelines.values_mut() {
            Arc::make_mut(line).shrink_to_fit();
        }
        for history in self.usage_history.values_mut() {
            Arc::make_mut(history).shrink_to_fit();
        }
        for index in self.past.values_mut() {
            Arc::make_mut(index).shrink_to_fit();
        }
    }
    /// Fold one checked envelope.
    pub(super) fn apply(&mut self, envelope: &Envelope, hash: EventHash) {
        self.apply_to_tenant(envelope, hash);
        for effect in SharedEffect::of(envelope) {
            self.apply_shared(effect);
        }
        self.head = envelope.seq;
    }

    /// What one checked envelope changes in its tenant's own state and projections: all but
    /// the indexes every tenant shares ([`SharedEffect`]) and the head.
    pub(super) fn apply_to_tenant(&mut self, envelope: &Envelope, hash: EventHash) {
        let tenant = Arc::make_mut(
            self.tenants
                .entry(envelope.tenant)
                .or_insert_with(|| Arc::new(Tenant::empty(envelope.tenant))),
        );
        evolve(tenant, &envelope.event, envelope.version);
        tenant.last_hash = hash;
        Arc::make_mut(self.usage_history.entry(envelope.tenant).or_default()).apply(
            envelope.recorded_at,
            &envelope.event,
            tenant,
        );
        Arc::make_mut(self.past.entry(envelope.tenant).or_default()).apply(
            envelope.version,
            &envelope.event,
            tenant,
        );
        let line = Arc::make_mut(self.timelines.entry(envelope.tenant).or_default());
        match line.last_mut() {
            Some((recorded_at, version)) if *recorded_at == envelope.recorded_at => {
                *version = envelope.version;
            }
            _ => line.push((envelope.recorded_at, envelope.version)),
        }
        Arc::make_mut(self.billing.entry(envelope.tenant).or_default()).apply(envelope, hash);
        self.last_recorded_at = Some(
            self.last_recorded_at
                .map_or(envelope.recorded_at, |last| last.max(envelope.recorded_at)),
        );
    }

    pub(super) fn apply_shared(&mut self, effect: SharedEffect) {
        match effect {
            SharedEffect::KeyIssued { token_hash, grant } => {
                self.keys.insert(token_hash, grant);
            }
            SharedEffect::KeyRevoked(key) => self.keys.retain(|_, grant| grant.key != key),
            SharedEffect::Keyed(keyed) => self.idempotency.observe_keyed(keyed),
        }
    }
}

/// What an event changes in the indexes every tenant shares: the key index and the
/// idempotency index. Both depend on the order of events across tenants, so a replay that
/// folds tenants apart applies these afterwards, in sequence order.
#[derive(Clone, Copy, Debug)]
pub(super) enum SharedEffect {
    KeyIssued {
        token_hash: [u8; 32],
        grant: KeyGrant,
    },
    KeyRevoked(KeyId),
    Keyed(crate::idempotency::Keyed),
}

impl SharedEffect {
    /// In the order they apply: the key index's change, then the idempotency index's.
    pub(super) fn of(envelope: &Envelope) -> impl Iterator<Item = SharedEffect> {
        let key = match &envelope.event {
            Event::ApiKeyIssued { .. } | Event::ScopedApiKeyIssued { .. } => envelope
                .event
                .issued_key()
                .map(|issued| SharedEffect::KeyIssued {
                    token_hash: issued.token_hash,
                    grant: KeyGrant {
                        tenant: envelope.tenant,
                        key: issued.key,
                        role: issued.role,
                        group: issued.group,
                    },
                }),
            Event::ApiKeyRevoked { key } => Some(SharedEffect::KeyRevoked(*key)),
            _ => None,
        };
        let keyed = crate::idempotency::Keyed::of(envelope).map(SharedEffect::Keyed);
        key.into_iter().chain(keyed)
    }
}

impl World {
    /// Decide one request against the current state at `now`; on success fold its events
    /// and push their encodings onto `encoded`, for the caller to append. The writer's one step,
    /// also used by tools that build logs without a server.
    pub fn decide_into(
        &mut self,
        request: &Request,
        command_id: CommandId,
        now: chrono::DateTime<Utc>,
        encoded: &mut Vec<EncodedEvent>,
    ) -> Result<Written, ExecError> {
        let world = self;
        let empty;
        let tenant = match world.tenants.get(&request.tenant) {
            Some(t) => t,
            None if matches!(request.command, Command::CreateTenant { .. }) => {
                empty = Tenant::empty(request.tenant);
                &empty
            }
            None => return Err(ExecError::TenantNotFound),
        };
        if let Some(expected) = request.expected_version {
            if expected != tenant.version {
                return Err(ExecError::VersionMismatch {
                    expected,
                    actual: tenant.version,
                });
            }
        }
        let ctx = Context { now, command_id };
        let produced = decide_as(tenant, &request.command, &ctx, request.actor.scope)?;
        let mut version = tenant.version;
        let mut prev_hash = tenant.last_hash;
        for event in &produced {
            version += 1;
            let envelope = Envelope {
                seq: world.head + 1,
                tenant: request.tenant,
                version,
                recorded_at: now,
                actor: request.actor.id.clone(),
                reason: request.actor.reason.clone(),
                command_id,
                prev_hash,
                event: event.clone(),
            };
            let bytes = envelope.encode();
            let hash = Envelope::hash_of(&bytes);
            world.apply(&envelope, hash);
            prev_hash = hash;
            encoded.push(EncodedEvent {
                seq: envelope.seq,
                tenant: request.tenant,
                bytes,
            });
        }
        Ok(Written {
            seq: world.head,
            version,
            events: produced,
            replayed: false,
            cost: None,
        })
    }
}
