//! `Idempotency-Key`: a retry returns the first answer and appends nothing; the key with a
//! different request is a conflict; keys survive a restart.

use crate::support::{assert_error, Server, ROOT_TOKEN};
use axum::http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_retried_write_returns_the_first_answer_says_so_and_appends_nothing() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let body = json!({"name": "John", "group_id": group, "extension": "101"});
    let headers = [("Idempotency-Key", "create-john")];
    let first = server
        .request(
            Method::POST,
            &tenant.path("/users"),
            Some(&tenant.operator),
            Some(body.clone()),
            &headers,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(
        first.headers.get("idempotent-replayed").is_none(),
        "a first answer is not a replay"
    );
    let events = server.event_count().await;
    let again = server
        .request(
            Method::POST,
            &tenant.path("/users"),
            Some(&tenant.operator),
            Some(body),
            &headers,
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(
        again
            .headers
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true"),
        "the repeated answer says it repeats"
    );
    assert_eq!(
        again.body, first.body,
        "the server-chosen user id and seq repeat"
    );
    assert_eq!(server.event_count().await, events);
    let (status, users) = server
        .get(&tenant.path("/users?q=John"), &tenant.viewer)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_a_conflict_and_changes_nothing() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let headers = [("Idempotency-Key", "buy-phones")];
    let first = server
        .request(
            Method::POST,
            &tenant.path("/licenses"),
            Some(&tenant.admin),
            Some(json!({"type": "phone_system", "quantity": 3})),
            &headers,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(
        first.headers.get("idempotent-replayed").is_none(),
        "a first answer is not a replay"
    );
    let events = server.event_count().await;
    let other = server
        .request(
            Method::POST,
            &tenant.path("/licenses"),
            Some(&tenant.admin),
            Some(json!({"type": "phone_system", "quantity": 4})),
            &headers,
        )
        .await;
    assert_error(other.status, &other.body, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        other.body["error"]["details"]["reason"],
        "idempotency_key_reused"
    );
    assert_eq!(server.event_count().await, events);
    let usage = server.usage(&tenant).await;
    assert_eq!(usage["phone_system"]["owned"], 3);
}

#[tokio::test]
async fn idempotency_keys_survive_a_restart() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let headers = [("Idempotency-Key", "order-42")];
    let body = json!({"type": "phone_system", "quantity": 2});
    let first = server
        .request(
            Method::POST,
            &tenant.path("/licenses"),
            Some(&tenant.admin),
            Some(body.clone()),
            &headers,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let server = server.restart().await;
    let events = server.event_count().await;
    let again = server
        .request(
            Method::POST,
            &tenant.path("/licenses"),
            Some(&tenant.admin),
            Some(body),
            &headers,
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body, "the same licence ids come back");
    assert_eq!(server.event_count().await, events);
}

#[tokio::test]
async fn concurrent_retries_in_one_batch_append_once() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let body = json!({"type": "phone_system", "quantity": 1});
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let router = server.router();
        let request = crate::support::build(
            Method::POST,
            &tenant.path("/licenses"),
            Some(&tenant.admin),
            Some(body.clone()),
            &[("Idempotency-Key", "once")],
        );
        tasks.push(tokio::spawn(crate::support::send(router, request)));
    }
    let mut bodies = Vec::new();
    for task in tasks {
        let reply = task.await.expect("task");
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        bodies.push(reply.body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    let usage = server.usage(&tenant).await;
    assert_eq!(usage["phone_system"]["owned"], 1);
}

#[tokio::test]
async fn a_retried_key_issuance_refuses_to_show_the_token_again() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let headers = [("Idempotency-Key", "new-viewer")];
    let body = json!({"role": "viewer", "name": "dashboard"});
    let first = server
        .request(
            Method::POST,
            &tenant.path("/keys"),
            Some(ROOT_TOKEN),
            Some(body.clone()),
            &headers,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let token = first.body["token"].as_str().expect("token").to_string();
    let again = server
        .request(
            Method::POST,
            &tenant.path("/keys"),
            Some(ROOT_TOKEN),
            Some(body),
            &headers,
        )
        .await;
    assert_error(again.status, &again.body, StatusCode::CONFLICT, "conflict");
    assert_eq!(again.body["error"]["details"]["key_id"], first.body["id"]);
    let (status, _) = server.get(&tenant.path("/catalog"), &token).await;
    assert_eq!(status, StatusCode::OK, "the first token still works");
}

#[tokio::test]
async fn an_overlong_idempotency_key_is_a_bad_request() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let key = "k".repeat(201);
    let reply = server
        .request(
            Method::POST,
            &tenant.path("/licenses"),
            Some(&tenant.admin),
            Some(json!({"type": "phone_system", "quantity": 1})),
            &[("Idempotency-Key", &key)],
        )
        .await;
    assert_error(
        reply.status,
        &reply.body,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
}
