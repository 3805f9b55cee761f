//! Several nodes on one log (PostgreSQL). A node that does not hold the write lease forwards
//! every write to the node that does, and answers once its own state has folded the write, so
//! a read after a write on the same node sees it. Any request may carry `?min_seq=N` (the `seq`
//! of an earlier answer, from any node) to wait, at most [`MIN_SEQ_WAIT`], until this node has
//! folded sequence N.

use super::error::ApiError;
use super::{App, REQUEST_BODY_BYTES_MAX};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::io::Read;
use std::sync::OnceLock;
use std::time::Duration;

/// Longest wait for `min_seq`, and for a forwarded write to be folded here.
pub const MIN_SEQ_WAIT: Duration = Duration::from_secs(5);
/// Longest a forwarded write may take at the writer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer taken back from the writer.
const FORWARDED_ANSWER_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Marks a forwarded request, so a node that lost the lease meanwhile never forwards it on.
const FORWARDED: &str = "x-ledger-forwarded";
/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// The middleware: `min_seq` first, then writes on a follower go to the writer.
pub async fn route(State(app): State<App>, request: Request, next: Next) -> Response {
    if let Some(min_seq) = min_seq(request.uri().query()) {
        let seq = match min_seq {
            Ok(seq) => seq,
            Err(error) => return error.into_response(),
        };
        if !app.ledger.wait_for_seq(seq, MIN_SEQ_WAIT).await {
            let head = app.ledger.read().head;
            return ApiError::unavailable(format!(
                "this node has folded the log up to sequence {head}, not yet {seq}; retry"
            ))
            .with_details(json!({"reason": "behind", "seq": head, "min_seq": seq}))
            .into_response();
        }
    }
    let reads = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if reads || app.ledger.is_writer() {
        return next.run(request).await;
    }
    if request.headers().contains_key(FORWARDED) {
        return ApiError::unavailable(
            "this node no longer holds the write lease; retry, the next writer takes over \
             within seconds",
        )
        .into_response();
    }
    forward(&app, request).await
}

/// The `min_seq` query parameter, if present.
fn min_seq(query: Option<&str>) -> Option<Result<u64, ApiError>> {
    let value = url::form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "min_seq")
        .map(|(_, value)| value.into_owned())?;
    Some(value.parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!(
            "min_seq must be a sequence number (an unsigned integer), not {value:?}"
        ))
    }))
}

/// Send `request` to the writer, answer with its answer once this node has folded it.
async fn forward(app: &App, request: Request) -> Response {
    let writer = match app.ledger.writer_url() {
        Ok(Some(url)) => url,
        Ok(None) => {
            return ApiError::unavailable("no node holds the write lease yet; retry")
                .into_response()
        }
        Err(error) => return ApiError::from(error).into_response(),
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, REQUEST_BODY_BYTES_MAX).await else {
        return ApiError::payload_too_large(REQUEST_BODY_BYTES_MAX).into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let target = format!("{}{path}", writer.trim_end_matches('/'));
    let method = parts.method.as_str().to_string();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .collect();
    let sent = tokio::task::spawn_blocking(move || send(&method, &target, &headers, &body)).await;
    let answer = match sent {
        Ok(Ok(answer)) => answer,
        Ok(Err(reason)) => {
            return ApiError::unavailable(format!(
                "the writer at {writer} did not answer ({reason}); retry"
            ))
            .into_response()
        }
        Err(error) => return ApiError::internal(error).into_response(),
    };
    // Read your writes: what the writer committed is folded here before the answer.
    if let Ok(head) = app.ledger.log_head() {
        app.ledger.wait_for_seq(head, MIN_SEQ_WAIT).await;
    }
    answer.into_response()
}

/// The writer's answer, as received.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(Bytes::from(self.body)));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_GATEWAY);
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| ureq::AgentBuilder::new().timeout(FORWARD_TIMEOUT).build())
}

fn send(
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Answer, String> {
    let mut request = agent().request(method, target).set(FORWARDED, "1");
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = match request.send_bytes(body) {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => return Err(error.to_string()),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .filter(|name| !HOP_BY_HOP.contains(&name.as_str()))
        .filter_map(|name| {
            let value = response.header(&name)?.to_string();
            Some((name, value))
        })
        .collect();
    let mut body = Vec::new();
    response
        .into_reader()
        .take(FORWARDED_ANSWER_BYTES_MAX)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}
