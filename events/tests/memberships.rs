//! Users in several groups (issue 16 item 3): a user belongs to their own group and may join
//! others; each assignment counts against the group it names (one of the user's) or, by
//! default, the user's own; leaving a group, moving the user and moving groups keep every
//! limit.

mod support;

use events::{Command, Event, GroupId, LicenseId, Rejection, Rule, UserId};
use support::*;

const HQ: GroupId = group(1);
const SALES: GroupId = group(2);
const SUPPORT: GroupId = group(3);
const PARTNERS: GroupId = group(4);
const ALICE: UserId = user(1);
const BOB: UserId = user(2);
const PHONE_1: LicenseId = license(1);
const PHONE_2: LicenseId = license(2);
const PHONE_3: LicenseId = license(3);
const RECORDING: LicenseId = license(11);

/// HQ → Sales (phone_system limit 2), HQ → Support (phone_system limit 1); Partners, a root
/// group; Alice in Sales and also in Support; Bob in Partners; three phone_system licences
/// and one call_recording.
fn tree() -> Vec<Event> {
    vec![
        group_created(HQ, "HQ", None),
        group_created(SALES, "Sales", Some(HQ)),
        group_created(SUPPORT, "Support", Some(HQ)),
        group_created(PARTNERS, "Partners", None),
        restriction_set(SALES, limits(&[("phone_system", 2)])),
        restriction_set(SUPPORT, limits(&[("phone_system", 1)])),
        user_created(ALICE, SALES, None),
        user_created(BOB, PARTNERS, None),
        Event::UserGroupAdded {
            user: ALICE,
            group: SUPPORT,
        },
        provisioned("phone_system", &[PHONE_1, PHONE_2, PHONE_3]),
        provisioned("call_recording", &[RECORDING]),
    ]
}

fn with(extra: &[Event]) -> Vec<Event> {
    let mut facts = tree();
    facts.extend_from_slice(extra);
    facts
}

fn assign_in(license: LicenseId, user: UserId, group: Option<GroupId>) -> Command {
    Command::AssignLicense {
        license,
        user,
        group,
    }
}

fn move_alice(to: GroupId) -> Command {
    Command::UpdateUser {
        user: ALICE,
        name: None,
        group: Some(to),
        extension: None,
        number: None,
    }
}

fn counted_in(license: LicenseId, user: UserId, group: GroupId) -> Event {
    Event::LicenseCountedIn {
        license,
        user,
        group,
    }
}

/// Alice holds PHONE_1 counted against Support.
fn alice_holds_one_in_support() -> Vec<Event> {
    with(&[
        counted_in(PHONE_1, ALICE, SUPPORT),
        assigned(PHONE_1, "phone_system", ALICE),
    ])
}

#[test]
fn joining_a_group_is_kept_as_an_event() {
    let state = given(&tree())
        .when(Command::AddUserToGroup {
            user: ALICE,
            group: PARTNERS,
        })
        .then_events(&[Event::UserGroupAdded {
            user: ALICE,
            group: PARTNERS,
        }]);
    let alice = &state.users[&ALICE];
    assert_eq!(
        alice.group, SALES,
        "joining a group leaves the own group as it is"
    );
    assert!(alice.other_groups.contains(&SUPPORT) && alice.other_groups.contains(&PARTNERS));
}

#[test]
fn joining_a_group_the_user_belongs_to_already_is_refused() {
    for group in [SALES, SUPPORT] {
        given(&tree())
            .when(Command::AddUserToGroup { user: ALICE, group })
            .then_reject(Rejection::AlreadyInGroup { user: ALICE, group });
    }
    given(&tree())
        .when(Command::AddUserToGroup {
            user: ALICE,
            group: group(99),
        })
        .then_reject(Rejection::GroupNotFound(group(99)));
}

