//! Limits (issue 6, item 6): every input has a named bound. For each bound, the value at the
//! bound is accepted and one past it gets the documented 4xx in the error envelope, with a
//! message naming the bound, and changes nothing.
//!
//! The bounds and where they live:
//! - wire inputs (`src/http`, `src/idempotency.rs`): [`REQUEST_BODY_BYTES_MAX`],
//!   [`IMPORT_BYTES_MAX`], [`PAGE_LIMIT_MAX`], [`FILTER_TEXT_BYTES_MAX`], [`REASON_BYTES_MAX`],
//!   [`IDEMPOTENCY_KEY_BYTES_MAX`], [`COMMANDS_PER_WHAT_IF_MAX`], [`LICENSES_PER_WHAT_IF_MAX`];
//! - domain inputs (`events`): [`NAME_BYTES_MAX`], [`EXTENSION_BYTES_MAX`],
//!   [`TYPE_CODE_BYTES_MAX`], [`WEBHOOK_URL_BYTES_MAX`], [`PROVISION_QUANTITY_MAX`],
//!   [`USERS_PER_BATCH_MAX`], [`GROUP_DEPTH_MAX`], [`ADDONS_PER_ASSIGNMENT_MAX`],
//!   [`LIMITS_PER_RESTRICTION_MAX`], [`CATALOGUE_REFERENCES_MAX`], [`IMPORT_ROWS_MAX`],
//!   [`REMINDER_DAYS_MAX`], [`RETENTION_DAYS_FREE_MAX`], [`RETENTION_MONTHS_MAX`],
//!   [`UNIT_PRICE_MINOR_MAX`];
//! - command-line files (`src/cli`): the import file ([`IMPORT_BYTES_MAX`]), the what-if file
//!   ([`REQUEST_BODY_BYTES_MAX`]) and the lines of an export replayed with `--from`
//!   ([`EXPORT_LINE_BYTES_MAX`]).

use crate::support::{assert_error, id_of, send, Server, Tenant, ROOT_TOKEN};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use events::decide::{
    ADDONS_PER_ASSIGNMENT_MAX, CATALOGUE_REFERENCES_MAX, EXTENSION_BYTES_MAX, GROUP_DEPTH_MAX,
    IMPORT_ROWS_MAX, LIMITS_PER_RESTRICTION_MAX, NAME_BYTES_MAX, PROVISION_QUANTITY_MAX,
    REMINDER_DAYS_MAX, RETENTION_DAYS_FREE_MAX, RETENTION_MONTHS_MAX, UNIT_PRICE_MINOR_MAX,
    USERS_PER_BATCH_MAX, WEBHOOK_URL_BYTES_MAX,
};
use events::ids::TYPE_CODE_BYTES_MAX;
use ledger::cli::offline::EXPORT_LINE_BYTES_MAX;
use ledger::http::extract::REASON_BYTES_MAX;
use ledger::http::imports::IMPORT_BYTES_MAX;
use ledger::http::whatif::LICENSES_PER_WHAT_IF_MAX;
use ledger::http::{FILTER_TEXT_BYTES_MAX, PAGE_LIMIT_MAX, REQUEST_BODY_BYTES_MAX};
use ledger::idempotency::IDEMPOTENCY_KEY_BYTES_MAX;
use projections::whatif::COMMANDS_PER_WHAT_IF_MAX;
use serde_json::{json, Value};
use std::fmt::Display;

/// The refusal of a bound: the error envelope with `expected` and `code`, and a message that
/// names the bound (for a batch, the message of the refused item).
#[track_caller]
fn assert_refused(
    (status, body): (StatusCode, Value),
    expected: StatusCode,
    code: &str,
    bound: impl Display,
) {
    assert_error(status, &body, expected, code);
    let error = &body["error"];
    let items = error["details"]["errors"].as_array().into_iter().flatten();
    let mut messages = std::iter::once(&error["message"]).chain(items.map(|item| &item["message"]));
    assert!(
        messages.any(|m| m.as_str().is_some_and(|m| m.contains(&bound.to_string()))),
        "the message should name the bound {bound}: {body}"
    );
}

/// `json` followed by spaces up to exactly `size` bytes.
fn padded(json: &Value, size: usize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(json).expect("serialise");
    assert!(bytes.len() <= size);
    bytes.resize(size, b' ');
    bytes
}

/// A text of `bytes` bytes made of two-byte characters (and one `a` for an odd length), so a
/// bound counted in characters instead of bytes would let it through.
fn text_of(bytes: usize) -> String {
    let mut text = "é".repeat(bytes / 2);
    if bytes % 2 == 1 {
        text.push('a');
    }
    assert_eq!(text.len(), bytes);
    text
}

/// Send `bytes` as a body with `content_type` and extra headers.
async fn send_bytes(
    server: &Server,
    method: Method,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::AUTHORIZATION, format!("Bearer {ROOT_TOKEN}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let reply = send(
        server.router(),
        builder.body(Body::from(bytes)).expect("request"),
    )
    .await;
    (reply.status, reply.body)
}

