//! What-if: preview a list of commands before anything is written.
//!
//! `decide` is pure and every projection is a fold, so a preview is the real thing run against
//! copies: each command is decided in order at the instant `at` against a clone of the tenant,
//! its events are folded into that clone and into a clone of the billing fold (in envelopes
//! built as the writer builds them, sequence and version continuing from the current ones),
//! and the copies are compared with the originals. Nothing is stored; the originals are only
//! read.
//!
//! The answer says whether every command would be accepted, what each one would produce or why
//! it would be refused, every rule it would break, which users would lose which entitlement at
//! `at` (including users blocked indirectly, say by a shorter window on an ancestor) and how
//! the peak units and amount of the month containing `at` would move.

use crate::billing::{Billing, Month, Through, CALL_RECORDING};
use crate::explain::{entitlement, Check};
use chrono::{DateTime, Utc};
use events::time::truncate_to_micros;
use events::{
    decide_as, evolve, Command, CommandId, Context, Envelope, Event, GroupId, LicenseId, Rejection,
    Tenant, TypeCode, UserId, Violation,
};
use std::collections::{BTreeMap, BTreeSet};

/// Commands one what-if evaluates at most.
pub const COMMANDS_PER_WHAT_IF_MAX: usize = 1000;

/// The actor stamped on would-be events (never stored).
pub const WHAT_IF_ACTOR: &str = "what-if";

/// blake3 key-derivation context of preview command ids: their own namespace.
const COMMAND_ID_CONTEXT: &str = "ledger what-if 2025 preview command id";

/// A month after every month the billing fold can hold, to ask it for its last event.
const LAST_MONTH: Month = Month {
    year: i32::MAX,
    month: 12,
};

/// The command id the `index`-th command of a what-if on `tenant` is decided with.
///
/// Deterministic (tenant, its version, the index), so the same preview twice gives the same
/// licence ids, and executing the same commands with these ids reproduces the preview exactly.
pub fn preview_command_id(tenant: &Tenant, index: usize) -> CommandId {
    let mut hasher = blake3::Hasher::new_derive_key(COMMAND_ID_CONTEXT);
    hasher.update(tenant.id.as_uuid().as_bytes());
    hasher.update(&tenant.version.to_le_bytes());
    hasher.update(&(index as u64).to_le_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    CommandId(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// What one command of the list would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandResult {
    pub command_id: CommandId,
    /// The events it would append, or why it would be refused (nothing of it applied).
    pub outcome: Result<Vec<Event>, Rejection>,
}

/// A broken rule, with the index of the command that would break it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedViolation {
    pub index: usize,
    pub violation: Violation,
}

/// A user entitled to a type at `at` now who would not be after the commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub user: UserId,
    pub license_type: TypeCode,
    /// The first failing entitlement check after the change (`holds_license`,
    /// `window_expired`, `window_not_started`, `requires`, `excludes`, `user_active`; for a
    /// feature `feature_disabled`, `feature_not_enabled`).
    pub rule: &'static str,
    /// The group whose restriction blocks it, for group rules.
    pub group: Option<(GroupId, String)>,
    pub detail: String,
}

/// How one type's figures for the month would move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BillingDelta {
    pub peak_units_before: u64,
    pub peak_units_after: u64,
    /// Peak units × the price in force at month end, before and after (0 without a price).
    pub amount_minor_before: i64,
    pub amount_minor_after: i64,
    pub amount_minor_delta: i64,
}

/// The whole preview.
#[derive(Clone, Debug, PartialEq)]
pub struct WhatIf {
    /// The instant the commands were judged at (microsecond precision, as the log stores).
    pub at: DateTime<Utc>,
    /// The billing month containing `at`, in the tenant's billing time zone.
    pub month: Month,
    /// Every command would be accepted.
    pub ok: bool,
    /// One per command, in order.
    pub results: Vec<CommandResult>,
    pub violations: Vec<IndexedViolation>,
    /// Ordered by user, then type.
    pub would_block: Vec<Block>,
    /// Types whose peak units or amount would change, or whose licences or price a command
    /// would change.
    pub billing_delta: BTreeMap<TypeCode, BillingDelta>,
}

