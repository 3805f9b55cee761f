//! Groups, restrictions and group state.

use super::auth::{Auth, Need};
use super::doc;
use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery, WriteMeta};
use super::scope::Scope;
use super::views::{instant, optional_instant, parse_instant, parse_type};
use super::{page, page_after, page_limit, with_etag, written, App};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use events::state::Group;
use events::{Command, GroupId, Reminder, Restriction, Tenant, TenantId, TypeCode};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = CreateGroupBody)]
pub struct CreateBody {
    #[schema(value_type = Option<uuid::Uuid>)]
    id: Option<GroupId>,
    name: String,
    #[schema(value_type = Option<uuid::Uuid>)]
    parent_id: Option<GroupId>,
    /// The group administrator's contact address (`local@domain.tld`); subgroups without
    /// one of their own inherit it.
    #[schema(format = "email", max_length = 254)]
    contact_email: Option<String>,
}

/// `POST /v1/tenants/{t}/groups` (admin).
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/groups",
    operation_id = "create_group",
    tag = "groups",
    params(doc::TenantPath, doc::WriteHeaders),
    request_body = CreateBody,
    responses(
        (status = 201, description = "The new group.", body = doc::Created),
        doc::WriteErrors,
    ),
)]
pub async fn create(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(body): AppJson<CreateBody>,
) -> Result<Response, ApiError> {
    let group = body
        .id
        .unwrap_or_else(|| GroupId(meta.chosen_id(tenant, "group")));
    let command = Command::CreateGroup {
        group,
        name: body.name,
        parent: body.parent_id,
        contact_email: body.contact_email,
    };
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    Ok(written(StatusCode::CREATED, &done, json!({"id": group})))
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = UpdateGroupBody)]
pub struct PatchBody {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    /// `null` makes the group a root group.
    #[schema(value_type = Option<uuid::Uuid>)]
    parent_id: Option<Option<GroupId>>,
    /// The administrator's contact address; `null` clears the group's own, so it inherits
    /// its nearest ancestor's again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = "email", max_length = 254)]
    contact_email: Option<Option<String>>,
}

