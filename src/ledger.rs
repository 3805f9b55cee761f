//! The ledger service: the in-memory state of every tenant, rebuilt from the log on start, and
//! the single writer that group-commits commands.
//!
//! Commands queue on a channel. The writer takes every command waiting (up to
//! [`JOBS_PER_BATCH_MAX`]), decides each in order against the latest state, appends all their
//! events as one record, flushes once, and only then answers every caller. Readers share the
//! state behind a lock the writer holds while deciding and flushing, so nobody ever reads an
//! event that is not yet durable.

use crate::idempotency::Lookup;
use crate::store::{EncodedEvent, Error as StoreError, EventStore};
use chrono::Utc;
use events::{
    decide, evolve, Command, CommandId, Context, Envelope, Event, EventHash, KeyId, Rejection,
    Role, Tenant, TenantId,
};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use tokio::sync::{mpsc, oneshot};

mod replay;

/// Commands decided and flushed together at most.
pub const JOBS_PER_BATCH_MAX: usize = 1024;
/// Commands waiting for the writer before callers wait to enqueue.
pub const QUEUE_DEPTH_MAX: usize = 8192;

/// Who sent a command and why, as stored on its events.
#[derive(Clone, Debug)]
pub struct Actor {
    pub id: String,
    pub reason: Option<String>,
}

/// A command for one tenant, with its optional expected tenant version (`If-Match`).
#[derive(Clone, Debug)]
pub struct Request {
    pub tenant: TenantId,
    pub actor: Actor,
    pub expected_version: Option<u64>,
    pub command: Command,
}

/// What a successful write produced.
#[derive(Clone, Debug)]
pub struct Written {
    /// Global sequence of the last event (the head, when the command produced none).
    pub seq: u64,
    /// Tenant version after the command.
    pub version: u64,
    pub events: Vec<Event>,
    /// The answer repeats an earlier command with the same `Idempotency-Key`; nothing was
    /// appended.
    pub replayed: bool,
    /// With `preview_cost`: how the command moved this month's peak units and amount, for
    /// every type its events touched.
    pub cost: Option<std::collections::BTreeMap<events::TypeCode, CostDelta>>,
}

/// How one write moved a type's figures in the current billing month.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostDelta {
    pub peak_units_before: u64,
    pub peak_units_after: u64,
    /// Change of the month's amount, at the price in force at month end.
    pub amount_minor_delta: i64,
}

/// How a command is run besides its content.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecOptions {
    /// The command id of an `Idempotency-Key`.
    pub keyed: Option<CommandId>,
    /// Report how the write moved this month's bill.
    pub preview_cost: bool,
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    #[error("tenant not found")]
    TenantNotFound,
    #[error("tenant is at version {actual}, not {expected}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error(transparent)]
    Storage(#[from] StoreError),
    #[error("the ledger is shutting down")]
    Closed,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// A storage failure stopped the writer: no write is taken until a restart, reads go on.
    #[error("writes are stopped after a storage failure ({0}); reads still work; restart the ledger once the storage is sound")]
    WritesStopped(String),
}

/// A key's identity once its token is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyGrant {
    pub tenant: TenantId,
    pub key: KeyId,
    pub role: Role,
}

/// A tenant's version after the last event of each `recorded_at`, in time order.
pub type Timeline = Vec<(chrono::DateTime<Utc>, u64)>;

