//! The stored encoding of events: every variant round-trips, and bad bytes are an error,
//! never a panic.

mod support;

use chrono::Duration;
use events::event::{DecodeError, FORMAT_V1};
use events::{
    CommandId, Envelope, Event, EventHash, KeyId, LicenseType, Reminder, ReminderFrequency,
    Restriction, Retention, Role, TypeCode,
};
use support::*;
use uuid::Uuid;

/// Position of a variant in [`Event`]. The match is exhaustive on purpose: a new variant does
/// not compile until it gets a sample below.
fn variant_index(event: &Event) -> usize {
    match event {
        Event::TenantCreated { .. } => 0,
        Event::LicenseTypeDefined { .. } => 1,
        Event::LicensesProvisioned { .. } => 2,
        Event::LicenseTerminated { .. } => 3,
        Event::LicenseAssigned { .. } => 4,
        Event::LicenseUnassigned { .. } => 5,
        Event::LicenseReassigned { .. } => 6,
        Event::AddonAttached { .. } => 7,
        Event::AddonDetached { .. } => 8,
        Event::GroupCreated { .. } => 9,
        Event::GroupMoved { .. } => 10,
        Event::GroupRenamed { .. } => 11,
        Event::RestrictionSet { .. } => 12,
        Event::RestrictionCleared { .. } => 13,
        Event::UserCreated { .. } => 14,
        Event::UserMoved { .. } => 15,
        Event::UserRenamed { .. } => 16,
        Event::UserRemoved { .. } => 17,
        Event::RetentionSet { .. } => 18,
        Event::PriceSet { .. } => 19,
        Event::ApiKeyIssued { .. } => 20,
        Event::ApiKeyRevoked { .. } => 21,
        Event::UserNumbersSet { .. } => 22,
        Event::WebhookSet { .. } => 23,
        Event::ReminderDelivered { .. } => 24,
        Event::ScopedApiKeyIssued { .. } => 25,
        Event::FeatureDefined { .. } => 26,
        Event::RestrictionFeaturesSet { .. } => 27,
        Event::GroupContactSet { .. } => 28,
        Event::NotificationTemplateSet { .. } => 29,
        Event::WebhookSecretSet { .. } => 30,
        Event::GroupsUnblocked { .. } => 31,
        Event::UnblockedNotified { .. } => 32,
        Event::UserRestrictionSet { .. } => 33,
        Event::UserRestrictionCleared { .. } => 34,
        Event::UserGroupAdded { .. } => 35,
        Event::UserGroupRemoved { .. } => 36,
        Event::LicenseCountedIn { .. } => 37,
        Event::ServiceDefined { .. } => 38,
        Event::UsageRecorded { .. } => 39,
        Event::CartCreated { .. } => 40,
        Event::CartConfirmed { .. } => 41,
    }
}

const VARIANTS: usize = 42;

