//! The HTTP API of API.md: `app()` lists every route. The only code that knows JSON bodies and
//! status codes. Handlers are thin: parse → command → execute → respond.

mod audit;
pub mod auth;
mod billing;
mod carts;
mod console;
pub mod doc;
pub mod error;
pub mod extract;
mod groups;
pub mod imports;
pub mod licenses;
pub mod log;
pub mod nodes;
pub mod openapi;
pub mod reminders;
pub mod scope;
pub mod services;
mod tenants;
mod users;
pub mod views;
pub mod whatif;

use crate::ledger::{Actor, ExecError, Ledger, Request, Written};
use auth::{Auth, Need};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use error::ApiError;
use events::{Command, Tenant, TenantId};
use extract::WriteMeta;
use serde_json::{json, Value};

/// Largest request body accepted, in bytes (a 10 000-user batch fits).
pub const REQUEST_BODY_BYTES_MAX: usize = 4 << 20;
/// Default page size of lists.
pub const PAGE_LIMIT_DEFAULT: usize = 100;
/// Largest page size of lists.
pub const PAGE_LIMIT_MAX: usize = 1000;
/// Longest free-text filter of a list (`q`, `extension`, `kind`, `actor`), in bytes: as long
/// as the longest name, so every stored name can be searched for.
pub const FILTER_TEXT_BYTES_MAX: usize = 200;

const _: () = assert!(events::decide::NAME_BYTES_MAX <= FILTER_TEXT_BYTES_MAX);
const _: () = assert!(events::decide::EXTENSION_BYTES_MAX <= FILTER_TEXT_BYTES_MAX);

/// Shared state of every handler.
#[derive(Clone)]
pub struct App {
    pub ledger: Ledger,
    /// blake3 of the root token; the token itself is never kept.
    pub root_token_hash: [u8; 32],
}

