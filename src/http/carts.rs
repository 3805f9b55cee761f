//! Carts: `POST /carts` stores what-if commands with their preview; `POST /carts/{id}/confirm`
//! applies them all in one batch if the tenant has not changed since; `GET /carts/{id}`.

use super::auth::{Auth, Need};
use super::doc;
use super::error::ApiError;
use super::extract::{AppJson, AppPath, WriteMeta};
use super::whatif::{answer, parse, Snapshot, WhatIfBody};
use super::{with_etag, written, App};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use events::{CartId, Command, TenantId};
use serde::Deserialize;
use serde_json::{json, Value};

/// A preview of `body` against the tenant as it is now, with the version it was taken at.
fn preview_now(
    app: &App,
    auth: &Auth,
    tenant: TenantId,
    body: WhatIfBody,
) -> Result<(Value, u64), ApiError> {
    let preview = parse(body)?;
    auth.role_in(tenant)?;
    let snapshot = {
        let world = app.ledger.read();
        if !world.tenants.contains_key(&tenant) {
            return Err(ApiError::not_found(format!("tenant {tenant} not found")));
        }
        preview.authorize(auth, tenant)?;
        Snapshot::take(&world, tenant, events::time::truncate_to_micros(Utc::now()))?
    };
    let version = snapshot.tenant.version;
    Ok((answer(&snapshot, preview, auth.scope())?, version))
}

fn not_found(cart: CartId) -> ApiError {
    ApiError::not_found(format!("cart {cart} not found"))
        .with_details(json!({"reason": "cart_not_found"}))
}

/// The money a preview moves this month: the sum of its `billing_delta` amounts.
fn amount_of(preview: &Value) -> i64 {
    preview["billing_delta"]
        .as_object()
        .map(|types| {
            types
                .values()
                .filter_map(|d| d["amount_minor_delta"].as_i64())
                .fold(0i64, i64::saturating_add)
        })
        .unwrap_or(0)
}

/// `POST /v1/tenants/{t}/carts` (operator for operator commands, else admin): the commands of
/// a what-if, previewed and stored with the price shown, to be confirmed later.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/carts",
    operation_id = "create_cart",
    tag = "what-if",
    params(doc::TenantPath, doc::WriteHeaders),
    request_body = WhatIfBody,
    responses(
        (status = 201, description = "The cart, stored with its preview.", body = doc::CartCreated),
        doc::WriteErrors,
    ),
)]
pub async fn create(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(body): AppJson<WhatIfBody>,
) -> Result<Response, ApiError> {
    super::scope::whole_tenant(&auth, "carts")?;
    let commands = serde_json::to_string(&body.commands)
        .map_err(|e| ApiError::bad_request(format!("commands: {e}")))?;
    let (preview, version) = preview_now(&app, &auth, tenant, body)?;
    let cart = CartId::new_random();
    let command = Command::CreateCart {
        cart,
        commands,
        version,
        amount_minor_delta: amount_of(&preview),
    };
    let done = app
        .write(tenant, &auth, Need::Operate, meta, command)
        .await?;
    Ok(written(
        StatusCode::CREATED,
        &done,
        json!({"id": cart, "preview": preview, "amount_minor_delta": amount_of(&preview)}),
    ))
}

/// `GET /v1/tenants/{t}/carts/{id}`: a cart, its commands, its price and whether it was
/// confirmed.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/carts/{id}",
    operation_id = "get_cart",
    tag = "what-if",
    params(doc::CartPath),
    responses(
        (status = 200, description = "The cart.", body = doc::CartView),
        doc::ReadErrors,
    ),
)]
pub async fn one(
    State(app): State<App>,
    auth: Auth,
    AppPath((tenant, cart)): AppPath<(TenantId, CartId)>,
) -> Result<Response, ApiError> {
    super::scope::whole_tenant(&auth, "carts")?;
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        let stored = t.carts.get(&cart).ok_or_else(|| not_found(cart))?;
        let commands: Value = serde_json::from_str(&stored.commands).unwrap_or(Value::Null);
        let body = json!({
            "id": cart,
            "commands": commands,
            "version": stored.version,
            "previewed_version": stored.previewed_version,
            "amount_minor_delta": stored.amount_minor_delta,
            "confirmed": stored.confirmed_version.is_some(),
            "confirmed_version": stored.confirmed_version,
        });
        Ok(with_etag(Json(body).into_response(), t.version))
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {}

/// `POST /v1/tenants/{t}/carts/{id}/confirm`: apply every command of the cart in one batch,
/// all or none, if the tenant is still at the version the cart was stored at; else 409
/// `cart_stale` with a fresh preview in `details.preview`.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/carts/{id}/confirm",
    operation_id = "confirm_cart",
    tag = "what-if",
    params(doc::CartPath, doc::WriteHeaders),
    request_body = ConfirmBody,
    responses(
        (status = 200, description = "Every command applied.", body = doc::CartConfirmed),
        doc::WriteErrors,
    ),
)]
pub async fn confirm(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, cart)): AppPath<(TenantId, CartId)>,
    AppJson(_): AppJson<ConfirmBody>,
) -> Result<Response, ApiError> {
    super::scope::whole_tenant(&auth, "carts")?;
    let stored = app.read_tenant(tenant, &auth, Need::Read, |t| {
        let stored = t.carts.get(&cart).ok_or_else(|| not_found(cart))?;
        Ok(stored.clone())
    })?;
    let body = || -> Result<WhatIfBody, ApiError> {
        Ok(WhatIfBody {
            at: None,
            commands: serde_json::from_str(&stored.commands)
                .map_err(|e| ApiError::internal(format!("cart {cart} holds bad JSON: {e}")))?,
        })
    };
    let preview = parse(body()?)?;
    preview.authorize(&auth, tenant)?;
    let (_, commands) = app.read_tenant(tenant, &auth, Need::Read, |t| preview.commands(t))?;
    let outcome = app
        .write(
            tenant,
            &auth,
            Need::Operate,
            meta,
            Command::ConfirmCart { cart, commands },
        )
        .await;
    let done = match outcome {
        Ok(done) => done,
        Err(mut error)
            if error
                .details
                .as_ref()
                .is_some_and(|d| d["reason"] == "cart_stale") =>
        {
            let (fresh, version) = preview_now(&app, &auth, tenant, body()?)?;
            if let Some(details) = error.details.as_mut() {
                details["preview"] = fresh;
                details["current_version"] = json!(version);
            }
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    Ok(written(
        StatusCode::OK,
        &done,
        json!({
            "id": cart,
            "events": done.events.len(),
            "amount_minor_delta": stored.amount_minor_delta,
        }),
    ))
}
