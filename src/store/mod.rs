//! The durable log. [`EventStore`] is the one seam every backend implements; [`sled_store`]
//! is the embedded default. The only code that imports sled.

pub mod memory;
pub mod postgres;
pub mod record;
pub mod sled_store;
pub mod snapshot;

use events::{EventHash, TenantId};

/// One event as stored: its global sequence, its tenant and the encoded envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedEvent {
    pub seq: u64,
    pub tenant: TenantId,
    pub bytes: Vec<u8>,
}

impl EncodedEvent {
    /// The hash the tenant's next event chains to.
    pub fn hash(&self) -> EventHash {
        events::Envelope::hash_of(&self.bytes)
    }

    /// The event lent, as a scan lends it.
    pub fn borrowed(&self) -> EventRef<'_> {
        EventRef {
            seq: self.seq,
            tenant: self.tenant,
            bytes: &self.bytes,
        }
    }

    /// The envelope inside; undecodable bytes are corruption at this sequence.
    pub fn decode(&self) -> Result<events::Envelope, Error> {
        events::Envelope::decode(&self.bytes).map_err(|e| Error::Corrupt {
            seq: self.seq,
            reason: e.to_string(),
        })
    }
}

/// One stored event borrowed from the record that holds it: what a scan visits without
/// copying the event's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub seq: u64,
    pub tenant: TenantId,
    pub bytes: &'a [u8],
}

impl EventRef<'_> {
    /// An owned copy.
    pub fn to_owned_event(&self) -> EncodedEvent {
        EncodedEvent {
            seq: self.seq,
            tenant: self.tenant,
            bytes: self.bytes.to_vec(),
        }
    }
}

/// Why the store failed. A storage error is never the client's fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("storage failure: {0}")]
    Io(String),
    #[error("corrupt store: {0}")]
    CorruptStore(String),
    #[error("corrupt log at sequence {seq}: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("append out of order: expected sequence {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
}

/// Whether `batch` continues a log whose last sequence is `head`, one sequence after another:
/// what every backend checks before it writes anything.
pub fn check_follows(head: u64, batch: &[EncodedEvent]) -> Result<(), Error> {
    for (index, event) in batch.iter().enumerate() {
        let expected = head + 1 + index as u64;
        if event.seq != expected {
            return Err(Error::OutOfOrder {
                expected,
                got: event.seq,
            });
        }
    }
    Ok(())
}

/// A log that several processes share with one writer at a time (PostgreSQL): what a node
/// that follows the writer, and takes over when it goes, needs besides [`EventStore`].
pub trait Lease: Send + Sync + 'static {
    /// Take the write lease if it is free (true), advertising `url` as where writes go. Once
    /// taken, [`EventStore::head`] is the log's head and appends are this process's.
    fn try_take_lease(&self, url: Option<&str>) -> Result<bool, Error>;
    /// Let the lease go (a writer whose append failed steps down to follower).
    fn release_lease(&self);
    /// Where the lease holder takes writes, as it advertised it.
    fn writer_url(&self) -> Result<Option<String>, Error>;
    /// The last committed sequence, whoever wrote it.
    fn log_head(&self) -> Result<u64, Error>;
    /// Wait until another process appends, or `timeout` passes.
    fn wait_for_append(&self, timeout: std::time::Duration) -> Result<(), Error>;
}

/// What a log backend must do. Appends are durable when `append` returns.
pub trait EventStore: Send + Sync + 'static {
    /// Append events with consecutive sequences following `head()`, as one atomic record set,
    /// flushed before returning.
    fn append(&self, batch: &[EncodedEvent]) -> Result<(), Error>;

    /// Visit every event with `seq > after`, in order, until `visit` returns `false`. Only
    /// durable events, up to `head()`, are visited: never one of an append still under way.
    fn scan(&self, after: u64, visit: &mut dyn FnMut(EncodedEvent) -> bool) -> Result<(), Error>;

    /// Like [`EventStore::scan`], lending each event's bytes instead of copying them: the
    /// replay path. Backends that keep records in memory-friendly form override it.
    fn scan_ref(
        &self,
        after: u64,
        visit: &mut dyn FnMut(EventRef<'_>) -> bool,
    ) -> Result<(), Error> {
        self.scan(after, &mut |event| {
            visit(EventRef {
                seq: event.seq,
                tenant: event.tenant,
                bytes: &event.bytes,
            })
        })
    }

    /// Visit the events of one tenant with `seq > after`, in order, until `visit` returns
    /// `false`. Durable events only, as `scan`.
    fn scan_tenant(
        &self,
        tenant: TenantId,
        after: u64,
        visit: &mut dyn FnMut(EncodedEvent) -> bool,
    ) -> Result<(), Error>;

    /// Every event of one tenant, in order.
    fn read_tenant(&self, tenant: TenantId) -> Result<Vec<EncodedEvent>, Error> {
        let mut out = Vec::new();
        self.scan_tenant(tenant, 0, &mut |e| {
            out.push(e);
            true
        })?;
        Ok(out)
    }

    /// Sequence of the last stored event (0 for an empty log).
    fn head(&self) -> u64;
}