/// Every route of the API.
pub fn app(state: App) -> Router {
    let _ = crate::metrics::handle();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/console", get(console::page))
        .route("/console/app.js", get(console::script))
        .route("/console/app.css", get(console::style))
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/v1/log", get(log::read))
        .route("/v1/tenants", post(tenants::create))
        // A tenant's routes at their full paths: under `nest`, each would be wrapped in a
        // layer rewriting every request's URI for handlers that never read it.
        .route("/v1/tenants/{t}", get(tenants::get_tenant))
        .route("/v1/tenants/{t}/keys", post(tenants::issue_key))
        .route(
            "/v1/tenants/{t}/keys/{key}",
            axum::routing::delete(tenants::revoke_key),
        )
        .route("/v1/tenants/{t}/catalog", get(tenants::catalog))
        .route("/v1/tenants/{t}/catalog/{code}", put(tenants::define_type))
        .route(
            "/v1/tenants/{t}/settings/recording-retention",
            put(tenants::set_retention),
        )
        .route("/v1/tenants/{t}/prices/{type}", put(tenants::set_price))
        .route("/v1/tenants/{t}/usage", get(tenants::usage))
        .route("/v1/tenants/{t}/events", get(audit::events))
        .route(
            "/v1/tenants/{t}/users/{u}/entitlements/{type}",
            get(audit::entitlement),
        )
        .route("/v1/tenants/{t}/billing/{month}", get(billing::month))
        .route(
            "/v1/tenants/{t}/invoices/{month}",
            get(billing::invoice_of_month),
        )
        .route(
            "/v1/tenants/{t}/licenses",
            post(licenses::provision).get(licenses::list),
        )
        .route(
            "/v1/tenants/{t}/subscription/{type}",
            put(licenses::set_quantity),
        )
        .route(
            "/v1/tenants/{t}/licenses/{id}",
            get(licenses::one).delete(licenses::terminate),
        )
        .route(
            "/v1/tenants/{t}/licenses/{id}/assign",
            post(licenses::assign),
        )
        .route(
            "/v1/tenants/{t}/licenses/{id}/unassign",
            post(licenses::unassign),
        )
        .route(
            "/v1/tenants/{t}/licenses/{id}/reassign",
            post(licenses::reassign),
        )
        .route(
            "/v1/tenants/{t}/licenses/{id}/addons",
            post(licenses::attach),
        )
        .route(
            "/v1/tenants/{t}/licenses/{id}/addons/{addon}",
            axum::routing::delete(licenses::detach),
        )
        .route(
            "/v1/tenants/{t}/assignments",
            post(licenses::assign_by_type),
        )
        .route(
            "/v1/tenants/{t}/groups",
            post(groups::create).get(groups::list),
        )
        .route(
            "/v1/tenants/{t}/groups/{g}",
            get(groups::one).patch(groups::update),
        )
        .route(
            "/v1/tenants/{t}/groups/{g}/restriction",
            put(groups::set_restriction).delete(groups::clear_restriction),
        )
        .route("/v1/tenants/{t}/groups/{g}/state", get(groups::state))
        .route("/v1/tenants/{t}/what-if", post(whatif::preview))
        .route(
            "/v1/tenants/{t}/imports",
            post(imports::import).layer(DefaultBodyLimit::max(imports::IMPORT_BYTES_MAX)),
        )
        .route("/v1/tenants/{t}/imports/sample.csv", get(imports::sample))
        .route("/v1/tenants/{t}/reminders", get(reminders::due))
        .route("/v1/tenants/{t}/webhook", put(reminders::set_webhook))
        .route(
            "/v1/tenants/{t}/notification-template",
            get(reminders::notification_template).put(reminders::set_notification_template),
        )
        .route(
            "/v1/tenants/{t}/users",
            post(users::create).get(users::list),
        )
        .route("/v1/tenants/{t}/users/batch", post(users::create_batch))
        .route(
            "/v1/tenants/{t}/users/{u}",
            get(users::one).patch(users::update).delete(users::delete),
        )
        .route(
            "/v1/tenants/{t}/users/{u}/restriction",
            put(users::set_restriction).delete(users::clear_restriction),
        )
        .route("/v1/tenants/{t}/services", get(services::list))
        .route(
            "/v1/tenants/{t}/services/{code}",
            put(services::define).get(services::one),
        )
        .route("/v1/tenants/{t}/usage-records", post(services::record))
        .route("/v1/tenants/{t}/carts", post(carts::create))
        .route("/v1/tenants/{t}/carts/{id}", get(carts::one))
        .route("/v1/tenants/{t}/carts/{id}/confirm", post(carts::confirm))
        .route("/v1/tenants/{t}/users/{u}/groups", post(users::add_group))
        .route(
            "/v1/tenants/{t}/users/{u}/groups/{g}",
            delete(users::remove_group),
        )
        .route_layer(axum::middleware::from_fn(fingerprint))
        .route_layer(axum::middleware::from_fn(observe))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            nodes::route,
        ))
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::internal("handler panicked").into_response()
            },
        ))
        .with_state(state)
}

/// Liveness, with the global sequence of the last event and whether writes are taken: after a
/// storage failure stopped the writer, `writes` is `stopped` and `writes_stopped_reason` says
/// why (reads go on, so `status` stays `ok`). On a log shared with other nodes, `role` says
/// whether this node writes and `lag_events` how far it is behind the log.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The server is up; `writes` says whether it takes writes.", body = doc::Health)),
)]
async fn healthz(State(app): State<App>) -> Json<Value> {
    let seq = app.ledger.read().head;
    let mut health = match app.ledger.writes_stopped() {
        None => json!({"status": "ok", "seq": seq, "writes": "ok"}),
        Some(reason) => json!({
            "status": "ok",
            "seq": seq,
            "writes": "stopped",
            "writes_stopped_reason": reason,
        }),
    };
    // Only on a log shared with other nodes: a single node's answer stays as it was.
    if let Some(lag) = app.ledger.lag() {
        health["role"] = json!(if app.ledger.is_writer() {
            "writer"
        } else {
            "follower"
        });
        health["lag_events"] = json!(lag);
    }
    Json(health)
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    security(()),
    responses((status = 200, description = "Prometheus text exposition format.", body = String, content_type = "text/plain")),
)]
async fn metrics_text(State(app): State<App>) -> Response {
    crate::metrics::node(app.ledger.is_writer(), app.ledger.lag());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
        .into_response()
}

