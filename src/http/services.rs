//! Metered services and usage records: `PUT /services/{code}`, `GET /services`,
//! `GET /services/{code}`, `POST /usage-records`.

use super::auth::{Auth, Need};
use super::doc;
use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery, WriteMeta};
use super::views::{instant, parse_instant};
use super::{with_etag, written, App};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use events::metering::{NewUsageRecord, Service};
use events::time::{billing_zone, truncate_to_micros, Month};
use events::{Command, Event, Tenant, TenantId, TypeCode, UserId};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

fn service_code(code: &str) -> Result<TypeCode, ApiError> {
    TypeCode::parse(code).ok_or_else(|| {
        ApiError::bad_request(format!(
            "a service code is 1 to {} characters of a-z, 0-9 and _, not `{code}`",
            events::ids::TYPE_CODE_BYTES_MAX
        ))
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceBody {
    /// Shown to people; default: the code.
    pub(super) name: Option<String>,
    /// What one unit is (`power_pack`, `minute`, …); default `unit`.
    pub(super) unit: Option<String>,
    /// Switched on or off.
    pub(super) enabled: bool,
    /// Units included every month; default 0.
    #[serde(default)]
    pub(super) base_allowance: u64,
    /// The most units a month may use over the base allowance; absent or `null`: no cap.
    pub(super) monthly_cap: Option<u64>,
    /// Services that must be switched on for this one to work.
    #[serde(default)]
    pub(super) requires: Vec<String>,
}

/// `PUT /v1/tenants/{t}/services/{code}` (admin): define a metered service (201) or change
/// it (200): switch, base allowance, monthly cap over it, the services it requires.
#[utoipa::path(
    put,
    path = "/v1/tenants/{t}/services/{code}",
    operation_id = "define_service",
    tag = "services",
    params(doc::CodePath, doc::WriteHeaders),
    request_body = ServiceBody,
    responses(
        (status = 200, description = "An existing service changed.", body = doc::ServiceDefined),
        (status = 201, description = "A new service defined.", body = doc::ServiceDefined),
        doc::WriteErrors,
    ),
)]
pub async fn define(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath((tenant, code)): AppPath<(TenantId, String)>,
    AppJson(body): AppJson<ServiceBody>,
) -> Result<Response, ApiError> {
    let service = service_from(service_code(&code)?, body)?;
    let existed = app.read_tenant(tenant, &auth, Need::Read, |t| {
        Ok(t.services.contains_key(&service.code))
    })?;
    let done = app
        .write(
            tenant,
            &auth,
            Need::Administer,
            meta,
            Command::DefineService(service),
        )
        .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(written(status, &done, json!({"code": code})))
}

/// A service from the wire: malformed codes are a 400.
pub fn service_from(code: TypeCode, body: ServiceBody) -> Result<Service, ApiError> {
    let requires = body
        .requires
        .iter()
        .map(|r| service_code(r))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Service {
        name: body.name.unwrap_or_else(|| code.to_string()),
        code,
        unit: body.unit.unwrap_or_else(|| "unit".into()),
        enabled: body.enabled,
        base_allowance: body.base_allowance,
        monthly_cap: body.monthly_cap,
        requires,
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthQuery {
    /// The month whose consumption is shown, `YYYY-MM` in the billing time zone; default
    /// the current one.
    month: Option<String>,
}

/// `GET /v1/tenants/{t}/services?month=`: every service with the month's consumption.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/services",
    operation_id = "list_services",
    tag = "services",
    params(doc::TenantPath, MonthQuery),
    responses(
        (status = 200, description = "Every service with the month's consumption.", body = doc::ServicePage),
        doc::ReadErrors,
    ),
)]
pub async fn list(
    State(app): State<App>,
    auth: Auth,
    AppPath(tenant): AppPath<TenantId>,
    AppQuery(query): AppQuery<MonthQuery>,
) -> Result<Response, ApiError> {
    super::scope::whole_tenant(&auth, "the tenant's metered services")?;
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        let month = month_of(t, query.month.as_deref())?;
        let items: Vec<Value> = t
            .services
            .values()
            .map(|s| service_json(t, s, month))
            .collect();
        Ok(with_etag(
            Json(json!({"month": month.to_string(), "items": items})).into_response(),
            t.version,
        ))
    })
}

/// `GET /v1/tenants/{t}/services/{code}?month=`: one service with the month's consumption.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/services/{code}",
    operation_id = "get_service",
    tag = "services",
    params(doc::CodePath, MonthQuery),
    responses(
        (status = 200, description = "The service with the month's consumption.", body = doc::ServiceView),
        doc::ReadErrors,
    ),
)]
pub async fn one(
    State(app): State<App>,
    auth: Auth,
    AppPath((tenant, code)): AppPath<(TenantId, String)>,
    AppQuery(query): AppQuery<MonthQuery>,
) -> Result<Response, ApiError> {
    super::scope::whole_tenant(&auth, "the tenant's metered services")?;
    let code = service_code(&code)?;
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        let month = month_of(t, query.month.as_deref())?;
        let service = t
            .services
            .get(&code)
            .ok_or_else(|| ApiError::not_found(format!("service {code} not found")))?;
        Ok(with_etag(
            Json(service_json(t, service, month)).into_response(),
            t.version,
        ))
    })
}

