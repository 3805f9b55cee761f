//! Bulk import (SPEC "Bulk import"): `POST /imports?dry_run=` with a CSV body.

use super::auth::{Auth, Need};
use super::doc;
use super::error::ApiError;
use super::extract::{AppPath, AppQuery, WriteMeta};
use super::{with_etag, written, App};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use events::{Command, CommandId, Context, ImportRow, Rejection, RowError, TenantId};
use serde::Deserialize;
use serde_json::{json, Value};

/// Largest import file, in bytes.
pub const IMPORT_BYTES_MAX: usize = 32 << 20;

/// Parse an import file: header `Ext Key, Number, User, Addon license 1 … N` matched case- and
/// space-insensitively, any number of add-on columns, empty cells allowed. Rows are numbered
/// from 1 for the first data row.
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<ImportRow>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| format!("cannot read the header row: {e}"))?
        .clone();
    let normal = |h: &str| -> String {
        h.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let position = |name: &str| headers.iter().position(|h| normal(h) == name);
    let (Some(ext), Some(number), Some(user)) =
        (position("extkey"), position("number"), position("user"))
    else {
        return Err(format!(
            "the header must name the columns Ext Key, Number and User (found: {})",
            headers.iter().collect::<Vec<_>>().join(", ")
        ));
    };
    let addon_columns: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| normal(h).starts_with("addonlicense"))
        .map(|(i, h)| (i, h.to_string()))
        .collect();
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("row {}: {e}", index + 1))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        if rows.len() == events::decide::IMPORT_ROWS_MAX {
            return Err(format!(
                "an import holds at most {} rows",
                events::decide::IMPORT_ROWS_MAX
            ));
        }
        let cell = |i: usize| record.get(i).unwrap_or("").to_string();
        rows.push(ImportRow {
            row: u32::try_from(index + 1).unwrap_or(u32::MAX),
            extension: cell(ext),
            number: cell(number),
            user: cell(user),
            addons: addon_columns
                .iter()
                .map(|(i, header)| (header.clone(), cell(*i)))
                .filter(|(_, code)| !code.is_empty())
                .collect(),
        });
    }
    if rows.is_empty() {
        return Err("the file has no data rows".into());
    }
    Ok(rows)
}

fn report(applied: bool, rows: usize, errors: &[RowError]) -> Value {
    let errors: Vec<Value> = errors
        .iter()
        .map(|e| json!({"row": e.row, "column": e.column, "code": e.code, "message": e.message}))
        .collect();
    json!({"applied": applied, "rows": rows, "errors": errors})
}

/// The 422 of a bad file: the error envelope with the whole report in `details`.
fn rejected(rows: usize, errors: &[RowError]) -> ApiError {
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "rule_violation",
        message: format!(
            "{} row(s) of the import are bad; nothing was applied",
            errors.len()
        ),
        details: Some(report(false, rows, errors)),
    }
}

/// The vendor's sample import file (seed 000, "Mass configuration"): the columns the importer
/// reads and four users with their extensions, DID numbers and add-on codes. Importable as is
/// into a tenant that has users named John, Alice, Lucie and Hallie in a group.
pub const SAMPLE_CSV: &str = "\
Ext Key,Number,User,Addon license 1,Addon license 2,Addon license 3,Addon license 4
101,6567891230,John,device_ip_phone,device_mobile_app,license_dnc_checking_enabled,call_recording
102,6567891231,Alice,device_ip_phone,device_mobile_app,license_dnc_checking_enabled,call_recording
104,6567891232,Lucie,device_ip_phone,device_desktop_app,call_recording
109,6567891233,Hallie,device_ip_phone,device_desktop_app,call_recording
";

/// `GET /v1/tenants/{t}/imports/sample.csv` (every role of the tenant): the sample file to fill
/// in, as `text/csv`, offered for download.
#[utoipa::path(
    get,
    path = "/v1/tenants/{t}/imports/sample.csv",
    operation_id = "import_sample",
    tag = "imports",
    params(doc::TenantPath),
    responses(
        (status = 200, description = "The sample import file.", body = String, content_type = "text/csv"),
        doc::ReadErrors,
    ),
)]
pub async fn sample(
    State(app): State<App>,
    auth: Auth,
    AppPath(tenant): AppPath<TenantId>,
) -> Result<Response, ApiError> {
    app.read_tenant(tenant, &auth, Need::Read, |_| Ok(()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"ledger-import-sample.csv\"",
            ),
        ],
        SAMPLE_CSV,
    )
        .into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Only check the file; nothing is applied.
    dry_run: Option<bool>,
}

/// `POST /v1/tenants/{t}/imports?dry_run=true|false` (operator), body `text/csv`: validates
/// the whole file against the current state; any bad row → 422 listing every bad row and
/// nothing applied; a good file is applied as one atomic batch (or only reported, dry run).
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/imports",
    operation_id = "import_csv",
    tag = "imports",
    params(doc::TenantPath, ImportQuery, doc::WriteHeaders),
    request_body(content = String, content_type = "text/csv", description = "Header `Ext Key, Number, User, Addon license 1 … N`; one row per user."),
    responses(
        (status = 200, description = "The file is good: applied, or only checked with `dry_run=true`.", body = doc::ImportReport),
        doc::WriteErrors,
    ),
)]
pub async fn import(
    State(app): State<App>,
    auth: Auth,
    meta: WriteMeta,
    AppPath(tenant): AppPath<TenantId>,
    AppQuery(query): AppQuery<ImportQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(IMPORT_BYTES_MAX)
        } else {
            ApiError::bad_request(format!("cannot read the request body: {rejection}"))
        }
    })?;
    let rows = parse_csv(&body).map_err(ApiError::bad_request)?;
    let count = rows.len();
    let command = Command::Import(rows);
    if query.dry_run.unwrap_or(false) {
        let (outcome, version) = app.read_tenant(tenant, &auth, Need::Operate, |t| {
            let ctx = Context {
                now: Utc::now(),
                command_id: CommandId::new_random(),
            };
            // Judged as the import itself would be: a dealer's key within its subtree.
            Ok((
                events::decide_as(t, &command, &ctx, auth.scope()),
                t.version,
            ))
        })?;
        return match outcome {
            Ok(_) => Ok(with_etag(
                Json(report(false, count, &[])).into_response(),
                version,
            )),
            Err(Rejection::ImportRejected(errors)) => Err(rejected(count, &errors)),
            Err(other) => Err(other.into()),
        };
    }
    match app.write(tenant, &auth, Need::Operate, meta, command).await {
        Ok(done) => {
            let mut body = report(true, count, &[]);
            body["events"] = json!(done.events.len());
            Ok(written(StatusCode::OK, &done, body))
        }
        Err(mut e) => {
            if let Some(details) = e.details.as_mut().filter(|d| d.get("errors").is_some()) {
                details["rows"] = json!(count);
            }
            Err(e)
        }
    }
}
