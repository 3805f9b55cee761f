//! Properties of the ledger core under random command sequences.
//!
//! A sequence of commands (provision, set quantity, terminate, assign / unassign / reassign,
//! attach / detach add-ons, assign by type, groups, users, quotas and the features they switch,
//! feature definitions, retention, prices) is drawn
//! with ids from small pools, so commands often hit existing entities and often conflict. Each
//! is decided at a later instant than the one before (spanning several months, landing on
//! month boundaries of the tenant's billing time zone); accepted events are wrapped in
//! envelopes exactly as the shell does (`src/ledger.rs`), encoded, and folded into the live
//! `Tenant` and the live `Billing`.
//!
//! Failures shrink to a minimal session. For a deeper search than the default case counts:
//! `PROPTEST_CASES=20000 cargo test --release -p projections --test properties`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use events::catalogue::Kind;
use events::state::License;
use events::{
    decide, evolve, Command, CommandId, Context, Envelope, GroupId, LicenseId, NewUser, Rejection,
    Reminder, ReminderFrequency, Restriction, Retention, Rule, Tenant, TenantId, TypeCode, UserId,
};
use projections::billing::{Billing, Month, CALL_RECORDING};
use projections::{entitlement, group_state, usage, PastIndex, TypeUsage, UsageHistory};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// Cases per property: enough to hit every rule often, few enough to stay fast in debug.
const CASES: u32 = 128;
/// Cases of the quota property. A quota bug needs a particular interleaving (a limit set
/// tight on one group, then a move or attachment from elsewhere), so it gets more; a case
/// costs about 4 ms in debug.
const QUOTA_CASES: u32 = 384;
/// Commands per sequence, after the tenant is created.
const STEPS_MAX: usize = 60;
/// Of which the first, at most, only build a world (groups, users, licences) to act on.
const SETUP_STEPS_MAX: usize = 16;
/// Sizes of the id pools commands draw from.
const USERS: u8 = 6;
const GROUPS: u8 = 4;
/// Extensions users are created with: few, so they collide.
const EXTENSIONS: u8 = 4;

const TENANT: TenantId = TenantId(Uuid::from_u128(0x7e7a_0001));
/// A licence id no command ever provisions.
const UNKNOWN_LICENSE: LicenseId = LicenseId(Uuid::from_u128(0xdead_0001));

/// Base types first, then add-ons. Chosen so requirements (`outbound` needs `voice`,
/// historical analytics need a supervisor seat), exclusions (cc seats) and the
/// `sip_number` ≥ `mobile_app` quota rule all come into play.
const TYPES: [&str; 10] = [
    "phone_system",
    "voice",
    "cc_agent",
    "cc_supervisor",
    "call_recording",
    "sip_number",
    "mobile_app",
    "outbound",
    "historical_analytics_viewer",
    "team_chat",
];
const BASE_TYPES: usize = 4;

/// Features sessions define and switch; a switch sometimes names a licence type or a code
/// never defined instead, which is refused.
const FEATURES: [&str; 2] = ["ukey2", "face_id"];

fn feature_code(index: u8) -> TypeCode {
    match usize::from(index) {
        i if i < FEATURES.len() => TypeCode::from(FEATURES[i]),
        i if i == FEATURES.len() => type_code(index),
        _ => TypeCode::from("telepathy"),
    }
}

const TIMEZONES: [&str; 4] = ["UTC", "Europe/Prague", "America/New_York", "Asia/Kolkata"];

fn user_id(n: u8) -> UserId {
    UserId(Uuid::from_u128(0x2000_0000 + u128::from(n)))
}

fn group_id(n: u8) -> GroupId {
    GroupId(Uuid::from_u128(0x3000_0000 + u128::from(n)))
}

fn type_code(index: u8) -> TypeCode {
    TypeCode::from(TYPES[usize::from(index) % TYPES.len()])
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 25, 0, 0, 0).unwrap()
}

// ---- What the generator draws: commands with abstract references, resolved against the
// ---- live state when they run (so shrinking keeps them meaningful).

/// How often each kind of command is drawn.
#[derive(Clone, Copy, Debug)]
struct Mix {
    provision: u32,
    set_quantity: u32,
    terminate: u32,
    assign: u32,
    unassign: u32,
    reassign: u32,
    attach: u32,
    detach: u32,
    assign_by_type: u32,
    create_group: u32,
    create_user: u32,
    move_user: u32,
    /// Add a user to another group, or take them out of one.
    join_group: u32,
    leave_group: u32,
    delete_user: u32,
    move_group: u32,
    set_restriction: u32,
    clear_restriction: u32,
    set_retention: u32,
    set_price: u32,
    define_feature: u32,
    /// Metered services: define one, report usage of them.
    define_service: u32,
    record_usage: u32,
    /// Chance that a limit is set just above the group's current usage rather than absolute.
    tight_limits: f64,
    /// The licence types commands use, as indices into [`TYPES`] (bases and add-ons).
    types: &'static [u8],
}

/// Every kind of command, for replay and billing.
const BROAD: Mix = Mix {
    provision: 5,
    set_quantity: 2,
    terminate: 2,
    assign: 7,
    unassign: 2,
    reassign: 3,
    attach: 4,
    detach: 2,
    assign_by_type: 5,
    create_group: 3,
    create_user: 4,
    move_user: 3,
    join_group: 2,
    leave_group: 1,
    delete_user: 1,
    move_group: 4,
    set_restriction: 5,
    clear_restriction: 1,
    set_retention: 2,
    set_price: 1,
    define_feature: 2,
    define_service: 1,
    record_usage: 2,
    tight_limits: 0.5,
    types: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
};

/// Quotas first: tight limits, and many commands that add usage to groups (assign, attach,
/// reassign, move users and groups).
const QUOTAS: Mix = Mix {
    provision: 3,
    set_quantity: 1,
    terminate: 1,
    assign: 7,
    unassign: 2,
    reassign: 8,
    attach: 5,
    detach: 1,
    assign_by_type: 3,
    create_group: 2,
    create_user: 2,
    move_user: 6,
    join_group: 4,
    leave_group: 2,
    delete_user: 1,
    move_group: 6,
    set_restriction: 7,
    clear_restriction: 1,
    set_retention: 1,
    set_price: 1,
    define_feature: 1,
    define_service: 1,
    record_usage: 1,
    tight_limits: 0.8,
    // phone_system, voice; call_recording, sip_number, mobile_app, outbound: few types, so
    // limits, holdings and add-ons meet often.
    types: &[0, 1, 4, 5, 6, 7],
};

/// A reference to a licence: the `index`-th licence of a kind (by id), or one never seen.
#[derive(Clone, Copy, Debug)]
struct Pick {
    index: u8,
    /// Also terminated licences may be picked.
    any: bool,
}

/// A reference to a user or group: mostly one that exists (the `index`-th by id), else the
/// `index`-th of the pool, which may not exist yet.
#[derive(Clone, Copy, Debug)]
struct Ref {
    index: u8,
    existing: bool,
}

/// How far the clock moves before a command.
#[derive(Clone, Copy, Debug)]
enum Advance {
    Same,
    Micros(i64),
    Minutes(i64),
    Days(i64),
    /// To the last microsecond of the current billing month.
    ToMonthEnd,
    /// To the first instant of the next billing month.
    ToNextMonth,
}

