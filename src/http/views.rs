//! Parsing of wire values and rendering of state as JSON.

use super::error::ApiError;
use chrono::{DateTime, SecondsFormat, Utc};
use events::state::{License, User};
use events::{Tenant, TypeCode};
use serde_json::{json, Value};

/// A licence type code from the wire; malformed codes are a 400 like unknown ones.
pub fn parse_type(text: &str) -> Result<TypeCode, ApiError> {
    TypeCode::parse(text).ok_or_else(|| {
        ApiError::bad_request(format!("unknown licence type `{text}`"))
            .with_details(json!({"reason": "unknown_license_type"}))
    })
}

/// A licence type code that must name a type of the tenant's catalogue (list filters): an
/// unknown code is a 400, never a silently empty answer.
pub fn known_type(tenant: &Tenant, code: &TypeCode) -> Result<(), ApiError> {
    if tenant.catalogue.contains_key(code) {
        Ok(())
    } else {
        Err(
            ApiError::bad_request(format!("unknown licence type `{code}`"))
                .with_details(json!({"reason": "unknown_license_type"})),
        )
    }
}

/// An RFC 3339 instant from the wire, as UTC.
pub fn parse_instant(field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| ApiError::bad_request(format!("{field} must be an RFC 3339 instant: {e}")))
}

/// An instant on the wire: RFC 3339 UTC with `Z`.
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An optional instant on the wire.
pub fn optional_instant(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |at| json!(instant(at)))
}

/// One licence: `{"id", "type", "status", "user_id"?, "group_id"?, "base_id"?, "addons"}`;
/// `group_id`, for a held licence, is the group whose quota it counts against.
pub fn license_json(tenant: &Tenant, license: &License) -> Value {
    let mut out = json!({
        "id": license.id,
        "type": license.license_type,
        "kind": license.kind,
        "status": license.status().as_str(),
        "addons": license.addons.iter().map(|a| addon_json(tenant, a)).collect::<Vec<_>>(),
    });
    if let Some(user) = license.user {
        out["user_id"] = json!(user);
    }
    if let Some(group) = tenant.counting_group(license) {
        out["group_id"] = json!(group);
    }
    if let Some(base) = license.base {
        out["base_id"] = json!(base);
        if let Some(user) = tenant.licenses.get(&base).and_then(|b| b.user) {
            out["user_id"] = json!(user);
        }
    }
    out
}

fn addon_json(tenant: &Tenant, addon: &events::LicenseId) -> Value {
    let license_type = tenant.licenses.get(addon).map(|a| a.license_type.as_str());
    json!({"id": addon, "type": license_type})
}

/// One user with their licences and add-ons: `group_id` is their own group,
/// `other_group_ids` the groups they were added to besides it, and each licence's `group_id`
/// the group it counts against.
pub fn user_json(tenant: &Tenant, user: &User) -> Value {
    let licenses: Vec<Value> = user
        .licenses
        .iter()
        .filter_map(|id| tenant.licenses.get(id))
        .map(|l| {
            json!({
                "id": l.id,
                "type": l.license_type,
                "group_id": l.counted_in.unwrap_or(user.group),
                "addons": l.addons.iter().map(|a| addon_json(tenant, a)).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "id": user.id,
        "name": user.name,
        "group_id": user.group,
        "other_group_ids": user.other_groups,
        "extension": user.extension,
        "number": user.number,
        "removed": user.removed,
        "licenses": licenses,
        "restriction": user_restriction_json(tenant, user),
    })
}

/// A user's personal settings: limits, window, and what they hold of each limited type.
fn user_restriction_json(tenant: &Tenant, user: &User) -> Value {
    let Some(r) = &user.restriction else {
        return Value::Null;
    };
    let used: serde_json::Map<String, Value> = r
        .limits
        .keys()
        .map(|t| (t.to_string(), json!(tenant.held_count(user.id, t))))
        .collect();
    json!({
        "limits": r.limits,
        "used": used,
        "valid_from": optional_instant(r.valid_from),
        "valid_until": optional_instant(r.valid_until),
    })
}
