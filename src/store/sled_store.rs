//! The embedded store on sled.
//!
//! One sled tree, two key spaces, written by the append and made durable by one flush:
//! - `L` + first seq (u64 big-endian) → a *record*: many events in one value, so replay reads
//!   few large values instead of one key per event;
//! - `T` + tenant (16 bytes) + first seq → empty: which records hold events of a tenant.
//!
//! An append that fits one record (every group commit but the largest imports) writes the
//! record, then its tenant keys, as plain inserts. sled recovers a prefix of its log, so a
//! crash before the flush ends leaves either nothing of the append, or its record with some of
//! its tenant keys; only the last record can be in that state (each append is flushed before the
//! next begins), and opening the store writes whatever tenant keys it lacks. A larger append is
//! several records, written by one atomic `apply_batch`: a crash keeps all of them or none. The
//! batch costs sled two more buffers written and synced by its I/O threads on every append
//! (`pin_log` seals the buffer before and after its manifest), which the plain inserts avoid.
//!
//! Records are [`super::record`]'s.

use super::record::{
    decode_record, encode_record, record_tenants, visit_record, RECORD_EVENTS_MAX,
};
use super::{EncodedEvent, Error, EventRef, EventStore};
use events::TenantId;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// The sled-backed log.
pub struct SledStore {
    db: sled::Db,
    log: sled::Tree,
    head: AtomicU64,
    /// The acknowledged head, kept beside sled (see [`HEAD_FILE`]).
    head_file: std::fs::File,
}

/// A file beside sled's own holding the last acknowledged sequence. sled drops a corrupt
/// segment and everything after it when it recovers, without an error; comparing its head with
/// this file on open turns that silent loss into a refusal naming the first missing sequence.
pub const HEAD_FILE: &str = "ledger-head";

fn head_file_bytes(seq: u64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&seq.to_le_bytes());
    bytes[8..].copy_from_slice(&blake3::hash(&seq.to_le_bytes()).as_bytes()[..8]);
    bytes
}

/// The sequence in a head file, if its checksum holds.
fn read_head_file(bytes: &[u8]) -> Option<u64> {
    let seq = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    (bytes.get(..16)? == head_file_bytes(seq)).then_some(seq)
}

fn io(error: sled::Error) -> Error {
    Error::Io(error.to_string())
}

fn record_key(first_seq: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = b'L';
    key[1..].copy_from_slice(&first_seq.to_be_bytes());
    key
}

fn tenant_key(tenant: TenantId, first_seq: u64) -> [u8; 25] {
    let mut key = [0u8; 25];
    key[0] = b'T';
    key[1..17].copy_from_slice(tenant.as_uuid().as_bytes());
    key[17..].copy_from_slice(&first_seq.to_be_bytes());
    key
}

impl SledStore {
    /// Open (or create) the store in `dir`, checking the last record to find the head.
    pub fn open(dir: &Path) -> Result<SledStore, Error> {
        let db = open_waiting_for_lock(dir).map_err(|e| match e {
            sled::Error::Corruption { .. } => {
                let acknowledged = std::fs::read(dir.join(HEAD_FILE))
                    .ok()
                    .and_then(|bytes| read_head_file(&bytes))
                    .map_or_else(String::new, |seq| {
                        format!("; {seq} events had been acknowledged")
                    });
                Error::CorruptStore(format!("sled cannot read its files ({e}){acknowledged}"))
            }
            other => io(other),
        })?;
        let log = db.open_tree("log").map_err(io)?;
        let head = match log.scan_prefix(b"L").next_back() {
            None => 0,
            Some(entry) => {
                let (key, value) = entry.map_err(io)?;
                let first = first_seq_of_key(&key)?;
                let events = decode_record(first, &value)?;
                complete_tenant_keys(&log, first, &events)?;
                events.last().map_or(0, |e| e.seq)
            }
        };
        let head_path = dir.join(HEAD_FILE);
        let acknowledged = std::fs::read(&head_path)
            .ok()
            .and_then(|bytes| read_head_file(&bytes));
        if let Some(acknowledged) = acknowledged {
            if acknowledged > head {
                return Err(Error::Corrupt {
                    seq: head + 1,
                    reason: format!(
                        "the log ends at sequence {head} but {acknowledged} events were acknowledged: \
                         records from {} on are missing or corrupt",
                        head + 1
                    ),
                });
            }
        }
        let head_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&head_path)
            .map_err(|e| Error::Io(format!("cannot open {}: {e}", head_path.display())))?;
        let store = SledStore {
            db,
            log,
            head: AtomicU64::new(head),
            head_file,
        };
        store.write_head_file(head)?;
        Ok(store)
    }

    /// Written after every flush of the log, and not synced: a process killed keeps it (the
    /// kernel holds the write), while after a power loss it may name an earlier sequence than
    /// the log kept. It is only ever a lower bound of the durable log, so the check on open can
    /// miss a loss then, never report one that did not happen; syncing it too would add a second
    /// fsync to every group commit.
    fn write_head_file(&self, seq: u64) -> Result<(), Error> {
        use std::os::unix::fs::FileExt;
        self.head_file
            .write_all_at(&head_file_bytes(seq), 0)
            .map_err(|e| Error::Io(format!("cannot record the head: {e}")))
    }
}