/// One per-type limit of a restriction.
#[derive(Clone, Copy, Debug)]
struct LimitSpec {
    /// A type the group already uses (the `type_index`-th), if it uses any; else `TYPES[..]`.
    type_index: u8,
    of_used_type: bool,
    value: LimitValue,
}

#[derive(Clone, Copy, Debug)]
enum LimitValue {
    Absolute(u64),
    /// The group's current usage of the type plus this much: tight limits that the next
    /// assignment, move or attachment into the group runs into.
    AboveUsage(u64),
}

#[derive(Clone, Debug)]
struct WindowSpec {
    /// Hours from [`start`], plus nanoseconds the log must cut away.
    from: Option<(i64, u32)>,
    until: Option<(i64, u32)>,
}

#[derive(Clone, Debug)]
enum Step {
    Provision {
        type_index: u8,
        quantity: u32,
    },
    SetQuantity {
        type_index: u8,
        quantity: u32,
    },
    Terminate {
        license: Pick,
        addon: bool,
    },
    /// `counted`: count against one of the user's groups (see [`Scenario::counted`]).
    Assign {
        base: Pick,
        user: Ref,
        counted: Option<u8>,
    },
    Unassign {
        base: Pick,
    },
    Reassign {
        base: Pick,
        user: Ref,
        counted: Option<u8>,
    },
    /// `held_base`: mostly onto a base licence a user holds (else any base).
    Attach {
        base: Pick,
        addon: Pick,
        held_base: bool,
    },
    /// `own_base`: detach from the base it is attached to (else from `base`).
    Detach {
        base: Pick,
        addon: Pick,
        own_base: bool,
    },
    AssignByType {
        user: Ref,
        base_type: u8,
        addons: Vec<u8>,
        counted: Option<u8>,
    },
    CreateGroup {
        group: u8,
        parent: Option<Ref>,
    },
    CreateUser {
        user: u8,
        group: Ref,
        extension: Option<u8>,
    },
    MoveUser {
        user: Ref,
        group: Ref,
        rename: bool,
    },
    JoinGroup {
        user: Ref,
        group: Ref,
    },
    /// `other`: mostly one of the user's other groups.
    LeaveGroup {
        user: Ref,
        other: u8,
    },
    DeleteUser {
        user: Ref,
    },
    MoveGroup {
        group: Ref,
        parent: Option<Ref>,
        rename: bool,
    },
    SetRestriction {
        group: Ref,
        enabled: bool,
        limits: Vec<LimitSpec>,
        window: WindowSpec,
        reminder: Option<(u32, u8)>,
        /// With the features it switches (feature index, on), or leaving them as they are.
        features: Option<Vec<(u8, bool)>>,
    },
    ClearRestriction {
        group: Ref,
    },
    SetRetention(Retention),
    SetPrice {
        type_index: u8,
        unit_price_minor: i64,
        euro: bool,
        effective_hours: i64,
    },
    DefineFeature {
        feature: u8,
        enabled_by_default: bool,
    },
    /// `service` 1 requires service 0.
    DefineService {
        service: u8,
        enabled: bool,
        base_allowance: u16,
        cap: Option<u16>,
    },
    /// Records `(id, service, quantity, hours before now)`; ids repeat, so duplicates occur.
    RecordUsage(Vec<(u8, u8, u16, u16)>),
}

/// The code of metered service `index` (2 is never defined: an unknown service).
fn service_code(index: u8) -> TypeCode {
    TypeCode::from(["stt", "topics", "unknown_service"][usize::from(index) % 3])
}

/// Mostly no group named (the user's own counts); else an index into the user's groups.
fn counted() -> impl Strategy<Value = Option<u8>> {
    prop::option::weighted(0.35, any::<u8>())
}

fn pick() -> impl Strategy<Value = Pick> {
    (any::<u8>(), prop::bool::weighted(0.15)).prop_map(|(index, any)| Pick { index, any })
}

fn reference(pool: u8) -> impl Strategy<Value = Ref> + Clone {
    (0..pool, prop::bool::weighted(0.85)).prop_map(|(index, existing)| Ref { index, existing })
}

/// A base type among those `mix` draws from (an index into [`TYPES`]).
fn base_type(mix: Mix) -> impl Strategy<Value = u8> + Clone {
    let bases: Vec<u8> = mix
        .types
        .iter()
        .copied()
        .filter(|t| usize::from(*t) < BASE_TYPES)
        .collect();
    prop::sample::select(bases)
}

fn any_type(mix: Mix) -> impl Strategy<Value = u8> + Clone {
    prop::sample::select(mix.types)
}

fn addon_type(mix: Mix) -> impl Strategy<Value = u8> + Clone {
    let addons: Vec<u8> = mix
        .types
        .iter()
        .copied()
        .filter(|t| usize::from(*t) >= BASE_TYPES)
        .collect();
    prop::sample::select(addons)
}

fn limit(mix: Mix) -> impl Strategy<Value = LimitSpec> {
    let value = prop::bool::weighted(mix.tight_limits).prop_flat_map(|tight| {
        if tight {
            (0u64..=1).prop_map(LimitValue::AboveUsage).boxed()
        } else {
            (0u64..=3).prop_map(LimitValue::Absolute).boxed()
        }
    });
    (any_type(mix), prop::bool::weighted(0.6), value).prop_map(
        |(type_index, of_used_type, value)| LimitSpec {
            type_index,
            of_used_type,
            value,
        },
    )
}

fn instant_offset() -> impl Strategy<Value = (i64, u32)> {
    (-1_500i64..4_000, 0u32..1_000_000_000)
}

fn window() -> impl Strategy<Value = WindowSpec> {
    (
        prop::option::weighted(0.3, instant_offset()),
        prop::option::weighted(0.3, instant_offset()),
    )
        .prop_map(|(from, until)| WindowSpec { from, until })
}

/// Mostly a feature of [`FEATURES`]; now and then a licence type or an unknown code.
fn feature_index() -> impl Strategy<Value = u8> {
    let features = FEATURES.len() as u8;
    prop_oneof![
        16 => 0..features,
        1 => Just(features),
        1 => Just(features + 1),
    ]
}

