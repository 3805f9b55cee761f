//! The app's own extractors: every malformed body, path or query answers in the app's error
//! envelope (never axum's plain-text defaults), and request metadata headers are parsed once.

use super::error::ApiError;
use super::REQUEST_BODY_BYTES_MAX;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

/// A JSON body, whatever the content type; bad JSON or wrong types are a 400, too large a 413.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(REQUEST_BODY_BYTES_MAX)
                } else {
                    ApiError::bad_request(format!("cannot read the request body: {rejection}"))
                }
            })?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(body)
            .map(AppJson)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// Path parameters; an invalid UUID is a 400.
pub struct AppPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| AppPath(value))
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
    }
}

/// Query parameters; malformed values are a 400.
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| AppQuery(value))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text())))
    }
}

/// Longest `X-Reason` accepted, in bytes.
pub const REASON_BYTES_MAX: usize = 500;

/// `If-Match`, `X-Reason` and `Idempotency-Key` of a write.
pub struct WriteMeta {
    pub expected_version: Option<u64>,
    pub reason: Option<String>,
    /// The key and the fingerprint of the request it came with.
    pub idempotency: Option<(String, [u8; 32])>,
    /// `?preview_cost=true`: answer with how the write moved this month's bill.
    pub preview_cost: bool,
}

/// blake3 of a keyed request's method, path and body, set by the `fingerprint` middleware.
#[derive(Clone, Copy, Debug)]
pub struct RequestFingerprint(pub [u8; 32]);

impl WriteMeta {
    /// The command id a keyed write runs under, or `None` without a key.
    pub fn command_id(&self, tenant: events::TenantId) -> Option<events::CommandId> {
        self.idempotency
            .as_ref()
            .map(|(key, fingerprint)| crate::idempotency::command_id(tenant, key, fingerprint))
    }

    /// An id the server chooses: the same on every retry of a keyed request.
    pub fn chosen_id(&self, tenant: events::TenantId, purpose: &str) -> uuid::Uuid {
        let key = self.idempotency.as_ref().map(|(key, _)| key.as_str());
        crate::idempotency::chosen_id(tenant, key, purpose)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WriteMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| -> Result<Option<String>, ApiError> {
            match parts.headers.get(name) {
                None => Ok(None),
                Some(value) => value
                    .to_str()
                    .map(|v| Some(v.trim().to_string()))
                    .map_err(|_| ApiError::bad_request(format!("{name} must be visible ASCII"))),
            }
        };
        let expected_version = match header("if-match")? {
            None => None,
            Some(text) => {
                let bare = text.trim_start_matches("W/").trim_matches('"');
                Some(bare.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        "If-Match must be a tenant version number or its quoted ETag",
                    )
                })?)
            }
        };
        let reason = header("x-reason")?.filter(|r| !r.is_empty());
        if reason.as_ref().is_some_and(|r| r.len() > REASON_BYTES_MAX) {
            return Err(ApiError::bad_request(format!(
                "X-Reason is longer than {REASON_BYTES_MAX} bytes"
            )));
        }
        let idempotency = match header("idempotency-key")? {
            None => None,
            Some(key) => {
                if key.is_empty() || key.len() > crate::idempotency::IDEMPOTENCY_KEY_BYTES_MAX {
                    return Err(ApiError::bad_request(format!(
                        "Idempotency-Key must be 1 to {} bytes",
                        crate::idempotency::IDEMPOTENCY_KEY_BYTES_MAX
                    )));
                }
                let fingerprint = parts
                    .extensions
                    .get::<RequestFingerprint>()
                    .map(|f| f.0)
                    .ok_or_else(|| ApiError::internal("keyed request without a fingerprint"))?;
                Some((key, fingerprint))
            }
        };
        let preview_cost = match parts
            .uri
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|pair| pair.strip_prefix("preview_cost="))
        {
            None => false,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "preview_cost must be true or false, not `{other}`"
                )))
            }
        };
        Ok(WriteMeta {
            expected_version,
            reason,
            idempotency,
            preview_cost,
        })
    }
}
