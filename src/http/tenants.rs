//! Tenants, keys, catalogue, settings, prices and usage.

use super::auth::{role_name, token_hash, Auth, Need};
use super::doc;
use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery, WriteMeta};
use super::views::{parse_instant, parse_type};
use super::{with_etag, written, App};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use events::{Command, GroupId, KeyId, Retention, Role, TenantId};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::str::FromStr;

#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateTenantBody {
    #[schema(value_type = Option<uuid::Uuid>)]
    id: Option<TenantId>,
    name: String,
    billing_timezone: Option<String>,
    currency: Option<String>,
}

/// `POST /v1/tenants` (root only).
#[utoipa::path(
    post,
    path = "/v1/tenants",
    operation_id = "create_tenant",
    tag = "tenants",
    params(doc::WriteHeaders),
    request_body = CreateTenantBody,
    responses(
        (status = 201, description = "The tenant, created with the default catalogue.", body = doc::TenantCreated),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
    ),
)]
pub async fn create(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppJson(body): AppJson<CreateTenantBody>,
) -> Result<Response, ApiError> {
    auth.require_root()?;
    let timezone = body.billing_timezone.unwrap_or_else(|| "UTC".into());
    if chrono_tz::Tz::from_str(&timezone).is_err() {
        return Err(ApiError::bad_request(format!(
            "unknown IANA time zone `{timezone}`"
        )));
    }
    let tenant = body
        .id
        .unwrap_or_else(|| TenantId(meta.chosen_id(TenantId(uuid::Uuid::nil()), "tenant")));
    let keyed = meta.command_id(tenant);
    let currency = body.currency.unwrap_or_else(|| "EUR".into());
    let command = Command::CreateTenant {
        name: body.name.clone(),
        billing_timezone: timezone.clone(),
        currency: currency.clone(),
    };
    let request = crate::ledger::Request {
        tenant,
        actor: crate::ledger::Actor {
            id: auth.actor(),
            reason: meta.reason,
            scope: None,
        },
        expected_version: meta.expected_version,
        command,
    };
    let done = app.ledger.execute_keyed(request, keyed).await?;
    Ok(written(
        StatusCode::CREATED,
        &done,
        json!({"id": tenant, "name": body.name, "billing_timezone": timezone, "currency": currency}),
    ))
}

/// `GET /v1/tenants/{t}`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}",
    operation_id = "get_tenant",
    tag = "tenants",
    params(doc::TenantPath),
    responses(
        (status = 200, description = "The tenant.", body = doc::TenantView),
        doc::ReadErrors,
    ),
)]
pub async fn get_tenant(
    State(app): State<App>,
    auth: Auth,
    AppPath(tenant): AppPath<TenantId>,
) -> Result<Response, ApiError> {
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        let body = json!({
            "id": t.id, "name": t.name, "billing_timezone": t.billing_timezone,
            "currency": t.currency, "version": t.version,
            "recording_retention": retention_json(t.retention),
        });
        Ok(with_etag(Json(body).into_response(), t.version))
    })
}

fn retention_json(retention: Retention) -> Value {
    match retention {
        Retention::Days(days) => json!({"days": days}),
        Retention::Months(months) => json!({"months": months}),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct IssueKeyBody {
    #[schema(value_type = doc::RoleName)]
    role: Role,
    name: String,
    /// A dealer's key: it reads and manages only this group's subtree, and anything outside
    /// answers 404 as if it did not exist. A key scoped to a group issues keys only for groups
    /// of its own subtree.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    group_id: Option<GroupId>,
}

/// `POST /v1/tenants/{t}/keys` (root or admin): the token is shown once.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/keys",
    operation_id = "issue_key",
    tag = "tenants",
    params(doc::TenantPath, doc::WriteHeaders),
    request_body = IssueKeyBody,
    responses(
        (status = 201, description = "The key; its token is shown only here.", body = doc::KeyIssued),
        doc::ReadErrors,
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
    ),
)]
pub async fn issue_key(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(body): AppJson<IssueKeyBody>,
) -> Result<Response, ApiError> {
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = format!("lk_{}", hex::encode(secret));
    let key = KeyId(meta.chosen_id(tenant, "key"));
    let command = Command::IssueKey {
        key,
        name: body.name,
        role: body.role,
        token_hash: token_hash(&token),
        group: body.group_id,
    };
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    if done.replayed {
        // The token was shown once, and only its hash was kept.
        return Err(ApiError::conflict(
            "this key was already issued under this Idempotency-Key and its token cannot be shown again; revoke it and issue a new one",
        )
        .with_details(json!({"reason": "token_shown_once", "key_id": key})));
    }
    Ok(written(
        StatusCode::CREATED,
        &done,
        json!({"id": key, "token": token, "role": role_name(body.role), "group_id": body.group_id}),
    ))
}

