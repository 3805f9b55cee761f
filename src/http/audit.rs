//! History and support: `/events` with filters and cursor paging, and entitlements with the
//! check that blocks them.

use super::auth::{Auth, Need};
use super::doc;
use super::error::ApiError;
use super::extract::{AppPath, AppQuery};
use super::licenses::event_json;
use super::scope::Scope;
use super::views::{instant, parse_instant, parse_type};
use super::{page_limit, with_etag, App};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use events::{Envelope, GroupId, LicenseId, Tenant, TenantId, UserId};
use serde::Deserialize;
use serde_json::{json, Value};

/// Events examined by one `/events` page at most; past it the page ends early with a cursor.
pub const EVENTS_SCANNED_PER_PAGE_MAX: usize = 200_000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The `next` of the previous page: events after this sequence.
    after: Option<u64>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    #[serde(rename = "type")]
    /// Events touching this licence type.
    #[param(pattern = "^[a-z0-9_]{1,64}$")]
    license_type: Option<String>,
    /// Events of this kind, e.g. `license_assigned`.
    #[param(max_length = 200)]
    kind: Option<String>,
    #[param(value_type = Option<uuid::Uuid>)]
    user_id: Option<UserId>,
    #[param(value_type = Option<uuid::Uuid>)]
    license_id: Option<LicenseId>,
    #[param(value_type = Option<uuid::Uuid>)]
    group_id: Option<GroupId>,
    /// Recorded at or after this instant.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Recorded before this instant.
    #[param(format = DateTime)]
    until: Option<String>,
    /// Sent by this actor (`root` or `key:<id>`).
    #[param(max_length = 200)]
    actor: Option<String>,
}

/// `GET /v1/tenants/{t}/events?after=&limit=&type=&kind=&user_id=&license_id=&group_id=&since=&until=&actor=`
/// (auditor, admin): the tenant's events in order; `next` is the `after` of the next page.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/events",
    operation_id = "list_events",
    tag = "audit",
    params(doc::TenantPath, EventsQuery),
    responses(
        (status = 200, description = "A page of the tenant's events, in order.", body = doc::EventPage),
        doc::ReadErrors,
    ),
)]
pub async fn events(
    State(app): State<App>,
    auth: Auth,
    AppPath(tenant): AppPath<TenantId>,
    AppQuery(query): AppQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let limit = page_limit(query.limit)?;
    // The document gives `after` as int64, like every sequence; a larger one is not a sequence.
    if query.after.is_some_and(|after| after > i64::MAX as u64) {
        return Err(ApiError::bad_request(format!(
            "after must be at most {}",
            i64::MAX
        )));
    }
    super::filter_text("kind", query.kind.as_deref())?;
    super::filter_text("actor", query.actor.as_deref())?;
    let license_type = query.license_type.as_deref().map(parse_type).transpose()?;
    let since = query
        .since
        .as_deref()
        .map(|t| parse_instant("since", t))
        .transpose()?;
    let until = query
        .until
        .as_deref()
        .map(|t| parse_instant("until", t))
        .transpose()?;
    // What a scoped key sees is judged on the tree as it is now, taken once per page so the
    // state is not held while the log is scanned.
    let (version, visible) = app.read_tenant(tenant, &auth, Need::Audit, |t| {
        Ok((t.version, Scope::of(&auth, t).visible_ids()))
    })?;
    let matches = |envelope: &Envelope| {
        if visible.as_ref().is_some_and(|v| !v.sees_event(envelope)) {
            return false;
        }
        let touched = projections::touches(&envelope.event);
        query
            .kind
            .as_deref()
            .is_none_or(|k| envelope.event.kind() == k)
            && query.actor.as_deref().is_none_or(|a| envelope.actor == a)
            && since.is_none_or(|s| envelope.recorded_at >= s)
            && until.is_none_or(|u| envelope.recorded_at < u)
            && license_type
                .as_ref()
                .is_none_or(|ty| touched.types.contains(&ty))
            && query.user_id.is_none_or(|u| touched.users.contains(&u))
            && query
                .license_id
                .is_none_or(|l| touched.licenses.contains(&l))
            && query.group_id.is_none_or(|g| touched.groups.contains(&g))
    };
    let mut items = Vec::new();
    let mut scanned = 0usize;
    let mut last_seen = None;
    let mut more = false;
    let mut failure = None;
    app.ledger
        .store()
        .scan_tenant(tenant, query.after.unwrap_or(0), &mut |stored| {
            if items.len() == limit || scanned == EVENTS_SCANNED_PER_PAGE_MAX {
                more = true;
                return false;
            }
            scanned += 1;
            last_seen = Some(stored.seq);
            match Envelope::decode(&stored.bytes) {
                Ok(envelope) => {
                    if until.is_some_and(|u| envelope.recorded_at >= u) {
                        return false;
                    }
                    if matches(&envelope) {
                        items.push(event_json(&envelope, &stored.hash().to_hex()));
                    }
                    true
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })
        .map_err(ApiError::from)?;
    if let Some(e) = failure {
        return Err(ApiError::internal(e));
    }
    let next: Value = if more {
        json!(last_seen.map(|s| s.to_string()))
    } else {
        Value::Null
    };
    let body = json!({"items": items, "next": next});
    Ok(with_etag(Json(body).into_response(), version))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// The instant to judge at (RFC 3339); default now. A past instant needs the auditor role.
    #[param(format = DateTime)]
    at: Option<String>,
}

/// `GET /v1/tenants/{t}/users/{u}/entitlements/{type}?at=`: every check in order with
/// pass/fail, and `blocked_by` naming the first failing rule and group. `{type}` is a licence
/// type or a feature of the catalogue (`kind` says which). A past `at` judges the state as it
/// was then (auditor, admin).
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/users/{u}/entitlements/{type}",
    operation_id = "get_entitlement",
    tag = "audit",
    params(doc::EntitlementPath, AtQuery),
    responses(
        (status = 200, description = "Whether the user may use the type, with every check.", body = doc::EntitlementView),
        doc::ReadErrors,
    ),
)]
pub async fn entitlement(
    State(app): State<App>,
    auth: Auth,
    AppPath((tenant, user, code)): AppPath<(TenantId, UserId, String)>,
    AppQuery(query): AppQuery<AtQuery>,
) -> Result<Response, ApiError> {
    let license_type = parse_type(&code)?;
    let now = Utc::now();
    let at = query
        .at
        .as_deref()
        .map(|t| parse_instant("at", t))
        .transpose()?
        .unwrap_or(now);
    // A scoped key sees the users of its subtree as it is now, at any instant.
    let (known, visible) = app.read_tenant(tenant, &auth, Need::Read, |t| {
        Ok((
            t.catalogue.contains_key(&license_type)
                || t.features.contains_key(&license_type)
                || t.services.contains_key(&license_type),
            Scope::of(&auth, t).user(user),
        ))
    })?;
    // A role that may not read the past is told so before whether the user is its to see.
    if at < now {
        app.may_read_past(tenant, &auth, &[Need::Audit])?;
    }
    visible?;
    if !known {
        return Err(ApiError::bad_request(format!(
            "unknown licence type, feature or service `{code}`"
        )));
    }
    if at < now {
        return app.view_as_of(tenant, &auth, &[Need::Audit], at, Some(user), |past| {
            render_entitlement(&Scope::of(&auth, past), past, user, &license_type, at)
        });
    }
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        render_entitlement(&Scope::of(&auth, t), t, user, &license_type, at)
    })
}

