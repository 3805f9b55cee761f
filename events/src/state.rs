//! The state of one tenant, as `evolve` folds it from events. It is what `decide` judges
//! commands against, and what the current-state queries read.

use crate::catalogue::{Catalogue, Features, Kind};
use crate::event::{Event, EventHash, Restriction, Retention, Role, UserRestriction};
use crate::ids::{CartId, GroupId, KeyId, LicenseId, TenantId, TypeCode, UserId};
use crate::index::IdMap;
use crate::metering::{CapReached, MeteredMonth, RecordOutcome, Service, ServiceMonth};
use crate::notification::NotificationTemplate;
use crate::time::{billing_zone, Month};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// A base licence's type and its add-ons' ([`Tenant::license_with_addon_types`]): held
/// inline up to four, as nearly every licence is.
pub type LicenseTypes = smallvec::SmallVec<[TypeCode; 4]>;

/// Whether a licence can be handed out, is in use, or is gone for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LicenseStatus {
    Free,
    Assigned,
    Terminated,
}

impl LicenseStatus {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            LicenseStatus::Free => "free",
            LicenseStatus::Assigned => "assigned",
            LicenseStatus::Terminated => "terminated",
        }
    }
}

/// One licence instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    pub id: LicenseId,
    pub license_type: TypeCode,
    pub kind: Kind,
    /// For a base licence: the user holding it.
    pub user: Option<UserId>,
    /// For an add-on: the base licence it is attached to.
    pub base: Option<LicenseId>,
    /// For a base licence: the add-ons attached to it.
    pub addons: BTreeSet<LicenseId>,
    pub terminated: bool,
    /// Tenant version of the event that provisioned it (newest are terminated first).
    pub provisioned_version: u64,
    /// For a base licence held by a user: the other group of the user's it counts against
    /// (with its add-ons); `None`: the user's own group.
    #[serde(default)]
    pub counted_in: Option<GroupId>,
    /// Where the licence will count once `user` takes it (set by a `LicenseCountedIn` that
    /// precedes the assignment or reassignment in the same command, which clears it).
    #[serde(default)]
    pub pending: Option<(UserId, GroupId)>,
}

impl License {
    /// Free, assigned (a base held by a user, an add-on attached to a base) or terminated.
    pub fn status(&self) -> LicenseStatus {
        if self.terminated {
            LicenseStatus::Terminated
        } else if self.user.is_some() || self.base.is_some() {
            LicenseStatus::Assigned
        } else {
            LicenseStatus::Free
        }
    }
}

/// A group of the tenant's tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    pub name: String,
    pub parent: Option<GroupId>,
    pub children: BTreeSet<GroupId>,
    pub restriction: Option<Restriction>,
    /// The group administrator's own contact address; without one the group inherits its
    /// nearest ancestor's ([`Tenant::effective_contact`]).
    pub contact_email: Option<String>,
    /// Licences of each type held by users anywhere in this group's subtree.
    pub used: BTreeMap<TypeCode, u64>,
    /// The features this group's restriction switches on (`true`) or off (`false`); absent
    /// ones are inherited. They count only while the restriction is enabled, and go with it
    /// when it is cleared.
    pub features: BTreeMap<TypeCode, bool>,
}

impl Group {
    /// The restriction, if it is enabled.
    pub fn enabled_restriction(&self) -> Option<&Restriction> {
        self.restriction.as_ref().filter(|r| r.enabled)
    }

    /// Licences of `license_type` used in the subtree.
    pub fn used_of(&self, license_type: &TypeCode) -> u64 {
        self.used.get(license_type).copied().unwrap_or(0)
    }

    /// How the group's enabled restriction switches `feature`: `Some(true)` on,
    /// `Some(false)` off, `None` inherited (or no enabled restriction).
    pub fn feature_switch(&self, feature: &TypeCode) -> Option<bool> {
        self.enabled_restriction()?;
        self.features.get(feature).copied()
    }
}

/// A user of the tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub group: GroupId,
    pub extension: Option<String>,
    pub number: Option<String>,
    pub removed: bool,
    /// Base licences held.
    pub licenses: BTreeSet<LicenseId>,
    /// The user's personal limits and validity window, inside their group's.
    #[serde(default)]
    pub restriction: Option<UserRestriction>,
    /// The other groups the user belongs to besides their own (`group`); never contains it.
    #[serde(default)]
    pub other_groups: BTreeSet<GroupId>,
}