/// The tenant id in a path, for logs.
fn tenant_in_path(path: &str) -> &str {
    path.strip_prefix("/v1/tenants/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("-")
}

/// Log every request in a span carrying its request id, route and tenant; count it by route
/// and status; answer with `X-Request-Id`.
async fn observe(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let request_id = uuid::Uuid::new_v4();
    let tenant = tenant_in_path(request.uri().path()).to_string();
    let span = tracing::info_span!("request", %request_id, %method, %route, %tenant);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    crate::metrics::http_request(&route, &method, status, seconds);
    span.in_scope(|| tracing::info!(status, millis = seconds * 1000.0, "answered"));
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// For a request with an `Idempotency-Key`, hash its method, path and body so a retry can be
/// told from a different request under the same key.
async fn fingerprint(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    if !request.headers().contains_key("idempotency-key") {
        return Ok(next.run(request).await);
    }
    let (parts, body) = request.into_parts();
    let limit = REQUEST_BODY_BYTES_MAX.max(imports::IMPORT_BYTES_MAX);
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::payload_too_large(limit))?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let mut request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    request
        .extensions_mut()
        .insert(extract::RequestFingerprint(*hasher.finalize().as_bytes()));
    Ok(next.run(request).await)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

impl App {
    /// Run a write for `tenant` as `auth`, after checking the role.
    pub async fn write(
        &self,
        tenant: TenantId,
        auth: &Auth,
        need: Need,
        meta: WriteMeta,
        command: Command,
    ) -> Result<Written, ApiError> {
        // A key of another tenant is refused before the tenant is looked up, so its answer
        // never tells whether a tenant exists.
        auth.role_in(tenant)?;
        // Whether the tenant exists is left to the writer (`ExecError::TenantNotFound`): taking
        // the state's read lock here would park this runtime thread for as long as the writer
        // holds the write lock, which is the whole of every flush.
        auth.require(tenant, need)?;
        let keyed = meta.command_id(tenant);
        let preview_cost = meta.preview_cost;
        let request = Request {
            tenant,
            actor: Actor {
                id: auth.actor(),
                reason: meta.reason,
                scope: auth.scope(),
            },
            expected_version: meta.expected_version,
            command,
        };
        self.ledger
            .execute_with(
                request,
                crate::ledger::ExecOptions {
                    keyed,
                    preview_cost,
                },
            )
            .await
            .map_err(|e| match e {
                ExecError::TenantNotFound => {
                    ApiError::not_found(format!("tenant {tenant} not found"))
                }
                other => other.into(),
            })
    }

    /// The tenant as it was at a past instant, for a caller holding one of `needs` (the
    /// as-of queries: auditors, and billing for usage): `read` sees what a group-state or an
    /// entitlement question about `user` reads — the groups, the catalogue, the user and
    /// their licences as they were — rebuilt from the past index without folding.
    pub fn view_as_of<R>(
        &self,
        tenant: TenantId,
        auth: &Auth,
        needs: &[Need],
        at: chrono::DateTime<chrono::Utc>,
        user: Option<events::UserId>,
        read: impl FnOnce(&Tenant) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        self.may_read_past(tenant, auth, needs)?;
        self.ledger
            .with_view_at(tenant, at, user, read)
            .map_err(ApiError::from)?
    }

    /// The tenant's usage at `at` and its version then, from the usage history (no past state
    /// is folded), after the checks of [`App::view_as_of`].
    pub fn usage_as_of(
        &self,
        tenant: TenantId,
        auth: &Auth,
        needs: &[Need],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<
        (
            u64,
            std::collections::BTreeMap<events::TypeCode, projections::TypeUsage>,
        ),
        ApiError,
    > {
        self.may_read_past(tenant, auth, needs)?;
        Ok(self.ledger.read().usage_at(tenant, at))
    }

    /// The tenant exists and is the caller's, and the caller's role has one of `needs`.
    fn may_read_past(&self, tenant: TenantId, auth: &Auth, needs: &[Need]) -> Result<(), ApiError> {
        self.read_tenant(tenant, auth, Need::Read, |_| Ok(()))?;
        let role = auth.role_in(tenant)?;
        if !needs.iter().any(|need| auth::allows(role, *need)) {
            return Err(ApiError::forbidden(format!(
                "the {} role may not read past state",
                auth::role_name(role)
            )));
        }
        Ok(())
    }

    /// Read the current state of a tenant after checking the role.
    pub fn read_tenant<R>(
        &self,
        tenant: TenantId,
        auth: &Auth,
        need: Need,
        read: impl FnOnce(&Tenant) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        auth.role_in(tenant)?;
        let world = self.ledger.read();
        let state = world
            .tenants
            .get(&tenant)
            .ok_or_else(|| ApiError::not_found(format!("tenant {tenant} not found")))?;
        auth.require(tenant, need)?;
        read(state)
    }
}

/// A write's answer: `{"seq", "version", ...extra}` with the tenant's ETag.
pub fn written(status: StatusCode, written: &Written, extra: Value) -> Response {
    let mut body = json!({"seq": written.seq, "version": written.version});
    if let Some(cost) = &written.cost {
        let types: serde_json::Map<String, Value> = cost
            .iter()
            .map(|(t, c)| {
                let figures = json!({
                    "peak_units_before": c.peak_units_before,
                    "peak_units_after": c.peak_units_after,
                    "amount_minor_delta": c.amount_minor_delta,
                });
                (t.to_string(), figures)
            })
            .collect();
        body["cost"] = Value::Object(types);
    }
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let mut response = with_etag((status, Json(body)).into_response(), written.version);
    if written.replayed {
        response.headers_mut().insert(
            HeaderName::from_static(IDEMPOTENT_REPLAYED),
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// The header on an answer repeated for an `Idempotency-Key` already used (nothing appended),
/// as Stripe names it.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// Add `ETag: "<version>"` to a tenant-scoped answer.
pub fn with_etag(mut response: Response, version: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// A page of a list: `{"items", "next"}`.
pub fn page(items: Vec<Value>, next: Option<String>, version: u64) -> Response {
    with_etag(
        Json(json!({"items": items, "next": next})).into_response(),
        version,
    )
}

/// A free-text filter no longer than [`FILTER_TEXT_BYTES_MAX`], or a 400 naming it.
pub fn filter_text(field: &str, text: Option<&str>) -> Result<(), ApiError> {
    match text {
        Some(text) if text.len() > FILTER_TEXT_BYTES_MAX => Err(ApiError::bad_request(format!(
            "{field} is longer than {FILTER_TEXT_BYTES_MAX} bytes"
        ))),
        _ => Ok(()),
    }
}

/// One page of `map` in key order after the cursor `after`: up to `limit` values that `keep`
/// accepts, rendered, and the cursor of the next page (the last key shown) when more follow.
pub fn page_after<'a, K: Copy + std::fmt::Display + 'a, V: 'a>(
    entries: impl Iterator<Item = (&'a K, &'a V)>,
    limit: usize,
    keep: impl Fn(&V) -> bool,
    render: impl Fn(&V) -> Value,
) -> (Vec<Value>, Option<String>) {
    let mut matching = entries.filter(|(_, v)| keep(v));
    let shown: Vec<(&K, &V)> = matching.by_ref().take(limit).collect();
    let next = match (matching.next(), shown.last()) {
        (Some(_), Some((key, _))) => Some(key.to_string()),
        _ => None,
    };
    (shown.into_iter().map(|(_, v)| render(v)).collect(), next)
}

/// The entries of an ordered map with keys strictly after `after` (all, for `None`).
pub fn btree_after<K: Ord + Copy, V>(
    map: &std::collections::BTreeMap<K, V>,
    after: Option<K>,
) -> std::collections::btree_map::Range<'_, K, V> {
    let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
    map.range((start, std::ops::Bound::Unbounded))
}

/// Clamp a requested page size.
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(PAGE_LIMIT_DEFAULT),
        Some(0) => Err(ApiError::bad_request("limit must be at least 1")),
        Some(n) if n > PAGE_LIMIT_MAX => Err(ApiError::bad_request(format!(
            "limit must be at most {PAGE_LIMIT_MAX}"
        ))),
        Some(n) => Ok(n),
    }
}
