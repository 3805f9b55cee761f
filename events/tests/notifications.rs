//! The rules of notifications, told as stories: whom a group's reminders go to (its
//! administrator's contact, inherited), what they say (the tenant's template), how the webhook
//! signs them, and when a restriction change owes an `unblocked` notification.

mod support;

use events::notification::{TemplateProblem, TEMPLATE_BODY_BYTES_MAX};
use events::{Command, Event, GroupId, NotificationTemplate, Rejection, RejectionClass, Tenant};
use support::*;

// HQ ── SALES ── PRAGUE
const HQ: GroupId = group(1);
const SALES: GroupId = group(2);
const PRAGUE: GroupId = group(3);

fn organisation() -> Vec<Event> {
    vec![
        group_created(HQ, "HQ", None),
        group_created(SALES, "Sales", Some(HQ)),
        group_created(PRAGUE, "Prague", Some(SALES)),
    ]
}

fn contact_set(group: GroupId, email: Option<&str>) -> Event {
    Event::GroupContactSet {
        group,
        contact_email: email.map(str::to_string),
    }
}

fn set_contact(group: GroupId, email: Option<&str>) -> Command {
    Command::UpdateGroup {
        group,
        name: None,
        parent: None,
        contact_email: Some(email.map(str::to_string)),
    }
}

fn contact_of(state: &Tenant, group: GroupId) -> Option<(GroupId, String)> {
    state
        .effective_contact(group)
        .map(|(from, email)| (from, email.to_string()))
}

// ---- Contacts ----

#[test]
fn a_group_created_with_a_contact_records_it_after_the_group() {
    given(&[])
        .when(Command::CreateGroup {
            group: HQ,
            name: "HQ".into(),
            parent: None,
            contact_email: Some("it@acme.example.com".into()),
        })
        .then_events(&[
            group_created(HQ, "HQ", None),
            contact_set(HQ, Some("it@acme.example.com")),
        ]);
}

#[test]
fn a_group_without_a_contact_inherits_its_nearest_ancestors() {
    let mut facts = organisation();
    facts.push(contact_set(HQ, Some("it@acme.example.com")));
    let state = given(&facts).state;
    assert_eq!(
        contact_of(&state, PRAGUE),
        Some((HQ, "it@acme.example.com".into()))
    );
    let state = given_state(state)
        .when(set_contact(SALES, Some("sales-admin@acme.example.com")))
        .then_events(&[contact_set(SALES, Some("sales-admin@acme.example.com"))]);
    assert_eq!(
        contact_of(&state, PRAGUE),
        Some((SALES, "sales-admin@acme.example.com".into()))
    );
    assert_eq!(
        contact_of(&state, HQ),
        Some((HQ, "it@acme.example.com".into()))
    );
}

#[test]
fn clearing_a_groups_contact_makes_it_inherit_again() {
    let mut facts = organisation();
    facts.push(contact_set(HQ, Some("it@acme.example.com")));
    facts.push(contact_set(SALES, Some("sales@acme.example.com")));
    let state = given(&facts)
        .when(set_contact(SALES, None))
        .then_events(&[contact_set(SALES, None)]);
    assert_eq!(state.groups[&SALES].contact_email, None);
    assert_eq!(
        contact_of(&state, SALES),
        Some((HQ, "it@acme.example.com".into()))
    );
}

#[test]
fn a_group_without_a_contact_anywhere_on_its_path_has_none() {
    let state = given(&organisation()).state;
    assert_eq!(contact_of(&state, PRAGUE), None);
}

#[test]
fn setting_the_contact_a_group_already_has_records_nothing() {
    let mut facts = organisation();
    facts.push(contact_set(SALES, Some("sales@acme.example.com")));
    given(&facts)
        .when(set_contact(SALES, Some("sales@acme.example.com")))
        .then_events(&[]);
}

#[test]
fn a_contact_that_is_not_an_email_address_is_refused_and_changes_nothing() {
    for bad in [
        "not an address",
        "admin@localhost",
        "Admin <admin@acme.example.com>",
        "",
    ] {
        let rejection = given(&organisation())
            .when(set_contact(SALES, Some(bad)))
            .then_reject(Rejection::InvalidEmail(bad.into()));
        assert_eq!(rejection.class(), RejectionClass::BadInput);
        assert_eq!(rejection.reason(), "invalid_email");
    }
    // A create with a bad contact creates no group either.
    given(&[])
        .when(Command::CreateGroup {
            group: HQ,
            name: "HQ".into(),
            parent: None,
            contact_email: Some("nope".into()),
        })
        .then_reject(Rejection::InvalidEmail("nope".into()));
}