/// Timelines in a snapshot: instants as microseconds since the epoch (`recorded_at` has no
/// finer part), not RFC 3339 text — a 10 M-event log holds millions of them, and parsing them
/// back was an eighth of a start-up from a snapshot.
mod timeline_micros {
    use super::{Arc, HashMap, TenantId, Timeline};
    use serde::de::Error as _;
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        timelines: &HashMap<TenantId, Arc<Timeline>>,
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
    ) -> Result<HashMap<TenantId, Arc<Timeline>>, D::Error> {
        let raw = HashMap::<TenantId, Vec<(i64, u64)>>::deserialize(deserializer)?;
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
/// Serialisable for start-up snapshots ([`crate::store::snapshot`]).
/// Everything per tenant is behind an `Arc`: a snapshot copies the world in the time it takes
/// to copy the pointers (and the key and idempotency indexes), and serialises the copy while
/// the writer goes on; what the writer changes meanwhile is cloned once, on its first change.
#[derive(Clone, Default, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct World {
    pub tenants: HashMap<TenantId, Arc<Tenant>>,
    /// Token hash → live key.
    pub keys: HashMap<[u8; 32], KeyGrant>,
    /// Commands sent with an `Idempotency-Key`, recently.
    pub idempotency: crate::idempotency::Index,
    /// Billing figures per tenant, folded from the same events.
    pub billing: HashMap<TenantId, Arc<projections::Billing>>,
    /// Per tenant, its version after the last event of each `recorded_at` (one entry per
    /// group commit that touched it): which version an as-of instant means, by binary search.
    #[serde(with = "timeline_micros")]
    pub timelines: HashMap<TenantId, Arc<Timeline>>,
    /// Per tenant, its usage at every instant its events were recorded: `usage?at=` without
    /// folding a past state.
    pub usage_history: HashMap<TenantId, Arc<projections::UsageHistory>>,
    /// Per tenant, its groups, users and their licences at every version, compactly: as-of
    /// group state and entitlements without folding a past state.
    pub past: HashMap<TenantId, Arc<projections::PastIndex>>,
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
    fn shrink_to_fit(&mut self) {
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

    /// Start from `snapshot` (see [`crate::store::snapshot`]) and fold the events after it,
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
        match crate::store::snapshot::read(dir) {
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

    /// Fold one checked envelope.
    fn apply(&mut self, envelope: &Envelope, hash: EventHash) {
        self.apply_to_tenant(envelope, hash);
        for effect in SharedEffect::of(envelope) {
            self.apply_shared(effect);
        }
        self.head = envelope.seq;
    }

    /// What one checked envelope changes in its tenant's own state and projections: all but
    /// the indexes every tenant shares ([`SharedEffect`]) and the head.
    fn apply_to_tenant(&mut self, envelope: &Envelope, hash: EventHash) {
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

    fn apply_shared(&mut self, effect: SharedEffect) {
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
enum SharedEffect {
    KeyIssued {
        token_hash: [u8; 32],
        grant: KeyGrant,
    },
    KeyRevoked(KeyId),
    Keyed(crate::idempotency::Keyed),
}

impl SharedEffect {
    /// In the order they apply: the key index's change, then the idempotency index's.
    fn of(envelope: &Envelope) -> impl Iterator<Item = SharedEffect> {
        let key = match &envelope.event {
            Event::ApiKeyIssued {
                key,
                role,
                token_hash,
                ..
            } => Some(SharedEffect::KeyIssued {
                token_hash: *token_hash,
                grant: KeyGrant {
                    tenant: envelope.tenant,
                    key: *key,
                    role: *role,
                },
            }),
            Event::ApiKeyRevoked { key } => Some(SharedEffect::KeyRevoked(*key)),
            _ => None,
        };
        let keyed = crate::idempotency::Keyed::of(envelope).map(SharedEffect::Keyed);
        key.into_iter().chain(keyed)
    }
}

struct Job {
    request: Request,
    command_id: CommandId,
    /// The command id came from an `Idempotency-Key`.
    keyed: bool,
    preview_cost: bool,
    reply: oneshot::Sender<Result<Written, ExecError>>,
}

struct Shared {
    world: RwLock<World>,
    /// The key index of the durable log, apart from `world`: every request authenticates
    /// through it, and the writer holds `world` through each flush. Published after the flush
    /// of a batch that issued or revoked a key.
    keys: RwLock<HashMap<[u8; 32], KeyGrant>>,
    store: Arc<dyn EventStore>,
    /// Batches appended since start.
    batches: std::sync::atomic::AtomicU64,
    /// Why writes stopped, after a failed append: never retried and carried on, since what
    /// reached the disk is unknown.
    stopped: std::sync::Mutex<Option<String>>,
    past_states: PastStates,
    snapshots: Option<SnapshotPolicy>,
    /// Sequence of the last snapshot written (or found on start).
    snapshot_head: std::sync::atomic::AtomicU64,
    snapshot_running: std::sync::atomic::AtomicBool,
}

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

/// Handle to the running ledger; cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Job>,
}

impl Ledger {
    /// Rebuild the state from `store` and start the writer thread, without snapshots.
    pub fn start(store: Arc<dyn EventStore>) -> Result<Ledger, StoreError> {
        Ledger::start_with(store, None)
    }

    /// Like [`Ledger::start`], reading the state from the snapshot in the policy's directory
    /// when it is sound, and writing a new one whenever the log has grown by the policy's
    /// number of events since the last (and once on start when the log has outgrown it).
    pub fn start_with(
        store: Arc<dyn EventStore>,
        snapshots: Option<SnapshotPolicy>,
    ) -> Result<Ledger, StoreError> {
        let (world, snapshot_head) = match &snapshots {
            Some(policy) => World::load_from_dir(store.as_ref(), &policy.dir)?,
            None => (World::load(store.as_ref())?, 0),
        };
        Ledger::start_loaded(store, snapshots, world, snapshot_head)
    }

    /// Like [`Ledger::start_with`], from `world`, already rebuilt from `store` (from the
    /// snapshot at `snapshot_head`, 0 for none, and the log after it).
    pub fn start_loaded(
        store: Arc<dyn EventStore>,
        snapshots: Option<SnapshotPolicy>,
        world: World,
        snapshot_head: u64,
    ) -> Result<Ledger, StoreError> {
        let _ = crate::metrics::handle();
        tracing::info!(
            head = world.head,
            tenants = world.tenants.len(),
            "state rebuilt from the log"
        );
        let shared = Arc::new(Shared {
            keys: RwLock::new(world.keys.clone()),
            world: RwLock::new(world),
            store,
            batches: std::sync::atomic::AtomicU64::new(0),
            stopped: std::sync::Mutex::new(None),
            past_states: PastStates::default(),
            snapshots,
            snapshot_head: std::sync::atomic::AtomicU64::new(snapshot_head),
            snapshot_running: std::sync::atomic::AtomicBool::new(false),
        });
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH_MAX);
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer_loop(writer, receiver))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Ledger { shared, queue })
    }

    /// Decide, append and flush one command; answers once it is durable.
    pub async fn execute(&self, request: Request) -> Result<Written, ExecError> {
        self.execute_keyed(request, None).await
    }

    /// Like [`Ledger::execute`], with the command id of an `Idempotency-Key`
    /// ([`crate::idempotency::command_id`]): a repeat returns the first result.
    pub async fn execute_keyed(
        &self,
        request: Request,
        keyed: Option<CommandId>,
    ) -> Result<Written, ExecError> {
        let options = ExecOptions {
            keyed,
            preview_cost: false,
        };
        self.execute_with(request, options).await
    }

    /// Run a command with [`ExecOptions`].
    pub async fn execute_with(
        &self,
        request: Request,
        options: ExecOptions,
    ) -> Result<Written, ExecError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request,
            command_id: options.keyed.unwrap_or_else(CommandId::new_random),
            keyed: options.keyed.is_some(),
            preview_cost: options.preview_cost,
            reply,
        };
        self.queue.send(job).await.map_err(|_| ExecError::Closed)?;
        answer.await.map_err(|_| ExecError::Closed)?
    }

    /// Read the current state.
    pub fn read(&self) -> RwLockReadGuard<'_, World> {
        // A poisoned lock means the writer panicked mid-fold; the state is not trustworthy.
        self.shared
            .world
            .read()
            .expect("the ledger state lock is poisoned")
    }

    /// The live key whose token hashes to `hash`. Never waits for a flush in progress.
    pub fn grant(&self, hash: &[u8; 32]) -> Option<KeyGrant> {
        let keys = self.shared.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.get(hash).copied()
    }

    /// Why writes are stopped, if a storage failure stopped them.
    pub fn writes_stopped(&self) -> Option<String> {
        self.shared.stopped.lock().ok().and_then(|s| s.clone())
    }

    /// Batches appended (group commits) since start.
    pub fn batches_committed(&self) -> u64 {
        self.shared
            .batches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The store underneath, for history queries.
    pub fn store(&self) -> &dyn EventStore {
        self.shared.store.as_ref()
    }
}

