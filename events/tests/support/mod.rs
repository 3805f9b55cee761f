//! A tiny story language for the rules of `decide`:
//!
//! ```text
//! given(&[provisioned(..), assigned(..)])
//!     .when(Command::TerminateLicense { .. })
//!     .then_reject(Rejection::LicenseInUse { .. });
//! ```
//!
//! `given` starts from a created tenant (the `CreateTenant` command decided on an empty state,
//! which installs the default catalogue) and folds the story's facts with `evolve`, versions
//! 1, 2, 3, … `when` calls `decide` with a fixed [`Context`]. Every `then_*` asserts exactly.

// Each integration binary uses a different part of this module.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use events::{
    decide, decide_as, evolve, Command, CommandId, Context, Event, GroupId, LicenseId, Rejection,
    RejectionClass, Restriction, Rule, Tenant, TenantId, TypeCode, UserId, Violation,
};
use std::collections::BTreeMap;
use uuid::Uuid;

/// The tenant of every story.
pub const TENANT: TenantId = TenantId(Uuid::from_u128(0x7e7a_0001));
/// The command id of every `when`.
pub const COMMAND: CommandId = CommandId(Uuid::from_u128(0xc0_0001));

/// A licence id that reads well in a failure message.
pub const fn license(n: u128) -> LicenseId {
    LicenseId(Uuid::from_u128(0x1000_0000 + n))
}

/// A user id.
pub const fn user(n: u128) -> UserId {
    UserId(Uuid::from_u128(0x2000_0000 + n))
}

/// A group id.
pub const fn group(n: u128) -> GroupId {
    GroupId(Uuid::from_u128(0x3000_0000 + n))
}

/// The instant every story happens at.
pub fn now() -> DateTime<Utc> {
    at(2024, 5, 15)
}

/// Midnight UTC of a day.
pub fn at(year: i32, month: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(year, month, day, 0, 0, 0)
        .single()
        .expect("a valid calendar day")
}

/// The fixed context of `when`.
pub fn context() -> Context {
    Context {
        now: now(),
        command_id: COMMAND,
    }
}

/// The events of creating the story's tenant: `TenantCreated` and the default catalogue.
pub fn tenant_created() -> Vec<Event> {
    let create = Command::CreateTenant {
        name: "Acme".into(),
        billing_timezone: "UTC".into(),
        currency: "EUR".into(),
    };
    decide(&Tenant::empty(TENANT), &create, &context()).expect("a new tenant is always created")
}

/// Fold `events` onto `state`, numbering them after its current version.
pub fn fold(state: &mut Tenant, events: &[Event]) {
    for event in events {
        let version = state.version + 1;
        evolve(state, event, version);
    }
}

/// A created tenant with `facts` folded on top.
pub fn given(facts: &[Event]) -> Story {
    let mut state = Tenant::empty(TENANT);
    fold(&mut state, &tenant_created());
    fold(&mut state, facts);
    Story { state }
}

/// Continue a story from a state an earlier step produced.
pub fn given_state(state: Tenant) -> Story {
    Story { state }
}

/// The state a story starts from.
pub struct Story {
    pub state: Tenant,
}

impl Story {
    /// Decide `command` against the story's state.
    pub fn when(self, command: Command) -> Outcome {
        let result = decide(&self.state, &command, &context());
        Outcome {
            before: self.state,
            command,
            result,
        }
    }

    /// Decide `command` sent with a key scoped to `scope` (a dealer's key).
    pub fn when_scoped(self, scope: GroupId, command: Command) -> Outcome {
        let result = decide_as(&self.state, &command, &context(), Some(scope));
        Outcome {
            before: self.state,
            command,
            result,
        }
    }
}

/// What `decide` answered, with the state it judged.
pub struct Outcome {
    pub before: Tenant,
    pub command: Command,
    pub result: Result<Vec<Event>, Rejection>,
}

impl Outcome {
    /// Assert exactly these events; return the state after folding them.
    #[track_caller]
    pub fn then_events(self, expected: &[Event]) -> Tenant {
        let events = self.accepted_events();
        assert_eq!(events, expected, "events of {:?}", self.command);
        let mut after = self.before;
        fold(&mut after, &events);
        after
    }