/// One sample of every variant, with every optional field filled in somewhere.
fn one_of_each() -> Vec<Event> {
    let catalogue = events::catalogue::default_catalogue();
    let outbound: LicenseType = catalogue[&TypeCode::from("outbound")].clone();
    let full_restriction = Restriction {
        enabled: true,
        limits: [("sip_number".into(), 10), ("mobile_app".into(), 7)]
            .into_iter()
            .collect(),
        valid_from: Some(at(2024, 1, 1)),
        valid_until: Some(at(2024, 12, 31) + Duration::microseconds(123_456)),
        reminder: Some(Reminder {
            days_before: 14,
            frequency: ReminderFrequency::Every30Days,
        }),
    };
    vec![
        Event::TenantCreated {
            name: "Acme s.r.o. – Praha".into(),
            billing_timezone: "Europe/Prague".into(),
            currency: "CZK".into(),
        },
        Event::LicenseTypeDefined {
            definition: outbound,
        },
        provisioned("phone_system", &[license(1), license(2), license(3)]),
        terminated(license(3), "phone_system"),
        assigned(license(1), "phone_system", user(1)),
        unassigned(license(1), "phone_system", user(1)),
        reassigned(license(1), "phone_system", user(1), user(2)),
        attached(license(4), "call_recording", license(1)),
        detached(license(4), "call_recording", license(1)),
        group_created(group(2), "Sub", Some(group(1))),
        Event::GroupMoved {
            group: group(2),
            parent: None,
        },
        Event::GroupRenamed {
            group: group(2),
            name: "Renamed".into(),
        },
        restriction_set(group(1), full_restriction),
        Event::RestrictionCleared { group: group(1) },
        Event::UserCreated {
            user: user(1),
            name: "Alice".into(),
            group: group(1),
            extension: Some("101".into()),
            number: Some("+420123456789".into()),
        },
        Event::UserMoved {
            user: user(1),
            group: group(2),
        },
        Event::UserRenamed {
            user: user(1),
            name: "Alice N.".into(),
        },
        user_removed(user(1)),
        Event::RetentionSet {
            retention: Retention::Months(9),
        },
        Event::PriceSet {
            license_type: "phone_system".into(),
            unit_price_minor: 1500,
            currency: "EUR".into(),
            effective_from: at(2024, 2, 1) + Duration::microseconds(1),
        },
        Event::ApiKeyIssued {
            key: KeyId(Uuid::from_u128(7)),
            name: "ci".into(),
            role: Role::Billing,
            token_hash: [0xab; 32],
        },
        Event::ApiKeyRevoked {
            key: KeyId(Uuid::from_u128(7)),
        },
        Event::ScopedApiKeyIssued {
            key: KeyId(Uuid::from_u128(9)),
            name: "dealer".into(),
            role: Role::Admin,
            token_hash: [0xcd; 32],
            group: group(2),
        },
        Event::UserNumbersSet {
            user: user(8),
            extension: Some("101".into()),
            number: None,
        },
        Event::WebhookSet {
            url: "https://hooks.example.com/ledger".into(),
        },
        Event::ReminderDelivered {
            group: group(9),
            due_at: at(2024, 3, 1),
        },
        Event::FeatureDefined {
            definition: events::Feature {
                code: "ukey2".into(),
                name: "UKEY2".into(),
                enabled_by_default: true,
            },
        },
        Event::RestrictionFeaturesSet {
            group: group(1),
            features: [("ukey2".into(), false), ("face_id".into(), true)]
                .into_iter()
                .collect(),
        },
        Event::GroupContactSet {
            group: group(9),
            contact_email: Some("admin@example.com".into()),
        },
        Event::NotificationTemplateSet {
            template: events::NotificationTemplate::default(),
        },
        Event::WebhookSecretSet {
            secret: "whsec_00".into(),
        },
        Event::GroupsUnblocked {
            group: group(9),
            groups: vec![group(9)],
            users: 1,
            at: at(2024, 3, 1),
        },
        Event::UnblockedNotified { version: 7 },
        Event::UserRestrictionSet {
            user: user(1),
            restriction: events::UserRestriction {
                limits: [("phone_system".into(), 1), ("call_recording".into(), 0)]
                    .into_iter()
                    .collect(),
                valid_from: Some(at(2024, 2, 1)),
                valid_until: Some(at(2024, 11, 30) + Duration::microseconds(654_321)),
            },
        },
        Event::UserRestrictionCleared { user: user(1) },
        Event::UserGroupAdded {
            user: user(1),
            group: group(2),
        },
        Event::UserGroupRemoved {
            user: user(1),
            group: group(2),
        },
        Event::LicenseCountedIn {
            license: license(1),
            user: user(1),
            group: group(2),
        },
        Event::ServiceDefined {
            service: events::metering::Service {
                code: "speech_to_text".into(),
                name: "Speech-to-Text".into(),
                unit: "minute".into(),
                enabled: true,
                base_allowance: 5000,
                monthly_cap: Some(2000),
                requires: vec!["ai_topics".into()],
            },
        },
        Event::UsageRecorded {
            records: vec![events::metering::UsageRecord {
                id: "call-1".into(),
                service: "speech_to_text".into(),
                quantity: 12,
                counted: 10,
                user: Some(user(1)),
                queue: Some("support".into()),
                occurred_at: at(2024, 3, 1),
                outcome: events::metering::RecordOutcome::Capped,
            }],
        },
        Event::CartCreated {
            cart: events::CartId(uuid::Uuid::from_u128(0xca47)),
            commands: r#"[{"op":"provision","type":"phone_system","quantity":2}]"#.into(),
            previewed_version: 41,
            amount_minor_delta: 3000,
        },
        Event::CartConfirmed {
            cart: events::CartId(uuid::Uuid::from_u128(0xca47)),
            amount_minor_delta: 3000,
        },
    ]
}

fn envelope(seq: u64, event: Event) -> Envelope {
    Envelope {
        seq,
        tenant: TENANT,
        version: seq + 100,
        recorded_at: now() + Duration::microseconds(seq as i64 * 1_000_001),
        actor: format!("key-{seq}"),
        reason: seq
            .is_multiple_of(2)
            .then(|| "monthly clean-up".to_string()),
        command_id: CommandId(Uuid::from_u128(0xc0de + u128::from(seq))),
        prev_hash: EventHash([seq as u8; 32]),
        event,
    }
}

