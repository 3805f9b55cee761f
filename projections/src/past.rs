//! What a tenant's groups, users and licences were at every version, kept compactly, so a
//! question about a past instant — a group's state, a user's entitlement — rebuilds only the
//! part of the tenant it reads ([`PastIndex::tenant_at`]) instead of folding the log up to
//! that instant.
//!
//! Kept per tenant, fed every event after it is folded ([`PastIndex::apply`]):
//! - the catalogue after every change to it;
//! - each group's own fields (name, parent, restriction) after every change, and the
//!   licences of each type held by users *directly* in the group (not in its subgroups) as
//!   8-byte points — a group's subtree usage at a version is the sum over its subtree then,
//!   so a move of a group records nothing but the move;
//! - each user's own fields after every change, and the base licences they took and gave back
//!   as 8-byte changes;
//! - each base licence's add-ons attached and detached, as 8-byte changes.
//!
//! Versions and licence indices are stored as `u32`; a tenant past 4 294 967 295 events (or
//! licences) stops being indexed and [`PastIndex::tenant_at`] answers `None` from then on, so
//! callers fold instead.

use crate::audit::touches;
use events::catalogue::Catalogue;
use events::state::{Group, License, User};
use events::{Event, GroupId, LicenseId, Tenant, TypeCode, UserId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

type Fast = foldhash::fast::RandomState;

/// A value from `version` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Point {
    version: u32,
    value: u32,
}

/// A licence (by its index in [`PastIndex::licences`]) added or, with [`REMOVED`] set,
/// removed at `version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Change {
    version: u32,
    licence: u32,
}