/// Define `count` new types `{prefix}_{i}`: bases, or add-ons that attach to `phone_system`.
async fn define_types(
    server: &Server,
    tenant: &Tenant,
    prefix: &str,
    addon: bool,
    count: usize,
) -> Vec<String> {
    let mut codes = Vec::with_capacity(count);
    for i in 0..count {
        let code = format!("{prefix}_{i:03}");
        let body = if addon {
            json!({"kind": "addon", "attaches_to": ["phone_system"]})
        } else {
            json!({"kind": "base"})
        };
        let (status, answer) = server
            .put(&tenant.path(&format!("/catalog/{code}")), ROOT_TOKEN, body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        codes.push(code);
    }
    codes
}

/// Every code of the tenant's catalogue of `kind` (`None`: every kind).
async fn catalogue_codes(server: &Server, tenant: &Tenant, kind: Option<&str>) -> Vec<String> {
    let (status, body) = server.get(&tenant.path("/catalog"), ROOT_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|item| kind.is_none_or(|k| item["kind"] == k))
        .map(|item| item["code"].as_str().expect("code").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Bodies

#[tokio::test]
async fn a_body_of_request_body_bytes_max_is_read_and_one_byte_more_is_413() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let path = tenant.path("/groups");
    let body = json!({"name": "Padded"});
    let before = server.event_count().await;
    for headers in [&[][..], &[("idempotency-key", "over")][..]] {
        let answer = send_bytes(
            &server,
            Method::POST,
            &path,
            "application/json",
            headers,
            padded(&body, REQUEST_BODY_BYTES_MAX + 1),
        )
        .await;
        assert_refused(
            answer,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            REQUEST_BODY_BYTES_MAX,
        );
    }
    assert_eq!(server.event_count().await, before);
    for headers in [&[][..], &[("idempotency-key", "at")][..]] {
        let (status, answer) = send_bytes(
            &server,
            Method::POST,
            &path,
            "application/json",
            headers,
            padded(&body, REQUEST_BODY_BYTES_MAX),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
}

#[tokio::test]
async fn deeply_nested_json_is_a_400_and_never_overflows_the_stack() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let before = server.event_count().await;
    let depth = 100_000;
    let nested = format!("{{\"name\": {}1{}}}", "[".repeat(depth), "]".repeat(depth));
    let answer = server
        .raw(
            Method::POST,
            &tenant.path("/groups"),
            Some(ROOT_TOKEN),
            nested.into_bytes(),
        )
        .await;
    assert_error(answer.0, &answer.1, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(server.event_count().await, before);
}

// ---------------------------------------------------------------------------------------------
// Imports

/// A tenant with a user named Ada and one free phone_system licence.
async fn import_tenant(server: &Server) -> Tenant {
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Imported", None).await;
    server.user(&tenant, &group, "Ada").await;
    server.provision(&tenant, "phone_system", 1).await;
    tenant
}

/// One good row for Ada, its user cell padded with spaces (trimmed away) to `size` bytes.
fn import_file_of(size: usize) -> Vec<u8> {
    let head = "Ext Key,Number,User\n100,+420100,";
    let tail = "Ada\n";
    let mut bytes = head.as_bytes().to_vec();
    bytes.resize(size - tail.len(), b' ');
    bytes.extend_from_slice(tail.as_bytes());
    assert_eq!(bytes.len(), size);
    bytes
}

#[tokio::test]
async fn an_import_of_import_bytes_max_is_applied_and_one_byte_more_is_413() {
    let server = Server::start();
    let tenant = import_tenant(&server).await;
    let path = tenant.path("/imports");
    let before = server.event_count().await;
    let answer = send_bytes(
        &server,
        Method::POST,
        &path,
        "text/csv",
        &[],
        import_file_of(IMPORT_BYTES_MAX + 1),
    )
    .await;
    assert_refused(
        answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        IMPORT_BYTES_MAX,
    );
    assert_eq!(server.event_count().await, before);

    let (status, body) = send_bytes(
        &server,
        Method::POST,
        &path,
        "text/csv",
        &[],
        import_file_of(IMPORT_BYTES_MAX),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], true, "{body}");
    assert_eq!(body["rows"], 1, "{body}");
}

/// A file of `rows` rows for users that do not exist.
fn import_rows(rows: usize) -> Vec<u8> {
    let mut text = String::with_capacity(rows * 16 + 32);
    text.push_str("Ext Key,Number,User\n");
    for row in 0..rows {
        text.push_str(&format!("{row},,nobody\n"));
    }
    text.into_bytes()
}

#[tokio::test]
async fn an_import_of_import_rows_max_rows_is_judged_row_by_row_and_one_row_more_is_400() {
    // At the bound the parser hands every row on; past it the file is refused whole.
    let parsed = ledger::http::imports::parse_csv(&import_rows(IMPORT_ROWS_MAX)).expect("parsed");
    assert_eq!(parsed.len(), IMPORT_ROWS_MAX);

    let server = Server::start();
    let tenant = import_tenant(&server).await;
    let before = server.event_count().await;
    let answer = send_bytes(
        &server,
        Method::POST,
        &tenant.path("/imports"),
        "text/csv",
        &[],
        import_rows(IMPORT_ROWS_MAX + 1),
    )
    .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        IMPORT_ROWS_MAX,
    );
    assert_eq!(server.event_count().await, before);

    // At the bound the file is read and judged: every row names a user that does not exist.
    let (status, body) = send_bytes(
        &server,
        Method::POST,
        &tenant.path("/imports?dry_run=true"),
        "text/csv",
        &[],
        import_rows(IMPORT_ROWS_MAX),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(body["error"]["details"]["rows"], IMPORT_ROWS_MAX, "rows");
    let errors = body["error"]["details"]["errors"]
        .as_array()
        .expect("errors");
    assert_eq!(errors.len(), IMPORT_ROWS_MAX);
    assert_eq!(errors[IMPORT_ROWS_MAX - 1]["code"], "user_not_found");
    assert_eq!(server.event_count().await, before);
}

// ---------------------------------------------------------------------------------------------
// Lists

#[tokio::test]
async fn pages_hold_page_limit_max_items_and_a_larger_limit_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Everyone", None).await;
    server
        .provision(&tenant, "phone_system", PAGE_LIMIT_MAX as u32 + 1)
        .await;
    let users: Vec<Value> = (0..=PAGE_LIMIT_MAX)
        .map(|i| json!({"name": format!("user {i}"), "group_id": group}))
        .collect();
    let (status, body) = server
        .post(
            &tenant.path("/users/batch"),
            ROOT_TOKEN,
            json!({ "users": users }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = server.event_count().await;
    for list in ["/licenses", "/users", "/groups", "/events"] {
        let answer = server
            .get(
                &tenant.path(&format!("{list}?limit={}", PAGE_LIMIT_MAX + 1)),
                ROOT_TOKEN,
            )
            .await;
        assert_refused(
            answer,
            StatusCode::BAD_REQUEST,
            "bad_request",
            PAGE_LIMIT_MAX,
        );
        let (status, body) = server
            .get(
                &tenant.path(&format!("{list}?limit={PAGE_LIMIT_MAX}")),
                ROOT_TOKEN,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}: {body}");
        let items = body["items"].as_array().expect("items").len();
        if list != "/groups" {
            assert_eq!(items, PAGE_LIMIT_MAX, "{list}");
            assert!(!body["next"].is_null(), "{list}: more items follow");
        }
    }
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn free_text_filters_take_filter_text_bytes_max_bytes_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Everyone", None).await;
    // The longest name there is can be searched for.
    let longest = text_of(NAME_BYTES_MAX);
    server.user(&tenant, &group, &longest).await;
    let before = server.event_count().await;
    let filters = [
        ("/users", "q"),
        ("/licenses", "extension"),
        ("/events", "kind"),
        ("/events", "actor"),
    ];
    for (list, field) in filters {
        let over = "x".repeat(FILTER_TEXT_BYTES_MAX + 1);
        let answer = server
            .get(&tenant.path(&format!("{list}?{field}={over}")), ROOT_TOKEN)
            .await;
        assert_refused(
            answer,
            StatusCode::BAD_REQUEST,
            "bad_request",
            FILTER_TEXT_BYTES_MAX,
        );
        let at = "x".repeat(FILTER_TEXT_BYTES_MAX);
        let (status, body) = server
            .get(&tenant.path(&format!("{list}?{field}={at}")), ROOT_TOKEN)
            .await;
        assert_eq!(status, StatusCode::OK, "{list}?{field}: {body}");
    }
    let query = longest
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect::<String>();
    let (status, body) = server
        .get(&tenant.path(&format!("/users?q={query}")), ROOT_TOKEN)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().expect("items").len(), 1, "{body}");
    assert_eq!(server.event_count().await, before);
}

// ---------------------------------------------------------------------------------------------
// Write headers

#[tokio::test]
async fn a_reason_takes_reason_bytes_max_bytes_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let path = tenant.path("/groups");
    let before = server.event_count().await;
    let over = "r".repeat(REASON_BYTES_MAX + 1);
    let reply = server
        .request(
            Method::POST,
            &path,
            Some(ROOT_TOKEN),
            Some(json!({"name": "Reasoned"})),
            &[("x-reason", &over)],
        )
        .await;
    assert_refused(
        (reply.status, reply.body),
        StatusCode::BAD_REQUEST,
        "bad_request",
        REASON_BYTES_MAX,
    );
    assert_eq!(server.event_count().await, before);

    let at = "r".repeat(REASON_BYTES_MAX);
    let reply = server
        .request(
            Method::POST,
            &path,
            Some(ROOT_TOKEN),
            Some(json!({"name": "Reasoned"})),
            &[("x-reason", &at)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let (_, events) = server
        .get(&tenant.path("/events?kind=group_created"), ROOT_TOKEN)
        .await;
    assert_eq!(events["items"][0]["reason"], at.as_str());
}

#[tokio::test]
async fn an_idempotency_key_takes_idempotency_key_bytes_max_bytes_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let path = tenant.path("/groups");
    let before = server.event_count().await;
    let over = "k".repeat(IDEMPOTENCY_KEY_BYTES_MAX + 1);
    let reply = server
        .request(
            Method::POST,
            &path,
            Some(ROOT_TOKEN),
            Some(json!({"name": "Keyed"})),
            &[("idempotency-key", &over)],
        )
        .await;
    assert_refused(
        (reply.status, reply.body),
        StatusCode::BAD_REQUEST,
        "bad_request",
        IDEMPOTENCY_KEY_BYTES_MAX,
    );
    assert_eq!(server.event_count().await, before);

    let at = "k".repeat(IDEMPOTENCY_KEY_BYTES_MAX);
    for _ in 0..2 {
        let reply = server
            .request(
                Method::POST,
                &path,
                Some(ROOT_TOKEN),
                Some(json!({"name": "Keyed"})),
                &[("idempotency-key", &at)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    assert_eq!(server.event_count().await, before + 1, "the retry appended");
}

// ---------------------------------------------------------------------------------------------
// Strings of the domain

/// The body of a write, given the name it carries.
type BodyOf<'a> = Box<dyn Fn(&str) -> Value + 'a>;

#[tokio::test]
async fn names_take_name_bytes_max_bytes_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Named", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let at = text_of(NAME_BYTES_MAX);
    let over = text_of(NAME_BYTES_MAX + 1);
    let writes: Vec<(Method, String, BodyOf)> = vec![
        (
            Method::POST,
            "/v1/tenants".to_string(),
            Box::new(|name| json!({"name": name})),
        ),
        (
            Method::POST,
            tenant.path("/groups"),
            Box::new(|name| json!({"name": name})),
        ),
        (
            Method::PATCH,
            tenant.path(&format!("/groups/{group}")),
            Box::new(|name| json!({"name": name})),
        ),
        (
            Method::POST,
            tenant.path("/users"),
            Box::new(|name| json!({"name": name, "group_id": group})),
        ),
        (
            Method::POST,
            tenant.path("/users/batch"),
            Box::new(|name| json!({"users": [{"name": name, "group_id": group}]})),
        ),
        (
            Method::PATCH,
            tenant.path(&format!("/users/{user}")),
            Box::new(|name| json!({"name": name})),
        ),
        (
            Method::POST,
            tenant.path("/keys"),
            Box::new(|name| json!({"role": "viewer", "name": name})),
        ),
    ];
    for (method, path, body) in &writes {
        let before = server.event_count().await;
        let answer = server
            .call(method.clone(), path, Some(ROOT_TOKEN), Some(body(&over)))
            .await;
        assert_refused(
            answer,
            StatusCode::BAD_REQUEST,
            "bad_request",
            NAME_BYTES_MAX,
        );
        assert_eq!(server.event_count().await, before, "{method} {path}");
        let (status, answer) = server
            .call(method.clone(), path, Some(ROOT_TOKEN), Some(body(&at)))
            .await;
        assert!(status.is_success(), "{method} {path}: {answer}");
    }
    let (_, shown) = server
        .get(&tenant.path(&format!("/users/{user}")), ROOT_TOKEN)
        .await;
    assert_eq!(shown["name"], at.as_str());
}

#[tokio::test]
async fn extensions_and_numbers_take_extension_bytes_max_and_one_more_is_refused() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Numbered", None).await;
    let at = "1".repeat(EXTENSION_BYTES_MAX);
    let over = "1".repeat(EXTENSION_BYTES_MAX + 1);
    let before = server.event_count().await;
    for field in ["extension", "number"] {
        let answer = server
            .post(
                &tenant.path("/users"),
                ROOT_TOKEN,
                json!({"name": "Over", "group_id": group, field: over}),
            )
            .await;
        assert_refused(
            answer,
            StatusCode::BAD_REQUEST,
            "bad_request",
            EXTENSION_BYTES_MAX,
        );
    }
    assert_eq!(server.event_count().await, before);
    // An import row is judged with the same bound: a 422 naming the row and the column.
    server.user(&tenant, &group, "Ada").await;
    server.provision(&tenant, "phone_system", 1).await;
    let before_import = server.event_count().await;
    let csv = format!("Ext Key,Number,User\n{over},+420100,Ada\n");
    let (status, body) = send_bytes(
        &server,
        Method::POST,
        &tenant.path("/imports"),
        "text/csv",
        &[],
        csv.into_bytes(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    let error = &body["error"]["details"]["errors"][0];
    assert_eq!(error["code"], "invalid_extension", "{body}");
    assert_eq!(error["column"], "Ext Key", "{body}");
    assert_eq!(server.event_count().await, before_import);

    let (status, body) = server
        .post(
            &tenant.path("/users"),
            ROOT_TOKEN,
            json!({"name": "At", "group_id": group, "extension": at, "number": at}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let csv = format!(
        "Ext Key,Number,User\n{},{at},Ada\n",
        "2".repeat(EXTENSION_BYTES_MAX)
    );
    let (status, body) = send_bytes(
        &server,
        Method::POST,
        &tenant.path("/imports"),
        "text/csv",
        &[],
        csv.into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn type_codes_take_type_code_bytes_max_bytes_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let before = server.event_count().await;
    let over = "t".repeat(TYPE_CODE_BYTES_MAX + 1);
    let answer = server
        .put(
            &tenant.path(&format!("/catalog/{over}")),
            ROOT_TOKEN,
            json!({"kind": "base"}),
        )
        .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        TYPE_CODE_BYTES_MAX,
    );
    assert_eq!(server.event_count().await, before);
    let at = "t".repeat(TYPE_CODE_BYTES_MAX);
    let (status, body) = server
        .put(
            &tenant.path(&format!("/catalog/{at}")),
            ROOT_TOKEN,
            json!({"kind": "base"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ids = server.provision(&tenant, &at, 1).await;
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn a_webhook_url_takes_webhook_url_bytes_max_bytes_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let url_of = |size: usize| {
        let mut url = "https://example.com/".to_string();
        url.push_str(&"a".repeat(size - url.len()));
        url
    };
    let before = server.event_count().await;
    let answer = server
        .put(
            &tenant.path("/webhook"),
            ROOT_TOKEN,
            json!({"url": url_of(WEBHOOK_URL_BYTES_MAX + 1)}),
        )
        .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        WEBHOOK_URL_BYTES_MAX,
    );
    assert_eq!(server.event_count().await, before);
    let at = url_of(WEBHOOK_URL_BYTES_MAX);
    let (status, body) = server
        .put(&tenant.path("/webhook"), ROOT_TOKEN, json!({"url": at}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, due) = server.get(&tenant.path("/reminders"), ROOT_TOKEN).await;
    assert_eq!(due["webhook"], at.as_str());
}

// ---------------------------------------------------------------------------------------------
// Counts and numbers of the domain

#[tokio::test]
async fn provisioning_takes_provision_quantity_max_and_one_more_is_refused() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let before = server.event_count().await;
    for quantity in [0, PROVISION_QUANTITY_MAX + 1] {
        let answer = server
            .post(
                &tenant.path("/licenses"),
                ROOT_TOKEN,
                json!({"type": "phone_system", "quantity": quantity}),
            )
            .await;
        assert_refused(
            answer,
            StatusCode::BAD_REQUEST,
            "bad_request",
            PROVISION_QUANTITY_MAX,
        );
    }
    // Raising a subscription is provisioning too: one step adds at most as many.
    let (status, body) = server
        .put(
            &tenant.path("/subscription/developer"),
            ROOT_TOKEN,
            json!({"quantity": PROVISION_QUANTITY_MAX + 1}),
        )
        .await;
    assert_refused(
        (status, body.clone()),
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
        PROVISION_QUANTITY_MAX,
    );
    assert_eq!(
        crate::support::violation_rules(&body),
        ["quantity_step_too_large"]
    );
    assert_eq!(server.event_count().await, before);

    let ids = server
        .provision(&tenant, "phone_system", PROVISION_QUANTITY_MAX)
        .await;
    assert_eq!(ids.len(), PROVISION_QUANTITY_MAX as usize);
    let (status, body) = server
        .put(
            &tenant.path("/subscription/developer"),
            ROOT_TOKEN,
            json!({"quantity": PROVISION_QUANTITY_MAX}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let usage = server.usage(&tenant).await;
    assert_eq!(usage["developer"]["owned"], PROVISION_QUANTITY_MAX);
}

#[tokio::test]
async fn a_batch_takes_users_per_batch_max_users_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Everyone", None).await;
    let batch = |count: usize| {
        let users: Vec<Value> = (0..count)
            .map(|i| json!({"name": format!("user {i}"), "group_id": group}))
            .collect();
        json!({ "users": users })
    };
    let before = server.event_count().await;
    let answer = server
        .post(
            &tenant.path("/users/batch"),
            ROOT_TOKEN,
            batch(USERS_PER_BATCH_MAX + 1),
        )
        .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        USERS_PER_BATCH_MAX,
    );
    assert_eq!(server.event_count().await, before);
    let (status, body) = server
        .post(
            &tenant.path("/users/batch"),
            ROOT_TOKEN,
            batch(USERS_PER_BATCH_MAX),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["ids"].as_array().expect("ids").len(),
        USERS_PER_BATCH_MAX
    );
}

#[tokio::test]
async fn groups_nest_group_depth_max_deep_and_one_level_more_is_422() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let mut chain = vec![server.group(&tenant, "Level 1", None).await];
    for level in 2..=GROUP_DEPTH_MAX {
        let parent = chain.last().cloned();
        let group = server
            .group(&tenant, &format!("Level {level}"), parent.as_deref())
            .await;
        chain.push(group);
    }
    // A root group with one child: a subtree two levels high.
    let subtree = server.group(&tenant, "Subtree", None).await;
    server.group(&tenant, "Leaf", Some(&subtree)).await;
    let before = server.event_count().await;

    let deepest = chain.last().expect("the deepest group");
    let answer = server
        .post(
            &tenant.path("/groups"),
            ROOT_TOKEN,
            json!({"name": "Too deep", "parent_id": deepest}),
        )
        .await;
    assert_refused(
        answer.clone(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
        GROUP_DEPTH_MAX,
    );
    assert_eq!(
        crate::support::violation_rules(&answer.1),
        ["group_depth_exceeded"]
    );
    // Moving the subtree under level 31 would put its leaf at level 33.
    let answer = server
        .patch(
            &tenant.path(&format!("/groups/{subtree}")),
            ROOT_TOKEN,
            json!({"parent_id": chain[GROUP_DEPTH_MAX - 2]}),
        )
        .await;
    assert_refused(
        answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
        GROUP_DEPTH_MAX,
    );
    assert_eq!(server.event_count().await, before);

    // Under level 30 its leaf is at level 32: accepted.
    let (status, body) = server
        .patch(
            &tenant.path(&format!("/groups/{subtree}")),
            ROOT_TOKEN,
            json!({"parent_id": chain[GROUP_DEPTH_MAX - 3]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_assignment_takes_addons_per_assignment_max_addons_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Loaded", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let addons = define_types(
        &server,
        &tenant,
        "addon",
        true,
        ADDONS_PER_ASSIGNMENT_MAX + 1,
    )
    .await;
    for code in &addons {
        server.provision(&tenant, code, 1).await;
    }
    server.provision(&tenant, "phone_system", 1).await;
    let before = server.event_count().await;
    let answer = server
        .post(
            &tenant.path("/assignments"),
            ROOT_TOKEN,
            json!({"user_id": user, "type": "phone_system", "addons": addons}),
        )
        .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        ADDONS_PER_ASSIGNMENT_MAX,
    );
    assert_eq!(server.event_count().await, before);
    let (status, body) = server
        .post(
            &tenant.path("/assignments"),
            ROOT_TOKEN,
            json!({
                "user_id": user,
                "type": "phone_system",
                "addons": addons[..ADDONS_PER_ASSIGNMENT_MAX],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["addons"].as_array().expect("addons").len(),
        ADDONS_PER_ASSIGNMENT_MAX
    );
}

#[tokio::test]
async fn a_restriction_takes_limits_per_restriction_max_limits_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Limited", None).await;
    let present = catalogue_codes(&server, &tenant, None).await.len();
    define_types(
        &server,
        &tenant,
        "limited",
        false,
        LIMITS_PER_RESTRICTION_MAX + 1 - present,
    )
    .await;
    let codes = catalogue_codes(&server, &tenant, None).await;
    assert_eq!(codes.len(), LIMITS_PER_RESTRICTION_MAX + 1);
    let limits = |count: usize| -> Value {
        codes[..count]
            .iter()
            .map(|code| (code.clone(), json!(1000)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let path = tenant.path(&format!("/groups/{group}/restriction"));
    let before = server.event_count().await;
    let answer = server
        .put(
            &path,
            ROOT_TOKEN,
            json!({"enabled": true, "limits": limits(LIMITS_PER_RESTRICTION_MAX + 1)}),
        )
        .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        LIMITS_PER_RESTRICTION_MAX,
    );
    assert_eq!(server.event_count().await, before);
    let (status, body) = server
        .put(
            &path,
            ROOT_TOKEN,
            json!({"enabled": true, "limits": limits(LIMITS_PER_RESTRICTION_MAX)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_catalogue_list_takes_catalogue_references_max_codes_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let present = catalogue_codes(&server, &tenant, Some("base")).await.len();
    define_types(
        &server,
        &tenant,
        "seat",
        false,
        CATALOGUE_REFERENCES_MAX + 1 - present,
    )
    .await;
    let bases = catalogue_codes(&server, &tenant, Some("base")).await;
    assert_eq!(bases.len(), CATALOGUE_REFERENCES_MAX + 1);
    let path = tenant.path("/catalog/everywhere");
    let before = server.event_count().await;
    let answer = server
        .put(
            &path,
            ROOT_TOKEN,
            json!({"kind": "addon", "attaches_to": bases}),
        )
        .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        CATALOGUE_REFERENCES_MAX,
    );
    assert_eq!(server.event_count().await, before);
    let (status, body) = server
        .put(
            &path,
            ROOT_TOKEN,
            json!({"kind": "addon", "attaches_to": bases[..CATALOGUE_REFERENCES_MAX]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_reminder_takes_reminder_days_max_days_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Reminded", None).await;
    let path = tenant.path(&format!("/groups/{group}/restriction"));
    let body = |days: u32| {
        json!({
            "enabled": true,
            "limits": {},
            "valid_until": "2099-01-01T00:00:00Z",
            "reminder": {"days_before": days, "frequency": "once"},
        })
    };
    let before = server.event_count().await;
    for days in [0, REMINDER_DAYS_MAX + 1] {
        let answer = server.put(&path, ROOT_TOKEN, body(days)).await;
        assert_refused(
            answer,
            StatusCode::BAD_REQUEST,
            "bad_request",
            REMINDER_DAYS_MAX,
        );
    }
    assert_eq!(server.event_count().await, before);
    let (status, answer) = server.put(&path, ROOT_TOKEN, body(REMINDER_DAYS_MAX)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn retention_takes_retention_days_free_max_days_or_retention_months_max_months() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let path = tenant.path("/settings/recording-retention");
    let before = server.event_count().await;
    let answer = server
        .put(
            &path,
            ROOT_TOKEN,
            json!({"days": RETENTION_DAYS_FREE_MAX + 1}),
        )
        .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        RETENTION_DAYS_FREE_MAX,
    );
    // Months come in steps of 3: the next value past the bound.
    let answer = server
        .put(
            &path,
            ROOT_TOKEN,
            json!({"months": RETENTION_MONTHS_MAX + 3}),
        )
        .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        RETENTION_MONTHS_MAX,
    );
    assert_eq!(server.event_count().await, before);
    for body in [
        json!({"days": RETENTION_DAYS_FREE_MAX}),
        json!({"months": RETENTION_MONTHS_MAX}),
    ] {
        let (status, answer) = server.put(&path, ROOT_TOKEN, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (_, shown) = server.get(&tenant.path(""), ROOT_TOKEN).await;
    assert_eq!(
        shown["recording_retention"],
        json!({"months": RETENTION_MONTHS_MAX})
    );
}

#[tokio::test]
async fn a_price_takes_unit_price_minor_max_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let path = tenant.path("/prices/phone_system");
    let before = server.event_count().await;
    let answer = server
        .put(
            &path,
            ROOT_TOKEN,
            json!({"unit_price_minor": UNIT_PRICE_MINOR_MAX + 1}),
        )
        .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        UNIT_PRICE_MINOR_MAX,
    );
    assert_eq!(server.event_count().await, before);
    let (status, body) = server
        .put(
            &path,
            ROOT_TOKEN,
            json!({"unit_price_minor": UNIT_PRICE_MINOR_MAX}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The invoice stays exact at the highest price.
    server
        .provision(&tenant, "phone_system", PROVISION_QUANTITY_MAX)
        .await;
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let (status, invoice) = server
        .get(&tenant.path(&format!("/invoices/{month}")), ROOT_TOKEN)
        .await;
    assert_eq!(status, StatusCode::OK, "{invoice}");
    assert_eq!(
        invoice["total_minor"],
        UNIT_PRICE_MINOR_MAX * i64::from(PROVISION_QUANTITY_MAX)
    );
}

// ---------------------------------------------------------------------------------------------
// What-if

#[tokio::test]
async fn a_what_if_takes_commands_per_what_if_max_commands_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let free = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let commands = |count: usize| {
        let command = json!({"op": "unassign", "license_id": free});
        json!({ "commands": vec![command; count] })
    };
    let path = tenant.path("/what-if");
    let before = server.event_count().await;
    let answer = server
        .post(&path, ROOT_TOKEN, commands(COMMANDS_PER_WHAT_IF_MAX + 1))
        .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        COMMANDS_PER_WHAT_IF_MAX,
    );
    let (status, body) = server
        .post(&path, ROOT_TOKEN, commands(COMMANDS_PER_WHAT_IF_MAX))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["results"].as_array().expect("results").len(),
        COMMANDS_PER_WHAT_IF_MAX
    );
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn a_what_if_provisions_licenses_per_what_if_max_licences_and_one_more_is_400() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let steps = (LICENSES_PER_WHAT_IF_MAX / u64::from(PROVISION_QUANTITY_MAX)) as usize;
    assert_eq!(
        steps as u64 * u64::from(PROVISION_QUANTITY_MAX),
        LICENSES_PER_WHAT_IF_MAX
    );
    let provision =
        json!({"op": "provision", "type": "phone_system", "quantity": PROVISION_QUANTITY_MAX});
    let at = vec![provision; steps];
    let mut over = at.clone();
    over.push(json!({"op": "provision", "type": "developer", "quantity": 1}));
    let path = tenant.path("/what-if");
    let before = server.event_count().await;
    let answer = server
        .post(&path, ROOT_TOKEN, json!({ "commands": over }))
        .await;
    assert_refused(
        answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        LICENSES_PER_WHAT_IF_MAX,
    );
    let (status, body) = server
        .post(&path, ROOT_TOKEN, json!({ "commands": at }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(server.event_count().await, before);
}

// ---------------------------------------------------------------------------------------------
// Files of the command line

fn ledger_command(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("LEDGER_TOKEN")
        .output()
        .expect("run the ledger binary")
}

/// A store with a tenant, a user named Ada and one free phone_system licence, written by a
/// real server that is then killed. Returns the tenant id.
fn cli_store(data: &std::path::Path) -> String {
    use crate::crash::{start, ROOT_TOKEN as PROCESS_TOKEN};
    let mut server = start(data);
    let agent = ureq::agent();
    let post = |path: &str, body: Value| -> Value {
        agent
            .post(&format!("{}{path}", server.base))
            .set("Authorization", &format!("Bearer {PROCESS_TOKEN}"))
            .send_json(body)
            .expect("a successful write")
            .into_json()
            .expect("a JSON answer")
    };
    let tenant = id_of(&post("/v1/tenants", json!({"name": "Offline"})));
    let base = format!("/v1/tenants/{tenant}");
    let group = id_of(&post(
        &format!("{base}/groups"),
        json!({"name": "Imported"}),
    ));
    post(
        &format!("{base}/users"),
        json!({"name": "Ada", "group_id": group}),
    );
    post(
        &format!("{base}/licenses"),
        json!({"type": "phone_system", "quantity": 1}),
    );
    server.sigkill().expect("SIGKILL the server");
    tenant
}

/// The number of events `ledger verify` counts.
fn verified_events(data: &str) -> u64 {
    let verified = ledger_command(&["verify", "--data", data]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let report: Value = serde_json::from_slice(&verified.stdout).expect("verify prints JSON");
    report["events"].as_u64().expect("events")
}

#[track_caller]
fn assert_cli_refused(output: &std::process::Output, bound: impl Display) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused: {stderr}");
    assert!(
        stderr.contains(&bound.to_string()),
        "the message should name the bound {bound}: {stderr}"
    );
}

#[test]
fn the_import_command_takes_a_file_of_import_bytes_max_and_refuses_one_byte_more() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("data");
    let tenant = cli_store(&data_dir);
    let data = data_dir.to_str().expect("utf-8 path");
    let file = dir.path().join("import.csv");
    let path = file.to_str().expect("utf-8 path");
    let before = verified_events(data);

    std::fs::write(&file, import_file_of(IMPORT_BYTES_MAX + 1)).expect("write the file");
    let refused = ledger_command(&["import", "--data", data, "--tenant", &tenant, path]);
    assert_cli_refused(&refused, IMPORT_BYTES_MAX);
    assert_eq!(verified_events(data), before);

    std::fs::write(&file, import_file_of(IMPORT_BYTES_MAX)).expect("write the file");
    let applied = ledger_command(&["import", "--data", data, "--tenant", &tenant, path]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let report: Value = serde_json::from_slice(&applied.stdout).expect("a JSON report");
    assert_eq!(report["applied"], true, "{report}");
    assert!(verified_events(data) > before);
}

#[test]
fn the_what_if_command_takes_a_file_of_request_body_bytes_max_and_refuses_one_byte_more() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("data");
    let tenant = cli_store(&data_dir);
    let data = data_dir.to_str().expect("utf-8 path");
    let file = dir.path().join("what-if.json");
    let path = file.to_str().expect("utf-8 path");
    let body = json!({"commands": [{"op": "set_quantity", "type": "phone_system", "quantity": 3}]});

    std::fs::write(&file, padded(&body, REQUEST_BODY_BYTES_MAX + 1)).expect("write the file");
    let refused = ledger_command(&["what-if", "--data", data, "--tenant", &tenant, path]);
    assert_cli_refused(&refused, REQUEST_BODY_BYTES_MAX);

    std::fs::write(&file, padded(&body, REQUEST_BODY_BYTES_MAX)).expect("write the file");
    let previewed = ledger_command(&["what-if", "--data", data, "--tenant", &tenant, path]);
    assert!(
        previewed.status.success(),
        "{}",
        String::from_utf8_lossy(&previewed.stderr)
    );
    let report: Value = serde_json::from_slice(&previewed.stdout).expect("a JSON report");
    assert_eq!(report["ok"], true, "{report}");
}

#[test]
fn replaying_an_export_takes_lines_of_export_line_bytes_max_and_refuses_a_longer_one() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("data");
    let tenant = cli_store(&data_dir);
    let data = data_dir.to_str().expect("utf-8 path");
    let exported = ledger_command(&["export", "--data", data, "--tenant", &tenant]);
    assert!(exported.status.success());
    let text = String::from_utf8(exported.stdout).expect("utf-8 export");
    let lines: Vec<&str> = text.lines().collect();
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let file = dir.path().join("export.jsonl");
    let path = file.to_str().expect("utf-8 path");
    // The last line padded with spaces, which JSON ignores, to `size` bytes.
    let write = |size: usize| {
        let (last, first) = lines.split_last().expect("events");
        let mut padded = last.as_bytes().to_vec();
        padded.resize(size, b' ');
        let mut bytes = first.join("\n").into_bytes();
        bytes.push(b'\n');
        bytes.extend_from_slice(&padded);
        bytes.push(b'\n');
        std::fs::write(&file, bytes).expect("write the export");
    };
    let replay = || {
        ledger_command(&[
            "replay", "--from", path, "--tenant", &tenant, "--month", &month,
        ])
    };

    write(EXPORT_LINE_BYTES_MAX + 1);
    let refused = replay();
    assert_cli_refused(&refused, EXPORT_LINE_BYTES_MAX);
    assert!(String::from_utf8_lossy(&refused.stderr).contains(&format!("line {}", lines.len())));

    write(EXPORT_LINE_BYTES_MAX);
    let replayed = replay();
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let invoice: Value = serde_json::from_slice(&replayed.stdout).expect("a JSON invoice");
    assert_eq!(invoice["month"], month.as_str());
}
