//! `events::Envelope::decode` on arbitrary bytes: never panics, never allocates beyond
//! `ENVELOPE_BYTES_MAX`, and whatever it accepts re-encodes into bytes that decode to the same
//! envelope (so a stored event always reads back as what was decided).

#![no_main]

use events::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(envelope) = Envelope::decode(bytes) else {
        return;
    };
    let encoded = envelope.encode();
    let again = Envelope::decode(&encoded).expect("a re-encoded envelope decodes");
    assert_eq!(envelope, again, "decode(encode(e)) != e");
    // The encoding is a function of the envelope: encoding twice gives the same bytes.
    assert_eq!(encoded, again.encode(), "encode is not deterministic");
});