/// Why a what-if cannot be evaluated at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhatIfError {
    /// More than [`COMMANDS_PER_WHAT_IF_MAX`] commands.
    TooManyCommands { given: usize },
    /// `at` falls in a month before the month of the tenant's last event: no change can be
    /// recorded there any more.
    MonthClosed { month: Month },
}

impl std::fmt::Display for WhatIfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WhatIfError::TooManyCommands { given } => write!(
                f,
                "a what-if takes at most {COMMANDS_PER_WHAT_IF_MAX} commands, not {given}"
            ),
            WhatIfError::MonthClosed { month } => write!(
                f,
                "`at` falls in {month}, before the month of the tenant's last event; a change \
                 can only be made from then on"
            ),
        }
    }
}

impl std::error::Error for WhatIfError {}

/// Preview `commands`, in order, as if executed at `at` against `tenant` and its `billing`.
/// Neither is changed.
pub fn what_if(
    tenant: &Tenant,
    billing: &Billing,
    at: DateTime<Utc>,
    commands: &[Command],
) -> Result<WhatIf, WhatIfError> {
    what_if_as(tenant, billing, at, commands, None)
}

/// [`what_if`] for a key scoped to `scope` (a dealer's key): each command is judged as the
/// writer would judge it from that key (`events::decide_as`).
pub fn what_if_as(
    tenant: &Tenant,
    billing: &Billing,
    at: DateTime<Utc>,
    commands: &[Command],
    scope: Option<GroupId>,
) -> Result<WhatIf, WhatIfError> {
    if commands.len() > COMMANDS_PER_WHAT_IF_MAX {
        return Err(WhatIfError::TooManyCommands {
            given: commands.len(),
        });
    }
    let at = truncate_to_micros(at);
    let month = Month::of(at, billing.timezone);
    if billing.through(month) != billing.through(LAST_MONTH) {
        return Err(WhatIfError::MonthClosed { month });
    }
    let simulation = simulate_as(tenant, billing, at, commands, scope);
    let violations = simulation
        .results
        .iter()
        .enumerate()
        .flat_map(|(index, result)| {
            let rejection = result.outcome.as_ref().err();
            rejection
                .map(violations_of)
                .unwrap_or_default()
                .into_iter()
                .map(move |violation| IndexedViolation { index, violation })
        })
        .collect();
    let touched = billed_types(&simulation.results);
    Ok(WhatIf {
        at,
        month,
        ok: simulation.results.iter().all(|r| r.outcome.is_ok()),
        would_block: would_block_among(
            tenant,
            &simulation.tenant,
            at,
            affected_users(tenant, &simulation.tenant, &simulation.results).as_ref(),
        ),
        billing_delta: billing_delta(billing, &simulation.billing, month, &touched),
        violations,
        results: simulation.results,
    })
}

/// The copies after the commands ran, and what each command did.
#[derive(Clone, Debug)]
pub struct Simulation {
    pub tenant: Tenant,
    pub billing: Billing,
    pub results: Vec<CommandResult>,
}

/// Run `commands` in order against copies of `tenant` and `billing`, as the writer would at
/// `at` (truncated to the log's microseconds): a refused command changes nothing and the next
/// one is judged against the state before it.
pub fn simulate(
    tenant: &Tenant,
    billing: &Billing,
    at: DateTime<Utc>,
    commands: &[Command],
) -> Simulation {
    simulate_as(tenant, billing, at, commands, None)
}

