//! Features (issue 16 item 4): catalogue entries of `kind: "feature"` that a group's
//! restriction switches on or off; no units, so nothing of licences applies to them.

mod support;

use events::{
    Command, Event, Feature, ImportRow, Kind, LicenseType, Rejection, Restriction, Rule, TypeCode,
};
use std::collections::BTreeMap;
use support::*;

const HQ: events::GroupId = group(1);
const SALES: events::GroupId = group(2);
const EAST: events::GroupId = group(3);
const ALICE: events::UserId = user(1);

fn ukey2(enabled_by_default: bool) -> Feature {
    Feature {
        code: "ukey2".into(),
        name: "UKEY2".into(),
        enabled_by_default,
    }
}

fn feature_defined(enabled_by_default: bool) -> Event {
    Event::FeatureDefined {
        definition: ukey2(enabled_by_default),
    }
}

fn switches(pairs: &[(&str, bool)]) -> BTreeMap<TypeCode, bool> {
    pairs
        .iter()
        .map(|(code, on)| (TypeCode::from(*code), *on))
        .collect()
}

fn features_set(id: events::GroupId, pairs: &[(&str, bool)]) -> Event {
    Event::RestrictionFeaturesSet {
        group: id,
        features: switches(pairs),
    }
}

fn set_with_features(id: events::GroupId, pairs: &[(&str, bool)]) -> Command {
    Command::SetRestrictionAndFeatures {
        group: id,
        restriction: limits(&[]),
        features: switches(pairs),
    }
}

/// HQ → Sales → East, each with an enabled restriction without limits, and UKEY2 defined.
fn tree() -> Vec<Event> {
    vec![
        feature_defined(false),
        group_created(HQ, "HQ", None),
        group_created(SALES, "Sales", Some(HQ)),
        group_created(EAST, "East", Some(SALES)),
        restriction_set(HQ, limits(&[])),
        restriction_set(SALES, limits(&[])),
        restriction_set(EAST, limits(&[])),
    ]
}

fn feature_has_no_units() -> events::Violation {
    violation(Rule::FeatureHasNoUnits).of_type(&"ukey2".into())
}

#[test]
fn a_feature_is_defined_and_changed_by_an_event_of_its_own() {
    let state = given(&[])
        .when(Command::DefineFeature(ukey2(false)))
        .then_events(&[feature_defined(false)]);
    assert_eq!(state.features[&TypeCode::from("ukey2")], ukey2(false));
    assert!(!state.catalogue.contains_key(&TypeCode::from("ukey2")));
    let state = given_state(state)
        .when(Command::DefineFeature(ukey2(true)))
        .then_events(&[feature_defined(true)]);
    assert!(state.features[&TypeCode::from("ukey2")].enabled_by_default);
}

#[test]
fn a_feature_needs_a_name() {
    given(&[])
        .when(Command::DefineFeature(Feature {
            name: " ".into(),
            ..ukey2(false)
        }))
        .then_invalid_input("name");
}

#[test]
fn a_code_never_changes_between_licence_type_and_feature() {
    given(&[])
        .when(Command::DefineFeature(Feature {
            code: "voice".into(),
            ..ukey2(false)
        }))
        .then_violations(&[violation(Rule::CatalogueKindChange).of_type(&"voice".into())]);
    given(&[feature_defined(false)])
        .when(Command::DefineLicenseType(LicenseType {
            code: "ukey2".into(),
            kind: Kind::Base,
            attaches_to: vec![],
            requires_any: vec![],
            excludes: vec![],
        }))
        .then_violations(&[violation(Rule::CatalogueKindChange).of_type(&"ukey2".into())]);
}

#[test]
fn a_licence_type_cannot_attach_to_require_or_exclude_a_feature() {
    given(&[feature_defined(false)])
        .when(Command::DefineLicenseType(LicenseType {
            code: "fax".into(),
            kind: Kind::Addon,
            attaches_to: vec!["phone_system".into()],
            requires_any: vec!["ukey2".into()],
            excludes: vec![],
        }))
        .then_violations(&[feature_has_no_units()]);
}

#[test]
fn a_feature_cannot_be_provisioned_quantified_priced_limited_or_assigned() {
    let facts = [
        feature_defined(false),
        group_created(HQ, "HQ", None),
        user_created(ALICE, HQ, None),
        provisioned("phone_system", &[license(1)]),
    ];
    let attempts = [
        Command::ProvisionLicenses {
            license_type: "ukey2".into(),
            quantity: 1,
        },
        Command::SetQuantity {
            license_type: "ukey2".into(),
            quantity: 3,
        },
        Command::SetPrice {
            license_type: "ukey2".into(),
            unit_price_minor: 100,
            currency: "EUR".into(),
            effective_from: now(),
        },
        Command::SetRestriction {
            group: HQ,
            restriction: limits(&[("ukey2", 5)]),
        },
        Command::AssignByType {
            user: ALICE,
            license_type: "ukey2".into(),
            addons: vec![],
            group: None,
        },
        Command::AssignByType {
            user: ALICE,
            license_type: "phone_system".into(),
            addons: vec!["ukey2".into()],
            group: None,
        },
    ];
    for attempt in attempts {
        given(&facts)
            .when(attempt)
            .then_violations(&[feature_has_no_units()]);
    }
}

