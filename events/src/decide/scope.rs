//! Keys scoped to a group (a dealer's key): what such a key may name and change.
//!
//! A scoped key manages the subtree of its group: the groups below it, the users in them, the
//! licences those users hold. Anything outside answers as if it did not exist (the same
//! not-found rejection as an unknown id, so a dealer cannot probe the rest of the tree).
//! Things that name nothing a dealer could probe — tenant-wide settings, provisioning, the
//! scope group itself, which the key's issuer granted — are refused as outside the scope.
//! Free licences belong to the tenant's pool, not to a group: a scoped key may hand one out by
//! its id (its groups' limits still bound it) but does not see them listed.

use crate::command::Command;
use crate::ids::{GroupId, KeyId, LicenseId, UserId};
use crate::rejection::Rejection;
use crate::state::{License, LicenseStatus, Tenant};

/// Whether `group` is `scope` or below it.
pub fn group_in_scope(state: &Tenant, scope: GroupId, group: GroupId) -> bool {
    let mut next = Some(group);
    let mut steps = 0;
    while let Some(id) = next {
        if id == scope {
            return true;
        }
        steps += 1;
        if steps > state.groups.len() {
            return false;
        }
        next = state.groups.get(&id).and_then(|g| g.parent);
    }
    false
}

/// Whether `user` exists, is not removed and is in a group of the scope.
pub fn user_in_scope(state: &Tenant, scope: GroupId, user: UserId) -> bool {
    state
        .active_user(user)
        .is_some_and(|u| group_in_scope(state, scope, u.group))
}

/// Whether a licence is held inside the scope: a base held by a user of the scope, or an
/// add-on attached to such a base.
pub fn license_in_scope(state: &Tenant, scope: GroupId, license: &License) -> bool {
    let base = match license.base {
        Some(base) => state.licenses.get(&base),
        None => Some(license),
    };
    base.and_then(|b| b.user)
        .is_some_and(|user| user_in_scope(state, scope, user))
}

/// Whether a key was issued for a group of the scope.
pub fn key_in_scope(state: &Tenant, scope: GroupId, key: KeyId) -> bool {
    state
        .keys
        .get(&key)
        .and_then(|k| k.group)
        .is_some_and(|group| group_in_scope(state, scope, group))
}

fn outside(what: &str) -> Rejection {
    Rejection::OutsideScope(format!(
        "a key scoped to a group may not {what}; ask a key of the whole tenant"
    ))
}

fn group(state: &Tenant, scope: GroupId, group: GroupId) -> Result<(), Rejection> {
    if group_in_scope(state, scope, group) {
        Ok(())
    } else {
        Err(Rejection::GroupNotFound(group))
    }
}

/// A group strictly below the scope: the scope group itself is what the key's issuer granted.
fn group_below(state: &Tenant, scope: GroupId, id: GroupId, what: &str) -> Result<(), Rejection> {
    group(state, scope, id)?;
    if id == scope {
        return Err(Rejection::OutsideScope(format!(
            "a key scoped to group {scope} may not {what} that group itself: its issuer granted it"
        )));
    }
    Ok(())
}

fn user(state: &Tenant, scope: GroupId, user: UserId) -> Result<(), Rejection> {
    if user_in_scope(state, scope, user) {
        Ok(())
    } else {
        Err(Rejection::UserNotFound(user))
    }
}

/// The group an assignment counts against, if one is named: inside the scope.
fn in_scope_if_named(
    state: &Tenant,
    scope: GroupId,
    counted: Option<GroupId>,
) -> Result<(), Rejection> {
    counted.map_or(Ok(()), |g| group(state, scope, g))
}

/// A licence held inside the scope.
fn held(state: &Tenant, scope: GroupId, license: LicenseId) -> Result<(), Rejection> {
    match state.licenses.get(&license) {
        Some(l) if license_in_scope(state, scope, l) => Ok(()),
        _ => Err(Rejection::LicenseNotFound(license)),
    }
}

/// A licence held inside the scope or free in the tenant's pool.
fn held_or_free(state: &Tenant, scope: GroupId, license: LicenseId) -> Result<(), Rejection> {
    match state.licenses.get(&license) {
        Some(l) if l.status() == LicenseStatus::Free => Ok(()),
        _ => held(state, scope, license),
    }
}

