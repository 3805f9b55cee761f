//! The state of one group at an instant: limits, usage, remainders, effective window, the
//! ancestors whose restriction blocks it, and every feature of the catalogue as the group
//! switches it and as it holds there.

use chrono::{DateTime, Utc};
use events::state::Group;
use events::{GroupId, Restriction, Tenant, TypeCode};
use std::collections::BTreeMap;

/// One type in a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeState {
    /// The group's own enabled limit; `None` is unlimited.
    pub limit: Option<u64>,
    /// Used anywhere in the group's subtree.
    pub used: u64,
    /// `limit - used`, when limited.
    pub remaining: Option<u64>,
    /// The smallest remainder on the path to the root (this group included).
    pub effective_remaining: Option<u64>,
    /// The group whose limit gives `effective_remaining`.
    pub limited_by: Option<GroupId>,
}

/// One feature in a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureState {
    /// The group's own setting: on, off, or `None` (inherited). Kept while the restriction
    /// is disabled, when it counts for nothing.
    pub own: Option<bool>,
    /// Whether the feature is on for the group's users by the switches on the path (see
    /// `Tenant::effective_feature`); windows are reported apart, in `blocked_by`.
    pub enabled: bool,
    /// The group whose switch decides `enabled`; `None` when the catalogue's default does.
    pub decided_by: Option<GroupId>,
}

/// A group on the path whose enabled validity window does not cover the instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowBlock {
    pub group: GroupId,
    pub group_name: String,
    /// `window_not_started` or `window_expired`.
    pub rule: &'static str,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// Everything `GET /groups/{g}/state` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupState<'a> {
    pub group: &'a Group,
    pub restriction: Option<&'a Restriction>,
    pub types: BTreeMap<TypeCode, TypeState>,
    /// The effective window: the intersection up the tree.
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    /// Groups on the path to the root (this one first) whose window excludes `at`.
    pub blocked_by: Vec<WindowBlock>,
    /// Every feature of the catalogue.
    pub features: BTreeMap<TypeCode, FeatureState>,
}

/// Why an enabled window excludes `at`, if it does.
pub fn window_block(restriction: &Restriction, at: DateTime<Utc>) -> Option<&'static str> {
    if restriction.valid_from.is_some_and(|from| at < from) {
        Some("window_not_started")
    } else if restriction.valid_until.is_some_and(|until| at >= until) {
        Some("window_expired")
    } else {
        None
    }
}

/// The state of `group` evaluated at `at`; `None` if the group does not exist.
pub fn group_state(tenant: &Tenant, group: GroupId, at: DateTime<Utc>) -> Option<GroupState<'_>> {
    let g = tenant.groups.get(&group)?;
    let path: Vec<&Group> = tenant
        .path_to_root(group)
        .iter()
        .filter_map(|id| tenant.groups.get(id))
        .collect();
    let mut codes: Vec<&TypeCode> = g.used.keys().collect();
    for ancestor in &path {
        if let Some(r) = ancestor.enabled_restriction() {
            codes.extend(r.limits.keys());
        }
    }
    codes.sort();
    codes.dedup();
    let types = codes
        .into_iter()
        .map(|t| (t.clone(), type_state(&path, t)))
        .collect();
    let (valid_from, valid_until) = tenant.effective_window(group);
    let blocked_by = path
        .iter()
        .filter_map(|ancestor| {
            let r = ancestor.enabled_restriction()?;
            let rule = window_block(r, at)?;
            Some(WindowBlock {
                group: ancestor.id,
                group_name: ancestor.name.clone(),
                rule,
                valid_from: r.valid_from,
                valid_until: r.valid_until,
            })
        })
        .collect();
    let features = tenant
        .features
        .keys()
        .map(|code| {
            let (enabled, decided_by) = tenant.effective_feature(group, code);
            let own = g.features.get(code).copied();
            let state = FeatureState {
                own,
                enabled,
                decided_by,
            };
            (code.clone(), state)
        })
        .collect();
    Some(GroupState {
        group: g,
        restriction: g.restriction.as_ref(),
        types,
        valid_from,
        valid_until,
        blocked_by,
        features,
    })
}

fn type_state(path: &[&Group], t: &TypeCode) -> TypeState {
    let own = path[0];
    let limit_of = |g: &Group| {
        g.enabled_restriction()
            .and_then(|r| r.limits.get(t).copied())
    };
    let limit = limit_of(own);
    let used = own.used_of(t);
    let mut effective: Option<(u64, GroupId)> = None;
    for g in path {
        if let Some(l) = limit_of(g) {
            let left = l.saturating_sub(g.used_of(t));
            if effective.is_none_or(|(best, _)| left < best) {
                effective = Some((left, g.id));
            }
        }
    }
    TypeState {
        limit,
        used,
        remaining: limit.map(|l| l.saturating_sub(used)),
        effective_remaining: effective.map(|(left, _)| left),
        limited_by: effective.map(|(_, g)| g),
    }
}