/// [`simulate`] with each command judged as sent by a key scoped to `scope`.
pub fn simulate_as(
    tenant: &Tenant,
    billing: &Billing,
    at: DateTime<Utc>,
    commands: &[Command],
    scope: Option<GroupId>,
) -> Simulation {
    let at = truncate_to_micros(at);
    let mut state = tenant.clone();
    let mut folded = billing.clone();
    let mut seq = billing.through(LAST_MONTH).map_or(0, |t: Through| t.seq);
    let mut results = Vec::with_capacity(commands.len());
    for (index, command) in commands.iter().enumerate() {
        let ctx = Context {
            now: at,
            command_id: preview_command_id(tenant, index),
        };
        let outcome = decide_as(&state, command, &ctx, scope);
        for event in outcome.iter().flatten() {
            seq += 1;
            let envelope = Envelope {
                seq,
                tenant: state.id,
                version: state.version + 1,
                recorded_at: at,
                actor: WHAT_IF_ACTOR.to_string(),
                reason: None,
                command_id: ctx.command_id,
                prev_hash: state.last_hash,
                event: event.clone(),
            };
            let hash = Envelope::hash_of(&envelope.encode());
            evolve(&mut state, event, envelope.version);
            state.last_hash = hash;
            folded.apply(&envelope, hash);
        }
        results.push(CommandResult {
            command_id: ctx.command_id,
            outcome,
        });
    }
    Simulation {
        tenant: state,
        billing: folded,
        results,
    }
}

/// Every violation a rejection lists, those of a batch's items included.
pub fn violations_of(rejection: &Rejection) -> Vec<Violation> {
    match rejection {
        Rejection::RuleViolations(list) => list.clone(),
        Rejection::BatchRejected(items) => items
            .iter()
            .flat_map(|(_, item)| violations_of(item))
            .collect(),
        _ => Vec::new(),
    }
}

/// Types whose licence count or price an accepted command changes.
fn billed_types(results: &[CommandResult]) -> BTreeSet<TypeCode> {
    let mut types = BTreeSet::new();
    for event in results
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok())
        .flatten()
    {
        match event {
            Event::LicensesProvisioned { license_type, .. }
            | Event::LicenseTerminated { license_type, .. }
            | Event::PriceSet { license_type, .. } => {
                types.insert(license_type.clone());
            }
            Event::RetentionSet { .. } => {
                types.insert(TypeCode::from(CALL_RECORDING));
            }
            _ => {}
        }
    }
    types
}

/// Every (active user, type) entitled at `at` in `before` and not in `after`, with the first
/// check that fails after. Asked about: the types the user holds before, and every feature
/// of the catalogue before (a feature switched off, or a window shortened, shows who would
/// lose it).
pub fn would_block(before: &Tenant, after: &Tenant, at: DateTime<Utc>) -> Vec<Block> {
    would_block_among(before, after, at, None)
}

/// [`would_block`] asked only of `users` (every user with `None`): the same answer when
/// `users` holds everyone whose entitlements the change could reach ([`affected_users`]),
/// without asking the rest of a large tenant.
pub fn would_block_among(
    before: &Tenant,
    after: &Tenant,
    at: DateTime<Utc>,
    users: Option<&BTreeSet<UserId>>,
) -> Vec<Block> {
    let mut blocks = Vec::new();
    // Either way in id order: the map's and the set's.
    let asked: Box<dyn Iterator<Item = &events::state::User>> = match users {
        None => Box::new(before.users.values()),
        Some(only) => Box::new(only.iter().filter_map(|id| before.users.get(id))),
    };
    for user in asked.filter(|u| !u.removed) {
        let mut types = before.holdings(user.id);
        types.extend(before.features.keys().cloned());
        types.sort();
        types.dedup();
        for license_type in types {
            let entitled =
                entitlement(before, user.id, &license_type, at).is_some_and(|e| e.allowed);
            if !entitled {
                continue;
            }
            let failed: Option<Check> = match entitlement(after, user.id, &license_type, at) {
                Some(e) => e.blocked_by().cloned(),
                None => Some(Check {
                    limit: None,
                    rule: "user_active",
                    passed: false,
                    group: None,
                    detail: format!("user {} would not exist", user.id),
                    ..Check::default()
                }),
            };
            if let Some(check) = failed {
                blocks.push(Block {
                    user: user.id,
                    license_type,
                    rule: check.rule,
                    group: check.group,
                    detail: check.detail,
                });
            }
        }
    }
    blocks
}

