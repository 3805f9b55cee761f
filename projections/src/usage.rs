//! Owned, assigned and free licences per type.

use events::{Tenant, TypeCode};
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
