//! Bad input gets a clear 4xx in the JSON error envelope with the code of API.md, and changes
//! nothing: the global sequence (`/healthz` seq) is the same before and after.

use crate::support::{assert_error, Server, Tenant, ROOT_TOKEN};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use ledger::http::REQUEST_BODY_BYTES_MAX;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A tenant with one group, one user and one free licence, to aim bad requests at.
struct Target {
    tenant: Tenant,
    group: String,
    user: String,
    license: String,
}

async fn target(server: &Server) -> Target {
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let license = server.provision(&tenant, "phone_system", 1).await.remove(0);
    Target {
        tenant,
        group,
        user,
        license,
    }
}

fn deeply_nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn malformed_bodies_paths_and_queries_are_400_and_store_nothing() {
    let server = Server::start();
    let t = target(&server).await;
    let (tenant, group, user, license) = (&t.tenant, &t.group, &t.user, &t.license);
    let cases: Vec<(Method, String, Vec<u8>)> = vec![
        // Bad JSON.
        (
            Method::POST,
            tenant.path("/licenses"),
            br#"{"type":"#.to_vec(),
        ),
        (
            Method::POST,
            tenant.path("/licenses"),
            b"not json at all".to_vec(),
        ),
        (
            Method::POST,
            tenant.path("/licenses"),
            vec![0xff, 0xfe, 0x00],
        ),
        (
            Method::POST,
            tenant.path("/licenses"),
            deeply_nested(10_000).into_bytes(),
        ),
        (Method::POST, tenant.path("/licenses"), b"[]".to_vec()),
        (Method::POST, tenant.path("/licenses"), b"null".to_vec()),
        // Missing fields (an empty body reads as `{}`).
        (Method::POST, tenant.path("/licenses"), Vec::new()),
        (
            Method::POST,
            tenant.path("/licenses"),
            br#"{"type":"phone_system"}"#.to_vec(),
        ),
        // Wrong types and out-of-range numbers.
        (
            Method::POST,
            tenant.path("/licenses"),
            br#"{"type":5,"quantity":"x"}"#.to_vec(),
        ),
        (
            Method::POST,
            tenant.path("/licenses"),
            br#"{"type":"phone_system","quantity":-1}"#.to_vec(),
        ),
        (
            Method::POST,
            tenant.path("/licenses"),
            br#"{"type":"phone_system","quantity":1.5}"#.to_vec(),
        ),
        (
            Method::POST,
            tenant.path("/licenses"),
            br#"{"type":"phone_system","quantity":4294967296}"#.to_vec(),
        ),
        (
            Method::PATCH,
            tenant.path(&format!("/groups/{group}")),
            br#"{"parent_id":7}"#.to_vec(),
        ),
        (
            Method::PUT,
            tenant.path("/settings/recording-retention"),
            br#"{"days":"14"}"#.to_vec(),
        ),
        // Unknown catalogue codes and malformed codes.
        (
            Method::POST,
            tenant.path("/licenses"),
            br#"{"type":"no_such_type","quantity":1}"#.to_vec(),
        ),
        (
            Method::POST,
            tenant.path("/licenses"),
            br#"{"type":"PHONE_SYSTEM","quantity":1}"#.to_vec(),
        ),
        (
            Method::PUT,
            tenant.path("/subscription/no_such_type"),
            br#"{"quantity":1}"#.to_vec(),
        ),
        (
            Method::GET,
            tenant.path("/licenses?type=no_such_type"),
            Vec::new(),
        ),
        (
            Method::GET,
            tenant.path("/users?type=no_such_type"),
            Vec::new(),
        ),
        (
            Method::PUT,
            tenant.path("/prices/no_such_type"),
            br#"{"unit_price_minor":1}"#.to_vec(),
        ),
        (
            Method::PUT,
            tenant.path("/subscription/Phone%20System"),
            br#"{"quantity":1}"#.to_vec(),
        ),
        (
            Method::POST,
            tenant.path("/assignments"),
            format!(r#"{{"user_id":"{user}","type":"phone_system","addons":["no_such_addon"]}}"#)
                .into_bytes(),
        ),
        (
            Method::PUT,
            tenant.path(&format!("/groups/{group}/restriction")),
            br#"{"enabled":true,"limits":{"no_such_type":3}}"#.to_vec(),
        ),
        // Invalid UUIDs in the path.
        (
            Method::GET,
            "/v1/tenants/not-a-uuid/catalog".to_string(),
            Vec::new(),
        ),
        (
            Method::POST,
            "/v1/tenants/1234/licenses".to_string(),
            br#"{"type":"voice","quantity":1}"#.to_vec(),
        ),
        (
            Method::POST,
            tenant.path("/licenses/not-a-uuid/assign"),
            format!(r#"{{"user_id":"{user}"}}"#).into_bytes(),
        ),
        (Method::DELETE, tenant.path("/licenses/xyz"), Vec::new()),
        (Method::GET, tenant.path("/users/%E2%82"), Vec::new()),
        (Method::GET, tenant.path("/groups/g-1/state"), Vec::new()),
        // Invalid UUIDs in the body.
        (
            Method::POST,
            tenant.path(&format!("/licenses/{license}/assign")),
            br#"{"user_id":"not-a-uuid"}"#.to_vec(),
        ),
        (
            Method::POST,
            tenant.path(&format!("/licenses/{license}/addons")),
            br#"{"addon_id":12}"#.to_vec(),
        ),
        (
            Method::POST,
            tenant.path("/users"),
            br#"{"name":"Eve","group_id":"1234"}"#.to_vec(),
        ),
        (
            Method::POST,
            "/v1/tenants".to_string(),
            br#"{"id":"zzz","name":"Acme"}"#.to_vec(),
        ),
        // Invalid instants.
        (
            Method::PUT,
            tenant.path(&format!("/groups/{group}/restriction")),
            br#"{"enabled":true,"valid_from":"2024-13-01T00:00:00Z"}"#.to_vec(),
        ),
        (Method::GET, tenant.path("/usage?at=yesterday"), Vec::new()),
        (
            Method::GET,
            tenant.path(&format!("/groups/{group}/state?at=2024-01-01")),
            Vec::new(),
        ),
        // Unknown enum values.
        (
            Method::POST,
            tenant.path("/keys"),
            br#"{"role":"superuser","name":"x"}"#.to_vec(),
        ),
        (
            Method::GET,
            tenant.path("/licenses?status=lost"),
            Vec::new(),
        ),
        (
            Method::PUT,
            tenant.path(&format!("/groups/{group}/restriction")),
            br#"{"enabled":true,"reminder":{"days_before":3,"frequency":"hourly"}}"#.to_vec(),
        ),
        // Bad paging.
        (Method::GET, tenant.path("/licenses?limit=0"), Vec::new()),
        (Method::GET, tenant.path("/licenses?limit=abc"), Vec::new()),
        (
            Method::GET,
            tenant.path("/licenses?limit=1000000"),
            Vec::new(),
        ),
        (
            Method::GET,
            tenant.path("/licenses?after=not-a-uuid"),
            Vec::new(),
        ),
        // Malformed whatever the state: empty names, bad extensions.
        (
            Method::POST,
            "/v1/tenants".to_string(),
            br#"{"name":"   "}"#.to_vec(),
        ),
        (
            Method::POST,
            "/v1/tenants".to_string(),
            br#"{"name":"Acme","currency":"euro"}"#.to_vec(),
        ),
        (
            Method::POST,
            tenant.path("/users"),
            format!(r#"{{"name":"Eve","group_id":"{group}","extension":"12 34"}}"#).into_bytes(),
        ),
        (
            Method::POST,
            tenant.path("/groups"),
            br#"{"name":""}"#.to_vec(),
        ),
    ];
    let before = server.event_count().await;
    for (method, path, body) in cases {
        let (status, answer) = server
            .raw(method.clone(), &path, Some(ROOT_TOKEN), body.clone())
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {}: {answer}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "bad_request");
        assert_eq!(server.event_count().await, before, "{method} {path}");
    }
}

#[tokio::test]
async fn malformed_write_headers_are_400_and_store_nothing() {
    let server = Server::start();
    let t = target(&server).await;
    let before = server.event_count().await;
    let long_reason = "x".repeat(501);
    for (name, value) in [
        ("if-match", "abc"),
        ("if-match", "\"-1\""),
        ("x-reason", long_reason.as_str()),
    ] {
        let reply = server
            .request(
                Method::POST,
                &t.tenant.path("/licenses"),
                Some(ROOT_TOKEN),
                Some(json!({"type": "voice", "quantity": 1})),
                &[(name, value)],
            )
            .await;
        assert_error(
            reply.status,
            &reply.body,
            StatusCode::BAD_REQUEST,
            "bad_request",
        );
    }
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_payload_too_large() {
    let server = Server::start();
    let t = target(&server).await;
    let before = server.event_count().await;
    let padded = |total: usize| {
        let head = br#"{"type":"voice","quantity":1,"pad":""#;
        let tail = br#""}"#;
        let mut body = head.to_vec();
        body.resize(total - tail.len(), b'a');
        body.extend_from_slice(tail);
        assert_eq!(body.len(), total);
        body
    };
    let path = t.tenant.path("/licenses");
    let (status, body) = server
        .raw(
            Method::POST,
            &path,
            Some(ROOT_TOKEN),
            padded(REQUEST_BODY_BYTES_MAX + 1),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let users = t.tenant.path("/users/batch");
    let (status, body) = server
        .raw(
            Method::POST,
            &users,
            Some(ROOT_TOKEN),
            vec![b' '; 3 * REQUEST_BODY_BYTES_MAX],
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_eq!(server.event_count().await, before);

    // Exactly the limit is still accepted.
    let (status, body) = server
        .raw(
            Method::POST,
            &path,
            Some(ROOT_TOKEN),
            padded(REQUEST_BODY_BYTES_MAX),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_json_envelope() {
    let server = Server::start();
    let t = target(&server).await;
    let before = server.event_count().await;
    for (method, path) in [
        (Method::GET, "/".to_string()),
        (Method::GET, "/nope".to_string()),
        (Method::POST, "/v1/nope".to_string()),
        (Method::GET, "/v2/tenants".to_string()),
        (Method::GET, t.tenant.path("/nope")),
        (Method::POST, t.tenant.path("/licenses/a/b/c/d")),
        (Method::DELETE, t.tenant.path("/users/batch/extra")),
    ] {
        let (status, body) = server
            .call(method.clone(), &path, Some(ROOT_TOKEN), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn a_wrong_method_is_405_in_the_json_envelope() {
    let server = Server::start();
    let t = target(&server).await;
    let before = server.event_count().await;
    for (method, path) in [
        (Method::GET, "/v1/tenants".to_string()),
        (Method::DELETE, "/v1/tenants".to_string()),
        (Method::PUT, "/healthz".to_string()),
        (Method::POST, "/healthz".to_string()),
        (Method::DELETE, t.tenant.path("/catalog")),
        (Method::PATCH, t.tenant.path("/licenses")),
        (
            Method::GET,
            t.tenant.path(&format!("/licenses/{}/assign", t.license)),
        ),
        (Method::PUT, t.tenant.path(&format!("/users/{}", t.user))),
        (
            Method::POST,
            t.tenant.path(&format!("/groups/{}/state", t.group)),
        ),
        (Method::GET, t.tenant.path("/assignments")),
        (Method::OPTIONS, t.tenant.path("/usage")),
    ] {
        let (status, body) = server
            .call(method.clone(), &path, Some(ROOT_TOKEN), Some(json!({})))
            .await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
        assert_error(
            status,
            &body,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        );
    }
    assert_eq!(server.event_count().await, before);
}

const ERROR_CODES: [&str; 8] = [
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "rule_violation",
    "payload_too_large",
    "method_not_allowed",
];

/// Check one answer to garbage: never a 5xx, never a success, always the envelope.
fn check_garbage_answer(method: &Method, path: &str, status: StatusCode, body: &Value) {
    assert!(
        !status.is_server_error(),
        "{method} {path} answered {status}: {body}"
    );
    if status.is_success() {
        // Only the reads may succeed on garbage; a garbage write never does.
        assert!(
            *method == Method::GET || *method == Method::HEAD,
            "{method} {path} accepted garbage: {body}"
        );
        return;
    }
    if *method == Method::HEAD {
        return;
    }
    let code = body["error"]["code"].as_str().unwrap_or_else(|| {
        panic!("{method} {path} answered {status} without the envelope: {body}")
    });
    assert!(ERROR_CODES.contains(&code), "{method} {path}: {code}");
}

#[tokio::test]
async fn garbage_never_gets_a_5xx_and_never_changes_anything() {
    let server = Server::start();
    let t = target(&server).await;
    let before = server.event_count().await;
    let missing = "99999999-aaaa-4bbb-8ccc-dddddddddddd";
    let tenant_paths = [
        "",
        "/catalog",
        "/licenses",
        "/licenses?limit=-1&after=x",
        &format!("/licenses/{missing}"),
        &format!("/licenses/{missing}/assign"),
        &format!("/licenses/{missing}/unassign"),
        &format!("/licenses/{missing}/reassign"),
        &format!("/licenses/{missing}/addons"),
        &format!("/licenses/{missing}/addons/{missing}"),
        &format!("/licenses/{}/addons/{missing}", t.license),
        "/assignments",
        "/groups",
        &format!("/groups/{missing}"),
        &format!("/groups/{missing}/restriction"),
        &format!("/groups/{missing}/state?at=%ZZ"),
        "/users",
        "/users/batch",
        &format!("/users/{missing}"),
        "/keys",
        &format!("/keys/{missing}"),
        "/subscription/phone_system",
        "/subscription/%00",
        "/prices/x",
        "/settings/recording-retention",
        "/usage?at=%ZZ",
        "/usage?at=9999999-01-01T00:00:00Z",
    ]
    .map(|p| t.tenant.path(p));
    let mut paths: Vec<String> = tenant_paths.to_vec();
    paths.extend(
        [
            "/",
            "/v1",
            "/v1/tenants",
            "/v1/tenants/",
            "/v1/tenants/%E2%82/catalog",
            &format!("/v1/tenants/{missing}/licenses"),
            "/healthz?seq=-1",
        ]
        .map(String::from),
    );
    let bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"0".to_vec(),
        b"\"s\"".to_vec(),
        b"{}".to_vec(),
        br#"{"type":null,"quantity":null}"#.to_vec(),
        br#"{"quantity":1e400}"#.to_vec(),
        br#"{"user_id":""}"#.to_vec(),
        br#"{"users":[{}]}"#.to_vec(),
        br#"{"enabled":true,"limits":{"phone_system":18446744073709551616}}"#.to_vec(),
        br#"{"days":-1,"months":-3}"#.to_vec(),
        br#"{"role":null}"#.to_vec(),
        vec![0xff, 0x00, 0xc3],
        deeply_nested(5_000).into_bytes(),
    ];
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ];
    let tokens = [None, Some(ROOT_TOKEN), Some(t.tenant.viewer.as_str())];
    for path in &paths {
        for method in &methods {
            for body in &bodies {
                for token in tokens {
                    let (status, answer) =
                        server.raw(method.clone(), path, token, body.clone()).await;
                    check_garbage_answer(method, path, status, &answer);
                }
            }
        }
    }

    // Random bytes, with random content types, at every write path.
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1ed9e7);
    for round in 0..400 {
        let path = &paths[round % paths.len()];
        let method = &methods[rng.gen_range(1..5)];
        let length = rng.gen_range(0..256);
        let body: Vec<u8> = (0..length).map(|_| rng.gen()).collect();
        let content_type = ["application/json", "text/csv", ""][rng.gen_range(0..3)];
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path.as_str())
            .header(header::AUTHORIZATION, format!("Bearer {ROOT_TOKEN}"));
        if !content_type.is_empty() {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let reply = server.send(request.body(Body::from(body)).unwrap()).await;
        check_garbage_answer(method, path, reply.status, &reply.body);
    }
    assert_eq!(server.event_count().await, before);
}