#[test]
fn a_long_bad_contact_is_quoted_shortened() {
    let long = "x".repeat(5000);
    let rejection = given(&organisation())
        .when(set_contact(SALES, Some(&long)))
        .rejection_of_kind();
    let Rejection::InvalidEmail(quoted) = rejection else {
        panic!("expected InvalidEmail, got {rejection:?}");
    };
    assert!(quoted.chars().count() <= 81, "{quoted}");
}

trait RejectionOfKind {
    fn rejection_of_kind(self) -> Rejection;
}

impl RejectionOfKind for Outcome {
    fn rejection_of_kind(self) -> Rejection {
        match self.result {
            Err(rejection) => rejection,
            Ok(events) => panic!("expected a rejection, got {events:?}"),
        }
    }
}

// ---- Templates ----

fn template(subject: &str, body: &str) -> NotificationTemplate {
    NotificationTemplate {
        subject: subject.into(),
        body: body.into(),
    }
}

#[test]
fn a_template_naming_only_known_variables_is_stored_and_replaces_the_default() {
    let set = template(
        "{{ group_name }}: {{ days_left }} days",
        "Ends {{ expiry_date }} ({{ valid_until }}), {{ tenant_name }} / {{ group_id }}",
    );
    let state = given(&[])
        .when(Command::SetNotificationTemplate(set.clone()))
        .then_events(&[Event::NotificationTemplateSet {
            template: set.clone(),
        }]);
    assert_eq!(state.notification_template, Some(set));
}

#[test]
fn a_template_naming_an_unknown_variable_is_refused_naming_it() {
    let rejection = given(&[])
        .when(Command::SetNotificationTemplate(template(
            "{{ group_name }}",
            "Dear {{ customer }}, {{ days_left }} {{ amount }}",
        )))
        .then_reject(Rejection::InvalidTemplate(
            TemplateProblem::UnknownVariables {
                field: "body",
                names: vec!["amount".into(), "customer".into()],
            },
        ));
    assert_eq!(rejection.class(), RejectionClass::BadInput);
    assert_eq!(rejection.reason(), "unknown_template_variable");
    assert!(rejection.to_string().contains("days_left"), "{rejection}");
}

#[test]
fn a_template_that_does_not_parse_or_is_too_long_is_refused() {
    let rejection = given(&[])
        .when(Command::SetNotificationTemplate(template(
            "{% if group_name %}unclosed",
            "fine",
        )))
        .rejection_of_kind();
    assert_eq!(rejection.reason(), "template_syntax", "{rejection:?}");
    let long = "x".repeat(TEMPLATE_BODY_BYTES_MAX + 1);
    given(&[])
        .when(Command::SetNotificationTemplate(template("s", &long)))
        .then_reject(Rejection::InvalidTemplate(TemplateProblem::TooLong {
            field: "body",
            max: TEMPLATE_BODY_BYTES_MAX,
        }));
}

// ---- Webhook ----

#[test]
fn setting_the_webhook_records_its_url_and_a_new_signing_secret() {
    let set = |secret: &str| Command::SetWebhook {
        url: "https://hooks.example.com/ledger".into(),
        secret: secret.into(),
    };
    let state = given(&[]).when(set("whsec_one")).then_events(&[
        Event::WebhookSet {
            url: "https://hooks.example.com/ledger".into(),
        },
        Event::WebhookSecretSet {
            secret: "whsec_one".into(),
        },
    ]);
    let first = state.webhook_secret.clone().expect("a secret");
    assert_eq!(first.secret, "whsec_one");
    assert_eq!(first.version, state.version);
    // Setting it again rotates the secret.
    let state = given_state(state).when(set("whsec_two")).then_accepted();
    assert_eq!(
        state.webhook_secret.map(|s| s.secret).as_deref(),
        Some("whsec_two")
    );
    given(&[])
        .when(set(""))
        .then_invalid_input("secret must be 1 to");
}

// ---- Unblocked notifications ----

fn user_in(id: u128, group: GroupId) -> Event {
    user_created(user(id), group, None)
}

fn webhook_set() -> Event {
    Event::WebhookSet {
        url: "https://hooks.example.com/ledger".into(),
    }
}