fn step(mix: Mix) -> impl Strategy<Value = Step> {
    let user = reference(USERS);
    let group = reference(GROUPS);
    let restriction = (
        group.clone(),
        prop::bool::weighted(0.85),
        prop::collection::vec(limit(mix), 0..=3),
        window(),
        prop::option::weighted(0.2, (0u32..=400, 0u8..4)),
        prop::option::weighted(
            0.5,
            prop::collection::vec((feature_index(), any::<bool>()), 1..=2),
        ),
    );
    let retention = prop_oneof![
        (0u32..=16).prop_map(Retention::Days),
        (0u32..=13).prop_map(Retention::Months),
    ];
    let price = (
        any_type(mix),
        -5i64..=5_000,
        prop::bool::weighted(0.9),
        -2_000i64..4_000,
    );
    prop_oneof![
        mix.provision => (any_type(mix), 0u32..=4)
            .prop_map(|(type_index, quantity)| Step::Provision { type_index, quantity }),
        mix.set_quantity => (any_type(mix), 0u32..=6)
            .prop_map(|(type_index, quantity)| Step::SetQuantity { type_index, quantity }),
        mix.terminate => (pick(), any::<bool>())
            .prop_map(|(license, addon)| Step::Terminate { license, addon }),
        mix.assign => (pick(), user.clone(), counted())
            .prop_map(|(base, user, counted)| Step::Assign { base, user, counted }),
        mix.unassign => pick().prop_map(|base| Step::Unassign { base }),
        mix.reassign => (pick(), user.clone(), counted())
            .prop_map(|(base, user, counted)| Step::Reassign { base, user, counted }),
        mix.attach => (pick(), pick(), prop::bool::weighted(0.6))
            .prop_map(|(base, addon, held_base)| Step::Attach { base, addon, held_base }),
        mix.detach => (pick(), pick(), prop::bool::weighted(0.8))
            .prop_map(|(base, addon, own_base)| Step::Detach { base, addon, own_base }),
        mix.assign_by_type => (
            user.clone(),
            base_type(mix),
            prop::collection::vec(addon_type(mix), 0..=2),
            counted(),
        )
            .prop_map(|(user, base_type, addons, counted)| {
                Step::AssignByType { user, base_type, addons, counted }
            }),
        mix.create_group => (0..GROUPS, prop::option::weighted(0.6, group.clone()))
            .prop_map(|(group, parent)| Step::CreateGroup { group, parent }),
        mix.create_user => (0..USERS, group.clone(), prop::option::weighted(0.5, 0..EXTENSIONS))
            .prop_map(|(user, group, extension)| Step::CreateUser { user, group, extension }),
        mix.move_user => (user.clone(), group.clone(), any::<bool>())
            .prop_map(|(user, group, rename)| Step::MoveUser { user, group, rename }),
        mix.join_group => (user.clone(), group.clone())
            .prop_map(|(user, group)| Step::JoinGroup { user, group }),
        mix.leave_group => (user.clone(), any::<u8>())
            .prop_map(|(user, other)| Step::LeaveGroup { user, other }),
        mix.delete_user => user.clone().prop_map(|user| Step::DeleteUser { user }),
        mix.move_group => (
            group.clone(),
            prop::option::weighted(0.8, group.clone()),
            any::<bool>(),
        )
            .prop_map(|(group, parent, rename)| Step::MoveGroup { group, parent, rename }),
        mix.set_restriction => restriction.prop_map(
            |(group, enabled, limits, window, reminder, features)| Step::SetRestriction {
                group,
                enabled,
                limits,
                window,
                reminder,
                features,
            }
        ),
        mix.define_feature => (0..FEATURES.len() as u8, prop::bool::weighted(0.3)).prop_map(
            |(feature, enabled_by_default)| Step::DefineFeature { feature, enabled_by_default }
        ),
        mix.define_service => (0u8..2, prop::bool::weighted(0.85), 0u16..40, prop::option::weighted(0.7, 0u16..60))
            .prop_map(|(service, enabled, base_allowance, cap)| {
                Step::DefineService { service, enabled, base_allowance, cap }
            }),
        mix.record_usage => prop::collection::vec((0u8..40, 0u8..3, 1u16..30, 0u16..800), 1..6)
            .prop_map(Step::RecordUsage),
        mix.clear_restriction => group.clone().prop_map(|group| Step::ClearRestriction { group }),
        mix.set_retention => retention.prop_map(Step::SetRetention),
        mix.set_price => price.prop_map(
            |(type_index, unit_price_minor, euro, effective_hours)| Step::SetPrice {
                type_index,
                unit_price_minor,
                euro,
                effective_hours,
            }
        ),
    ]
}

fn advance() -> impl Strategy<Value = Advance> {
    prop_oneof![
        1 => Just(Advance::Same),
        2 => (1i64..1_000).prop_map(Advance::Micros),
        3 => (1i64..600).prop_map(Advance::Minutes),
        4 => (1i64..12).prop_map(Advance::Days),
        1 => Just(Advance::ToMonthEnd),
        1 => Just(Advance::ToNextMonth),
    ]
}

/// A whole session: the tenant's time zone, when it starts, and the commands that follow.
#[derive(Clone, Debug)]
struct Session {
    timezone: &'static str,
    start_hours: i64,
    steps: Vec<(Advance, Step)>,
}

/// Steps that build a world to act on: the features, a root group and maybe more groups,
/// users in them, and licences (base types more often).
fn setup(mix: Mix) -> impl Strategy<Value = Vec<(Advance, Step)>> {
    let root = (0..GROUPS).prop_map(|group| Step::CreateGroup {
        group,
        parent: None,
    });
    let groups = prop::collection::vec(
        (0..GROUPS, prop::option::weighted(0.7, reference(GROUPS)))
            .prop_map(|(group, parent)| Step::CreateGroup { group, parent }),
        0..=2,
    );
    let users = prop::collection::vec(
        (
            0..USERS,
            reference(GROUPS),
            prop::option::weighted(0.5, 0..EXTENSIONS),
        )
            .prop_map(|(user, group, extension)| Step::CreateUser {
                user,
                group,
                extension,
            }),
        1..=4,
    );
    let licences = prop::collection::vec(
        (
            prop_oneof![3 => base_type(mix), 1 => any_type(mix)],
            2u32..=4,
        )
            .prop_map(|(type_index, quantity)| Step::Provision {
                type_index,
                quantity,
            }),
        1..=3,
    );
    let assignments = prop::collection::vec(
        prop_oneof![
            3 => (pick(), reference(USERS)).prop_map(|(base, user)| Step::Assign {
                base,
                user,
                counted: None,
            }),
            1 => (pick(), pick()).prop_map(|(base, addon)| Step::Attach {
                base,
                addon,
                held_base: false,
            }),
        ],
        1..=4,
    );
    let features =
        prop::collection::vec(prop::bool::weighted(0.3), FEATURES.len()).prop_map(|defaults| {
            defaults
                .into_iter()
                .enumerate()
                .map(|(feature, enabled_by_default)| Step::DefineFeature {
                    feature: feature as u8,
                    enabled_by_default,
                })
                .collect::<Vec<_>>()
        });
    let parts = (root, groups, users, licences, assignments, features);
    (parts, advance()).prop_map(
        |((root, groups, users, licences, assignments, features), at)| {
            features
                .into_iter()
                .chain(std::iter::once(root))
                .chain(groups)
                .chain(users)
                .chain(licences)
                .chain(assignments)
                .map(|step| (at, step))
                .collect()
        },
    )
}

fn session(mix: Mix) -> impl Strategy<Value = Session> {
    let steps = prop::collection::vec((advance(), step(mix)), 1..=STEPS_MAX - SETUP_STEPS_MAX);
    (
        prop::sample::select(&TIMEZONES[..]),
        0i64..24 * 10,
        setup(mix),
        steps,
    )
        .prop_map(|(timezone, start_hours, mut setup, steps)| {
            setup.extend(steps);
            Session {
                timezone,
                start_hours,
                steps: setup,
            }
        })
}

