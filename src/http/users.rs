//! Users: create (one or a batch), patch, delete, list, one.

use super::auth::{Auth, Need};
use super::doc;
use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery, WriteMeta};
use super::views::{known_type, parse_instant, parse_type, user_json};
use super::{page, page_after, page_limit, with_etag, written, App};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use events::{Command, GroupId, NewUser, TenantId, UserId, UserRestriction};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = CreateUserBody)]
pub struct CreateBody {
    #[schema(value_type = Option<uuid::Uuid>)]
    id: Option<UserId>,
    name: String,
    #[schema(value_type = uuid::Uuid)]
    group_id: GroupId,
    extension: Option<String>,
    number: Option<String>,
}

impl CreateBody {
    /// The new user; without an id, the server chooses one (stable for a keyed request).
    fn into_new_user(self, meta: &WriteMeta, tenant: TenantId, index: usize) -> NewUser {
        let chosen = || UserId(meta.chosen_id(tenant, &format!("user {index}")));
        NewUser {
            user: self.id.unwrap_or_else(chosen),
            name: self.name,
            group: self.group_id,
            extension: self.extension,
            number: self.number,
        }
    }
}

/// `POST /v1/tenants/{t}/users` (operator).
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/users",
    operation_id = "create_user",
    tag = "users",
    params(doc::TenantPath, doc::WriteHeaders),
    request_body = CreateBody,
    responses(
        (status = 201, description = "The new user.", body = doc::Created),
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
    let user = body.into_new_user(&meta, tenant, 0);
    let id = user.user;
    let done = app
        .write(
            tenant,
            &auth,
            Need::Operate,
            meta,
            Command::CreateUser(user),
        )
        .await?;
    Ok(written(StatusCode::CREATED, &done, json!({"id": id})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = CreateUsersBody)]
pub struct BatchBody {
    users: Vec<CreateBody>,
}

/// `POST /v1/tenants/{t}/users/batch` (operator): up to 10 000 users, all or none.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/users/batch",
    operation_id = "create_users",
    tag = "users",
    params(doc::TenantPath, doc::WriteHeaders),
    request_body = BatchBody,
    responses(
        (status = 201, description = "Every user created, in order.", body = doc::CreatedMany),
        doc::WriteErrors,
    ),
)]
pub async fn create_batch(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(body): AppJson<BatchBody>,
) -> Result<Response, ApiError> {
    let users: Vec<NewUser> = body
        .users
        .into_iter()
        .enumerate()
        .map(|(index, user)| user.into_new_user(&meta, tenant, index))
        .collect();
    let ids: Vec<UserId> = users.iter().map(|u| u.user).collect();
    let done = app
        .write(
            tenant,
            &auth,
            Need::Operate,
            meta,
            Command::CreateUsers(users),
        )
        .await?;
    Ok(written(StatusCode::CREATED, &done, json!({"ids": ids})))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = UpdateUserBody)]
pub struct PatchBody {
    name: Option<String>,
    #[schema(value_type = Option<uuid::Uuid>)]
    group_id: Option<GroupId>,
    /// The new extension; `null` clears it; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = true)]
    extension: Option<Option<String>>,
    /// The new DID number; `null` clears it; absent leaves it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, nullable = true)]
    number: Option<Option<String>>,
}