/// What a record of `events` writes, in order: the record, then its tenant keys.
fn record_writes(events: &[EncodedEvent]) -> Vec<(sled::IVec, sled::IVec)> {
    let first_seq = events[0].seq;
    let mut writes = vec![(
        record_key(first_seq)[..].into(),
        encode_record(events).into(),
    )];
    for tenant in record_tenants(events) {
        writes.push((
            tenant_key(tenant, first_seq)[..].into(),
            sled::IVec::default(),
        ));
    }
    writes
}

/// Write the tenant keys the record at `first_seq` holding `events` lacks: the last record of
/// a single-record append cut short by a crash (see the module documentation).
fn complete_tenant_keys(
    log: &sled::Tree,
    first_seq: u64,
    events: &[EncodedEvent],
) -> Result<(), Error> {
    let mut wrote = false;
    for tenant in record_tenants(events) {
        let key = tenant_key(tenant, first_seq);
        if !log.contains_key(&key[..]).map_err(io)? {
            log.insert(&key[..], &[][..]).map_err(io)?;
            wrote = true;
        }
    }
    if wrote {
        log.flush().map_err(io)?;
    }
    Ok(())
}

fn first_seq_of_key(key: &[u8]) -> Result<u64, Error> {
    let bytes: [u8; 8] = key
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Corrupt {
            seq: 0,
            reason: "malformed record key".into(),
        })?;
    Ok(u64::from_be_bytes(bytes))
}