// ---- The ledger under test: decide, envelope, encode, evolve, bill. ----

/// Units and assigned counts of every type, seen right after one event.
#[derive(Clone, Debug)]
struct Observation {
    at: DateTime<Utc>,
    month: Month,
    units: BTreeMap<TypeCode, u64>,
    assigned: BTreeMap<TypeCode, u64>,
}

struct Ledger {
    live: Tenant,
    billing: Billing,
    /// Every stored event as the bytes the store keeps.
    stored: Vec<Vec<u8>>,
    envelopes: Vec<Envelope>,
    observations: Vec<Observation>,
    now: DateTime<Utc>,
    commands: u128,
}

impl Ledger {
    fn create(timezone: &str, now: DateTime<Utc>) -> Ledger {
        let mut ledger = Ledger {
            live: Tenant::empty(TENANT),
            billing: Billing::default(),
            stored: Vec::new(),
            envelopes: Vec::new(),
            observations: Vec::new(),
            now,
            commands: 0,
        };
        let create = Command::CreateTenant {
            name: "Acme".into(),
            billing_timezone: timezone.into(),
            currency: "EUR".into(),
        };
        ledger
            .execute(&create, &mut |_| {})
            .expect("a new tenant is always created");
        ledger
    }

    fn advance(&mut self, advance: Advance) {
        let tz = self.billing.timezone;
        let month_end = Month::of(self.now, tz).end(tz);
        self.now = match advance {
            Advance::Same => self.now,
            Advance::Micros(n) => self.now + Duration::microseconds(n),
            Advance::Minutes(n) => self.now + Duration::minutes(n),
            Advance::Days(n) => self.now + Duration::days(n),
            Advance::ToMonthEnd => (month_end - Duration::microseconds(1)).max(self.now),
            Advance::ToNextMonth => month_end,
        };
    }

    fn context(&self) -> Context {
        Context {
            now: self.now,
            command_id: CommandId(Uuid::from_u128(0xc0_0000 + self.commands)),
        }
    }

    /// Decide `command` now; fold accepted events one by one, calling `after_event` after each.
    fn execute(&mut self, command: &Command, after_event: &mut dyn FnMut(&Ledger)) -> Outcome {
        self.commands += 1;
        let ctx = self.context();
        let produced = decide(&self.live, command, &ctx)?;
        for event in &produced {
            let envelope = Envelope {
                seq: self.envelopes.len() as u64 + 1,
                tenant: TENANT,
                version: self.live.version + 1,
                recorded_at: self.now,
                actor: format!("key:{}", self.commands % 3),
                reason: self
                    .commands
                    .is_multiple_of(4)
                    .then(|| "property".to_string()),
                command_id: ctx.command_id,
                prev_hash: self.live.last_hash,
                event: event.clone(),
            };
            let bytes = envelope.encode();
            let hash = Envelope::hash_of(&bytes);
            evolve(&mut self.live, &envelope.event, envelope.version);
            self.live.last_hash = hash;
            self.billing.apply(&envelope, hash);
            self.stored.push(bytes);
            self.envelopes.push(envelope);
            self.observe();
            after_event(self);
        }
        Ok(produced.len())
    }

    fn observe(&mut self) {
        let multiplier = |t: &TypeCode| {
            if t.as_str() == CALL_RECORDING {
                self.live.retention.units_per_license()
            } else {
                1
            }
        };
        let mut units = BTreeMap::new();
        let mut assigned = BTreeMap::new();
        for code in TYPES {
            let t = TypeCode::from(code);
            let owned = self.live.owned.get(&t).copied().unwrap_or(0);
            units.insert(t.clone(), owned * multiplier(&t));
            assigned.insert(t.clone(), self.live.assigned_count(&t));
        }
        self.observations.push(Observation {
            at: self.now,
            month: Month::of(self.now, self.billing.timezone),
            units,
            assigned,
        });
    }

    /// The licence a [`Pick`] names in the current state: mostly a live licence of `kind` in
    /// the state the command wants (`prefer`), sometimes any licence of `kind`, terminated
    /// ones included, or one that never existed.
    fn resolve(&self, pick: Pick, kind: Kind, prefer: fn(&License) -> bool) -> LicenseId {
        let of_kind = self.live.licenses.values().filter(|l| l.kind == kind);
        let candidates: Vec<LicenseId> = if pick.any {
            of_kind.map(|l| l.id).collect()
        } else {
            let preferred: Vec<LicenseId> = of_kind
                .clone()
                .filter(|l| !l.terminated && prefer(l))
                .map(|l| l.id)
                .collect();
            if preferred.is_empty() {
                of_kind.map(|l| l.id).collect()
            } else {
                preferred
            }
        };
        if pick.index == u8::MAX || candidates.is_empty() {
            return UNKNOWN_LICENSE;
        }
        candidates[usize::from(pick.index) % candidates.len()]
    }

    /// The group an assignment to `user` names to count against: `index` into the user's
    /// groups (own first) and, one time in eight, a group they do not belong to.
    fn counted(&self, user: UserId, index: Option<u8>) -> Option<GroupId> {
        let index = index?;
        let Some(u) = self.live.users.get(&user) else {
            return Some(group_id(index));
        };
        if index % 8 == 7 {
            return Some(self.group(Ref {
                index,
                existing: true,
            }));
        }
        let groups: Vec<GroupId> = u.all_groups().collect();
        Some(groups[usize::from(index) % groups.len()])
    }

    /// The user a [`Ref`] names: mostly an active one, else one of the pool.
    fn user(&self, r: Ref) -> UserId {
        let active: Vec<UserId> = self
            .live
            .users
            .values()
            .filter(|u| !u.removed)
            .map(|u| u.id)
            .collect();
        match active.len() {
            n if r.existing && n > 0 => active[usize::from(r.index) % n],
            _ => user_id(r.index),
        }
    }

    /// The group a [`Ref`] names: mostly an existing one, else one of the pool.
    fn group(&self, r: Ref) -> GroupId {
        let existing: Vec<GroupId> = self.live.groups.keys().copied().collect();
        match existing.len() {
            n if r.existing && n > 0 => existing[usize::from(r.index) % n],
            _ => group_id(r.index),
        }
    }

    /// The type and value a [`LimitSpec`] names for `group`.
    fn limit(&self, group: GroupId, limit: LimitSpec) -> (TypeCode, u64) {
        let used = self.live.groups.get(&group).map(|g| &g.used);
        let used_types: Vec<&TypeCode> = used.into_iter().flat_map(|u| u.keys()).collect();
        let t = match used_types.len() {
            n if limit.of_used_type && n > 0 => {
                used_types[usize::from(limit.type_index) % n].clone()
            }
            _ => type_code(limit.type_index),
        };
        let value = match limit.value {
            LimitValue::Absolute(n) => n,
            LimitValue::AboveUsage(slack) => {
                used.and_then(|u| u.get(&t)).copied().unwrap_or(0) + slack
            }
        };
        (t, value)
    }