    /// Assert the command was accepted; return the state after folding its events.
    #[track_caller]
    pub fn then_accepted(self) -> Tenant {
        let events = self.accepted_events();
        let mut after = self.before;
        fold(&mut after, &events);
        after
    }

    /// Assert exactly this rejection; return it for further checks.
    #[track_caller]
    pub fn then_reject(self, expected: Rejection) -> Rejection {
        let rejection = self.rejection();
        assert_eq!(rejection, expected, "rejection of {:?}", self.command);
        rejection
    }

    /// Assert a 400 `InvalidInput` whose message mentions `mentions`.
    #[track_caller]
    pub fn then_invalid_input(self, mentions: &str) -> String {
        match self.rejection() {
            Rejection::InvalidInput(message) => {
                assert!(
                    message.contains(mentions),
                    "message {message:?} should mention {mentions:?}"
                );
                message
            }
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    /// Assert a 422 listing exactly one violation, of `rule`; return it.
    #[track_caller]
    pub fn then_rule(self, rule: Rule) -> Violation {
        let mut found = self.then_rules(&[rule]);
        found.remove(0)
    }

    /// Assert a 422 whose violations are exactly `rules` (in any order); return them.
    #[track_caller]
    pub fn then_rules(self, rules: &[Rule]) -> Vec<Violation> {
        let found = self.violations();
        let mut got: Vec<Rule> = found.iter().map(|v| v.rule).collect();
        let mut want = rules.to_vec();
        got.sort();
        want.sort();
        assert_eq!(got, want, "violations: {found:#?}");
        found
    }

    /// Assert a 422 whose violations equal `expected` in everything but the message (in any
    /// order); every message must be non-empty.
    #[track_caller]
    pub fn then_violations(self, expected: &[Violation]) -> Vec<Violation> {
        let found = self.violations();
        for v in &found {
            assert!(
                !v.message.trim().is_empty(),
                "a violation without message: {v:?}"
            );
        }
        let key = |v: &Violation| (v.rule, v.group, v.license_type.clone(), v.limit, v.used);
        let mut got: Vec<_> = found.iter().map(key).collect();
        let mut want: Vec<_> = expected.iter().map(key).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "violations: {found:#?}");
        found
    }

    #[track_caller]
    fn violations(self) -> Vec<Violation> {
        let rejection = self.rejection();
        assert_eq!(
            rejection.class(),
            RejectionClass::RuleViolation,
            "expected a rule violation, got {rejection:?}"
        );
        rejection.violations().to_vec()
    }

    /// Assert the command was refused; return why.
    #[track_caller]
    pub fn rejection(&self) -> Rejection {
        match &self.result {
            Ok(events) => panic!(
                "{:?} was accepted with {events:#?}, expected a rejection",
                self.command
            ),
            Err(rejection) => rejection.clone(),
        }
    }

    #[track_caller]
    pub fn accepted_events(&self) -> Vec<Event> {
        match &self.result {
            Ok(events) => events.clone(),
            Err(rejection) => panic!("{:?} was rejected: {rejection:?}", self.command),
        }
    }
}

/// A violation to compare with [`Outcome::then_violations`] (messages are not compared).
pub fn violation(rule: Rule) -> Violation {
    Violation::new(rule, "")
}

// ---- Facts: events a story is given. ----

pub fn provisioned(license_type: &str, ids: &[LicenseId]) -> Event {
    Event::LicensesProvisioned {
        license_type: license_type.into(),
        ids: ids.to_vec(),
    }
}

pub fn terminated(id: LicenseId, license_type: &str) -> Event {
    Event::LicenseTerminated {
        license: id,
        license_type: license_type.into(),
    }
}

pub fn assigned(id: LicenseId, license_type: &str, to: UserId) -> Event {
    Event::LicenseAssigned {
        license: id,
        license_type: license_type.into(),
        user: to,
    }
}

pub fn unassigned(id: LicenseId, license_type: &str, from: UserId) -> Event {
    Event::LicenseUnassigned {
        license: id,
        license_type: license_type.into(),
        user: from,
    }
}

pub fn reassigned(id: LicenseId, license_type: &str, from: UserId, to: UserId) -> Event {
    Event::LicenseReassigned {
        license: id,
        license_type: license_type.into(),
        from,
        to,
    }
}

pub fn attached(addon: LicenseId, addon_type: &str, base: LicenseId) -> Event {
    Event::AddonAttached {
        addon,
        addon_type: addon_type.into(),
        base,
    }
}

pub fn detached(addon: LicenseId, addon_type: &str, base: LicenseId) -> Event {
    Event::AddonDetached {
        addon,
        addon_type: addon_type.into(),
        base,
    }
}

pub fn group_created(id: GroupId, name: &str, parent: Option<GroupId>) -> Event {
    Event::GroupCreated {
        group: id,
        name: name.into(),
        parent,
    }
}

pub fn user_created(id: UserId, in_group: GroupId, extension: Option<&str>) -> Event {
    Event::UserCreated {
        user: id,
        name: format!("user {id}"),
        group: in_group,
        extension: extension.map(str::to_string),
        number: None,
    }
}

pub fn user_removed(id: UserId) -> Event {
    Event::UserRemoved { user: id }
}

pub fn restriction_set(id: GroupId, restriction: Restriction) -> Event {
    Event::RestrictionSet {
        group: id,
        restriction,
    }
}

/// An enabled restriction with these limits and no window.
pub fn limits(pairs: &[(&str, u64)]) -> Restriction {
    Restriction {
        enabled: true,
        limits: pairs
            .iter()
            .map(|(t, n)| (TypeCode::from(*t), *n))
            .collect(),
        valid_from: None,
        valid_until: None,
        reminder: None,
    }
}

/// An enabled restriction with a window and no limits.
pub fn window(valid_from: DateTime<Utc>, valid_until: DateTime<Utc>) -> Restriction {
    Restriction {
        valid_from: Some(valid_from),
        valid_until: Some(valid_until),
        ..limits(&[])
    }
}

// ---- Reading the state. ----

/// The usage counters of a group, as `(type, count)` pairs.
pub fn used(state: &Tenant, id: GroupId) -> Vec<(String, u64)> {
    state.groups[&id]
        .used
        .iter()
        .map(|(t, n)| (t.as_str().to_string(), *n))
        .collect()
}

/// `(type, count)` pairs from literals, for comparing with [`used`].
pub fn counts(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

/// Usage of every group recomputed from scratch: each active user's base licences, with their
/// add-ons, counted on the group the licence counts against (the user's own, or the other
/// group of theirs it was counted in) and every ancestor. `evolve` maintains the same
/// counters incrementally.
pub fn recomputed_usage(state: &Tenant) -> BTreeMap<GroupId, BTreeMap<TypeCode, u64>> {
    let mut usage: BTreeMap<GroupId, BTreeMap<TypeCode, u64>> = BTreeMap::new();
    for u in state.users.values().filter(|u| !u.removed) {
        for id in &u.licenses {
            let base = &state.licenses[id];
            let counted = base.counted_in.unwrap_or(u.group);
            for t in state.license_with_addon_types(base) {
                for g in state.path_to_root(counted) {
                    *usage.entry(g).or_default().entry(t.clone()).or_insert(0) += 1;
                }
            }
        }
    }
    usage
}

/// Assert the invariants every reachable state keeps: usage counters match a recount, and no
/// enabled limit is exceeded.
#[track_caller]
pub fn assert_invariants(state: &Tenant) {
    let recount = recomputed_usage(state);
    for (id, g) in &state.groups {
        let expected = recount.get(id).cloned().unwrap_or_default();
        assert_eq!(g.used, expected, "usage counters of group {}", g.name);
        if let Some(r) = g.enabled_restriction() {
            for (t, limit) in &r.limits {
                assert!(
                    g.used_of(t) <= *limit,
                    "group {} uses {} {t}, above its limit {limit}",
                    g.name,
                    g.used_of(t)
                );
            }
        }
    }
    for (t, owned) in &state.owned {
        let live = state
            .licenses
            .values()
            .filter(|l| &l.license_type == t && !l.terminated)
            .count() as u64;
        assert_eq!(*owned, live, "owned {t}");
    }
}
