//! Metered-service rules: defining a service (switch, allowance, cap, requirements) and
//! judging usage records against this month's cap.

use super::catalogue::kind_change;
use super::common::{check_name, invalid, one};
use super::{
    CATALOGUE_REFERENCES_MAX, NAME_BYTES_MAX, SERVICES_PER_TENANT_MAX, USAGE_QUANTITY_MAX,
    USAGE_RECORDS_PER_BATCH_MAX, USAGE_RECORD_ID_BYTES_MAX,
};
use crate::command::Context;
use crate::event::Event;
use crate::ids::TypeCode;
use crate::metering::{NewUsageRecord, RecordOutcome, Service, UsageRecord};
use crate::rejection::{Rejection, Rule, Violation};
use crate::state::{record_id_hash, Tenant};
use crate::time::{billing_zone, truncate_to_micros, Month};
use chrono::Duration;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// Longest unit name, in bytes.
const UNIT_BYTES_MAX: usize = 32;
/// How far ahead of the server clock a record may say it occurred (clocks drift).
const FUTURE_SLACK_MINUTES: i64 = 5;

pub(super) fn define_service(state: &Tenant, service: &Service) -> Result<Vec<Event>, Rejection> {
    check_name(&service.name)?;
    let code = &service.code;
    if state.catalogue.contains_key(code) {
        return Err(one(kind_change(
            code,
            "a licence type",
            "a metered service",
        )));
    }
    if state.features.contains_key(code) {
        return Err(one(kind_change(code, "a feature", "a metered service")));
    }
    if service.unit.trim().is_empty() || service.unit.len() > UNIT_BYTES_MAX {
        return Err(invalid(format!(
            "unit must be 1 to {UNIT_BYTES_MAX} bytes, e.g. minute"
        )));
    }
    let bound = |field: &str, value: u64| {
        if value > USAGE_QUANTITY_MAX {
            Err(invalid(format!(
                "{field} must be at most {USAGE_QUANTITY_MAX}"
            )))
        } else {
            Ok(())
        }
    };
    bound("base_allowance", service.base_allowance)?;
    if let Some(cap) = service.monthly_cap {
        bound("monthly_cap", cap)?;
    }
    if service.requires.len() > CATALOGUE_REFERENCES_MAX {
        return Err(invalid(format!(
            "requires lists at most {CATALOGUE_REFERENCES_MAX} services"
        )));
    }
    for required in &service.requires {
        if required == code {
            return Err(invalid(format!("service {code} cannot require itself")));
        }
        if !state.services.contains_key(required) {
            return Err(Rejection::UnknownService(required.clone()));
        }
    }
    if let Some(cycle) = requires_cycle(state, service) {
        return Err(one(Violation::new(
            Rule::RequiresCycle,
            format!("services would require each other: {}", cycle.join(" → ")),
        )
        .of_type(code)));
    }
    if !state.services.contains_key(code) && state.services.len() >= SERVICES_PER_TENANT_MAX {
        return Err(invalid(format!(
            "a tenant defines at most {SERVICES_PER_TENANT_MAX} services"
        )));
    }
    if state.services.get(code) == Some(service) {
        return Ok(vec![]);
    }
    Ok(vec![Event::ServiceDefined {
        service: service.clone(),
    }])
}

/// A cycle through `service` in the services' `requires`, with `service` as it would be.
fn requires_cycle(state: &Tenant, service: &Service) -> Option<Vec<String>> {
    let requires_of = |code: &TypeCode| -> Vec<TypeCode> {
        if code == &service.code {
            service.requires.clone()
        } else {
            state
                .services
                .get(code)
                .map(|s| s.requires.clone())
                .unwrap_or_default()
        }
    };
    // Depth-first from the service; any path back to it is a cycle.
    let mut stack: Vec<(TypeCode, Vec<String>)> = requires_of(&service.code)
        .into_iter()
        .map(|r| (r.clone(), vec![service.code.to_string(), r.to_string()]))
        .collect();
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        if at == service.code {
            return Some(path);
        }
        if !seen.insert(at.clone()) {
            continue;
        }
        for next in requires_of(&at) {
            let mut longer = path.clone();
            longer.push(next.to_string());
            stack.push((next, longer));
        }
    }
    None
}

