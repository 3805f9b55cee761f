//! The what-if answer equals what actually happens.
//!
//! A random world is built (a small group tree with restrictions and windows, users, licences
//! of several types, assignments, maybe a price and a retention), then a random list of the
//! commands a what-if previews is drawn against it. The preview is taken; then the same
//! commands are executed one by one for real, exactly as the writer (`src/ledger.rs`) does:
//! decided at the same instant with the same command ids, wrapped in envelopes, encoded,
//! hashed, folded into the tenant and into billing. The preview must have said, command by
//! command, what the execution did: the same acceptances and rejections, the same events, the
//! same violations, the same lost entitlements and the same month's billing peaks and amounts.

use chrono::{DateTime, Duration, TimeZone, Utc};
use events::{
    decide, evolve, Command, CommandId, Context, Envelope, Event, GroupId, LicenseId, NewUser,
    Rejection, Restriction, Retention, Tenant, TenantId, TypeCode, UserId, Violation,
};
use projections::billing::{invoice, Billing, Month};
use projections::whatif::{preview_command_id, what_if, WhatIf};
use projections::{entitlement, Entitlement};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Cases per property: enough to reach every rule, few enough to stay fast in debug.
const CASES: u32 = 128;
/// Commands per what-if.
const COMMANDS_MAX: usize = 12;
const USERS: u8 = 8;
const GROUPS: u8 = 4;

const TENANT: TenantId = TenantId(Uuid::from_u128(0x7e7a_0777));

/// Base types first, then add-ons: requirements (`outbound` needs `voice`, analytics need a
/// supervisor seat), exclusions (cc seats) and `sip_number` ≥ `mobile_app` all come into play.
const TYPES: [&str; 9] = [
    "phone_system",
    "voice",
    "cc_agent",
    "cc_supervisor",
    "call_recording",
    "sip_number",
    "mobile_app",
    "outbound",
    "historical_analytics_viewer",
];
const BASE_TYPES: usize = 4;

const TIMEZONES: [&str; 3] = ["UTC", "Europe/Prague", "America/New_York"];

fn type_code(index: u8) -> TypeCode {
    TypeCode::from(TYPES[usize::from(index) % TYPES.len()])
}

fn user_id(index: u8) -> UserId {
    UserId(Uuid::from_u128(0x2000_0000 + u128::from(index % USERS)))
}

fn group_id(index: u8) -> GroupId {
    GroupId(Uuid::from_u128(0x3000_0000 + u128::from(index % GROUPS)))
}

fn setup_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 20, 8, 0, 0).unwrap()
}

/// A restriction tried in the setup: group, limits (type, limit), valid_until in hours after
/// the setup.
type RestrictionSpec = (u8, Vec<(u8, u64)>, Option<i64>);

/// The random part of the world.
#[derive(Clone, Debug)]
struct World {
    timezone: &'static str,
    /// Base assignments tried: (user, base type, add-on types).
    assignments: Vec<(u8, u8, Vec<u8>)>,
    restrictions: Vec<RestrictionSpec>,
    retention_months: Option<u32>,
    phone_price: Option<i64>,
    /// Hours from the setup to the what-if's `at`.
    at_hours: i64,
}

/// One what-if command, with references resolved against the world when it is built.
#[derive(Clone, Debug)]
enum Op {
    SetRestriction {
        group: u8,
        enabled: bool,
        limits: Vec<(u8, u64)>,
        /// Hours after `at` (negative: already over).
        until: Option<i64>,
    },
    ClearRestriction(u8),
    SetQuantity(u8, u32),
    Provision(u8, u32),
    Terminate(u8),
    Assign(u8, u8),
    Unassign(u8),
    Reassign(u8, u8),
    Attach(u8, u8),
    Detach(u8, u8),
    AssignType(u8, u8, Vec<u8>),
    MoveUser(u8, u8),
    MoveGroup(u8, Option<u8>),
    SetRetention(Retention),
    SetPrice(u8, i64),
}

