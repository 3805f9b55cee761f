//! The ledger's own tests: as-of caches and folds, snapshots of a live state.

use super::as_of::Kept;
use super::*;
use crate::store::sled_store::SledStore;
use crate::store::EncodedEvent;
use chrono::Utc;
use chrono::{Duration, TimeZone};
use events::{evolve, Envelope, Tenant};
use events::{GroupId, NewUser, TypeCode, UserId};

/// `command` for `tenant`, by a test actor.
pub(crate) fn request(tenant: TenantId, command: Command) -> Request {
    Request {
        tenant,
        actor: Actor {
            id: "test".into(),
            reason: None,
            scope: None,
        },
        expected_version: None,
        command,
    }
}

/// Decide `command` for `tenant` at `at` against `world`, which folds its events; the
/// events as the writer would append them.
/// Past states the ledger keeps for queries about past instants.
fn past_states_kept(ledger: &Ledger) -> usize {
    ledger
        .handle
        .shared
        .past_states
        .inner
        .lock()
        .unwrap()
        .states
        .len()
}

fn decide_at(
    world: &mut World,
    tenant: TenantId,
    command: Command,
    at: chrono::DateTime<Utc>,
) -> Vec<EncodedEvent> {
    let mut encoded = Vec::new();
    world
        .decide_into(
            &request(tenant, command),
            CommandId::new_random(),
            at,
            &mut encoded,
        )
        .unwrap();
    encoded
}

/// The command that creates the tests' tenant.
fn create_acme() -> Command {
    Command::CreateTenant {
        name: "Acme".into(),
        billing_timezone: "UTC".into(),
        currency: "EUR".into(),
    }
}

fn naive_tenant_at(store: &dyn EventStore, tenant: TenantId, at: chrono::DateTime<Utc>) -> Tenant {
    let mut state = Tenant::empty(tenant);
    for stored in store.read_tenant(tenant).unwrap() {
        let envelope = Envelope::decode(&stored.bytes).unwrap();
        if envelope.recorded_at > at {
            break;
        }
        evolve(&mut state, &envelope.event, envelope.version);
        state.last_hash = stored.hash();
    }
    state
}

#[test]
fn checkpoints_of_a_long_fold_never_evict_kept_answers() {
    let tenant = TenantId::new_random();
    let past = PastStates::with_limits(10, 3);
    let at = |version| {
        let mut state = Tenant::empty(tenant);
        state.version = version;
        Arc::new(state)
    };
    past.keep(tenant, 7, 7, at(7), Kept::Answer);
    past.keep(tenant, 40, 40, at(40), Kept::Answer);
    for version in (100..10_000).step_by(100) {
        past.keep(tenant, version, version, at(version), Kept::Checkpoint);
    }
    for answer in [7, 40] {
        let found = past.nearest_at_or_below(tenant, answer).map(|(v, _, _)| v);
        assert_eq!(found, Some(answer), "the answer at {answer} was evicted");
    }
    // The checkpoints keep to their own bound: only the three most recent are left.
    assert_eq!(
        past.nearest_at_or_below(tenant, 9_600).map(|(v, ..)| v),
        Some(40)
    );
    assert_eq!(
        past.nearest_at_or_below(tenant, 9_750).map(|(v, ..)| v),
        Some(9_700)
    );
    // A fourth answer evicts the least recently used answer, not a checkpoint.
    past.keep(tenant, 50, 50, at(50), Kept::Answer);
    past.keep(tenant, 60, 60, at(60), Kept::Answer);
    assert_eq!(
        past.nearest_at_or_below(tenant, 9_900).map(|(v, ..)| v),
        Some(9_900)
    );
    let left: Vec<u64> = [7, 40, 50, 60]
        .into_iter()
        .filter(|&v| past.nearest_at_or_below(tenant, v).map(|(f, ..)| f) == Some(v))
        .collect();
    assert_eq!(left.len(), 3, "answers kept: {left:?}");
}