fn set_window(
    group: GroupId,
    from: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> Command {
    Command::SetRestriction {
        group,
        restriction: window(from, until),
    }
}

/// HQ's window ended on 1 May; Sales and Prague below it are blocked with it. Two users in
/// Sales, one in Prague, one removed.
fn expired_hq() -> Vec<Event> {
    let mut facts = organisation();
    facts.push(restriction_set(HQ, window(at(2024, 1, 1), at(2024, 5, 1))));
    facts.extend([
        user_in(1, SALES),
        user_in(2, SALES),
        user_in(3, PRAGUE),
        user_in(4, PRAGUE),
    ]);
    facts.push(user_removed(user(4)));
    facts
}

#[test]
fn extending_an_expired_window_records_every_group_it_unblocks_and_their_users() {
    let mut facts = expired_hq();
    facts.push(webhook_set());
    let state = given(&facts)
        .when(set_window(HQ, at(2024, 1, 1), at(2024, 12, 31)))
        .then_events(&[
            restriction_set(HQ, window(at(2024, 1, 1), at(2024, 12, 31))),
            Event::GroupsUnblocked {
                group: HQ,
                groups: vec![HQ, SALES, PRAGUE],
                users: 3,
                at: now(),
            },
        ]);
    let owed: Vec<u64> = state.unblocks_owed.keys().copied().collect();
    assert_eq!(owed.len(), 1, "one notification owed");
    assert_eq!(
        state.unblocks_owed[&owed[0]].groups,
        vec![HQ, SALES, PRAGUE]
    );
}

#[test]
fn clearing_an_expired_restriction_unblocks_the_groups_below_it() {
    given(&expired_hq())
        .when(Command::ClearRestriction { group: HQ })
        .then_events(&[
            Event::RestrictionCleared { group: HQ },
            Event::GroupsUnblocked {
                group: HQ,
                groups: vec![HQ, SALES, PRAGUE],
                users: 3,
                at: now(),
            },
        ]);
}

#[test]
fn changing_a_window_that_blocked_nobody_records_no_unblocking() {
    let mut facts = organisation();
    facts.push(restriction_set(HQ, window(at(2024, 1, 1), at(2024, 6, 1))));
    given(&facts)
        .when(set_window(HQ, at(2024, 1, 1), at(2024, 12, 31)))
        .then_events(&[restriction_set(
            HQ,
            window(at(2024, 1, 1), at(2024, 12, 31)),
        )]);
}

#[test]
fn extending_a_window_below_an_expired_ancestor_unblocks_nothing() {
    // Sales' own window is extended, but HQ's has ended: Sales and Prague stay blocked.
    let mut facts = expired_hq();
    facts.push(restriction_set(
        SALES,
        window(at(2024, 1, 1), at(2024, 4, 1)),
    ));
    given(&facts)
        .when(set_window(SALES, at(2024, 1, 1), at(2024, 5, 1)))
        .then_events(&[restriction_set(
            SALES,
            window(at(2024, 1, 1), at(2024, 5, 1)),
        )]);
}

#[test]
fn only_the_groups_the_change_frees_are_named() {
    // Prague has an expired window of its own: extending HQ's frees HQ and Sales, not Prague.
    let mut facts = expired_hq();
    facts.push(restriction_set(
        PRAGUE,
        window(at(2024, 1, 1), at(2024, 3, 1)),
    ));
    given(&facts)
        .when(set_window(HQ, at(2024, 1, 1), at(2024, 12, 31)))
        .then_events(&[
            restriction_set(HQ, window(at(2024, 1, 1), at(2024, 12, 31))),
            Event::GroupsUnblocked {
                group: HQ,
                groups: vec![HQ, SALES],
                users: 2,
                at: now(),
            },
        ]);
}

#[test]
fn an_unblocking_while_no_webhook_is_set_owes_no_notification() {
    let state = given(&expired_hq())
        .when(set_window(HQ, at(2024, 1, 1), at(2024, 12, 31)))
        .then_accepted();
    assert!(state.unblocks_owed.is_empty());
}

#[test]
fn an_unblocked_notification_is_recorded_as_delivered_once() {
    let mut facts = expired_hq();
    facts.push(webhook_set());
    let state = given(&facts)
        .when(set_window(HQ, at(2024, 1, 1), at(2024, 12, 31)))
        .then_accepted();
    let version = *state.unblocks_owed.keys().next().expect("owed");
    let state = given_state(state)
        .when(Command::RecordUnblockedNotified { version })
        .then_events(&[Event::UnblockedNotified { version }]);
    assert!(state.unblocks_owed.is_empty());
    let rejection = given_state(state)
        .when(Command::RecordUnblockedNotified { version })
        .then_reject(Rejection::UnblockedAlreadyNotified { version });
    assert_eq!(rejection.class(), RejectionClass::Conflict);
}
