//! Expiry reminders: the due list and the tenant's webhook.

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
use chrono::Utc;
use events::notification::TEMPLATE_VARIABLES;
use events::{Command, NotificationTemplate, TenantId};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DueQuery {
    /// Reminders due by this instant (RFC 3339); default now.
    #[param(format = DateTime)]
    due_before: Option<String>,
}

/// `GET /v1/tenants/{t}/reminders?due_before=` (every role): each group's latest reminder
/// occurrence due by then (default now), and whether it was delivered.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/reminders",
    operation_id = "list_due_reminders",
    tag = "reminders",
    params(doc::TenantPath, DueQuery),
    responses(
        (status = 200, description = "The reminders due.", body = doc::DueReminders),
        doc::ReadErrors,
    ),
)]
pub async fn due(
    State(app): State<App>,
    auth: Auth,
    AppPath(tenant): AppPath<TenantId>,
    AppQuery(query): AppQuery<DueQuery>,
) -> Result<Response, ApiError> {
    let due_before = query
        .due_before
        .as_deref()
        .map(|t| parse_instant("due_before", t))
        .transpose()?
        .unwrap_or_else(Utc::now);
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        let scope = super::scope::Scope::of(&auth, t);
        let items: Vec<Value> = projections::due_reminders(t, due_before)
            .into_iter()
            .filter(|r| scope.sees_group(r.group))
            .map(|r| {
                json!({
                    "group_id": r.group,
                    "group_name": r.group_name,
                    "valid_until": instant(r.valid_until),
                    "days_before": r.reminder.days_before,
                    "frequency": r.reminder.frequency,
                    "due_at": instant(r.due_at),
                    "delivered": r.delivered,
                })
            })
            .collect();
        // The webhook is the tenant's: a scoped key is not shown where it points.
        let webhook = t.webhook.as_ref().filter(|_| scope.group_id().is_none());
        let body = json!({"due_before": instant(due_before), "items": items, "webhook": webhook});
        Ok(with_etag(Json(body).into_response(), t.version))
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct WebhookBody {
    /// An http or https URL with a host.
    #[schema(format = "uri", max_length = 2000)]
    url: String,
}

/// `PUT /v1/tenants/{t}/webhook` (admin) `{"url"}`: where due reminders and `unblocked`
/// notifications are POSTed, signed with the secret this answer shows (a new one each time).
#[utoipa::path(
    put,
    path = "/v1/tenants/{t}/webhook",
    operation_id = "set_webhook",
    tag = "reminders",
    params(doc::TenantPath, doc::WriteHeaders),
    request_body = WebhookBody,
    responses(
        (status = 200, description = "Set; the new signing secret is shown once.", body = doc::WebhookSet),
        doc::ReadErrors,
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
    ),
)]
pub async fn set_webhook(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(body): AppJson<WebhookBody>,
) -> Result<Response, ApiError> {
    let parsed = url::Url::parse(&body.url)
        .map_err(|e| ApiError::bad_request(format!("url is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ApiError::bad_request(
            "url must be an http or https URL with a host",
        ));
    }
    let mut bytes = [0u8; WEBHOOK_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("whsec_{}", hex::encode(bytes));
    let command = Command::SetWebhook {
        url: body.url,
        secret: secret.clone(),
    };
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    if !done.replayed {
        return Ok(written(StatusCode::OK, &done, json!({"secret": secret})));
    }
    // A replay answers with the secret the first attempt set, while it is still the one in
    // force; after a rotation it is gone for good.
    let stored = app.read_tenant(tenant, &auth, Need::Administer, |t| {
        Ok(t.webhook_secret
            .as_ref()
            .filter(|s| s.version == done.version)
            .map(|s| s.secret.clone()))
    })?;
    match stored {
        Some(secret) => Ok(written(StatusCode::OK, &done, json!({"secret": secret}))),
        None => Err(ApiError::conflict(
            "the webhook set under this Idempotency-Key was set again since; its secret is no longer in force",
        )
        .with_details(json!({"reason": "secret_rotated"}))),
    }
}

/// Random bytes of a webhook signing secret.
const WEBHOOK_SECRET_BYTES: usize = 32;

/// `GET /v1/tenants/{t}/notification-template` (every role): the reminder template in force
/// (the default while none is set) and the variables it may name.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/notification-template",
    operation_id = "get_notification_template",
    tag = "reminders",
    params(doc::TenantPath),
    responses(
        (status = 200, description = "The template in force.", body = doc::NotificationTemplateView),
        doc::ReadErrors,
    ),
)]
pub async fn notification_template(
    State(app): State<App>,
    auth: Auth,
    AppPath(tenant): AppPath<TenantId>,
) -> Result<Response, ApiError> {
    app.read_tenant(tenant, &auth, Need::Read, |t| {
        let default = NotificationTemplate::default();
        let template = t.notification_template.as_ref().unwrap_or(&default);
        let variables: Vec<Value> = TEMPLATE_VARIABLES
            .iter()
            .map(|(name, description)| json!({"name": name, "description": description}))
            .collect();
        let body = json!({
            "subject": template.subject,
            "body": template.body,
            "default": t.notification_template.is_none(),
            "variables": variables,
        });
        Ok(with_etag(Json(body).into_response(), t.version))
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TemplateBody {
    /// The subject, in minijinja syntax, naming only the template variables.
    #[schema(max_length = 1000)]
    subject: String,
    /// The body, in the same syntax.
    #[schema(max_length = 16384)]
    body: String,
}

/// `PUT /v1/tenants/{t}/notification-template` (admin) `{"subject", "body"}`: what reminders
/// say. A template that does not parse or names an unknown variable is a 400, nothing stored.
#[utoipa::path(
    put,
    path = "/v1/tenants/{t}/notification-template",
    operation_id = "set_notification_template",
    tag = "reminders",
    params(doc::TenantPath, doc::WriteHeaders),
    request_body = TemplateBody,
    responses(
        (status = 200, description = "Set.", body = doc::Written),
        doc::ReadErrors,
        (status = 409, response = doc::Conflict),
        (status = 413, response = doc::PayloadTooLarge),
    ),
)]
pub async fn set_notification_template(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(body): AppJson<TemplateBody>,
) -> Result<Response, ApiError> {
    let command = Command::SetNotificationTemplate(NotificationTemplate {
        subject: body.subject,
        body: body.body,
    });
    let done = app
        .write(tenant, &auth, Need::Administer, meta, command)
        .await?;
    Ok(written(StatusCode::OK, &done, json!({})))
}
