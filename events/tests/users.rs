//! Per-user licence settings (issue 16 item 2): a user's personal limits and validity window,
//! inside their group's, checked like a group's and kept as events.

mod support;

use events::{Command, Event, Rejection, Rule, UserRestriction};
use support::*;

const HQ: events::GroupId = group(1);
const SALES: events::GroupId = group(2);
const OTHER: events::GroupId = group(3);
const ALICE: events::UserId = user(1);

fn personal(pairs: &[(&str, u64)]) -> UserRestriction {
    UserRestriction {
        limits: pairs.iter().map(|(t, n)| ((*t).into(), *n)).collect(),
        valid_from: None,
        valid_until: None,
    }
}

fn personal_window(
    from: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> UserRestriction {
    UserRestriction {
        valid_from: Some(from),
        valid_until: Some(until),
        ..personal(&[])
    }
}

fn set_personal(restriction: UserRestriction) -> Command {
    Command::SetUserRestriction {
        user: ALICE,
        restriction,
    }
}

fn personal_set(restriction: UserRestriction) -> Event {
    Event::UserRestrictionSet {
        user: ALICE,
        restriction,
    }
}

/// HQ (phone_system limit 5, window 2024) → Sales; Other beside HQ; Alice in Sales; three
/// phone_system and two call_recording licences.
fn tree() -> Vec<Event> {
    vec![
        group_created(HQ, "HQ", None),
        group_created(SALES, "Sales", Some(HQ)),
        group_created(OTHER, "Other", None),
        restriction_set(
            HQ,
            events::Restriction {
                valid_from: Some(at(2024, 1, 1)),
                valid_until: Some(at(2025, 1, 1)),
                ..limits(&[("phone_system", 5)])
            },
        ),
        user_created(ALICE, SALES, None),
        provisioned("phone_system", &[license(1), license(2), license(3)]),
        provisioned("call_recording", &[license(11), license(12)]),
    ]
}

fn with(extra: &[Event]) -> Vec<Event> {
    let mut facts = tree();
    facts.extend_from_slice(extra);
    facts
}

#[test]
fn a_personal_limit_inside_the_groups_is_kept_as_an_event() {
    let restriction = UserRestriction {
        valid_from: Some(at(2024, 2, 1)),
        valid_until: Some(at(2024, 12, 1)),
        ..personal(&[("phone_system", 1), ("call_recording", 0)])
    };
    let state = given(&tree())
        .when(set_personal(restriction.clone()))
        .then_events(&[personal_set(restriction.clone())]);
    assert_eq!(
        state.users.get(&ALICE).unwrap().restriction,
        Some(restriction)
    );
}

#[test]
fn an_assignment_beyond_the_personal_limit_is_refused_naming_the_user() {
    let v = given(&with(&[personal_set(personal(&[("phone_system", 0)]))]))
        .when(Command::AssignLicense {
            license: license(1),
            user: ALICE,
            group: None,
        })
        .then_rule(Rule::UserLimitReached);
    assert_eq!(v.user, Some(ALICE));
    assert_eq!((v.limit, v.used), (Some(0), Some(0)));
    assert_eq!(v.license_type, Some("phone_system".into()));
}

#[test]
fn an_addon_beyond_the_personal_limit_is_refused_and_the_base_alone_is_taken() {
    let facts = with(&[personal_set(personal(&[("call_recording", 0)]))]);
    let v = given(&facts)
        .when(Command::AssignByType {
            user: ALICE,
            license_type: "phone_system".into(),
            addons: vec!["call_recording".into()],
            group: None,
        })
        .then_rule(Rule::UserLimitReached);
    assert_eq!(v.license_type, Some("call_recording".into()));
    given(&facts)
        .when(Command::AssignByType {
            user: ALICE,
            license_type: "phone_system".into(),
            addons: vec![],
            group: None,
        })
        .then_accepted();
}

#[test]
fn a_reassignment_to_a_user_at_their_personal_limit_is_refused() {
    let bob = user(2);
    let v = given(&with(&[
        user_created(bob, SALES, None),
        assigned(license(1), "phone_system", bob),
        personal_set(personal(&[("phone_system", 0)])),
    ]))
    .when(Command::ReassignLicense {
        license: license(1),
        user: ALICE,
        group: None,
    })
    .then_rule(Rule::UserLimitReached);
    assert_eq!(v.user, Some(ALICE));
}

#[test]
fn a_personal_limit_above_the_group_paths_limit_is_refused() {
    let v = given(&tree())
        .when(set_personal(personal(&[("phone_system", 6)])))
        .then_rule(Rule::UserLimitExceedsGroup);
    assert_eq!(v.group, Some(HQ));
    assert_eq!(v.user, Some(ALICE));
    assert_eq!((v.limit, v.used), (Some(5), Some(6)));
}

#[test]
fn a_personal_limit_below_what_the_user_holds_is_refused() {
    let v = given(&with(&[assigned(license(1), "phone_system", ALICE)]))
        .when(set_personal(personal(&[("phone_system", 0)])))
        .then_rule(Rule::UserLimitBelowUsage);
    assert_eq!((v.limit, v.used), (Some(0), Some(1)));
}

#[test]
fn a_personal_window_outside_the_groups_window_is_refused() {
    let v = given(&tree())
        .when(set_personal(personal_window(
            at(2023, 12, 1),
            at(2024, 6, 1),
        )))
        .then_rule(Rule::UserWindowOutsideGroup);
    assert_eq!((v.group, v.user), (Some(SALES), Some(ALICE)));
    given(&tree())
        .when(set_personal(personal_window(
            at(2024, 3, 1),
            at(2025, 2, 1),
        )))
        .then_rule(Rule::UserWindowOutsideGroup);
}

#[test]
fn a_reversed_personal_window_and_every_other_broken_rule_are_listed_together() {
    let restriction = UserRestriction {
        valid_from: Some(at(2024, 6, 1)),
        valid_until: Some(at(2024, 3, 1)),
        ..personal(&[("phone_system", 9)])
    };
    given(&tree())
        .when(set_personal(restriction))
        .then_rules(&[Rule::WindowReversed, Rule::UserLimitExceedsGroup]);
}

#[test]
fn an_unknown_type_in_a_personal_limit_is_bad_input() {
    given(&tree())
        .when(set_personal(personal(&[("teleporter", 1)])))
        .then_reject(Rejection::UnknownLicenseType("teleporter".into()));
}

#[test]
fn personal_settings_of_a_removed_or_unknown_user_are_refused() {
    given(&with(&[user_removed(ALICE)]))
        .when(set_personal(personal(&[])))
        .then_reject(Rejection::UserNotFound(ALICE));
    given(&tree())
        .when(Command::ClearUserRestriction { user: user(9) })
        .then_reject(Rejection::UserNotFound(user(9)));
}

#[test]
fn clearing_personal_settings_is_an_event_and_clearing_none_changes_nothing() {
    let state = given(&with(&[personal_set(personal(&[("phone_system", 0)]))]))
        .when(Command::ClearUserRestriction { user: ALICE })
        .then_events(&[Event::UserRestrictionCleared { user: ALICE }]);
    assert_eq!(state.users.get(&ALICE).unwrap().restriction, None);
    given_state(state)
        .when(Command::ClearUserRestriction { user: ALICE })
        .then_events(&[]);
}

#[test]
fn lowering_a_groups_limit_below_a_users_personal_limit_is_refused() {
    let facts = with(&[personal_set(personal(&[("phone_system", 1)]))]);
    let v = given(&facts)
        .when(Command::SetRestriction {
            group: SALES,
            restriction: limits(&[("phone_system", 0)]),
        })
        .then_rule(Rule::UserLimitExceedsGroup);
    assert_eq!((v.group, v.user), (Some(SALES), Some(ALICE)));
}

#[test]
fn narrowing_a_groups_window_around_a_users_personal_window_is_refused() {
    let facts = with(&[personal_set(personal_window(
        at(2024, 2, 1),
        at(2024, 12, 1),
    ))]);
    given(&facts)
        .when(Command::SetRestriction {
            group: HQ,
            restriction: window(at(2024, 1, 1), at(2024, 6, 1)),
        })
        .then_rule(Rule::UserWindowOutsideGroup);
    given(&facts)
        .when(Command::SetRestriction {
            group: HQ,
            restriction: window(at(2024, 1, 1), at(2024, 12, 1)),
        })
        .then_accepted();
}

#[test]
fn moving_a_user_out_of_the_groups_their_personal_settings_fit_is_refused() {
    let facts = with(&[
        restriction_set(OTHER, limits(&[("phone_system", 0)])),
        personal_set(personal(&[("phone_system", 1)])),
    ]);
    let v = given(&facts)
        .when(Command::UpdateUser {
            user: ALICE,
            name: None,
            group: Some(OTHER),
            extension: None,
            number: None,
        })
        .then_rule(Rule::UserLimitExceedsGroup);
    assert_eq!(v.group, Some(OTHER));
}

#[test]
fn moving_a_group_under_one_whose_limits_a_users_personal_limit_exceeds_is_refused() {
    let facts = with(&[
        restriction_set(OTHER, limits(&[("phone_system", 0)])),
        restriction_set(SALES, limits(&[])),
        personal_set(personal(&[("phone_system", 1)])),
    ]);
    given(&facts)
        .when(Command::UpdateGroup {
            group: SALES,
            name: None,
            parent: Some(Some(OTHER)),
            contact_email: None,
        })
        .then_rules(&[Rule::UserLimitExceedsGroup]);
}

#[test]
fn a_dealer_cannot_set_personal_settings_of_a_user_outside_its_subtree() {
    given(&tree())
        .when_scoped(OTHER, set_personal(personal(&[])))
        .then_reject(Rejection::UserNotFound(ALICE));
    given(&tree())
        .when_scoped(HQ, set_personal(personal(&[("phone_system", 1)])))
        .then_accepted();
}