fn world() -> impl Strategy<Value = World> {
    (
        0..TIMEZONES.len(),
        prop::collection::vec(
            (
                0..USERS,
                0..BASE_TYPES as u8,
                prop::collection::vec(BASE_TYPES as u8..TYPES.len() as u8, 0..=2),
            ),
            0..=10,
        ),
        prop::collection::vec(
            (
                0..GROUPS,
                prop::collection::vec((0..TYPES.len() as u8, 0u64..=5), 0..=3),
                prop::option::weighted(0.4, 24i64..3_000),
            ),
            0..=3,
        ),
        prop::option::weighted(0.5, prop_oneof![Just(3u32), Just(6), Just(12)]),
        prop::option::weighted(0.5, 100i64..3_000),
        prop_oneof![0i64..48, 48i64..2_000],
    )
        .prop_map(
            |(timezone, assignments, restrictions, retention_months, phone_price, at_hours)| {
                World {
                    timezone: TIMEZONES[timezone],
                    assignments,
                    restrictions,
                    retention_months,
                    phone_price,
                    at_hours,
                }
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let any_type = 0..TYPES.len() as u8;
    prop_oneof![
        3 => (
            0..GROUPS,
            prop::bool::weighted(0.85),
            prop::collection::vec((0..TYPES.len() as u8, 0u64..=5), 0..=3),
            prop::option::weighted(0.5, prop_oneof![-200i64..0, 0i64..2_000]),
        )
            .prop_map(|(group, enabled, limits, until)| Op::SetRestriction {
                group,
                enabled,
                limits,
                until,
            }),
        1 => (0..GROUPS).prop_map(Op::ClearRestriction),
        2 => (any_type.clone(), 0u32..=8).prop_map(|(t, q)| Op::SetQuantity(t, q)),
        2 => (any_type.clone(), 0u32..=3).prop_map(|(t, q)| Op::Provision(t, q)),
        2 => any::<u8>().prop_map(Op::Terminate),
        3 => (any::<u8>(), 0..USERS + 1).prop_map(|(l, u)| Op::Assign(l, u)),
        2 => any::<u8>().prop_map(Op::Unassign),
        2 => (any::<u8>(), 0..USERS + 1).prop_map(|(l, u)| Op::Reassign(l, u)),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(b, a)| Op::Attach(b, a)),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(b, a)| Op::Detach(b, a)),
        3 => (
            0..USERS + 1,
            0..BASE_TYPES as u8,
            prop::collection::vec(BASE_TYPES as u8..TYPES.len() as u8, 0..=2),
        )
            .prop_map(|(u, t, addons)| Op::AssignType(u, t, addons)),
        2 => (0..USERS + 1, 0..GROUPS).prop_map(|(u, g)| Op::MoveUser(u, g)),
        1 => (0..GROUPS, prop::option::weighted(0.7, 0..GROUPS))
            .prop_map(|(g, p)| Op::MoveGroup(g, p)),
        1 => prop_oneof![
            Just(Retention::Days(14)),
            (0u32..=12).prop_map(Retention::Months),
        ]
        .prop_map(Op::SetRetention),
        1 => (any_type, -5i64..3_000).prop_map(|(t, p)| Op::SetPrice(t, p)),
    ]
}

/// A tenant and its billing, built by deciding commands and folding their events exactly as
/// the writer does.
#[derive(Clone)]
struct Ledger {
    tenant: Tenant,
    billing: Billing,
    seq: u64,
    commands: u128,
}

impl Ledger {
    fn new() -> Ledger {
        Ledger {
            tenant: Tenant::empty(TENANT),
            billing: Billing::default(),
            seq: 0,
            commands: 0,
        }
    }

    /// Decide `command` at `now` with `command_id`; fold its events if accepted.
    fn execute(
        &mut self,
        command: &Command,
        now: DateTime<Utc>,
        command_id: CommandId,
    ) -> Result<Vec<Event>, Rejection> {
        let ctx = Context { now, command_id };
        let produced = decide(&self.tenant, command, &ctx)?;
        for event in &produced {
            self.seq += 1;
            let envelope = Envelope {
                seq: self.seq,
                tenant: TENANT,
                version: self.tenant.version + 1,
                recorded_at: now,
                actor: "key:test".into(),
                reason: None,
                command_id,
                prev_hash: self.tenant.last_hash,
                event: event.clone(),
            };
            let bytes = envelope.encode();
            let hash = Envelope::hash_of(&bytes);
            evolve(&mut self.tenant, event, envelope.version);
            self.tenant.last_hash = hash;
            self.billing.apply(&envelope, hash);
        }
        Ok(produced)
    }