#[test]
fn an_assignment_without_a_group_counts_against_the_users_own_group() {
    let state = given(&tree())
        .when(assign_in(PHONE_1, ALICE, None))
        .then_events(&[assigned(PHONE_1, "phone_system", ALICE)]);
    assert_eq!(used(&state, SALES), counts(&[("phone_system", 1)]));
    assert_eq!(used(&state, SUPPORT), counts(&[]));
    assert_invariants(&state);
}

#[test]
fn an_assignment_counts_against_the_group_it_names() {
    let state = given(&tree())
        .when(assign_in(PHONE_1, ALICE, Some(SUPPORT)))
        .then_events(&[
            counted_in(PHONE_1, ALICE, SUPPORT),
            assigned(PHONE_1, "phone_system", ALICE),
        ]);
    assert_eq!(used(&state, SUPPORT), counts(&[("phone_system", 1)]));
    assert_eq!(used(&state, SALES), counts(&[]));
    assert_eq!(used(&state, HQ), counts(&[("phone_system", 1)]));
    assert_eq!(
        state.counting_group(&state.licenses[&PHONE_1]),
        Some(SUPPORT)
    );
    assert_invariants(&state);
}

#[test]
fn naming_the_own_group_is_the_same_as_naming_none() {
    given(&tree())
        .when(assign_in(PHONE_1, ALICE, Some(SALES)))
        .then_events(&[assigned(PHONE_1, "phone_system", ALICE)]);
}

#[test]
fn an_assignment_counted_against_a_group_the_user_is_not_in_is_refused() {
    let violation = given(&tree())
        .when(assign_in(PHONE_1, ALICE, Some(PARTNERS)))
        .then_rule(Rule::UserNotInGroup);
    assert_eq!(violation.group, Some(PARTNERS));
    assert_eq!(violation.user, Some(ALICE));
    given(&tree())
        .when(Command::AssignByType {
            user: BOB,
            license_type: "phone_system".into(),
            addons: vec![],
            group: Some(SALES),
        })
        .then_rule(Rule::UserNotInGroup);
}

#[test]
fn the_named_groups_limit_refuses_though_the_own_group_has_room() {
    // Support (limit 1) is full with Alice's licence; Bob joins Sales and Support.
    let mut facts = alice_holds_one_in_support();
    facts.push(Event::UserGroupAdded {
        user: BOB,
        group: SUPPORT,
    });
    let violation = given(&facts)
        .when(assign_in(PHONE_2, BOB, Some(SUPPORT)))
        .then_rule(Rule::GroupLimitReached);
    assert_eq!(violation.group, Some(SUPPORT));
    assert_eq!((violation.limit, violation.used), (Some(1), Some(1)));
    // Counted against his own group (Partners, unlimited) the same licence is fine.
    given(&facts)
        .when(assign_in(PHONE_2, BOB, None))
        .then_accepted();
}

#[test]
fn a_full_other_group_refuses_an_assignment_counted_there() {
    let mut facts = alice_holds_one_in_support();
    facts.extend([
        Event::UserGroupAdded {
            user: BOB,
            group: SUPPORT,
        },
        Event::UserGroupAdded {
            user: BOB,
            group: SALES,
        },
    ]);
    let violation = given(&facts)
        .when(assign_in(PHONE_2, BOB, Some(SUPPORT)))
        .then_rule(Rule::GroupLimitReached);
    assert_eq!(violation.group, Some(SUPPORT));
    let state = given(&facts)
        .when(assign_in(PHONE_2, BOB, Some(SALES)))
        .then_accepted();
    assert_eq!(used(&state, SALES), counts(&[("phone_system", 1)]));
    assert_eq!(used(&state, PARTNERS), counts(&[]));
    assert_invariants(&state);
}

#[test]
fn addons_count_where_their_base_counts() {
    let state = given(&alice_holds_one_in_support())
        .when(Command::AttachAddon {
            base: PHONE_1,
            addon: RECORDING,
        })
        .then_accepted();
    assert_eq!(
        used(&state, SUPPORT),
        counts(&[("call_recording", 1), ("phone_system", 1)])
    );
    assert_eq!(used(&state, SALES), counts(&[]));
    assert_invariants(&state);
}

