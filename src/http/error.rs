//! `ApiError`: the one type that maps failures onto HTTP, in the envelope of API.md:
//! `{"error": {"code", "message", "details"}}`.

use crate::ledger::ExecError;
use crate::store::Error as StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use events::notification::{TemplateProblem, TEMPLATE_VARIABLES};
use events::{Rejection, RejectionClass, Violation};
use serde_json::{json, Value};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 400 `bad_request`: malformed whatever the state.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `unauthorized`: no or unknown credentials.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`: known credentials without the right.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not accept that method",
        )
    }

    /// 503 `unavailable`: this node cannot do it now; a retry may.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 `internal`: the detail is logged, never returned.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(%detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// Attach machine-readable details.
    /// The same error with `prefix` before its message (which item of a batch it is about).
    pub fn prefixed(mut self, prefix: &str) -> ApiError {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(details) = self.details {
            error["details"] = details;
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

/// A violation on the wire: `{rule, group_id?, user_id?, type?, limit?, used?, message}`.
pub fn violation_json(v: &Violation) -> Value {
    let mut out = json!({"rule": v.rule.as_str(), "message": v.message});
    if let Some(g) = v.group {
        out["group_id"] = json!(g);
    }
    if let Some(u) = v.user {
        out["user_id"] = json!(u);
    }
    if let Some(t) = &v.license_type {
        out["type"] = json!(t);
    }
    if let Some(limit) = v.limit {
        out["limit"] = json!(limit);
    }
    if let Some(used) = v.used {
        out["used"] = json!(used);
    }
    if v.above_scope {
        out["above_scope"] = json!(true);
    }
    out
}

fn rejection_details(rejection: &Rejection) -> Value {
    let mut details = json!({"reason": rejection.reason()});
    match rejection {
        Rejection::RuleViolations(list) => {
            details["violations"] = list.iter().map(violation_json).collect();
        }
        Rejection::LicenseInUse {
            license,
            user,
            base,
            addons,
        } => {
            details["license_id"] = json!(license);
            details["user_id"] = json!(user);
            details["base_id"] = json!(base);
            details["addons"] = json!(addons);
        }
        Rejection::RequiredByHeld {
            license,
            user,
            dependants,
        } => {
            details["license_id"] = json!(license);
            details["user_id"] = json!(user);
            details["dependants"] = dependants
                .iter()
                .map(|(id, t)| json!({"license_id": id, "type": t}))
                .collect();
        }
        Rejection::LicenseAlreadyAssigned {
            license,
            user,
            base,
        } => {
            details["license_id"] = json!(license);
            details["user_id"] = json!(user);
            details["base_id"] = json!(base);
        }
        Rejection::ExtensionTaken { extension, user } => {
            details["extension"] = json!(extension);
            if let Some(user) = user {
                details["user_id"] = json!(user);
            }
        }
        Rejection::InvalidTemplate(problem) => match problem {
            TemplateProblem::TooLong { field, max } => {
                details["field"] = json!(field);
                details["max_bytes"] = json!(max);
            }
            TemplateProblem::Syntax { field, .. } => details["field"] = json!(field),
            TemplateProblem::UnknownVariables { field, names } => {
                details["field"] = json!(field);
                details["unknown"] = json!(names);
                details["known"] = TEMPLATE_VARIABLES.iter().map(|(name, _)| *name).collect();
            }
        },
        Rejection::AlreadyInGroup { user, group }
        | Rejection::NotAMember { user, group }
        | Rejection::OwnGroup { user, group } => {
            details["user_id"] = json!(user);
            details["group_id"] = json!(group);
        }
        Rejection::CartStale {
            cart,
            previewed,
            current,
        } => {
            details["cart_id"] = json!(cart);
            details["previewed_version"] = json!(previewed);
            details["version"] = json!(current);
        }
        Rejection::UserHoldsLicenses { user, licenses } => {
            details["user_id"] = json!(user);
            details["licenses"] = json!(licenses);
        }
        Rejection::ImportRejected(errors) => {
            details["applied"] = json!(false);
            details["errors"] = errors
                .iter()
                .map(|e| json!({"row": e.row, "column": e.column, "code": e.code, "message": e.message}))
                .collect();
        }
        Rejection::BatchRejected(items) => {
            details["errors"] = items
                .iter()
                .map(|(index, e)| {
                    let mut item = json!({
                        "index": index,
                        "code": class_code(e.class()),
                        "reason": e.reason(),
                        "message": e.to_string(),
                    });
                    if !e.violations().is_empty() {
                        item["violations"] = e.violations().iter().map(violation_json).collect();
                    }
                    item
                })
                .collect();
        }
        _ => {}
    }
    details
}

fn class_code(class: RejectionClass) -> &'static str {
    match class {
        RejectionClass::BadInput => "bad_request",
        RejectionClass::NotFound => "not_found",
        RejectionClass::Conflict => "conflict",
        RejectionClass::RuleViolation => "rule_violation",
        RejectionClass::Forbidden => "forbidden",
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        let class = rejection.class();
        let status = match class {
            RejectionClass::BadInput => StatusCode::BAD_REQUEST,
            RejectionClass::NotFound => StatusCode::NOT_FOUND,
            RejectionClass::Conflict => StatusCode::CONFLICT,
            RejectionClass::RuleViolation => StatusCode::UNPROCESSABLE_ENTITY,
            RejectionClass::Forbidden => StatusCode::FORBIDDEN,
        };
        ApiError::new(status, class_code(class), rejection.to_string())
            .with_details(rejection_details(&rejection))
    }
}

impl From<StoreError> for ApiError {
    /// A store that cannot be reached or written (a database restarting, a failing disk) is 503
    /// `unavailable`, `details.reason` `storage`: nothing was changed by this request and a retry
    /// may succeed. A damaged log is 500 (logged, never shown).
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Io(reason) => ApiError::unavailable(format!(
                "the event store could not be reached; retry ({reason})"
            ))
            .with_details(json!({"reason": "storage"})),
            other => ApiError::internal(other),
        }
    }
}

impl From<ExecError> for ApiError {
    fn from(error: ExecError) -> ApiError {
        match error {
            ExecError::Rejected(rejection) => rejection.into(),
            ExecError::TenantNotFound => ApiError::not_found("tenant not found"),
            ExecError::VersionMismatch { expected, actual } => ApiError::conflict(format!(
                "tenant is at version {actual}, not {expected}"
            ))
            .with_details(
                json!({"reason": "version_mismatch", "expected": expected, "actual": actual}),
            ),
            ExecError::Storage(e) => e.into(),
            ExecError::Closed => ApiError::internal("the ledger writer stopped"),
            ExecError::NotWriter => ApiError::unavailable(
                "this node does not hold the write lease and could not reach the one that does; retry",
            ),
            ExecError::WritesStopped(reason) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "unavailable",
                message: format!(
                    "writes are stopped after a storage failure; a write in the failing batch \
                     has an unknown outcome and must be checked after a restart; reads still \
                     work ({reason})"
                ),
                details: Some(json!({"reason": "writes_stopped"})),
            },
            ExecError::IdempotencyKeyReused => {
                ApiError::conflict("this Idempotency-Key was already used with a different request")
                    .with_details(json!({"reason": "idempotency_key_reused"}))
            }
        }
    }
}
