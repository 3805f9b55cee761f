//! Replay equals live: a scripted session of commands is decided and folded one by one; folding
//! the produced events from scratch gives the same `Tenant`, at every version.

mod support;

use chrono::Duration;
use events::{
    decide, evolve, Command, CommandId, Context, Envelope, Event, EventHash, GroupId, KeyId,
    LicenseId, NewUser, Rejection, Restriction, Retention, Role, Rule, Tenant, TypeCode, UserId,
};
use support::*;
use uuid::Uuid;

/// A live tenant driven command by command, and the log it wrote.
struct Session {
    live: Tenant,
    log: Vec<Event>,
    /// The live state after each accepted command.
    snapshots: Vec<Tenant>,
    step: u128,
}

impl Session {
    fn new() -> Session {
        Session {
            live: Tenant::empty(TENANT),
            log: Vec::new(),
            snapshots: Vec::new(),
            step: 0,
        }
    }

    fn decide(&mut self, command: &Command) -> Result<Vec<Event>, Rejection> {
        self.step += 1;
        let ctx = Context {
            now: now() + Duration::minutes(self.step as i64),
            command_id: CommandId(Uuid::from_u128(0xc0_0000 + self.step)),
        };
        let first = decide(&self.live, command, &ctx);
        // Pure: the same question always gets the same answer.
        assert_eq!(decide(&self.live, command, &ctx), first, "{command:?}");
        first
    }

    /// Apply a command that must be accepted; return its events.
    #[track_caller]
    fn accept(&mut self, command: Command) -> Vec<Event> {
        let events = self
            .decide(&command)
            .unwrap_or_else(|r| panic!("{command:?} was rejected: {r:?}"));
        fold(&mut self.live, &events);
        self.log.extend(events.iter().cloned());
        assert_invariants(&self.live);
        self.snapshots.push(self.live.clone());
        events
    }

    /// Try a command that must be refused; the live state stays as it was.
    #[track_caller]
    fn refuse(&mut self, command: Command) -> Rejection {
        let before = self.live.clone();
        match self.decide(&command) {
            Ok(events) => panic!("{command:?} was accepted with {events:?}"),
            Err(rejection) => {
                assert_eq!(self.live, before);
                rejection
            }
        }
    }

    fn free(&self, license_type: &str) -> LicenseId {
        *self.live.free[&TypeCode::from(license_type)]
            .iter()
            .next()
            .unwrap_or_else(|| panic!("no free {license_type}"))
    }

    fn held_by(&self, holder: UserId, license_type: &str) -> LicenseId {
        *self.live.users[&holder]
            .licenses
            .iter()
            .find(|id| self.live.licenses[id].license_type.as_str() == license_type)
            .unwrap_or_else(|| panic!("{holder} holds no {license_type}"))
    }
}

fn replay(log: &[Event]) -> Tenant {
    let mut state = Tenant::empty(TENANT);
    fold(&mut state, log);
    state
}

/// Replay the log as a restarted process does: each event written to bytes and read back.
fn replay_from_disk(log: &[Event]) -> Tenant {
    let mut state = Tenant::empty(TENANT);
    for (index, event) in log.iter().enumerate() {
        let version = index as u64 + 1;
        let stored = Envelope {
            seq: version,
            tenant: TENANT,
            version,
            recorded_at: now(),
            actor: "test".into(),
            reason: None,
            command_id: CommandId(Uuid::from_u128(1)),
            prev_hash: EventHash::default(),
            event: event.clone(),
        }
        .encode();
        let read = Envelope::decode(&stored).expect("a written event reads back");
        evolve(&mut state, &read.event, read.version);
    }
    state
}

const SALES: GroupId = group(1);
const SALES_EU: GroupId = group(2);
const SUPPORT: GroupId = group(3);
const ALICE: UserId = user(1);
const BOB: UserId = user(2);
const CAROL: UserId = user(3);

fn new_user(id: UserId, in_group: GroupId, extension: &str) -> NewUser {
    NewUser {
        user: id,
        name: format!("user {id}"),
        group: in_group,
        extension: Some(extension.into()),
        number: None,
    }
}

fn provision(session: &mut Session, license_type: &str, quantity: u32) {
    session.accept(Command::ProvisionLicenses {
        license_type: license_type.into(),
        quantity,
    });
}

