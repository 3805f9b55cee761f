//! Every rule of `decide`, told as a story: given these facts, when this command, then these
//! events (and the state they fold into) or exactly this rejection.

mod support;

use events::decide::{
    check_tenant_total, derived_license_ids, TenantTotal, GROUPS_PER_TENANT_MAX, GROUP_DEPTH_MAX,
    KEYS_PER_TENANT_MAX, LICENSES_PER_TENANT_MAX, PROVISION_QUANTITY_MAX, USERS_PER_TENANT_MAX,
};
use events::{
    Command, Event, GroupId, KeyId, LicenseId, LicenseStatus, NewUser, Rejection, RejectionClass,
    Restriction, Retention, Role, Rule, TypeCode, UserId,
};
use support::*;
use uuid::Uuid;

// ---- The organisation every story shares. ----
//
// SALES ─┬─ SALES_EU ── PRAGUE      ALICE (ext 101) in PRAGUE, BOB (ext 102) in SALES_EU
//        └─ SALES_US                DAVE in SALES_US
// SUPPORT ── SUPPORT_L1             CAROL (ext 201) in SUPPORT_L1, ERIN in SUPPORT

const SALES: GroupId = group(1);
const SALES_EU: GroupId = group(2);
const PRAGUE: GroupId = group(3);
const SALES_US: GroupId = group(4);
const SUPPORT: GroupId = group(5);
const SUPPORT_L1: GroupId = group(6);

const ALICE: UserId = user(1);
const BOB: UserId = user(2);
const CAROL: UserId = user(3);
const DAVE: UserId = user(4);
const ERIN: UserId = user(5);

const PHONE_1: LicenseId = license(1);
const PHONE_2: LicenseId = license(2);
const PHONE_3: LicenseId = license(3);
const VOICE_1: LicenseId = license(11);
const AGENT_1: LicenseId = license(21);
const SUPERVISOR_1: LicenseId = license(22);
const RECORDING_1: LicenseId = license(31);
const RECORDING_2: LicenseId = license(32);
const OUTBOUND_1: LicenseId = license(41);
const VIEWER_1: LicenseId = license(51);
const CREATOR_1: LicenseId = license(52);
const IP_PHONE_1: LicenseId = license(61);

fn organisation() -> Vec<Event> {
    vec![
        group_created(SALES, "Sales", None),
        group_created(SALES_EU, "Sales EU", Some(SALES)),
        group_created(PRAGUE, "Prague", Some(SALES_EU)),
        group_created(SALES_US, "Sales US", Some(SALES)),
        group_created(SUPPORT, "Support", None),
        group_created(SUPPORT_L1, "Support L1", Some(SUPPORT)),
        user_created(ALICE, PRAGUE, Some("101")),
        user_created(BOB, SALES_EU, Some("102")),
        user_created(CAROL, SUPPORT_L1, Some("201")),
        user_created(DAVE, SALES_US, None),
        user_created(ERIN, SUPPORT, None),
    ]
}

/// Licences the tenant owns, all free.
fn stock() -> Vec<Event> {
    vec![
        provisioned("phone_system", &[PHONE_1, PHONE_2, PHONE_3]),
        provisioned("voice", &[VOICE_1]),
        provisioned("cc_agent", &[AGENT_1]),
        provisioned("cc_supervisor", &[SUPERVISOR_1]),
        provisioned("call_recording", &[RECORDING_1, RECORDING_2]),
        provisioned("outbound", &[OUTBOUND_1]),
        provisioned("historical_analytics_viewer", &[VIEWER_1]),
        provisioned("historical_analytics_creator", &[CREATOR_1]),
        provisioned("device_ip_phone", &[IP_PHONE_1]),
    ]
}

/// The organisation and its stock, then `facts`.
fn with(facts: &[Event]) -> Story {
    let mut all = organisation();
    all.extend(stock());
    all.extend_from_slice(facts);
    given(&all)
}

fn type_code(code: &str) -> TypeCode {
    TypeCode::from(code)
}

// ---- Tenant ----

#[test]
fn creating_a_tenant_installs_the_default_catalogue() {
    let events = tenant_created();
    assert_eq!(
        events[0],
        Event::TenantCreated {
            name: "Acme".into(),
            billing_timezone: "UTC".into(),
            currency: "EUR".into()
        }
    );
    let defined = events
        .iter()
        .filter(|e| matches!(e, Event::LicenseTypeDefined { .. }))
        .count();
    assert_eq!(defined, 24);
    assert_eq!(events.len(), 25);
    let state = given(&[]).state;
    assert_eq!(state.version, 25);
    assert_eq!(state.catalogue, events::catalogue::default_catalogue());
}

#[test]
fn creating_a_tenant_twice_is_refused() {
    given(&[])
        .when(Command::CreateTenant {
            name: "Again".into(),
            billing_timezone: "UTC".into(),
            currency: "EUR".into(),
        })
        .then_reject(Rejection::TenantAlreadyExists);
}

// ---- Provision ----

#[test]
fn provision_creates_one_derived_id_per_licence() {
    let expected_ids = derived_license_ids(&context(), 3);
    let state = given(&[])
        .when(Command::ProvisionLicenses {
            license_type: type_code("phone_system"),
            quantity: 3,
        })
        .then_events(&[provisioned("phone_system", &expected_ids)]);
    assert_eq!(state.owned[&type_code("phone_system")], 3);
    assert_eq!(state.free[&type_code("phone_system")].len(), 3);
    for id in expected_ids {
        assert_eq!(state.licenses[&id].status(), LicenseStatus::Free);
    }
}

#[test]
fn provision_accepts_the_largest_quantity_and_refuses_beyond_it_or_zero() {
    let at_limit = given(&[])
        .when(Command::ProvisionLicenses {
            license_type: type_code("voice"),
            quantity: PROVISION_QUANTITY_MAX,
        })
        .then_accepted();
    assert_eq!(
        at_limit.owned[&type_code("voice")],
        u64::from(PROVISION_QUANTITY_MAX)
    );
    for quantity in [0, PROVISION_QUANTITY_MAX + 1, u32::MAX] {
        given(&[])
            .when(Command::ProvisionLicenses {
                license_type: type_code("voice"),
                quantity,
            })
            .then_invalid_input("quantity must be between 1 and 10000");
    }
}

#[test]
fn provision_of_an_unknown_type_is_refused_as_unknown_type() {
    let rejection = given(&[])
        .when(Command::ProvisionLicenses {
            license_type: type_code("gold_plan"),
            quantity: 1,
        })
        .then_reject(Rejection::UnknownLicenseType(type_code("gold_plan")));
    assert_eq!(rejection.class(), RejectionClass::BadInput);
}

// ---- Set quantity ----

#[test]
fn set_quantity_up_provisions_the_difference() {
    let expected_ids = derived_license_ids(&context(), 2);
    let state = with(&[])
        .when(Command::SetQuantity {
            license_type: type_code("phone_system"),
            quantity: 5,
        })
        .then_events(&[provisioned("phone_system", &expected_ids)]);
    assert_eq!(state.owned[&type_code("phone_system")], 5);
}

#[test]
fn set_quantity_down_terminates_the_newest_free_licences() {
    let (old_1, old_2, new_1, new_2) = (license(901), license(902), license(903), license(904));
    let mut facts = organisation();
    facts.extend([
        provisioned("developer", &[old_1, old_2]),
        provisioned("developer", &[new_1, new_2]),
        assigned(new_2, "developer", ALICE),
    ]);
    let state = given(&facts)
        .when(Command::SetQuantity {
            license_type: type_code("developer"),
            quantity: 2,
        })
        // new_2 is newest but in use; old_2 beats old_1 on the id tie-break.
        .then_events(&[
            terminated(new_1, "developer"),
            terminated(old_2, "developer"),
        ]);
    assert_eq!(state.owned[&type_code("developer")], 2);
    assert_eq!(state.licenses[&old_1].status(), LicenseStatus::Free);
    assert_eq!(state.licenses[&new_2].status(), LicenseStatus::Assigned);
    assert_invariants(&state);
}

#[test]
fn set_quantity_down_refuses_and_changes_nothing_when_too_few_are_free() {
    let story = with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        assigned(PHONE_2, "phone_system", BOB),
    ]);
    let before = story.state.clone();
    let outcome = story.when(Command::SetQuantity {
        license_type: type_code("phone_system"),
        quantity: 0,
    });
    assert_eq!(outcome.before, before);
    let found = outcome.then_violations(&[violation(Rule::NotEnoughFreeLicenses)
        .of_type(&type_code("phone_system"))
        .counts(3, 2)]);
    assert!(
        found[0]
            .message
            .contains("2 of 3 are in use and only 1 are free"),
        "{}",
        found[0].message
    );
}

#[test]
fn set_quantity_down_never_drops_a_free_base_carrying_addons() {
    with(&[attached(RECORDING_1, "call_recording", PHONE_1)])
        .when(Command::SetQuantity {
            license_type: type_code("phone_system"),
            quantity: 0,
        })
        .then_violations(&[violation(Rule::NotEnoughFreeLicenses)
            .of_type(&type_code("phone_system"))
            .counts(3, 0)]);
}

#[test]
fn set_quantity_to_the_current_quantity_changes_nothing() {
    with(&[])
        .when(Command::SetQuantity {
            license_type: type_code("phone_system"),
            quantity: 3,
        })
        .then_events(&[]);
}

#[test]
fn set_quantity_refuses_a_step_larger_than_one_provisioning() {
    with(&[])
        .when(Command::SetQuantity {
            license_type: type_code("phone_system"),
            quantity: 3 + PROVISION_QUANTITY_MAX + 1,
        })
        .then_violations(&[
            violation(Rule::QuantityStepTooLarge).of_type(&type_code("phone_system"))
        ]);
}

