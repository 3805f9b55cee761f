//! Inputs the cargo-fuzz targets of `fuzz/` (run by `scripts/fuzz.sh`) found to crash, kept
//! as they were found under `fuzz/regressions/<target>/` and replayed here the way the target
//! feeds them in, so a fixed crash stays fixed without libFuzzer.

use ledger::store::record::{decode_record, encode_record};
use ledger::store::{EncodedEvent, Error};

/// `[format u8][count u32 LE][blake3 of body, 32 bytes]`, as in `sled_store`.
const RECORD_HEADER_BYTES: usize = 1 + 4 + 32;

/// The `decode_record` target's reading of its input: a mode byte (odd: recompute the record's
/// checksum over its body), the first sequence (u64 LE), then the record.
fn decode_record_input(input: &[u8]) -> (u64, Vec<u8>) {
    let (mode, rest) = input.split_first().expect("a mode byte");
    let (seq, record) = rest.split_first_chunk::<8>().expect("a first sequence");
    let mut record = record.to_vec();
    if mode & 1 == 1 && record.len() >= RECORD_HEADER_BYTES {
        let checksum = blake3::hash(&record[RECORD_HEADER_BYTES..]);
        record[5..RECORD_HEADER_BYTES].copy_from_slice(checksum.as_bytes());
    }
    (u64::from_le_bytes(*seq), record)
}

// Regression: a record key naming first sequence u64::MAX, with a valid checksum and more than
// one event, overflowed `first_seq + index` (a panic with overflow checks, a silent wrap to
// sequence 0 without) instead of being refused as corrupt.
#[test]
fn record_whose_sequences_pass_u64_max_is_corrupt_not_a_panic() {
    let found = include_bytes!("../../fuzz/regressions/decode_record/first_seq_overflow.bin");
    let (first_seq, record) = decode_record_input(found);
    assert!(
        matches!(
            decode_record(first_seq, &record),
            Err(Error::Corrupt { .. })
        ),
        "the fuzzer's record must be refused as corrupt"
    );
    let event = |seq| EncodedEvent {
        seq,
        tenant: events::TenantId(uuid::Uuid::from_u128(1)),
        bytes: vec![1, 2, 3],
    };
    let wrapped = encode_record(&[event(u64::MAX), event(0)]);
    match decode_record(u64::MAX, &wrapped) {
        Err(Error::Corrupt { seq, .. }) => assert_eq!(seq, u64::MAX),
        other => panic!("a record past u64::MAX must be corrupt, got {other:?}"),
    }
}

// Regression (schemathesis, negative data): `GET /events?after=` above i64::MAX was accepted,
// though the document gives `after` as int64 like every sequence.
#[tokio::test]
async fn events_after_beyond_int64_is_a_bad_request() {
    let server = crate::support::Server::start();
    let tenant = server.tenant().await;
    let path = tenant.path("/events?after=9223372036854775808");
    let (status, body) = server.get(&path, &tenant.auditor).await;
    crate::support::assert_error(
        status,
        &body,
        axum::http::StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let path = tenant.path("/events?after=9223372036854775807");
    let (status, body) = server.get(&path, &tenant.auditor).await;
    assert_eq!(status, axum::http::StatusCode::OK, "{body}");
}