fn render_entitlement(
    scope: &Scope,
    t: &Tenant,
    user: UserId,
    license_type: &events::TypeCode,
    at: chrono::DateTime<Utc>,
) -> Result<Response, ApiError> {
    let mut answer = projections::entitlement(t, user, license_type, at)
        .ok_or_else(|| ApiError::not_found(format!("user {user} not found")))?;
    let (checks, above_scope) = scope.fold_checks_above(std::mem::take(&mut answer.checks));
    answer.checks = checks;
    let check_json = |index: usize, c: &projections::Check| {
        let mut out = json!({"rule": c.rule, "passed": c.passed, "detail": c.detail});
        if let Some((id, name)) = &c.group {
            out["group_id"] = json!(id);
            out["group_name"] = json!(name);
        }
        if let Some(u) = c.user {
            out["user_id"] = json!(u);
        }
        if let Some(l) = c.limit {
            out["limit"] = json!(l.limit);
            out["used"] = json!(l.used);
        }
        if let Some(resets_at) = c.resets_at {
            out["resets_at"] = json!(instant(resets_at));
        }
        if above_scope == Some(index) {
            out["above_scope"] = json!(true);
        }
        out
    };
    let kind = if t.features.contains_key(license_type) {
        "feature"
    } else if t.services.contains_key(license_type) {
        "service"
    } else {
        "license"
    };
    let mut body = json!({
        "at": instant(at),
        "user_id": user,
        "type": license_type,
        "kind": kind,
        "allowed": answer.allowed,
        "checks": answer
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| check_json(i, c))
            .collect::<Vec<_>>(),
    });
    if let Some(index) = projections::blocked_index(&answer.checks) {
        let mut b = check_json(index, &answer.checks[index]);
        if let Some(map) = b.as_object_mut() {
            map.remove("passed");
            map.entry("group_id").or_insert(Value::Null);
            map.entry("group_name").or_insert(Value::Null);
        }
        body["blocked_by"] = b;
    }
    Ok(with_etag(Json(body).into_response(), t.version))
}