/// Check that a key scoped to `scope` may send `command`; `decide` then judges it as usual.
pub fn check(state: &Tenant, scope: GroupId, command: &Command) -> Result<(), Rejection> {
    use Command::*;
    match command {
        CreateTenant { .. } => Err(outside("create tenants")),
        ProvisionLicenses { .. } | SetQuantity { .. } => Err(outside("provision licences")),
        TerminateLicense { .. } => Err(outside("terminate licences")),
        SetRetention(_) => Err(outside("change the recording retention")),
        SetPrice { .. } => Err(outside("set prices")),
        DefineLicenseType(_) | DefineFeature(_) | DefineService(_) => {
            Err(outside("change the catalogue"))
        }
        RecordUsage(_) => Err(outside("record usage of the tenant's services")),
        // Each command of a cart is judged when it is confirmed (see `cart::confirm_cart`).
        CreateCart { .. } | ConfirmCart { .. } => Ok(()),
        SetWebhook { .. } => Err(outside("set the webhook")),
        SetNotificationTemplate(_) => Err(outside("change the notification template")),
        RecordReminderDelivered { .. } | RecordUnblockedNotified { .. } => {
            Err(outside("record notification deliveries"))
        }
        AssignLicense {
            license,
            user: to,
            group: counted,
        } => {
            user(state, scope, *to)?;
            in_scope_if_named(state, scope, *counted)?;
            held_or_free(state, scope, *license)
        }
        UnassignLicense { license } => held(state, scope, *license),
        ReassignLicense {
            license,
            user: to,
            group: counted,
        } => {
            held(state, scope, *license)?;
            user(state, scope, *to)?;
            in_scope_if_named(state, scope, *counted)
        }
        AttachAddon { base, addon } => {
            held(state, scope, *base)?;
            held_or_free(state, scope, *addon)
        }
        DetachAddon { base, addon } => {
            held(state, scope, *base)?;
            held(state, scope, *addon)
        }
        AssignByType {
            user: to,
            group: counted,
            ..
        } => {
            user(state, scope, *to)?;
            in_scope_if_named(state, scope, *counted)
        }
        CreateGroup { parent, .. } => match parent {
            Some(parent) => group(state, scope, *parent),
            None => Err(outside("create a root group (give parent_id)")),
        },
        UpdateGroup {
            group: id, parent, ..
        } => {
            group_below(state, scope, *id, "rename or move")?;
            match parent {
                None => Ok(()),
                Some(None) => Err(outside("make a group a root group")),
                Some(Some(parent)) => group(state, scope, *parent),
            }
        }
        SetRestriction { group: id, .. }
        | SetRestrictionAndFeatures { group: id, .. }
        | ClearRestriction { group: id } => {
            group_below(state, scope, *id, "change the restriction of")
        }
        CreateUser(new) => group(state, scope, new.group),
        CreateUsers(batch) => batch
            .iter()
            .try_for_each(|new| group(state, scope, new.group)),
        UpdateUser {
            user: id,
            group: to,
            ..
        } => {
            user(state, scope, *id)?;
            to.map_or(Ok(()), |to| group(state, scope, to))
        }
        DeleteUser { user: id } => user(state, scope, *id),
        AddUserToGroup {
            user: id,
            group: to,
        }
        | RemoveUserFromGroup {
            user: id,
            group: to,
        } => {
            user(state, scope, *id)?;
            group(state, scope, *to)
        }
        SetUserRestriction { user: id, .. } | ClearUserRestriction { user: id } => {
            user(state, scope, *id)
        }
        IssueKey { group: to, .. } => match to {
            Some(to) => group(state, scope, *to),
            None => Err(outside("issue a key for the whole tenant (give group_id)")),
        },
        RevokeKey { key } => {
            if key_in_scope(state, scope, *key) {
                Ok(())
            } else {
                Err(Rejection::KeyNotFound(*key))
            }
        }
        // Each row's user is looked up inside the scope only: see `import::import`.
        Import(_) => Ok(()),
    }
}