impl EventStore for SledStore {
    fn append(&self, batch: &[EncodedEvent]) -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let head = self.head.load(Ordering::Acquire);
        super::check_follows(head, batch)?;
        if batch.len() <= RECORD_EVENTS_MAX {
            // One record, then its tenant keys, as plain inserts (see the module documentation).
            for (key, value) in record_writes(batch) {
                self.log.insert(key, value).map_err(io)?;
            }
        } else {
            // One atomic sled batch of several records, so no sled value grows past
            // RECORD_EVENTS_MAX events.
            let mut writes = sled::Batch::default();
            for (key, value) in batch.chunks(RECORD_EVENTS_MAX).flat_map(record_writes) {
                writes.insert(key, value);
            }
            self.log.apply_batch(writes).map_err(io)?;
        }
        self.db.flush().map_err(io)?;
        let last = batch.last().map_or(head, |e| e.seq);
        self.write_head_file(last)?;
        self.head.store(last, Ordering::Release);
        Ok(())
    }

    fn scan(&self, after: u64, visit: &mut dyn FnMut(EncodedEvent) -> bool) -> Result<(), Error> {
        self.scan_ref(after, &mut |event| visit(event.to_owned_event()))
    }

    fn scan_ref(
        &self,
        after: u64,
        visit: &mut dyn FnMut(EventRef<'_>) -> bool,
    ) -> Result<(), Error> {
        // sled shows a batch to readers as soon as it is applied, before the flush: stop at the
        // durable head so that nobody reads an event a crash could still take back.
        let durable = self.head.load(Ordering::Acquire);
        // Start from the record holding `after + 1`: the last record key at or below it.
        let start = self
            .log
            .range(record_key(0)..=record_key(after.saturating_add(1)))
            .next_back()
            .transpose()
            .map_err(io)?
            .map(|(key, _)| key);
        let from = match start {
            Some(key) => key.to_vec(),
            None => record_key(0).to_vec(),
        };
        for entry in self.log.range(from..) {
            let (key, value) = entry.map_err(io)?;
            if key.first() != Some(&b'L') {
                break;
            }
            let first = first_seq_of_key(&key)?;
            if first > durable {
                break;
            }
            let more = visit_record(first, &value, &mut |event| {
                if event.seq > durable {
                    return false;
                }
                event.seq <= after || visit(event)
            })?;
            if !more {
                return Ok(());
            }
        }
        Ok(())
    }

    fn scan_tenant(
        &self,
        tenant: TenantId,
        after: u64,
        visit: &mut dyn FnMut(EncodedEvent) -> bool,
    ) -> Result<(), Error> {
        // As in `scan`: nothing beyond the durable head.
        let durable = self.head.load(Ordering::Acquire);
        let prefix = &tenant_key(tenant, 0)[..17];
        // Start from the tenant's record holding `after + 1`: the last index key at or below it.
        let start = self
            .log
            .range(tenant_key(tenant, 0)..=tenant_key(tenant, after.saturating_add(1)))
            .next_back()
            .transpose()
            .map_err(io)?
            .map_or_else(|| tenant_key(tenant, 0).to_vec(), |(key, _)| key.to_vec());
        for entry in self.log.range(start..) {
            let (key, _) = entry.map_err(io)?;
            if !key.starts_with(prefix) {
                break;
            }
            // The sequence follows the tenant id: bytes 17..25, i.e. 1..9 of `key[16..]`.
            let first = first_seq_of_key(&key[16..])?;
            if first > durable {
                break;
            }
            let record = self
                .log
                .get(record_key(first))
                .map_err(io)?
                .ok_or_else(|| Error::Corrupt {
                    seq: first,
                    reason: "tenant index names a missing record".into(),
                })?;
            let more = visit_record(first, &record, &mut |event| {
                if event.seq > durable {
                    return false;
                }
                event.tenant != tenant || event.seq <= after || visit(event.to_owned_event())
            })?;
            if !more {
                return Ok(());
            }
        }
        Ok(())
    }

    fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }
}

/// sled's cache of the tree's pages. The state lives in the ledger's projections, so sled
/// serves only the log's readers: a replay reads each record once, and the audit and events
/// pages read a tenant's records; the operating system's page cache holds the files anyway.
const CACHE_BYTES: u64 = 128 << 20;

