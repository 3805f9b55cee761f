//! Licences: provision, quantity, terminate, assign / unassign / reassign, add-ons,
//! assignments, lists and one licence with its history.

use super::auth::{allows, Auth, Need};
use super::doc;
use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery, WriteMeta};
use super::views::{instant, known_type, license_json, parse_type};
use super::{page, page_after, page_limit, with_etag, written, App};
use crate::ledger::Written;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use events::{
    Command, Envelope, Event, GroupId, LicenseId, LicenseStatus, Tenant, TenantId, UserId,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ProvisionBody {
    #[serde(rename = "type")]
    license_type: String,
    quantity: u32,
}

fn provisioned_ids(done: &Written) -> Vec<LicenseId> {
    done.events
        .iter()
        .filter_map(|e| match e {
            Event::LicensesProvisioned { ids, .. } => Some(ids.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// `POST /v1/tenants/{t}/licenses` (admin): provision `quantity` new licences.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/licenses",
    operation_id = "provision_licenses",
    tag = "licenses",
    params(doc::TenantPath, doc::WriteHeaders),
    request_body = ProvisionBody,
    responses(
        (status = 201, description = "The new licences.", body = doc::CreatedMany),
        doc::WriteErrors,
    ),
)]
pub async fn provision(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(body): AppJson<ProvisionBody>,
) -> Result<Response, ApiError> {
    let command = Command::ProvisionLicenses {
        license_type: parse_type(&body.license_type)?,
        quantity: body.quantity,
    };
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    Ok(written(
        StatusCode::CREATED,
        &done,
        json!({"ids": provisioned_ids(&done)}),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct QuantityBody {
    quantity: u32,
}

/// `PUT /v1/tenants/{t}/subscription/{type}` (admin): set the owned quantity.
#[utoipa::path(
    put,
    path = "/v1/tenants/{t}/subscription/{type}",
    operation_id = "set_quantity",
    tag = "licenses",
    params(doc::TypePath, doc::WriteHeaders),
    request_body = QuantityBody,
    responses(
        (status = 200, description = "The quantity, with the licences provisioned or terminated.", body = doc::QuantitySet),
        doc::WriteErrors,
    ),
)]
pub async fn set_quantity(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, code)): AppPath<(TenantId, String)>,
    AppJson(body): AppJson<QuantityBody>,
) -> Result<Response, ApiError> {
    let command = Command::SetQuantity {
        license_type: parse_type(&code)?,
        quantity: body.quantity,
    };
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    let terminated: Vec<LicenseId> = done
        .events
        .iter()
        .filter_map(|e| match e {
            Event::LicenseTerminated { license, .. } => Some(*license),
            _ => None,
        })
        .collect();
    Ok(written(
        StatusCode::OK,
        &done,
        json!({"quantity": body.quantity, "provisioned": provisioned_ids(&done), "terminated": terminated}),
    ))
}

/// `DELETE /v1/tenants/{t}/licenses/{id}` (admin): terminate; 409 while in use.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{t}/licenses/{id}",
    operation_id = "terminate_license",
    tag = "licenses",
    params(doc::LicensePath, doc::WriteHeaders),
    responses(
        (status = 200, description = "Terminated.", body = doc::Written),
        doc::PathWriteErrors,
    ),
)]
pub async fn terminate(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, license)): AppPath<(TenantId, LicenseId)>,
) -> Result<Response, ApiError> {
    let command = Command::TerminateLicense { license };
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct UserBody {
    #[schema(value_type = uuid::Uuid)]
    user_id: UserId,
    /// Which of the user's groups (their own or one they were added to) the licence counts
    /// against; default: their own group. 422 `user_not_in_group` for any other.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    group_id: Option<GroupId>,
}

/// `POST /v1/tenants/{t}/licenses/{id}/assign` (operator).
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/licenses/{id}/assign",
    operation_id = "assign_license",
    tag = "licenses",
    params(doc::LicensePath, doc::WriteHeaders),
    request_body = UserBody,
    responses(
        (status = 200, description = "Assigned.", body = doc::Written),
        doc::WriteErrors,
    ),
)]
pub async fn assign(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, license)): AppPath<(TenantId, LicenseId)>,
    AppJson(body): AppJson<UserBody>,
) -> Result<Response, ApiError> {
    let command = Command::AssignLicense {
        license,
        user: body.user_id,
        group: body.group_id,
    };
    let done = app
        .write(tenant, &auth, Need::Operate, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EmptyBody {}

/// `POST /v1/tenants/{t}/licenses/{id}/unassign` (operator); 409 for a free licence.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/licenses/{id}/unassign",
    operation_id = "unassign_license",
    tag = "licenses",
    params(doc::LicensePath, doc::WriteHeaders),
    request_body = EmptyBody,
    responses(
        (status = 200, description = "Unassigned.", body = doc::Written),
        doc::WriteErrors,
    ),
)]
pub async fn unassign(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, license)): AppPath<(TenantId, LicenseId)>,
    AppJson(_): AppJson<EmptyBody>,
) -> Result<Response, ApiError> {
    let command = Command::UnassignLicense { license };
    let done = app
        .write(tenant, &auth, Need::Operate, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

/// `POST /v1/tenants/{t}/licenses/{id}/reassign` (operator): add-ons follow the licence.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/licenses/{id}/reassign",
    operation_id = "reassign_license",
    tag = "licenses",
    params(doc::LicensePath, doc::WriteHeaders),
    request_body = UserBody,
    responses(
        (status = 200, description = "Reassigned, with its add-ons.", body = doc::Written),
        doc::WriteErrors,
    ),
)]
pub async fn reassign(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, license)): AppPath<(TenantId, LicenseId)>,
    AppJson(body): AppJson<UserBody>,
) -> Result<Response, ApiError> {
    let command = Command::ReassignLicense {
        license,
        user: body.user_id,
        group: body.group_id,
    };
    let done = app
        .write(tenant, &auth, Need::Operate, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AddonBody {
    #[schema(value_type = uuid::Uuid)]
    addon_id: LicenseId,
}

/// `POST /v1/tenants/{t}/licenses/{id}/addons` (operator): attach an add-on licence.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/licenses/{id}/addons",
    operation_id = "attach_addon",
    tag = "licenses",
    params(doc::LicensePath, doc::WriteHeaders),
    request_body = AddonBody,
    responses(
        (status = 200, description = "Attached.", body = doc::Written),
        doc::WriteErrors,
    ),
)]
pub async fn attach(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, base)): AppPath<(TenantId, LicenseId)>,
    AppJson(body): AppJson<AddonBody>,
) -> Result<Response, ApiError> {
    let command = Command::AttachAddon {
        base,
        addon: body.addon_id,
    };
    let done = app
        .write(tenant, &auth, Need::Operate, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

/// `DELETE /v1/tenants/{t}/licenses/{id}/addons/{addon}` (operator): detach.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{t}/licenses/{id}/addons/{addon}",
    operation_id = "detach_addon",
    tag = "licenses",
    params(doc::AddonPath, doc::WriteHeaders),
    responses(
        (status = 200, description = "Detached.", body = doc::Written),
        doc::PathWriteErrors,
    ),
)]
pub async fn detach(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, base, addon)): AppPath<(TenantId, LicenseId, LicenseId)>,
) -> Result<Response, ApiError> {
    let command = Command::DetachAddon { base, addon };
    let done = app
        .write(tenant, &auth, Need::Operate, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct AssignmentBody {
    #[schema(value_type = uuid::Uuid)]
    user_id: UserId,
    #[serde(rename = "type")]
    license_type: String,
    #[serde(default)]
    addons: Vec<String>,
    /// As on `assign`: the user's group the licence counts against; default their own.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    group_id: Option<GroupId>,
}

/// `POST /v1/tenants/{t}/assignments` (operator): pick free licences and assign atomically.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/assignments",
    operation_id = "assign_by_type",
    tag = "licenses",
    params(doc::TenantPath, doc::WriteHeaders),
    request_body = AssignmentBody,
    responses(
        (status = 200, description = "The licence and add-ons picked and assigned.", body = doc::AssignmentMade),
        doc::WriteErrors,
    ),
)]
pub async fn assign_by_type(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(body): AppJson<AssignmentBody>,
) -> Result<Response, ApiError> {
    let addons = body
        .addons
        .iter()
        .map(|code| parse_type(code))
        .collect::<Result<Vec<_>, _>>()?;
    let command = Command::AssignByType {
        user: body.user_id,
        license_type: parse_type(&body.license_type)?,
        addons,
        group: body.group_id,
    };
    let done = app
        .write(tenant, &auth, Need::Operate, meta, command)
        .await?;
    let mut license_id = None;
    let mut counted_in = None;
    let mut attached = Vec::new();
    for event in &done.events {
        match event {
            Event::LicenseAssigned { license, .. } => license_id = Some(*license),
            Event::LicenseCountedIn { group, .. } => counted_in = Some(*group),
            Event::AddonAttached {
                addon, addon_type, ..
            } => attached.push(json!({"id": addon, "type": addon_type})),
            _ => {}
        }
    }
    Ok(written(
        StatusCode::OK,
        &done,
        json!({
            "license_id": license_id,
            "user_id": body.user_id,
            "group_id": counted_in,
            "addons": attached,
        }),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[serde(rename = "type")]
    /// Licences of this type.
    #[param(pattern = "^[a-z0-9_]{1,64}$")]
    license_type: Option<String>,
    /// Licences held by this user (add-ons through their base).
    #[param(value_type = Option<uuid::Uuid>)]
    user_id: Option<UserId>,
    /// Licences held by the user with this extension.
    #[param(max_length = 200)]
    extension: Option<String>,
    /// Licences held by the user with this DID number (as stored, e.g. `+420601000101`).
    #[param(max_length = 200)]
    number: Option<String>,
    #[param(value_type = Option<doc::LicenseStatusName>)]
    status: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    #[param(value_type = Option<uuid::Uuid>)]
    after: Option<LicenseId>,
}

/// `GET /v1/tenants/{t}/licenses?type=&user_id=&extension=&number=&status=&limit=&after=`;
/// the holder filters (`user_id`, `extension`, `number`) all apply when several are given.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/licenses",
    operation_id = "list_licenses",
    tag = "licenses",
    params(doc::TenantPath, ListQuery),
    responses(
        (status = 200, description = "A page of licences in id order.", body = doc::LicensePage),
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
    super::filter_text("extension", query.extension.as_deref())?;
    super::filter_text("number", query.number.as_deref())?;
    let license_type = query.license_type.as_deref().map(parse_type).transpose()?;
    let status = match query.status.as_deref() {
        None => None,
        Some("free") => Some(LicenseStatus::Free),
        Some("assigned") => Some(LicenseStatus::Assigned),
        Some("terminated") => Some(LicenseStatus::Terminated),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status must be assigned, free or terminated, not `{other}`"
            )))
        }
    };
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        if let Some(code) = &license_type {
            known_type(t, code)?;
        }
        let holders = holders(t, &query);
        let scope = super::scope::Scope::of(&auth, t);
        let keep = |l: &events::License| {
            scope.sees_license(l)
                && license_type.as_ref().is_none_or(|ty| &l.license_type == ty)
                && status.is_none_or(|s| l.status() == s)
                && holders.as_ref().is_none_or(|holders| {
                    let base_holder = l.base.and_then(|b| t.licenses.get(&b)).and_then(|b| b.user);
                    [l.user, base_holder]
                        .iter()
                        .flatten()
                        .any(|user| holders.contains(user))
                })
        };
        let (items, next) = page_after(t.licenses.iter_after(query.after), limit, keep, |l| {
            license_json(t, l)
        });
        Ok(page(items, next, t.version))
    })
}

