//! Roles and authentication: what each role may do, and that a key never acts in another tenant.

use crate::support::{assert_error, Server, ROOT_TOKEN};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_viewer_reads_but_cannot_assign() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let id = server.provision(&tenant, "phone_system", 1).await.remove(0);
    for path in [
        "/catalog".to_string(),
        "/licenses".to_string(),
        format!("/licenses/{id}"),
        "/users".to_string(),
        format!("/users/{user}"),
        "/groups".to_string(),
        format!("/groups/{group}"),
        format!("/groups/{group}/state"),
        "/usage".to_string(),
    ] {
        let (status, body) = server.get(&tenant.path(&path), &tenant.viewer).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let before = server.event_count().await;
    let (status, body) = server.assign_as(&tenant, &tenant.viewer, &id, &user).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = server
        .post(
            &tenant.path("/users"),
            &tenant.viewer,
            json!({"name": "Eve", "group_id": group}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.event_count().await, before);
    assert_eq!(
        server.license(&tenant, ROOT_TOKEN, &id).await["status"],
        "free"
    );
}

#[tokio::test]
async fn an_operator_assigns_and_manages_users_but_cannot_administer() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ids = server.provision(&tenant, "phone_system", 2).await;
    let addon = server.provision(&tenant, "team_chat", 1).await.remove(0);
    let op = &tenant.operator;

    let (status, body) = server
        .post(
            &tenant.path("/users"),
            op,
            json!({"name": "Ada", "group_id": group}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ada = body["id"].as_str().unwrap().to_string();
    let bob = server.user(&tenant, &group, "Bob").await;
    let (status, body) = server.assign_as(&tenant, op, &ids[0], &ada).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .post(
            &tenant.path(&format!("/licenses/{}/addons", ids[0])),
            op,
            json!({"addon_id": addon}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .post(
            &tenant.path(&format!("/licenses/{}/reassign", ids[0])),
            op,
            json!({"user_id": bob}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .post(
            &tenant.path(&format!("/licenses/{}/unassign", ids[0])),
            op,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let before = server.event_count().await;
    let forbidden = [
        (
            Method::PUT,
            format!("/groups/{group}/restriction"),
            json!({"enabled": true, "limits": {"phone_system": 5}}),
        ),
        (
            Method::POST,
            "/licenses".to_string(),
            json!({"type": "phone_system", "quantity": 1}),
        ),
        (
            Method::PUT,
            "/subscription/phone_system".to_string(),
            json!({"quantity": 9}),
        ),
        (Method::DELETE, format!("/licenses/{}", ids[1]), json!({})),
        (
            Method::POST,
            "/groups".to_string(),
            json!({"name": "Shadow IT"}),
        ),
        (
            Method::PUT,
            "/prices/phone_system".to_string(),
            json!({"unit_price_minor": 1}),
        ),
        (
            Method::POST,
            "/keys".to_string(),
            json!({"role": "admin", "name": "mine"}),
        ),
    ];
    for (method, path, body) in forbidden {
        let (status, answer) = server
            .call(method.clone(), &tenant.path(&path), Some(op), Some(body))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_error(status, &answer, StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn an_auditor_reads_history_but_cannot_write() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let id = server.provision(&tenant, "phone_system", 1).await.remove(0);
    server.assign(&tenant, &id, &user).await;
    let body = server.license(&tenant, &tenant.auditor, &id).await;
    assert_eq!(body["events"].as_array().unwrap().len(), 2);
    let before = server.event_count().await;
    let (status, body) = server
        .post(
            &tenant.path(&format!("/licenses/{id}/unassign")),
            &tenant.auditor,
            json!({}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn a_key_of_one_tenant_cannot_touch_another_tenant() {
    let server = Server::start();
    let a = server.tenant().await;
    let b = server.tenant().await;
    let group = server.group(&b, "Sales", None).await;
    let user = server.user(&b, &group, "Ada").await;
    let id = server.provision(&b, "phone_system", 1).await.remove(0);
    let before = server.event_count().await;
    let usage_before = server.usage(&b).await;

    for token in [&a.admin, &a.operator, &a.viewer, &a.auditor, &a.billing] {
        for path in ["", "/catalog", "/licenses", "/users", "/usage"] {
            let (status, body) = server.get(&b.path(path), token).await;
            assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
        }
        let (status, body) = server.assign_as(&b, token, &id, &user).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = server
            .post(
                &b.path("/licenses"),
                token,
                json!({"type": "phone_system", "quantity": 5}),
            )
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
        let (status, body) = server
            .post(
                &b.path("/keys"),
                token,
                json!({"role": "admin", "name": "foothold"}),
            )
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(server.event_count().await, before);
    assert_eq!(server.usage(&b).await, usage_before);
    assert_eq!(server.license(&b, ROOT_TOKEN, &id).await["status"], "free");
}

#[tokio::test]
async fn missing_or_garbage_authorization_is_unauthorized() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let before = server.event_count().await;
    let catalog = tenant.path("/catalog");
    let licenses = tenant.path("/licenses");
    let body = serde_json::to_vec(&json!({"type": "phone_system", "quantity": 1})).unwrap();
    let authorizations: [Option<&str>; 7] = [
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer not-a-real-token"),
        Some("Basic dXNlcjpwYXNz"),
        Some(ROOT_TOKEN),
    ];
    for authorization in authorizations {
        for (method, path, payload) in [
            (Method::GET, &catalog, Vec::new()),
            (Method::POST, &licenses, body.clone()),
            (
                Method::POST,
                &"/v1/tenants".to_string(),
                b"{\"name\":\"x\"}".to_vec(),
            ),
        ] {
            let mut request = Request::builder()
                .method(method.clone())
                .uri(path.as_str())
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let reply = server
                .send(request.body(Body::from(payload)).unwrap())
                .await;
            assert_error(
                reply.status,
                &reply.body,
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            );
        }
    }
    assert_eq!(server.event_count().await, before);
}