    /// Setup: rejections are part of a random world and are ignored.
    fn try_setup(&mut self, command: Command, now: DateTime<Utc>) {
        self.commands += 1;
        let id = CommandId(Uuid::from_u128(0xc000_0000 + self.commands));
        let _ = self.execute(&command, now, id);
    }

    fn setup(&mut self, command: Command, now: DateTime<Utc>) {
        let shown = format!("{command:?}");
        self.commands += 1;
        let id = CommandId(Uuid::from_u128(0xc000_0000 + self.commands));
        if let Err(e) = self.execute(&command, now, id) {
            panic!("setup command {shown} was refused: {e}");
        }
    }
}

fn build(world: &World) -> (Ledger, DateTime<Utc>) {
    let now = setup_start();
    let mut ledger = Ledger::new();
    ledger.setup(
        Command::CreateTenant {
            name: "Acme".into(),
            billing_timezone: world.timezone.into(),
            currency: "EUR".into(),
        },
        now,
    );
    // root 0 → 1 → 2 (three levels), and a second root 3.
    let parents = [None, Some(0u8), Some(1), None];
    for (group, parent) in parents.iter().enumerate() {
        ledger.setup(
            Command::CreateGroup {
                group: group_id(group as u8),
                name: format!("group {group}"),
                parent: parent.map(group_id),
                contact_email: None,
            },
            now,
        );
    }
    for user in 0..USERS {
        ledger.setup(
            Command::CreateUser(NewUser {
                user: user_id(user),
                name: format!("user {user}"),
                group: group_id(user % GROUPS),
                extension: None,
                number: None,
            }),
            now,
        );
    }
    for (index, quantity) in [4u32, 3, 2, 2, 4, 3, 3, 2, 2].into_iter().enumerate() {
        ledger.setup(
            Command::ProvisionLicenses {
                license_type: type_code(index as u8),
                quantity,
            },
            now,
        );
    }
    for (user, base, addons) in &world.assignments {
        ledger.try_setup(
            Command::AssignByType {
                user: user_id(*user),
                license_type: type_code(*base),
                addons: addons.iter().map(|a| type_code(*a)).collect(),
                group: None,
            },
            now,
        );
    }
    for (group, limits, until) in &world.restrictions {
        ledger.try_setup(
            Command::SetRestriction {
                group: group_id(*group),
                restriction: Restriction {
                    enabled: true,
                    limits: limits.iter().map(|(t, n)| (type_code(*t), *n)).collect(),
                    valid_from: None,
                    valid_until: until.map(|h| now + Duration::hours(h)),
                    reminder: None,
                },
            },
            now,
        );
    }
    if let Some(months) = world.retention_months {
        ledger.setup(Command::SetRetention(Retention::Months(months)), now);
    }
    if let Some(price) = world.phone_price {
        ledger.setup(
            Command::SetPrice {
                license_type: type_code(0),
                unit_price_minor: price,
                currency: "EUR".into(),
                effective_from: DateTime::<Utc>::UNIX_EPOCH,
            },
            now,
        );
    }
    (ledger, now + Duration::hours(world.at_hours))
}

/// The `index`-th licence of the world (any status, by id), or one that never existed.
fn license(tenant: &Tenant, index: u8) -> LicenseId {
    let ids: Vec<&LicenseId> = tenant.licenses.keys().collect();
    match ids.get(usize::from(index) % (ids.len() + 1)) {
        Some(id) => **id,
        None => LicenseId(Uuid::from_u128(0xdead_0001)),
    }
}

