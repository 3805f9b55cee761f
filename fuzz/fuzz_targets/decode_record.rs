//! `decode_record` (one sled value holding a batch of events) on arbitrary bytes with an
//! arbitrary first sequence: never panics, never allocates beyond the record's own size, and
//! whatever it accepts re-encodes to exactly the same bytes.
//!
//! The first input byte chooses whether the record's blake3 checksum is recomputed over the
//! fuzzed body; without that the fuzzer would almost never get past the checksum into the body
//! parser.

#![no_main]

use ledger::store::record::{decode_record, encode_record};
use libfuzzer_sys::fuzz_target;

/// `[format u8][count u32 LE][blake3 of body, 32 bytes]`.
const RECORD_HEADER_BYTES: usize = 1 + 4 + 32;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let Some((seq_bytes, record)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let first_seq = u64::from_le_bytes(*seq_bytes);
    let mut record = record.to_vec();
    if mode & 1 == 1 && record.len() >= RECORD_HEADER_BYTES {
        let checksum = blake3::hash(&record[RECORD_HEADER_BYTES..]);
        record[5..RECORD_HEADER_BYTES].copy_from_slice(checksum.as_bytes());
    }
    let Ok(events) = decode_record(first_seq, &record) else {
        return;
    };
    for (index, event) in events.iter().enumerate() {
        assert_eq!(Some(event.seq), first_seq.checked_add(index as u64));
        assert!(event.bytes.len() <= record.len());
    }
    assert_eq!(
        encode_record(&events),
        record,
        "a decoded record re-encodes exactly"
    );
});