#[test]
fn set_quantity_of_an_unknown_type_is_refused() {
    with(&[])
        .when(Command::SetQuantity {
            license_type: type_code("gold_plan"),
            quantity: 1,
        })
        .then_reject(Rejection::UnknownLicenseType(type_code("gold_plan")));
}

// ---- Terminate ----

#[test]
fn terminate_a_free_licence() {
    let state = with(&[])
        .when(Command::TerminateLicense { license: PHONE_1 })
        .then_events(&[terminated(PHONE_1, "phone_system")]);
    assert_eq!(state.licenses[&PHONE_1].status(), LicenseStatus::Terminated);
    assert_eq!(state.owned[&type_code("phone_system")], 2);
    assert!(!state.free[&type_code("phone_system")].contains(&PHONE_1));
    assert_invariants(&state);
}

#[test]
fn terminate_refuses_a_licence_in_use_and_names_the_user() {
    let rejection = with(&[assigned(PHONE_1, "phone_system", ALICE)])
        .when(Command::TerminateLicense { license: PHONE_1 })
        .then_reject(Rejection::LicenseInUse {
            license: PHONE_1,
            user: Some(ALICE),
            base: None,
            addons: vec![],
        });
    assert_eq!(rejection.class(), RejectionClass::Conflict);
    assert!(rejection.to_string().contains(&ALICE.to_string()));
}

#[test]
fn terminate_refuses_an_attached_addon_and_names_its_base_and_user() {
    with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        attached(RECORDING_1, "call_recording", PHONE_1),
    ])
    .when(Command::TerminateLicense {
        license: RECORDING_1,
    })
    .then_reject(Rejection::LicenseInUse {
        license: RECORDING_1,
        user: Some(ALICE),
        base: Some(PHONE_1),
        addons: vec![],
    });
}

#[test]
fn terminate_refuses_an_addon_attached_to_a_free_base_and_names_the_base() {
    let rejection = with(&[attached(RECORDING_1, "call_recording", PHONE_1)])
        .when(Command::TerminateLicense {
            license: RECORDING_1,
        })
        .then_reject(Rejection::LicenseInUse {
            license: RECORDING_1,
            user: None,
            base: Some(PHONE_1),
            addons: vec![],
        });
    assert!(rejection.to_string().contains(&PHONE_1.to_string()));
}

#[test]
fn terminate_refuses_a_free_base_carrying_addons_and_lists_them() {
    with(&[
        attached(RECORDING_1, "call_recording", PHONE_1),
        attached(IP_PHONE_1, "device_ip_phone", PHONE_1),
    ])
    .when(Command::TerminateLicense { license: PHONE_1 })
    .then_reject(Rejection::LicenseInUse {
        license: PHONE_1,
        user: None,
        base: None,
        addons: vec![RECORDING_1, IP_PHONE_1],
    });
}

#[test]
fn terminate_twice_is_refused_as_terminated() {
    with(&[terminated(PHONE_1, "phone_system")])
        .when(Command::TerminateLicense { license: PHONE_1 })
        .then_reject(Rejection::LicenseTerminated(PHONE_1));
}

#[test]
fn terminate_an_unknown_licence_is_not_found() {
    let rejection = with(&[])
        .when(Command::TerminateLicense {
            license: license(999),
        })
        .then_reject(Rejection::LicenseNotFound(license(999)));
    assert_eq!(rejection.class(), RejectionClass::NotFound);
}

// ---- Assign ----

#[test]
fn assign_gives_a_free_base_licence_to_a_user_and_counts_it_up_the_tree() {
    let state = with(&[])
        .when(Command::AssignLicense {
            license: PHONE_1,
            user: ALICE,
            group: None,
        })
        .then_events(&[assigned(PHONE_1, "phone_system", ALICE)]);
    assert_eq!(state.licenses[&PHONE_1].user, Some(ALICE));
    assert!(state.users[&ALICE].licenses.contains(&PHONE_1));
    for g in [PRAGUE, SALES_EU, SALES] {
        assert_eq!(used(&state, g), counts(&[("phone_system", 1)]));
    }
    assert_eq!(used(&state, SALES_US), counts(&[]));
    assert_eq!(used(&state, SUPPORT), counts(&[]));
    assert_invariants(&state);
}

#[test]
fn assign_refuses_a_licence_already_assigned_and_names_the_holder() {
    let rejection = with(&[assigned(PHONE_1, "phone_system", ALICE)])
        .when(Command::AssignLicense {
            license: PHONE_1,
            user: BOB,
            group: None,
        })
        .then_reject(Rejection::LicenseAlreadyAssigned {
            license: PHONE_1,
            user: Some(ALICE),
            base: None,
        });
    assert_eq!(rejection.class(), RejectionClass::Conflict);
}

#[test]
fn assign_refuses_an_addon_given_directly_to_a_user() {
    with(&[])
        .when(Command::AssignLicense {
            license: RECORDING_1,
            user: ALICE,
            group: None,
        })
        .then_violations(&[violation(Rule::NotABaseLicense).of_type(&type_code("call_recording"))]);
}

#[test]
fn assign_refuses_a_terminated_licence() {
    with(&[terminated(PHONE_1, "phone_system")])
        .when(Command::AssignLicense {
            license: PHONE_1,
            user: ALICE,
            group: None,
        })
        .then_reject(Rejection::LicenseTerminated(PHONE_1));
}

#[test]
fn assign_refuses_a_removed_user() {
    with(&[user_removed(DAVE)])
        .when(Command::AssignLicense {
            license: PHONE_1,
            user: DAVE,
            group: None,
        })
        .then_reject(Rejection::UserNotFound(DAVE));
}

#[test]
fn assign_refuses_an_unknown_user() {
    with(&[])
        .when(Command::AssignLicense {
            license: PHONE_1,
            user: user(99),
            group: None,
        })
        .then_reject(Rejection::UserNotFound(user(99)));
}

#[test]
fn assign_refuses_a_second_base_of_the_same_type() {
    with(&[assigned(PHONE_1, "phone_system", ALICE)])
        .when(Command::AssignLicense {
            license: PHONE_2,
            user: ALICE,
            group: None,
        })
        .then_violations(&[violation(Rule::OneBasePerType).of_type(&type_code("phone_system"))]);
}

#[test]
fn assign_refuses_a_second_cc_seat() {
    with(&[assigned(AGENT_1, "cc_agent", ALICE)])
        .when(Command::AssignLicense {
            license: SUPERVISOR_1,
            user: ALICE,
            group: None,
        })
        .then_violations(&[violation(Rule::ExcludedType).of_type(&type_code("cc_supervisor"))]);
}

#[test]
fn assign_allows_different_base_types_side_by_side() {
    let state = with(&[assigned(AGENT_1, "cc_agent", ALICE)])
        .when(Command::AssignLicense {
            license: PHONE_1,
            user: ALICE,
            group: None,
        })
        .then_accepted();
    assert_eq!(
        used(&state, PRAGUE),
        counts(&[("cc_agent", 1), ("phone_system", 1)])
    );
}

#[test]
fn assign_counts_the_group_limit_up_the_whole_tree_including_the_grandparent() {
    // BOB in SALES_EU uses the one phone SALES allows; ALICE sits two levels below SALES.
    with(&[
        restriction_set(SALES, limits(&[("phone_system", 1)])),
        assigned(PHONE_1, "phone_system", BOB),
    ])
    .when(Command::AssignLicense {
        license: PHONE_2,
        user: ALICE,
        group: None,
    })
    .then_violations(&[violation(Rule::GroupLimitReached)
        .in_group(SALES)
        .of_type(&type_code("phone_system"))
        .counts(1, 1)]);
}

#[test]
fn assign_lists_every_group_whose_limit_is_reached() {
    with(&[
        restriction_set(SALES, limits(&[("phone_system", 1)])),
        restriction_set(SALES_EU, limits(&[("phone_system", 1)])),
        assigned(PHONE_1, "phone_system", BOB),
    ])
    .when(Command::AssignLicense {
        license: PHONE_2,
        user: ALICE,
        group: None,
    })
    .then_violations(&[
        violation(Rule::GroupLimitReached)
            .in_group(SALES)
            .of_type(&type_code("phone_system"))
            .counts(1, 1),
        violation(Rule::GroupLimitReached)
            .in_group(SALES_EU)
            .of_type(&type_code("phone_system"))
            .counts(1, 1),
    ]);
}

#[test]
fn assign_up_to_the_limit_is_allowed() {
    let state = with(&[restriction_set(SALES, limits(&[("phone_system", 2)]))])
        .when(Command::AssignLicense {
            license: PHONE_1,
            user: ALICE,
            group: None,
        })
        .then_accepted();
    let state = given_state(state)
        .when(Command::AssignLicense {
            license: PHONE_2,
            user: BOB,
            group: None,
        })
        .then_accepted();
    assert_eq!(used(&state, SALES), counts(&[("phone_system", 2)]));
    given_state(state)
        .when(Command::AssignLicense {
            license: PHONE_3,
            user: DAVE,
            group: None,
        })
        .then_rule(Rule::GroupLimitReached);
}

#[test]
fn assign_ignores_a_disabled_restriction() {
    let disabled = Restriction {
        enabled: false,
        ..limits(&[("phone_system", 0)])
    };
    with(&[restriction_set(SALES, disabled)])
        .when(Command::AssignLicense {
            license: PHONE_1,
            user: ALICE,
            group: None,
        })
        .then_events(&[assigned(PHONE_1, "phone_system", ALICE)]);
}

#[test]
fn assign_treats_types_absent_from_the_limits_as_unlimited() {
    with(&[restriction_set(SALES, limits(&[("cc_agent", 0)]))])
        .when(Command::AssignLicense {
            license: PHONE_1,
            user: ALICE,
            group: None,
        })
        .then_events(&[assigned(PHONE_1, "phone_system", ALICE)]);
}

