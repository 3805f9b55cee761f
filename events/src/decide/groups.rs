//! Group rules: creating, renaming and moving groups in the tree, and setting or clearing a
//! group's restriction (limits, window, reminder) and recording its reminders.

use super::common::{check_name, group_exists, invalid, known_type, one, violations};
use super::licenses::counted_limit_violations;
use super::tenant::{check_tenant_total, TenantTotal};
use super::users::{personal_violations, GroupBounds};
use super::{
    FEATURES_PER_RESTRICTION_MAX, GROUP_DEPTH_MAX, LIMITS_PER_RESTRICTION_MAX, REMINDER_DAYS_MAX,
};
use crate::event::{Event, Restriction};
use crate::ids::{GroupId, TypeCode};
use crate::notification::is_contact_email;
use crate::rejection::{Rejection, Rule, Violation};
use crate::state::Tenant;
use crate::time::truncate_to_micros;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// The restriction with its instants cut to the microseconds the log stores, so the event
/// folded live equals the one read back from disk.
pub(super) fn at_log_precision(restriction: &Restriction) -> Restriction {
    Restriction {
        valid_from: restriction.valid_from.map(truncate_to_micros),
        valid_until: restriction.valid_until.map(truncate_to_micros),
        ..restriction.clone()
    }
}

fn depth(state: &Tenant, group: GroupId) -> usize {
    state.path_to_root(group).len()
}

/// Height of a subtree: 1 for a leaf.
fn height(state: &Tenant, group: GroupId) -> usize {
    state.groups.get(&group).map_or(1, |g| {
        1 + g
            .children
            .iter()
            .map(|c| height(state, *c))
            .max()
            .unwrap_or(0)
    })
}

pub(super) fn create_group(
    state: &Tenant,
    group: GroupId,
    name: &str,
    parent: Option<GroupId>,
    contact_email: Option<&str>,
) -> Result<Vec<Event>, Rejection> {
    check_name(name)?;
    contact_email.map(check_contact).transpose()?;
    if state.groups.contains_key(&group) {
        return Err(Rejection::GroupAlreadyExists(group));
    }
    check_tenant_total(TenantTotal::Groups, state.groups.len(), 1).map_err(one)?;
    if let Some(p) = parent {
        group_exists(state, p)?;
        if depth(state, p) + 1 > GROUP_DEPTH_MAX {
            return Err(one(Violation::new(
                Rule::GroupDepthExceeded,
                format!("groups nest at most {GROUP_DEPTH_MAX} deep"),
            )
            .in_group(p)));
        }
    }
    let mut events = vec![Event::GroupCreated {
        group,
        name: name.to_string(),
        parent,
    }];
    if let Some(email) = contact_email {
        events.push(Event::GroupContactSet {
            group,
            contact_email: Some(email.to_string()),
        });
    }
    Ok(events)
}

/// A contact address the `email_address` crate reads as a bare `local@domain.tld`.
fn check_contact(email: &str) -> Result<(), Rejection> {
    if is_contact_email(email) {
        return Ok(());
    }
    // The rejection quotes the input: at most a screenful of it.
    const QUOTED_CHARS_MAX: usize = 80;
    let mut quoted: String = email.chars().take(QUOTED_CHARS_MAX).collect();
    if quoted.len() < email.len() {
        quoted.push('…');
    }
    Err(Rejection::InvalidEmail(quoted))
}

/// What `PATCH /groups/{g}` changes: `None` leaves a field as it is; `parent: Some(None)`
/// makes the group a root group, `contact_email: Some(None)` clears its own contact.
pub(super) struct GroupChange<'a> {
    pub name: Option<&'a str>,
    pub parent: Option<Option<GroupId>>,
    pub contact_email: Option<Option<&'a str>>,
}