fn writer_loop(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Job>) {
    maybe_snapshot(&shared);
    while let Some(first) = receiver.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < JOBS_PER_BATCH_MAX {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&shared, jobs);
        maybe_snapshot(&shared);
    }
}

/// Start a snapshot in the background when the log has grown enough since the last one. The
/// snapshot thread copies the state under the read lock (pointers to the tenants and their
/// billing, and the small indexes: the writer waits only that long), then serialises the copy
/// and writes and fsyncs the file outside it. A tenant the writer changes while the copy is
/// alive is cloned on its first change.
fn maybe_snapshot(shared: &Arc<Shared>) {
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
            let started = std::time::Instant::now();
            // Copy under the read lock (tenants and billing are shared, not copied), serialise
            // the copy outside it.
            let copied = snapshotter.world.read().map(|world| World::clone(&world));
            let held = started.elapsed();
            let encoded = match copied {
                Ok(world) => crate::store::snapshot::encode(&world).map(|b| (world.head, b)),
                Err(_) => Err("the state lock is poisoned".into()),
            };
            let written = encoded.and_then(|(head, bytes)| {
                crate::store::snapshot::write(&policy.dir, &bytes).map(|()| (head, bytes.len()))
            });
            match written {
                Ok((head, bytes)) => {
                    snapshotter.snapshot_head.store(head, Ordering::Release);
                    tracing::info!(
                        head,
                        bytes,
                        seconds = started.elapsed().as_secs_f64(),
                        state_held_seconds = held.as_secs_f64(),
                        "snapshot written"
                    );
                }
                Err(reason) => tracing::warn!(%reason, "snapshot not written; the log is intact"),
            }
            snapshotter.snapshot_running.store(false, Ordering::Release);
        });
    if spawned.is_err() {
        shared.snapshot_running.store(false, Ordering::Release);
    }
}