fn resolve(tenant: &Tenant, op: &Op, at: DateTime<Utc>) -> Command {
    let user = |index: u8| {
        if index >= USERS {
            UserId(Uuid::from_u128(0xdead_0002))
        } else {
            user_id(index)
        }
    };
    match op {
        Op::SetRestriction {
            group,
            enabled,
            limits,
            until,
        } => Command::SetRestriction {
            group: group_id(*group),
            restriction: Restriction {
                enabled: *enabled,
                limits: limits.iter().map(|(t, n)| (type_code(*t), *n)).collect(),
                valid_from: None,
                valid_until: until.map(|h| at + Duration::hours(h)),
                reminder: None,
            },
        },
        Op::ClearRestriction(group) => Command::ClearRestriction {
            group: group_id(*group),
        },
        Op::SetQuantity(t, quantity) => Command::SetQuantity {
            license_type: type_code(*t),
            quantity: *quantity,
        },
        Op::Provision(t, quantity) => Command::ProvisionLicenses {
            license_type: type_code(*t),
            quantity: *quantity,
        },
        Op::Terminate(l) => Command::TerminateLicense {
            license: license(tenant, *l),
        },
        Op::Assign(l, u) => Command::AssignLicense {
            license: license(tenant, *l),
            user: user(*u),
            group: None,
        },
        Op::Unassign(l) => Command::UnassignLicense {
            license: license(tenant, *l),
        },
        Op::Reassign(l, u) => Command::ReassignLicense {
            license: license(tenant, *l),
            user: user(*u),
            group: None,
        },
        Op::Attach(b, a) => Command::AttachAddon {
            base: license(tenant, *b),
            addon: license(tenant, *a),
        },
        Op::Detach(b, a) => Command::DetachAddon {
            base: license(tenant, *b),
            addon: license(tenant, *a),
        },
        Op::AssignType(u, t, addons) => Command::AssignByType {
            user: user(*u),
            license_type: type_code(*t),
            addons: addons.iter().map(|a| type_code(*a)).collect(),
            group: None,
        },
        Op::MoveUser(u, g) => Command::UpdateUser {
            user: user(*u),
            name: None,
            group: Some(group_id(*g)),
            extension: None,
            number: None,
        },
        Op::MoveGroup(g, p) => Command::UpdateGroup {
            group: group_id(*g),
            name: None,
            parent: Some(p.map(group_id)),
            contact_email: None,
        },
        Op::SetRetention(retention) => Command::SetRetention(*retention),
        Op::SetPrice(t, price) => Command::SetPrice {
            license_type: type_code(*t),
            unit_price_minor: *price,
            currency: "EUR".into(),
            effective_from: DateTime::<Utc>::UNIX_EPOCH,
        },
    }
}

fn violations(rejection: &Rejection) -> Vec<Violation> {
    match rejection {
        Rejection::RuleViolations(list) => list.clone(),
        Rejection::BatchRejected(items) => items.iter().flat_map(|(_, r)| violations(r)).collect(),
        _ => vec![],
    }
}

fn allowed(tenant: &Tenant, user: UserId, t: &TypeCode, at: DateTime<Utc>) -> Option<Entitlement> {
    entitlement(tenant, user, t, at)
}