#[test]
fn assign_counts_the_addons_a_free_base_carries_against_the_limits() {
    with(&[
        restriction_set(SALES_EU, limits(&[("call_recording", 0)])),
        attached(RECORDING_1, "call_recording", PHONE_1),
    ])
    .when(Command::AssignLicense {
        license: PHONE_1,
        user: ALICE,
        group: None,
    })
    .then_violations(&[violation(Rule::GroupLimitReached)
        .in_group(SALES_EU)
        .of_type(&type_code("call_recording"))
        .counts(0, 0)]);
}

#[test]
fn assign_a_base_carrying_addons_counts_the_addons_for_the_holder() {
    let state = with(&[attached(RECORDING_1, "call_recording", PHONE_1)])
        .when(Command::AssignLicense {
            license: PHONE_1,
            user: ALICE,
            group: None,
        })
        .then_accepted();
    assert_eq!(
        used(&state, SALES),
        counts(&[("call_recording", 1), ("phone_system", 1)])
    );
    assert_invariants(&state);
}

// ---- Unassign ----

#[test]
fn unassign_a_free_licence_is_refused_as_not_assigned() {
    let rejection = with(&[])
        .when(Command::UnassignLicense { license: PHONE_1 })
        .then_reject(Rejection::LicenseNotAssigned(PHONE_1));
    assert_eq!(rejection.class(), RejectionClass::Conflict);
}

#[test]
fn unassign_releases_the_licence_and_the_usage_of_its_addons() {
    let state = with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        attached(RECORDING_1, "call_recording", PHONE_1),
    ])
    .when(Command::UnassignLicense { license: PHONE_1 })
    .then_events(&[unassigned(PHONE_1, "phone_system", ALICE)]);
    assert_eq!(state.licenses[&PHONE_1].status(), LicenseStatus::Free);
    assert!(state.users[&ALICE].licenses.is_empty());
    // The add-on stays on the licence.
    assert_eq!(state.licenses[&RECORDING_1].base, Some(PHONE_1));
    for g in [PRAGUE, SALES_EU, SALES] {
        assert_eq!(used(&state, g), counts(&[]));
    }
    assert_invariants(&state);
}

#[test]
fn unassign_an_addon_is_refused_as_not_a_base() {
    with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        attached(RECORDING_1, "call_recording", PHONE_1),
    ])
    .when(Command::UnassignLicense {
        license: RECORDING_1,
    })
    .then_rule(Rule::NotABaseLicense);
}

// ---- Reassign ----

#[test]
fn reassign_moves_addons_with_the_licence() {
    let state = with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        attached(RECORDING_1, "call_recording", PHONE_1),
    ])
    .when(Command::ReassignLicense {
        license: PHONE_1,
        user: CAROL,
        group: None,
    })
    .then_events(&[reassigned(PHONE_1, "phone_system", ALICE, CAROL)]);
    // The old path is empty, the new path counts the base and its add-on.
    for g in [PRAGUE, SALES_EU, SALES] {
        assert_eq!(used(&state, g), counts(&[]), "old path");
    }
    for g in [SUPPORT_L1, SUPPORT] {
        assert_eq!(
            used(&state, g),
            counts(&[("call_recording", 1), ("phone_system", 1)]),
            "new path"
        );
    }
    assert_eq!(state.licenses[&PHONE_1].user, Some(CAROL));
    assert_eq!(state.licenses[&RECORDING_1].base, Some(PHONE_1));
    assert!(state.users[&ALICE].licenses.is_empty());
    assert_eq!(
        state.holdings(CAROL),
        vec![type_code("phone_system"), type_code("call_recording")]
    );
    assert_invariants(&state);
}

#[test]
fn reassign_inside_one_tree_leaves_shared_ancestors_unchanged() {
    let state = with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        attached(RECORDING_1, "call_recording", PHONE_1),
    ])
    .when(Command::ReassignLicense {
        license: PHONE_1,
        user: DAVE,
        group: None,
    })
    .then_events(&[reassigned(PHONE_1, "phone_system", ALICE, DAVE)]);
    let both = counts(&[("call_recording", 1), ("phone_system", 1)]);
    assert_eq!(used(&state, PRAGUE), counts(&[]));
    assert_eq!(used(&state, SALES_EU), counts(&[]));
    assert_eq!(used(&state, SALES_US), both);
    assert_eq!(used(&state, SALES), both);
    assert_invariants(&state);
}

#[test]
fn reassign_to_the_same_user_is_a_conflict() {
    let rejection = with(&[assigned(PHONE_1, "phone_system", ALICE)])
        .when(Command::ReassignLicense {
            license: PHONE_1,
            user: ALICE,
            group: None,
        })
        .then_reject(Rejection::LicenseAlreadyAssigned {
            license: PHONE_1,
            user: Some(ALICE),
            base: None,
        });
    assert_eq!(rejection.class(), RejectionClass::Conflict);
}

#[test]
fn reassign_a_free_licence_is_refused_as_not_assigned() {
    with(&[])
        .when(Command::ReassignLicense {
            license: PHONE_1,
            user: ALICE,
            group: None,
        })
        .then_reject(Rejection::LicenseNotAssigned(PHONE_1));
}

#[test]
fn reassign_to_a_removed_user_is_not_found() {
    with(&[assigned(PHONE_1, "phone_system", ALICE), user_removed(DAVE)])
        .when(Command::ReassignLicense {
            license: PHONE_1,
            user: DAVE,
            group: None,
        })
        .then_reject(Rejection::UserNotFound(DAVE));
}

#[test]
fn reassign_within_a_full_shared_ancestor_is_allowed() {
    // SALES is full, but the licence stays inside SALES: its usage does not change.
    let state = with(&[
        restriction_set(SALES, limits(&[("phone_system", 1)])),
        assigned(PHONE_1, "phone_system", ALICE),
    ])
    .when(Command::ReassignLicense {
        license: PHONE_1,
        user: DAVE,
        group: None,
    })
    .then_accepted();
    assert_eq!(used(&state, SALES), counts(&[("phone_system", 1)]));
    assert_invariants(&state);
}

#[test]
fn reassign_checks_limits_only_on_groups_not_shared_by_both_paths() {
    // SALES (shared, full) is not reported; SALES_US (new to the licence) is.
    with(&[
        restriction_set(SALES, limits(&[("phone_system", 1)])),
        restriction_set(SALES_US, limits(&[("phone_system", 0)])),
        assigned(PHONE_1, "phone_system", ALICE),
    ])
    .when(Command::ReassignLicense {
        license: PHONE_1,
        user: DAVE,
        group: None,
    })
    .then_violations(&[violation(Rule::GroupLimitReached)
        .in_group(SALES_US)
        .of_type(&type_code("phone_system"))
        .counts(0, 0)]);
}

#[test]
fn reassign_checks_the_addons_against_the_new_groups() {
    with(&[
        restriction_set(SUPPORT, limits(&[("call_recording", 0)])),
        assigned(PHONE_1, "phone_system", ALICE),
        attached(RECORDING_1, "call_recording", PHONE_1),
    ])
    .when(Command::ReassignLicense {
        license: PHONE_1,
        user: CAROL,
        group: None,
    })
    .then_violations(&[violation(Rule::GroupLimitReached)
        .in_group(SUPPORT)
        .of_type(&type_code("call_recording"))
        .counts(0, 0)]);
}

#[test]
fn reassign_refuses_a_target_holding_an_excluded_seat() {
    with(&[
        assigned(AGENT_1, "cc_agent", ALICE),
        assigned(SUPERVISOR_1, "cc_supervisor", BOB),
    ])
    .when(Command::ReassignLicense {
        license: SUPERVISOR_1,
        user: ALICE,
        group: None,
    })
    .then_violations(&[violation(Rule::ExcludedType).of_type(&type_code("cc_supervisor"))]);
}

#[test]
fn reassign_refuses_a_target_already_holding_that_type() {
    with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        assigned(PHONE_2, "phone_system", BOB),
    ])
    .when(Command::ReassignLicense {
        license: PHONE_1,
        user: BOB,
        group: None,
    })
    .then_rule(Rule::OneBasePerType);
}

// ---- Attach and detach ----

#[test]
fn attach_an_addon_counts_it_on_the_holders_groups() {
    let state = with(&[assigned(PHONE_1, "phone_system", ALICE)])
        .when(Command::AttachAddon {
            base: PHONE_1,
            addon: RECORDING_1,
        })
        .then_events(&[attached(RECORDING_1, "call_recording", PHONE_1)]);
    assert_eq!(state.licenses[&RECORDING_1].base, Some(PHONE_1));
    assert_eq!(
        state.licenses[&RECORDING_1].status(),
        LicenseStatus::Assigned
    );
    assert!(state.licenses[&PHONE_1].addons.contains(&RECORDING_1));
    for g in [PRAGUE, SALES_EU, SALES] {
        assert_eq!(
            used(&state, g),
            counts(&[("call_recording", 1), ("phone_system", 1)])
        );
    }
    assert_invariants(&state);
}

#[test]
fn attach_to_a_free_base_counts_nowhere() {
    let state = with(&[])
        .when(Command::AttachAddon {
            base: PHONE_1,
            addon: RECORDING_1,
        })
        .then_events(&[attached(RECORDING_1, "call_recording", PHONE_1)]);
    assert_eq!(state.assigned_count(&type_code("call_recording")), 1);
    assert_invariants(&state);
}

#[test]
fn attach_refuses_a_base_type_the_addon_does_not_attach_to() {
    with(&[])
        .when(Command::AttachAddon {
            base: VOICE_1,
            addon: IP_PHONE_1,
        })
        .then_violations(&[
            violation(Rule::AddonCannotAttach).of_type(&type_code("device_ip_phone"))
        ]);
}