/// `PATCH /v1/tenants/{t}/groups/{g}` (admin): rename, move (`parent_id: null` → root), or set
/// the contact (`contact_email: null` clears it).
#[utoipa::path(
    patch,
    path = "/v1/tenants/{t}/groups/{g}",
    operation_id = "update_group",
    tag = "groups",
    params(doc::GroupPath, doc::WriteHeaders),
    request_body = PatchBody,
    responses(
        (status = 200, description = "Renamed, moved or given a contact.", body = doc::Written),
        doc::WriteErrors,
    ),
)]
pub async fn update(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, group)): AppPath<(TenantId, GroupId)>,
    AppJson(body): AppJson<PatchBody>,
) -> Result<Response, ApiError> {
    let command = Command::UpdateGroup {
        group,
        name: body.name,
        parent: body.parent_id,
        contact_email: body.contact_email,
    };
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RestrictionBody {
    enabled: bool,
    #[serde(default)]
    limits: BTreeMap<String, u64>,
    #[schema(format = DateTime)]
    valid_from: Option<String>,
    #[schema(format = DateTime)]
    valid_until: Option<String>,
    #[schema(value_type = Option<doc::ReminderBody>)]
    reminder: Option<Reminder>,
    /// Features of the catalogue the restriction switches on (`true`) or off (`false`);
    /// absent from the map: inherited. Without the field the group's switches stay as they
    /// are; `{}` clears them.
    features: Option<BTreeMap<String, bool>>,
}

/// A restriction's feature switches from the wire: malformed codes are a 400.
pub fn parse_features(
    features: Option<BTreeMap<String, bool>>,
) -> Result<Option<BTreeMap<TypeCode, bool>>, ApiError> {
    features
        .map(|map| {
            map.into_iter()
                .map(|(code, on)| Ok((parse_feature(&code)?, on)))
                .collect()
        })
        .transpose()
}

fn parse_feature(text: &str) -> Result<TypeCode, ApiError> {
    TypeCode::parse(text).ok_or_else(|| {
        ApiError::bad_request(format!("unknown feature `{text}`"))
            .with_details(json!({"reason": "unknown_feature"}))
    })
}

/// The command of a restriction edit: with `features`, they are set in the same step.
pub fn restriction_command(
    group: GroupId,
    restriction: Restriction,
    features: Option<BTreeMap<TypeCode, bool>>,
) -> Command {
    match features {
        None => Command::SetRestriction { group, restriction },
        Some(features) => Command::SetRestrictionAndFeatures {
            group,
            restriction,
            features,
        },
    }
}

/// `PUT /v1/tenants/{t}/groups/{g}/restriction` (admin): 422 lists every violated rule.
#[utoipa::path(
    put,
    path = "/v1/tenants/{t}/groups/{g}/restriction",
    operation_id = "set_restriction",
    tag = "groups",
    params(doc::GroupPath, doc::WriteHeaders),
    request_body = RestrictionBody,
    responses(
        (status = 200, description = "Set.", body = doc::Written),
        doc::WriteErrors,
    ),
)]
pub async fn set_restriction(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, group)): AppPath<(TenantId, GroupId)>,
    AppJson(body): AppJson<RestrictionBody>,
) -> Result<Response, ApiError> {
    let mut limits = BTreeMap::new();
    for (code, limit) in body.limits {
        limits.insert(parse_type(&code)?, limit);
    }
    let restriction = Restriction {
        enabled: body.enabled,
        limits,
        valid_from: body
            .valid_from
            .as_deref()
            .map(|t| parse_instant("valid_from", t))
            .transpose()?,
        valid_until: body
            .valid_until
            .as_deref()
            .map(|t| parse_instant("valid_until", t))
            .transpose()?,
        reminder: body.reminder,
    };
    let command = restriction_command(group, restriction, parse_features(body.features)?);
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

/// `DELETE /v1/tenants/{t}/groups/{g}/restriction` (admin): back to unlimited.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{t}/groups/{g}/restriction",
    operation_id = "clear_restriction",
    tag = "groups",
    params(doc::GroupPath, doc::WriteHeaders),
    responses(
        (status = 200, description = "Cleared: the group is unlimited.", body = doc::Written),
        doc::PathWriteErrors,
    ),
)]
pub async fn clear_restriction(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, group)): AppPath<(TenantId, GroupId)>,
) -> Result<Response, ApiError> {
    let command = Command::ClearRestriction { group };
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

/// A group's restriction with the features it switches.
fn restriction_json(g: &Group) -> Option<Value> {
    let r = g.restriction.as_ref()?;
    Some(json!({
        "enabled": r.enabled,
        "limits": r.limits,
        "valid_from": optional_instant(r.valid_from),
        "valid_until": optional_instant(r.valid_until),
        "reminder": r.reminder,
        "features": g.features,
    }))
}

/// The contact that holds for `group`, and where it comes from: `null` if neither the group
/// nor an ancestor has one.
/// For a dealer's key, a contact inherited from above the key's group is shown as coming from
/// that group, with `above_scope: true` (the groups above are the issuer's).
fn effective_contact_json(scope: &Scope, t: &Tenant, group: GroupId) -> Value {
    t.effective_contact(group)
        .map_or(Value::Null, |(from, email)| {
            let (shown, above_scope) = scope.shown_group(from);
            let mut contact = json!({
                "email": email,
                "group_id": shown,
                "group_name": t.groups.get(&shown).map(|g| g.name.as_str()),
                "inherited": from != group,
            });
            if above_scope {
                contact["above_scope"] = json!(true);
            }
            contact
        })
}

fn group_json(scope: &Scope, t: &Tenant, g: &Group) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "parent_id": scope.parent_of(g.id, g.parent),
        "children": g.children,
        "restriction": restriction_json(g),
        "used": g.used,
        "contact_email": g.contact_email,
        "effective_contact": effective_contact_json(scope, t, g.id),
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Children of this group.
    #[param(value_type = Option<uuid::Uuid>)]
    parent_id: Option<GroupId>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    after: Option<GroupId>,
}

/// `GET /v1/tenants/{t}/groups?parent_id=`: groups in id order.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/groups",
    operation_id = "list_groups",
    tag = "groups",
    params(doc::TenantPath, ListQuery),
    responses(
        (status = 200, description = "A page of groups in id order.", body = doc::GroupPage),
        doc::ReadErrors,
    ),
)]
pub async fn list(
    State(app): State<App>,
    auth: Auth,
    AppPath(tenant): AppPath<TenantId>,
    AppQuery(query): AppQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = page_limit(query.limit)?;
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        let scope = Scope::of(&auth, t);
        let (items, next) = page_after(
            super::btree_after(&t.groups, query.after),
            limit,
            |g| {
                scope.sees_group(g.id)
                    && (query.parent_id.is_none()
                        || scope.parent_of(g.id, g.parent) == query.parent_id)
            },
            |g| group_json(&scope, t, g),
        );
        Ok(page(items, next, t.version))
    })
}