/// Build the world, preview the commands, then execute them for real; check the preview
/// against what happened. Returns the preview for coverage checks.
fn preview_then_execute(world: &World, ops: &[Op]) -> Result<WhatIf, TestCaseError> {
    let (ledger, at) = build(world);
    let at = events::time::truncate_to_micros(at);
    let before = ledger.clone();
    let commands: Vec<Command> = ops
        .iter()
        .map(|op| resolve(&ledger.tenant, op, at))
        .collect();
    let preview = what_if(&ledger.tenant, &ledger.billing, at, &commands)
        .map_err(|e| TestCaseError::fail(format!("what-if refused: {e}")))?;

    // Now for real, one by one.
    let mut live = ledger;
    let mut executed = Vec::new();
    for (index, command) in commands.iter().enumerate() {
        let id = preview_command_id(&before.tenant, index);
        executed.push(live.execute(command, at, id));
    }

    prop_assert_eq!(preview.results.len(), commands.len());
    for (index, (previewed, happened)) in preview.results.iter().zip(&executed).enumerate() {
        prop_assert_eq!(
            &previewed.outcome,
            happened,
            "command {} ({:?})",
            index,
            &commands[index]
        );
    }
    prop_assert_eq!(preview.ok, executed.iter().all(Result::is_ok));
    let expected_violations: Vec<(usize, Violation)> = executed
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
        .flat_map(|(i, e)| violations(e).into_iter().map(move |v| (i, v)))
        .collect();
    let previewed_violations: Vec<(usize, Violation)> = preview
        .violations
        .iter()
        .map(|v| (v.index, v.violation.clone()))
        .collect();
    prop_assert_eq!(previewed_violations, expected_violations);

    // Lost entitlements: everyone entitled before and not after, as the live state says.
    let mut expected_blocks = Vec::new();
    for user in before.tenant.users.values().filter(|u| !u.removed) {
        let held: BTreeSet<TypeCode> = before.tenant.holdings(user.id).into_iter().collect();
        for t in held {
            let was = allowed(&before.tenant, user.id, &t, at).is_some_and(|e| e.allowed);
            let now = allowed(&live.tenant, user.id, &t, at);
            if was && !now.as_ref().is_some_and(|e| e.allowed) {
                let rule = now
                    .as_ref()
                    .and_then(|e| e.blocked_by())
                    .map_or("user_active", |c| c.rule);
                expected_blocks.push((user.id, t, rule));
            }
        }
    }
    let previewed_blocks: Vec<(UserId, TypeCode, &str)> = preview
        .would_block
        .iter()
        .map(|b| (b.user, b.license_type.clone(), b.rule))
        .collect();
    prop_assert_eq!(previewed_blocks, expected_blocks);

    // Billing of the month containing `at`: the peaks and amounts the live fold reached.
    let month = Month::of(at, before.billing.timezone);
    prop_assert_eq!(preview.month, month);
    let peaks_before = before.billing.month(month);
    let peaks_after = live.billing.month(month);
    for t in TYPES.iter().map(|t| TypeCode::from(*t)) {
        let was = peaks_before.get(&t).map_or(0, |f| f.peak_units);
        let is = peaks_after.get(&t).map_or(0, |f| f.peak_units);
        match preview.billing_delta.get(&t) {
            Some(delta) => {
                prop_assert_eq!(delta.peak_units_before, was, "{}", t);
                prop_assert_eq!(delta.peak_units_after, is, "{}", t);
            }
            None => prop_assert_eq!(was, is, "{} moved but is not in billing_delta", t),
        }
    }
    let total = |billing: &Billing| invoice(billing, month).total_minor;
    let summed: i64 = preview
        .billing_delta
        .values()
        .map(|d| d.amount_minor_delta)
        .sum();
    prop_assert_eq!(summed, total(&live.billing) - total(&before.billing));
    Ok(preview)
}

proptest! {
    #![proptest_config(Config { cases: CASES, ..Config::default() })]

    #[test]
    fn the_what_if_answer_is_what_executing_the_commands_does(
        world in world(),
        ops in prop::collection::vec(op(), 0..=COMMANDS_MAX),
    ) {
        preview_then_execute(&world, &ops)?;
    }
}

/// Guards the property against passing vacuously: over a fixed-seed run of the same
/// generators, previews accept and refuse commands, list violations, block users and move
/// billing.
#[test]
fn the_generated_cases_reach_acceptances_rejections_blocks_and_billing_moves() {
    let mut runner = TestRunner::deterministic();
    let strategy = (world(), prop::collection::vec(op(), 1..=COMMANDS_MAX));
    let (mut accepted, mut rejected, mut violations, mut blocks, mut billed) = (0, 0, 0, 0, 0);
    for _ in 0..CASES {
        let (world, ops) = strategy
            .new_tree(&mut runner)
            .expect("a generated case")
            .current();
        let preview = preview_then_execute(&world, &ops).expect("the property holds");
        for result in &preview.results {
            match result.outcome {
                Ok(_) => accepted += 1,
                Err(_) => rejected += 1,
            }
        }
        violations += preview.violations.len();
        blocks += preview.would_block.len();
        billed += preview
            .billing_delta
            .values()
            .filter(|d| d.peak_units_before != d.peak_units_after)
            .count();
    }
    assert!(accepted > 50, "accepted {accepted}");
    assert!(rejected > 50, "rejected {rejected}");
    assert!(violations > 10, "violations {violations}");
    assert!(blocks > 10, "would_block entries {blocks}");
    assert!(billed > 5, "billing moves {billed}");
}