impl User {
    /// Whether the user belongs to `group`: their own or one of their other groups.
    pub fn belongs_to(&self, group: GroupId) -> bool {
        self.group == group || self.other_groups.contains(&group)
    }

    /// Every group the user belongs to: their own first, then the others.
    pub fn all_groups(&self) -> impl Iterator<Item = GroupId> + '_ {
        std::iter::once(self.group).chain(self.other_groups.iter().copied())
    }

    /// The user's personal limit of `license_type`, if they have one.
    pub fn limit_of(&self, license_type: &TypeCode) -> Option<u64> {
        self.restriction.as_ref()?.limits.get(license_type).copied()
    }
}

/// Groups a restriction change unblocked, owed to the webhook as an `unblocked` notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unblock {
    /// The group whose restriction changed.
    pub group: GroupId,
    /// Every group it unblocked.
    pub groups: Vec<GroupId>,
    /// Active users directly in those groups.
    pub users: u64,
    pub at: DateTime<Utc>,
}

/// An API key (the token itself is never stored, only its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: KeyId,
    pub name: String,
    pub role: Role,
    pub token_hash: [u8; 32],
    pub revoked: bool,
    /// For a dealer's key: the group whose subtree it reads and manages.
    #[serde(default)]
    pub group: Option<GroupId>,
}

/// A price in force from an instant on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub unit_price_minor: i64,
    pub currency: String,
    pub effective_from: DateTime<Utc>,
}

/// Everything known about one tenant at a version of its stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub billing_timezone: String,
    pub currency: String,
    /// Number of events in the tenant's stream.
    pub version: u64,
    /// Hash of the tenant's last event.
    pub last_hash: EventHash,
    pub catalogue: Catalogue,
    /// The catalogue's features (`kind: "feature"`), apart from the licence types.
    pub features: Features,
    pub licenses: IdMap<LicenseId, License>,
    /// Free licences per type (a base: unassigned; an add-on: unattached).
    pub free: BTreeMap<TypeCode, BTreeSet<LicenseId>>,
    /// Licences not terminated, per type.
    pub owned: BTreeMap<TypeCode, u64>,
    pub groups: BTreeMap<GroupId, Group>,
    pub users: IdMap<UserId, User>,
    /// Extension of every user not removed.
    pub extensions: BTreeMap<String, UserId>,
    pub retention: Retention,
    pub prices: BTreeMap<TypeCode, Vec<Price>>,
    pub keys: BTreeMap<KeyId, ApiKey>,
    /// Where due expiry reminders are delivered.
    pub webhook: Option<String>,
    /// Reminders delivered: the group and the instant each was due.
    pub reminders_delivered: BTreeSet<(GroupId, DateTime<Utc>)>,
    /// The reminder template set by the tenant; `None`: the default applies.
    pub notification_template: Option<NotificationTemplate>,
    /// What webhook deliveries are signed with; `None` for a webhook set before signing
    /// existed (its deliveries go unsigned until it is set again).
    pub webhook_secret: Option<WebhookSecret>,
    /// `unblocked` notifications owed to the webhook, by the version of their
    /// `groups_unblocked` event (only those that happened while a webhook was set).
    pub unblocks_owed: BTreeMap<u64, Unblock>,
    /// Metered services, by code.
    #[serde(default)]
    pub services: BTreeMap<TypeCode, Service>,
    /// Each service's consumption per month (in the billing time zone).
    #[serde(default)]
    pub metered: BTreeMap<ServiceMonth, MeteredMonth>,
    /// The usage record ids seen, per month of occurrence, hashed: the newest month seen and
    /// the one before it (records are accepted for the current and the previous month only).
    #[serde(default)]
    pub record_ids: BTreeMap<Month, RecordIds>,
    /// Carts stored, confirmed or not.
    #[serde(default)]
    pub carts: BTreeMap<CartId, Cart>,
}

/// A stored cart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// The what-if commands, as JSON.
    pub commands: String,
    /// The tenant version the cart was stored at: it may be confirmed only there.
    pub version: u64,
    /// The version it was previewed at (just before it was stored).
    pub previewed_version: u64,
    pub amount_minor_delta: i64,
    /// The version of its `cart_confirmed` event, once confirmed.
    pub confirmed_version: Option<u64>,
}