/// A session touching every kind of command, with refusals in between.
fn scripted_session() -> Session {
    let mut s = Session::new();
    s.accept(Command::CreateTenant {
        name: "Acme".into(),
        billing_timezone: "Europe/Prague".into(),
        currency: "EUR".into(),
    });
    s.accept(Command::CreateGroup {
        group: SALES,
        name: "Sales".into(),
        parent: None,
        contact_email: None,
    });
    s.accept(Command::CreateGroup {
        group: SALES_EU,
        name: "Sales EU".into(),
        parent: Some(SALES),
        contact_email: None,
    });
    s.accept(Command::CreateGroup {
        group: SUPPORT,
        name: "Support".into(),
        parent: None,
        contact_email: None,
    });
    s.accept(Command::CreateUsers(vec![
        new_user(ALICE, SALES_EU, "101"),
        new_user(BOB, SALES, "102"),
        new_user(CAROL, SUPPORT, "201"),
    ]));
    for (license_type, quantity) in [
        ("phone_system", 5),
        ("call_recording", 3),
        ("voice", 2),
        ("outbound", 1),
        ("cc_supervisor", 1),
        ("historical_analytics_viewer", 1),
    ] {
        provision(&mut s, license_type, quantity);
    }
    s.accept(Command::SetRestriction {
        group: SALES,
        restriction: limits(&[("phone_system", 2), ("call_recording", 2)]),
    });
    s.accept(Command::AssignByType {
        user: ALICE,
        license_type: "phone_system".into(),
        addons: vec!["call_recording".into()],
        group: None,
    });
    s.accept(Command::AssignByType {
        user: BOB,
        license_type: "phone_system".into(),
        addons: vec![],
        group: None,
    });
    // SALES is full now.
    let rejection = s.refuse(Command::SetRestriction {
        group: SALES_EU,
        restriction: limits(&[("phone_system", 0)]),
    });
    assert_eq!(rejection.violations()[0].rule, Rule::LimitBelowUsage);
    let voice = s.free("voice");
    s.accept(Command::AssignLicense {
        license: voice,
        user: ALICE,
        group: None,
    });
    let alice_phone = s.held_by(ALICE, "phone_system");
    let outbound = s.free("outbound");
    s.accept(Command::AttachAddon {
        base: alice_phone,
        addon: outbound,
    });
    // Carol holds no voice licence, so the phone cannot follow her with its outbound add-on.
    let rejection = s.refuse(Command::ReassignLicense {
        license: alice_phone,
        user: CAROL,
        group: None,
    });
    assert_eq!(rejection.violations()[0].rule, Rule::RequiresMissing);
    s.accept(Command::DetachAddon {
        base: alice_phone,
        addon: outbound,
    });
    s.accept(Command::ReassignLicense {
        license: alice_phone,
        user: CAROL,
        group: None,
    });
    s.refuse(Command::TerminateLicense {
        license: alice_phone,
    });
    s.accept(Command::UpdateUser {
        user: BOB,
        name: Some("Robert".into()),
        group: Some(SUPPORT),
        extension: None,
        number: None,
    });
    s.accept(Command::UpdateGroup {
        group: SALES_EU,
        name: Some("EMEA".into()),
        parent: Some(Some(SUPPORT)),
        contact_email: None,
    });
    s.accept(Command::UpdateGroup {
        group: SALES_EU,
        name: None,
        parent: Some(None),
        contact_email: None,
    });
    let supervisor = s.free("cc_supervisor");
    s.accept(Command::AssignLicense {
        license: supervisor,
        user: ALICE,
        group: None,
    });
    let viewer = s.free("historical_analytics_viewer");
    s.accept(Command::AttachAddon {
        base: supervisor,
        addon: viewer,
    });
    s.accept(Command::ReassignLicense {
        license: supervisor,
        user: BOB,
        group: None,
    });
    // Five owned, two assigned: three free, two of them go.
    s.accept(Command::SetQuantity {
        license_type: "phone_system".into(),
        quantity: 3,
    });
    s.refuse(Command::SetQuantity {
        license_type: "phone_system".into(),
        quantity: 1,
    });
    s.accept(Command::SetQuantity {
        license_type: "voice".into(),
        quantity: 4,
    });
    let recording = s.free("call_recording");
    s.accept(Command::TerminateLicense { license: recording });
    let bob_phone = s.held_by(BOB, "phone_system");
    s.accept(Command::UnassignLicense { license: bob_phone });
    s.accept(Command::ReassignLicense {
        license: s.held_by(CAROL, "phone_system"),
        user: ALICE,
        group: None,
    });
    let alice_voice = s.held_by(ALICE, "voice");
    s.accept(Command::UnassignLicense {
        license: alice_voice,
    });
    s.refuse(Command::DeleteUser { user: BOB });
    s.accept(Command::UnassignLicense {
        license: supervisor,
    });
    s.accept(Command::DeleteUser { user: BOB });
    s.accept(Command::CreateUser(new_user(user(4), SALES, "102")));
    s.accept(Command::ClearRestriction { group: SALES });
    s.accept(Command::SetRestriction {
        group: SUPPORT,
        restriction: Restriction {
            valid_from: Some(at(2024, 1, 1)),
            valid_until: Some(at(2024, 12, 31)),
            ..limits(&[("sip_number", 5), ("mobile_app", 5)])
        },
    });
    s.accept(Command::SetRetention(Retention::Months(6)));
    // Instants finer than the log's microseconds, as a client may send them.
    s.accept(Command::SetPrice {
        license_type: "phone_system".into(),
        unit_price_minor: 1500,
        currency: "EUR".into(),
        effective_from: at(2024, 1, 1) + Duration::nanoseconds(123_456_789),
    });
    s.accept(Command::SetRestriction {
        group: SALES,
        restriction: Restriction {
            valid_from: Some(at(2024, 1, 1) + Duration::nanoseconds(1)),
            valid_until: Some(at(2024, 12, 31) + Duration::nanoseconds(999_999_999)),
            ..limits(&[("phone_system", 2)])
        },
    });
    s.accept(Command::IssueKey {
        key: KeyId(Uuid::from_u128(1)),
        name: "ops".into(),
        role: Role::Admin,
        token_hash: [3; 32],
        group: None,
    });
    s.accept(Command::RevokeKey {
        key: KeyId(Uuid::from_u128(1)),
    });
    s
}