/// `DELETE /v1/tenants/{t}/keys/{key}` (root or admin).
#[utoipa::path(
    delete,
    path = "/v1/tenants/{t}/keys/{key}",
    operation_id = "revoke_key",
    tag = "tenants",
    params(doc::KeyPath, doc::WriteHeaders),
    responses(
        (status = 200, description = "Revoked.", body = doc::Written),
        doc::ReadErrors,
        (status = 409, response = doc::Conflict),
    ),
)]
pub async fn revoke_key(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, key)): AppPath<(TenantId, KeyId)>,
) -> Result<Response, ApiError> {
    let done = app
        .write(
            tenant,
            &auth,
            Need::Administer,
            meta,
            Command::RevokeKey { key },
        )
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

/// `GET /v1/tenants/{t}/catalog`.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/catalog",
    operation_id = "get_catalog",
    tag = "tenants",
    params(doc::TenantPath),
    responses(
        (status = 200, description = "Every licence type of the tenant.", body = doc::Catalogue),
        doc::ReadErrors,
    ),
)]
pub async fn catalog(
    State(app): State<App>,
    auth: Auth,
    AppPath(tenant): AppPath<TenantId>,
) -> Result<Response, ApiError> {
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        let types = t.catalogue.values().map(|d| {
            let item = json!({
                "code": d.code, "kind": d.kind, "attaches_to": d.attaches_to,
                "requires_any": d.requires_any, "excludes": d.excludes,
            });
            (d.code.clone(), item)
        });
        // A feature keeps the licence types' fields, empty, so readers of those never break.
        let features = t.features.values().map(|f| {
            let item = json!({
                "code": f.code, "kind": "feature", "name": f.name,
                "enabled_by_default": f.enabled_by_default,
                "attaches_to": [], "requires_any": [], "excludes": [],
            });
            (f.code.clone(), item)
        });
        let by_code: BTreeMap<events::TypeCode, Value> = types.chain(features).collect();
        let items: Vec<Value> = by_code.into_values().collect();
        Ok(with_etag(
            Json(json!({ "items": items })).into_response(),
            t.version,
        ))
    })
}

/// What a catalogue entry is on the wire: a licence type's kind, or a feature.
#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EntryKind {
    Base,
    Addon,
    Feature,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct DefineTypeBody {
    code: Option<String>,
    #[schema(value_type = doc::LicenseKind)]
    kind: EntryKind,
    #[serde(default)]
    attaches_to: Vec<String>,
    #[serde(default)]
    requires_any: Vec<String>,
    #[serde(default)]
    excludes: Vec<String>,
    /// A feature's name (required for `kind: "feature"`, refused otherwise).
    #[schema(max_length = 200)]
    name: Option<String>,
    /// Whether a feature is on where no group switches it (features only; default false).
    enabled_by_default: Option<bool>,
}

impl DefineTypeBody {
    /// The command defining the entry `code`: a licence type, or a feature (which has a name,
    /// a default and none of the licence types' lists).
    fn into_command(self, code: events::TypeCode) -> Result<Command, ApiError> {
        let kind = match self.kind {
            EntryKind::Base => events::Kind::Base,
            EntryKind::Addon => events::Kind::Addon,
            EntryKind::Feature => return self.into_feature(code),
        };
        if self.name.is_some() || self.enabled_by_default.is_some() {
            return Err(ApiError::bad_request(
                "`name` and `enabled_by_default` are for features (kind `feature`) only",
            ));
        }
        let codes = |list: &[String]| {
            list.iter()
                .map(|c| parse_type(c))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Command::DefineLicenseType(events::LicenseType {
            code,
            kind,
            attaches_to: codes(&self.attaches_to)?,
            requires_any: codes(&self.requires_any)?,
            excludes: codes(&self.excludes)?,
        }))
    }

    fn into_feature(self, code: events::TypeCode) -> Result<Command, ApiError> {
        let lists = [&self.attaches_to, &self.requires_any, &self.excludes];
        if lists.iter().any(|l| !l.is_empty()) {
            return Err(ApiError::bad_request(
                "a feature has no units: it attaches to, requires and excludes nothing",
            ));
        }
        let name = self
            .name
            .ok_or_else(|| ApiError::bad_request("a feature needs a `name`"))?;
        Ok(Command::DefineFeature(events::Feature {
            code,
            name,
            enabled_by_default: self.enabled_by_default.unwrap_or(false),
        }))
    }
}

