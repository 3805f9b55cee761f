//! Golden files: the exact stored bytes of one sample envelope per event variant, per released
//! format version, kept forever (SPEC "a newer binary reads every older event").
//!
//! Each file in `tests/golden/v1/` is named after the event kind (`license_assigned.bin`) and
//! holds `Envelope::encode()` of the sample built below from fixed ids, instants and hashes.
//! The samples are written out literally, not from the catalogue or other helpers, so they
//! never move when the code around them does.
//!
//! A missing file fails the tests. A new event variant gets its file, once, with
//! `LEDGER_WRITE_GOLDEN=1 cargo test -p events --test golden`, which writes missing files only
//! and never touches an existing one.

use chrono::{DateTime, Duration, TimeZone, Utc};
use events::event::FORMAT_V1;
use events::{
    CommandId, Envelope, Event, EventHash, Feature, GroupId, KeyId, Kind, LicenseId, LicenseType,
    NotificationTemplate, Reminder, ReminderFrequency, Restriction, Retention, Role, TenantId,
    TypeCode, UserId, UserRestriction,
};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use uuid::Uuid;

/// The directory of the current (and so far only) format.
const V1: &str = "v1";
/// Set to `1` to write the golden files that are missing.
const WRITE_ENV: &str = "LEDGER_WRITE_GOLDEN";

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn license(n: u128) -> LicenseId {
    LicenseId(Uuid::from_u128(
        0x1111_0000_0000_0000_0000_0000_0000_0000 + n,
    ))
}

fn user(n: u128) -> UserId {
    UserId(Uuid::from_u128(
        0x2222_0000_0000_0000_0000_0000_0000_0000 + n,
    ))
}

fn group(n: u128) -> GroupId {
    GroupId(Uuid::from_u128(
        0x3333_0000_0000_0000_0000_0000_0000_0000 + n,
    ))
}

fn key(n: u128) -> KeyId {
    KeyId(Uuid::from_u128(
        0x4444_0000_0000_0000_0000_0000_0000_0000 + n,
    ))
}

fn code(text: &str) -> TypeCode {
    TypeCode::from(text)
}

/// An instant with microseconds, the precision the log stores.
fn instant(y: i32, m: u32, d: u32, h: u32, micros: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap() + Duration::microseconds(micros)
}

/// The file name of a variant. The match is exhaustive on purpose: a new variant does not
/// compile until it is given a name here and a sample in [`samples`].
fn file_name(event: &Event) -> &'static str {
    match event {
        Event::TenantCreated { .. } => "tenant_created.bin",
        Event::LicenseTypeDefined { .. } => "license_type_defined.bin",
        Event::LicensesProvisioned { .. } => "licenses_provisioned.bin",
        Event::LicenseTerminated { .. } => "license_terminated.bin",
        Event::LicenseAssigned { .. } => "license_assigned.bin",
        Event::LicenseUnassigned { .. } => "license_unassigned.bin",
        Event::LicenseReassigned { .. } => "license_reassigned.bin",
        Event::AddonAttached { .. } => "addon_attached.bin",
        Event::AddonDetached { .. } => "addon_detached.bin",
        Event::GroupCreated { .. } => "group_created.bin",
        Event::GroupMoved { .. } => "group_moved.bin",
        Event::GroupRenamed { .. } => "group_renamed.bin",
        Event::RestrictionSet { .. } => "restriction_set.bin",
        Event::RestrictionCleared { .. } => "restriction_cleared.bin",
        Event::UserCreated { .. } => "user_created.bin",
        Event::UserMoved { .. } => "user_moved.bin",
        Event::UserRenamed { .. } => "user_renamed.bin",
        Event::UserRemoved { .. } => "user_removed.bin",
        Event::RetentionSet { .. } => "retention_set.bin",
        Event::PriceSet { .. } => "price_set.bin",
        Event::ApiKeyIssued { .. } => "api_key_issued.bin",
        Event::ApiKeyRevoked { .. } => "api_key_revoked.bin",
        Event::UserNumbersSet { .. } => "user_numbers_set.bin",
        Event::WebhookSet { .. } => "webhook_set.bin",
        Event::ReminderDelivered { .. } => "reminder_delivered.bin",
        Event::ScopedApiKeyIssued { .. } => "scoped_api_key_issued.bin",
        Event::FeatureDefined { .. } => "feature_defined.bin",
        Event::RestrictionFeaturesSet { .. } => "restriction_features_set.bin",
        Event::GroupContactSet { .. } => "group_contact_set.bin",
        Event::NotificationTemplateSet { .. } => "notification_template_set.bin",
        Event::WebhookSecretSet { .. } => "webhook_secret_set.bin",
        Event::GroupsUnblocked { .. } => "groups_unblocked.bin",
        Event::UnblockedNotified { .. } => "unblocked_notified.bin",
        Event::UserRestrictionSet { .. } => "user_restriction_set.bin",
        Event::UserRestrictionCleared { .. } => "user_restriction_cleared.bin",
        Event::UserGroupAdded { .. } => "user_group_added.bin",
        Event::UserGroupRemoved { .. } => "user_group_removed.bin",
        Event::LicenseCountedIn { .. } => "license_counted_in.bin",
        Event::ServiceDefined { .. } => "service_defined.bin",
        Event::UsageRecorded { .. } => "usage_recorded.bin",
        Event::CartCreated { .. } => "cart_created.bin",
        Event::CartConfirmed { .. } => "cart_confirmed.bin",
    }
}

