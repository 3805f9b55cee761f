//! What a tenant's groups, users and licences were at every version, kept compactly, so a
//! question about a past instant — a group's state, a user's entitlement — rebuilds only the
//! part of the tenant it reads ([`PastIndex::tenant_at`]) instead of folding the log up to
//! that instant.
//!
//! Kept per tenant, fed every event after it is folded ([`PastIndex::apply`], which follows
//! `events::evolve`: what each event changes; a property test holds it to the fold):
//! - every licence type and feature definition, with the version that made it;
//! - each group's own fields (name, parent, restriction, the features it switches, contact)
//!   after every change, and the
//!   licences of each type held by users *directly* in the group (not in its subgroups) as
//!   8-byte points — a group's subtree usage at a version is the sum over its subtree then,
//!   so a move of a group records nothing but the move;
//! - each user's own fields (their personal restriction too) after every change, and the base licences they took and gave back;
//! - each base licence's add-ons attached and detached;
//! - for a base licence counted against one of its holder's other groups, where it counted
//!   after each change (only licences that ever counted outside their holder's own group).
//!
//! Licence changes go to one log per tenant for users and one for bases, as 12-byte entries
//! each linked to the previous change of the same user (or base): an event appends where the
//! last one did, instead of growing a list of its own per user, which cost a cache miss and a
//! reallocation now and then on every assign and unassign of a replay.
//!
//! Versions and licence indices are stored as `u32`; a tenant past 4 294 967 295 events (or
//! 2³¹ licences, far beyond a tenant's limit) stops being indexed and [`PastIndex::tenant_at`]
//! answers `None` from then on, so callers fold instead.

use events::catalogue::{Feature, LicenseType};
use events::metering::{MeteredMonth, Service, ServiceMonth};
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
/// removed at `version`, by the user (or to the base) whose previous change is the entry at
/// `previous` of the same [`ChangeLog`] ([`NO_CHANGE`] for its first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Change {
    version: u32,
    licence: u32,
    previous: u32,
}

const REMOVED: u32 = 1 << 31;
/// The link of a first change, and the last change of a user or base that has none.
const NO_CHANGE: u32 = u32::MAX;

/// Changes of many users (or bases), in the order they happened, each linked to the one
/// before it of the same user (or base).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ChangeLog {
    entries: Vec<Change>,
}

impl ChangeLog {
    /// Append `licence` at `version` after the change `last` points at, and point `last` at
    /// the new one. `false` (nothing appended) once entries stop fitting in `u32`.
    fn push(&mut self, last: &mut u32, version: u32, licence: u32) -> bool {
        let Some(index) = u32::try_from(self.entries.len())
            .ok()
            .filter(|i| *i != NO_CHANGE)
        else {
            return false;
        };
        self.entries.push(Change {
            version,
            licence,
            previous: *last,
        });
        *last = index;
        true
    }

