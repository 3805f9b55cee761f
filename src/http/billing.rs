//! Billing figures and invoices (billing, admin).

use super::auth::{Auth, Need};
use super::doc;
use super::error::ApiError;
use super::extract::AppPath;
use super::views::instant;
use super::{with_etag, App};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use events::TenantId;
use projections::{invoice, invoice_bytes, Month};
use serde_json::{json, Value};

fn parse_month(text: &str) -> Result<Month, ApiError> {
    Month::parse(text)
        .ok_or_else(|| ApiError::bad_request(format!("month must be YYYY-MM, not `{text}`")))
}

/// `GET /v1/tenants/{t}/billing/{YYYY-MM}`: peaks per type, with the event behind each peak.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/billing/{month}",
    operation_id = "get_billing_month",
    tag = "billing",
    params(doc::MonthPath),
    responses(
        (status = 200, description = "Peaks per type.", body = doc::BillingMonth),
        doc::ReadErrors,
    ),
)]
pub async fn month(
    State(app): State<App>,
    auth: Auth,
    AppPath((tenant, month)): AppPath<(TenantId, String)>,
) -> Result<Response, ApiError> {
    let month = parse_month(&month)?;
    auth.role_in(tenant)?;
    let world = app.ledger.read();
    let state = world
        .tenants
        .get(&tenant)
        .ok_or_else(|| ApiError::not_found(format!("tenant {tenant} not found")))?;
    auth.require(tenant, Need::Bill)?;
    super::scope::whole_tenant(&auth, "billing")?;
    let empty = projections::Billing::default();
    let billing = world.billing.get(&tenant).map_or(&empty, |b| &**b);
    let types: serde_json::Map<String, Value> = billing
        .month(month)
        .into_iter()
        .map(|(t, f)| {
            let figures = json!({
                "peak_units": f.peak_units,
                "peak_at": instant(f.peak_at),
                "peak_seq": f.peak_seq,
                "peak_actor": f.peak_actor,
                "peak_assigned": f.peak_assigned,
                "units_at_end": f.units_at_end,
            });
            (t.to_string(), figures)
        })
        .collect();
    let end = month.end(billing.timezone);
    let services: serde_json::Map<String, Value> = billing
        .metered(month)
        .into_iter()
        .map(|(service, f)| {
            let terms = billing.service_terms_at(&service, end);
            let base_allowance = terms.map_or(0, |t| t.base_allowance);
            let figures = json!({
                "unit": terms.map(|t| t.unit.clone()),
                "used": f.used,
                "records": f.records,
                "base_allowance": base_allowance,
                "monthly_cap": terms.and_then(|t| t.monthly_cap),
                "over_allowance": f.used.saturating_sub(base_allowance),
                "cap_reached_seq": f.cap_reached_seq,
                "cap_reached_record": f.cap_reached_record,
            });
            (service.to_string(), figures)
        })
        .collect();
    let body = json!({
        "month": month.to_string(),
        "timezone": billing.timezone.name(),
        "currency": billing.currency,
        "types": types,
        "services": services,
        "through_seq": billing.through(month).map_or(0, |t| t.seq),
        "closed": month.end(billing.timezone) <= Utc::now(),
    });
    Ok(with_etag(Json(body).into_response(), state.version))
}

/// `GET /v1/tenants/{t}/invoices/{YYYY-MM}`: the invoice bytes `ledger replay` also prints.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/invoices/{month}",
    operation_id = "get_invoice",
    tag = "billing",
    params(doc::MonthPath),
    responses(
        (status = 200, description = "The invoice.", body = doc::Invoice),
        doc::ReadErrors,
    ),
)]
pub async fn invoice_of_month(
    State(app): State<App>,
    auth: Auth,
    AppPath((tenant, month)): AppPath<(TenantId, String)>,
) -> Result<Response, ApiError> {
    let month = parse_month(&month)?;
    auth.role_in(tenant)?;
    let world = app.ledger.read();
    let state = world
        .tenants
        .get(&tenant)
        .ok_or_else(|| ApiError::not_found(format!("tenant {tenant} not found")))?;
    auth.require(tenant, Need::Bill)?;
    super::scope::whole_tenant(&auth, "billing")?;
    let empty = projections::Billing::default();
    let billing = world.billing.get(&tenant).map_or(&empty, |b| &**b);
    let bytes = invoice_bytes(&invoice(billing, month));
    let response = ([(header::CONTENT_TYPE, "application/json")], bytes).into_response();
    Ok(with_etag(response, state.version))
}