/// Number of [`Event`] variants in format v1.
const V1_VARIANTS: usize = 42;

/// One event of each variant, with optional fields filled in where the variant has them.
fn v1_events() -> Vec<Event> {
    vec![
        Event::TenantCreated {
            name: "Acme s.r.o. – Praha".into(),
            billing_timezone: "Europe/Prague".into(),
            currency: "CZK".into(),
        },
        Event::LicenseTypeDefined {
            definition: LicenseType {
                code: code("outbound"),
                kind: Kind::Addon,
                attaches_to: vec![code("phone_system"), code("voice")],
                requires_any: vec![code("voice")],
                excludes: vec![code("cc_agent")],
            },
        },
        Event::LicensesProvisioned {
            license_type: code("phone_system"),
            ids: vec![license(1), license(2), license(3)],
        },
        Event::LicenseTerminated {
            license: license(3),
            license_type: code("phone_system"),
        },
        Event::LicenseAssigned {
            license: license(1),
            license_type: code("phone_system"),
            user: user(1),
        },
        Event::LicenseUnassigned {
            license: license(1),
            license_type: code("phone_system"),
            user: user(1),
        },
        Event::LicenseReassigned {
            license: license(1),
            license_type: code("phone_system"),
            from: user(1),
            to: user(2),
        },
        Event::AddonAttached {
            addon: license(4),
            addon_type: code("call_recording"),
            base: license(1),
        },
        Event::AddonDetached {
            addon: license(4),
            addon_type: code("call_recording"),
            base: license(1),
        },
        Event::GroupCreated {
            group: group(2),
            name: "Sales EU".into(),
            parent: Some(group(1)),
        },
        Event::GroupMoved {
            group: group(2),
            parent: None,
        },
        Event::GroupRenamed {
            group: group(2),
            name: "Sales Europe".into(),
        },
        Event::RestrictionSet {
            group: group(1),
            restriction: Restriction {
                enabled: true,
                limits: [(code("mobile_app"), 7), (code("sip_number"), 10)]
                    .into_iter()
                    .collect(),
                valid_from: Some(instant(2024, 1, 1, 0, 0)),
                valid_until: Some(instant(2024, 12, 31, 23, 123_456)),
                reminder: Some(Reminder {
                    days_before: 14,
                    frequency: ReminderFrequency::Every30Days,
                }),
            },
        },
        Event::RestrictionCleared { group: group(1) },
        Event::UserCreated {
            user: user(1),
            name: "Alice Nováková".into(),
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
        Event::UserRemoved { user: user(1) },
        Event::RetentionSet {
            retention: Retention::Months(9),
        },
        Event::PriceSet {
            license_type: code("phone_system"),
            unit_price_minor: 1500,
            currency: "CZK".into(),
            effective_from: instant(2024, 2, 1, 0, 1),
        },
        Event::ApiKeyIssued {
            key: key(7),
            name: "billing export".into(),
            role: Role::Billing,
            token_hash: [0xab; 32],
        },
        Event::ApiKeyRevoked { key: key(7) },
        Event::UserNumbersSet {
            user: user(1),
            extension: Some("101".into()),
            number: Some("+420 123 456 789".replace(' ', "")),
        },
        Event::WebhookSet {
            url: "https://hooks.example.com/ledger?tenant=acme".into(),
        },
        Event::ReminderDelivered {
            group: group(1),
            due_at: instant(2024, 12, 1, 9, 0),
        },
        Event::ScopedApiKeyIssued {
            key: key(8),
            name: "dealer north".into(),
            role: Role::Admin,
            token_hash: [0xcd; 32],
            group: group(2),
        },
        Event::FeatureDefined {
            definition: Feature {
                code: code("ukey2"),
                name: "UKEY2".into(),
                enabled_by_default: false,
            },
        },
        Event::RestrictionFeaturesSet {
            group: group(2),
            features: [(code("ukey2"), false), (code("face_id"), true)]
                .into_iter()
                .collect(),
        },
        Event::GroupContactSet {
            group: group(2),
            contact_email: Some("admin@acme.example.com".into()),
        },
        Event::NotificationTemplateSet {
            template: NotificationTemplate {
                subject: "{{ group_name }} ends in {{ days_left }} days".into(),
                body: "Group {{ group_name }} ends on {{ expiry_date }}.".into(),
            },
        },
        Event::WebhookSecretSet {
            secret: "whsec_0123456789abcdef0123456789abcdef".into(),
        },
        Event::GroupsUnblocked {
            group: group(1),
            groups: vec![group(1), group(2)],
            users: 3,
            at: instant(2024, 12, 2, 9, 0),
        },
        Event::UnblockedNotified { version: 41 },
        Event::UserRestrictionSet {
            user: user(3),
            restriction: UserRestriction {
                limits: [(code("phone_system"), 1), (code("call_recording"), 0)]
                    .into_iter()
                    .collect(),
                valid_from: Some(instant(2024, 2, 1, 0, 0)),
                valid_until: Some(instant(2024, 11, 30, 23, 999_999)),
            },
        },
        Event::UserRestrictionCleared { user: user(3) },
        Event::UserGroupAdded {
            user: user(3),
            group: group(2),
        },
        Event::UserGroupRemoved {
            user: user(3),
            group: group(2),
        },
        Event::LicenseCountedIn {
            license: license(4),
            user: user(3),
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
                user: Some(user(3)),
                queue: Some("support".into()),
                occurred_at: instant(2024, 3, 1, 9, 30),
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

/// The sample envelope around the `index`-th event: every field fixed, `reason` present on
/// every other one.
fn envelope(index: usize, event: Event) -> Envelope {
    let n = index as u64 + 1;
    Envelope {
        seq: 1_000 + n,
        tenant: TenantId(Uuid::from_u128(0x7e7a_0000_0000_0000_0000_0000_0000_0001)),
        version: n,
        recorded_at: instant(2024, 5, 15, 9, n as i64 * 1_000_001),
        actor: format!("key:{n}"),
        reason: n.is_multiple_of(2).then(|| format!("ticket #{n}")),
        command_id: CommandId(Uuid::from_u128(0xc0de_0000 + u128::from(n))),
        prev_hash: EventHash(*blake3::hash(&n.to_le_bytes()).as_bytes()),
        event,
    }
}

/// `(file name, sample envelope)` of every v1 variant.
fn samples() -> Vec<(&'static str, Envelope)> {
    v1_events()
        .into_iter()
        .enumerate()
        .map(|(index, event)| (file_name(&event), envelope(index, event)))
        .collect()
}

/// The v1 directory, after writing missing files once per test run if asked to.
fn v1_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = golden_root().join(V1);
        if std::env::var_os(WRITE_ENV).is_some_and(|v| v == "1") {
            write_missing(&dir);
        }
        dir
    })
}

/// Write the file of every sample that has none. An existing file is never rewritten: its
/// bytes are what a released binary stored.
fn write_missing(dir: &Path) {
    std::fs::create_dir_all(dir).expect("the golden directory can be created");
    for (name, sample) in samples() {
        let path = dir.join(name);
        if !path.exists() {
            std::fs::write(&path, sample.encode()).expect("a golden file can be written");
        }
    }
}

#[track_caller]
fn read_golden(name: &str) -> Vec<u8> {
    let path = v1_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} cannot be read ({e}); a new event variant gets its file with \
             `{WRITE_ENV}=1 cargo test -p events --test golden`, an existing one is never \
             regenerated",
            path.display()
        )
    })
}