    /// The set the changes up to `last` leave at `version`.
    fn set_at(&self, last: u32, version: u32) -> BTreeSet<u32> {
        let mut chain = Vec::new();
        let mut at = last;
        while let Some(change) = self.entries.get(at as usize) {
            if change.version <= version {
                chain.push(change.licence);
            }
            at = change.previous;
        }
        let mut set = BTreeSet::new();
        for licence in chain.into_iter().rev() {
            if licence & REMOVED == 0 {
                set.insert(licence);
            } else {
                set.remove(&(licence & !REMOVED));
            }
        }
        set
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct GroupPast {
    /// The group's own fields from each version on (`children` and `used` left empty).
    own: Vec<(u64, Group)>,
    /// Licences of each type held by users directly in the group.
    direct: BTreeMap<TypeCode, Vec<Point>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct UserPast {
    /// The user's own fields from each version on (`licenses` left empty).
    own: Vec<(u64, User)>,
    /// The user's last change in [`PastIndex::user_changes`].
    last_change: u32,
}

impl Default for UserPast {
    fn default() -> Self {
        UserPast {
            own: Vec::new(),
            last_change: NO_CHANGE,
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PastIndex {
    /// A version or licence index stopped fitting in `u32`: nothing is recorded any more.
    overflowed: bool,
    definitions: Vec<(u64, LicenseType)>,
    features: Vec<(u64, Feature)>,
    /// Metered service definitions, with the version that made each.
    #[serde(default)]
    services: Vec<(u64, Service)>,
    /// Each service's month figures after every event that changed them.
    #[serde(default)]
    metered: BTreeMap<ServiceMonth, Vec<(u64, MeteredMonth)>>,
    groups: BTreeMap<GroupId, GroupPast>,
    users: HashMap<UserId, UserPast, Fast>,
    /// The base licences users took and gave back.
    user_changes: ChangeLog,
    /// Licences that were ever held or had an add-on, by index.
    licences: Vec<LicenseId>,
    licence_index: HashMap<LicenseId, u32, Fast>,
    /// Each base licence's (by index) last change in `base_changes`.
    bases: HashMap<u32, u32, Fast>,
    /// The add-ons attached to and detached from base licences.
    base_changes: ChangeLog,
    /// Base licences (by index) that ever counted against one of their holder's other
    /// groups: the group from each version on (`None`: the holder's own).
    #[serde(default)]
    counted: HashMap<u32, Vec<(u32, Option<GroupId>)>, Fast>,
}

/// `licence_index` is left out: it is `licences` inverted.
impl PartialEq for PastIndex {
    fn eq(&self, other: &Self) -> bool {
        self.overflowed == other.overflowed
            && self.definitions == other.definitions
            && self.features == other.features
            && self.services == other.services
            && self.metered == other.metered
            && self.groups == other.groups
            && self.users == other.users
            && self.user_changes == other.user_changes
            && self.licences == other.licences
            && self.bases == other.bases
            && self.base_changes == other.base_changes
            && self.counted == other.counted
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

fn own_group(group: &Group) -> Group {
    Group {
        id: group.id,
        name: group.name.clone(),
        parent: group.parent,
        children: BTreeSet::new(),
        restriction: group.restriction.clone(),
        contact_email: group.contact_email.clone(),
        used: BTreeMap::new(),
        features: group.features.clone(),
    }
}

fn same_own_group(recorded: &Group, live: &Group) -> bool {
    recorded.name == live.name
        && recorded.parent == live.parent
        && recorded.restriction == live.restriction
        && recorded.features == live.features
        && recorded.contact_email == live.contact_email
}

/// The user's own fields: field by field, so that the set of licences a user holds is not
/// copied only to be dropped.
fn own_user(user: &User) -> User {
    User {
        id: user.id,
        name: user.name.clone(),
        group: user.group,
        extension: user.extension.clone(),
        number: user.number.clone(),
        removed: user.removed,
        licenses: BTreeSet::new(),
        restriction: user.restriction.clone(),
        other_groups: user.other_groups.clone(),
    }
}

fn same_own_user(recorded: &User, live: &User) -> bool {
    recorded.name == live.name
        && recorded.group == live.group
        && recorded.extension == live.extension
        && recorded.number == live.number
        && recorded.removed == live.removed
        && recorded.restriction == live.restriction
        && recorded.other_groups == live.other_groups
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
    /// after it). Follows `events::evolve`: only the events that change a user's licences, a
    /// base's add-ons, a group's usage or an entity's own fields record anything.
    pub fn apply(&mut self, version: u64, event: &Event, tenant: &Tenant) {
        if self.overflowed {
            return;
        }
        let Ok(v) = u32::try_from(version) else {
            self.overflowed = true;
            return;
        };
        let holder_group = |user: &UserId| tenant.users.get(user).map(|u| u.group);
        let counting_group = |license: &LicenseId| {
            tenant
                .licenses
                .get(license)
                .and_then(|l| tenant.counting_group(l))
        };
        let with_addon_types = |license: &LicenseId| {
            tenant
                .licenses
                .get(license)
                .map(|l| tenant.license_with_addon_types(l))
                .unwrap_or_default()
        };
        match event {
            Event::LicenseTypeDefined { definition } => {
                self.definitions.push((version, definition.clone()));
            }
            Event::FeatureDefined { definition } => {
                self.features.push((version, definition.clone()));
            }
            Event::ServiceDefined { service } => {
                self.services.push((version, service.clone()));
            }
            Event::UsageRecorded { records } => {
                let zone = events::time::billing_zone(&tenant.billing_timezone);
                let mut touched = BTreeSet::new();
                for record in records {
                    let month = events::time::Month::of(record.occurred_at, zone);
                    touched.insert((record.service.clone(), month));
                }
                for key in touched {
                    if let Some(figures) = tenant.metered.get(&key) {
                        self.metered
                            .entry(key)
                            .or_default()
                            .push((version, figures.clone()));
                    }
                }
            }
            Event::LicenseAssigned { license, user, .. } => {
                self.hold(*user, *license, v, true);
                let types = with_addon_types(license);
                self.sync_counted(tenant, *license, v);
                let counted = counting_group(license).or(holder_group(user));
                self.record_direct(tenant, counted, &types, v);
            }
            Event::LicenseUnassigned { license, user, .. } => {
                self.hold(*user, *license, v, false);
                let types = with_addon_types(license);
                let left = self.uncount(*license, v).or(holder_group(user));
                self.record_direct(tenant, left, &types, v);
            }
            Event::LicenseReassigned {
                license, from, to, ..
            } => {
                self.hold(*from, *license, v, false);
                self.hold(*to, *license, v, true);
                let types = with_addon_types(license);
                let left = self.counted_last(*license).or(holder_group(from));
                self.sync_counted(tenant, *license, v);
                self.record_direct(tenant, left, &types, v);
                let counted = counting_group(license).or(holder_group(to));
                self.record_direct(tenant, counted, &types, v);
            }
            Event::LicenseCountedIn {
                license,
                user,
                group,
            } => {
                // Before an assignment it only notes where the licence will count.
                if tenant.licenses.get(license).and_then(|l| l.user) != Some(*user) {
                    return;
                }
                let types = with_addon_types(license);
                let before = self.counted_last(*license).or(holder_group(user));
                self.sync_counted(tenant, *license, v);
                self.record_direct(tenant, before, &types, v);
                self.record_direct(tenant, Some(*group), &types, v);
            }
            Event::AddonAttached {
                addon,
                addon_type,
                base,
            }
            | Event::AddonDetached {
                addon,
                addon_type,
                base,
            } => {
                let attached = matches!(event, Event::AddonAttached { .. });
                if let (Some(b), Some(a)) = (self.index_of(*base), self.index_of(*addon)) {
                    let licence = if attached { a } else { a | REMOVED };
                    let last = self.bases.entry(b).or_insert(NO_CHANGE);
                    if !self.base_changes.push(last, v, licence) {
                        self.overflowed = true;
                        return;
                    }
                }
                let group = tenant
                    .licenses
                    .get(base)
                    .and_then(|b| tenant.counting_group(b));
                self.record_direct(tenant, group, std::slice::from_ref(addon_type), v);
            }
            Event::GroupCreated { group, .. }
            | Event::GroupMoved { group, .. }
            | Event::GroupRenamed { group, .. }
            | Event::RestrictionSet { group, .. }
            | Event::RestrictionFeaturesSet { group, .. }
            | Event::RestrictionCleared { group }
            | Event::GroupContactSet { group, .. } => {
                let Some(live) = tenant.groups.get(group) else {
                    return;
                };
                let own = &mut self.groups.entry(*group).or_default().own;
                if own
                    .last()
                    .is_none_or(|(_, recorded)| !same_own_group(recorded, live))
                {
                    own.reserve_exact(1);
                    own.push((version, own_group(live)));
                }
            }
            Event::UserCreated { user, .. }
            | Event::UserMoved { user, .. }
            | Event::UserRenamed { user, .. }
            | Event::UserRemoved { user }
            | Event::UserNumbersSet { user, .. }
            | Event::UserRestrictionSet { user, .. }
            | Event::UserRestrictionCleared { user }
            | Event::UserGroupAdded { user, .. }
            | Event::UserGroupRemoved { user, .. } => {
                let Some(live) = tenant.users.get(user) else {
                    return;
                };
                // Leaving a group (or moving into one of the other groups) makes what counted
                // there count against the user's own group.
                if let Event::UserGroupRemoved { group, .. } = event {
                    let types = tenant.holdings(*user);
                    self.record_direct(tenant, Some(*group), &types, v);
                    self.record_direct(tenant, Some(live.group), &types, v);
                }
                for license in &live.licenses {
                    self.sync_counted(tenant, *license, v);
                }
                let own = &mut self.users.entry(*user).or_default().own;
                let recorded = own.last().map(|(_, r)| (same_own_user(r, live), r.group));
                if recorded.is_some_and(|(same, _)| same) {
                    return;
                }
                own.reserve_exact(1);
                own.push((version, own_user(live)));
                // A move takes the user's holdings from the old group to the new one.
                if let Some((_, old)) = recorded.filter(|(_, old)| *old != live.group) {
                    let holdings = tenant.holdings(*user);
                    self.record_direct(tenant, Some(old), &holdings, v);
                    self.record_direct(tenant, Some(live.group), &holdings, v);
                }
            }
            _ => {}
        }
    }

    /// The group `license` counted against after its last recorded change, if it was one of
    /// its holder's other groups.
    fn counted_last(&self, license: LicenseId) -> Option<GroupId> {
        if self.counted.is_empty() {
            return None;
        }
        let index = self.licence_index.get(&license)?;
        self.counted.get(index)?.last()?.1
    }

    /// Record where `license` counts in `tenant` after the event at `v`, if that changed.
    fn sync_counted(&mut self, tenant: &Tenant, license: LicenseId, v: u32) {
        let live = tenant.licenses.get(&license).and_then(|l| l.counted_in);
        if live == self.counted_last(license) {
            return;
        }
        let Some(index) = self.index_of(license) else {
            return;
        };
        self.counted.entry(index).or_default().push((v, live));
    }

    /// `license` stopped being held at `v`: the other group it counted against, if any.
    fn uncount(&mut self, license: LicenseId, v: u32) -> Option<GroupId> {
        let before = self.counted_last(license)?;
        if let Some(index) = self.licence_index.get(&license) {
            self.counted.entry(*index).or_default().push((v, None));
        }
        Some(before)
    }

    /// `user` took (`added`) or gave back base licence `license` at `v`.
    fn hold(&mut self, user: UserId, license: LicenseId, v: u32, added: bool) {
        let Some(index) = self.index_of(license) else {
            return;
        };
        let licence = if added { index } else { index | REMOVED };
        let last = &mut self.users.entry(user).or_default().last_change;
        if !self.user_changes.push(last, v, licence) {
            self.overflowed = true;
        }
    }

    /// Record the direct usage of `types` in `group` after the event at `v`, where it moved.
    fn record_direct(
        &mut self,
        tenant: &Tenant,
        group: Option<GroupId>,
        types: &[TypeCode],
        v: u32,
    ) {
        let Some(live) = group.and_then(|g| tenant.groups.get(&g)) else {
            return;
        };
        let past = self.groups.entry(live.id).or_default();
        for t in types {
            let Ok(value) = u32::try_from(direct_usage(tenant, live, t)) else {
                self.overflowed = true;
                return;
            };
            let series = match past.direct.get_mut(t) {
                Some(series) => series,
                None => past.direct.entry(t.clone()).or_default(),
            };
            if series.last().map_or(0, |p| p.value) != value {
                series.push(Point { version: v, value });
            }
        }
    }

    /// Give back the room the histories grew into.
    pub fn shrink_to_fit(&mut self) {
        self.definitions.shrink_to_fit();
        self.features.shrink_to_fit();
        self.services.shrink_to_fit();
        for group in self.groups.values_mut() {
            group.own.shrink_to_fit();
            for series in group.direct.values_mut() {
                series.shrink_to_fit();
            }
        }
        for user in self.users.values_mut() {
            user.own.shrink_to_fit();
        }
        self.user_changes.entries.shrink_to_fit();
        self.users.shrink_to_fit();
        self.licences.shrink_to_fit();
        self.licence_index.shrink_to_fit();
        self.bases.shrink_to_fit();
        self.base_changes.entries.shrink_to_fit();
        self.counted.shrink_to_fit();
    }

    /// The index of licence `id`, given one on first sight.
    fn index_of(&mut self, id: LicenseId) -> Option<u32> {
        if let Some(index) = self.licence_index.get(&id) {
            return Some(*index);
        }
        // An index must leave the `REMOVED` bit clear.
        let Some(index) = u32::try_from(self.licences.len())
            .ok()
            .filter(|i| i & REMOVED == 0)
        else {
            self.overflowed = true;
            return None;
        };
        self.licences.push(id);
        self.licence_index.insert(id, index);
        Some(index)
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
        for (_, definition) in self.definitions.iter().take_while(|(at, _)| *at <= version) {
            past.catalogue
                .insert(definition.code.clone(), definition.clone());
        }
        for (_, definition) in self.features.iter().take_while(|(at, _)| *at <= version) {
            past.features
                .insert(definition.code.clone(), definition.clone());
        }
        for (_, service) in self.services.iter().take_while(|(at, _)| *at <= version) {
            past.services.insert(service.code.clone(), service.clone());
        }
        for (key, series) in &self.metered {
            if let Some(figures) = value_at(series, version) {
                past.metered.insert(key.clone(), figures.clone());
            }
        }
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
        for base in self.user_changes.set_at(history.last_change, v) {
            let Some(base_id) = self.licences.get(base as usize).copied() else {
                continue;
            };
            let Some(licence) = live.licenses.get(&base_id) else {
                continue;
            };
            let addons = self
                .bases
                .get(&base)
                .map(|last| self.base_changes.set_at(*last, v))
                .unwrap_or_default();
            let counted_in = self.counted.get(&base).and_then(|series| {
                let after = series.partition_point(|(at, _)| *at <= v);
                after.checked_sub(1).and_then(|i| series[i].1)
            });
            let mut held = License {
                user: Some(id),
                base: None,
                addons: BTreeSet::new(),
                terminated: false,
                counted_in,
                pending: None,
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
