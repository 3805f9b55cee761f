//! Catalogue editing: `DefineLicenseType` validation and the assignments a change would break.

mod support;

use events::{Command, Event, Kind, LicenseType, Rejection, Rule, TypeCode};
use support::*;

fn codes(list: &[&str]) -> Vec<TypeCode> {
    list.iter().map(|c| TypeCode::from(*c)).collect()
}

fn addon(code: &str, attaches_to: &[&str], requires_any: &[&str]) -> LicenseType {
    LicenseType {
        code: code.into(),
        kind: Kind::Addon,
        attaches_to: codes(attaches_to),
        requires_any: codes(requires_any),
        excludes: vec![],
    }
}

const PHONE: events::LicenseId = license(1);
const RECORDING: events::LicenseId = license(2);
const ALICE: events::UserId = user(1);
const SALES: events::GroupId = group(1);

fn recording_on_alices_phone() -> Vec<Event> {
    vec![
        group_created(SALES, "Sales", None),
        user_created(ALICE, SALES, None),
        provisioned("phone_system", &[PHONE]),
        provisioned("call_recording", &[RECORDING]),
        assigned(PHONE, "phone_system", ALICE),
        attached(RECORDING, "call_recording", PHONE),
    ]
}

#[test]
fn a_new_addon_type_is_defined() {
    let definition = addon("fax", &["phone_system"], &[]);
    let state = given(&[])
        .when(Command::DefineLicenseType(definition.clone()))
        .then_events(&[Event::LicenseTypeDefined {
            definition: definition.clone(),
        }]);
    assert_eq!(state.catalogue[&TypeCode::from("fax")], definition);
}

#[test]
fn a_definition_naming_an_unknown_code_is_bad_input() {
    given(&[])
        .when(Command::DefineLicenseType(addon("fax", &["telex"], &[])))
        .then_reject(Rejection::UnknownLicenseType("telex".into()));
}

#[test]
fn an_addon_attaching_to_nothing_or_to_an_addon_is_refused() {
    given(&[])
        .when(Command::DefineLicenseType(addon("fax", &[], &[])))
        .then_rule(Rule::AddonAttachesToNothing);
    given(&[])
        .when(Command::DefineLicenseType(addon(
            "fax",
            &["call_recording"],
            &[],
        )))
        .then_rule(Rule::AttachesToNonBase);
}

#[test]
fn a_base_type_cannot_attach_to_anything() {
    let definition = LicenseType {
        code: "kiosk".into(),
        kind: Kind::Base,
        attaches_to: codes(&["phone_system"]),
        requires_any: vec![],
        excludes: vec![],
    };
    given(&[])
        .when(Command::DefineLicenseType(definition))
        .then_rule(Rule::BaseCannotAttach);
}

#[test]
fn a_cycle_in_requires_any_is_refused() {
    // voice has no requirements; making voice require outbound closes outbound → voice → outbound.
    let voice = LicenseType {
        code: "voice".into(),
        kind: Kind::Base,
        attaches_to: vec![],
        requires_any: codes(&["outbound"]),
        excludes: vec![],
    };
    let violation = given(&[])
        .when(Command::DefineLicenseType(voice))
        .then_rule(Rule::RequiresCycle);
    assert!(violation.message.contains("voice"), "{}", violation.message);
}

#[test]
fn narrowing_attaches_to_lists_every_attached_addon_it_would_break() {
    let narrowed = addon("call_recording", &["cc_agent"], &[]);
    let violation = given(&recording_on_alices_phone())
        .when(Command::DefineLicenseType(narrowed))
        .then_rule(Rule::AssignmentInvalidated);
    assert!(
        violation.message.contains(&RECORDING.to_string()),
        "{}",
        violation.message
    );
}

#[test]
fn a_new_requirement_the_holders_lack_is_refused() {
    let stricter = addon("call_recording", &["phone_system"], &["voice"]);
    given(&recording_on_alices_phone())
        .when(Command::DefineLicenseType(stricter))
        .then_rule(Rule::AssignmentInvalidated);
}

#[test]
fn changing_base_to_addon_while_licences_exist_is_refused() {
    let flipped = addon("phone_system", &["voice"], &[]);
    given(&[provisioned("phone_system", &[PHONE])])
        .when(Command::DefineLicenseType(flipped))
        .then_rule(Rule::KindChangeInUse);
}

#[test]
fn widening_attaches_to_keeps_every_assignment_valid() {
    let wider = addon("call_recording", &["phone_system", "developer"], &[]);
    given(&recording_on_alices_phone())
        .when(Command::DefineLicenseType(wider))
        .then_accepted();
}