pub(super) fn update_group(
    state: &Tenant,
    group: GroupId,
    change: GroupChange<'_>,
) -> Result<Vec<Event>, Rejection> {
    let GroupChange {
        name,
        parent,
        contact_email,
    } = change;
    let current = state
        .groups
        .get(&group)
        .ok_or(Rejection::GroupNotFound(group))?;
    let mut events = Vec::new();
    if let Some(contact) = contact_email {
        contact.map(check_contact).transpose()?;
        if contact != current.contact_email.as_deref() {
            events.push(Event::GroupContactSet {
                group,
                contact_email: contact.map(str::to_string),
            });
        }
    }
    if let Some(name) = name {
        check_name(name)?;
        if name != current.name {
            events.push(Event::GroupRenamed {
                group,
                name: name.to_string(),
            });
        }
    }
    if let Some(new_parent) = parent {
        if new_parent != current.parent {
            check_move(state, group, new_parent)?;
            events.push(Event::GroupMoved {
                group,
                parent: new_parent,
            });
        }
    }
    Ok(events)
}

fn check_move(
    state: &Tenant,
    group: GroupId,
    new_parent: Option<GroupId>,
) -> Result<(), Rejection> {
    let Some(p) = new_parent else {
        return Ok(());
    };
    group_exists(state, p)?;
    if state.path_to_root(p).contains(&group) {
        return Err(one(Violation::new(
            Rule::GroupCycle,
            format!("group {group} cannot move under its own subtree"),
        )
        .in_group(p)));
    }
    let mut found = Vec::new();
    if depth(state, p) + height(state, group) > GROUP_DEPTH_MAX {
        found.push(
            Violation::new(
                Rule::GroupDepthExceeded,
                format!("groups nest at most {GROUP_DEPTH_MAX} deep"),
            )
            .in_group(p),
        );
    }
    // The moved subtree's usage lands on the new ancestors.
    let adding: BTreeMap<&TypeCode, u64> = state.groups[&group]
        .used
        .iter()
        .map(|(t, n)| (t, *n))
        .collect();
    found.extend(counted_limit_violations(
        state,
        p,
        &adding,
        current_parent(state, group),
    ));
    let moved = Hypothesis {
        state,
        restriction: None,
        parent: Some((group, p)),
    };
    found.extend(moved.violations(group));
    violations(found)
}

fn current_parent(state: &Tenant, group: GroupId) -> Option<GroupId> {
    state.groups.get(&group).and_then(|g| g.parent)
}

/// Validate a restriction edit: every violated rule is listed, nothing is stored. With
/// `features`, the features the restriction switches are replaced by them (an event of their
/// own, only when they change); without, they stay as they are.
pub(super) fn set_restriction(
    state: &Tenant,
    group: GroupId,
    restriction: &Restriction,
    features: Option<&BTreeMap<TypeCode, bool>>,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    let current = state
        .groups
        .get(&group)
        .ok_or(Rejection::GroupNotFound(group))?;
    if restriction.limits.len() > LIMITS_PER_RESTRICTION_MAX {
        return Err(invalid(format!(
            "at most {LIMITS_PER_RESTRICTION_MAX} limits per restriction"
        )));
    }
    for t in restriction.limits.keys() {
        known_type(state, t)?;
    }
    if let Some(reminder) = restriction.reminder {
        if reminder.days_before == 0 || reminder.days_before > REMINDER_DAYS_MAX {
            return Err(invalid(format!(
                "reminder days_before must be between 1 and {REMINDER_DAYS_MAX}"
            )));
        }
    }
    let mut found = match features {
        Some(features) => feature_violations(state, group, features)?,
        None => Vec::new(),
    };
    if let (Some(from), Some(until)) = (restriction.valid_from, restriction.valid_until) {
        if from >= until {
            found.push(
                Violation::new(
                    Rule::WindowReversed,
                    format!("valid_from {from} is not before valid_until {until}"),
                )
                .in_group(group),
            );
        }
    }
    if restriction.enabled {
        for (t, &limit) in &restriction.limits {
            let used = current.used_of(t);
            if limit < used {
                found.push(
                    Violation::new(
                        Rule::LimitBelowUsage,
                        format!(
                            "{t} limit {limit} is below the {used} already used in group {}",
                            current.name
                        ),
                    )
                    .in_group(group)
                    .of_type(t)
                    .counts(limit, used),
                );
            }
        }
    }
    let edited = Hypothesis {
        state,
        restriction: Some((group, Some(restriction))),
        parent: None,
    };
    found.extend(edited.violations(group));
    violations(found)?;
    let mut events = vec![Event::RestrictionSet {
        group,
        restriction: restriction.clone(),
    }];
    if let Some(features) = features.filter(|f| **f != current.features) {
        events.push(Event::RestrictionFeaturesSet {
            group,
            features: features.clone(),
        });
    }
    events.extend(unblocked(&edited, group, now));
    Ok(events)
}