/// Hashes of usage record ids (blake3, 128 bits).
pub type RecordIds = HashSet<u128, foldhash::fast::FixedState>;

/// The hash a usage record id is remembered by.
pub fn record_id_hash(id: &str) -> u128 {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&blake3::hash(id.as_bytes()).as_bytes()[..16]);
    u128::from_le_bytes(bytes)
}

/// The secret of a tenant's webhook and the tenant version that set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecret {
    pub secret: String,
    pub version: u64,
}

impl Tenant {
    /// The empty state before a tenant's first event.
    pub fn empty(id: TenantId) -> Tenant {
        Tenant {
            id,
            name: String::new(),
            billing_timezone: "UTC".into(),
            currency: "EUR".into(),
            version: 0,
            last_hash: EventHash::default(),
            catalogue: Catalogue::new(),
            features: Features::new(),
            licenses: IdMap::new(),
            free: BTreeMap::new(),
            owned: BTreeMap::new(),
            groups: BTreeMap::new(),
            users: IdMap::new(),
            extensions: BTreeMap::new(),
            retention: Retention::default(),
            prices: BTreeMap::new(),
            keys: BTreeMap::new(),
            webhook: None,
            reminders_delivered: BTreeSet::new(),
            notification_template: None,
            webhook_secret: None,
            unblocks_owed: BTreeMap::new(),
            services: BTreeMap::new(),
            metered: BTreeMap::new(),
            record_ids: BTreeMap::new(),
            carts: BTreeMap::new(),
        }
    }

    /// Whether `feature` is on in `group` by the switches on its path to the root (enabled
    /// restrictions only): off when any group switches it off, else on when any switches it
    /// on, else the catalogue's default. With the group that decides it (the nearest one
    /// switching it off, else the nearest switching it on); `None` when the default decides.
    pub fn effective_feature(&self, group: GroupId, feature: &TypeCode) -> (bool, Option<GroupId>) {
        let switches: Vec<(GroupId, bool)> = self
            .path_to_root(group)
            .into_iter()
            .filter_map(|id| Some((id, self.groups.get(&id)?.feature_switch(feature)?)))
            .collect();
        if let Some((id, _)) = switches.iter().find(|(_, on)| !on) {
            return (false, Some(*id));
        }
        if let Some((id, _)) = switches.first() {
            return (true, Some(*id));
        }
        let default = self
            .features
            .get(feature)
            .is_some_and(|f| f.enabled_by_default);
        (default, None)
    }

    /// A user that exists and was not removed.
    pub fn active_user(&self, user: UserId) -> Option<&User> {
        self.users.get(&user).filter(|u| !u.removed)
    }

    /// The group and its ancestors, nearest first. Bounded by the number of groups, so a
    /// corrupt parent cycle cannot loop forever.
    pub fn path_to_root(&self, group: GroupId) -> Vec<GroupId> {
        let mut path = Vec::new();
        let mut next = Some(group);
        while let Some(id) = next {
            if path.len() > self.groups.len() {
                break;
            }
            path.push(id);
            next = self.groups.get(&id).and_then(|g| g.parent);
        }
        path
    }

    /// Every group in the subtree of `group`, itself first.
    pub fn subtree(&self, group: GroupId) -> Vec<GroupId> {
        let mut out = vec![group];
        let mut index = 0;
        while index < out.len() {
            if let Some(g) = self.groups.get(&out[index]) {
                out.extend(g.children.iter().copied());
            }
            index += 1;
            if out.len() > self.groups.len() {
                break;
            }
        }
        out
    }

    /// The group whose quota a licence counts against: for a base held by a user, the group
    /// it was counted in (`counted_in`) or else the user's own group; for an add-on, its
    /// base's. `None` for a licence nobody holds.
    pub fn counting_group(&self, license: &License) -> Option<GroupId> {
        let base = match license.base {
            Some(base) => self.licenses.get(&base)?,
            None => license,
        };
        let holder = self.users.get(&base.user?)?;
        Some(base.counted_in.unwrap_or(holder.group))
    }

    /// Types a user holds in licences counted against their own group.
    pub fn holdings_in_own_group(&self, user: UserId) -> Vec<TypeCode> {
        let Some(user) = self.users.get(&user) else {
            return vec![];
        };
        let mut types = Vec::new();
        for id in &user.licenses {
            if let Some(license) = self.licenses.get(id).filter(|l| l.counted_in.is_none()) {
                types.extend(self.license_with_addon_types(license));
            }
        }
        types
    }