/// Everyone whose entitlements the accepted events of `results` could change, from `before`
/// to `after`; `None` when an event could change anyone's (a licence type's or a feature's
/// definition). An entitlement reads the user, the licences they hold and the groups on the
/// paths of their groups: so the users an event names, the holders (before and after) of the
/// licences it names, and the members of every group below a group it names, in either tree.
pub fn affected_users(
    before: &Tenant,
    after: &Tenant,
    results: &[CommandResult],
) -> Option<BTreeSet<UserId>> {
    let mut users = BTreeSet::new();
    let mut groups = BTreeSet::new();
    let accepted = results
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok())
        .flatten();
    for event in accepted {
        if matches!(
            event,
            Event::LicenseTypeDefined { .. }
                | Event::FeatureDefined { .. }
                | Event::ServiceDefined { .. }
        ) {
            return None;
        }
        let named = crate::audit::touches(event);
        users.extend(named.users.iter().copied());
        groups.extend(named.groups.iter().copied());
        for license in &named.licenses {
            for state in [before, after] {
                users.extend(holder(state, *license));
            }
        }
    }
    if !groups.is_empty() {
        let mut below = BTreeSet::new();
        for state in [before, after] {
            for group in &groups {
                below.extend(state.subtree(*group));
            }
        }
        for state in [before, after] {
            let members = state
                .users
                .values()
                .filter(|u| u.all_groups().any(|g| below.contains(&g)));
            users.extend(members.map(|u| u.id));
        }
    }
    Some(users)
}

/// Who holds `license` in `tenant`: its user, or for an add-on its base's.
fn holder(tenant: &Tenant, license: LicenseId) -> Option<UserId> {
    let l = tenant.licenses.get(&license)?;
    match l.base {
        Some(base) => tenant.licenses.get(&base).and_then(|b| b.user),
        None => l.user,
    }
}