/// `PUT /v1/tenants/{t}/catalog/{code}` (admin): define a type or a feature (201) or change
/// one (200); 422 lists every rule broken, including each current assignment the change
/// would invalidate. A code never changes between licence type and feature.
#[utoipa::path(
    put,
    path = "/v1/tenants/{t}/catalog/{code}",
    operation_id = "define_license_type",
    tag = "tenants",
    params(doc::CodePath, doc::WriteHeaders),
    request_body = DefineTypeBody,
    responses(
        (status = 200, description = "An existing type changed.", body = doc::TypeDefined),
        (status = 201, description = "A new type defined.", body = doc::TypeDefined),
        doc::WriteErrors,
    ),
)]
pub async fn define_type(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, code)): AppPath<(TenantId, String)>,
    AppJson(body): AppJson<DefineTypeBody>,
) -> Result<Response, ApiError> {
    let license_type = events::TypeCode::parse(&code).ok_or_else(|| {
        ApiError::bad_request(format!(
            "a licence type code is 1 to {} characters of a-z, 0-9 and _, not `{code}`",
            events::ids::TYPE_CODE_BYTES_MAX
        ))
    })?;
    if body.code.as_deref().is_some_and(|c| c != code) {
        return Err(ApiError::bad_request(
            "the body's code differs from the path's",
        ));
    }
    let command = body.into_command(license_type.clone())?;
    let existed = app.read_tenant(tenant, &auth, Need::Read, |t| {
        Ok(t.catalogue.contains_key(&license_type) || t.features.contains_key(&license_type))
    })?;
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(written(status, &done, json!({"code": code})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RetentionBody {
    days: Option<u32>,
    months: Option<u32>,
}

/// `PUT /v1/tenants/{t}/settings/recording-retention` (admin): `{"days"}` or `{"months"}`.
#[utoipa::path(
    put,
    path = "/v1/tenants/{t}/settings/recording-retention",
    operation_id = "set_recording_retention",
    tag = "tenants",
    params(doc::TenantPath, doc::WriteHeaders),
    request_body = RetentionBody,
    responses(
        (status = 200, description = "Set.", body = doc::Written),
        doc::ReadErrors,
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
    ),
)]
pub async fn set_retention(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(body): AppJson<RetentionBody>,
) -> Result<Response, ApiError> {
    let retention = match (body.days, body.months) {
        (Some(days), None) => Retention::Days(days),
        (None, Some(months)) => Retention::Months(months),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of `days` or `months`",
            ))
        }
    };
    let done = app
        .write(
            tenant,
            &auth,
            Need::Administer,
            meta,
            Command::SetRetention(retention),
        )
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct PriceBody {
    unit_price_minor: i64,
    currency: Option<String>,
    #[schema(format = DateTime)]
    effective_from: Option<String>,
}

/// `PUT /v1/tenants/{t}/prices/{type}` (admin).
#[utoipa::path(
    put,
    path = "/v1/tenants/{t}/prices/{type}",
    operation_id = "set_price",
    tag = "tenants",
    params(doc::TypePath, doc::WriteHeaders),
    request_body = PriceBody,
    responses(
        (status = 200, description = "Set.", body = doc::Written),
        doc::WriteErrors,
    ),
)]
pub async fn set_price(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, code)): AppPath<(TenantId, String)>,
    AppJson(body): AppJson<PriceBody>,
) -> Result<Response, ApiError> {
    let license_type = parse_type(&code)?;
    let effective_from = match body.effective_from.as_deref() {
        Some(text) => parse_instant("effective_from", text)?,
        None => DateTime::<Utc>::UNIX_EPOCH,
    };
    let currency = match body.currency {
        Some(c) => c,
        None => app.read_tenant(tenant, &auth, Need::Read, |t| Ok(t.currency.clone()))?,
    };
    let command = Command::SetPrice {
        license_type,
        unit_price_minor: body.unit_price_minor,
        currency,
        effective_from,
    };
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtQuery {
    /// The instant to evaluate at (RFC 3339); default now. A past instant needs the auditor or
    /// billing role.
    #[param(format = DateTime)]
    at: Option<String>,
}

/// `GET /v1/tenants/{t}/usage?at=`: now, or as it was at `at` (auditor, billing).
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/usage",
    operation_id = "get_usage",
    tag = "tenants",
    params(doc::TenantPath, AtQuery),
    responses(
        (status = 200, description = "Owned, assigned and free licences per type.", body = doc::Usage),
        doc::ReadErrors,
    ),
)]
pub async fn usage(
    State(app): State<App>,
    auth: Auth,
    AppPath(tenant): AppPath<TenantId>,
    AppQuery(query): AppQuery<AtQuery>,
) -> Result<Response, ApiError> {
    auth.role_in(tenant)?;
    super::scope::whole_tenant(&auth, "the tenant's usage")?;
    let now = Utc::now();
    let at = match query.at.as_deref() {
        None => None,
        Some(text) => Some(parse_instant("at", text)?),
    };
    let render = |usage: BTreeMap<events::TypeCode, projections::TypeUsage>,
                  version: u64,
                  at: DateTime<Utc>| {
        let types: serde_json::Map<String, Value> = usage
            .into_iter()
            .map(|(code, u)| (code.to_string(), json!(u)))
            .collect();
        with_etag(
            Json(json!({"at": super::views::instant(at), "types": types})).into_response(),
            version,
        )
    };
    match at {
        Some(at) if at < now => {
            let (version, usage) =
                app.usage_as_of(tenant, &auth, &[Need::Audit, Need::Bill], at)?;
            Ok(render(usage, version, at))
        }
        _ => app.read_tenant(tenant, &auth, Need::Read, |t| {
            Ok(render(projections::usage(t), t.version, at.unwrap_or(now)))
        }),
    }
}