#[test]
fn replaying_every_event_from_scratch_equals_the_live_state() {
    let session = scripted_session();
    assert_eq!(session.live.version, session.log.len() as u64);
    assert_eq!(replay(&session.log), session.live);
}

// Regression: instants with nanoseconds were stored in live state but read back from disk as
// microseconds, so a restarted process disagreed with the one that wrote the log.
#[test]
fn replaying_the_log_read_back_from_disk_equals_the_live_state() {
    let session = scripted_session();
    assert_eq!(replay_from_disk(&session.log), session.live);
}

#[test]
fn replaying_any_prefix_equals_the_live_state_at_that_version() {
    let session = scripted_session();
    for snapshot in &session.snapshots {
        let prefix = &session.log[..snapshot.version as usize];
        assert_eq!(&replay(prefix), snapshot, "at version {}", snapshot.version);
    }
}

#[test]
fn the_scripted_session_ends_where_the_story_says() {
    let live = scripted_session().live;
    assert_eq!(live.owned[&TypeCode::from("phone_system")], 3);
    assert_eq!(live.owned[&TypeCode::from("voice")], 4);
    assert_eq!(live.owned[&TypeCode::from("call_recording")], 2);
    assert!(live.users[&BOB].removed);
    assert_eq!(live.extensions["102"], user(4));
    assert_eq!(live.users[&BOB].name, "Robert");
    assert_eq!(live.groups[&SALES_EU].name, "EMEA");
    assert_eq!(live.groups[&SALES_EU].parent, None);
    // Alice holds the phone that went round via Carol, with its recording.
    let phone = live.users[&ALICE]
        .licenses
        .iter()
        .map(|id| &live.licenses[id])
        .find(|l| l.license_type.as_str() == "phone_system")
        .expect("alice holds a phone");
    assert_eq!(phone.addons.len(), 1);
    assert_eq!(
        used(&live, SALES_EU),
        counts(&[("call_recording", 1), ("phone_system", 1)])
    );
    assert_eq!(used(&live, SUPPORT), counts(&[]));
    assert_eq!(used(&live, SALES), counts(&[]));
    assert!(live.keys[&KeyId(Uuid::from_u128(1))].revoked);
    assert_eq!(live.retention, Retention::Months(6));
}