/// Whether `service` works now: switched on, and every service it requires switched on.
pub fn service_outcome_when_used(state: &Tenant, service: &Service) -> Option<RecordOutcome> {
    if !service.enabled {
        return Some(RecordOutcome::Disabled);
    }
    let missing = service
        .requires
        .iter()
        .any(|r| !state.services.get(r).is_some_and(|s| s.enabled));
    missing.then_some(RecordOutcome::RequiresMissing)
}

/// Every record checked (bad ones refused together with their index, nothing stored), then
/// those not seen before counted against their month's cap, in order.
pub(super) fn record_usage(
    state: &Tenant,
    records: &[NewUsageRecord],
    ctx: &Context,
) -> Result<Vec<Event>, Rejection> {
    if records.is_empty() || records.len() > USAGE_RECORDS_PER_BATCH_MAX {
        return Err(invalid(format!(
            "a batch holds 1 to {USAGE_RECORDS_PER_BATCH_MAX} usage records"
        )));
    }
    let zone = billing_zone(&state.billing_timezone);
    let this_month = Month::of(ctx.now, zone);
    let oldest = this_month.previous();
    let latest = ctx.now + Duration::minutes(FUTURE_SLACK_MINUTES);
    let mut bad = Vec::new();
    for (index, record) in records.iter().enumerate() {
        if let Err(why) = check_record(state, record, oldest, latest, zone) {
            bad.push((index, why));
        }
    }
    if !bad.is_empty() {
        return Err(Rejection::BatchRejected(bad));
    }
    let mut in_batch: HashSet<(Month, u128)> = HashSet::new();
    let mut used: BTreeMap<(TypeCode, Month), u64> = BTreeMap::new();
    let mut stored = Vec::new();
    for record in records {
        let occurred_at = truncate_to_micros(record.occurred_at);
        let month = Month::of(occurred_at, zone);
        let hash = record_id_hash(&record.id);
        let seen = state
            .record_ids
            .get(&month)
            .is_some_and(|ids| ids.contains(&hash));
        if seen || !in_batch.insert((month, hash)) {
            continue;
        }
        let service = &state.services[&record.service];
        let key = (record.service.clone(), month);
        let so_far = used
            .entry(key.clone())
            .or_insert_with(|| state.metered.get(&key).map_or(0, |m| m.used));
        let (counted, outcome) = match service_outcome_when_used(state, service) {
            Some(stopped) => (0, stopped),
            None => match service.monthly_maximum() {
                Some(maximum) if *so_far + record.quantity > maximum => {
                    (maximum.saturating_sub(*so_far), RecordOutcome::Capped)
                }
                _ => (record.quantity, RecordOutcome::Counted),
            },
        };
        *so_far += counted;
        stored.push(UsageRecord {
            id: record.id.clone(),
            service: record.service.clone(),
            quantity: record.quantity,
            counted,
            user: record.user,
            queue: record.queue.clone(),
            occurred_at,
            outcome,
        });
    }
    if stored.is_empty() {
        return Ok(vec![]);
    }
    Ok(vec![Event::UsageRecorded { records: stored }])
}

fn check_record(
    state: &Tenant,
    record: &NewUsageRecord,
    oldest: Month,
    latest: chrono::DateTime<chrono::Utc>,
    zone: chrono_tz::Tz,
) -> Result<(), Rejection> {
    if record.id.is_empty() || record.id.len() > USAGE_RECORD_ID_BYTES_MAX {
        return Err(invalid(format!(
            "id must be 1 to {USAGE_RECORD_ID_BYTES_MAX} bytes"
        )));
    }
    if !state.services.contains_key(&record.service) {
        return Err(Rejection::UnknownService(record.service.clone()));
    }
    if record.quantity == 0 || record.quantity > USAGE_QUANTITY_MAX {
        return Err(invalid(format!(
            "quantity must be between 1 and {USAGE_QUANTITY_MAX}"
        )));
    }
    if let Some(user) = record.user {
        if !state.users.contains_key(&user) {
            return Err(Rejection::UserNotFound(user));
        }
    }
    if record
        .queue
        .as_ref()
        .is_some_and(|q| q.trim().is_empty() || q.len() > NAME_BYTES_MAX)
    {
        return Err(invalid(format!(
            "queue must be 1 to {NAME_BYTES_MAX} bytes"
        )));
    }
    if record.occurred_at > latest {
        return Err(invalid(
            "occurred_at is in the future: a record reports what already happened",
        ));
    }
    if Month::of(record.occurred_at, zone) < oldest {
        return Err(invalid(format!(
            "occurred_at is before {oldest}: records count in this month or the previous one only"
        )));
    }
    Ok(())
}