#[test]
fn attach_refuses_a_second_addon_of_the_same_type_on_one_base() {
    with(&[attached(RECORDING_1, "call_recording", PHONE_1)])
        .when(Command::AttachAddon {
            base: PHONE_1,
            addon: RECORDING_2,
        })
        .then_violations(&[
            violation(Rule::AddonTypeAlreadyAttached).of_type(&type_code("call_recording"))
        ]);
}

#[test]
fn attach_outbound_requires_the_holder_to_hold_voice() {
    with(&[assigned(PHONE_1, "phone_system", ALICE)])
        .when(Command::AttachAddon {
            base: PHONE_1,
            addon: OUTBOUND_1,
        })
        .then_violations(&[violation(Rule::RequiresMissing).of_type(&type_code("outbound"))]);
}

#[test]
fn attach_outbound_is_allowed_once_the_holder_holds_voice() {
    with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        assigned(VOICE_1, "voice", ALICE),
    ])
    .when(Command::AttachAddon {
        base: PHONE_1,
        addon: OUTBOUND_1,
    })
    .then_events(&[attached(OUTBOUND_1, "outbound", PHONE_1)]);
}

fn alice_with_voice_and_outbound() -> Vec<Event> {
    vec![
        assigned(PHONE_1, "phone_system", ALICE),
        assigned(VOICE_1, "voice", ALICE),
        attached(OUTBOUND_1, "outbound", PHONE_1),
    ]
}

#[test]
fn unassigning_voice_that_a_held_outbound_requires_is_refused_naming_it() {
    let rejection = with(&alice_with_voice_and_outbound())
        .when(Command::UnassignLicense { license: VOICE_1 })
        .then_reject(Rejection::RequiredByHeld {
            license: VOICE_1,
            user: ALICE,
            dependants: vec![(OUTBOUND_1, type_code("outbound"))],
        });
    assert_eq!(rejection.class(), RejectionClass::Conflict);
    // Once outbound is detached, voice goes.
    with(&alice_with_voice_and_outbound())
        .when(Command::DetachAddon {
            base: PHONE_1,
            addon: OUTBOUND_1,
        })
        .then_accepted();
}

#[test]
fn reassigning_voice_away_from_a_user_whose_outbound_needs_it_is_refused() {
    with(&alice_with_voice_and_outbound())
        .when(Command::ReassignLicense {
            license: VOICE_1,
            user: BOB,
            group: None,
        })
        .then_reject(Rejection::RequiredByHeld {
            license: VOICE_1,
            user: ALICE,
            dependants: vec![(OUTBOUND_1, type_code("outbound"))],
        });
}

#[test]
fn unassigning_a_base_takes_its_own_dependants_with_it_and_is_allowed() {
    // Outbound rides on PHONE_1 and leaves with it; voice stays, nothing is left wanting.
    with(&alice_with_voice_and_outbound())
        .when(Command::UnassignLicense { license: PHONE_1 })
        .then_accepted();
}

#[test]
fn detaching_call_recording_that_unlimited_storage_requires_is_refused() {
    let unlimited = license(71);
    with(&[
        provisioned("license_call_recording_unlimited_enabled", &[unlimited]),
        assigned(PHONE_1, "phone_system", ALICE),
        attached(RECORDING_1, "call_recording", PHONE_1),
        attached(
            unlimited,
            "license_call_recording_unlimited_enabled",
            PHONE_1,
        ),
    ])
    .when(Command::DetachAddon {
        base: PHONE_1,
        addon: RECORDING_1,
    })
    .then_reject(Rejection::RequiredByHeld {
        license: RECORDING_1,
        user: ALICE,
        dependants: vec![(
            unlimited,
            type_code("license_call_recording_unlimited_enabled"),
        )],
    });
}

#[test]
fn historical_analytics_never_attaches_to_a_cc_agent() {
    // A free agent seat: only the catalogue's attaches_to rule applies.
    with(&[])
        .when(Command::AttachAddon {
            base: AGENT_1,
            addon: VIEWER_1,
        })
        .then_violations(&[
            violation(Rule::AddonCannotAttach).of_type(&type_code("historical_analytics_viewer"))
        ]);
    // An agent's seat: the agent also lacks a wallboard, supervisor or admin seat.
    with(&[assigned(AGENT_1, "cc_agent", ALICE)])
        .when(Command::AttachAddon {
            base: AGENT_1,
            addon: CREATOR_1,
        })
        .then_violations(&[
            violation(Rule::AddonCannotAttach).of_type(&type_code("historical_analytics_creator")),
            violation(Rule::RequiresMissing).of_type(&type_code("historical_analytics_creator")),
        ]);
}

#[test]
fn historical_analytics_attaches_to_a_supervisor() {
    with(&[assigned(SUPERVISOR_1, "cc_supervisor", ALICE)])
        .when(Command::AttachAddon {
            base: SUPERVISOR_1,
            addon: VIEWER_1,
        })
        .then_events(&[attached(
            VIEWER_1,
            "historical_analytics_viewer",
            SUPERVISOR_1,
        )]);
}

#[test]
fn historical_analytics_viewer_and_creator_exclude_each_other() {
    let creator = type_code("historical_analytics_creator");
    // Held by a user.
    with(&[
        assigned(SUPERVISOR_1, "cc_supervisor", ALICE),
        attached(VIEWER_1, "historical_analytics_viewer", SUPERVISOR_1),
    ])
    .when(Command::AttachAddon {
        base: SUPERVISOR_1,
        addon: CREATOR_1,
    })
    .then_violations(&[violation(Rule::ExcludedType).of_type(&creator)]);
    // On a free seat.
    with(&[attached(
        VIEWER_1,
        "historical_analytics_viewer",
        SUPERVISOR_1,
    )])
    .when(Command::AttachAddon {
        base: SUPERVISOR_1,
        addon: CREATOR_1,
    })
    .then_violations(&[violation(Rule::ExcludedType).of_type(&creator)]);
}

#[test]
fn attach_refuses_an_addon_already_attached_and_names_its_base() {
    let rejection = with(&[attached(RECORDING_1, "call_recording", PHONE_1)])
        .when(Command::AttachAddon {
            base: PHONE_2,
            addon: RECORDING_1,
        })
        .then_reject(Rejection::LicenseAlreadyAssigned {
            license: RECORDING_1,
            user: None,
            base: Some(PHONE_1),
        });
    assert_eq!(rejection.class(), RejectionClass::Conflict);
}

#[test]
fn attach_refuses_a_base_licence_as_the_addon() {
    with(&[])
        .when(Command::AttachAddon {
            base: PHONE_1,
            addon: PHONE_2,
        })
        .then_violations(&[violation(Rule::NotAnAddon).of_type(&type_code("phone_system"))]);
}

#[test]
fn attach_refuses_an_addon_as_the_base() {
    with(&[])
        .when(Command::AttachAddon {
            base: RECORDING_1,
            addon: RECORDING_2,
        })
        .then_rule(Rule::NotABaseLicense);
}

#[test]
fn attach_refuses_a_terminated_addon() {
    with(&[terminated(RECORDING_1, "call_recording")])
        .when(Command::AttachAddon {
            base: PHONE_1,
            addon: RECORDING_1,
        })
        .then_reject(Rejection::LicenseTerminated(RECORDING_1));
}

#[test]
fn attach_checks_the_holders_group_limits() {
    with(&[
        restriction_set(SALES, limits(&[("call_recording", 0)])),
        assigned(PHONE_1, "phone_system", ALICE),
    ])
    .when(Command::AttachAddon {
        base: PHONE_1,
        addon: RECORDING_1,
    })
    .then_violations(&[violation(Rule::GroupLimitReached)
        .in_group(SALES)
        .of_type(&type_code("call_recording"))
        .counts(0, 0)]);
}

#[test]
fn detach_frees_the_addon_and_its_usage() {
    let state = with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        attached(RECORDING_1, "call_recording", PHONE_1),
    ])
    .when(Command::DetachAddon {
        base: PHONE_1,
        addon: RECORDING_1,
    })
    .then_events(&[detached(RECORDING_1, "call_recording", PHONE_1)]);
    assert_eq!(state.licenses[&RECORDING_1].status(), LicenseStatus::Free);
    assert!(state.licenses[&PHONE_1].addons.is_empty());
    assert!(state.free[&type_code("call_recording")].contains(&RECORDING_1));
    assert_eq!(used(&state, SALES), counts(&[("phone_system", 1)]));
    assert_invariants(&state);
}

#[test]
fn detach_of_an_addon_not_attached_to_that_base_is_refused() {
    let rejection = with(&[attached(RECORDING_1, "call_recording", PHONE_1)])
        .when(Command::DetachAddon {
            base: PHONE_2,
            addon: RECORDING_1,
        })
        .then_reject(Rejection::AddonNotAttached {
            addon: RECORDING_1,
            base: PHONE_2,
        });
    assert_eq!(rejection.class(), RejectionClass::Conflict);
    with(&[])
        .when(Command::DetachAddon {
            base: PHONE_1,
            addon: RECORDING_2,
        })
        .then_reject(Rejection::AddonNotAttached {
            addon: RECORDING_2,
            base: PHONE_1,
        });
}

// ---- Assign by type ----

#[test]
fn assign_by_type_picks_a_free_base_and_addons_atomically() {
    let state = with(&[assigned(PHONE_1, "phone_system", ALICE)])
        .when(Command::AssignByType {
            user: ERIN,
            license_type: type_code("phone_system"),
            addons: vec![type_code("call_recording"), type_code("device_ip_phone")],
            group: None,
        })
        .then_events(&[
            assigned(PHONE_2, "phone_system", ERIN),
            attached(RECORDING_1, "call_recording", PHONE_2),
            attached(IP_PHONE_1, "device_ip_phone", PHONE_2),
        ]);
    assert_eq!(
        used(&state, SUPPORT),
        counts(&[
            ("call_recording", 1),
            ("device_ip_phone", 1),
            ("phone_system", 1)
        ])
    );
    assert_invariants(&state);
}