/// How long opening waits for sled's file lock: a store closed a moment ago (in this process,
/// or by a process that just exited) lets it go once sled's background threads stop.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Open sled, waiting up to [`LOCK_WAIT`] while another handle still holds its lock.
fn open_waiting_for_lock(dir: &Path) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let opened = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(CACHE_BYTES)
            .open();
        match opened {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(sled::Error::Io(std::io::Error::other(format!(
                        "the store at {} is in use by another process (is a ledger already \
                         running on it?): {e}",
                        dir.display()
                    ))));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, tenant: TenantId, payload: &[u8]) -> EncodedEvent {
        EncodedEvent {
            seq,
            tenant,
            bytes: payload.to_vec(),
        }
    }

    #[test]
    fn appended_records_read_back_in_order_per_tenant_and_globally() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let a = TenantId::new_random();
        let b = TenantId::new_random();
        store
            .append(&[event(1, a, b"one"), event(2, b, b"two")])
            .unwrap();
        store.append(&[event(3, a, b"three")]).unwrap();
        assert_eq!(store.head(), 3);
        let mut all = Vec::new();
        store
            .scan(1, &mut |e| {
                all.push(e.seq);
                true
            })
            .unwrap();
        assert_eq!(all, vec![2, 3]);
        let of_a: Vec<u64> = store
            .read_tenant(a)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(of_a, vec![1, 3]);
        drop(store);
        let reopened = SledStore::open(dir.path()).unwrap();
        assert_eq!(reopened.head(), 3);
    }

    #[test]
    fn a_batch_applied_but_not_yet_flushed_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let t = TenantId::new_random();
        store.append(&[event(1, t, b"durable")]).unwrap();
        // Where `append` stands between `apply_batch` and the end of its flush.
        let mut writes = sled::Batch::default();
        writes.insert(
            &record_key(2)[..],
            encode_record(&[event(2, t, b"in flight")]),
        );
        writes.insert(&tenant_key(t, 2)[..], &[][..]);
        store.log.apply_batch(writes).unwrap();
        let mut all = Vec::new();
        store
            .scan(0, &mut |e| {
                all.push(e.seq);
                true
            })
            .unwrap();
        assert_eq!(all, vec![1]);
        let of_t: Vec<u64> = store
            .read_tenant(t)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(of_t, vec![1]);
    }

    #[test]
    fn a_record_whose_tenant_keys_a_crash_cut_short_is_read_per_tenant_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (TenantId::new_random(), TenantId::new_random());
        {
            let store = SledStore::open(dir.path()).unwrap();
            store.append(&[event(1, a, b"first")]).unwrap();
            store
                .append(&[event(2, a, b"second"), event(3, b, b"third")])
                .unwrap();
            // Where a crash between the record and its last tenant key leaves the log.
            store.log.remove(&tenant_key(b, 2)[..]).unwrap();
            store.db.flush().unwrap();
        }
        let reopened = SledStore::open(dir.path()).unwrap();
        let seqs = |tenant| -> Vec<u64> {
            reopened
                .read_tenant(tenant)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect()
        };
        assert_eq!(seqs(b), vec![3]);
        assert_eq!(seqs(a), vec![1, 2]);
        reopened.append(&[event(4, b, b"fourth")]).unwrap();
        assert_eq!(seqs(b), vec![3, 4]);
    }

    #[test]
    fn a_large_append_is_split_into_records_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let t = TenantId::new_random();
        let count = RECORD_EVENTS_MAX as u64 * 2 + 7;
        let batch: Vec<EncodedEvent> = (1..=count).map(|seq| event(seq, t, b"x")).collect();
        store.append(&batch).unwrap();
        let records = store.log.scan_prefix(b"L").count();
        assert_eq!(records, 3);
        assert_eq!(store.read_tenant(t).unwrap().len() as u64, count);
        let mut after = Vec::new();
        store
            .scan(RECORD_EVENTS_MAX as u64 + 3, &mut |e| {
                after.push(e.seq);
                true
            })
            .unwrap();
        assert_eq!(after.first(), Some(&(RECORD_EVENTS_MAX as u64 + 4)));
        assert_eq!(after.len() as u64, count - RECORD_EVENTS_MAX as u64 - 3);
    }

    #[test]
    fn append_refuses_a_sequence_gap() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let t = TenantId::new_random();
        let error = store.append(&[event(2, t, b"x")]).unwrap_err();
        assert!(matches!(
            error,
            Error::OutOfOrder {
                expected: 1,
                got: 2
            }
        ));
        assert_eq!(store.head(), 0);
    }

    #[test]
    fn a_flipped_byte_in_a_record_is_reported_with_its_sequence() {
        let t = TenantId::new_random();
        let mut record = encode_record(&[event(7, t, b"payload"), event(8, t, b"more")]);
        let last = record.len() - 1;
        record[last] ^= 0x01;
        match decode_record(7, &record) {
            Err(Error::Corrupt { seq, .. }) => assert_eq!(seq, 7),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn a_truncated_record_is_corrupt_not_a_panic() {
        let t = TenantId::new_random();
        let record = encode_record(&[event(1, t, b"payload")]);
        for cut in 0..record.len() {
            assert!(decode_record(1, &record[..cut]).is_err());
        }
    }
}