#[test]
fn a_snapshot_copy_keeps_its_state_while_the_writer_goes_on() {
    let tenant = TenantId::new_random();
    let mut world = World::default();
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let run = |world: &mut World, command: Command| {
        decide_at(world, tenant, command, at);
    };
    run(&mut world, create_acme());
    let copy = world.clone();
    assert!(Arc::ptr_eq(&copy.tenants[&tenant], &world.tenants[&tenant]));
    let before = Tenant::clone(&copy.tenants[&tenant]);
    run(
        &mut world,
        Command::ProvisionLicenses {
            license_type: "phone_system".into(),
            quantity: 3,
        },
    );
    assert_eq!(
        *copy.tenants[&tenant], before,
        "the copy moved with the writer"
    );
    assert_eq!(copy.head, before.version);
    assert_eq!(
        world.tenants[&tenant].owned[&TypeCode::from("phone_system")],
        3
    );
    assert!(world.head > copy.head);
}

#[test]
fn checkpoints_are_spaced_so_a_whole_history_fits_the_budget() {
    let mut live = Tenant::empty(TenantId::new_random());
    let past = PastStates::with_limits(1_000, 256);
    live.version = 40_000;
    // Weight 1: the budget holds 256 states, 8 are needed at the fewest events apart.
    assert_eq!(past.checkpoint_spacing(&live), CHECKPOINT_EVENTS);
    // Weight 1 but a history of 10 M events: 256 checkpoints 40 000 apart cover it.
    live.version = 10_000_000;
    let spacing = past.checkpoint_spacing(&live);
    assert_eq!(spacing, CHECKPOINT_EVENTS * 8);
    assert!(spacing * 256 >= live.version);
    // A state heavier than the budget: one checkpoint for the whole history.
    for i in 0..2_000u32 {
        let user = events::state::User {
            id: UserId::new_random(),
            name: format!("u{i}"),
            group: GroupId::new_random(),
            extension: None,
            number: None,
            removed: false,
            licenses: Default::default(),
            restriction: None,
            other_groups: Default::default(),
        };
        live.users.insert(user.id, user);
    }
    assert!(past.checkpoint_spacing(&live) >= live.version);
}

#[test]
fn as_of_answers_from_checkpoints_equal_a_fold_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let tenant = TenantId::new_random();
    let group = GroupId::new_random();
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut world = World::default();
    let run = |world: &mut World, command: Command, at| {
        store
            .append(&decide_at(world, tenant, command, at))
            .unwrap();
    };
    run(&mut world, create_acme(), start);
    run(
        &mut world,
        Command::CreateGroup {
            group,
            name: "All".into(),
            parent: None,
            contact_email: None,
        },
        start,
    );
    // Five batches of 10 000 users an hour apart: 50 000 events, two checkpoints and more.
    for hour in 1..=5 {
        let users = (0..10_000)
            .map(|i| NewUser {
                user: UserId::new_random(),
                name: format!("user {hour}.{i}"),
                group,
                extension: None,
                number: None,
            })
            .collect();
        run(
            &mut world,
            Command::CreateUsers(users),
            start + Duration::hours(hour),
        );
    }
    let ledger = Ledger::start(store.clone()).unwrap();
    let instants =
        [3, 5, 2, 4, 1, 5, 0].map(|h| start + Duration::hours(h) + Duration::minutes(30));
    for at in instants {
        let expected = naive_tenant_at(store.as_ref(), tenant, at);
        let got = ledger.with_tenant_at(tenant, at, Tenant::clone).unwrap();
        assert_eq!(got, expected, "as of {at}");
    }
    let kept = past_states_kept(&ledger);
    assert!(kept >= 2, "queries left past states behind ({kept})");
    // Nothing happened since the last batch: the live state answers.
    let later = start + Duration::hours(9);
    let live = Tenant::clone(&ledger.read().tenants[&tenant]);
    assert_eq!(
        ledger.with_tenant_at(tenant, later, Tenant::clone).unwrap(),
        live
    );
    // Before the tenant existed: the empty state.
    let before = start - Duration::hours(1);
    let empty = ledger
        .with_tenant_at(tenant, before, Tenant::clone)
        .unwrap();
    assert_eq!(empty.version, 0);
}