#[test]
fn assign_by_type_skips_a_free_base_carrying_addons() {
    with(&[attached(RECORDING_1, "call_recording", PHONE_1)])
        .when(Command::AssignByType {
            user: ERIN,
            license_type: type_code("phone_system"),
            addons: vec![],
            group: None,
        })
        .then_events(&[assigned(PHONE_2, "phone_system", ERIN)]);
}

#[test]
fn assign_by_type_without_a_free_addon_is_refused_and_assigns_nothing() {
    with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        attached(IP_PHONE_1, "device_ip_phone", PHONE_1),
    ])
    .when(Command::AssignByType {
        user: ERIN,
        license_type: type_code("phone_system"),
        addons: vec![type_code("device_ip_phone")],
        group: None,
    })
    .then_violations(&[violation(Rule::NoFreeLicense)
        .of_type(&type_code("device_ip_phone"))
        .counts(1, 1)]);
}

#[test]
fn assign_by_type_without_a_free_base_is_refused() {
    with(&[])
        .when(Command::AssignByType {
            user: ERIN,
            license_type: type_code("developer"),
            addons: vec![],
            group: None,
        })
        .then_violations(&[violation(Rule::NoFreeLicense)
            .of_type(&type_code("developer"))
            .counts(0, 0)]);
}

#[test]
fn assign_by_type_checks_requirements_of_the_requested_addons() {
    with(&[])
        .when(Command::AssignByType {
            user: ERIN,
            license_type: type_code("phone_system"),
            addons: vec![type_code("outbound")],
            group: None,
        })
        .then_violations(&[violation(Rule::RequiresMissing).of_type(&type_code("outbound"))]);
}

#[test]
fn assign_by_type_refuses_an_addon_type_as_the_base() {
    with(&[])
        .when(Command::AssignByType {
            user: ERIN,
            license_type: type_code("call_recording"),
            addons: vec![],
            group: None,
        })
        .then_violations(&[violation(Rule::NotABaseLicense).of_type(&type_code("call_recording"))]);
}

#[test]
fn assign_by_type_refuses_an_unknown_addon_code() {
    with(&[])
        .when(Command::AssignByType {
            user: ERIN,
            license_type: type_code("phone_system"),
            addons: vec![type_code("jetpack")],
            group: None,
        })
        .then_reject(Rejection::UnknownLicenseType(type_code("jetpack")));
}

// ---- Groups ----

#[test]
fn create_group_under_an_unknown_parent_is_not_found() {
    let rejection = with(&[])
        .when(Command::CreateGroup {
            group: group(50),
            name: "Orphans".into(),
            parent: Some(group(49)),
            contact_email: None,
        })
        .then_reject(Rejection::GroupNotFound(group(49)));
    assert_eq!(rejection.class(), RejectionClass::NotFound);
}

#[test]
fn create_group_twice_is_a_conflict() {
    with(&[])
        .when(Command::CreateGroup {
            group: SALES,
            name: "Sales again".into(),
            parent: None,
            contact_email: None,
        })
        .then_reject(Rejection::GroupAlreadyExists(SALES));
}

/// A chain of `length` groups, the first a root group.
fn chain(length: usize) -> Vec<Event> {
    (0..length)
        .map(|depth| {
            let parent = depth.checked_sub(1).map(|p| group(100 + p as u128));
            group_created(
                group(100 + depth as u128),
                &format!("Level {depth}"),
                parent,
            )
        })
        .collect()
}

#[test]
fn groups_nest_at_most_group_depth_max_deep() {
    let deepest = group(100 + GROUP_DEPTH_MAX as u128 - 1);
    let state = given(&chain(GROUP_DEPTH_MAX)).state;
    assert_eq!(state.path_to_root(deepest).len(), GROUP_DEPTH_MAX);
    given(&chain(GROUP_DEPTH_MAX))
        .when(Command::CreateGroup {
            group: group(500),
            name: "Too deep".into(),
            parent: Some(deepest),
            contact_email: None,
        })
        .then_violations(&[violation(Rule::GroupDepthExceeded).in_group(deepest)]);
    // One level up there is still room.
    given(&chain(GROUP_DEPTH_MAX - 1))
        .when(Command::CreateGroup {
            group: group(500),
            name: "Just fits".into(),
            parent: Some(group(100 + GROUP_DEPTH_MAX as u128 - 2)),
            contact_email: None,
        })
        .then_accepted();
}

#[test]
fn moving_a_subtree_deeper_than_the_limit_is_refused() {
    // SALES has height 3; under a group at depth GROUP_DEPTH_MAX - 2 it would reach MAX + 1.
    let mut facts = organisation();
    facts.extend(chain(GROUP_DEPTH_MAX - 2));
    let target = group(100 + GROUP_DEPTH_MAX as u128 - 3);
    given(&facts)
        .when(Command::UpdateGroup {
            group: SALES,
            name: None,
            parent: Some(Some(target)),
            contact_email: None,
        })
        .then_violations(&[violation(Rule::GroupDepthExceeded).in_group(target)]);
}

#[test]
fn moving_a_group_into_its_own_subtree_is_a_cycle() {
    with(&[])
        .when(Command::UpdateGroup {
            group: SALES,
            name: None,
            parent: Some(Some(PRAGUE)),
            contact_email: None,
        })
        .then_violations(&[violation(Rule::GroupCycle).in_group(PRAGUE)]);
    with(&[])
        .when(Command::UpdateGroup {
            group: SALES,
            name: None,
            parent: Some(Some(SALES)),
            contact_email: None,
        })
        .then_violations(&[violation(Rule::GroupCycle).in_group(SALES)]);
}

#[test]
fn moving_a_group_carries_its_usage_to_the_new_ancestors() {
    let state = with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        assigned(PHONE_2, "phone_system", CAROL),
    ])
    .when(Command::UpdateGroup {
        group: SALES_EU,
        name: Some("EMEA".into()),
        parent: Some(Some(SUPPORT)),
        contact_email: None,
    })
    .then_events(&[
        Event::GroupRenamed {
            group: SALES_EU,
            name: "EMEA".into(),
        },
        Event::GroupMoved {
            group: SALES_EU,
            parent: Some(SUPPORT),
        },
    ]);
    assert_eq!(used(&state, SALES), counts(&[]));
    assert_eq!(used(&state, SUPPORT), counts(&[("phone_system", 2)]));
    assert_eq!(used(&state, SALES_EU), counts(&[("phone_system", 1)]));
    assert!(state.groups[&SUPPORT].children.contains(&SALES_EU));
    assert!(!state.groups[&SALES].children.contains(&SALES_EU));
    assert_invariants(&state);
}

#[test]
fn moving_a_group_to_the_root_is_allowed() {
    let state = with(&[assigned(PHONE_1, "phone_system", ALICE)])
        .when(Command::UpdateGroup {
            group: PRAGUE,
            name: None,
            parent: Some(None),
            contact_email: None,
        })
        .then_events(&[Event::GroupMoved {
            group: PRAGUE,
            parent: None,
        }]);
    assert_eq!(used(&state, SALES), counts(&[]));
    assert_eq!(used(&state, PRAGUE), counts(&[("phone_system", 1)]));
    assert_invariants(&state);
}

#[test]
fn moving_a_group_that_brings_usage_over_a_new_ancestors_limit_is_refused() {
    with(&[
        restriction_set(SUPPORT, limits(&[("phone_system", 1)])),
        assigned(PHONE_1, "phone_system", ALICE),
        assigned(PHONE_2, "phone_system", CAROL),
    ])
    .when(Command::UpdateGroup {
        group: SALES_EU,
        name: None,
        parent: Some(Some(SUPPORT_L1)),
        contact_email: None,
    })
    .then_violations(&[violation(Rule::GroupLimitReached)
        .in_group(SUPPORT)
        .of_type(&type_code("phone_system"))
        .counts(1, 1)]);
}

#[test]
fn moving_a_group_inside_a_full_ancestor_is_allowed() {
    // SALES is full but PRAGUE stays inside it.
    with(&[
        restriction_set(SALES, limits(&[("phone_system", 1)])),
        assigned(PHONE_1, "phone_system", ALICE),
    ])
    .when(Command::UpdateGroup {
        group: PRAGUE,
        name: None,
        parent: Some(Some(SALES_US)),
        contact_email: None,
    })
    .then_accepted();
}

#[test]
fn moving_a_restricted_group_under_a_tighter_parent_is_refused() {
    with(&[
        restriction_set(SUPPORT, limits(&[("phone_system", 2)])),
        restriction_set(SALES_EU, limits(&[("phone_system", 5)])),
    ])
    .when(Command::UpdateGroup {
        group: SALES_EU,
        name: None,
        parent: Some(Some(SUPPORT)),
        contact_email: None,
    })
    .then_violations(&[violation(Rule::ChildLimitExceedsParent)
        .in_group(SALES_EU)
        .of_type(&type_code("phone_system"))
        .counts(2, 5)]);
}

// ---- Restrictions ----

#[test]
fn child_limit_above_its_parents_is_refused() {
    with(&[restriction_set(SALES, limits(&[("phone_system", 5)]))])
        .when(Command::SetRestriction {
            group: SALES_EU,
            restriction: limits(&[("phone_system", 6)]),
        })
        .then_violations(&[violation(Rule::ChildLimitExceedsParent)
            .in_group(SALES_EU)
            .of_type(&type_code("phone_system"))
            .counts(5, 6)]);
}

#[test]
fn child_limit_equal_to_its_parents_is_allowed() {
    with(&[restriction_set(SALES, limits(&[("phone_system", 5)]))])
        .when(Command::SetRestriction {
            group: SALES_EU,
            restriction: limits(&[("phone_system", 5)]),
        })
        .then_events(&[restriction_set(SALES_EU, limits(&[("phone_system", 5)]))]);
}