#[test]
fn an_import_row_naming_a_feature_as_an_addon_is_a_bad_row() {
    let rejection = given(&[feature_defined(false), group_created(HQ, "HQ", None)])
        .when(Command::Import(vec![ImportRow {
            row: 1,
            extension: "101".into(),
            number: "+420111".into(),
            user: "Alice".into(),
            addons: vec![("Addon license 1".into(), "ukey2".into())],
        }]))
        .rejection();
    let Rejection::ImportRejected(errors) = rejection else {
        panic!("expected a bad import, got {rejection:?}");
    };
    assert!(
        errors
            .iter()
            .any(|e| e.column == "Addon license 1" && e.code == "feature_has_no_units"),
        "{errors:?}"
    );
}

#[test]
fn a_restriction_switches_features_in_an_event_after_the_restriction() {
    let state = given(&tree())
        .when(set_with_features(SALES, &[("ukey2", true)]))
        .then_events(&[
            restriction_set(SALES, limits(&[])),
            features_set(SALES, &[("ukey2", true)]),
        ]);
    assert_eq!(state.groups[&SALES].features, switches(&[("ukey2", true)]));
}

#[test]
fn the_same_features_again_store_only_the_restriction_and_a_plain_restriction_keeps_them() {
    let mut facts = tree();
    facts.push(features_set(SALES, &[("ukey2", false)]));
    given(&facts)
        .when(set_with_features(SALES, &[("ukey2", false)]))
        .then_events(&[restriction_set(SALES, limits(&[]))]);
    let state = given(&facts)
        .when(Command::SetRestriction {
            group: SALES,
            restriction: limits(&[("phone_system", 4)]),
        })
        .then_accepted();
    assert_eq!(
        state.groups[&SALES].features,
        switches(&[("ukey2", false)]),
        "a restriction set without features leaves them as they were"
    );
}

#[test]
fn clearing_the_restriction_clears_the_features_it_switched() {
    let mut facts = tree();
    facts.push(features_set(SALES, &[("ukey2", false)]));
    let state = given(&facts)
        .when(Command::ClearRestriction { group: SALES })
        .then_accepted();
    assert!(state.groups[&SALES].features.is_empty());
    assert_eq!(
        state.effective_feature(EAST, &"ukey2".into()),
        (false, None)
    );
}

#[test]
fn switching_an_unknown_code_is_bad_input_and_a_licence_type_is_not_a_feature() {
    given(&tree())
        .when(set_with_features(SALES, &[("face_id", true)]))
        .then_reject(Rejection::UnknownFeature("face_id".into()));
    given(&tree())
        .when(set_with_features(SALES, &[("voice", true)]))
        .then_violations(&[violation(Rule::NotAFeature)
            .in_group(SALES)
            .of_type(&"voice".into())]);
}

#[test]
fn a_feature_switched_off_above_cannot_be_switched_back_on_below() {
    let mut facts = tree();
    facts.push(features_set(HQ, &[("ukey2", false)]));
    let found = given(&facts)
        .when(set_with_features(EAST, &[("ukey2", true)]))
        .then_violations(&[violation(Rule::FeatureDisabledAbove)
            .in_group(HQ)
            .of_type(&"ukey2".into())]);
    assert!(found[0].message.contains("HQ"), "{}", found[0].message);
    // Switching it off below, or leaving it inherited, is fine.
    given(&facts)
        .when(set_with_features(EAST, &[("ukey2", false)]))
        .then_accepted();
}

#[test]
fn an_ancestor_switching_a_feature_off_wins_over_a_group_below_that_switched_it_on() {
    let mut facts = tree();
    facts.push(features_set(EAST, &[("ukey2", true)]));
    let state = given(&facts)
        .when(set_with_features(HQ, &[("ukey2", false)]))
        .then_accepted();
    assert_eq!(
        state.effective_feature(EAST, &"ukey2".into()),
        (false, Some(HQ)),
        "off anywhere on the path is off, named by the group that switched it off"
    );
}

#[test]
fn a_feature_is_on_where_a_group_on_the_path_switches_it_on_or_by_default() {
    let code = TypeCode::from("ukey2");
    let mut facts = tree();
    facts.push(features_set(SALES, &[("ukey2", true)]));
    let state = given(&facts).state;
    assert_eq!(state.effective_feature(EAST, &code), (true, Some(SALES)));
    assert_eq!(state.effective_feature(HQ, &code), (false, None));
    let mut by_default = tree();
    by_default.push(feature_defined(true));
    let state = given(&by_default).state;
    assert_eq!(state.effective_feature(EAST, &code), (true, None));
}

#[test]
fn a_disabled_restriction_switches_no_feature() {
    let mut facts = tree();
    facts.push(features_set(SALES, &[("ukey2", false)]));
    facts.push(restriction_set(
        SALES,
        Restriction {
            enabled: false,
            ..limits(&[])
        },
    ));
    facts.push(feature_defined(true));
    let state = given(&facts).state;
    assert_eq!(state.effective_feature(EAST, &"ukey2".into()), (true, None));
}
