//! Owned, assigned and free licences per type.

use chrono::{DateTime, Utc};
use events::{Event, Tenant, TypeCode};
use serde::Serialize;
use std::collections::BTreeMap;

/// Counts of one licence type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TypeUsage {
    /// Licences not terminated.
    pub owned: u64,
    /// Base licences held by a user, add-ons attached to a base.
    pub assigned: u64,
    pub free: u64,
}

/// Usage of every type the tenant owns or ever owned, ordered by type code.
pub fn usage(tenant: &Tenant) -> BTreeMap<TypeCode, TypeUsage> {
    tenant
        .owned
        .iter()
        .map(|(t, &owned)| {
            let assigned = tenant.assigned_count(t);
            let usage = TypeUsage {
                owned,
                assigned,
                free: owned - assigned,
            };
            (t.clone(), usage)
        })
        .collect()
}

/// Usage of one type from an instant on (16 bytes: a tenant holds far fewer than 2³² licences,
/// see `events::decide::LICENSES_PER_TENANT_MAX`, and times are whole microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, Serialize)]
struct UsagePoint {
    /// Microseconds since the Unix epoch.
    at: i64,
    owned: u32,
    assigned: u32,
}

/// [`usage`] at every instant the tenant's events were recorded: what `usage?at=` answers
/// from, by binary search, without folding the tenant's past state. One point per type an
/// event changed, merged per instant (a group commit records all its events at one instant),
/// so it grows with the tenant's commits, never with its licences.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
pub struct UsageHistory {
    types: BTreeMap<TypeCode, Vec<UsagePoint>>,
}

/// The type whose owned or assigned count `event` changes: only these events change them (see
/// `events::evolve`), so every other event leaves each line's last point true.
fn counted_type(event: &Event) -> Option<&TypeCode> {
    match event {
        Event::LicensesProvisioned { license_type, .. }
        | Event::LicenseTerminated { license_type, .. }
        | Event::LicenseAssigned { license_type, .. }
        | Event::LicenseUnassigned { license_type, .. } => Some(license_type),
        Event::AddonAttached { addon_type, .. } | Event::AddonDetached { addon_type, .. } => {
            Some(addon_type)
        }
        _ => None,
    }
}

impl UsageHistory {
    /// Note the usage of the type `event` changes the counts of, as `state` holds it after the
    /// event, recorded at `recorded_at` (never earlier than the event before).
    pub fn apply(&mut self, recorded_at: DateTime<Utc>, event: &Event, state: &Tenant) {
        let Some(t) = counted_type(event) else {
            return;
        };
        let Some((owned, assigned)) = state.owned_and_assigned(t) else {
            return;
        };
        let point = UsagePoint {
            at: recorded_at.timestamp_micros(),
            owned: u32::try_from(owned).unwrap_or(u32::MAX),
            assigned: u32::try_from(assigned).unwrap_or(u32::MAX),
        };
        let line = match self.types.get_mut(t) {
            Some(line) => line,
            None => self.types.entry(t.clone()).or_default(),
        };
        match line.last_mut() {
            Some(last) if last.at == point.at => *last = point,
            Some(last) if last.owned == point.owned && last.assigned == point.assigned => {}
            _ => line.push(point),
        }
    }

    /// The tenant's [`usage`] after every event recorded at or before `at`.
    pub fn at(&self, at: DateTime<Utc>) -> BTreeMap<TypeCode, TypeUsage> {
        // Events are stamped in whole microseconds: one is at or before `at` exactly when it
        // is at or before `at` rounded down to the microsecond.
        let at = at.timestamp_micros();
        self.types
            .iter()
            .filter_map(|(t, line)| {
                let after = line.partition_point(|p| p.at <= at);
                let point = line.get(after.checked_sub(1)?)?;
                let usage = TypeUsage {
                    owned: u64::from(point.owned),
                    assigned: u64::from(point.assigned),
                    free: u64::from(point.owned.saturating_sub(point.assigned)),
                };
                Some((t.clone(), usage))
            })
            .collect()
    }

    /// Give back the room the lines grew into (after a replay).
    pub fn shrink_to_fit(&mut self) {
        self.types.values_mut().for_each(Vec::shrink_to_fit);
    }
}