#[test]
fn lowering_a_parent_below_an_existing_child_limit_is_refused_naming_the_child() {
    with(&[restriction_set(PRAGUE, limits(&[("phone_system", 5)]))])
        .when(Command::SetRestriction {
            group: SALES,
            restriction: limits(&[("phone_system", 3)]),
        })
        .then_violations(&[violation(Rule::ChildLimitExceedsParent)
            .in_group(PRAGUE)
            .of_type(&type_code("phone_system"))
            .counts(3, 5)]);
}

#[test]
fn restrictions_may_be_set_child_first_then_parent() {
    let state = with(&[])
        .when(Command::SetRestriction {
            group: PRAGUE,
            restriction: limits(&[("phone_system", 2)]),
        })
        .then_accepted();
    let state = given_state(state)
        .when(Command::SetRestriction {
            group: SALES,
            restriction: limits(&[("phone_system", 10)]),
        })
        .then_accepted();
    let state = given_state(state)
        .when(Command::SetRestriction {
            group: SALES_EU,
            restriction: limits(&[("phone_system", 4)]),
        })
        .then_accepted();
    assert_eq!(
        state.groups[&SALES_EU].restriction,
        Some(limits(&[("phone_system", 4)]))
    );
}

#[test]
fn a_disabled_parent_is_skipped_and_the_grandparent_limit_applies() {
    let disabled = Restriction {
        enabled: false,
        ..limits(&[("phone_system", 100)])
    };
    with(&[
        restriction_set(SALES, limits(&[("phone_system", 5)])),
        restriction_set(SALES_EU, disabled),
    ])
    .when(Command::SetRestriction {
        group: PRAGUE,
        restriction: limits(&[("phone_system", 10)]),
    })
    .then_violations(&[violation(Rule::ChildLimitExceedsParent)
        .in_group(PRAGUE)
        .of_type(&type_code("phone_system"))
        .counts(5, 10)]);
}

// Regression: only the nearest enabled ancestor was compared, so a parent that limits other
// types hid the grandparent's limit of this type.
#[test]
fn child_limit_is_checked_against_the_nearest_ancestor_limiting_that_type() {
    with(&[
        restriction_set(SALES, limits(&[("phone_system", 5)])),
        restriction_set(SALES_EU, limits(&[("cc_agent", 3)])),
    ])
    .when(Command::SetRestriction {
        group: PRAGUE,
        restriction: limits(&[("phone_system", 10)]),
    })
    .then_violations(&[violation(Rule::ChildLimitExceedsParent)
        .in_group(PRAGUE)
        .of_type(&type_code("phone_system"))
        .counts(5, 10)]);
    with(&[
        restriction_set(SALES_EU, limits(&[("cc_agent", 3)])),
        restriction_set(PRAGUE, limits(&[("phone_system", 5)])),
    ])
    .when(Command::SetRestriction {
        group: SALES,
        restriction: limits(&[("phone_system", 4)]),
    })
    .then_violations(&[violation(Rule::ChildLimitExceedsParent)
        .in_group(PRAGUE)
        .of_type(&type_code("phone_system"))
        .counts(4, 5)]);
}

#[test]
fn child_window_outside_its_parents_is_refused() {
    let parent = window(at(2024, 1, 1), at(2024, 12, 31));
    with(&[restriction_set(SALES, parent.clone())])
        .when(Command::SetRestriction {
            group: SALES_EU,
            restriction: window(at(2024, 2, 1), at(2025, 1, 31)),
        })
        .then_violations(&[violation(Rule::WindowOutsideParent).in_group(SALES_EU)]);
    with(&[restriction_set(SALES, parent.clone())])
        .when(Command::SetRestriction {
            group: SALES_EU,
            restriction: window(at(2023, 12, 1), at(2024, 6, 30)),
        })
        .then_violations(&[violation(Rule::WindowOutsideParent).in_group(SALES_EU)]);
    with(&[restriction_set(SALES, parent)])
        .when(Command::SetRestriction {
            group: SALES_EU,
            restriction: window(at(2024, 2, 1), at(2024, 6, 30)),
        })
        .then_accepted();
}

#[test]
fn narrowing_a_parent_window_around_a_child_window_is_refused_naming_the_child() {
    with(&[restriction_set(
        PRAGUE,
        window(at(2024, 1, 1), at(2024, 12, 31)),
    )])
    .when(Command::SetRestriction {
        group: SALES,
        restriction: window(at(2024, 1, 1), at(2024, 6, 30)),
    })
    .then_violations(&[violation(Rule::WindowOutsideParent).in_group(PRAGUE)]);
}

#[test]
fn reversed_window_is_refused() {
    with(&[])
        .when(Command::SetRestriction {
            group: SALES,
            restriction: window(at(2024, 6, 1), at(2024, 1, 1)),
        })
        .then_violations(&[violation(Rule::WindowReversed).in_group(SALES)]);
    with(&[])
        .when(Command::SetRestriction {
            group: SALES,
            restriction: window(at(2024, 6, 1), at(2024, 6, 1)),
        })
        .then_violations(&[violation(Rule::WindowReversed).in_group(SALES)]);
}

#[test]
fn sip_number_limit_below_mobile_app_limit_is_refused() {
    with(&[])
        .when(Command::SetRestriction {
            group: SUPPORT,
            restriction: limits(&[("sip_number", 1), ("mobile_app", 2)]),
        })
        .then_violations(&[violation(Rule::SipNumberBelowMobileApp)
            .in_group(SUPPORT)
            .of_type(&type_code("sip_number"))
            .counts(2, 1)]);
    with(&[])
        .when(Command::SetRestriction {
            group: SUPPORT,
            restriction: limits(&[("sip_number", 2), ("mobile_app", 2)]),
        })
        .then_accepted();
}

#[test]
fn a_child_mobile_app_limit_above_the_sip_number_limit_it_inherits_is_refused() {
    // SALES_EU's sip_number limit is SALES's 2; its own mobile_app 3 would exceed it.
    with(&[restriction_set(SALES, limits(&[("sip_number", 2)]))])
        .when(Command::SetRestriction {
            group: SALES_EU,
            restriction: limits(&[("mobile_app", 3)]),
        })
        .then_violations(&[violation(Rule::SipNumberBelowMobileApp)
            .in_group(SALES_EU)
            .of_type(&type_code("sip_number"))
            .counts(3, 2)]);
    with(&[restriction_set(SALES, limits(&[("sip_number", 2)]))])
        .when(Command::SetRestriction {
            group: SALES_EU,
            restriction: limits(&[("mobile_app", 2)]),
        })
        .then_accepted();
}

#[test]
fn a_parent_lowering_sip_number_below_a_childs_mobile_app_limit_is_refused_naming_the_child() {
    with(&[
        restriction_set(SALES, limits(&[("sip_number", 5), ("mobile_app", 5)])),
        restriction_set(SALES_EU, limits(&[("mobile_app", 4)])),
    ])
    .when(Command::SetRestriction {
        group: SALES,
        restriction: limits(&[("sip_number", 3), ("mobile_app", 3)]),
    })
    .then_violations(&[
        violation(Rule::SipNumberBelowMobileApp)
            .in_group(SALES_EU)
            .of_type(&type_code("sip_number"))
            .counts(4, 3),
        violation(Rule::ChildLimitExceedsParent)
            .in_group(SALES_EU)
            .of_type(&type_code("mobile_app"))
            .counts(3, 4),
    ]);
}

#[test]
fn a_child_sip_number_limit_below_the_mobile_app_limit_it_inherits_is_refused() {
    with(&[restriction_set(
        SALES,
        limits(&[("mobile_app", 4), ("sip_number", 9)]),
    )])
    .when(Command::SetRestriction {
        group: SALES_EU,
        restriction: limits(&[("sip_number", 3)]),
    })
    .then_violations(&[violation(Rule::SipNumberBelowMobileApp)
        .in_group(SALES_EU)
        .of_type(&type_code("sip_number"))
        .counts(4, 3)]);
}

#[test]
fn limit_below_current_usage_is_refused() {
    with(&[assigned(PHONE_1, "phone_system", ALICE)])
        .when(Command::SetRestriction {
            group: SALES_EU,
            restriction: limits(&[("phone_system", 0)]),
        })
        .then_violations(&[violation(Rule::LimitBelowUsage)
            .in_group(SALES_EU)
            .of_type(&type_code("phone_system"))
            .counts(0, 1)]);
    with(&[assigned(PHONE_1, "phone_system", ALICE)])
        .when(Command::SetRestriction {
            group: SALES_EU,
            restriction: limits(&[("phone_system", 1)]),
        })
        .then_accepted();
}

#[test]
fn one_edit_breaking_several_rules_lists_every_violation() {
    let story = with(&[
        restriction_set(
            SALES,
            Restriction {
                valid_from: Some(at(2024, 1, 1)),
                valid_until: Some(at(2024, 12, 31)),
                ..limits(&[("cc_agent", 2)])
            },
        ),
        assigned(PHONE_1, "phone_system", ALICE),
    ]);
    let edit = Restriction {
        valid_from: Some(at(2025, 6, 1)),
        valid_until: Some(at(2025, 1, 1)),
        ..limits(&[
            ("phone_system", 0),
            ("cc_agent", 5),
            ("sip_number", 1),
            ("mobile_app", 2),
        ])
    };
    let before = story.state.clone();
    let outcome = story.when(Command::SetRestriction {
        group: PRAGUE,
        restriction: edit,
    });
    outcome.then_violations(&[
        violation(Rule::WindowReversed).in_group(PRAGUE),
        violation(Rule::WindowOutsideParent).in_group(PRAGUE),
        violation(Rule::SipNumberBelowMobileApp)
            .in_group(PRAGUE)
            .of_type(&type_code("sip_number"))
            .counts(2, 1),
        violation(Rule::LimitBelowUsage)
            .in_group(PRAGUE)
            .of_type(&type_code("phone_system"))
            .counts(0, 1),
        violation(Rule::ChildLimitExceedsParent)
            .in_group(PRAGUE)
            .of_type(&type_code("cc_agent"))
            .counts(2, 5),
    ]);
    // Nothing is stored: the judged state is untouched by a rejection.
    assert_eq!(before.groups[&PRAGUE].restriction, None);
}