/// The rules of a restriction's features: every code names a feature (an unknown code is bad
/// input, a licence type's code a violation), and none is switched on below an ancestor whose
/// enabled restriction switches it off (it could never take effect there).
fn feature_violations(
    state: &Tenant,
    group: GroupId,
    features: &BTreeMap<TypeCode, bool>,
) -> Result<Vec<Violation>, Rejection> {
    if features.len() > FEATURES_PER_RESTRICTION_MAX {
        return Err(invalid(format!(
            "a restriction switches at most {FEATURES_PER_RESTRICTION_MAX} features"
        )));
    }
    let mut found = Vec::new();
    for code in features.keys() {
        if state.catalogue.contains_key(code) {
            found.push(
                Violation::new(
                    Rule::NotAFeature,
                    format!("{code} is a licence type, not a feature: limit it instead"),
                )
                .in_group(group)
                .of_type(code),
            );
        } else if !state.features.contains_key(code) {
            return Err(Rejection::UnknownFeature(code.clone()));
        }
    }
    let name = |g: GroupId| state.groups.get(&g).map_or("?", |g| g.name.as_str());
    let ancestors = state.path_to_root(group).split_off(1);
    for (code, _) in features.iter().filter(|(_, on)| **on) {
        let off_above = ancestors.iter().find(|a| {
            state
                .groups
                .get(a)
                .is_some_and(|g| g.feature_switch(code) == Some(false))
        });
        if let Some(ancestor) = off_above {
            found.push(
                Violation::new(
                    Rule::FeatureDisabledAbove,
                    format!(
                        "group {} cannot switch {code} on: its ancestor group {} switches it off",
                        name(group),
                        name(*ancestor)
                    ),
                )
                .in_group(*ancestor)
                .of_type(code),
            );
        }
    }
    Ok(found)
}

pub(super) fn clear_restriction(
    state: &Tenant,
    group: GroupId,
    now: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    group_exists(state, group)?;
    let cleared = Hypothesis {
        state,
        restriction: Some((group, None)),
        parent: None,
    };
    violations(cleared.violations(group))?;
    let mut events = vec![Event::RestrictionCleared { group }];
    events.extend(unblocked(&cleared, group, now));
    Ok(events)
}

/// The groups of `group`'s subtree that an edit unblocks at `now` — their window (the
/// intersection up the path) excluded `now` before and admits it after — as one
/// `GroupsUnblocked` event; nothing when there are none.
fn unblocked(edited: &Hypothesis, group: GroupId, now: DateTime<Utc>) -> Option<Event> {
    let state = edited.state;
    let before = Hypothesis {
        state,
        restriction: None,
        parent: None,
    };
    let groups: Vec<GroupId> = state
        .subtree(group)
        .into_iter()
        .filter(|g| before.window_excludes(*g, now) && !edited.window_excludes(*g, now))
        .collect();
    if groups.is_empty() {
        return None;
    }
    let freed: BTreeSet<GroupId> = groups.iter().copied().collect();
    let users = state
        .users
        .values()
        .filter(|u| !u.removed && freed.contains(&u.group))
        .count();
    Some(Event::GroupsUnblocked {
        group,
        groups,
        users: u64::try_from(users).unwrap_or(u64::MAX),
        at: now,
    })
}

/// Record that an `unblocked` notification was delivered; once only.
pub(super) fn record_unblocked_notified(
    state: &Tenant,
    version: u64,
) -> Result<Vec<Event>, Rejection> {
    if !state.unblocks_owed.contains_key(&version) {
        return Err(Rejection::UnblockedAlreadyNotified { version });
    }
    Ok(vec![Event::UnblockedNotified { version }])
}