    /// The concrete command of a step, against the current state.
    fn command(&self, step: &Step) -> Command {
        let offset = |(hours, nanos): (i64, u32)| {
            start() + Duration::hours(hours) + Duration::nanoseconds(i64::from(nanos))
        };
        match step {
            Step::Provision {
                type_index,
                quantity,
            } => Command::ProvisionLicenses {
                license_type: type_code(*type_index),
                quantity: *quantity,
            },
            Step::SetQuantity {
                type_index,
                quantity,
            } => Command::SetQuantity {
                license_type: type_code(*type_index),
                quantity: *quantity,
            },
            Step::Terminate { license, addon } => Command::TerminateLicense {
                license: self.resolve(
                    *license,
                    if *addon { Kind::Addon } else { Kind::Base },
                    |l| l.user.is_none() && l.base.is_none(),
                ),
            },
            Step::Assign {
                base,
                user,
                counted,
            } => {
                let user = self.user(*user);
                Command::AssignLicense {
                    license: self.resolve(*base, Kind::Base, |l| l.user.is_none()),
                    user,
                    group: self.counted(user, *counted),
                }
            }
            Step::Unassign { base } => Command::UnassignLicense {
                license: self.resolve(*base, Kind::Base, |l| l.user.is_some()),
            },
            Step::Reassign {
                base,
                user,
                counted,
            } => {
                let user = self.user(*user);
                Command::ReassignLicense {
                    license: self.resolve(*base, Kind::Base, |l| l.user.is_some()),
                    user,
                    group: self.counted(user, *counted),
                }
            }
            Step::Attach {
                base,
                addon,
                held_base,
            } => Command::AttachAddon {
                base: if *held_base {
                    self.resolve(*base, Kind::Base, |l| l.user.is_some())
                } else {
                    self.resolve(*base, Kind::Base, |_| true)
                },
                addon: self.resolve(*addon, Kind::Addon, |l| l.base.is_none()),
            },
            Step::Detach {
                base,
                addon,
                own_base,
            } => {
                let addon = self.resolve(*addon, Kind::Addon, |l| l.base.is_some());
                let attached_to = self.live.licenses.get(&addon).and_then(|a| a.base);
                let base = match attached_to {
                    Some(b) if *own_base => b,
                    _ => self.resolve(*base, Kind::Base, |_| true),
                };
                Command::DetachAddon { base, addon }
            }
            Step::AssignByType {
                user,
                base_type,
                addons,
                counted,
            } => {
                let user = self.user(*user);
                Command::AssignByType {
                    user,
                    license_type: type_code(*base_type),
                    addons: addons.iter().map(|a| type_code(*a)).collect(),
                    group: self.counted(user, *counted),
                }
            }
            Step::CreateGroup { group, parent } => Command::CreateGroup {
                group: group_id(*group),
                name: format!("group {group}"),
                parent: parent.map(|p| self.group(p)),
                // Contacts replay like the rest of a group's own fields.
                contact_email: (group % 2 == 0).then(|| format!("admin{group}@example.com")),
            },
            Step::CreateUser {
                user,
                group,
                extension,
            } => Command::CreateUser(NewUser {
                user: user_id(*user),
                name: format!("user {user}"),
                group: self.group(*group),
                extension: extension.map(|e| format!("10{e}")),
                number: extension.map(|e| format!("+42000000{e}")),
            }),
            Step::MoveUser {
                user,
                group,
                rename,
            } => Command::UpdateUser {
                user: self.user(*user),
                name: rename.then(|| format!("user {} moved", user.index)),
                group: Some(self.group(*group)),
                extension: None,
                // A renamed user gets a new DID number too: numbers replay like the rest.
                number: rename.then(|| Some(format!("+420{}", user.index))),
            },
            Step::JoinGroup { user, group } => Command::AddUserToGroup {
                user: self.user(*user),
                group: self.group(*group),
            },
            Step::LeaveGroup { user, other } => {
                let user = self.user(*user);
                let others: Vec<GroupId> = self
                    .live
                    .users
                    .get(&user)
                    .map(|u| u.all_groups().collect())
                    .unwrap_or_default();
                let group = match others.len() {
                    0 => group_id(*other),
                    n => others[usize::from(*other) % n],
                };
                Command::RemoveUserFromGroup { user, group }
            }
            Step::DeleteUser { user } => Command::DeleteUser {
                user: self.user(*user),
            },
            Step::MoveGroup {
                group,
                parent,
                rename,
            } => Command::UpdateGroup {
                group: self.group(*group),
                name: rename.then(|| format!("group {} renamed", group.index)),
                parent: Some(parent.map(|p| self.group(p))),
                // A renamed group sets or clears its contact.
                contact_email: rename.then(|| {
                    (group.index % 2 == 1).then(|| format!("renamed{}@example.com", group.index))
                }),
            },
            Step::SetRestriction {
                group,
                enabled,
                limits,
                window,
                reminder,
                features,
            } => {
                let restriction = Restriction {
                    enabled: *enabled,
                    limits: limits
                        .iter()
                        .map(|limit| self.limit(self.group(*group), *limit))
                        .collect(),
                    valid_from: window.from.map(offset),
                    valid_until: window.until.map(offset),
                    reminder: reminder.map(|(days_before, frequency)| Reminder {
                        days_before,
                        frequency: [
                            ReminderFrequency::Once,
                            ReminderFrequency::Daily,
                            ReminderFrequency::Weekly,
                            ReminderFrequency::Every30Days,
                        ][usize::from(frequency) % 4],
                    }),
                };
                let group = self.group(*group);
                match features {
                    None => Command::SetRestriction { group, restriction },
                    Some(switches) => Command::SetRestrictionAndFeatures {
                        group,
                        restriction,
                        features: switches
                            .iter()
                            .map(|(feature, on)| (feature_code(*feature), *on))
                            .collect(),
                    },
                }
            }
            Step::ClearRestriction { group } => Command::ClearRestriction {
                group: self.group(*group),
            },
            Step::SetRetention(retention) => Command::SetRetention(*retention),
            Step::SetPrice {
                type_index,
                unit_price_minor,
                euro,
                effective_hours,
            } => Command::SetPrice {
                license_type: type_code(*type_index),
                unit_price_minor: *unit_price_minor,
                currency: if *euro { "EUR" } else { "USD" }.into(),
                effective_from: offset((*effective_hours, 123)),
            },
            Step::DefineService {
                service,
                enabled,
                base_allowance,
                cap,
            } => Command::DefineService(events::metering::Service {
                code: service_code(*service),
                name: format!("Service {service}"),
                unit: "minute".into(),
                enabled: *enabled,
                base_allowance: u64::from(*base_allowance),
                monthly_cap: cap.map(u64::from),
                requires: if *service == 1 {
                    vec![service_code(0)]
                } else {
                    vec![]
                },
            }),
            Step::RecordUsage(rows) => Command::RecordUsage(
                rows.iter()
                    .map(
                        |(id, service, quantity, hours_back)| events::metering::NewUsageRecord {
                            id: format!("record {id}"),
                            service: service_code(*service),
                            quantity: u64::from(*quantity),
                            user: None,
                            queue: None,
                            occurred_at: self.now - Duration::hours(i64::from(*hours_back)),
                        },
                    )
                    .collect(),
            ),
            Step::DefineFeature {
                feature,
                enabled_by_default,
            } => Command::DefineFeature(events::Feature {
                code: feature_code(*feature),
                name: FEATURES[usize::from(*feature) % FEATURES.len()].to_uppercase(),
                enabled_by_default: *enabled_by_default,
            }),
        }
    }
}