#[test]
fn a_disabled_restriction_skips_limit_rules() {
    let disabled = Restriction {
        enabled: false,
        ..limits(&[("phone_system", 0), ("sip_number", 1), ("mobile_app", 2)])
    };
    with(&[assigned(PHONE_1, "phone_system", ALICE)])
        .when(Command::SetRestriction {
            group: SALES,
            restriction: disabled.clone(),
        })
        .then_events(&[restriction_set(SALES, disabled)]);
}

#[test]
fn restriction_windows_are_kept_at_the_microseconds_the_log_stores() {
    let nanos = chrono::Duration::nanoseconds;
    let micros = chrono::Duration::microseconds;
    with(&[])
        .when(Command::SetRestriction {
            group: SALES,
            restriction: window(at(2024, 1, 1) + nanos(1_999), at(2024, 2, 1) + nanos(999)),
        })
        .then_events(&[restriction_set(
            SALES,
            window(at(2024, 1, 1) + micros(1), at(2024, 2, 1)),
        )]);
}

#[test]
fn restriction_with_an_unknown_type_is_refused() {
    with(&[])
        .when(Command::SetRestriction {
            group: SALES,
            restriction: limits(&[("gold_plan", 1)]),
        })
        .then_reject(Rejection::UnknownLicenseType(type_code("gold_plan")));
}

#[test]
fn restriction_on_an_unknown_group_is_not_found() {
    with(&[])
        .when(Command::SetRestriction {
            group: group(77),
            restriction: limits(&[]),
        })
        .then_reject(Rejection::GroupNotFound(group(77)));
}

#[test]
fn clearing_a_restriction_makes_the_group_unlimited() {
    let state = with(&[restriction_set(SALES, limits(&[("phone_system", 0)]))])
        .when(Command::ClearRestriction { group: SALES })
        .then_events(&[Event::RestrictionCleared { group: SALES }]);
    given_state(state)
        .when(Command::AssignLicense {
            license: PHONE_1,
            user: ALICE,
            group: None,
        })
        .then_accepted();
}

// ---- Users ----

fn new_user(id: UserId, in_group: GroupId, extension: Option<&str>) -> NewUser {
    NewUser {
        user: id,
        name: format!("user {id}"),
        group: in_group,
        extension: extension.map(str::to_string),
        number: None,
    }
}

#[test]
fn create_user_records_it_with_its_extension() {
    let state = with(&[])
        .when(Command::CreateUser(new_user(
            user(10),
            SUPPORT,
            Some("301"),
        )))
        .then_events(&[user_created(user(10), SUPPORT, Some("301"))]);
    assert_eq!(state.extensions["301"], user(10));
}

#[test]
fn create_user_with_a_taken_extension_is_a_conflict_naming_the_holder() {
    let rejection = with(&[])
        .when(Command::CreateUser(new_user(
            user(10),
            SUPPORT,
            Some("101"),
        )))
        .then_reject(Rejection::ExtensionTaken {
            extension: "101".into(),
            user: Some(ALICE),
        });
    assert_eq!(rejection.class(), RejectionClass::Conflict);
}

#[test]
fn the_extension_of_a_removed_user_can_be_reused() {
    with(&[user_removed(ALICE)])
        .when(Command::CreateUser(new_user(
            user(10),
            SUPPORT,
            Some("101"),
        )))
        .then_accepted();
}

#[test]
fn create_user_in_an_unknown_group_is_not_found() {
    with(&[])
        .when(Command::CreateUser(new_user(user(10), group(77), None)))
        .then_reject(Rejection::GroupNotFound(group(77)));
}

#[test]
fn create_user_twice_is_a_conflict() {
    with(&[])
        .when(Command::CreateUser(new_user(ALICE, SUPPORT, None)))
        .then_reject(Rejection::UserAlreadyExists(ALICE));
}

#[test]
fn batch_creates_every_user_at_once() {
    let state = with(&[])
        .when(Command::CreateUsers(vec![
            new_user(user(10), SUPPORT, Some("301")),
            new_user(user(11), SUPPORT_L1, Some("302")),
        ]))
        .then_events(&[
            user_created(user(10), SUPPORT, Some("301")),
            user_created(user(11), SUPPORT_L1, Some("302")),
        ]);
    assert_eq!(state.users.len(), 7);
}

#[test]
fn batch_with_an_in_batch_duplicate_extension_lists_the_index() {
    let rejection = with(&[])
        .when(Command::CreateUsers(vec![
            new_user(user(10), SUPPORT, Some("301")),
            new_user(user(11), group(77), Some("302")),
            new_user(user(12), SUPPORT, Some("301")),
            new_user(user(13), SUPPORT, Some("102")),
        ]))
        .then_reject(Rejection::BatchRejected(vec![
            (1, Rejection::GroupNotFound(group(77))),
            (
                2,
                Rejection::ExtensionTaken {
                    extension: "301".into(),
                    user: Some(user(10)),
                },
            ),
            (
                3,
                Rejection::ExtensionTaken {
                    extension: "102".into(),
                    user: Some(BOB),
                },
            ),
        ]));
    assert_eq!(rejection.class(), RejectionClass::NotFound);
}

#[test]
fn batch_with_a_duplicate_user_id_is_refused() {
    with(&[])
        .when(Command::CreateUsers(vec![
            new_user(user(10), SUPPORT, None),
            new_user(user(10), SUPPORT, None),
        ]))
        .then_reject(Rejection::BatchRejected(vec![(
            1,
            Rejection::UserAlreadyExists(user(10)),
        )]));
}

#[test]
fn empty_batch_is_invalid_input() {
    with(&[])
        .when(Command::CreateUsers(vec![]))
        .then_invalid_input("batch");
}

#[test]
fn delete_user_holding_licences_is_refused_listing_them() {
    let rejection = with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        assigned(VOICE_1, "voice", ALICE),
    ])
    .when(Command::DeleteUser { user: ALICE })
    .then_reject(Rejection::UserHoldsLicenses {
        user: ALICE,
        licenses: vec![PHONE_1, VOICE_1],
    });
    assert_eq!(rejection.class(), RejectionClass::Conflict);
}

#[test]
fn delete_user_without_licences_removes_them_and_frees_the_extension() {
    let state = with(&[])
        .when(Command::DeleteUser { user: ALICE })
        .then_events(&[user_removed(ALICE)]);
    assert!(state.users[&ALICE].removed);
    assert!(!state.extensions.contains_key("101"));
    given_state(state)
        .when(Command::DeleteUser { user: ALICE })
        .then_reject(Rejection::UserNotFound(ALICE));
}

#[test]
fn moving_a_user_carries_their_licences_to_the_new_group() {
    let state = with(&[
        assigned(PHONE_1, "phone_system", ALICE),
        attached(RECORDING_1, "call_recording", PHONE_1),
    ])
    .when(Command::UpdateUser {
        user: ALICE,
        name: None,
        group: Some(SUPPORT_L1),
        extension: None,
        number: None,
    })
    .then_events(&[Event::UserMoved {
        user: ALICE,
        group: SUPPORT_L1,
    }]);
    let both = counts(&[("call_recording", 1), ("phone_system", 1)]);
    assert_eq!(used(&state, SALES), counts(&[]));
    assert_eq!(used(&state, SUPPORT_L1), both);
    assert_eq!(used(&state, SUPPORT), both);
    assert_invariants(&state);
}

#[test]
fn moving_a_user_to_a_group_whose_limit_would_break_is_refused() {
    with(&[
        restriction_set(SUPPORT, limits(&[("call_recording", 1)])),
        assigned(PHONE_1, "phone_system", ALICE),
        attached(RECORDING_1, "call_recording", PHONE_1),
        assigned(PHONE_2, "phone_system", CAROL),
        attached(RECORDING_2, "call_recording", PHONE_2),
    ])
    .when(Command::UpdateUser {
        user: ALICE,
        name: None,
        group: Some(SUPPORT),
        extension: None,
        number: None,
    })
    .then_violations(&[violation(Rule::GroupLimitReached)
        .in_group(SUPPORT)
        .of_type(&type_code("call_recording"))
        .counts(1, 1)]);
}

#[test]
fn moving_a_user_within_a_full_ancestor_is_allowed() {
    with(&[
        restriction_set(SALES, limits(&[("phone_system", 1)])),
        assigned(PHONE_1, "phone_system", ALICE),
    ])
    .when(Command::UpdateUser {
        user: ALICE,
        name: Some("Alice Novak".into()),
        group: Some(SALES_US),
        extension: None,
        number: None,
    })
    .then_events(&[
        Event::UserRenamed {
            user: ALICE,
            name: "Alice Novak".into(),
        },
        Event::UserMoved {
            user: ALICE,
            group: SALES_US,
        },
    ]);
}

#[test]
fn a_users_extension_and_number_change_and_the_old_extension_is_free_again() {
    let state = with(&[])
        .when(Command::UpdateUser {
            user: ALICE,
            name: None,
            group: None,
            extension: Some(Some("111".into())),
            number: Some(Some("+420601000111".into())),
        })
        .then_events(&[Event::UserNumbersSet {
            user: ALICE,
            extension: Some("111".into()),
            number: Some("+420601000111".into()),
        }]);
    assert_eq!(state.extensions.get("111"), Some(&ALICE));
    assert!(!state.extensions.contains_key("101"));
    let alice = &state.users[&ALICE];
    assert_eq!(alice.number.as_deref(), Some("+420601000111"));
}