/// A field that is present in the body, `null` or not (absent is the `default`, `None`).
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// `PATCH /v1/tenants/{t}/users/{u}` (operator): rename, move, change the extension or the
/// DID number; 422 if the move breaks a limit, 409 if the extension is another user's.
#[utoipa::path(
    patch,
    path = "/v1/tenants/{t}/users/{u}",
    operation_id = "update_user",
    tag = "users",
    params(doc::UserPath, doc::WriteHeaders),
    request_body = PatchBody,
    responses(
        (status = 200, description = "Renamed, moved or renumbered.", body = doc::Written),
        doc::WriteErrors,
    ),
)]
pub async fn update(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, user)): AppPath<(TenantId, UserId)>,
    AppJson(body): AppJson<PatchBody>,
) -> Result<Response, ApiError> {
    let command = Command::UpdateUser {
        user,
        name: body.name,
        group: body.group_id,
        extension: body.extension,
        number: body.number,
    };
    let done = app
        .write(tenant, &auth, Need::Operate, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

/// `DELETE /v1/tenants/{t}/users/{u}` (operator): 409 while the user holds licences.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{t}/users/{u}",
    operation_id = "delete_user",
    tag = "users",
    params(doc::UserPath, doc::WriteHeaders),
    responses(
        (status = 200, description = "Deleted.", body = doc::Written),
        doc::ReadErrors,
        (status = 409, response = doc::Conflict),
    ),
)]
pub async fn delete(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, user)): AppPath<(TenantId, UserId)>,
) -> Result<Response, ApiError> {
    let done = app
        .write(
            tenant,
            &auth,
            Need::Operate,
            meta,
            Command::DeleteUser { user },
        )
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[serde(rename = "type")]
    /// Users holding this licence type.
    #[param(pattern = "^[a-z0-9_]{1,64}$")]
    license_type: Option<String>,
    /// Matches the name (any case), the extension or the number.
    #[param(max_length = 200)]
    q: Option<String>,
    /// Users belonging to this group: their own group or one of their other groups.
    #[param(value_type = Option<uuid::Uuid>)]
    group_id: Option<GroupId>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    after: Option<UserId>,
}

/// `GET /v1/tenants/{t}/users?type=&q=&group_id=`: active users; `q` matches name (any case),
/// extension or number; `type` keeps users holding that type; `group_id` the group's members,
/// by their own group or another they joined.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/users",
    operation_id = "list_users",
    tag = "users",
    params(doc::TenantPath, ListQuery),
    responses(
        (status = 200, description = "A page of active users in id order.", body = doc::UserPage),
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
    super::filter_text("q", query.q.as_deref())?;
    let license_type = query.license_type.as_deref().map(parse_type).transpose()?;
    let needle = query.q.as_deref().map(str::to_lowercase);
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        if let Some(code) = &license_type {
            known_type(t, code)?;
        }
        let scope = super::scope::Scope::of(&auth, t);
        let keep = |u: &events::state::User| {
            !u.removed
                && scope.sees_user(u.id)
                && query.group_id.is_none_or(|g| u.belongs_to(g))
                && needle.as_deref().is_none_or(|q| {
                    u.name.to_lowercase().contains(q)
                        || u.extension.as_deref().is_some_and(|e| e.contains(q))
                        || u.number.as_deref().is_some_and(|n| n.contains(q))
                })
                && license_type
                    .as_ref()
                    .is_none_or(|ty| t.holdings(u.id).contains(ty))
        };
        let (items, next) = page_after(t.users.iter_after(query.after), limit, keep, |u| {
            user_json(t, u)
        });
        Ok(page(items, next, t.version))
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// The instant to show the user at (RFC 3339); default now. A past instant needs the
    /// auditor role.
    #[param(format = DateTime)]
    at: Option<String>,
}

/// `GET /v1/tenants/{t}/users/{u}?at=`: the user with licences and add-ons and their personal
/// settings; a past `at` shows them as they were then (auditor, admin).
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/users/{u}",
    operation_id = "get_user",
    tag = "users",
    params(doc::UserPath, AtQuery),
    responses(
        (status = 200, description = "The user with licences and add-ons.", body = doc::UserView),
        doc::ReadErrors,
    ),
)]
pub async fn one(
    State(app): State<App>,
    auth: Auth,
    AppPath((tenant, user)): AppPath<(TenantId, UserId)>,
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
        // Whether a scoped key sees the user is judged on the tree as it is now.
        let visible = app.read_tenant(tenant, &auth, Need::Read, |t| {
            super::scope::Scope::of(&auth, t).user(user)
        });
        app.may_read_past(tenant, &auth, &[Need::Audit])?;
        visible?;
        return app.view_as_of(tenant, &auth, &[Need::Audit], at, Some(user), |past| {
            render_user(past, user)
        });
    }
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        super::scope::Scope::of(&auth, t).user(user)?;
        render_user(t, user)
    })
}