    /// Types a user holds in licences counted against `group`, one of their other groups.
    pub fn holdings_counted_in(&self, user: UserId, group: GroupId) -> Vec<TypeCode> {
        let Some(user) = self.users.get(&user) else {
            return vec![];
        };
        let mut types = Vec::new();
        for id in &user.licenses {
            if let Some(license) = self
                .licenses
                .get(id)
                .filter(|l| l.counted_in == Some(group))
            {
                types.extend(self.license_with_addon_types(license));
            }
        }
        types
    }

    /// Move the usage of `license` (with its add-ons) from the group it counts in to
    /// `group`, and record where it counts (`None`: the holder's own group).
    fn count_in(&mut self, license: LicenseId, group: Option<GroupId>) {
        let Some(l) = self.licenses.get(&license) else {
            return;
        };
        let types = self.license_with_addon_types(l);
        let from = self.counting_group(l);
        let holder_group = l.user.and_then(|u| self.user_group(u));
        if let Some(from) = from {
            self.add_usage(from, &types, -1);
        }
        if let Some(to) = group.or(holder_group) {
            self.add_usage(to, &types, 1);
        }
        if let Some(l) = self.licenses.get_mut(&license) {
            l.counted_in = group.filter(|g| Some(*g) != holder_group);
        }
    }

    /// The other group `license` will count in for `user` (from a preceding
    /// `LicenseCountedIn`), recorded as its `counted_in`; the pending note is cleared.
    fn take_pending(
        &mut self,
        license: LicenseId,
        user: UserId,
        own: Option<GroupId>,
    ) -> Option<GroupId> {
        let l = self.licenses.get_mut(&license)?;
        let counted = l
            .pending
            .take()
            .filter(|(u, _)| *u == user)
            .map(|(_, g)| g)
            .filter(|g| Some(*g) != own);
        l.counted_in = counted;
        counted
    }

    /// Types a user holds: each base licence and every add-on attached to it.
    pub fn holdings(&self, user: UserId) -> Vec<TypeCode> {
        let Some(user) = self.users.get(&user) else {
            return vec![];
        };
        let mut types = Vec::new();
        for id in &user.licenses {
            if let Some(license) = self.licenses.get(id) {
                types.extend(self.license_with_addon_types(license));
            }
        }
        types
    }

    /// Licences of `license_type` a user holds: bases and the add-ons attached to them.
    pub fn held_count(&self, user: UserId, license_type: &TypeCode) -> u64 {
        self.holdings(user)
            .iter()
            .filter(|t| *t == license_type)
            .count() as u64
    }

    /// The type of a licence followed by the types of its attached add-ons.
    pub fn license_with_addon_types(&self, license: &License) -> LicenseTypes {
        let mut types = LicenseTypes::new();
        types.push(license.license_type.clone());
        types.extend(
            license
                .addons
                .iter()
                .filter_map(|a| self.licenses.get(a))
                .map(|a| a.license_type.clone()),
        );
        types
    }

    /// Licences assigned (or attached), per type.
    pub fn assigned_count(&self, license_type: &TypeCode) -> u64 {
        self.owned_and_assigned(license_type)
            .map_or(0, |(_, assigned)| assigned)
    }

    /// Licences of a type not terminated, and of those the ones assigned (or attached);
    /// `None` for a type never provisioned.
    pub fn owned_and_assigned(&self, license_type: &TypeCode) -> Option<(u64, u64)> {
        let owned = *self.owned.get(license_type)?;
        let free = self.free.get(license_type).map_or(0, |f| f.len() as u64);
        Some((owned, owned.saturating_sub(free)))
    }