/// What each command of a session came to.
struct Run {
    ledger: Ledger,
    accepted: usize,
}

/// What a command came to: the number of events it stored, or why it was refused.
type Outcome = Result<usize, Rejection>;

/// Sees the state and billing before a command, the command, its outcome and the ledger after.
type AfterCommand<'a> = &'a mut dyn FnMut(&Tenant, &Billing, &Command, &Outcome, &Ledger);

/// Play a session. `after_event` sees the ledger after every stored event.
fn play(
    session: &Session,
    after_event: &mut dyn FnMut(&Ledger),
    after_command: AfterCommand<'_>,
) -> Run {
    let mut ledger = Ledger::create(
        session.timezone,
        start() + Duration::hours(session.start_hours),
    );
    let mut accepted = 0;
    for (advance, step) in &session.steps {
        ledger.advance(*advance);
        let command = ledger.command(step);
        let before = (ledger.live.clone(), ledger.billing.clone());
        let outcome = ledger.execute(&command, after_event);
        accepted += usize::from(outcome.is_ok());
        after_command(&before.0, &before.1, &command, &outcome, &ledger);
    }
    Run { ledger, accepted }
}

fn play_quietly(session: &Session) -> Run {
    play(session, &mut |_| {}, &mut |_, _, _, _, _| {})
}

// ---- Oracles computed from scratch, independent of the counters `evolve` keeps. ----

/// The parent chain of `group`, itself first, walked from the groups' own parent links.
fn ancestors(state: &Tenant, group: GroupId) -> Vec<GroupId> {
    let mut path = Vec::new();
    let mut next = Some(group);
    while let Some(id) = next {
        assert!(
            path.len() <= state.groups.len(),
            "the group tree has a cycle through {id}"
        );
        path.push(id);
        next = state.groups.get(&id).and_then(|g| g.parent);
    }
    path
}

/// Usage of every group recounted from the licences: each assigned base licence and every
/// add-on whose `base` is that licence count on the holder's group and every ancestor.
fn recount_usage(state: &Tenant) -> BTreeMap<GroupId, BTreeMap<TypeCode, u64>> {
    let mut usage: BTreeMap<GroupId, BTreeMap<TypeCode, u64>> = BTreeMap::new();
    for base in state.licenses.values() {
        let Some(holder) = base.user else { continue };
        let mut types = vec![base.license_type.clone()];
        types.extend(
            state
                .licenses
                .values()
                .filter(|a| a.base == Some(base.id))
                .map(|a| a.license_type.clone()),
        );
        // A licence counted against one of the holder's other groups counts there.
        let holder = &state.users[&holder];
        if let Some(other) = base.counted_in {
            assert!(
                holder.other_groups.contains(&other),
                "licence {} counts against group {other}, not one of its holder's other groups",
                base.id
            );
        }
        let group = base.counted_in.unwrap_or(holder.group);
        for g in ancestors(state, group) {
            for t in &types {
                *usage.entry(g).or_default().entry(t.clone()).or_insert(0) += 1;
            }
        }
    }
    usage
}

/// Every quota rule of SPEC "Group hierarchy and restrictions", checked on a whole state.
fn assert_quotas_hold(state: &Tenant) {
    let recount = recount_usage(state);
    for (id, g) in &state.groups {
        let expected = recount.get(id).cloned().unwrap_or_default();
        assert_eq!(
            g.used, expected,
            "usage counters of group {} differ from a recount",
            g.name
        );
        let Some(r) = g.enabled_restriction() else {
            continue;
        };
        for (t, &limit) in &r.limits {
            assert!(
                g.used_of(t) <= limit,
                "group {} uses {} {t}, above its enabled limit {limit}",
                g.name,
                g.used_of(t)
            );
        }
        let sip = r.limits.get(&TypeCode::from("sip_number"));
        let mobile = r.limits.get(&TypeCode::from("mobile_app"));
        if let (Some(sip), Some(mobile)) = (sip, mobile) {
            assert!(sip >= mobile, "group {}: sip_number < mobile_app", g.name);
        }
        let enabled_ancestors: Vec<&Restriction> = ancestors(state, *id)[1..]
            .iter()
            .filter_map(|a| state.groups[a].enabled_restriction())
            .collect();
        for (t, &limit) in &r.limits {
            if let Some(parent_limit) = enabled_ancestors.iter().find_map(|a| a.limits.get(t)) {
                assert!(
                    limit <= *parent_limit,
                    "group {}: {t} limit {limit} exceeds {parent_limit} of its nearest ancestor",
                    g.name
                );
            }
        }
        let parent_from = enabled_ancestors.iter().filter_map(|a| a.valid_from).max();
        let parent_until = enabled_ancestors.iter().filter_map(|a| a.valid_until).min();
        if let (Some(own), Some(parent)) = (r.valid_from, parent_from) {
            assert!(
                own >= parent,
                "group {} starts before its ancestors",
                g.name
            );
        }
        if let (Some(own), Some(parent)) = (r.valid_until, parent_until) {
            assert!(own <= parent, "group {} ends after its ancestors", g.name);
        }
    }
}

/// A group-limit violation names the limit and usage the state really has.
fn assert_rejection_describes_state(state: &Tenant, rejection: &Rejection) {
    for v in rejection.violations() {
        assert!(!v.message.trim().is_empty(), "a violation without message");
        if v.rule != Rule::GroupLimitReached {
            continue;
        }
        let group = &state.groups[&v.group.expect("a group limit names its group")];
        let t = v
            .license_type
            .as_ref()
            .expect("a group limit names its type");
        let limit = group
            .enabled_restriction()
            .and_then(|r| r.limits.get(t))
            .copied();
        assert_eq!(v.limit, limit, "limit reported for {}", group.name);
        assert_eq!(
            v.used,
            Some(group.used_of(t)),
            "usage reported for {}",
            group.name
        );
    }
}

/// Billing months from the first observed to two past the last (carried, without events).
fn months_spanned(observations: &[Observation]) -> Vec<Month> {
    let first = observations.first().expect("the tenant was created").month;
    let last = observations.last().expect("the tenant was created").month;
    let mut months = vec![first];
    while *months.last().unwrap() < last.next().next() {
        let next = months.last().unwrap().next();
        months.push(next);
    }
    months
}

