//! The bulk-import path on arbitrary bytes: `parse_csv`, then `decide` of the `Import` command
//! against a small fixed tenant, then `evolve` and encoding of every event it yields. Never
//! panics; a file is either refused with row errors or yields events the writer can store.

#![no_main]

use chrono::{DateTime, TimeZone, Utc};
use events::{
    decide, evolve, Command, CommandId, Context, Envelope, EventHash, GroupId, NewUser, Rejection,
    Restriction, Tenant, TenantId, UserId,
};
use ledger::http::imports::parse_csv;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use uuid::Uuid;

const TENANT: TenantId = TenantId(Uuid::from_u128(0x7e7a_0001));

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 15, 0, 0, 0)
        .single()
        .expect("a valid day")
}

fn context(n: u128) -> Context {
    Context {
        now: now(),
        command_id: CommandId(Uuid::from_u128(0xc0_0000 + n)),
    }
}

/// Decide `command` and fold its events; the fixture's own commands always pass.
fn apply(state: &mut Tenant, command: Command, n: u128) {
    let events = decide(state, &command, &context(n))
        .unwrap_or_else(|e| panic!("fixture command {command:?} refused: {e}"));
    for event in &events {
        let version = state.version + 1;
        evolve(state, event, version);
    }
}

/// The vendor's four users (and two namesakes), one group with a quota on phone systems, and
/// licences of the types the vendor's sample names.
fn tenant() -> &'static Tenant {
    static TENANT_STATE: OnceLock<Tenant> = OnceLock::new();
    TENANT_STATE.get_or_init(|| {
        let mut state = Tenant::empty(TENANT);
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        apply(
            &mut state,
            Command::CreateTenant {
                name: "Acme".into(),
                billing_timezone: "UTC".into(),
                currency: "EUR".into(),
            },
            next(),
        );
        let group = GroupId(Uuid::from_u128(0x3000_0001));
        apply(
            &mut state,
            Command::CreateGroup {
                group,
                name: "Office".into(),
                parent: None,
                contact_email: None,
            },
            next(),
        );
        let names = ["John", "Alice", "Lucie", "Hallie", "Sam", "Sam"];
        for (index, name) in names.iter().enumerate() {
            let user = NewUser {
                user: UserId(Uuid::from_u128(0x2000_0000 + index as u128)),
                name: (*name).into(),
                group,
                extension: (index == 0).then(|| "101".into()),
                number: None,
            };
            apply(&mut state, Command::CreateUser(user), next());
        }
        for (code, quantity) in [
            ("phone_system", 6),
            ("device_ip_phone", 4),
            ("device_mobile_app", 2),
            ("license_dnc_checking_enabled", 2),
            ("call_recording", 4),
            ("device_desktop_app", 2),
        ] {
            let command = Command::ProvisionLicenses {
                license_type: code.into(),
                quantity,
            };
            apply(&mut state, command, next());
        }
        let restriction = Restriction {
            enabled: true,
            limits: BTreeMap::from([("phone_system".into(), 5)]),
            valid_from: None,
            valid_until: None,
            reminder: None,
        };
        apply(
            &mut state,
            Command::SetRestriction { group, restriction },
            next(),
        );
        state
    })
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(rows) = parse_csv(bytes) else {
        return;
    };
    let state = tenant();
    let command = Command::Import(rows);
    match decide(state, &command, &context(0xffff)) {
        Ok(events) => {
            let mut after = state.clone();
            for event in &events {
                let version = after.version + 1;
                evolve(&mut after, event, version);
                let envelope = Envelope {
                    seq: version,
                    tenant: TENANT,
                    version,
                    recorded_at: now(),
                    actor: "fuzz".into(),
                    reason: None,
                    command_id: CommandId(Uuid::from_u128(0xffff)),
                    prev_hash: EventHash::default(),
                    event: event.clone(),
                };
                let _ = envelope.encode();
            }
        }
        Err(Rejection::ImportRejected(errors)) => assert!(!errors.is_empty()),
        Err(_) => {}
    }
});
