//! User rules: creating users (one or a batch), renaming and moving them, and removing them.

use super::common::{
    active_user, check_name, check_number, group_exists, invalid, one, violations,
};
use super::licenses::limit_violations;
use super::tenant::{check_tenant_total, TenantTotal};
use super::USERS_PER_BATCH_MAX;
use crate::command::NewUser;
use crate::event::Event;
use crate::ids::{GroupId, UserId};
use crate::rejection::Rejection;
use crate::state::Tenant;
use std::collections::{BTreeMap, BTreeSet};

/// One user, refused with its own rejection rather than as a batch of one.
pub(super) fn create_user(state: &Tenant, user: &NewUser) -> Result<Vec<Event>, Rejection> {
    create_users(state, std::slice::from_ref(user)).map_err(|mut e| match &mut e {
        Rejection::BatchRejected(items) if items.len() == 1 => items.remove(0).1,
        _ => e,
    })
}

pub(super) fn create_users(state: &Tenant, users: &[NewUser]) -> Result<Vec<Event>, Rejection> {
    if users.is_empty() || users.len() > USERS_PER_BATCH_MAX {
        return Err(invalid(format!(
            "a batch holds 1 to {USERS_PER_BATCH_MAX} users"
        )));
    }
    let mut errors = Vec::new();
    let mut ids = BTreeSet::new();
    let mut extensions: BTreeMap<&str, UserId> = BTreeMap::new();
    for (index, u) in users.iter().enumerate() {
        if let Err(e) = check_new_user(state, u, &ids, &extensions) {
            errors.push((index, e));
        }
        ids.insert(u.user);
        if let Some(ext) = &u.extension {
            extensions.entry(ext).or_insert(u.user);
        }
    }
    if !errors.is_empty() {
        return Err(Rejection::BatchRejected(errors));
    }
    check_tenant_total(TenantTotal::Users, state.users.len(), users.len()).map_err(one)?;
    Ok(users
        .iter()
        .map(|u| Event::UserCreated {
            user: u.user,
            name: u.name.clone(),
            group: u.group,
            extension: u.extension.clone(),
            number: u.number.clone(),
        })
        .collect())
}

fn check_new_user(
    state: &Tenant,
    u: &NewUser,
    batch_ids: &BTreeSet<UserId>,
    batch_extensions: &BTreeMap<&str, UserId>,
) -> Result<(), Rejection> {
    check_name(&u.name)?;
    check_number("extension", &u.extension)?;
    check_number("number", &u.number)?;
    if state.users.contains_key(&u.user) || batch_ids.contains(&u.user) {
        return Err(Rejection::UserAlreadyExists(u.user));
    }
    group_exists(state, u.group)?;
    if let Some(ext) = &u.extension {
        let holder = state
            .extensions
            .get(ext)
            .or_else(|| batch_extensions.get(ext.as_str()));
        if let Some(holder) = holder {
            return Err(Rejection::ExtensionTaken {
                extension: ext.clone(),
                user: *holder,
            });
        }
    }
    Ok(())
}

/// What an update changes; `None` leaves a field as it is.
pub(super) struct UserChange<'a> {
    pub(super) name: Option<&'a str>,
    pub(super) group: Option<GroupId>,
    /// `Some(None)` clears the extension.
    pub(super) extension: Option<&'a Option<String>>,
    /// `Some(None)` clears the DID number.
    pub(super) number: Option<&'a Option<String>>,
}

pub(super) fn update_user(
    state: &Tenant,
    user: UserId,
    change: UserChange<'_>,
) -> Result<Vec<Event>, Rejection> {
    let u = active_user(state, user)?;
    let mut events = Vec::new();
    if let Some(name) = change.name {
        check_name(name)?;
        if name != u.name {
            events.push(Event::UserRenamed {
                user,
                name: name.to_string(),
            });
        }
    }
    if change.extension.is_some() || change.number.is_some() {
        let extension = change.extension.unwrap_or(&u.extension);
        let number = change.number.unwrap_or(&u.number);
        check_number("extension", extension)?;
        check_number("number", number)?;
        if let Some(ext) = extension {
            match state.extensions.get(ext) {
                Some(holder) if *holder != user => {
                    return Err(Rejection::ExtensionTaken {
                        extension: ext.clone(),
                        user: *holder,
                    })
                }
                _ => {}
            }
        }
        if (extension, number) != (&u.extension, &u.number) {
            events.push(Event::UserNumbersSet {
                user,
                extension: extension.clone(),
                number: number.clone(),
            });
        }
    }
    if let Some(group) = change.group {
        group_exists(state, group)?;
        if group != u.group {
            let holdings = state.holdings(user);
            violations(limit_violations(state, group, &holdings, Some(u.group)))?;
            events.push(Event::UserMoved { user, group });
        }
    }
    Ok(events)
}

pub(super) fn delete_user(state: &Tenant, user: UserId) -> Result<Vec<Event>, Rejection> {
    let u = active_user(state, user)?;
    if !u.licenses.is_empty() {
        return Err(Rejection::UserHoldsLicenses {
            user,
            licenses: u.licenses.iter().copied().collect(),
        });
    }
    Ok(vec![Event::UserRemoved { user }])
}