fn commit_batch(shared: &Shared, jobs: Vec<Job>) {
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
        return;
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
        return;
    }
    let keys_changed = outcomes.iter().any(|(_, outcome)| {
        outcome.as_ref().is_ok_and(|written| {
            !written.replayed
                && written.events.iter().any(|event| {
                    matches!(
                        event,
                        Event::ApiKeyIssued { .. } | Event::ApiKeyRevoked { .. }
                    )
                })
        })
    });
    if keys_changed {
        publish_keys(shared, &world);
    }
    drop(world);
    for (reply, outcome) in outcomes {
        // The caller may have gone away; its write is durable all the same.
        let _ = reply.send(outcome);
    }
}

/// Make the key index of `world` (durable by now) the one requests authenticate with.
fn publish_keys(shared: &Shared, world: &World) {
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
        let produced = decide(tenant, &request.command, &ctx)?;
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

/// Fewest tenant events between two as-of checkpoints left by a fold. A tenant whose history
/// holds more checkpoints than the budget keeps gets them further apart (a power of two times
/// this), so that a fold never clones a state only to see it evicted.
pub const CHECKPOINT_EVENTS: u64 = 5_000;
/// Licences and users held by the kept answers of as-of queries together (each state weighs
/// its licences plus its users plus one); past it the least recently used go first. The
/// checkpoints folds leave behind have a budget of their own, so a fold through a long stretch
/// of history never evicts the answers an auditor is still looking at.
pub const PAST_STATES_WEIGHT_MAX: u64 = 2_000_000;
/// Past states of each kind (answers, checkpoints) kept at most, whatever their weight.
pub const PAST_STATES_MAX: usize = 256;

/// Why a past state is kept: it answered a query, or a fold passed through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kept {
    Answer,
    Checkpoint,
}

/// A tenant's state at one version of its stream.
struct PastState {
    tenant: TenantId,
    version: u64,
    /// Global sequence of the tenant's event number `version`.
    seq: u64,
    state: Arc<Tenant>,
    weight: u64,
    last_used: u64,
    kind: Kept,
}

/// Tenant states at past versions: the answers of earlier as-of queries (a repeated query, or
/// another view of the same instant, is a lookup) and the checkpoints their folds left behind
/// (a query at a nearby instant folds from the nearest one). Each kind is bounded by
/// [`PAST_STATES_WEIGHT_MAX`] and [`PAST_STATES_MAX`] on its own.
pub struct PastStates {
    inner: std::sync::Mutex<PastStatesInner>,
    weight_max: u64,
    count_max: usize,
}

impl Default for PastStates {
    fn default() -> Self {
        PastStates::with_limits(PAST_STATES_WEIGHT_MAX, PAST_STATES_MAX)
    }
}

#[derive(Default)]
struct PastStatesInner {
    states: Vec<PastState>,
    tick: u64,
}

impl PastStatesInner {
    fn weight_of_kind(&self, kind: Kept) -> (u64, usize) {
        self.states
            .iter()
            .filter(|p| p.kind == kind)
            .fold((0, 0), |(weight, count), p| (weight + p.weight, count + 1))
    }
}

fn weight_of(state: &Tenant) -> u64 {
    state.licenses.len() as u64 + state.users.len() as u64 + 1
}

impl PastStates {
    /// Past states bounded per kind by a total weight and a count.
    fn with_limits(weight_max: u64, count_max: usize) -> PastStates {
        PastStates {
            inner: std::sync::Mutex::default(),
            weight_max,
            count_max,
        }
    }

    /// Tenant events between two checkpoints of a fold through `live`'s history: at least
    /// [`CHECKPOINT_EVENTS`], and far enough apart that the whole history's checkpoints fit
    /// the budget (states weigh about what the live one does).
    fn checkpoint_spacing(&self, live: &Tenant) -> u64 {
        let fit = (self.weight_max / weight_of(live)).clamp(1, self.count_max as u64);
        let mut spacing = CHECKPOINT_EVENTS;
        while spacing.saturating_mul(fit) < live.version && spacing < u64::MAX / 2 {
            spacing *= 2;
        }
        spacing
    }

    /// The kept state of `tenant` with the highest version at or below `version`.
    fn nearest_at_or_below(
        &self,
        tenant: TenantId,
        version: u64,
    ) -> Option<(u64, u64, Arc<Tenant>)> {
        let mut inner = self.inner.lock().ok()?;
        inner.tick += 1;
        let tick = inner.tick;
        let best = inner
            .states
            .iter_mut()
            .filter(|p| p.tenant == tenant && p.version <= version)
            .max_by_key(|p| (p.version, p.kind == Kept::Answer))?;
        best.last_used = tick;
        Some((best.version, best.seq, Arc::clone(&best.state)))
    }