fn render_user(t: &events::Tenant, user: UserId) -> Result<Response, ApiError> {
    let u = t
        .users
        .get(&user)
        .ok_or_else(|| ApiError::not_found(format!("user {user} not found")))?;
    Ok(with_etag(Json(user_json(t, u)).into_response(), t.version))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UserRestrictionBody {
    /// Licences of each type the user may hold (add-ons counted); at most the effective
    /// limit of the user's group path.
    #[serde(default)]
    pub limits: BTreeMap<String, u64>,
    /// Inside the effective window of the user's group.
    #[schema(format = DateTime)]
    pub valid_from: Option<String>,
    #[schema(format = DateTime)]
    pub valid_until: Option<String>,
}

/// `PUT /v1/tenants/{t}/users/{u}/restriction` (admin): the user's personal limits and
/// validity window, replacing any earlier; 422 lists every violated rule (a limit above the
/// group path's, below what the user holds, a window outside the group's), nothing stored.
#[utoipa::path(
    put,
    path = "/v1/tenants/{t}/users/{u}/restriction",
    operation_id = "set_user_restriction",
    tag = "users",
    params(doc::UserPath, doc::WriteHeaders),
    request_body = UserRestrictionBody,
    responses(
        (status = 200, description = "Set.", body = doc::Written),
        doc::WriteErrors,
    ),
)]
pub async fn set_restriction(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, user)): AppPath<(TenantId, UserId)>,
    AppJson(body): AppJson<UserRestrictionBody>,
) -> Result<Response, ApiError> {
    let command = Command::SetUserRestriction {
        user,
        restriction: user_restriction(body)?,
    };
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

/// A user restriction from the wire: malformed codes and instants are a 400.
pub fn user_restriction(body: UserRestrictionBody) -> Result<UserRestriction, ApiError> {
    let mut limits = BTreeMap::new();
    for (code, limit) in body.limits {
        limits.insert(parse_type(&code)?, limit);
    }
    Ok(UserRestriction {
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
    })
}

/// `DELETE /v1/tenants/{t}/users/{u}/restriction` (admin): only the groups bound the user.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{t}/users/{u}/restriction",
    operation_id = "clear_user_restriction",
    tag = "users",
    params(doc::UserPath, doc::WriteHeaders),
    responses(
        (status = 200, description = "Cleared (or there was none).", body = doc::Written),
        doc::PathWriteErrors,
    ),
)]
pub async fn clear_restriction(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, user)): AppPath<(TenantId, UserId)>,
) -> Result<Response, ApiError> {
    let done = app
        .write(
            tenant,
            &auth,
            Need::Administer,
            meta,
            Command::ClearUserRestriction { user },
        )
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct MembershipBody {
    /// The group the user joins besides their own.
    #[schema(value_type = uuid::Uuid)]
    group_id: GroupId,
}

/// `POST /v1/tenants/{t}/users/{u}/groups` (operator): the user joins another group besides
/// their own; licences assigned to them may then count against it (`group_id` on an
/// assignment). 409 `already_in_group` when they belong to it already.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/users/{u}/groups",
    operation_id = "add_user_to_group",
    tag = "users",
    params(doc::UserPath, doc::WriteHeaders),
    request_body = MembershipBody,
    responses(
        (status = 201, description = "The user belongs to the group.", body = doc::Written),
        doc::WriteErrors,
    ),
)]
pub async fn add_group(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, user)): AppPath<(TenantId, UserId)>,
    AppJson(body): AppJson<MembershipBody>,
) -> Result<Response, ApiError> {
    let command = Command::AddUserToGroup {
        user,
        group: body.group_id,
    };
    let done = app
        .write(tenant, &auth, Need::Operate, meta, command)
        .await?;
    Ok(written(
        StatusCode::CREATED,
        &done,
        json!({"user_id": user, "group_id": body.group_id}),
    ))
}

/// `DELETE /v1/tenants/{t}/users/{u}/groups/{g}` (operator): the user leaves one of their
/// other groups; the licences counted against it count against their own group from then on
/// (422 `group_limit_reached` when it has no room). 404 `membership_not_found` for a group
/// that is not one of their other groups, 409 `own_group` for their own.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{t}/users/{u}/groups/{g}",
    operation_id = "remove_user_from_group",
    tag = "users",
    params(doc::MembershipPath, doc::WriteHeaders),
    responses(
        (status = 200, description = "The user left the group.", body = doc::Written),
        doc::PathWriteErrors,
    ),
)]
pub async fn remove_group(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, user, group)): AppPath<(TenantId, UserId, GroupId)>,
) -> Result<Response, ApiError> {
    let command = Command::RemoveUserFromGroup { user, group };
    let done = app
        .write(tenant, &auth, Need::Operate, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}