/// The group tree as it would be after one edit, without cloning the tenant.
struct Hypothesis<'a> {
    state: &'a Tenant,
    /// A group whose restriction is replaced (`None`: cleared).
    restriction: Option<(GroupId, Option<&'a Restriction>)>,
    /// A group moved under a new parent.
    parent: Option<(GroupId, GroupId)>,
}

impl<'a> Hypothesis<'a> {
    fn enabled_restriction(&self, id: GroupId) -> Option<&'a Restriction> {
        match self.restriction {
            Some((g, r)) if g == id => r.filter(|r| r.enabled),
            _ => self.state.groups.get(&id)?.enabled_restriction(),
        }
    }

    fn parent(&self, id: GroupId) -> Option<GroupId> {
        match self.parent {
            Some((g, p)) if g == id => Some(p),
            _ => self.state.groups.get(&id)?.parent,
        }
    }

    /// Whether the window that holds for `id` — every enabled restriction on its path —
    /// excludes `at`.
    fn window_excludes(&self, id: GroupId, at: DateTime<Utc>) -> bool {
        self.path_to_root(id).into_iter().any(|g| {
            self.enabled_restriction(g).is_some_and(|r| {
                r.valid_from.is_some_and(|from| at < from)
                    || r.valid_until.is_some_and(|until| at >= until)
            })
        })
    }

    /// `id` and its ancestors, nearest first (bounded against cycles).
    fn path_to_root(&self, id: GroupId) -> Vec<GroupId> {
        let mut path = Vec::new();
        let mut next = Some(id);
        while let Some(g) = next {
            if path.len() > self.state.groups.len() {
                break;
            }
            path.push(g);
            next = self.parent(g);
        }
        path
    }

    /// The limit of `t` that holds in group `id`: its own enabled restriction's, else the
    /// nearest enabled ancestor's that limits `t` (a child never exceeds its parent, so the
    /// nearest is the tightest); with the group that sets it.
    fn effective_limit(&self, id: GroupId, t: &TypeCode) -> Option<(GroupId, u64)> {
        self.path_to_root(id).into_iter().find_map(|g| {
            let limit = *self.enabled_restriction(g)?.limits.get(t)?;
            Some((g, limit))
        })
    }

    /// SPEC: for every group, the `sip_number` limit is at least the `mobile_app` limit, both
    /// as they hold in the group (set there or inherited). Checked where a group's own
    /// restriction sets one of them: elsewhere both are its parent's, checked there.
    fn sip_number_below_mobile_app(&self, id: GroupId) -> Option<Violation> {
        let (sip_code, mobile_code) = (TypeCode::from("sip_number"), TypeCode::from("mobile_app"));
        let own = self.enabled_restriction(id)?;
        if !own.limits.contains_key(&sip_code) && !own.limits.contains_key(&mobile_code) {
            return None;
        }
        let (sip_from, sip) = self.effective_limit(id, &sip_code)?;
        let (mobile_from, mobile) = self.effective_limit(id, &mobile_code)?;
        if sip >= mobile {
            return None;
        }
        let name = |g: GroupId| self.state.groups.get(&g).map_or("?", |g| g.name.as_str());
        let whence = |from: GroupId| {
            if from == id {
                String::new()
            } else {
                format!(" (inherited from group {})", name(from))
            }
        };
        Some(
            Violation::new(
                Rule::SipNumberBelowMobileApp,
                format!(
                    "sip_number limit {sip}{} is below mobile_app limit {mobile}{} in group {}",
                    whence(sip_from),
                    whence(mobile_from),
                    name(id)
                ),
            )
            .in_group(id)
            .of_type(&sip_code)
            .counts(mobile, sip),
        )
    }

    /// The window of `id` as it would be: the intersection up its path.
    fn effective_window(&self, id: GroupId) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let windows: Vec<&Restriction> = self
            .path_to_root(id)
            .into_iter()
            .filter_map(|g| self.enabled_restriction(g))
            .collect();
        (
            windows.iter().filter_map(|w| w.valid_from).max(),
            windows.iter().filter_map(|w| w.valid_until).min(),
        )
    }

    /// The personal settings of every active user whose group is in `group`'s subtree,
    /// against their group's bounds as they would be: a restriction edit or a move never
    /// leaves a user's personal limit above their group's, nor their window outside it.
    fn user_violations(&self, group: GroupId) -> Vec<Violation> {
        let subtree: std::collections::BTreeSet<GroupId> =
            self.state.subtree(group).into_iter().collect();
        let mut found = Vec::new();
        for u in self.state.users.values() {
            let Some(r) = u.restriction.as_ref().filter(|_| !u.removed) else {
                continue;
            };
            if !subtree.contains(&u.group) {
                continue;
            }
            let home = u.group;
            let state = self.state;
            let bounds = GroupBounds {
                group: home,
                group_name: state.groups.get(&home).map_or("?", |g| g.name.as_str()),
                limit: Box::new(move |t| {
                    self.path_to_root(home)
                        .into_iter()
                        .filter_map(|g| Some((g, *self.enabled_restriction(g)?.limits.get(t)?)))
                        .min_by_key(|(_, limit)| *limit)
                }),
                window: self.effective_window(home),
                name_of: Box::new(move |g| state.groups.get(&g).map_or("?", |g| g.name.as_str())),
            };
            found.extend(personal_violations(u, r, &bounds));
        }
        found
    }

    /// Child-versus-parent rules for every enabled restriction in `group`'s subtree, checked
    /// against, per type, the nearest enabled ancestor limiting that type, and against the
    /// intersection of ancestor windows.
    fn violations(&self, group: GroupId) -> Vec<Violation> {
        let mut found = Vec::new();
        for id in self.state.subtree(group) {
            let Some(r) = self.enabled_restriction(id) else {
                continue;
            };
            let name = |g: GroupId| self.state.groups.get(&g).map_or("?", |g| g.name.as_str());
            let ancestors = self.path_to_root(id).split_off(1);
            // Per type: the nearest ancestor whose enabled restriction limits that type. A
            // parent that is disabled, or limits only other types, is unlimited for it.
            for (t, &limit) in &r.limits {
                let nearest = ancestors.iter().find_map(|a| {
                    let ar = self.enabled_restriction(*a)?;
                    ar.limits.get(t).map(|&parent_limit| (*a, parent_limit))
                });
                if let Some((a, parent_limit)) = nearest {
                    if limit > parent_limit {
                        found.push(
                            Violation::new(
                                Rule::ChildLimitExceedsParent,
                                format!(
                                    "{t} limit {limit} of group {} exceeds {parent_limit} of its ancestor group {}",
                                    name(id),
                                    name(a)
                                ),
                            )
                            .in_group(id)
                            .of_type(t)
                            .counts(parent_limit, limit),
                        );
                    }
                }
            }
            found.extend(self.sip_number_below_mobile_app(id));
            let windows = ancestors
                .iter()
                .filter_map(|a| self.enabled_restriction(*a));
            let from = windows.clone().filter_map(|w| w.valid_from).max();
            let until = windows.filter_map(|w| w.valid_until).min();
            let starts_early = matches!((r.valid_from, from), (Some(c), Some(p)) if c < p);
            let ends_late = matches!((r.valid_until, until), (Some(c), Some(p)) if c > p);
            if starts_early || ends_late {
                found.push(
                    Violation::new(
                        Rule::WindowOutsideParent,
                        format!(
                            "the validity window of group {} does not lie inside its ancestors' window",
                            name(id)
                        ),
                    )
                    .in_group(id),
                );
            }
        }
        found.extend(self.user_violations(group));
        found
    }
}

pub(super) fn record_reminder_delivered(
    state: &Tenant,
    group: GroupId,
    due_at: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    group_exists(state, group)?;
    let due_at = truncate_to_micros(due_at);
    if state.reminders_delivered.contains(&(group, due_at)) {
        return Err(Rejection::ReminderAlreadyDelivered { group, due_at });
    }
    Ok(vec![Event::ReminderDelivered { group, due_at }])
}