#[test]
fn as_of_group_state_and_entitlements_from_the_past_index_equal_a_fold() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    let tenant = TenantId::new_random();
    let (root, team) = (GroupId::new_random(), GroupId::new_random());
    let users: Vec<UserId> = (0..6).map(|_| UserId::new_random()).collect();
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let hour = |h: i64| start + Duration::hours(h);
    let mut world = World::default();
    let run = |world: &mut World, command: Command, at| {
        store
            .append(&decide_at(world, tenant, command, at))
            .unwrap();
    };
    let phone = TypeCode::from("phone_system");
    let recording = TypeCode::from("call_recording");
    let setup = [
        create_acme(),
        Command::CreateGroup {
            group: root,
            name: "All".into(),
            parent: None,
            contact_email: None,
        },
        Command::CreateGroup {
            group: team,
            name: "Sales".into(),
            parent: Some(root),
            contact_email: None,
        },
        Command::SetRestriction {
            group: team,
            restriction: events::Restriction {
                enabled: true,
                limits: [(phone.clone(), 4)].into(),
                valid_from: None,
                valid_until: Some(hour(5)),
                reminder: None,
            },
        },
        Command::ProvisionLicenses {
            license_type: phone.clone(),
            quantity: 10,
        },
        Command::ProvisionLicenses {
            license_type: recording.clone(),
            quantity: 10,
        },
        Command::CreateUsers(
            users
                .iter()
                .enumerate()
                .map(|(i, user)| NewUser {
                    user: *user,
                    name: format!("user {i}"),
                    group: if i % 2 == 0 { team } else { root },
                    extension: None,
                    number: None,
                })
                .collect(),
        ),
    ];
    for command in setup {
        run(&mut world, command, start);
    }
    // Hour by hour: users take seats (some with recording), one moves, one gives back.
    for (h, user) in users.iter().enumerate().take(4) {
        let addons = if h % 2 == 0 {
            vec![recording.clone()]
        } else {
            vec![]
        };
        run(
            &mut world,
            Command::AssignByType {
                user: *user,
                license_type: phone.clone(),
                addons,
                group: None,
            },
            hour(h as i64 + 1),
        );
    }
    run(
        &mut world,
        Command::UpdateUser {
            user: users[1],
            name: None,
            group: Some(team),
            extension: None,
            number: None,
        },
        hour(6),
    );
    let held = world.tenants[&tenant]
        .users
        .get(&users[0])
        .unwrap()
        .licenses
        .clone();
    for license in held {
        run(&mut world, Command::UnassignLicense { license }, hour(7));
    }
    let ledger = Ledger::start(store.clone()).unwrap();
    let state = |t: &Tenant, group, at| format!("{:?}", projections::group_state(t, group, at));
    let instants: Vec<_> = (0..=8).map(|h| hour(h) + Duration::minutes(30)).collect();
    let mut rebuilt = Vec::new();
    for &at in &instants {
        for group in [root, team] {
            rebuilt.push(ledger.with_view_at(tenant, at, None, |t| state(t, group, at)));
        }
        for user in &users {
            for t in [&phone, &recording] {
                rebuilt.push(ledger.with_view_at(tenant, at, Some(*user), |s| {
                    format!("{:?}", projections::entitlement(s, *user, t, at))
                }));
            }
        }
    }
    let folded_states = past_states_kept(&ledger);
    assert_eq!(folded_states, 0, "the past index answered without folding");
    let mut folded = Vec::new();
    for &at in &instants {
        for group in [root, team] {
            folded.push(ledger.with_tenant_at(tenant, at, |t| state(t, group, at)));
        }
        for user in &users {
            for t in [&phone, &recording] {
                folded.push(ledger.with_tenant_at(tenant, at, |s| {
                    format!("{:?}", projections::entitlement(s, *user, t, at))
                }));
            }
        }
    }
    let rebuilt: Vec<String> = rebuilt.into_iter().map(Result::unwrap).collect();
    let folded: Vec<String> = folded.into_iter().map(Result::unwrap).collect();
    assert_eq!(rebuilt, folded);
    assert!(
        folded
            .iter()
            .any(|answer| answer.contains("window_expired")),
        "the team's window closes within the history"
    );
    // The index is part of the snapshot: a start from it answers the same.
    let snapshot = super::snapshots::encode(&ledger.read()).unwrap();
    let restored = super::snapshots::decode(&snapshot).unwrap();
    assert_eq!(restored.past, ledger.read().past);
}