fn month_of(t: &Tenant, text: Option<&str>) -> Result<Month, ApiError> {
    match text {
        None => Ok(Month::of(Utc::now(), billing_zone(&t.billing_timezone))),
        Some(text) => Month::parse(text)
            .ok_or_else(|| ApiError::bad_request(format!("month must be YYYY-MM, not `{text}`"))),
    }
}

/// A service and its consumption in `month`.
pub fn service_json(t: &Tenant, s: &Service, month: Month) -> Value {
    let zone = billing_zone(&t.billing_timezone);
    let figures = t.metered.get(&(s.code.clone(), month));
    let used = figures.map_or(0, |m| m.used);
    let maximum = s.monthly_maximum();
    let stopped = events::decide::service_outcome_when_used(t, s);
    let cap_reached = maximum.is_some_and(|m| used >= m);
    json!({
        "code": s.code,
        "name": s.name,
        "unit": s.unit,
        "enabled": s.enabled,
        "base_allowance": s.base_allowance,
        "monthly_cap": s.monthly_cap,
        "requires": s.requires,
        "month": month.to_string(),
        "used": used,
        "reported": figures.map_or(0, |m| m.reported),
        "records": figures.map_or(0, |m| m.records),
        "over_allowance": used.saturating_sub(s.base_allowance),
        "remaining": maximum.map(|m| m.saturating_sub(used)),
        "blocked": stopped.is_some() || cap_reached,
        "blocked_by": match (stopped, cap_reached) {
            (Some(outcome), _) => json!(outcome.as_str()),
            (None, true) => json!("monthly_cap_reached"),
            (None, false) => Value::Null,
        },
        "resets_at": instant(month.end(zone)),
        "cap_reached": figures.and_then(|m| m.cap_reached.as_ref()).map(|c| json!({
            "version": c.version,
            "record_id": c.record,
            "occurred_at": instant(c.occurred_at),
        })),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRecordBody {
    /// The client's id of the record: sent again (in the same month), it is ignored.
    id: String,
    service: String,
    quantity: u64,
    #[schema(value_type = Option<uuid::Uuid>)]
    user_id: Option<UserId>,
    queue: Option<String>,
    #[schema(format = DateTime)]
    occurred_at: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatchBody {
    /// 1 to 10 000 records.
    records: Vec<UsageRecordBody>,
}

/// `POST /v1/tenants/{t}/usage-records` (operator): a batch of consumption. Every record is
/// checked first (a bad one refuses the batch, naming its index); each record not seen
/// before counts in the month it occurred (this or the previous one), up to the service's
/// cap. Answers each record's fate.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/usage-records",
    operation_id = "record_usage",
    tag = "services",
    params(doc::TenantPath, doc::WriteHeaders),
    request_body = UsageBatchBody,
    responses(
        (status = 200, description = "What became of each record.", body = doc::UsageRecorded),
        doc::WriteErrors,
    ),
)]
pub async fn record(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(body): AppJson<UsageBatchBody>,
) -> Result<Response, ApiError> {
    let mut records = Vec::with_capacity(body.records.len());
    for (index, r) in body.records.into_iter().enumerate() {
        let at_index = |e: ApiError| e.prefixed(&format!("records[{index}]: "));
        records.push(NewUsageRecord {
            id: r.id,
            service: service_code(&r.service).map_err(at_index)?,
            quantity: r.quantity,
            user: r.user_id,
            queue: r.queue,
            occurred_at: parse_instant("occurred_at", &r.occurred_at).map_err(at_index)?,
        });
    }
    let zone = app.read_tenant(tenant, &auth, Need::Read, |t| {
        Ok(billing_zone(&t.billing_timezone))
    })?;
    let asked: Vec<(String, DateTime<Utc>)> = records
        .iter()
        .map(|r| (r.id.clone(), truncate_to_micros(r.occurred_at)))
        .collect();
    let done = app
        .write(
            tenant,
            &auth,
            Need::Operate,
            meta,
            Command::RecordUsage(records),
        )
        .await?;
    let mut stored: HashMap<(&str, DateTime<Utc>), &events::metering::UsageRecord> = HashMap::new();
    for event in &done.events {
        if let Event::UsageRecorded { records } = event {
            for r in records {
                stored.insert((r.id.as_str(), r.occurred_at), r);
            }
        }
    }
    let this_month = Month::of(Utc::now(), zone);
    let mut counted = 0u64;
    let mut duplicates = 0u64;
    let answers: Vec<Value> = asked
        .iter()
        .map(|(id, at)| {
            let late = Month::of(*at, zone) < this_month;
            match stored.remove(&(id.as_str(), *at)) {
                Some(r) => {
                    counted += r.counted;
                    json!({"id": id, "status": r.outcome.as_str(), "counted": r.counted, "late": late})
                }
                None => {
                    duplicates += 1;
                    json!({"id": id, "status": "duplicate", "counted": 0, "late": late})
                }
            }
        })
        .collect();
    Ok(written(
        StatusCode::OK,
        &done,
        json!({"counted": counted, "duplicates": duplicates, "records": answers}),
    ))
}
