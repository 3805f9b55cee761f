//! The OpenAPI 3.1 document of the API, served at `GET /v1/openapi.json` and generated from the
//! code: every handler carries a `#[utoipa::path]` attribute naming its path, parameters, body and
//! every status it may answer; request bodies are the handlers' own body structs (derived
//! `ToSchema`); query strings are their query structs (derived `IntoParams`); answer shapes and
//! error responses are the documentation types of [`super::doc`].

use super::doc::{
    BadRequest, Conflict, ErrorBody, Forbidden, NotFound, PayloadTooLarge, RuleViolation,
    Unauthorized,
};
use super::{
    audit, billing, carts, groups, imports, licenses, reminders, services, tenants, users, whatif,
};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Name of the bearer security scheme every authenticated operation requires (the document's
/// global `security` spells it out too: the attribute takes only a literal).
pub const BEARER_SCHEME: &str = "bearer_auth";

/// The document: every route of `app()`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ledger",
        description = "Event-sourced licensing ledger: tenants, catalogue, licences, groups, \
                       users, billing and audit. Errors answer with `{\"error\": {\"code\", \
                       \"message\", \"details\"}}`.",
    ),
    paths(
        super::healthz,
        super::console::page,
        super::console::script,
        super::console::style,
        super::log::read,
        super::metrics_text,
        serve,
        tenants::create,
        tenants::get_tenant,
        tenants::issue_key,
        tenants::revoke_key,
        tenants::catalog,
        tenants::define_type,
        tenants::set_retention,
        tenants::set_price,
        tenants::usage,
        audit::events,
        audit::entitlement,
        billing::month,
        billing::invoice_of_month,
        licenses::provision,
        licenses::list,
        licenses::set_quantity,
        licenses::one,
        licenses::terminate,
        licenses::assign,
        licenses::unassign,
        licenses::reassign,
        licenses::attach,
        licenses::detach,
        licenses::assign_by_type,
        groups::create,
        groups::list,
        groups::one,
        groups::update,
        groups::set_restriction,
        groups::clear_restriction,
        groups::state,
        whatif::preview,
        imports::import,
        imports::sample,
        reminders::due,
        reminders::set_webhook,
        reminders::notification_template,
        reminders::set_notification_template,
        users::create,
        users::list,
        users::create_batch,
        users::one,
        users::update,
        users::delete,
        users::set_restriction,
        users::clear_restriction,
        users::add_group,
        users::remove_group,
        services::define,
        services::list,
        services::one,
        services::record,
        carts::create,
        carts::one,
        carts::confirm,
    ),
    components(
        schemas(ErrorBody),
        responses(
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        RuleViolation,
        ),
    ),
    modifiers(&BearerAuth),
    security(("bearer_auth" = [])),
    tags(
        (name = "operations", description = "Health, metrics and this document (no token)."),
        (name = "tenants", description = "Tenants, keys, catalogue, settings, prices and usage."),
        (name = "licenses", description = "Provisioning, quantities and assignments."),
        (name = "groups", description = "Groups, restrictions and group state."),
        (name = "users", description = "Users, one at a time or in batches."),
        (name = "billing", description = "Monthly peaks and invoices."),
        (name = "audit", description = "The event history and entitlement checks."),
        (name = "what-if", description = "Previews that write nothing."),
        (name = "imports", description = "Bulk CSV import."),
        (name = "services", description = "Metered services: monthly allowances, caps and usage records."),
        (name = "reminders", description = "Expiry reminders, notifications and their signed webhook."),
    ),
)]
pub struct ApiDoc;

/// Adds the bearer scheme the document's global `security` names.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The root token (LEDGER_ROOT_TOKEN) or a tenant's API key.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON text, built once.
pub fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document always serialises")
    })
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object)),
)]
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}