    fn keep(&self, tenant: TenantId, version: u64, seq: u64, state: Arc<Tenant>, kind: Kept) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(found) = inner
            .states
            .iter_mut()
            .find(|p| p.tenant == tenant && p.version == version)
        {
            // A checkpoint that turns out to be an answer moves to the answers' budget.
            found.last_used = tick;
            if kind == Kept::Answer {
                found.kind = Kept::Answer;
            } else {
                return;
            }
        } else {
            let weight = weight_of(&state);
            if weight > self.weight_max {
                return;
            }
            inner.states.push(PastState {
                tenant,
                version,
                seq,
                state,
                weight,
                last_used: tick,
                kind,
            });
        }
        loop {
            let (weight, count) = inner.weight_of_kind(kind);
            if weight <= self.weight_max && count <= self.count_max {
                break;
            }
            let Some(oldest) = (0..inner.states.len())
                .filter(|&i| inner.states[i].kind == kind)
                .min_by_key(|&i| inner.states[i].last_used)
            else {
                break;
            };
            inner.states.swap_remove(oldest);
        }
    }
}

impl World {
    /// The tenant's usage after every event recorded at or before `at`, and its version then.
    pub fn usage_at(
        &self,
        tenant: TenantId,
        at: chrono::DateTime<Utc>,
    ) -> (
        u64,
        std::collections::BTreeMap<events::TypeCode, projections::TypeUsage>,
    ) {
        let usage = self
            .usage_history
            .get(&tenant)
            .map(|history| history.at(at))
            .unwrap_or_default();
        (self.version_at(tenant, at), usage)
    }

    /// The version `tenant` had at `at`: the number of its events recorded at or before it.
    pub fn version_at(&self, tenant: TenantId, at: chrono::DateTime<Utc>) -> u64 {
        let Some(line) = self.timelines.get(&tenant) else {
            return 0;
        };
        let after = line.partition_point(|(recorded_at, _)| *recorded_at <= at);
        after.checked_sub(1).map_or(0, |i| line[i].1)
    }
}

impl Ledger {
    /// Run `read` on the tenant as it was at `at`: every event recorded at or before it (the
    /// empty state if the tenant did not exist yet). When nothing happened to the tenant since
    /// `at`, that is the live state, read in place. Otherwise the state is a kept past state
    /// (see [`PastStates`]) or is folded from the nearest one at or below the version wanted,
    /// leaving checkpoints every [`CHECKPOINT_EVENTS`] events for later queries.
    pub fn with_tenant_at<R>(
        &self,
        tenant: TenantId,
        at: chrono::DateTime<Utc>,
        read: impl FnOnce(&Tenant) -> R,
    ) -> Result<R, StoreError> {
        self.with_state_at(tenant, at, |_, _, _| None, read)
    }

    /// Run `read` on the part of the tenant as it was at `at` that a group-state question
    /// (about any group) or an entitlement question (about `user`) reads, rebuilt from the
    /// tenant's [`projections::PastIndex`] without folding (see
    /// [`projections::PastIndex::tenant_at`] for what it holds). The live state when nothing
    /// happened since `at`; a fold, as [`Ledger::with_tenant_at`], if the index cannot answer.
    pub fn with_view_at<R>(
        &self,
        tenant: TenantId,
        at: chrono::DateTime<Utc>,
        user: Option<events::UserId>,
        read: impl FnOnce(&Tenant) -> R,
    ) -> Result<R, StoreError> {
        let rebuild = |world: &World, live: &Tenant, wanted: u64| {
            world.past.get(&tenant)?.tenant_at(live, wanted, user)
        };
        self.with_state_at(tenant, at, rebuild, read)
    }

    /// [`Ledger::with_tenant_at`], trying `rebuild` (world, live state, version wanted) first
    /// when the version wanted is a past one. `rebuild` runs under the read lock: holding a
    /// tenant's `Arc` past it would make the writer's next change to the tenant clone it whole.
    fn with_state_at<R>(
        &self,
        tenant: TenantId,
        at: chrono::DateTime<Utc>,
        rebuild: impl FnOnce(&World, &Tenant, u64) -> Option<Tenant>,
        read: impl FnOnce(&Tenant) -> R,
    ) -> Result<R, StoreError> {
        let (wanted, spacing) = {
            let world = self.read();
            let wanted = world.version_at(tenant, at);
            match world.tenants.get(&tenant) {
                Some(live) if live.version == wanted => return Ok(read(live)),
                Some(live) if wanted > 0 => {
                    if let Some(past) = rebuild(&world, live, wanted) {
                        drop(world);
                        return Ok(read(&past));
                    }
                    (wanted, self.shared.past_states.checkpoint_spacing(live))
                }
                _ => (wanted, CHECKPOINT_EVENTS),
            }
        };
        if wanted == 0 {
            return Ok(read(&Tenant::empty(tenant)));
        }
        let past = self.tenant_at_version(tenant, wanted, spacing)?;
        Ok(read(&past))
    }