#[test]
fn unassigning_frees_the_quota_of_the_group_it_counted_against() {
    let state = given(&alice_holds_one_in_support())
        .when(Command::UnassignLicense { license: PHONE_1 })
        .then_accepted();
    assert_eq!(used(&state, SUPPORT), counts(&[]));
    assert_eq!(used(&state, HQ), counts(&[]));
    assert_eq!(state.licenses[&PHONE_1].counted_in, None);
    assert_invariants(&state);
}

#[test]
fn reassigning_counts_the_licence_against_the_group_named_for_the_new_holder() {
    let mut facts = alice_holds_one_in_support();
    facts.push(Event::UserGroupAdded {
        user: BOB,
        group: SALES,
    });
    let state = given(&facts)
        .when(Command::ReassignLicense {
            license: PHONE_1,
            user: BOB,
            group: Some(SALES),
        })
        .then_events(&[
            counted_in(PHONE_1, BOB, SALES),
            reassigned(PHONE_1, "phone_system", ALICE, BOB),
        ]);
    assert_eq!(used(&state, SUPPORT), counts(&[]));
    assert_eq!(used(&state, SALES), counts(&[("phone_system", 1)]));
    assert_eq!(used(&state, PARTNERS), counts(&[]));
    assert_invariants(&state);
    // Without a group it counts against the new holder's own group.
    let state = given(&alice_holds_one_in_support())
        .when(Command::ReassignLicense {
            license: PHONE_1,
            user: BOB,
            group: None,
        })
        .then_accepted();
    assert_eq!(used(&state, PARTNERS), counts(&[("phone_system", 1)]));
    assert_eq!(used(&state, SUPPORT), counts(&[]));
    assert_invariants(&state);
}

#[test]
fn leaving_a_group_moves_its_licences_to_the_own_group() {
    let state = given(&alice_holds_one_in_support())
        .when(Command::RemoveUserFromGroup {
            user: ALICE,
            group: SUPPORT,
        })
        .then_events(&[Event::UserGroupRemoved {
            user: ALICE,
            group: SUPPORT,
        }]);
    assert_eq!(used(&state, SUPPORT), counts(&[]));
    assert_eq!(used(&state, SALES), counts(&[("phone_system", 1)]));
    assert!(state.users[&ALICE].other_groups.is_empty());
    assert_eq!(state.licenses[&PHONE_1].counted_in, None);
    assert_invariants(&state);
}

#[test]
fn leaving_a_group_is_refused_when_the_own_group_has_no_room_for_its_licences() {
    const CAROL: UserId = user(3);
    const DAVE: UserId = user(4);
    let mut facts = alice_holds_one_in_support();
    facts.extend([
        user_created(CAROL, SALES, None),
        user_created(DAVE, SALES, None),
        assigned(PHONE_2, "phone_system", CAROL),
        assigned(PHONE_3, "phone_system", DAVE),
    ]);
    // Sales is full (2 of 2) with Carol's and Dave's: Alice's Support licence has nowhere
    // to go.
    let violation = given(&facts)
        .when(Command::RemoveUserFromGroup {
            user: ALICE,
            group: SUPPORT,
        })
        .then_rule(Rule::GroupLimitReached);
    assert_eq!(violation.group, Some(SALES));
    assert_eq!((violation.limit, violation.used), (Some(2), Some(2)));
}

#[test]
fn the_own_group_cannot_be_left_and_only_a_membership_can_be_removed() {
    given(&tree())
        .when(Command::RemoveUserFromGroup {
            user: ALICE,
            group: SALES,
        })
        .then_reject(Rejection::OwnGroup {
            user: ALICE,
            group: SALES,
        });
    given(&tree())
        .when(Command::RemoveUserFromGroup {
            user: ALICE,
            group: PARTNERS,
        })
        .then_reject(Rejection::NotAMember {
            user: ALICE,
            group: PARTNERS,
        });
}