/// The users a licence list is narrowed to by its holder filters, every given one applying;
/// `None` when none is given.
fn holders(t: &Tenant, query: &ListQuery) -> Option<BTreeSet<UserId>> {
    if query.user_id.is_none() && query.extension.is_none() && query.number.is_none() {
        return None;
    }
    let candidates: BTreeSet<UserId> = match (&query.user_id, &query.extension) {
        (Some(user), _) => BTreeSet::from([*user]),
        (None, Some(ext)) => t.extensions.get(ext).copied().into_iter().collect(),
        (None, None) => t
            .users
            .values()
            .filter(|u| !u.removed && u.number.is_some())
            .map(|u| u.id)
            .collect(),
    };
    Some(
        candidates
            .into_iter()
            .filter(|user| {
                let u = t.active_user(*user);
                query
                    .extension
                    .as_ref()
                    .is_none_or(|ext| t.extensions.get(ext) == Some(user))
                    && query
                        .number
                        .as_ref()
                        .is_none_or(|n| u.and_then(|u| u.number.as_ref()) == Some(n))
            })
            .collect(),
    )
}

/// `GET /v1/tenants/{t}/licenses/{id}`: the licence, and its full history for roles that may
/// read history (auditor, admin).
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/licenses/{id}",
    operation_id = "get_license",
    tag = "licenses",
    params(doc::LicensePath),
    responses(
        (status = 200, description = "The licence; with its history for roles that read history.", body = doc::LicenseView),
        doc::ReadErrors,
    ),
)]
pub async fn one(
    State(app): State<App>,
    auth: Auth,
    AppPath((tenant, license)): AppPath<(TenantId, LicenseId)>,
) -> Result<Response, ApiError> {
    let (mut body, version) = app.read_tenant(tenant, &auth, Need::Read, |t| {
        let l = t
            .licenses
            .get(&license)
            .filter(|l| super::scope::Scope::of(&auth, t).sees_license(l))
            .ok_or_else(|| ApiError::not_found(format!("licence {license} not found")))?;
        Ok((license_json(t, l), t.version))
    })?;
    if allows(auth.role_in(tenant)?, Need::Audit) {
        let history = app
            .ledger
            .store()
            .read_tenant(tenant)
            .map_err(ApiError::from)?;
        let mut events = Vec::new();
        for stored in history {
            let envelope = stored.decode().map_err(ApiError::internal)?;
            if mentions_license(&envelope.event, license) {
                events.push(event_json(&envelope, &stored.hash().to_hex()));
            }
        }
        body["events"] = Value::Array(events);
    }
    Ok(with_etag(Json(body).into_response(), version))
}

/// Whether an event concerns a licence.
pub fn mentions_license(event: &Event, id: LicenseId) -> bool {
    projections::touches(event).licenses.contains(&id)
}

/// An event on the wire: `{"seq", "version", "recorded_at", "actor", "reason", "kind", "data", "hash"}`.
pub fn event_json(envelope: &Envelope, hash: &str) -> Value {
    let mut data = serde_json::to_value(&envelope.event)
        .ok()
        .and_then(|v| v.as_object().and_then(|o| o.values().next().cloned()))
        .unwrap_or(Value::Null);
    // A key's token hash and the webhook's signing secret stay inside the log.
    if let Some(fields) = data.as_object_mut() {
        fields.remove("token_hash");
        fields.remove("secret");
    }
    json!({
        "seq": envelope.seq,
        "version": envelope.version,
        "recorded_at": instant(envelope.recorded_at),
        "actor": envelope.actor,
        "reason": envelope.reason,
        "kind": envelope.event.kind(),
        "data": data,
        "hash": hash,
    })
}