/// `cases`, or `PROPTEST_CASES` from the environment for a deeper run.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        // Failures are reported with the minimal session; no files are written.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    /// Replaying the log from scratch (every event written to bytes and read back) gives the
    /// live `Tenant` and the live `Billing`, field for field, and the same invoices.
    #[test]
    fn replay_from_scratch_equals_live_state_and_billing(session in session(BROAD)) {
        replay_equals_live(&session)?;
    }

    /// In every month and for every type, the billed peak is the highest unit count (owned ×
    /// multiplier) at any instant of the month — the level carried in from the month before
    /// or the level after any of its events — first reached at `peak_at`; `units_at_end` is
    /// the count after the month's last event; the peak assigned count is the highest too.
    #[test]
    fn billing_peak_is_the_highest_unit_count_seen_in_the_month(session in session(BROAD)) {
        peaks_match_what_was_seen(&session)?;
    }

    /// `usage?at=` answered from the usage history equals the usage of the state folded up to
    /// that instant: at every instant an event was recorded (the last event of the instant
    /// counts) and just before it.
    #[test]
    fn usage_history_at_any_instant_equals_usage_of_the_state_then(session in session(BROAD)) {
        usage_history_matches_the_fold(&session)?;
    }

    /// As-of group state and entitlements answered from the past index equal those of the
    /// state folded up to the same version.
    #[test]
    fn past_index_answers_group_state_and_entitlements_as_the_fold_does(
        session in prop_oneof![1 => session(BROAD), 1 => session(QUOTAS)]
    ) {
        past_index_matches_the_fold(&session)?;
    }
}

/// The part of the state a group-state or entitlement question reads, rebuilt from the past
/// index at a version, answers as the state folded up to that version does: for every group
/// and every user of the pools, every type, at the instant of the event and a month later (so
/// windows that had not started, or had ended, both come up).
fn past_index_matches_the_fold(session: &Session) -> Result<(), TestCaseError> {
    let mut index = PastIndex::default();
    let mut folded = Tenant::empty(TENANT);
    let mut states: Vec<(Tenant, DateTime<Utc>)> = Vec::new();
    let mut done = 0;
    play(
        session,
        &mut |ledger| {
            for envelope in &ledger.envelopes[done..] {
                evolve(&mut folded, &envelope.event, envelope.version);
                index.apply(envelope.version, &envelope.event, &folded);
                states.push((folded.clone(), envelope.recorded_at));
            }
            done = ledger.envelopes.len();
        },
        &mut |_, _, _, _, _| {},
    );
    for (state, recorded_at) in &states {
        let version = state.version;
        let groups_only = index
            .tenant_at(&folded, version, None)
            .ok_or_else(|| TestCaseError::fail("no past state from the index"))?;
        for at in [*recorded_at, *recorded_at + Duration::days(31)] {
            for g in (0..GROUPS).map(group_id) {
                prop_assert_eq!(
                    group_state(&groups_only, g, at),
                    group_state(state, g, at),
                    "group {} at version {}",
                    g,
                    version
                );
            }
            for u in (0..USERS).map(user_id) {
                let with_user = index
                    .tenant_at(&folded, version, Some(u))
                    .ok_or_else(|| TestCaseError::fail("no past state from the index"))?;
                for t in TYPES.iter().chain(&FEATURES).map(|t| TypeCode::from(*t)) {
                    prop_assert_eq!(
                        entitlement(&with_user, u, &t, at),
                        entitlement(state, u, &t, at),
                        "user {} type {} at version {}",
                        u,
                        t,
                        version
                    );
                }
            }
        }
    }
    Ok(())
}

fn usage_history_matches_the_fold(session: &Session) -> Result<(), TestCaseError> {
    let mut history = UsageHistory::default();
    let mut seen: BTreeMap<DateTime<Utc>, BTreeMap<TypeCode, TypeUsage>> = BTreeMap::new();
    play(
        session,
        &mut |ledger| {
            let envelope = ledger.envelopes.last().expect("an event was just stored");
            history.apply(envelope.recorded_at, &envelope.event, &ledger.live);
            seen.insert(envelope.recorded_at, usage(&ledger.live));
        },
        &mut |_, _, _, _, _| {},
    );
    let mut before = BTreeMap::new();
    for (at, expected) in &seen {
        prop_assert_eq!(&history.at(*at), expected, "usage at {}", at);
        let just_before = *at - Duration::microseconds(1);
        prop_assert_eq!(
            &history.at(just_before),
            &before,
            "usage just before {}",
            at
        );
        before = expected.clone();
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(QUOTA_CASES))]

    /// No group ever uses more than an enabled limit allows — after every single event, with
    /// usage recounted from the users' holdings and compared to `Group.used` — and every
    /// quota rule holds in every reachable state. A rejected command changes nothing: state
    /// and billing are as before, deciding it again gives the same answer, and a group-limit
    /// violation reports the real limit and usage. An accepted command does all it asked.
    #[test]
    fn no_group_ever_exceeds_an_enabled_limit_and_rejections_change_nothing(
        session in prop_oneof![1 => session(BROAD), 3 => session(QUOTAS)]
    ) {
        quotas_hold_throughout(&session)?;
    }
}

fn replay_equals_live(session: &Session) -> Result<(), TestCaseError> {
    let run = play_quietly(session);
    let live = &run.ledger;
    let mut state = Tenant::empty(TENANT);
    let mut billing = Billing::default();
    for (bytes, written) in live.stored.iter().zip(&live.envelopes) {
        let read = Envelope::decode(bytes).expect("a stored event decodes");
        prop_assert_eq!(&read, written);
        let hash = Envelope::hash_of(bytes);
        prop_assert_eq!(
            read.prev_hash,
            state.last_hash,
            "hash chain at {}",
            read.seq
        );
        evolve(&mut state, &read.event, read.version);
        state.last_hash = hash;
        billing.apply(&read, hash);
    }
    prop_assert_eq!(&state, &live.live);
    prop_assert_eq!(&billing, &live.billing);
    for month in months_spanned(&live.observations) {
        let replayed = projections::invoice(&billing, month);
        let live = projections::invoice(&live.billing, month);
        prop_assert_eq!(
            projections::invoice_bytes(&replayed),
            projections::invoice_bytes(&live)
        );
    }
    Ok(())
}

fn peaks_match_what_was_seen(session: &Session) -> Result<(), TestCaseError> {
    let run = play_quietly(session);
    let ledger = &run.ledger;
    let tz = ledger.billing.timezone;
    let observations = &ledger.observations;
    for month in months_spanned(observations) {
        let carried = observations.iter().rev().find(|o| o.month < month);
        let inside: Vec<&Observation> = observations.iter().filter(|o| o.month == month).collect();
        let figures = ledger.billing.month(month);
        for code in TYPES {
            let t = TypeCode::from(code);
            let carried_units = carried.map_or(0, |o| o.units[&t]);
            let seen_peak = inside
                .iter()
                .map(|o| o.units[&t])
                .fold(carried_units, u64::max);
            let seen_end = inside
                .last()
                .copied()
                .or(carried)
                .map_or(0, |o| o.units[&t]);
            let seen_assigned = inside
                .iter()
                .map(|o| o.assigned[&t])
                .fold(carried.map_or(0, |o| o.assigned[&t]), u64::max);
            let got = figures.get(&t);
            let peak = got.map_or(0, |f| f.peak_units);
            prop_assert!(
                peak >= seen_peak,
                "{month} {t}: peak {peak} is below the {seen_peak} units seen"
            );
            prop_assert_eq!(peak, seen_peak, "{} {}: peak", month, t);
            let units_at_end = got.map_or(0, |f| f.units_at_end);
            prop_assert_eq!(units_at_end, seen_end, "{} {}: units at end", month, t);
            let peak_assigned = got.map_or(0, |f| f.peak_assigned);
            prop_assert_eq!(
                peak_assigned,
                seen_assigned,
                "{} {}: peak assigned",
                month,
                t
            );
            if peak == 0 {
                continue;
            }
            let expected_at = if carried_units == peak {
                month.start(tz)
            } else {
                let first = inside.iter().find(|o| o.units[&t] == peak);
                first.expect("the peak was seen").at
            };
            let peak_at = got.expect("a type with a peak has figures").peak_at;
            prop_assert_eq!(peak_at, expected_at, "{} {}: peak_at", month, t);
        }
    }
    Ok(())
}

