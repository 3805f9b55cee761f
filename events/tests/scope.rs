//! Keys scoped to a group (a dealer's key), told as stories: given a distributor's tree, when a
//! dealer's key sends a command, then it is judged inside the dealer's subtree only.

mod support;

use events::{
    Command, Event, GroupId, ImportRow, KeyId, LicenseId, NewUser, Rejection, RejectionClass, Role,
    Rule, UserId,
};
use support::*;
use uuid::Uuid;

// ---- The tree every story shares. ----
//
// DISTRIBUTOR ─┬─ DEALER ── SITE        ANNA in SITE, BEN in DEALER
//              └─ OTHER_DEALER          CLARA in OTHER_DEALER
//
// DEALER is granted 2 phone_system; the dealer's key is scoped to DEALER.

const DISTRIBUTOR: GroupId = group(1);
const DEALER: GroupId = group(2);
const SITE: GroupId = group(3);
const OTHER_DEALER: GroupId = group(4);

const ANNA: UserId = user(1);
const BEN: UserId = user(2);
const CLARA: UserId = user(3);

const PHONE_FREE: LicenseId = license(1);
const PHONE_ANNA: LicenseId = license(2);
const PHONE_CLARA: LicenseId = license(3);
const RECORDING_FREE: LicenseId = license(4);

const TENANT_KEY: KeyId = KeyId(Uuid::from_u128(0x4000_0001));
const DEALER_KEY: KeyId = KeyId(Uuid::from_u128(0x4000_0002));

fn tree() -> Story {
    given(&[
        group_created(DISTRIBUTOR, "Distributor", None),
        group_created(DEALER, "Dealer", Some(DISTRIBUTOR)),
        group_created(SITE, "Site", Some(DEALER)),
        group_created(OTHER_DEALER, "Other dealer", Some(DISTRIBUTOR)),
        restriction_set(DEALER, limits(&[("phone_system", 2)])),
        user_created(ANNA, SITE, Some("101")),
        user_created(BEN, DEALER, Some("102")),
        user_created(CLARA, OTHER_DEALER, Some("201")),
        provisioned("phone_system", &[PHONE_FREE, PHONE_ANNA, PHONE_CLARA]),
        provisioned("call_recording", &[RECORDING_FREE]),
        assigned(PHONE_ANNA, "phone_system", ANNA),
        assigned(PHONE_CLARA, "phone_system", CLARA),
        Event::ApiKeyIssued {
            key: TENANT_KEY,
            name: "tenant admin".into(),
            role: Role::Admin,
            token_hash: [1; 32],
        },
        Event::ScopedApiKeyIssued {
            key: DEALER_KEY,
            name: "dealer".into(),
            role: Role::Admin,
            token_hash: [2; 32],
            group: DEALER,
        },
    ])
}

fn dealer(command: Command) -> Outcome {
    tree().when_scoped(DEALER, command)
}

#[track_caller]
fn assert_outside_scope(outcome: Outcome, mentions: &str) {
    match outcome.result {
        Err(rejection @ Rejection::OutsideScope(_)) => {
            assert_eq!(rejection.class(), RejectionClass::Forbidden);
            assert!(
                rejection.to_string().contains(mentions),
                "{rejection} should mention {mentions}"
            );
        }
        other => panic!(
            "expected outside_key_scope for {:?}, got {other:?}",
            outcome.command
        ),
    }
}

#[test]
fn a_scoped_key_is_issued_for_an_existing_group_and_keeps_it() {
    let state = tree()
        .when(Command::IssueKey {
            key: KeyId(Uuid::from_u128(0x4000_0003)),
            name: "site".into(),
            role: Role::Operator,
            token_hash: [3; 32],
            group: Some(SITE),
        })
        .then_accepted();
    assert_eq!(
        state.keys[&KeyId(Uuid::from_u128(0x4000_0003))].group,
        Some(SITE)
    );
    tree()
        .when(Command::IssueKey {
            key: KeyId(Uuid::from_u128(0x4000_0003)),
            name: "nowhere".into(),
            role: Role::Operator,
            token_hash: [3; 32],
            group: Some(group(99)),
        })
        .then_reject(Rejection::GroupNotFound(group(99)));
}

