//! The ledger service: the in-memory state of every tenant, rebuilt from the log on start, and
//! the single writer that group-commits commands.
//!
//! Commands queue on a channel. The writer takes every command waiting (up to
//! [`JOBS_PER_BATCH_MAX`]), decides each in order against the latest state, appends all their
//! events as one record, flushes once, and only then answers every caller. Readers share the
//! state behind a lock the writer holds while deciding and flushing, so nobody ever reads an
//! event that is not yet durable.
//!
//! The rooms: [`World`] and how it changes (`world.rs`), the replay that rebuilds it
//! (`replay.rs`), the writer (`writer.rs`), start-up snapshots (`snapshots.rs`) and as-of
//! reads of past states (`as_of.rs`). This file holds the handle, [`Ledger`], and the types
//! its callers see.

use crate::store::{Error as StoreError, EventStore, Lease};
use events::{Command, CommandId, Event, KeyId, Rejection, Role, TenantId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use tokio::sync::{mpsc, oneshot};

mod as_of;
mod follower;
mod replay;
pub mod snapshots;
mod world;
mod writer;

pub use as_of::{PastStates, CHECKPOINT_EVENTS, PAST_STATES_MAX, PAST_STATES_WEIGHT_MAX};
pub use follower::FOLLOW_POLL;
pub use snapshots::{SnapshotPolicy, SNAPSHOT_EVERY_EVENTS_DEFAULT};
pub use world::{Timeline, World};
use writer::{writer_loop, Job};
pub use writer::{JOBS_PER_BATCH_MAX, QUEUE_DEPTH_MAX};

/// Who sent a command and why, as stored on its events.
#[derive(Clone, Debug)]
pub struct Actor {
    pub id: String,
    pub reason: Option<String>,
    /// A key scoped to a group (a dealer's key) acts only inside that group's subtree
    /// (`events::decide_as`).
    pub scope: Option<events::GroupId>,
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
    /// This node follows another that holds the write lease.
    #[error("this node does not hold the write lease; writes go to the node that does")]
    NotWriter,
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
    /// A dealer's key: the group whose subtree it reads and manages.
    pub group: Option<events::GroupId>,
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
    /// The head of the state, published after every change: what `min_seq` waits on.
    head_watch: tokio::sync::watch::Sender<u64>,
    /// On a log shared with other nodes: this node's part in it.
    node: Option<Node>,
}

/// A node's part in a log several nodes share (see `follower.rs`).
pub(super) struct Node {
    lease: Arc<dyn Lease>,
    /// Where this node takes writes, advertised to the others when it holds the lease.
    advertise: String,
    /// Holds the lease and writes.
    writer: std::sync::atomic::AtomicBool,
    /// The log's head as last seen in the store, for the lag.
    log_head: std::sync::atomic::AtomicU64,
}

/// Handle to the running ledger; cheap to clone: one reference count, so that the request
/// handlers that each clone it do not contend on more.
#[derive(Clone)]
pub struct Ledger {
    handle: Arc<Handle>,
}

/// What every clone of a [`Ledger`] shares. The writer stops once the last is dropped (the
/// queue's last sender with it).
struct Handle {
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
        Ledger::start_shared(store, snapshots, world, snapshot_head, None)
    }

    /// Like [`Ledger::start_loaded`], on a log other nodes share through `lease`: the node
    /// follows the log and serves reads until it takes the lease, then writes (advertising
    /// `advertise` as where the others forward writes).
    pub fn start_node(
        store: Arc<dyn EventStore>,
        lease: Arc<dyn Lease>,
        advertise: String,
        snapshots: Option<SnapshotPolicy>,
        world: World,
        snapshot_head: u64,
    ) -> Result<Ledger, StoreError> {
        let node = Node {
            lease,
            advertise,
            writer: std::sync::atomic::AtomicBool::new(false),
            log_head: std::sync::atomic::AtomicU64::new(world.head),
        };
        Ledger::start_shared(store, snapshots, world, snapshot_head, Some(node))
    }

    fn start_shared(
        store: Arc<dyn EventStore>,
        snapshots: Option<SnapshotPolicy>,
        world: World,
        snapshot_head: u64,
        node: Option<Node>,
    ) -> Result<Ledger, StoreError> {
        let _ = crate::metrics::handle();
        tracing::info!(
            head = world.head,
            tenants = world.tenants.len(),
            "state rebuilt from the log"
        );
        let (head_watch, _) = tokio::sync::watch::channel(world.head);
        let shared = Arc::new(Shared {
            head_watch,
            node,
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
        // A node that finds the lease free writes from the start, not after a first poll.
        if let Some(node) = &shared.node {
            if let Err(reason) = follower::try_promote(&shared, node) {
                return Err(StoreError::Io(reason));
            }
        }
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH_MAX);
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer_loop(writer, receiver))
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(Ledger {
            handle: Arc::new(Handle { shared, queue }),
        })
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
        if !self.is_writer() {
            return Err(ExecError::NotWriter);
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request,
            command_id: options.keyed.unwrap_or_else(CommandId::new_random),
            keyed: options.keyed.is_some(),
            preview_cost: options.preview_cost,
            reply,
        };
        self.handle
            .queue
            .send(job)
            .await
            .map_err(|_| ExecError::Closed)?;
        answer.await.map_err(|_| ExecError::Closed)?
    }

    /// Read the current state.
    pub fn read(&self) -> RwLockReadGuard<'_, World> {
        // A poisoned lock means the writer panicked mid-fold; the state is not trustworthy.
        self.handle
            .shared
            .world
            .read()
            .expect("the ledger state lock is poisoned")
    }

    /// The live key whose token hashes to `hash`. Never waits for a flush in progress.
    pub fn grant(&self, hash: &[u8; 32]) -> Option<KeyGrant> {
        let keys = self
            .handle
            .shared
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner());
        keys.get(hash).copied()
    }

    /// Why writes are stopped, if a storage failure stopped them.
    pub fn writes_stopped(&self) -> Option<String> {
        self.handle
            .shared
            .stopped
            .lock()
            .ok()
            .and_then(|s| s.clone())
    }

    /// Batches appended (group commits) since start.
    pub fn batches_committed(&self) -> u64 {
        self.handle
            .shared
            .batches
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether this node takes writes: always on a log of its own; on a shared log, once it
    /// holds the lease and has folded the whole log.
    pub fn is_writer(&self) -> bool {
        self.handle
            .shared
            .node
            .as_ref()
            .is_none_or(|node| node.writer.load(std::sync::atomic::Ordering::Acquire))
    }

    /// On a shared log: events committed that this node has not folded yet (as of its last
    /// look at the log).
    pub fn lag(&self) -> Option<u64> {
        let node = self.handle.shared.node.as_ref()?;
        let seen = node.log_head.load(std::sync::atomic::Ordering::Acquire);
        Some(seen.saturating_sub(self.read().head))
    }

    /// On a shared log: where the writer takes writes, as it advertised it.
    pub fn writer_url(&self) -> Result<Option<String>, StoreError> {
        match &self.handle.shared.node {
            Some(node) => node.lease.writer_url(),
            None => Ok(None),
        }
    }

    /// The log's committed head now (asked of the store on a shared log).
    pub fn log_head(&self) -> Result<u64, StoreError> {
        match &self.handle.shared.node {
            Some(node) => node.lease.log_head(),
            None => Ok(self.read().head),
        }
    }

    /// Wait until the state has folded sequence `seq`, at most `timeout`; returns whether
    /// it has.
    pub async fn wait_for_seq(&self, seq: u64, timeout: std::time::Duration) -> bool {
        let mut head = self.handle.shared.head_watch.subscribe();
        let reached = tokio::time::timeout(timeout, head.wait_for(|head| *head >= seq)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// For a clean stop, after the last request was answered: write a start-up snapshot when
    /// the log grew since the last one and this node writes (see [`SnapshotPolicy`]). The
    /// sequence written, if one was.
    pub fn snapshot_on_stop(&self) -> Result<Option<u64>, String> {
        if !self.is_writer() {
            return Ok(None);
        }
        snapshots::snapshot_on_stop(&self.handle.shared)
    }

    /// The store underneath, for history queries.
    pub fn store(&self) -> &dyn EventStore {
        self.handle.shared.store.as_ref()
    }
}

#[cfg(test)]
pub(crate) mod tests;