#[test]
fn a_null_extension_clears_it_and_leaves_the_number() {
    let state = with(&[Event::UserNumbersSet {
        user: ALICE,
        extension: Some("101".into()),
        number: Some("+420601000101".into()),
    }])
    .when(Command::UpdateUser {
        user: ALICE,
        name: None,
        group: None,
        extension: Some(None),
        number: None,
    })
    .then_events(&[Event::UserNumbersSet {
        user: ALICE,
        extension: None,
        number: Some("+420601000101".into()),
    }]);
    assert!(!state.extensions.contains_key("101"));
}

#[test]
fn changing_an_extension_to_another_users_is_a_conflict_naming_the_holder() {
    with(&[])
        .when(Command::UpdateUser {
            user: ALICE,
            name: Some("Alice Novak".into()),
            group: None,
            extension: Some(Some("102".into())),
            number: None,
        })
        .then_reject(Rejection::ExtensionTaken {
            extension: "102".into(),
            user: Some(BOB),
        });
}

#[test]
fn setting_the_extension_a_user_already_has_appends_nothing() {
    with(&[])
        .when(Command::UpdateUser {
            user: ALICE,
            name: None,
            group: None,
            extension: Some(Some("101".into())),
            number: None,
        })
        .then_events(&[]);
}

// ---- Retention ----

#[test]
fn retention_of_14_days_is_accepted() {
    let state = with(&[])
        .when(Command::SetRetention(Retention::Days(14)))
        .then_events(&[Event::RetentionSet {
            retention: Retention::Days(14),
        }]);
    assert_eq!(state.retention.units_per_license(), 0);
}

#[test]
fn retention_of_9_months_is_accepted_and_counts_three_units() {
    let state = with(&[])
        .when(Command::SetRetention(Retention::Months(9)))
        .then_events(&[Event::RetentionSet {
            retention: Retention::Months(9),
        }]);
    assert_eq!(state.retention.units_per_license(), 3);
}

#[test]
fn retention_outside_14_days_or_whole_quarters_is_invalid_input() {
    for retention in [
        Retention::Months(4),
        Retention::Months(0),
        Retention::Months(1),
        Retention::Months(123),
    ] {
        with(&[])
            .when(Command::SetRetention(retention))
            .then_invalid_input("multiple of 3");
    }
    for retention in [Retention::Days(0), Retention::Days(15), Retention::Days(90)] {
        with(&[])
            .when(Command::SetRetention(retention))
            .then_invalid_input("retention in days");
    }
}

// ---- Prices ----

fn price(unit_price_minor: i64, currency: &str) -> Command {
    Command::SetPrice {
        license_type: type_code("phone_system"),
        unit_price_minor,
        currency: currency.into(),
        effective_from: at(2024, 1, 1),
    }
}

#[test]
fn price_in_the_tenants_currency_is_recorded() {
    let state = with(&[])
        .when(price(1500, "EUR"))
        .then_events(&[Event::PriceSet {
            license_type: type_code("phone_system"),
            unit_price_minor: 1500,
            currency: "EUR".into(),
            effective_from: at(2024, 1, 1),
        }]);
    assert_eq!(
        state.prices[&type_code("phone_system")][0].unit_price_minor,
        1500
    );
}

// Regression: sub-microsecond instants were stored live but read back from disk truncated.
#[test]
fn price_instants_are_kept_at_the_microseconds_the_log_stores() {
    let precise = at(2024, 1, 1) + chrono::Duration::nanoseconds(1_234_567);
    with(&[])
        .when(Command::SetPrice {
            license_type: type_code("phone_system"),
            unit_price_minor: 1500,
            currency: "EUR".into(),
            effective_from: precise,
        })
        .then_events(&[Event::PriceSet {
            license_type: type_code("phone_system"),
            unit_price_minor: 1500,
            currency: "EUR".into(),
            effective_from: at(2024, 1, 1) + chrono::Duration::microseconds(1_234),
        }]);
}

#[test]
fn price_in_another_currency_is_refused() {
    with(&[])
        .when(price(1500, "USD"))
        .then_rule(Rule::CurrencyMismatch);
}

#[test]
fn negative_price_is_invalid_input() {
    with(&[])
        .when(price(-1, "EUR"))
        .then_invalid_input("negative");
}

#[test]
fn price_of_an_unknown_type_is_refused() {
    with(&[])
        .when(Command::SetPrice {
            license_type: type_code("gold_plan"),
            unit_price_minor: 1,
            currency: "EUR".into(),
            effective_from: at(2024, 1, 1),
        })
        .then_reject(Rejection::UnknownLicenseType(type_code("gold_plan")));
}

// ---- API keys ----

const KEY: KeyId = KeyId(Uuid::from_u128(0x4000_0001));

fn issue_key() -> Command {
    Command::IssueKey {
        key: KEY,
        name: "ci".into(),
        role: Role::Operator,
        token_hash: [7; 32],
        group: None,
    }
}

fn key_issued() -> Event {
    Event::ApiKeyIssued {
        key: KEY,
        name: "ci".into(),
        role: Role::Operator,
        token_hash: [7; 32],
    }
}

#[test]
fn issue_key_records_its_hash_and_role() {
    let state = with(&[]).when(issue_key()).then_events(&[key_issued()]);
    assert_eq!(state.keys[&KEY].role, Role::Operator);
    assert!(!state.keys[&KEY].revoked);
}

#[test]
fn issue_the_same_key_twice_is_a_conflict() {
    with(&[key_issued()])
        .when(issue_key())
        .then_reject(Rejection::KeyAlreadyExists(KEY));
}

#[test]
fn revoke_key_then_revoke_again_is_refused() {
    let state = with(&[key_issued()])
        .when(Command::RevokeKey { key: KEY })
        .then_events(&[Event::ApiKeyRevoked { key: KEY }]);
    assert!(state.keys[&KEY].revoked);
    given_state(state)
        .when(Command::RevokeKey { key: KEY })
        .then_reject(Rejection::KeyAlreadyRevoked(KEY));
}

#[test]
fn revoke_an_unknown_key_is_not_found() {
    with(&[])
        .when(Command::RevokeKey { key: KEY })
        .then_reject(Rejection::KeyNotFound(KEY));
}

// ---- Per-tenant totals ----

/// Every per-tenant total with its bound.
const TENANT_TOTALS: [(TenantTotal, usize); 4] = [
    (TenantTotal::Users, USERS_PER_TENANT_MAX),
    (TenantTotal::Groups, GROUPS_PER_TENANT_MAX),
    (TenantTotal::Keys, KEYS_PER_TENANT_MAX),
    (TenantTotal::Licenses, LICENSES_PER_TENANT_MAX),
];

#[test]
fn each_tenant_total_reaches_its_bound_and_refuses_one_more() {
    for (total, max) in TENANT_TOTALS {
        assert_eq!(total.max(), max);
        assert_eq!(check_tenant_total(total, max - 1, 1), Ok(()), "{total:?}");
        assert_eq!(check_tenant_total(total, max - 10, 10), Ok(()), "{total:?}");
        let refused = check_tenant_total(total, max, 1).expect_err("one past the bound");
        assert_eq!(refused.rule, Rule::TenantLimitReached, "{total:?}");
        assert_eq!(
            (refused.limit, refused.used),
            (Some(max as u64), Some(max as u64))
        );
        assert!(refused.message.contains(&max.to_string()), "{refused:?}");
        let batch = check_tenant_total(total, max - 10, 11).expect_err("a batch past the bound");
        assert_eq!(batch.used, Some(max as u64 - 10), "{total:?}");
    }
}

fn key_numbered(n: usize) -> Event {
    Event::ApiKeyIssued {
        key: KeyId(Uuid::from_u128(0x4100_0000 + n as u128)),
        name: format!("key {n}"),
        role: Role::Viewer,
        token_hash: [1; 32],
    }
}

fn one_more_key() -> Command {
    Command::IssueKey {
        key: KeyId(Uuid::from_u128(0x4200_0001)),
        name: "one more".into(),
        role: Role::Viewer,
        token_hash: [2; 32],
        group: None,
    }
}

#[test]
fn issue_key_refuses_one_past_the_live_keys_bound_and_revoking_one_makes_room() {
    let keys: Vec<Event> = (0..KEYS_PER_TENANT_MAX - 1).map(key_numbered).collect();
    let at_bound = with(&keys).when(issue_key()).then_accepted();
    let refused = given_state(at_bound.clone())
        .when(one_more_key())
        .then_violations(&[violation(Rule::TenantLimitReached)
            .counts(KEYS_PER_TENANT_MAX as u64, KEYS_PER_TENANT_MAX as u64)]);
    assert!(refused[0].message.contains("live keys"), "{refused:?}");
    let revoked = given_state(at_bound)
        .when(Command::RevokeKey { key: KEY })
        .then_accepted();
    given_state(revoked).when(one_more_key()).then_accepted();
}

#[test]
fn create_group_refuses_one_past_the_groups_bound() {
    let mut state = with(&[]).state;
    let groups: Vec<Event> = (state.groups.len()..GROUPS_PER_TENANT_MAX - 1)
        .map(|n| group_created(group(0x10_0000 + n as u128), "branch", None))
        .collect();
    fold(&mut state, &groups);
    let create = |n: u128| Command::CreateGroup {
        group: group(0x20_0000 + n),
        name: "one more".into(),
        parent: None,
        contact_email: None,
    };
    let at_bound = given_state(state).when(create(1)).then_accepted();
    assert_eq!(at_bound.groups.len(), GROUPS_PER_TENANT_MAX);
    given_state(at_bound)
        .when(create(2))
        .then_violations(&[violation(Rule::TenantLimitReached)
            .counts(GROUPS_PER_TENANT_MAX as u64, GROUPS_PER_TENANT_MAX as u64)]);
}