#[test]
fn a_dealer_creates_groups_and_users_inside_its_subtree_only() {
    dealer(Command::CreateGroup {
        group: group(10),
        name: "New site".into(),
        parent: Some(SITE),
        contact_email: None,
    })
    .then_events(&[group_created(group(10), "New site", Some(SITE))]);
    dealer(Command::CreateGroup {
        group: group(10),
        name: "Elsewhere".into(),
        parent: Some(OTHER_DEALER),
        contact_email: None,
    })
    .then_reject(Rejection::GroupNotFound(OTHER_DEALER));
    assert_outside_scope(
        dealer(Command::CreateGroup {
            group: group(10),
            name: "Root".into(),
            parent: None,
            contact_email: None,
        }),
        "root group",
    );
    dealer(Command::CreateUser(NewUser {
        user: user(10),
        name: "Dora".into(),
        group: OTHER_DEALER,
        extension: None,
        number: None,
    }))
    .then_reject(Rejection::GroupNotFound(OTHER_DEALER));
}

#[test]
fn a_dealer_cannot_change_the_group_it_was_granted() {
    assert_outside_scope(
        dealer(Command::SetRestriction {
            group: DEALER,
            restriction: limits(&[("phone_system", 50)]),
        }),
        "its issuer granted it",
    );
    assert_outside_scope(
        dealer(Command::ClearRestriction { group: DEALER }),
        "its issuer granted it",
    );
    assert_outside_scope(
        dealer(Command::UpdateGroup {
            group: DEALER,
            name: Some("Mine now".into()),
            parent: None,
            contact_email: None,
        }),
        "its issuer granted it",
    );
}

#[test]
fn a_dealer_cannot_raise_a_limit_below_it_above_its_grant() {
    dealer(Command::SetRestriction {
        group: SITE,
        restriction: limits(&[("phone_system", 3)]),
    })
    .then_rule(Rule::ChildLimitExceedsParent);
    dealer(Command::SetRestriction {
        group: SITE,
        restriction: limits(&[("phone_system", 2)]),
    })
    .then_accepted();
}

#[test]
fn a_dealer_cannot_move_anything_out_of_its_subtree() {
    dealer(Command::UpdateGroup {
        group: SITE,
        name: None,
        parent: Some(Some(OTHER_DEALER)),
        contact_email: None,
    })
    .then_reject(Rejection::GroupNotFound(OTHER_DEALER));
    assert_outside_scope(
        dealer(Command::UpdateGroup {
            group: SITE,
            name: None,
            parent: Some(None),
            contact_email: None,
        }),
        "root group",
    );
    dealer(Command::UpdateUser {
        user: ANNA,
        name: None,
        group: Some(OTHER_DEALER),
        extension: None,
        number: None,
    })
    .then_reject(Rejection::GroupNotFound(OTHER_DEALER));
    dealer(Command::ReassignLicense {
        license: PHONE_ANNA,
        user: CLARA,
        group: None,
    })
    .then_reject(Rejection::UserNotFound(CLARA));
    dealer(Command::ReassignLicense {
        license: PHONE_ANNA,
        user: BEN,
        group: None,
    })
    .then_accepted();
}

#[test]
fn what_lies_outside_a_dealers_subtree_answers_as_if_it_did_not_exist() {
    dealer(Command::AssignByType {
        user: CLARA,
        license_type: "phone_system".into(),
        addons: vec![],
        group: None,
    })
    .then_reject(Rejection::UserNotFound(CLARA));
    dealer(Command::UnassignLicense {
        license: PHONE_CLARA,
    })
    .then_reject(Rejection::LicenseNotFound(PHONE_CLARA));
    dealer(Command::DeleteUser { user: CLARA }).then_reject(Rejection::UserNotFound(CLARA));
    dealer(Command::SetRestriction {
        group: OTHER_DEALER,
        restriction: limits(&[("phone_system", 1)]),
    })
    .then_reject(Rejection::GroupNotFound(OTHER_DEALER));
    dealer(Command::RevokeKey { key: TENANT_KEY }).then_reject(Rejection::KeyNotFound(TENANT_KEY));
}