/// `GET /v1/tenants/{t}/groups/{g}`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/groups/{g}",
    operation_id = "get_group",
    tag = "groups",
    params(doc::GroupPath),
    responses(
        (status = 200, description = "The group.", body = doc::GroupView),
        doc::ReadErrors,
    ),
)]
pub async fn one(
    State(app): State<App>,
    auth: Auth,
    AppPath((tenant, group)): AppPath<(TenantId, GroupId)>,
) -> Result<Response, ApiError> {
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        let scope = Scope::of(&auth, t);
        scope.group(group)?;
        let g = t
            .groups
            .get(&group)
            .ok_or_else(|| ApiError::not_found(format!("group {group} not found")))?;
        Ok(with_etag(
            Json(group_json(&scope, t, g)).into_response(),
            t.version,
        ))
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// The instant to evaluate at (RFC 3339); default now. A past instant needs the auditor
    /// role.
    #[param(format = DateTime)]
    at: Option<String>,
}

/// `GET /v1/tenants/{t}/groups/{g}/state?at=`: limits, usage, remainders, effective window and
/// the ancestors whose window blocks the group at `at` (default now). A past `at` shows the
/// state as it was then (auditor, admin).
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/groups/{g}/state",
    operation_id = "get_group_state",
    tag = "groups",
    params(doc::GroupPath, AtQuery),
    responses(
        (status = 200, description = "The group's limits, usage, remainders and window.", body = doc::GroupStateView),
        doc::ReadErrors,
    ),
)]
pub async fn state(
    State(app): State<App>,
    auth: Auth,
    AppPath((tenant, group)): AppPath<(TenantId, GroupId)>,
    AppQuery(query): AppQuery<AtQuery>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let at = query
        .at
        .as_deref()
        .map(|t| parse_instant("at", t))
        .transpose()?
        .unwrap_or(now);
    if at < now {
        // Whether a scoped key sees the group is judged on the tree as it is now.
        let scope = app.read_tenant(tenant, &auth, Need::Read, |t| {
            Scope::of(&auth, t).group(group)
        });
        return app.view_as_of(tenant, &auth, &[Need::Audit], at, None, |past| {
            scope?;
            render_state(&Scope::of(&auth, past), past, group, at)
        });
    }
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        let scope = Scope::of(&auth, t);
        scope.group(group)?;
        render_state(&scope, t, group, at)
    })
}

fn render_state(
    scope: &Scope,
    t: &Tenant,
    group: GroupId,
    at: chrono::DateTime<Utc>,
) -> Result<Response, ApiError> {
    let state = projections::group_state(t, group, at)
        .ok_or_else(|| ApiError::not_found(format!("group {group} not found")))?;
    let types: serde_json::Map<String, Value> = state
        .types
        .iter()
        .map(|(code, s)| {
            (
                code.to_string(),
                json!({
                    "limit": s.limit, "used": s.used, "remaining": s.remaining,
                    "effective_remaining": s.effective_remaining,
                    "limited_by": s.limited_by.map(|g| scope.shown_group(g).0),
                }),
            )
        })
        .collect();
    let mut blocked_by: Vec<Value> = Vec::new();
    for b in &state.blocked_by {
        let (shown, above_scope) = scope.shown_group(b.group);
        let mut item = json!({
            "rule": b.rule, "group_id": shown,
            "group_name": if above_scope { scope.group_name(shown) } else { b.group_name.clone() },
            "valid_from": optional_instant(b.valid_from),
            "valid_until": optional_instant(b.valid_until),
        });
        if above_scope {
            // The groups above the scope are the issuer's: one entry says the grant blocks it.
            if blocked_by.iter().any(|b| b["above_scope"] == json!(true)) {
                continue;
            }
            item["above_scope"] = json!(true);
        }
        blocked_by.push(item);
    }
    let features: serde_json::Map<String, Value> = state
        .features
        .iter()
        .map(|(code, f)| {
            // A group above a scoped key's group is shown as that group.
            let decided_by = f
                .decided_by
                .map(|id| scope.shown_group(id).0)
                .and_then(|id| t.groups.get(&id));
            let value = json!({
                "own": f.own, "enabled": f.enabled,
                "group_id": decided_by.map(|g| g.id),
                "group_name": decided_by.map(|g| g.name.as_str()),
            });
            (code.to_string(), value)
        })
        .collect();
    let body = json!({
        "at": instant(at),
        "group": {
            "id": state.group.id, "name": state.group.name,
            "parent_id": scope.parent_of(state.group.id, state.group.parent),
        },
        "restriction": restriction_json(state.group),
        "types": types,
        "valid_from": optional_instant(state.valid_from),
        "valid_until": optional_instant(state.valid_until),
        "blocked_by": blocked_by,
        "features": features,
        "contact_email": state.group.contact_email,
        "effective_contact": effective_contact_json(scope, t, group),
    });
    Ok(with_etag(Json(body).into_response(), t.version))
}