/// How `month`'s peak units and amounts move from `before` to `after`, for every type whose
/// figures differ and every type in `touched`. Amounts follow the invoice: peak units × the
/// price in force at month end, 0 without a price.
pub fn billing_delta(
    before: &Billing,
    after: &Billing,
    month: Month,
    touched: &BTreeSet<TypeCode>,
) -> BTreeMap<TypeCode, BillingDelta> {
    let end = month.end(before.timezone);
    let figures_before = before.month(month);
    let figures_after = after.month(month);
    let mut types: BTreeSet<&TypeCode> = figures_before.keys().collect();
    types.extend(figures_after.keys());
    types.extend(touched);
    let amount = |billing: &Billing, license_type: &TypeCode, units: u64| {
        billing
            .price_at(license_type, end)
            .map_or(0, |price| price.saturating_mul(units as i64))
    };
    types
        .into_iter()
        .filter_map(|license_type| {
            let units_before = figures_before.get(license_type).map_or(0, |f| f.peak_units);
            let units_after = figures_after.get(license_type).map_or(0, |f| f.peak_units);
            let amount_before = amount(before, license_type, units_before);
            let amount_after = amount(after, license_type, units_after);
            let changed = units_before != units_after || amount_before != amount_after;
            (changed || touched.contains(license_type)).then(|| {
                let delta = BillingDelta {
                    peak_units_before: units_before,
                    peak_units_after: units_after,
                    amount_minor_before: amount_before,
                    amount_minor_after: amount_after,
                    amount_minor_delta: amount_after.saturating_sub(amount_before),
                };
                (license_type.clone(), delta)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use events::{NewUser, Restriction, Retention, Rule};
    use uuid::Uuid;

    /// A tenant built by deciding and folding commands as the writer does.
    struct Fixture {
        tenant: Tenant,
        billing: Billing,
        seq: u64,
        now: DateTime<Utc>,
        commands: u128,
        names: u128,
    }

    fn march() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap()
    }

    impl Fixture {
        fn new(now: DateTime<Utc>) -> Fixture {
            let id = events::TenantId(Uuid::from_u128(0x7e7a_0700));
            let mut fixture = Fixture {
                tenant: Tenant::empty(id),
                billing: Billing::default(),
                seq: 0,
                now,
                commands: 0,
                names: 0,
            };
            fixture.run(Command::CreateTenant {
                name: "Acme".into(),
                billing_timezone: "Europe/Prague".into(),
                currency: "EUR".into(),
            });
            fixture
        }

        fn try_run(&mut self, command: Command) -> Result<Vec<Event>, Rejection> {
            self.commands += 1;
            let ctx = Context {
                now: self.now,
                command_id: CommandId(Uuid::from_u128(0xc0_0000 + self.commands)),
            };
            let events = events::decide(&self.tenant, &command, &ctx)?;
            for event in &events {
                self.seq += 1;
                let envelope = Envelope {
                    seq: self.seq,
                    tenant: self.tenant.id,
                    version: self.tenant.version + 1,
                    recorded_at: self.now,
                    actor: "test".into(),
                    reason: None,
                    command_id: ctx.command_id,
                    prev_hash: self.tenant.last_hash,
                    event: event.clone(),
                };
                let hash = Envelope::hash_of(&envelope.encode());
                evolve(&mut self.tenant, event, envelope.version);
                self.tenant.last_hash = hash;
                self.billing.apply(&envelope, hash);
            }
            Ok(events)
        }

        fn run(&mut self, command: Command) -> Vec<Event> {
            let shown = format!("{command:?}");
            self.try_run(command)
                .unwrap_or_else(|e| panic!("{shown} was refused: {e}"))
        }

        fn group(&mut self, name: &str, parent: Option<GroupId>) -> GroupId {
            self.names += 1;
            let group = GroupId(Uuid::from_u128(0x6000_0000 + self.names));
            self.run(Command::CreateGroup {
                group,
                name: name.into(),
                parent,
                contact_email: None,
            });
            group
        }

        fn user(&mut self, group: GroupId) -> UserId {
            self.names += 1;
            let user = UserId(Uuid::from_u128(0x5000_0000 + self.names));
            self.run(Command::CreateUser(NewUser {
                user,
                name: format!("user {}", self.names),
                group,
                extension: None,
                number: None,
            }));
            user
        }

        fn provision(&mut self, license_type: &str, quantity: u32) -> Vec<LicenseId> {
            let events = self.run(Command::ProvisionLicenses {
                license_type: license_type.into(),
                quantity,
            });
            match events.as_slice() {
                [Event::LicensesProvisioned { ids, .. }] => ids.clone(),
                other => panic!("provisioning produced {other:?}"),
            }
        }

        fn assign_type(&mut self, user: UserId, license_type: &str, addons: &[&str]) {
            self.run(Command::AssignByType {
                user,
                license_type: license_type.into(),
                addons: addons.iter().map(|a| TypeCode::from(*a)).collect(),
                group: None,
            });
        }

        fn preview(&self, commands: &[Command]) -> WhatIf {
            what_if(&self.tenant, &self.billing, self.now, commands).expect("a valid what-if")
        }
    }

    fn restriction(limits: &[(&str, u64)], valid_until: Option<DateTime<Utc>>) -> Restriction {
        Restriction {
            enabled: true,
            limits: limits
                .iter()
                .map(|(t, n)| (TypeCode::from(*t), *n))
                .collect(),
            valid_from: None,
            valid_until,
            reminder: None,
        }
    }

    /// The worked example of issue 7: a tree of three levels (HQ → Sales, Support → two teams
    /// each) with 40 users holding `phone_system`, HQ limited to 50 until 2027, Sales to 25;
    /// and two partner users in a root group of their own.
    struct Example {
        fixture: Fixture,
        hq: GroupId,
        sales: GroupId,
        tree_users: Vec<UserId>,
        partners: Vec<UserId>,
    }

    fn until_2027() -> Option<DateTime<Utc>> {
        Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap())
    }

    fn example() -> Example {
        let mut fixture = Fixture::new(march());
        let hq = fixture.group("HQ", None);
        let sales = fixture.group("Sales", Some(hq));
        let support = fixture.group("Support", Some(hq));
        let teams = [
            fixture.group("Sales East", Some(sales)),
            fixture.group("Sales West", Some(sales)),
            fixture.group("Support L1", Some(support)),
            fixture.group("Support L2", Some(support)),
        ];
        let partners_group = fixture.group("Partners", None);
        fixture.provision("phone_system", 45);
        fixture.run(Command::SetRestriction {
            group: hq,
            restriction: restriction(&[("phone_system", 50)], until_2027()),
        });
        fixture.run(Command::SetRestriction {
            group: sales,
            restriction: restriction(&[("phone_system", 25)], None),
        });
        let mut tree_users = Vec::new();
        for team in teams {
            for _ in 0..10 {
                let user = fixture.user(team);
                fixture.assign_type(user, "phone_system", &[]);
                tree_users.push(user);
            }
        }
        let mut partners = Vec::new();
        for _ in 0..2 {
            let user = fixture.user(partners_group);
            fixture.assign_type(user, "phone_system", &[]);
            partners.push(user);
        }
        Example {
            fixture,
            hq,
            sales,
            tree_users,
            partners,
        }
    }

    /// A violation's rule, group, limit and usage.
    type Found = (Rule, Option<GroupId>, Option<u64>, Option<u64>);

    #[test]
    fn lowering_the_roots_limit_below_usage_lists_every_violation_and_blocks_nobody() {
        let example = example();
        let preview = example.fixture.preview(&[Command::SetRestriction {
            group: example.hq,
            restriction: restriction(&[("phone_system", 20)], until_2027()),
        }]);
        assert!(!preview.ok);
        assert!(preview.results[0].outcome.is_err());
        let found: Vec<Found> = preview
            .violations
            .iter()
            .map(|v| {
                assert_eq!(v.index, 0);
                let v = &v.violation;
                assert_eq!(v.license_type, Some(TypeCode::from("phone_system")));
                (v.rule, v.group, v.limit, v.used)
            })
            .collect();
        assert!(
            found.contains(&(Rule::LimitBelowUsage, Some(example.hq), Some(20), Some(40))),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(rule, group, ..)| *rule == Rule::ChildLimitExceedsParent
                    && *group == Some(example.sales)),
            "Sales' limit of 25 would exceed HQ's 20: {found:?}"
        );
        assert!(preview.would_block.is_empty());
        assert!(preview.billing_delta.is_empty());
    }

    #[test]
    fn asking_only_the_users_a_change_reaches_finds_every_block_that_asking_all_finds() {
        let example = example();
        let fixture = &example.fixture;
        let at = fixture.now;
        let tenant = &fixture.tenant;
        let partners_group = tenant.users[&example.partners[0]].group;
        let held = |user: UserId| {
            *tenant.users[&user]
                .licenses
                .iter()
                .next()
                .expect("a held licence")
        };
        let expired = restriction(&[], Some(at - Duration::hours(1)));
        let changes: Vec<(&str, Vec<Command>)> = vec![
            (
                "Sales' window ends",
                vec![Command::SetRestriction {
                    group: example.sales,
                    restriction: restriction(
                        &[("phone_system", 25)],
                        Some(at - Duration::hours(1)),
                    ),
                }],
            ),
            (
                "Sales moves under Partners, whose window has ended",
                vec![
                    Command::SetRestriction {
                        group: partners_group,
                        restriction: expired.clone(),
                    },
                    Command::UpdateGroup {
                        group: example.sales,
                        name: None,
                        parent: Some(Some(partners_group)),
                        contact_email: None,
                    },
                ],
            ),
            (
                "a partner's licence unassigned",
                vec![Command::UnassignLicense {
                    license: held(example.partners[0]),
                }],
            ),
            (
                "a user of the tree moved to Partners, whose window has ended",
                vec![
                    Command::SetRestriction {
                        group: partners_group,
                        restriction: expired,
                    },
                    Command::UpdateUser {
                        user: example.tree_users[1],
                        name: None,
                        group: Some(partners_group),
                        extension: None,
                        number: None,
                    },
                ],
            ),
        ];
        for (change, commands) in changes {
            let preview = fixture.preview(&commands);
            assert!(preview.ok, "{change}: {:?}", preview.results);
            let simulation = simulate(tenant, &fixture.billing, at, &commands);
            let everyone = would_block(tenant, &simulation.tenant, at);
            assert!(!everyone.is_empty(), "{change} blocks someone");
            assert_eq!(preview.would_block, everyone, "{change}");
            let asked = affected_users(tenant, &simulation.tenant, &simulation.results)
                .expect("no definition changed");
            assert!(
                asked.len() < tenant.users.len(),
                "{change}: not every user needs asking"
            );
        }
        // Sales' window concerns Sales' users alone.
        let commands = [Command::SetRestriction {
            group: example.sales,
            restriction: restriction(&[("phone_system", 25)], Some(at - Duration::hours(1))),
        }];
        let simulation = simulate(tenant, &fixture.billing, at, &commands);
        let asked = affected_users(tenant, &simulation.tenant, &simulation.results).expect("some");
        assert_eq!(asked.len(), 20);
        assert!(example.partners.iter().all(|p| !asked.contains(p)));
    }

    #[test]
    fn shortening_the_roots_window_blocks_every_user_under_it_and_nobody_else() {
        let example = example();
        let at = example.fixture.now;
        let preview = example.fixture.preview(&[Command::SetRestriction {
            group: example.hq,
            restriction: restriction(&[("phone_system", 50)], Some(at - Duration::hours(1))),
        }]);
        assert!(preview.ok, "{:?}", preview.results);
        assert!(preview.violations.is_empty());
        let mut blocked: Vec<UserId> = preview.would_block.iter().map(|b| b.user).collect();
        blocked.sort();
        let mut expected = example.tree_users.clone();
        expected.sort();
        assert_eq!(blocked, expected, "all 40 users of the tree, through HQ");
        for block in &preview.would_block {
            assert_eq!(block.license_type, TypeCode::from("phone_system"));
            assert_eq!(block.rule, "window_expired");
            assert_eq!(block.group, Some((example.hq, "HQ".to_string())));
        }
        assert!(preview
            .would_block
            .iter()
            .all(|b| !example.partners.contains(&b.user)));
    }

    #[test]
    fn each_command_is_judged_against_the_state_the_earlier_accepted_ones_leave() {
        let example = example();
        let user = example.tree_users[3];
        let license = *example.fixture.tenant.users[&user]
            .licenses
            .iter()
            .next()
            .unwrap();
        // In use: refused. Unassigned first: accepted, and the user loses phone_system.
        let refused = example
            .fixture
            .preview(&[Command::TerminateLicense { license }]);
        assert!(!refused.ok);
        assert!(matches!(
            refused.results[0].outcome,
            Err(Rejection::LicenseInUse { .. })
        ));
        assert!(refused.would_block.is_empty());
        let accepted = example.fixture.preview(&[
            Command::UnassignLicense { license },
            Command::TerminateLicense { license },
        ]);
        assert!(accepted.ok, "{:?}", accepted.results);
        let kinds: Vec<Vec<&str>> = accepted
            .results
            .iter()
            .map(|r| {
                r.outcome
                    .as_ref()
                    .unwrap()
                    .iter()
                    .map(Event::kind)
                    .collect()
            })
            .collect();
        assert_eq!(
            kinds,
            vec![vec!["license_unassigned"], vec!["license_terminated"]]
        );
        assert_eq!(accepted.would_block.len(), 1);
        assert_eq!(accepted.would_block[0].user, user);
        assert_eq!(accepted.would_block[0].rule, "holds_license");
        assert_eq!(accepted.would_block[0].group, None);
        // A refused command in the middle changes nothing for the ones after it.
        let mixed = example.fixture.preview(&[
            Command::TerminateLicense { license },
            Command::UnassignLicense { license },
        ]);
        assert!(!mixed.ok);
        assert!(mixed.results[0].outcome.is_err());
        assert!(mixed.results[1].outcome.is_ok());
    }

    #[test]
    fn terminating_licences_never_lowers_the_months_peak() {
        let mut example = example();
        example.fixture.run(Command::SetPrice {
            license_type: "phone_system".into(),
            unit_price_minor: 1500,
            currency: "EUR".into(),
            effective_from: DateTime::<Utc>::UNIX_EPOCH,
        });
        let lowered = example.fixture.preview(&[Command::SetQuantity {
            license_type: "phone_system".into(),
            quantity: 42,
        }]);
        assert!(lowered.ok, "{:?}", lowered.results);
        let phone = lowered.billing_delta[&TypeCode::from("phone_system")];
        assert_eq!(phone.peak_units_before, 45);
        assert_eq!(phone.peak_units_after, 45, "the peak already reached stays");
        assert_eq!(phone.amount_minor_delta, 0);
    }

    #[test]
    fn billing_delta_prices_the_new_peak_at_month_end_and_matches_the_invoices() {
        let mut example = example();
        example.fixture.provision("call_recording", 10);
        example.fixture.run(Command::SetPrice {
            license_type: "phone_system".into(),
            unit_price_minor: 1500,
            currency: "EUR".into(),
            effective_from: DateTime::<Utc>::UNIX_EPOCH,
        });
        let fixture = &example.fixture;
        let preview = fixture.preview(&[
            Command::ProvisionLicenses {
                license_type: "phone_system".into(),
                quantity: 5,
            },
            Command::SetRetention(Retention::Months(6)),
            Command::SetPrice {
                license_type: "call_recording".into(),
                unit_price_minor: 200,
                currency: "EUR".into(),
                effective_from: DateTime::<Utc>::UNIX_EPOCH,
            },
        ]);
        assert!(preview.ok, "{:?}", preview.results);
        let phone = preview.billing_delta[&TypeCode::from("phone_system")];
        assert_eq!((phone.peak_units_before, phone.peak_units_after), (45, 50));
        assert_eq!(phone.amount_minor_delta, 5 * 1500);
        let recording = preview.billing_delta[&TypeCode::from("call_recording")];
        assert_eq!(
            (recording.peak_units_before, recording.peak_units_after),
            (0, 20),
            "10 licences × 6 months / 3"
        );
        assert_eq!(recording.amount_minor_delta, 20 * 200);
        let simulation = simulate(
            &fixture.tenant,
            &fixture.billing,
            fixture.now,
            &[
                Command::ProvisionLicenses {
                    license_type: "phone_system".into(),
                    quantity: 5,
                },
                Command::SetRetention(Retention::Months(6)),
                Command::SetPrice {
                    license_type: "call_recording".into(),
                    unit_price_minor: 200,
                    currency: "EUR".into(),
                    effective_from: DateTime::<Utc>::UNIX_EPOCH,
                },
            ],
        );
        let total = |billing: &Billing| crate::billing::invoice(billing, preview.month).total_minor;
        let summed: i64 = preview
            .billing_delta
            .values()
            .map(|d| d.amount_minor_delta)
            .sum();
        assert_eq!(summed, total(&simulation.billing) - total(&fixture.billing));
    }

    #[test]
    fn previews_are_deterministic_and_name_the_licences_they_would_provision() {
        let example = example();
        let provision = [Command::ProvisionLicenses {
            license_type: "voice".into(),
            quantity: 3,
        }];
        let first = example.fixture.preview(&provision);
        let second = example.fixture.preview(&provision);
        assert_eq!(first, second);
        assert_eq!(
            first.results[0].command_id,
            preview_command_id(&example.fixture.tenant, 0)
        );
        assert_ne!(
            preview_command_id(&example.fixture.tenant, 0),
            preview_command_id(&example.fixture.tenant, 1)
        );
    }

    #[test]
    fn an_at_in_a_month_before_the_last_event_is_refused() {
        let example = example();
        let february = march() - Duration::days(20);
        assert_eq!(
            what_if(
                &example.fixture.tenant,
                &example.fixture.billing,
                february,
                &[]
            ),
            Err(WhatIfError::MonthClosed {
                month: Month {
                    year: 2026,
                    month: 2
                }
            })
        );
        let april = march() + Duration::days(30);
        let later = what_if(
            &example.fixture.tenant,
            &example.fixture.billing,
            april,
            &[],
        )
        .expect("a later month is fine");
        assert!(later.ok);
        assert_eq!(later.month.to_string(), "2026-04");
    }

    #[test]
    fn too_many_commands_are_refused_before_any_is_decided() {
        let example = example();
        let commands =
            vec![Command::ClearRestriction { group: example.hq }; COMMANDS_PER_WHAT_IF_MAX + 1];
        assert_eq!(
            what_if(
                &example.fixture.tenant,
                &example.fixture.billing,
                example.fixture.now,
                &commands
            ),
            Err(WhatIfError::TooManyCommands {
                given: COMMANDS_PER_WHAT_IF_MAX + 1
            })
        );
    }
}