    /// The effective validity window of a group: the intersection of the windows of every
    /// enabled restriction on its path to the root.
    pub fn effective_window(
        &self,
        group: GroupId,
    ) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let mut from: Option<DateTime<Utc>> = None;
        let mut until: Option<DateTime<Utc>> = None;
        for id in self.path_to_root(group) {
            let Some(r) = self.groups.get(&id).and_then(|g| g.enabled_restriction()) else {
                continue;
            };
            if let Some(f) = r.valid_from {
                from = Some(from.map_or(f, |x| x.max(f)));
            }
            if let Some(u) = r.valid_until {
                until = Some(until.map_or(u, |x| x.min(u)));
            }
        }
        (from, until)
    }

    /// The contact address that holds for a group: its own, else its nearest ancestor's that
    /// has one; with the group it comes from.
    pub fn effective_contact(&self, group: GroupId) -> Option<(GroupId, &str)> {
        self.path_to_root(group).into_iter().find_map(|id| {
            let email = self.groups.get(&id)?.contact_email.as_deref()?;
            Some((id, email))
        })
    }

    /// The tightest enabled limit of `license_type` on `group`'s path to the root, with the
    /// group that sets it; `None` when no group on the path limits the type.
    pub fn effective_limit(
        &self,
        group: GroupId,
        license_type: &TypeCode,
    ) -> Option<(GroupId, u64)> {
        self.path_to_root(group)
            .into_iter()
            .filter_map(|id| {
                let limit = *self
                    .groups
                    .get(&id)?
                    .enabled_restriction()?
                    .limits
                    .get(license_type)?;
                Some((id, limit))
            })
            .min_by_key(|(_, limit)| *limit)
    }

    fn add_usage(&mut self, group: GroupId, types: &[TypeCode], sign: i64) {
        self.shift_usage_by(group, types.iter().map(|t| (t, 1)), sign);
    }

    fn shift_usage_by<'t>(
        &mut self,
        group: GroupId,
        amounts: impl Iterator<Item = (&'t TypeCode, u64)> + Clone,
        sign: i64,
    ) {
        let mut next = Some(group);
        let mut steps = 0;
        while let Some(id) = next {
            steps += 1;
            if steps > self.groups.len() + 1 {
                break;
            }
            let Some(g) = self.groups.get_mut(&id) else {
                break;
            };
            for (t, n) in amounts.clone() {
                match g.used.get_mut(t) {
                    Some(counter) => {
                        *counter = if sign >= 0 {
                            counter.saturating_add(n)
                        } else {
                            counter.saturating_sub(n)
                        };
                        if *counter == 0 {
                            g.used.remove(t);
                        }
                    }
                    None if sign >= 0 && n > 0 => {
                        g.used.insert(t.clone(), n);
                    }
                    None => {}
                }
            }
            next = g.parent;
        }
    }

    /// Add (`sign` 1) or remove (`sign` -1) `amounts` on `group` and every ancestor.
    fn shift_usage(&mut self, group: GroupId, amounts: &[(TypeCode, u64)], sign: i64) {
        self.shift_usage_by(group, amounts.iter().map(|(t, n)| (t, *n)), sign);
    }

    fn set_free(&mut self, license: LicenseId, free: bool) {
        let Some(l) = self.licenses.get(&license) else {
            return;
        };
        let set = match self.free.get_mut(&l.license_type) {
            Some(set) => set,
            None => self.free.entry(l.license_type.clone()).or_default(),
        };
        if free {
            set.insert(license);
        } else {
            set.remove(&license);
        }
    }

    fn user_group(&self, user: UserId) -> Option<GroupId> {
        self.users.get(&user).map(|u| u.group)
    }
}