#[test]
fn the_samples_cover_every_event_variant_once() {
    let mut names: Vec<&str> = samples().iter().map(|(name, _)| *name).collect();
    assert_eq!(names.len(), V1_VARIANTS);
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), V1_VARIANTS, "a variant has two samples");
}

#[test]
fn every_v1_golden_file_decodes_to_its_sample() {
    for (name, sample) in samples() {
        let bytes = read_golden(name);
        assert_eq!(bytes.first(), Some(&FORMAT_V1), "{name}: format tag");
        let decoded =
            Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{name} no longer decodes: {e}"));
        assert_eq!(decoded, sample, "{name} decodes to something else");
    }
}

#[test]
fn encoding_every_sample_still_gives_the_v1_golden_bytes() {
    for (name, sample) in samples() {
        let bytes = read_golden(name);
        assert!(
            sample.encode() == bytes,
            "{name}: the v1 encoding changed; an existing variant's shape must never change \
             (add a new variant instead)"
        );
    }
}

#[test]
fn every_v1_golden_file_has_a_sample() {
    let known: Vec<&str> = samples().iter().map(|(name, _)| *name).collect();
    for entry in std::fs::read_dir(v1_dir()).expect("tests/golden/v1 exists") {
        let name = entry.expect("a readable directory entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            known.contains(&name.as_ref()),
            "tests/golden/v1/{name} has no sample: golden files are never renamed or deleted"
        );
    }
}

/// Every file of every format version ever released still decodes with this binary, and the
/// decoded envelope encodes and decodes again to itself.
#[test]
fn every_golden_file_of_every_format_version_still_decodes() {
    let mut decoded = 0;
    for version in std::fs::read_dir(golden_root()).expect("tests/golden exists") {
        let version = version.expect("a readable directory entry").path();
        if !version.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&version).expect("a readable version directory") {
            let path = file.expect("a readable directory entry").path();
            if path.extension().is_none_or(|e| e != "bin") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("a readable golden file");
            let envelope = Envelope::decode(&bytes)
                .unwrap_or_else(|e| panic!("{} no longer decodes: {e}", path.display()));
            assert_eq!(Envelope::decode(&envelope.encode()).unwrap(), envelope);
            decoded += 1;
        }
    }
    assert!(
        decoded >= V1_VARIANTS,
        "only {decoded} golden files found under {}",
        golden_root().display()
    );
}