#[test]
fn a_dealer_hands_out_free_licences_from_the_tenant_pool_within_its_grant() {
    dealer(Command::AssignLicense {
        license: PHONE_FREE,
        user: BEN,
        group: None,
    })
    .then_accepted();
    dealer(Command::AttachAddon {
        base: PHONE_ANNA,
        addon: RECORDING_FREE,
    })
    .then_accepted();
    // Anna and Ben would hold 3 of the 2 phone_system granted to DEALER.
    let mut state = tree().state;
    fold(
        &mut state,
        &[
            assigned(PHONE_FREE, "phone_system", BEN),
            user_created(user(6), SITE, None),
        ],
    );
    fold(&mut state, &[provisioned("phone_system", &[license(5)])]);
    given_state(state)
        .when_scoped(
            DEALER,
            Command::AssignByType {
                user: user(6),
                license_type: "phone_system".into(),
                addons: vec![],
                group: None,
            },
        )
        .then_rule(Rule::GroupLimitReached);
}

#[test]
fn tenant_wide_commands_are_outside_a_dealers_scope() {
    let cases = [
        (
            Command::ProvisionLicenses {
                license_type: "phone_system".into(),
                quantity: 1,
            },
            "provision",
        ),
        (
            Command::TerminateLicense {
                license: PHONE_FREE,
            },
            "terminate",
        ),
        (
            Command::SetPrice {
                license_type: "phone_system".into(),
                unit_price_minor: 1,
                currency: "EUR".into(),
                effective_from: at(2024, 1, 1),
            },
            "prices",
        ),
        (
            Command::SetWebhook {
                url: "https://example.com".into(),
                secret: "whsec_test".into(),
            },
            "webhook",
        ),
        (
            Command::SetNotificationTemplate(events::NotificationTemplate::default()),
            "notification template",
        ),
    ];
    for (command, mentions) in cases {
        assert_outside_scope(dealer(command), mentions);
    }
}

#[test]
fn a_dealer_issues_keys_only_for_groups_of_its_subtree() {
    let key = KeyId(Uuid::from_u128(0x4000_0009));
    let issue = |group: Option<GroupId>| Command::IssueKey {
        key,
        name: "site operator".into(),
        role: Role::Operator,
        token_hash: [9; 32],
        group,
    };
    dealer(issue(Some(SITE))).then_events(&[Event::ScopedApiKeyIssued {
        key,
        name: "site operator".into(),
        role: Role::Operator,
        token_hash: [9; 32],
        group: SITE,
    }]);
    dealer(issue(Some(OTHER_DEALER))).then_reject(Rejection::GroupNotFound(OTHER_DEALER));
    assert_outside_scope(dealer(issue(None)), "whole tenant");
    dealer(Command::RevokeKey { key: DEALER_KEY }).then_accepted();
}

#[test]
fn an_import_by_a_dealer_finds_only_users_of_its_subtree() {
    let row = |n: u32, user: &str, extension: &str| ImportRow {
        row: n,
        extension: extension.into(),
        number: String::new(),
        user: user.into(),
        addons: vec![],
    };
    let clara_by_name = format!("user {CLARA}");
    let rejection = dealer(Command::Import(vec![row(1, &clara_by_name, "301")]))
        .result
        .expect_err("refused");
    let Rejection::ImportRejected(errors) = rejection else {
        panic!("expected an import rejection, got {rejection:?}");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, "user_not_found");
    let by_id = CLARA.to_string();
    let rejection = dealer(Command::Import(vec![row(1, &by_id, "301")]))
        .result
        .expect_err("refused");
    assert!(matches!(rejection, Rejection::ImportRejected(ref e) if e[0].code == "user_not_found"));
    let ben_by_name = format!("user {BEN}");
    dealer(Command::Import(vec![row(1, &ben_by_name, "302")])).then_accepted();
}