    /// The tenant's state after its event number `version`.
    /// A fold leaves a checkpoint at every multiple of `spacing`.
    fn tenant_at_version(
        &self,
        tenant: TenantId,
        version: u64,
        spacing: u64,
    ) -> Result<Arc<Tenant>, StoreError> {
        let past = &self.shared.past_states;
        let (mut state, mut after_seq) = match past.nearest_at_or_below(tenant, version) {
            Some((found, seq, state)) if found == version => {
                past.keep(tenant, version, seq, Arc::clone(&state), Kept::Answer);
                return Ok(state);
            }
            Some((_, seq, state)) => (Tenant::clone(&state), seq),
            None => (Tenant::empty(tenant), 0),
        };
        let mut failure = None;
        if state.version < version {
            self.store().scan_tenant(tenant, after_seq, &mut |stored| {
                let envelope = match stored.decode() {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                };
                evolve(&mut state, &envelope.event, envelope.version);
                state.last_hash = stored.hash();
                after_seq = stored.seq;
                if envelope.version >= version {
                    return false;
                }
                if envelope.version % spacing == 0 {
                    past.keep(
                        tenant,
                        envelope.version,
                        after_seq,
                        Arc::new(state.clone()),
                        Kept::Checkpoint,
                    );
                }
                true
            })?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let state = Arc::new(state);
        past.keep(tenant, version, after_seq, Arc::clone(&state), Kept::Answer);
        Ok(state)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::sled_store::SledStore;
    use chrono::{Duration, TimeZone};
    use events::{GroupId, NewUser, TypeCode, UserId};

    /// `command` for `tenant`, by a test actor.
    pub(crate) fn request(tenant: TenantId, command: Command) -> Request {
        Request {
            tenant,
            actor: Actor {
                id: "test".into(),
                reason: None,
            },
            expected_version: None,
            command,
        }
    }

    /// Decide `command` for `tenant` at `at` against `world`, which folds its events; the
    /// events as the writer would append them.
    fn decide_at(
        world: &mut World,
        tenant: TenantId,
        command: Command,
        at: chrono::DateTime<Utc>,
    ) -> Vec<EncodedEvent> {
        let mut encoded = Vec::new();
        world
            .decide_into(
                &request(tenant, command),
                CommandId::new_random(),
                at,
                &mut encoded,
            )
            .unwrap();
        encoded
    }

    /// The command that creates the tests' tenant.
    fn create_acme() -> Command {
        Command::CreateTenant {
            name: "Acme".into(),
            billing_timezone: "UTC".into(),
            currency: "EUR".into(),
        }
    }

    fn naive_tenant_at(
        store: &dyn EventStore,
        tenant: TenantId,
        at: chrono::DateTime<Utc>,
    ) -> Tenant {
        let mut state = Tenant::empty(tenant);
        for stored in store.read_tenant(tenant).unwrap() {
            let envelope = Envelope::decode(&stored.bytes).unwrap();
            if envelope.recorded_at > at {
                break;
            }
            evolve(&mut state, &envelope.event, envelope.version);
            state.last_hash = stored.hash();
        }
        state
    }

    #[test]
    fn checkpoints_of_a_long_fold_never_evict_kept_answers() {
        let tenant = TenantId::new_random();
        let past = PastStates::with_limits(10, 3);
        let at = |version| {
            let mut state = Tenant::empty(tenant);
            state.version = version;
            Arc::new(state)
        };
        past.keep(tenant, 7, 7, at(7), Kept::Answer);
        past.keep(tenant, 40, 40, at(40), Kept::Answer);
        for version in (100..10_000).step_by(100) {
            past.keep(tenant, version, version, at(version), Kept::Checkpoint);
        }
        for answer in [7, 40] {
            let found = past.nearest_at_or_below(tenant, answer).map(|(v, _, _)| v);
            assert_eq!(found, Some(answer), "the answer at {answer} was evicted");
        }
        // The checkpoints keep to their own bound: only the three most recent are left.
        assert_eq!(
            past.nearest_at_or_below(tenant, 9_600).map(|(v, ..)| v),
            Some(40)
        );
        assert_eq!(
            past.nearest_at_or_below(tenant, 9_750).map(|(v, ..)| v),
            Some(9_700)
        );
        // A fourth answer evicts the least recently used answer, not a checkpoint.
        past.keep(tenant, 50, 50, at(50), Kept::Answer);
        past.keep(tenant, 60, 60, at(60), Kept::Answer);
        assert_eq!(
            past.nearest_at_or_below(tenant, 9_900).map(|(v, ..)| v),
            Some(9_900)
        );
        let left: Vec<u64> = [7, 40, 50, 60]
            .into_iter()
            .filter(|&v| past.nearest_at_or_below(tenant, v).map(|(f, ..)| f) == Some(v))
            .collect();
        assert_eq!(left.len(), 3, "answers kept: {left:?}");
    }

    #[test]
    fn a_snapshot_copy_keeps_its_state_while_the_writer_goes_on() {
        let tenant = TenantId::new_random();
        let mut world = World::default();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let run = |world: &mut World, command: Command| {
            decide_at(world, tenant, command, at);
        };
        run(&mut world, create_acme());
        let copy = world.clone();
        assert!(Arc::ptr_eq(&copy.tenants[&tenant], &world.tenants[&tenant]));
        let before = Tenant::clone(&copy.tenants[&tenant]);
        run(
            &mut world,
            Command::ProvisionLicenses {
                license_type: "phone_system".into(),
                quantity: 3,
            },
        );
        assert_eq!(
            *copy.tenants[&tenant], before,
            "the copy moved with the writer"
        );
        assert_eq!(copy.head, before.version);
        assert_eq!(
            world.tenants[&tenant].owned[&TypeCode::from("phone_system")],
            3
        );
        assert!(world.head > copy.head);
    }

    #[test]
    fn checkpoints_are_spaced_so_a_whole_history_fits_the_budget() {
        let mut live = Tenant::empty(TenantId::new_random());
        let past = PastStates::with_limits(1_000, 256);
        live.version = 40_000;
        // Weight 1: the budget holds 256 states, 8 are needed at the fewest events apart.
        assert_eq!(past.checkpoint_spacing(&live), CHECKPOINT_EVENTS);
        // Weight 1 but a history of 10 M events: 256 checkpoints 40 000 apart cover it.
        live.version = 10_000_000;
        let spacing = past.checkpoint_spacing(&live);
        assert_eq!(spacing, CHECKPOINT_EVENTS * 8);
        assert!(spacing * 256 >= live.version);
        // A state heavier than the budget: one checkpoint for the whole history.
        for i in 0..2_000u32 {
            let user = events::state::User {
                id: UserId::new_random(),
                name: format!("u{i}"),
                group: GroupId::new_random(),
                extension: None,
                number: None,
                removed: false,
                licenses: Default::default(),
            };
            live.users.insert(user.id, user);
        }
        assert!(past.checkpoint_spacing(&live) >= live.version);
    }

    #[test]
    fn as_of_answers_from_checkpoints_equal_a_fold_from_scratch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let tenant = TenantId::new_random();
        let group = GroupId::new_random();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut world = World::default();
        let run = |world: &mut World, command: Command, at| {
            store
                .append(&decide_at(world, tenant, command, at))
                .unwrap();
        };
        run(&mut world, create_acme(), start);
        run(
            &mut world,
            Command::CreateGroup {
                group,
                name: "All".into(),
                parent: None,
            },
            start,
        );
        // Five batches of 10 000 users an hour apart: 50 000 events, two checkpoints and more.
        for hour in 1..=5 {
            let users = (0..10_000)
                .map(|i| NewUser {
                    user: UserId::new_random(),
                    name: format!("user {hour}.{i}"),
                    group,
                    extension: None,
                    number: None,
                })
                .collect();
            run(
                &mut world,
                Command::CreateUsers(users),
                start + Duration::hours(hour),
            );
        }
        let ledger = Ledger::start(store.clone()).unwrap();
        let instants =
            [3, 5, 2, 4, 1, 5, 0].map(|h| start + Duration::hours(h) + Duration::minutes(30));
        for at in instants {
            let expected = naive_tenant_at(store.as_ref(), tenant, at);
            let got = ledger.with_tenant_at(tenant, at, Tenant::clone).unwrap();
            assert_eq!(got, expected, "as of {at}");
        }
        let kept = ledger.shared.past_states.inner.lock().unwrap().states.len();
        assert!(kept >= 2, "queries left past states behind ({kept})");
        // Nothing happened since the last batch: the live state answers.
        let later = start + Duration::hours(9);
        let live = Tenant::clone(&ledger.read().tenants[&tenant]);
        assert_eq!(
            ledger.with_tenant_at(tenant, later, Tenant::clone).unwrap(),
            live
        );
        // Before the tenant existed: the empty state.
        let before = start - Duration::hours(1);
        let empty = ledger
            .with_tenant_at(tenant, before, Tenant::clone)
            .unwrap();
        assert_eq!(empty.version, 0);
    }

    #[test]
    fn as_of_group_state_and_entitlements_from_the_past_index_equal_a_fold() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path()).unwrap());
        let tenant = TenantId::new_random();
        let (root, team) = (GroupId::new_random(), GroupId::new_random());
        let users: Vec<UserId> = (0..6).map(|_| UserId::new_random()).collect();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let hour = |h: i64| start + Duration::hours(h);
        let mut world = World::default();
        let run = |world: &mut World, command: Command, at| {
            store
                .append(&decide_at(world, tenant, command, at))
                .unwrap();
        };
        let phone = TypeCode::from("phone_system");
        let recording = TypeCode::from("call_recording");
        let setup = [
            create_acme(),
            Command::CreateGroup {
                group: root,
                name: "All".into(),
                parent: None,
            },
            Command::CreateGroup {
                group: team,
                name: "Sales".into(),
                parent: Some(root),
            },
            Command::SetRestriction {
                group: team,
                restriction: events::Restriction {
                    enabled: true,
                    limits: [(phone.clone(), 4)].into(),
                    valid_from: None,
                    valid_until: Some(hour(5)),
                    reminder: None,
                },
            },
            Command::ProvisionLicenses {
                license_type: phone.clone(),
                quantity: 10,
            },
            Command::ProvisionLicenses {
                license_type: recording.clone(),
                quantity: 10,
            },
            Command::CreateUsers(
                users
                    .iter()
                    .enumerate()
                    .map(|(i, user)| NewUser {
                        user: *user,
                        name: format!("user {i}"),
                        group: if i % 2 == 0 { team } else { root },
                        extension: None,
                        number: None,
                    })
                    .collect(),
            ),
        ];
        for command in setup {
            run(&mut world, command, start);
        }
        // Hour by hour: users take seats (some with recording), one moves, one gives back.
        for (h, user) in users.iter().enumerate().take(4) {
            let addons = if h % 2 == 0 {
                vec![recording.clone()]
            } else {
                vec![]
            };
            run(
                &mut world,
                Command::AssignByType {
                    user: *user,
                    license_type: phone.clone(),
                    addons,
                },
                hour(h as i64 + 1),
            );
        }
        run(
            &mut world,
            Command::UpdateUser {
                user: users[1],
                name: None,
                group: Some(team),
            },
            hour(6),
        );
        let held = world.tenants[&tenant]
            .users
            .get(&users[0])
            .unwrap()
            .licenses
            .clone();
        for license in held {
            run(&mut world, Command::UnassignLicense { license }, hour(7));
        }
        let ledger = Ledger::start(store.clone()).unwrap();
        let state = |t: &Tenant, group, at| format!("{:?}", projections::group_state(t, group, at));
        let instants: Vec<_> = (0..=8).map(|h| hour(h) + Duration::minutes(30)).collect();
        let mut rebuilt = Vec::new();
        for &at in &instants {
            for group in [root, team] {
                rebuilt.push(ledger.with_view_at(tenant, at, None, |t| state(t, group, at)));
            }
            for user in &users {
                for t in [&phone, &recording] {
                    rebuilt.push(ledger.with_view_at(tenant, at, Some(*user), |s| {
                        format!("{:?}", projections::entitlement(s, *user, t, at))
                    }));
                }
            }
        }
        let folded_states = ledger.shared.past_states.inner.lock().unwrap().states.len();
        assert_eq!(folded_states, 0, "the past index answered without folding");
        let mut folded = Vec::new();
        for &at in &instants {
            for group in [root, team] {
                folded.push(ledger.with_tenant_at(tenant, at, |t| state(t, group, at)));
            }
            for user in &users {
                for t in [&phone, &recording] {
                    folded.push(ledger.with_tenant_at(tenant, at, |s| {
                        format!("{:?}", projections::entitlement(s, *user, t, at))
                    }));
                }
            }
        }
        let rebuilt: Vec<String> = rebuilt.into_iter().map(Result::unwrap).collect();
        let folded: Vec<String> = folded.into_iter().map(Result::unwrap).collect();
        assert_eq!(rebuilt, folded);
        assert!(
            folded
                .iter()
                .any(|answer| answer.contains("window_expired")),
            "the team's window closes within the history"
        );
        // The index is part of the snapshot: a start from it answers the same.
        let snapshot = crate::store::snapshot::encode(&ledger.read()).unwrap();
        let restored = crate::store::snapshot::decode(&snapshot).unwrap();
        assert_eq!(restored.past, ledger.read().past);
    }
}
