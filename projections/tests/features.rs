//! Features in the views: explain (every check, `blocked_by` naming the group that switched
//! the feature off), group state (own settings and the effective value with its group) and
//! what-if (who would lose a feature).

use chrono::{DateTime, Duration, TimeZone, Utc};
use events::{Command, Feature, GroupId, NewUser, Restriction, TypeCode, UserId};
use projections::billing::Billing;
use projections::whatif::what_if;
use projections::{entitlement, group_state, Check, FeatureState};
use std::collections::BTreeMap;
use support::Session;
use uuid::Uuid;

mod support;

const HQ: GroupId = GroupId(Uuid::from_u128(0x3000_0001));
const SALES: GroupId = GroupId(Uuid::from_u128(0x3000_0002));
const EAST: GroupId = GroupId(Uuid::from_u128(0x3000_0003));
const PARTNERS: GroupId = GroupId(Uuid::from_u128(0x3000_0004));
const ALICE: UserId = UserId(Uuid::from_u128(0x2000_0001));
const BOB: UserId = UserId(Uuid::from_u128(0x2000_0002));

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap()
}

fn ukey2() -> TypeCode {
    TypeCode::from("ukey2")
}

/// The story's tenant.
type Fixture = Session;

impl Fixture {
    /// HQ → Sales → East and a root group Partners; Alice in East, Bob in Partners; UKEY2
    /// defined, off by default; HQ with an enabled restriction without limits.
    fn story() -> Fixture {
        let mut fixture = Session::new(0x7e7a_0444, now());
        fixture.run(Command::DefineFeature(Feature {
            code: ukey2(),
            name: "UKEY2".into(),
            enabled_by_default: false,
        }));
        for (group, name, parent) in [
            (HQ, "HQ", None),
            (SALES, "Sales", Some(HQ)),
            (EAST, "East", Some(SALES)),
            (PARTNERS, "Partners", None),
        ] {
            fixture.run(Command::CreateGroup {
                group,
                name: name.into(),
                parent,
                contact_email: None,
            });
        }
        for (user, group) in [(ALICE, EAST), (BOB, PARTNERS)] {
            fixture.run(Command::CreateUser(NewUser {
                user,
                name: format!("user in {group}"),
                group,
                extension: None,
                number: None,
            }));
        }
        fixture.switch(HQ, &[]);
        fixture
    }

    fn switch(&mut self, group: GroupId, features: &[(&str, bool)]) {
        self.run(switch_command(group, None, features));
    }

    fn check_of(&self, user: UserId) -> (bool, Vec<Check>) {
        let answer = entitlement(&self.tenant, user, &ukey2(), now()).expect("the user exists");
        (answer.allowed, answer.checks)
    }
}

fn switch_command(
    group: GroupId,
    valid_until: Option<DateTime<Utc>>,
    features: &[(&str, bool)],
) -> Command {
    Command::SetRestrictionAndFeatures {
        group,
        restriction: Restriction {
            enabled: true,
            limits: BTreeMap::new(),
            valid_from: None,
            valid_until,
            reminder: None,
        },
        features: features
            .iter()
            .map(|(code, on)| (TypeCode::from(*code), *on))
            .collect(),
    }
}

fn blocked_by(checks: &[Check]) -> Option<(&'static str, Option<GroupId>)> {
    checks
        .iter()
        .find(|c| !c.passed)
        .map(|c| (c.rule, c.group.as_ref().map(|(id, _)| *id)))
}

#[test]
fn explain_names_the_group_that_switched_the_feature_off() {
    let mut fixture = Fixture::story();
    fixture.switch(HQ, &[("ukey2", true)]);
    fixture.switch(SALES, &[("ukey2", false)]);
    let (allowed, checks) = fixture.check_of(ALICE);
    assert!(!allowed);
    assert_eq!(blocked_by(&checks), Some(("feature_disabled", Some(SALES))));
    let rules: Vec<&str> = checks.iter().map(|c| c.rule).collect();
    assert_eq!(
        rules,
        vec![
            "user_active",
            "group_window",
            "group_window",
            "feature_disabled",
            "group_window",
            "group_feature",
            "feature_enabled"
        ],
        "East has no restriction; Sales switches it off, HQ on: {checks:#?}"
    );
}

#[test]
fn explain_says_feature_not_enabled_when_nothing_switched_it_on() {
    let fixture = Fixture::story();
    let (allowed, checks) = fixture.check_of(ALICE);
    assert!(!allowed);
    assert_eq!(blocked_by(&checks), Some(("feature_not_enabled", None)));
}

#[test]
fn a_feature_switched_on_above_or_on_by_default_is_available() {
    let mut fixture = Fixture::story();
    fixture.switch(HQ, &[("ukey2", true)]);
    assert!(fixture.check_of(ALICE).0);
    assert!(!fixture.check_of(BOB).0, "Partners is not under HQ");
    fixture.run(Command::DefineFeature(Feature {
        code: ukey2(),
        name: "UKEY2".into(),
        enabled_by_default: true,
    }));
    assert!(fixture.check_of(BOB).0, "on by default");
}

#[test]
fn an_expired_window_on_the_path_blocks_a_feature_too() {
    let mut fixture = Fixture::story();
    fixture.run(switch_command(
        HQ,
        Some(now() - Duration::hours(1)),
        &[("ukey2", true)],
    ));
    let (allowed, checks) = fixture.check_of(ALICE);
    assert!(!allowed);
    assert_eq!(blocked_by(&checks), Some(("window_expired", Some(HQ))));
}

#[test]
fn group_state_shows_own_settings_and_the_effective_value_with_its_group() {
    let mut fixture = Fixture::story();
    fixture.switch(HQ, &[("ukey2", false)]);
    fixture.switch(SALES, &[]);
    let east = group_state(&fixture.tenant, EAST, now()).expect("East exists");
    assert_eq!(
        east.features[&ukey2()],
        FeatureState {
            own: None,
            enabled: false,
            decided_by: Some(HQ),
        }
    );
    let partners = group_state(&fixture.tenant, PARTNERS, now()).expect("Partners exists");
    assert_eq!(
        partners.features[&ukey2()],
        FeatureState {
            own: None,
            enabled: false,
            decided_by: None,
        },
        "the catalogue's default decides"
    );
    let hq = group_state(&fixture.tenant, HQ, now()).expect("HQ exists");
    assert_eq!(hq.features[&ukey2()].own, Some(false));
}

#[test]
fn what_if_switching_a_feature_off_shows_who_would_lose_it() {
    let mut fixture = Fixture::story();
    fixture.switch(HQ, &[("ukey2", true)]);
    fixture.run(Command::DefineFeature(Feature {
        code: ukey2(),
        name: "UKEY2".into(),
        enabled_by_default: true,
    }));
    let preview = what_if(
        &fixture.tenant,
        &Billing::default(),
        now(),
        &[switch_command(SALES, None, &[("ukey2", false)])],
    )
    .expect("a valid what-if");
    assert!(preview.ok, "{:?}", preview.results);
    let lost: Vec<(UserId, &str, &'static str, Option<GroupId>)> = preview
        .would_block
        .iter()
        .map(|b| {
            (
                b.user,
                b.license_type.as_str(),
                b.rule,
                b.group.as_ref().map(|(id, _)| *id),
            )
        })
        .collect();
    assert_eq!(
        lost,
        vec![(ALICE, "ukey2", "feature_disabled", Some(SALES))],
        "Bob in Partners keeps it by default"
    );
}