const REMOVED: u32 = 1 << 31;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct GroupPast {
    /// The group's own fields from each version on (`children` and `used` left empty).
    own: Vec<(u64, Group)>,
    /// Licences of each type held by users directly in the group.
    direct: BTreeMap<TypeCode, Vec<Point>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct UserPast {
    /// The user's own fields from each version on (`licenses` left empty).
    own: Vec<(u64, User)>,
    /// The base licences held now, as recorded (indices).
    held: Vec<u32>,
    changes: Vec<Change>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct BasePast {
    /// The add-ons attached now, as recorded (indices).
    attached: Vec<u32>,
    changes: Vec<Change>,
}

/// See the module documentation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PastIndex {
    /// A version or licence index stopped fitting in `u32`: nothing is recorded any more.
    overflowed: bool,
    catalogue: Vec<(u64, Catalogue)>,
    groups: BTreeMap<GroupId, GroupPast>,
    users: HashMap<UserId, UserPast, Fast>,
    /// Licences that were ever held or had an add-on, by index.
    licences: Vec<LicenseId>,
    licence_index: HashMap<LicenseId, u32, Fast>,
    bases: HashMap<u32, BasePast, Fast>,
}

impl PartialEq for PastIndex {
    fn eq(&self, other: &Self) -> bool {
        self.overflowed == other.overflowed
            && self.catalogue == other.catalogue
            && self.groups == other.groups
            && self.users == other.users
            && self.licences == other.licences
            && self.bases == other.bases
    }
}

/// The last value of `series` at or before `version`.
fn value_at<T>(series: &[(u64, T)], version: u64) -> Option<&T> {
    let after = series.partition_point(|(v, _)| *v <= version);
    after.checked_sub(1).map(|i| &series[i].1)
}

fn point_at(series: &[Point], version: u32) -> u32 {
    let after = series.partition_point(|p| p.version <= version);
    after.checked_sub(1).map_or(0, |i| series[i].value)
}

/// The set `changes` leave at `version`.
fn set_at(changes: &[Change], version: u32) -> BTreeSet<u32> {
    let mut set = BTreeSet::new();
    for change in changes.iter().take_while(|c| c.version <= version) {
        if change.licence & REMOVED == 0 {
            set.insert(change.licence);
        } else {
            set.remove(&(change.licence & !REMOVED));
        }
    }
    set
}

/// Record the difference between `recorded` and `now` as changes at `version`; `recorded`
/// becomes `now`.
fn record_set(recorded: &mut Vec<u32>, now: Vec<u32>, changes: &mut Vec<Change>, version: u32) {
    for gone in recorded.iter().filter(|l| !now.contains(l)) {
        changes.push(Change {
            version,
            licence: gone | REMOVED,
        });
    }
    for new in now.iter().filter(|l| !recorded.contains(l)) {
        changes.push(Change {
            version,
            licence: *new,
        });
    }
    *recorded = now;
}

fn own_group(group: &Group) -> Group {
    Group {
        id: group.id,
        name: group.name.clone(),
        parent: group.parent,
        children: BTreeSet::new(),
        restriction: group.restriction.clone(),
        used: BTreeMap::new(),
    }
}

fn same_own_group(recorded: &Group, live: &Group) -> bool {
    recorded.name == live.name
        && recorded.parent == live.parent
        && recorded.restriction == live.restriction
}

fn own_user(user: &User) -> User {
    User {
        licenses: BTreeSet::new(),
        ..user.clone()
    }
}

fn same_own_user(recorded: &User, live: &User) -> bool {
    recorded.name == live.name
        && recorded.group == live.group
        && recorded.extension == live.extension
        && recorded.number == live.number
        && recorded.removed == live.removed
}

/// Licences of `t` held by users directly in `group` of `tenant`: its subtree usage less its
/// children's.
fn direct_usage(tenant: &Tenant, group: &Group, t: &TypeCode) -> u64 {
    let children: u64 = group
        .children
        .iter()
        .filter_map(|c| tenant.groups.get(c))
        .map(|c| c.used_of(t))
        .sum();
    group.used_of(t).saturating_sub(children)
}

impl PastIndex {
    /// Record what `event`, the tenant's event at `version`, changed in `tenant` (the state
    /// after it).
    pub fn apply(&mut self, version: u64, event: &Event, tenant: &Tenant) {
        if self.overflowed {
            return;
        }
        let Ok(v) = u32::try_from(version) else {
            self.overflowed = true;
            return;
        };
        if matches!(
            event,
            Event::TenantCreated { .. } | Event::LicenseTypeDefined { .. }
        ) {
            self.catalogue.push((version, tenant.catalogue.clone()));
        }
        let named = touches(event);
        for id in &named.groups {
            let Some(live) = tenant.groups.get(id) else {
                continue;
            };
            let past = self.groups.entry(*id).or_default();
            if past
                .own
                .last()
                .is_none_or(|(_, recorded)| !same_own_group(recorded, live))
            {
                past.own.push((version, own_group(live)));
            }
        }
        // The users whose holdings or own fields may have changed: those named, and the
        // holders of the licences named (an add-on's holder through its base).
        let mut users = named.users;
        for id in &named.licenses {
            let Some(licence) = tenant.licenses.get(id) else {
                continue;
            };
            users.extend(licence.user);
            if let Some(base) = licence.base.and_then(|b| tenant.licenses.get(&b)) {
                users.extend(base.user);
            }
        }
        users.sort_unstable();
        users.dedup();
        let mut groups = Vec::new();
        for id in &users {
            let Some(live) = tenant.users.get(id) else {
                continue;
            };
            let Some(held) = self.indices(live.licenses.iter()) else {
                return;
            };
            let past = self.users.entry(*id).or_default();
            groups.push(live.group);
            let recorded = past
                .own
                .last()
                .map(|(_, r)| (same_own_user(r, live), r.group));
            if recorded.is_none_or(|(same, _)| !same) {
                groups.extend(recorded.map(|(_, group)| group));
                past.own.push((version, own_user(live)));
            }
            record_set(&mut past.held, held, &mut past.changes, v);
        }
        for id in &named.licenses {
            let Some(licence) = tenant.licenses.get(id) else {
                continue;
            };
            let index = self.licence_index.get(id).copied();
            if licence.addons.is_empty() && index.is_none_or(|i| !self.bases.contains_key(&i)) {
                continue;
            }
            let (Some(base), Some(attached)) =
                (self.index_of(*id), self.indices(licence.addons.iter()))
            else {
                return;
            };
            let past = self.bases.entry(base).or_default();
            record_set(&mut past.attached, attached, &mut past.changes, v);
        }
        groups.sort_unstable();
        groups.dedup();
        for id in groups {
            let Some(live) = tenant.groups.get(&id) else {
                continue;
            };
            let past = self.groups.entry(id).or_default();
            let mut types: Vec<&TypeCode> = live.used.keys().collect();
            types.extend(past.direct.keys());
            types.sort_unstable();
            types.dedup();
            let mut points = Vec::new();
            for t in types {
                let Ok(value) = u32::try_from(direct_usage(tenant, live, t)) else {
                    self.overflowed = true;
                    return;
                };
                let last = past.direct.get(t).and_then(|s| s.last()).map(|p| p.value);
                if last.unwrap_or(0) != value {
                    points.push((t.clone(), Point { version: v, value }));
                }
            }
            for (t, point) in points {
                past.direct.entry(t).or_default().push(point);
            }
        }
    }

    /// Give back the room the histories grew into.
    pub fn shrink_to_fit(&mut self) {
        self.catalogue.shrink_to_fit();
        for group in self.groups.values_mut() {
            group.own.shrink_to_fit();
            for series in group.direct.values_mut() {
                series.shrink_to_fit();
            }
        }
        for user in self.users.values_mut() {
            user.own.shrink_to_fit();
            user.held.shrink_to_fit();
            user.changes.shrink_to_fit();
        }
        self.users.shrink_to_fit();
        self.licences.shrink_to_fit();
        self.licence_index.shrink_to_fit();
        for base in self.bases.values_mut() {
            base.attached.shrink_to_fit();
            base.changes.shrink_to_fit();
        }
        self.bases.shrink_to_fit();
    }

    /// The index of licence `id`, given one on first sight.
    fn index_of(&mut self, id: LicenseId) -> Option<u32> {
        if let Some(index) = self.licence_index.get(&id) {
            return Some(*index);
        }
        let Ok(index) = u32::try_from(self.licences.len()) else {
            self.overflowed = true;
            return None;
        };
        if index & REMOVED != 0 {
            self.overflowed = true;
            return None;
        }
        self.licences.push(id);
        self.licence_index.insert(id, index);
        Some(index)
    }

    fn indices<'a>(&mut self, ids: impl Iterator<Item = &'a LicenseId>) -> Option<Vec<u32>> {
        ids.map(|id| self.index_of(*id)).collect()
    }

    /// The part of `live`'s state at `version` that a group-state question about any group,
    /// or an entitlement question about `user`, reads: the catalogue, every group (own
    /// fields, children and subtree usage) and `user` with their licences and add-ons.
    /// Everything else is left empty. `None` if the index stopped (see the module docs) or
    /// `version` is past `live`'s.
    pub fn tenant_at(&self, live: &Tenant, version: u64, user: Option<UserId>) -> Option<Tenant> {
        if self.overflowed || version > live.version {
            return None;
        }
        let v = u32::try_from(version).ok()?;
        let mut past = Tenant::empty(live.id);
        past.name = live.name.clone();
        past.billing_timezone = live.billing_timezone.clone();
        past.currency = live.currency.clone();
        past.version = version;
        past.catalogue = value_at(&self.catalogue, version)
            .cloned()
            .unwrap_or_default();
        self.groups_at(version, v, &mut past);
        if let Some(id) = user {
            self.user_at(live, id, version, v, &mut past);
        }
        Some(past)
    }

    fn groups_at(&self, version: u64, v: u32, past: &mut Tenant) {
        for (id, history) in &self.groups {
            if let Some(own) = value_at(&history.own, version) {
                past.groups.insert(*id, own.clone());
            }
        }
        let ids: Vec<GroupId> = past.groups.keys().copied().collect();
        for id in &ids {
            let parent = past.groups.get(id).and_then(|g| g.parent);
            if let Some(p) = parent.and_then(|p| past.groups.get_mut(&p)) {
                p.children.insert(*id);
            }
        }
        // Each group's direct usage goes to it and every ancestor.
        for id in &ids {
            let Some(history) = self.groups.get(id) else {
                continue;
            };
            for (t, series) in &history.direct {
                let n = u64::from(point_at(series, v));
                if n == 0 {
                    continue;
                }
                for ancestor in past.path_to_root(*id) {
                    if let Some(g) = past.groups.get_mut(&ancestor) {
                        *g.used.entry(t.clone()).or_insert(0) += n;
                    }
                }
            }
        }
    }

    fn user_at(&self, live: &Tenant, id: UserId, version: u64, v: u32, past: &mut Tenant) {
        let Some(history) = self.users.get(&id) else {
            return;
        };
        let Some(own) = value_at(&history.own, version) else {
            return;
        };
        let mut user = own.clone();
        for base in set_at(&history.changes, v) {
            let Some(base_id) = self.licences.get(base as usize).copied() else {
                continue;
            };
            let Some(licence) = live.licenses.get(&base_id) else {
                continue;
            };
            let addons = self
                .bases
                .get(&base)
                .map(|b| set_at(&b.changes, v))
                .unwrap_or_default();
            let mut held = License {
                user: Some(id),
                base: None,
                addons: BTreeSet::new(),
                terminated: false,
                ..licence.clone()
            };
            for addon in addons {
                let Some(addon_id) = self.licences.get(addon as usize).copied() else {
                    continue;
                };
                let Some(a) = live.licenses.get(&addon_id) else {
                    continue;
                };
                held.addons.insert(addon_id);
                past.licenses.insert(
                    addon_id,
                    License {
                        user: None,
                        base: Some(base_id),
                        addons: BTreeSet::new(),
                        terminated: false,
                        ..a.clone()
                    },
                );
            }
            user.licenses.insert(base_id);
            past.licenses.insert(base_id, held);
        }
        past.users.insert(id, user);
    }
}