#[test]
fn moving_the_user_leaves_licences_counted_in_other_groups_where_they_are() {
    let state = given(&alice_holds_one_in_support())
        .when(move_alice(PARTNERS))
        .then_accepted();
    assert_eq!(used(&state, SUPPORT), counts(&[("phone_system", 1)]));
    assert_eq!(used(&state, PARTNERS), counts(&[]));
    assert_invariants(&state);
}

#[test]
fn moving_the_user_checks_only_what_counts_against_the_own_group() {
    // Alice holds one counted in Support, none in Sales; Partners allows 0 phone_system.
    let mut facts = alice_holds_one_in_support();
    facts.push(restriction_set(PARTNERS, limits(&[("phone_system", 0)])));
    let state = given(&facts).when(move_alice(PARTNERS)).then_accepted();
    assert_invariants(&state);
    // With a licence counted in her own group, the move is refused at Partners' limit.
    let mut facts = with(&[assigned(PHONE_1, "phone_system", ALICE)]);
    facts.push(restriction_set(PARTNERS, limits(&[("phone_system", 0)])));
    let violation = given(&facts)
        .when(move_alice(PARTNERS))
        .then_rule(Rule::GroupLimitReached);
    assert_eq!(violation.group, Some(PARTNERS));
}

#[test]
fn moving_into_one_of_the_other_groups_makes_it_the_own_group() {
    let facts = alice_holds_one_in_support();
    let state = given(&facts).when(move_alice(SUPPORT)).then_accepted();
    let alice = &state.users[&ALICE];
    assert_eq!(alice.group, SUPPORT);
    assert!(alice.other_groups.is_empty());
    assert_eq!(state.licenses[&PHONE_1].counted_in, None);
    assert_eq!(used(&state, SUPPORT), counts(&[("phone_system", 1)]));
    assert_invariants(&state);
}

#[test]
fn moving_a_group_carries_the_licences_counted_in_it_and_keeps_the_new_parents_limit() {
    // Partners allows 0 phone_system: Support, holding Alice's licence, cannot move under it.
    let mut facts = alice_holds_one_in_support();
    facts.push(restriction_set(PARTNERS, limits(&[("phone_system", 0)])));
    let found = given(&facts)
        .when(Command::UpdateGroup {
            group: SUPPORT,
            name: None,
            parent: Some(Some(PARTNERS)),
            contact_email: None,
        })
        .then_rules(&[Rule::GroupLimitReached, Rule::ChildLimitExceedsParent]);
    assert_eq!(found[0].group, Some(PARTNERS));
    assert_eq!((found[0].limit, found[0].used), (Some(0), Some(0)));
    let state = given(&alice_holds_one_in_support())
        .when(Command::UpdateGroup {
            group: SUPPORT,
            name: None,
            parent: Some(Some(PARTNERS)),
            contact_email: None,
        })
        .then_accepted();
    assert_eq!(used(&state, PARTNERS), counts(&[("phone_system", 1)]));
    assert_eq!(used(&state, HQ), counts(&[]));
    assert_invariants(&state);
}

#[test]
fn a_dealer_adds_users_only_to_groups_of_its_subtree() {
    given(&tree())
        .when_scoped(
            HQ,
            Command::AddUserToGroup {
                user: ALICE,
                group: PARTNERS,
            },
        )
        .then_reject(Rejection::GroupNotFound(PARTNERS));
    given(&tree())
        .when_scoped(
            HQ,
            Command::AssignLicense {
                license: PHONE_1,
                user: ALICE,
                group: Some(PARTNERS),
            },
        )
        .then_reject(Rejection::GroupNotFound(PARTNERS));
    given(&tree())
        .when_scoped(
            SALES,
            Command::AssignLicense {
                license: PHONE_1,
                user: ALICE,
                group: Some(SALES),
            },
        )
        .then_accepted();
}