fn quotas_hold_throughout(session: &Session) -> Result<(), TestCaseError> {
    let mut rejected = 0usize;
    let run = play(
        session,
        &mut |ledger| assert_quotas_hold(&ledger.live),
        &mut |before, billing_before, command, outcome, ledger| match outcome {
            Err(rejection) => {
                rejected += 1;
                assert_eq!(
                    &ledger.live, before,
                    "{command:?} was rejected yet changed state"
                );
                assert_eq!(
                    &ledger.billing, billing_before,
                    "{command:?} was rejected yet changed billing"
                );
                let again = decide(before, command, &ledger.context());
                assert_eq!(again.as_ref(), Err(rejection), "{command:?} decided twice");
                assert_rejection_describes_state(before, rejection);
            }
            Ok(_) => assert_accepted_did_what_it_asked(before, command, &ledger.live),
        },
    );
    prop_assert_eq!(run.accepted + rejected, session.steps.len());
    Ok(())
}

/// The all-or-nothing side of "a rejected command changes nothing": what is accepted is done
/// in full.
fn assert_accepted_did_what_it_asked(before: &Tenant, command: &Command, after: &Tenant) {
    match command {
        Command::SetQuantity {
            license_type,
            quantity,
        } => assert_eq!(
            after.owned.get(license_type).copied().unwrap_or(0),
            u64::from(*quantity),
            "{command:?}"
        ),
        Command::ProvisionLicenses {
            license_type,
            quantity,
        } => assert_eq!(
            after.owned.get(license_type).copied().unwrap_or(0),
            before.owned.get(license_type).copied().unwrap_or(0) + u64::from(*quantity),
            "{command:?}"
        ),
        Command::SetRestrictionAndFeatures {
            group, features, ..
        } => assert_eq!(&after.groups[group].features, features, "{command:?}"),
        Command::SetRestriction { group, restriction } => {
            let stored = after.groups[group].restriction.as_ref();
            let cut = |at: Option<DateTime<Utc>>| at.map(events::time::truncate_to_micros);
            let expected = Restriction {
                valid_from: cut(restriction.valid_from),
                valid_until: cut(restriction.valid_until),
                ..restriction.clone()
            };
            assert_eq!(stored, Some(&expected), "{command:?}");
        }
        Command::AssignLicense {
            license,
            user,
            group,
        }
        | Command::ReassignLicense {
            license,
            user,
            group,
        } => {
            assert_eq!(after.licenses[license].user, Some(*user), "{command:?}");
            assert!(after.users[user].licenses.contains(license), "{command:?}");
            let counted = group.unwrap_or(after.users[user].group);
            assert_eq!(
                after.counting_group(&after.licenses[license]),
                Some(counted),
                "{command:?}"
            );
        }
        Command::AttachAddon { base, addon } => {
            assert_eq!(after.licenses[addon].base, Some(*base), "{command:?}");
            assert!(after.licenses[base].addons.contains(addon), "{command:?}");
        }
        Command::TerminateLicense { license } => {
            assert!(after.licenses[license].terminated, "{command:?}");
        }
        _ => {}
    }
}

/// `count` sessions of `mix` from a fixed seed, played; `on_command` sees every command with
/// its outcome. Returns the runs.
fn sample_runs(
    mix: Mix,
    count: usize,
    on_command: &mut dyn FnMut(&Command, &Outcome),
) -> Vec<(Session, Run)> {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    (0..count)
        .map(|_| {
            let session = session(mix).new_tree(&mut runner).unwrap().current();
            let run = play(&session, &mut |_| {}, &mut |_, _, command, outcome, _| {
                on_command(command, outcome)
            });
            (session, run)
        })
        .collect()
}

/// The generator is only worth something if sessions really exercise the rules: over a fixed
/// set of seeds, most kinds of event occur and many commands are refused.
#[test]
fn random_sessions_reach_every_kind_of_event_and_many_rejections() {
    let mut rules = BTreeSet::new();
    let runs = sample_runs(BROAD, 400, &mut |_, outcome| {
        if let Err(rejection) = outcome {
            rules.extend(rejection.violations().iter().map(|v| v.rule));
        }
    });
    let kinds: BTreeSet<&str> = runs
        .iter()
        .flat_map(|(_, run)| run.ledger.envelopes.iter().map(|e| e.event.kind()))
        .collect();
    let accepted: usize = runs.iter().map(|(_, run)| run.accepted).sum();
    let total: usize = runs.iter().map(|(session, _)| session.steps.len()).sum();
    for kind in [
        "licenses_provisioned",
        "license_terminated",
        "license_assigned",
        "license_unassigned",
        "license_reassigned",
        "addon_attached",
        "addon_detached",
        "group_created",
        "group_moved",
        "restriction_set",
        "restriction_cleared",
        "user_created",
        "user_moved",
        "user_removed",
        "retention_set",
        "price_set",
        "feature_defined",
        "restriction_features_set",
        "user_group_added",
        "user_group_removed",
        "license_counted_in",
    ] {
        assert!(
            kinds.contains(kind),
            "no session produced {kind}: {kinds:?}"
        );
    }
    for rule in [
        Rule::GroupLimitReached,
        Rule::ChildLimitExceedsParent,
        Rule::LimitBelowUsage,
        Rule::ExcludedType,
        Rule::NotEnoughFreeLicenses,
        Rule::NotAFeature,
        Rule::FeatureDisabledAbove,
        Rule::UserNotInGroup,
    ] {
        assert!(rules.contains(&rule), "no session hit {rule:?}: {rules:?}");
    }
    assert!(
        accepted * 5 > total && accepted * 5 < total * 4,
        "{accepted} of {total} commands accepted: the mix should be neither all accepted \
         nor all refused"
    );
}

/// The quota mix drives every route by which usage lands on a group into an enabled limit:
/// assigning, attaching, reassigning, moving a user and moving a group.
#[test]
fn quota_sessions_run_into_group_limits_by_every_route() {
    let mut routes = BTreeSet::new();
    sample_runs(QUOTAS, 384, &mut |command, outcome| {
        let Err(rejection) = outcome else { return };
        let limited = rejection
            .violations()
            .iter()
            .any(|v| v.rule == Rule::GroupLimitReached);
        if limited {
            let name = format!("{command:?}");
            routes.insert(name.split([' ', '(', '{']).next().unwrap_or("").to_string());
        }
    });
    for route in [
        "AssignLicense",
        "AttachAddon",
        "ReassignLicense",
        "UpdateUser",
        "UpdateGroup",
    ] {
        assert!(
            routes.contains(route),
            "no {route} ran into a group limit: {routes:?}"
        );
    }
}