/// Fold one event into the state. Infallible and unvalidated: `decide` validated it before it
/// was stored. Advances `version` by one.
pub fn evolve(state: &mut Tenant, event: &Event, version_of_event: u64) {
    state.version = version_of_event;
    match event {
        Event::TenantCreated {
            name,
            billing_timezone,
            currency,
        } => {
            state.name = name.clone();
            state.billing_timezone = billing_timezone.clone();
            state.currency = currency.clone();
        }
        Event::LicenseTypeDefined { definition } => {
            state
                .catalogue
                .insert(definition.code.clone(), definition.clone());
        }
        Event::LicensesProvisioned { license_type, ids } => {
            let kind = state
                .catalogue
                .get(license_type)
                .map_or(Kind::Base, |t| t.kind);
            for id in ids {
                state.licenses.insert(
                    *id,
                    License {
                        id: *id,
                        license_type: license_type.clone(),
                        kind,
                        user: None,
                        base: None,
                        addons: BTreeSet::new(),
                        terminated: false,
                        provisioned_version: version_of_event,
                        counted_in: None,
                        pending: None,
                    },
                );
                state
                    .free
                    .entry(license_type.clone())
                    .or_default()
                    .insert(*id);
            }
            *state.owned.entry(license_type.clone()).or_insert(0) += ids.len() as u64;
        }
        Event::LicenseTerminated {
            license,
            license_type,
        } => {
            state.set_free(*license, false);
            if let Some(l) = state.licenses.get_mut(license) {
                l.terminated = true;
            }
            if let Some(owned) = state.owned.get_mut(license_type) {
                *owned = owned.saturating_sub(1);
            }
        }
        Event::LicenseAssigned { license, user, .. } => {
            state.set_free(*license, false);
            let own = state.user_group(*user);
            let counted = state.take_pending(*license, *user, own);
            if let Some(l) = state.licenses.get_mut(license) {
                l.user = Some(*user);
            }
            if let Some(u) = state.users.get_mut(user) {
                u.licenses.insert(*license);
            }
            if let (Some(group), Some(l)) = (counted.or(own), state.licenses.get(license)) {
                let types = state.license_with_addon_types(l);
                state.add_usage(group, &types, 1);
            }
        }
        Event::LicenseUnassigned { license, user, .. } => {
            if let Some(l) = state.licenses.get(license) {
                let types = state.license_with_addon_types(l);
                if let Some(group) = state.counting_group(l).or(state.user_group(*user)) {
                    state.add_usage(group, &types, -1);
                }
            }
            state.set_free(*license, true);
            if let Some(l) = state.licenses.get_mut(license) {
                l.user = None;
                l.counted_in = None;
            }
            if let Some(u) = state.users.get_mut(user) {
                u.licenses.remove(license);
            }
        }
        Event::LicenseReassigned {
            license, from, to, ..
        } => {
            let own = state.user_group(*to);
            if let Some(l) = state.licenses.get(license) {
                let types = state.license_with_addon_types(l);
                let pending = l.pending.filter(|(u, _)| u == to).map(|(_, g)| g);
                if let Some(group) = state.counting_group(l).or(state.user_group(*from)) {
                    state.add_usage(group, &types, -1);
                }
                if let Some(group) = pending.or(own) {
                    state.add_usage(group, &types, 1);
                }
            }
            state.take_pending(*license, *to, own);
            if let Some(l) = state.licenses.get_mut(license) {
                l.user = Some(*to);
            }
            if let Some(u) = state.users.get_mut(from) {
                u.licenses.remove(license);
            }
            if let Some(u) = state.users.get_mut(to) {
                u.licenses.insert(*license);
            }
        }
        Event::AddonAttached {
            addon,
            addon_type,
            base,
        } => {
            state.set_free(*addon, false);
            if let Some(a) = state.licenses.get_mut(addon) {
                a.base = Some(*base);
            }
            if let Some(b) = state.licenses.get_mut(base) {
                b.addons.insert(*addon);
            }
            let group = state
                .licenses
                .get(base)
                .and_then(|b| state.counting_group(b));
            if let Some(group) = group {
                state.add_usage(group, std::slice::from_ref(addon_type), 1);
            }
        }
        Event::AddonDetached {
            addon,
            addon_type,
            base,
        } => {
            state.set_free(*addon, true);
            if let Some(a) = state.licenses.get_mut(addon) {
                a.base = None;
            }
            if let Some(b) = state.licenses.get_mut(base) {
                b.addons.remove(addon);
            }
            let group = state
                .licenses
                .get(base)
                .and_then(|b| state.counting_group(b));
            if let Some(group) = group {
                state.add_usage(group, std::slice::from_ref(addon_type), -1);
            }
        }
        Event::GroupCreated {
            group,
            name,
            parent,
        } => {
            state.groups.insert(
                *group,
                Group {
                    id: *group,
                    name: name.clone(),
                    parent: *parent,
                    children: BTreeSet::new(),
                    restriction: None,
                    contact_email: None,
                    used: BTreeMap::new(),
                    features: BTreeMap::new(),
                },
            );
            if let Some(p) = parent.and_then(|p| state.groups.get_mut(&p)) {
                p.children.insert(*group);
            }
        }
        Event::GroupMoved { group, parent } => {
            let Some(g) = state.groups.get(group) else {
                return;
            };
            let used: Vec<(TypeCode, u64)> = g.used.iter().map(|(t, n)| (t.clone(), *n)).collect();
            let old_parent = g.parent;
            if let Some(old) = old_parent {
                state.shift_usage(old, &used, -1);
                if let Some(p) = state.groups.get_mut(&old) {
                    p.children.remove(group);
                }
            }
            if let Some(new) = parent {
                if let Some(p) = state.groups.get_mut(new) {
                    p.children.insert(*group);
                }
                state.shift_usage(*new, &used, 1);
            }
            if let Some(g) = state.groups.get_mut(group) {
                g.parent = *parent;
            }
        }
        Event::GroupRenamed { group, name } => {
            if let Some(g) = state.groups.get_mut(group) {
                g.name = name.clone();
            }
        }
        Event::RestrictionSet { group, restriction } => {
            if let Some(g) = state.groups.get_mut(group) {
                g.restriction = Some(restriction.clone());
            }
        }
        Event::GroupContactSet {
            group,
            contact_email,
        } => {
            if let Some(g) = state.groups.get_mut(group) {
                g.contact_email = contact_email.clone();
            }
        }
        Event::RestrictionCleared { group } => {
            if let Some(g) = state.groups.get_mut(group) {
                g.restriction = None;
                g.features.clear();
            }
        }
        Event::RestrictionFeaturesSet { group, features } => {
            if let Some(g) = state.groups.get_mut(group) {
                g.features = features.clone();
            }
        }
        Event::FeatureDefined { definition } => {
            state
                .features
                .insert(definition.code.clone(), definition.clone());
        }
        Event::UserCreated {
            user,
            name,
            group,
            extension,
            number,
        } => {
            if let Some(ext) = extension {
                state.extensions.insert(ext.clone(), *user);
            }
            state.users.insert(
                *user,
                User {
                    id: *user,
                    name: name.clone(),
                    group: *group,
                    extension: extension.clone(),
                    number: number.clone(),
                    removed: false,
                    licenses: BTreeSet::new(),
                    restriction: None,
                    other_groups: BTreeSet::new(),
                },
            );
        }
        Event::UserMoved { user, group } => {
            // What counts against the user's own group moves with them; what counts against
            // one of their other groups stays there. Moving into one of the other groups
            // makes it their own: what counted there still does.
            let holdings = state.holdings_in_own_group(*user);
            if let Some(old) = state.user_group(*user) {
                state.add_usage(old, &holdings, -1);
            }
            state.add_usage(*group, &holdings, 1);
            if let Some(u) = state.users.get_mut(user) {
                u.group = *group;
                u.other_groups.remove(group);
                let held: Vec<LicenseId> = u.licenses.iter().copied().collect();
                for id in held {
                    if let Some(l) = state.licenses.get_mut(&id) {
                        if l.counted_in == Some(*group) {
                            l.counted_in = None;
                        }
                    }
                }
            }
        }
        Event::UserGroupAdded { user, group } => {
            if let Some(u) = state.users.get_mut(user) {
                u.other_groups.insert(*group);
            }
        }
        Event::UserGroupRemoved { user, group } => {
            let counted: Vec<LicenseId> = state.users.get(user).map_or_else(Vec::new, |u| {
                u.licenses
                    .iter()
                    .copied()
                    .filter(|id| {
                        state
                            .licenses
                            .get(id)
                            .is_some_and(|l| l.counted_in == Some(*group))
                    })
                    .collect()
            });
            for id in counted {
                state.count_in(id, None);
            }
            if let Some(u) = state.users.get_mut(user) {
                u.other_groups.remove(group);
            }
        }
        Event::LicenseCountedIn {
            license,
            user,
            group,
        } => {
            let held_by_user = state
                .licenses
                .get(license)
                .is_some_and(|l| l.user == Some(*user));
            if held_by_user {
                state.count_in(*license, Some(*group));
            } else if let Some(l) = state.licenses.get_mut(license) {
                l.pending = Some((*user, *group));
            }
        }
        Event::CartCreated {
            cart,
            commands,
            previewed_version,
            amount_minor_delta,
        } => {
            state.carts.insert(
                *cart,
                Cart {
                    commands: commands.clone(),
                    version: version_of_event,
                    previewed_version: *previewed_version,
                    amount_minor_delta: *amount_minor_delta,
                    confirmed_version: None,
                },
            );
        }
        Event::CartConfirmed { cart, .. } => {
            if let Some(c) = state.carts.get_mut(cart) {
                c.confirmed_version = Some(version_of_event);
            }
        }
        Event::ServiceDefined { service } => {
            state.services.insert(service.code.clone(), service.clone());
        }
        Event::UsageRecorded { records } => {
            let zone = billing_zone(&state.billing_timezone);
            for record in records {
                let month = Month::of(record.occurred_at, zone);
                let maximum = state
                    .services
                    .get(&record.service)
                    .and_then(|s| s.monthly_maximum());
                let figures = state
                    .metered
                    .entry((record.service.clone(), month))
                    .or_default();
                figures.used = figures.used.saturating_add(record.counted);
                figures.reported = figures.reported.saturating_add(record.quantity);
                figures.records += 1;
                let reached = record.outcome == RecordOutcome::Capped
                    || maximum.is_some_and(|m| record.counted > 0 && figures.used >= m);
                if reached && figures.cap_reached.is_none() {
                    figures.cap_reached = Some(CapReached {
                        version: version_of_event,
                        record: record.id.clone(),
                        occurred_at: record.occurred_at,
                    });
                }
                state
                    .record_ids
                    .entry(month)
                    .or_default()
                    .insert(record_id_hash(&record.id));
            }
            // Only the newest month seen and the one before it can take records.
            while state.record_ids.len() > 2 {
                state.record_ids.pop_first();
            }
        }
        Event::UserRenamed { user, name } => {
            if let Some(u) = state.users.get_mut(user) {
                u.name = name.clone();
            }
        }
        Event::UserRemoved { user } => {
            if let Some(u) = state.users.get_mut(user) {
                u.removed = true;
                if let Some(ext) = &u.extension {
                    state.extensions.remove(ext);
                }
            }
        }
        Event::RetentionSet { retention } => state.retention = *retention,
        Event::PriceSet {
            license_type,
            unit_price_minor,
            currency,
            effective_from,
        } => {
            let prices = state.prices.entry(license_type.clone()).or_default();
            prices.push(Price {
                unit_price_minor: *unit_price_minor,
                currency: currency.clone(),
                effective_from: *effective_from,
            });
            prices.sort_by_key(|p| p.effective_from);
        }
        Event::ApiKeyIssued { .. } | Event::ScopedApiKeyIssued { .. } => {
            if let Some(issued) = event.issued_key() {
                state.keys.insert(
                    issued.key,
                    ApiKey {
                        id: issued.key,
                        name: issued.name.to_string(),
                        role: issued.role,
                        token_hash: issued.token_hash,
                        revoked: false,
                        group: issued.group,
                    },
                );
            }
        }
        Event::UserNumbersSet {
            user,
            extension,
            number,
        } => {
            if let Some(u) = state.users.get_mut(user) {
                if let Some(old) = u.extension.take() {
                    state.extensions.remove(&old);
                }
                u.extension = extension.clone();
                u.number = number.clone();
                if let Some(ext) = extension {
                    state.extensions.insert(ext.clone(), *user);
                }
            }
        }
        Event::WebhookSet { url } => state.webhook = Some(url.clone()),
        Event::ReminderDelivered { group, due_at } => {
            state.reminders_delivered.insert((*group, *due_at));
        }
        Event::NotificationTemplateSet { template } => {
            state.notification_template = Some(template.clone());
        }
        Event::GroupsUnblocked {
            group,
            groups,
            users,
            at,
        } => {
            if state.webhook.is_some() {
                state.unblocks_owed.insert(
                    version_of_event,
                    Unblock {
                        group: *group,
                        groups: groups.clone(),
                        users: *users,
                        at: *at,
                    },
                );
            }
        }
        Event::UnblockedNotified { version } => {
            state.unblocks_owed.remove(version);
        }
        Event::WebhookSecretSet { secret } => {
            state.webhook_secret = Some(WebhookSecret {
                secret: secret.clone(),
                version: version_of_event,
            });
        }
        Event::ApiKeyRevoked { key } => {
            if let Some(k) = state.keys.get_mut(key) {
                k.revoked = true;
            }
        }
        Event::UserRestrictionSet { user, restriction } => {
            if let Some(u) = state.users.get_mut(user) {
                u.restriction = Some(restriction.clone());
            }
        }
        Event::UserRestrictionCleared { user } => {
            if let Some(u) = state.users.get_mut(user) {
                u.restriction = None;
            }
        }
    }
}
