//! Carts: several changes previewed together with their price, stored, then confirmed
//! together — all applied in one batch, or none — if the tenant has not changed since.

use super::common::invalid;
use super::{decide, scope, CART_COMMANDS_BYTES_MAX};
use crate::command::{Command, Context};
use crate::event::Event;
use crate::ids::{CartId, CommandId, GroupId};
use crate::rejection::Rejection;
use crate::state::{evolve, Tenant};

pub(super) fn create_cart(
    state: &Tenant,
    cart: CartId,
    commands: &str,
    version: u64,
    amount_minor_delta: i64,
) -> Result<Vec<Event>, Rejection> {
    if state.carts.contains_key(&cart) {
        return Err(Rejection::CartAlreadyExists(cart));
    }
    if commands.is_empty() || commands.len() > CART_COMMANDS_BYTES_MAX {
        return Err(invalid(format!(
            "a cart's commands take 1 to {CART_COMMANDS_BYTES_MAX} bytes"
        )));
    }
    if version != state.version {
        return Err(Rejection::CartStale {
            cart,
            previewed: version,
            current: state.version,
        });
    }
    Ok(vec![Event::CartCreated {
        cart,
        commands: commands.to_string(),
        previewed_version: version,
        amount_minor_delta,
    }])
}

/// The id a cart's `index`-th command decides with: new licence ids derive from it, so two
/// provisioning commands of one cart never draw the same ids.
fn nested_command_id(ctx: &Context, index: usize) -> CommandId {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"cart");
    hasher.update(ctx.command_id.as_uuid().as_bytes());
    hasher.update(&(index as u64).to_le_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    CommandId(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// Decide every command of the cart in order, each against the state the ones before it
/// leave (judged as `scope`'s writes would be), and close with `CartConfirmed`. The first
/// refusal refuses the whole cart, naming its index; nothing is applied.
pub(super) fn confirm_cart(
    state: &Tenant,
    cart: CartId,
    commands: &[Command],
    ctx: &Context,
    scope: Option<GroupId>,
) -> Result<Vec<Event>, Rejection> {
    let Some(stored) = state.carts.get(&cart) else {
        return Err(Rejection::CartNotFound(cart));
    };
    if let Some(version) = stored.confirmed_version {
        return Err(Rejection::CartAlreadyConfirmed { cart, version });
    }
    if state.version != stored.version {
        return Err(Rejection::CartStale {
            cart,
            previewed: stored.version,
            current: state.version,
        });
    }
    let mut scratch = state.clone();
    let mut events = Vec::new();
    for (index, command) in commands.iter().enumerate() {
        if matches!(
            command,
            Command::ConfirmCart { .. } | Command::CreateCart { .. }
        ) {
            return Err(Rejection::BatchRejected(vec![(
                index,
                invalid("a cart cannot hold carts"),
            )]));
        }
        let nested = Context {
            now: ctx.now,
            command_id: nested_command_id(ctx, index),
        };
        let decided = match scope {
            Some(group) => scope::check(&scratch, group, command)
                .and_then(|()| decide(&scratch, command, &nested)),
            None => decide(&scratch, command, &nested),
        };
        let produced = decided.map_err(|e| Rejection::BatchRejected(vec![(index, e)]))?;
        for event in &produced {
            let version = scratch.version + 1;
            evolve(&mut scratch, event, version);
        }
        events.extend(produced);
    }
    events.push(Event::CartConfirmed {
        cart,
        amount_minor_delta: stored.amount_minor_delta,
    });
    Ok(events)
}
