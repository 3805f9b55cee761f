//! The record: how a store keeps many events in one value, so replay reads few large values
//! instead of one per event. Shared by every durable backend (sled, PostgreSQL), so a record
//! reads the same wherever it was written.
//!
//! A record is `[format u8][count u32 LE][blake3 of body, 32 bytes][body]`, the body being
//! `count` times `[seq u64 LE][tenant 16 bytes][len u32 LE][encoded envelope]`. The checksum
//! catches torn or flipped records before any event inside is trusted.

use super::{EncodedEvent, Error, EventRef};
use events::TenantId;
use uuid::Uuid;

const RECORD_FORMAT_V1: u8 = 1;
const RECORD_HEADER_BYTES: usize = 1 + 4 + 32;
/// Events in one record at most; a larger append is several records in one atomic batch.
pub const RECORD_EVENTS_MAX: usize = 4096;
/// Largest event accepted inside a record; a corrupt length never allocates beyond it.
pub const EVENT_BYTES_MAX: usize = events::event::ENVELOPE_BYTES_MAX as usize;

/// Encode events into one record.
pub fn encode_record(batch: &[EncodedEvent]) -> Vec<u8> {
    let body_len: usize = batch.iter().map(|e| 8 + 16 + 4 + e.bytes.len()).sum();
    let mut body = Vec::with_capacity(body_len);
    for event in batch {
        body.extend_from_slice(&event.seq.to_le_bytes());
        body.extend_from_slice(event.tenant.as_uuid().as_bytes());
        body.extend_from_slice(&(event.bytes.len() as u32).to_le_bytes());
        body.extend_from_slice(&event.bytes);
    }
    let mut record = Vec::with_capacity(RECORD_HEADER_BYTES + body.len());
    record.push(RECORD_FORMAT_V1);
    record.extend_from_slice(&(batch.len() as u32).to_le_bytes());
    record.extend_from_slice(blake3::hash(&body).as_bytes());
    record.extend_from_slice(&body);
    record
}

/// The tenants with events in `events`, each once, in order: the keys of a record's tenant index.
pub fn record_tenants(events: &[EncodedEvent]) -> Vec<TenantId> {
    let mut tenants: Vec<TenantId> = events.iter().map(|e| e.tenant).collect();
    tenants.sort();
    tenants.dedup();
    tenants
}

/// Decode and check one record whose key says it starts at `first_seq`.
pub fn decode_record(first_seq: u64, record: &[u8]) -> Result<Vec<EncodedEvent>, Error> {
    let mut events = Vec::new();
    visit_record(first_seq, record, &mut |event| {
        events.push(event.to_owned_event());
        true
    })?;
    Ok(events)
}

/// Check one record whose key says it starts at `first_seq`, then lend each event in it to
/// `visit` in order until it returns `false`. The checksum is checked before any event is
/// lent, so `visit` never sees bytes of a damaged record. Returns whether `visit` asked for
/// more.
pub fn visit_record(
    first_seq: u64,
    record: &[u8],
    visit: &mut dyn FnMut(EventRef<'_>) -> bool,
) -> Result<bool, Error> {
    let corrupt = |reason: &str| Error::Corrupt {
        seq: first_seq,
        reason: reason.to_string(),
    };
    if record.len() < RECORD_HEADER_BYTES {
        return Err(corrupt("record shorter than its header"));
    }
    if record[0] != RECORD_FORMAT_V1 {
        return Err(corrupt(&format!("unknown record format {}", record[0])));
    }
    let count = u32::from_le_bytes([record[1], record[2], record[3], record[4]]) as usize;
    let checksum = &record[5..RECORD_HEADER_BYTES];
    let body = &record[RECORD_HEADER_BYTES..];
    if blake3::hash(body).as_bytes() != checksum {
        return Err(corrupt("record checksum mismatch"));
    }
    // Split the whole record before lending anything: a damaged layout is reported as such
    // even when `visit` would have stopped early.
    let mut spans: Vec<(u64, TenantId, std::ops::Range<usize>)> =
        Vec::with_capacity(count.min(body.len() / 28 + 1));
    let mut offset = 0usize;
    for index in 0..count {
        // A corrupt key can put `first_seq` near u64::MAX: refuse, never overflow.
        let expected_seq = first_seq
            .checked_add(index as u64)
            .ok_or_else(|| corrupt("sequence beyond u64::MAX"))?;
        let rest = &body[offset..];
        if rest.len() < 28 {
            return Err(corrupt("record body truncated"));
        }
        let seq = u64::from_le_bytes(rest[0..8].try_into().expect("8 bytes"));
        let tenant = Uuid::from_slice(&rest[8..24]).map_err(|_| corrupt("bad tenant id"))?;
        let len = u32::from_le_bytes(rest[24..28].try_into().expect("4 bytes")) as usize;
        if seq != expected_seq {
            return Err(Error::Corrupt {
                seq: expected_seq,
                reason: format!("sequence gap: found {seq}"),
            });
        }
        if len > EVENT_BYTES_MAX || rest.len() < 28 + len {
            return Err(Error::Corrupt {
                seq,
                reason: "event length out of bounds".into(),
            });
        }
        let start = offset + 28;
        spans.push((seq, TenantId(tenant), start..start + len));
        offset = start + len;
    }
    if offset != body.len() {
        return Err(corrupt("trailing bytes after the last event"));
    }
    for (seq, tenant, range) in spans {
        let event = EventRef {
            seq,
            tenant,
            bytes: &body[range],
        };
        if !visit(event) {
            return Ok(false);
        }
    }
    Ok(true)
}
