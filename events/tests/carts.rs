//! Carts (issue 17 item 4): changes stored with the price they were previewed with, then
//! confirmed together — all in one batch or none — only while the tenant is still at the
//! version they were stored at.

mod support;

use events::{CartId, Command, Event, Rejection, Tenant};
use support::*;
use uuid::Uuid;

const CART: CartId = CartId(Uuid::from_u128(0xca47));

fn provision(quantity: u32) -> Command {
    Command::ProvisionLicenses {
        license_type: "phone_system".into(),
        quantity,
    }
}

/// The tenant with a cart stored at its current version.
fn with_cart() -> Tenant {
    let state = given(&[]).state;
    let version = state.version;
    given_state(state)
        .when(Command::CreateCart {
            cart: CART,
            commands: r#"[{"op":"provision","type":"phone_system","quantity":2}]"#.into(),
            version,
            amount_minor_delta: 3000,
        })
        .then_accepted()
}

#[test]
fn a_cart_is_stored_with_the_version_and_price_it_was_previewed_at() {
    let state = with_cart();
    let cart = &state.carts[&CART];
    assert_eq!(cart.version, state.version);
    assert_eq!(cart.previewed_version, state.version - 1);
    assert_eq!(cart.amount_minor_delta, 3000);
    assert_eq!(cart.confirmed_version, None);
}

#[test]
fn a_cart_previewed_at_an_older_version_is_not_stored() {
    let state = given(&[group_created(group(1), "HQ", None)]).state;
    given_state(state.clone())
        .when(Command::CreateCart {
            cart: CART,
            commands: "[]".into(),
            version: state.version - 1,
            amount_minor_delta: 0,
        })
        .then_reject(Rejection::CartStale {
            cart: CART,
            previewed: state.version - 1,
            current: state.version,
        });
}

#[test]
fn confirming_applies_every_command_in_one_batch_with_the_confirmation_last() {
    let state = with_cart();
    let before = state.version;
    let outcome = given_state(state).when(Command::ConfirmCart {
        cart: CART,
        commands: vec![provision(2), provision(3)],
    });
    let events = outcome.accepted_events();
    assert_eq!(events.len(), 3);
    let ids: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::LicensesProvisioned { ids, .. } => Some(ids.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        5,
        "two provisions of one cart draw distinct ids"
    );
    assert_eq!(
        events.last(),
        Some(&Event::CartConfirmed {
            cart: CART,
            amount_minor_delta: 3000
        })
    );
    let after = outcome.then_accepted();
    assert_eq!(after.owned[&"phone_system".into()], 5);
    assert_eq!(after.carts[&CART].confirmed_version, Some(before + 3));
}

#[test]
fn a_refused_command_refuses_the_whole_cart_naming_its_index() {
    let state = with_cart();
    let rejection = given_state(state)
        .when(Command::ConfirmCart {
            cart: CART,
            commands: vec![
                provision(2),
                Command::TerminateLicense {
                    license: license(404),
                },
            ],
        })
        .rejection();
    assert_eq!(
        rejection,
        Rejection::BatchRejected(vec![(1, Rejection::LicenseNotFound(license(404)))])
    );
}

#[test]
fn a_cart_is_confirmed_only_at_the_version_it_was_stored_at_and_only_once() {
    let state = with_cart();
    let mut moved = state.clone();
    fold(&mut moved, &[group_created(group(1), "HQ", None)]);
    given_state(moved.clone())
        .when(Command::ConfirmCart {
            cart: CART,
            commands: vec![provision(2)],
        })
        .then_reject(Rejection::CartStale {
            cart: CART,
            previewed: state.version,
            current: moved.version,
        });
    let confirmed = given_state(state)
        .when(Command::ConfirmCart {
            cart: CART,
            commands: vec![provision(2)],
        })
        .then_accepted();
    let version = confirmed.carts[&CART].confirmed_version.expect("confirmed");
    given_state(confirmed)
        .when(Command::ConfirmCart {
            cart: CART,
            commands: vec![provision(2)],
        })
        .then_reject(Rejection::CartAlreadyConfirmed {
            cart: CART,
            version,
        });
    given(&[])
        .when(Command::ConfirmCart {
            cart: CART,
            commands: vec![],
        })
        .then_reject(Rejection::CartNotFound(CART));
}

#[test]
fn a_dealer_confirms_only_what_its_key_could_do() {
    let rejection = given_state(with_cart())
        .when_scoped(
            group(1),
            Command::ConfirmCart {
                cart: CART,
                commands: vec![provision(2)],
            },
        )
        .rejection();
    assert!(
        matches!(&rejection, Rejection::BatchRejected(items)
            if matches!(items.as_slice(), [(0, Rejection::OutsideScope(_))])),
        "{rejection:?}"
    );
}
