//! User rules: creating users (one or a batch), renaming and moving them, their other
//! groups, and removing them.

use super::common::{
    active_user, check_name, check_number, group_exists, invalid, one, violations,
};
use super::licenses::limit_violations;
use super::tenant::{check_tenant_total, TenantTotal};
use super::{LIMITS_PER_RESTRICTION_MAX, OTHER_GROUPS_PER_USER_MAX, USERS_PER_BATCH_MAX};
use crate::command::NewUser;
use crate::event::{Event, UserRestriction};
use crate::ids::{GroupId, TypeCode, UserId};
use crate::rejection::{Rejection, Rule, Violation};
use crate::state::{Tenant, User};
use crate::time::truncate_to_micros;
use chrono::{DateTime, Utc};
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
                user: Some(*holder),
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
                        user: Some(*holder),
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
            // Licences counted against one of the user's other groups stay there.
            let holdings = state.holdings_in_own_group(user);
            let mut found = limit_violations(state, group, &holdings, Some(u.group));
            if let Some(r) = &u.restriction {
                found.extend(personal_violations(u, r, &GroupBounds::of(state, group)));
            }
            violations(found)?;
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

/// Make `user` a member of `group` besides their own group.
pub(super) fn add_to_group(
    state: &Tenant,
    user: UserId,
    group: GroupId,
) -> Result<Vec<Event>, Rejection> {
    let u = active_user(state, user)?;
    group_exists(state, group)?;
    if u.belongs_to(group) {
        return Err(Rejection::AlreadyInGroup { user, group });
    }
    if u.other_groups.len() >= OTHER_GROUPS_PER_USER_MAX {
        return Err(one(Violation::new(
            Rule::UserGroupsFull,
            format!(
                "user {} ({user}) already belongs to {OTHER_GROUPS_PER_USER_MAX} groups besides their own",
                u.name
            ),
        )
        .of_user(user)));
    }
    Ok(vec![Event::UserGroupAdded { user, group }])
}

/// Take `user` out of `group`, one of their other groups. The licences counted against it
/// move to the user's own group, which must have room for them.
pub(super) fn remove_from_group(
    state: &Tenant,
    user: UserId,
    group: GroupId,
) -> Result<Vec<Event>, Rejection> {
    let u = active_user(state, user)?;
    group_exists(state, group)?;
    if u.group == group {
        return Err(Rejection::OwnGroup { user, group });
    }
    if !u.other_groups.contains(&group) {
        return Err(Rejection::NotAMember { user, group });
    }
    let moving = state.holdings_counted_in(user, group);
    violations(limit_violations(state, u.group, &moving, Some(group)))?;
    Ok(vec![Event::UserGroupRemoved { user, group }])
}

/// The tightest enabled limit of a type on a group path, with the group that sets it.
pub(super) type LimitOf<'a> = Box<dyn Fn(&TypeCode) -> Option<(GroupId, u64)> + 'a>;

/// What a user's group path allows, against which their personal settings are checked.
pub(super) struct GroupBounds<'a> {
    /// The user's (primary) group.
    pub(super) group: GroupId,
    pub(super) group_name: &'a str,
    /// The tightest enabled limit of a type on the path, with the group that sets it.
    pub(super) limit: LimitOf<'a>,
    /// The effective window of the path.
    pub(super) window: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    pub(super) name_of: Box<dyn Fn(GroupId) -> &'a str + 'a>,
}

impl<'a> GroupBounds<'a> {
    /// The bounds of `group` in the current state.
    pub(super) fn of(state: &'a Tenant, group: GroupId) -> GroupBounds<'a> {
        let name_of = move |g: GroupId| state.groups.get(&g).map_or("?", |g| g.name.as_str());
        GroupBounds {
            group,
            group_name: name_of(group),
            limit: Box::new(move |t| state.effective_limit(group, t)),
            window: state.effective_window(group),
            name_of: Box::new(name_of),
        }
    }
}

/// A user's personal settings against their group's bounds: no limit above the group path's
/// effective limit (`user_limit_exceeds_group`), the window inside the path's effective
/// window (`user_window_outside_group`).
pub(super) fn personal_violations(
    user: &User,
    restriction: &UserRestriction,
    bounds: &GroupBounds<'_>,
) -> Vec<Violation> {
    let mut found = Vec::new();
    for (t, &limit) in &restriction.limits {
        let Some((g, group_limit)) = (bounds.limit)(t) else {
            continue;
        };
        if limit > group_limit {
            found.push(
                Violation::new(
                    Rule::UserLimitExceedsGroup,
                    format!(
                        "{t} limit {limit} of user {} exceeds {group_limit} of group {}",
                        user.name,
                        (bounds.name_of)(g)
                    ),
                )
                .in_group(g)
                .of_user(user.id)
                .of_type(t)
                .counts(group_limit, limit),
            );
        }
    }
    let (from, until) = bounds.window;
    let starts_early = matches!((restriction.valid_from, from), (Some(c), Some(p)) if c < p);
    let ends_late = matches!((restriction.valid_until, until), (Some(c), Some(p)) if c > p);
    if starts_early || ends_late {
        found.push(
            Violation::new(
                Rule::UserWindowOutsideGroup,
                format!(
                    "the validity window of user {} does not lie inside the window of group {}",
                    user.name, bounds.group_name
                ),
            )
            .in_group(bounds.group)
            .of_user(user.id),
        );
    }
    found
}

/// Set a user's personal limits and window: every type known, the window in order, no limit
/// below what the user holds, and everything inside the user's group's bounds; every
/// violated rule is listed and nothing is stored.
pub(super) fn set_user_restriction(
    state: &Tenant,
    user: UserId,
    restriction: &UserRestriction,
) -> Result<Vec<Event>, Rejection> {
    let u = active_user(state, user)?;
    if restriction.limits.len() > LIMITS_PER_RESTRICTION_MAX {
        return Err(invalid(format!(
            "at most {LIMITS_PER_RESTRICTION_MAX} limits per restriction"
        )));
    }
    for t in restriction.limits.keys() {
        super::common::known_type(state, t)?;
    }
    let restriction = UserRestriction {
        limits: restriction.limits.clone(),
        valid_from: restriction.valid_from.map(truncate_to_micros),
        valid_until: restriction.valid_until.map(truncate_to_micros),
    };
    let mut found = Vec::new();
    if let (Some(from), Some(until)) = (restriction.valid_from, restriction.valid_until) {
        if from >= until {
            found.push(
                Violation::new(
                    Rule::WindowReversed,
                    format!("valid_from {from} is not before valid_until {until}"),
                )
                .of_user(user),
            );
        }
    }
    for (t, &limit) in &restriction.limits {
        let used = state.held_count(user, t);
        if limit < used {
            found.push(
                Violation::new(
                    Rule::UserLimitBelowUsage,
                    format!(
                        "{t} limit {limit} of user {} is below the {used} they hold",
                        u.name
                    ),
                )
                .of_user(user)
                .of_type(t)
                .counts(limit, used),
            );
        }
    }
    found.extend(personal_violations(
        u,
        &restriction,
        &GroupBounds::of(state, u.group),
    ));
    violations(found)?;
    Ok(vec![Event::UserRestrictionSet { user, restriction }])
}

/// Clear a user's personal limits and window; nothing happens when they have none.
pub(super) fn clear_user_restriction(
    state: &Tenant,
    user: UserId,
) -> Result<Vec<Event>, Rejection> {
    let u = active_user(state, user)?;
    if u.restriction.is_none() {
        return Ok(vec![]);
    }
    Ok(vec![Event::UserRestrictionCleared { user }])
}