fn sample_envelopes() -> Vec<Envelope> {
    one_of_each()
        .into_iter()
        .enumerate()
        .map(|(index, event)| envelope(index as u64 + 1, event))
        .collect()
}

#[test]
fn the_samples_cover_every_event_variant() {
    let mut seen: Vec<usize> = one_of_each().iter().map(variant_index).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..VARIANTS).collect::<Vec<_>>());
}

#[test]
fn every_event_variant_round_trips_through_the_envelope_encoding() {
    for original in sample_envelopes() {
        let bytes = original.encode();
        assert_eq!(bytes[0], FORMAT_V1);
        let decoded = Envelope::decode(&bytes)
            .unwrap_or_else(|e| panic!("{} does not decode: {e}", original.event.kind()));
        assert_eq!(decoded, original);
        // Encoding is deterministic, so hashes chain reproducibly.
        assert_eq!(decoded.encode(), bytes);
        assert_eq!(
            Envelope::hash_of(&bytes),
            Envelope::hash_of(&decoded.encode())
        );
    }
}

#[test]
fn every_event_of_a_created_tenant_round_trips() {
    for (index, event) in tenant_created().into_iter().enumerate() {
        let original = envelope(index as u64 + 1, event);
        assert_eq!(Envelope::decode(&original.encode()).unwrap(), original);
    }
}

#[test]
fn decoding_nothing_is_an_empty_record_error() {
    assert!(matches!(Envelope::decode(&[]), Err(DecodeError::Empty)));
}

#[test]
fn decoding_an_unknown_format_tag_is_an_error() {
    let mut bytes = sample_envelopes()[0].encode();
    for tag in [0u8, 2, 0x7f, 0xff] {
        bytes[0] = tag;
        match Envelope::decode(&bytes) {
            Err(DecodeError::UnknownFormat(got)) => assert_eq!(got, tag),
            other => panic!("tag {tag}: expected UnknownFormat, got {other:?}"),
        }
    }
}

#[test]
fn decoding_every_truncation_or_a_trailing_byte_is_an_error() {
    for original in sample_envelopes() {
        let bytes = original.encode();
        for length in 1..bytes.len() {
            assert!(
                matches!(
                    Envelope::decode(&bytes[..length]),
                    Err(DecodeError::Bincode(_))
                ),
                "{} cut to {length} of {} bytes decoded",
                original.event.kind(),
                bytes.len()
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            Envelope::decode(&longer).is_err(),
            "{} with a trailing byte decoded",
            original.event.kind()
        );
    }
}

/// A tiny deterministic generator (xorshift64*), so garbage is reproducible without a crate.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

/// Whatever the bytes, decoding returns; when it succeeds the envelope re-encodes to bytes that
/// decode to the same envelope.
fn decode_survives(bytes: &[u8]) {
    if let Ok(envelope) = Envelope::decode(bytes) {
        let again = Envelope::decode(&envelope.encode()).expect("a decoded envelope re-encodes");
        assert_eq!(again, envelope);
    }
}

#[test]
fn decoding_corrupted_records_never_panics() {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    for original in sample_envelopes() {
        let bytes = original.encode();
        for position in 1..bytes.len() {
            // Flip bits.
            for mask in [0x01u8, 0x80, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[position] ^= mask;
                decode_survives(&corrupt);
            }
            // A varint announcing u64::MAX (a huge string or sequence length) must not
            // allocate or hang: the decoder's size limit refuses it.
            let mut huge = bytes[..position].to_vec();
            huge.push(0xfd);
            huge.extend([0xff; 8]);
            huge.extend_from_slice(&bytes[position..]);
            decode_survives(&huge);
            // Random bytes from here on.
            let mut tail = bytes[..position].to_vec();
            tail.extend((position..bytes.len()).map(|_| noise.byte()));
            decode_survives(&tail);
        }
    }
}

#[test]
fn decoding_random_bytes_never_panics() {
    let mut noise = Noise(0x0123_4567_89ab_cdef);
    for _ in 0..20_000 {
        let length = (noise.next() % 256) as usize;
        let mut bytes: Vec<u8> = (0..length).map(|_| noise.byte()).collect();
        if let Some(first) = bytes.first_mut() {
            *first = FORMAT_V1;
        }
        decode_survives(&bytes);
    }
}
