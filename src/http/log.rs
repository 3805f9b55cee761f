//! `GET /v1/log?after=&limit=` (root only): the log itself, a page of events as one record in
//! the stores' own format ([`crate::store::record`], blake3 checksum included), so a copy taken
//! over HTTP while the ledger serves is checked end to end. `ledger backup` is its client.

use super::auth::Auth;
use super::doc;
use super::error::ApiError;
use super::extract::AppQuery;
use super::App;
use crate::store::record::{encode_record, RECORD_EVENTS_MAX};
use crate::store::EncodedEvent;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Events in one page of the log at most: one record's worth.
pub const LOG_PAGE_EVENTS_MAX: usize = RECORD_EVENTS_MAX;
/// Bytes of events in one page at most (a page ends early rather than grow past it).
pub const LOG_PAGE_BYTES_MAX: usize = 32 << 20;
/// The header carrying the log's head when the page was read.
pub const HEAD_HEADER: &str = "x-ledger-head";

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Events after this global sequence (default 0: from the start).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    after: Option<u64>,
    /// Events in the page at most.
    #[param(minimum = 1, maximum = 4096)]
    limit: Option<usize>,
}

/// `GET /v1/log` (root only): the events after `after`, durable ones only, as one record whose
/// first event is `after + 1` (`count` 0 when the log ends at `after`); `X-Ledger-Head` is the
/// log's head as this node knows it.
#[utoipa::path(
    get,
    path = "/v1/log",
    operation_id = "read_log",
    tag = "operations",
    params(LogQuery),
    responses(
        (status = 200, description = "One record: `[format u8][count u32 LE][blake3 of body, 32][body]`, the body `count` times `[seq u64 LE][tenant 16][len u32 LE][envelope]`.", content_type = "application/octet-stream", body = Vec<u8>,
            headers(("X-Ledger-Head" = u64, description = "The log's head when the page was read."))),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 403, response = doc::Forbidden),
    ),
)]
pub async fn read(
    State(app): State<App>,
    auth: Auth,
    AppQuery(query): AppQuery<LogQuery>,
) -> Result<Response, ApiError> {
    auth.require_root()?;
    let after = query.after.unwrap_or(0);
    if after > i64::MAX as u64 {
        return Err(ApiError::bad_request(format!(
            "after must be at most {}",
            i64::MAX
        )));
    }
    let limit = query.limit.unwrap_or(LOG_PAGE_EVENTS_MAX);
    if !(1..=LOG_PAGE_EVENTS_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be from 1 to {LOG_PAGE_EVENTS_MAX}"
        )));
    }
    let head = app.ledger.read().head;
    let mut page: Vec<EncodedEvent> = Vec::new();
    let mut bytes = 0usize;
    app.ledger
        .store()
        .scan(after, &mut |event| {
            bytes += event.bytes.len();
            page.push(event);
            page.len() < limit && bytes < LOG_PAGE_BYTES_MAX
        })
        .map_err(ApiError::from)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::HeaderName::from_static(HEAD_HEADER),
                head.to_string(),
            ),
        ],
        encode_record(&page),
    )
        .into_response())
}
