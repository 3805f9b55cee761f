//! Replay from scratch equals live, at the HTTP level: after a restart on the same directory
//! every answer is what it was before.

use crate::support::{Server, Tenant, ROOT_TOKEN};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// Everything a client can read about a tenant, minus the `at` instants of "now" queries.
async fn snapshot(server: &Server, tenant: &Tenant, groups: &[String]) -> Value {
    let mut reads = serde_json::Map::new();
    for path in [
        "",
        "/catalog",
        "/licenses?limit=1000",
        "/users?limit=1000",
        "/groups",
    ] {
        let (status, body) = server.get(&tenant.path(path), ROOT_TOKEN).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        reads.insert(path.to_string(), body);
    }
    reads.insert("usage".into(), server.usage(tenant).await);
    for group in groups {
        reads.insert(
            format!("state {group}"),
            server.group_state(tenant, group).await,
        );
    }
    let (_, users) = server.get(&tenant.path("/users"), ROOT_TOKEN).await;
    for user in users["items"].as_array().unwrap() {
        let id = user["id"].as_str().unwrap();
        let (status, body) = server
            .get(&tenant.path(&format!("/users/{id}")), ROOT_TOKEN)
            .await;
        assert_eq!(status, StatusCode::OK);
        reads.insert(format!("user {id}"), body);
    }
    let (_, licenses) = server
        .get(&tenant.path("/licenses?limit=1000"), ROOT_TOKEN)
        .await;
    for license in licenses["items"].as_array().unwrap() {
        let id = license["id"].as_str().unwrap();
        reads.insert(
            format!("license {id}"),
            server.license(tenant, &tenant.auditor, id).await,
        );
    }
    Value::Object(reads)
}

#[tokio::test]
async fn a_restarted_ledger_answers_exactly_as_before() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let company = server.group(&tenant, "Company", None).await;
    let sales = server.group(&tenant, "Sales", Some(&company)).await;
    let support = server.group(&tenant, "Support", Some(&company)).await;
    server
        .restrict(
            &tenant,
            &company,
            json!({"phone_system": 10, "sip_number": 5, "mobile_app": 5}),
        )
        .await;
    server
        .restrict(&tenant, &sales, json!({"phone_system": 4}))
        .await;
    let phones = server.provision(&tenant, "phone_system", 6).await;
    let chats = server.provision(&tenant, "team_chat", 3).await;
    let sips = server.provision(&tenant, "sip_number", 2).await;
    let mut users = Vec::new();
    for (index, group) in [&sales, &sales, &support, &support].iter().enumerate() {
        users.push(
            server
                .user_with(
                    &tenant,
                    json!({"name": format!("user {index}"), "group_id": group,
                           "extension": format!("{}", 200 + index)}),
                )
                .await,
        );
    }
    for (phone, user) in phones.iter().zip(&users) {
        server.assign(&tenant, phone, user).await;
    }
    server.attach(&tenant, &phones[0], &chats[0]).await;
    server.attach(&tenant, &phones[0], &sips[0]).await;
    server.attach(&tenant, &phones[2], &chats[1]).await;
    let (status, _) = server
        .post(
            &tenant.path(&format!("/licenses/{}/reassign", phones[0])),
            ROOT_TOKEN,
            json!({"user_id": users[2]}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "user 2 already holds one"
    );
    let (status, _) = server
        .post(
            &tenant.path(&format!("/licenses/{}/unassign", phones[3])),
            ROOT_TOKEN,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .post(
            &tenant.path(&format!("/licenses/{}/reassign", phones[0])),
            ROOT_TOKEN,
            json!({"user_id": users[3]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server
        .delete(
            &tenant.path(&format!("/licenses/{}", phones[5])),
            ROOT_TOKEN,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .put(
            &tenant.path("/settings/recording-retention"),
            ROOT_TOKEN,
            json!({"months": 6}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .patch(
            &tenant.path(&format!("/users/{}", users[1])),
            ROOT_TOKEN,
            json!({"group_id": support, "name": "moved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .post(
            &tenant.path("/keys"),
            ROOT_TOKEN,
            json!({"role": "viewer", "name": "revoked"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let revoked_token = body["token"].as_str().unwrap().to_string();
    let revoked_id = body["id"].as_str().unwrap().to_string();
    let (status, _) = server
        .delete(&tenant.path(&format!("/keys/{revoked_id}")), ROOT_TOKEN)
        .await;
    assert_eq!(status, StatusCode::OK);

    let groups = [company.clone(), sales.clone(), support.clone()];
    let seq_before = server.event_count().await;
    let before = snapshot(&server, &tenant, &groups).await;

    let server = server.restart().await;

    assert_eq!(server.event_count().await, seq_before);
    let after = snapshot(&server, &tenant, &groups).await;
    assert_eq!(after, before);

    // Keys were rebuilt from the log: live keys work, the revoked one does not.
    let (status, _) = server.get(&tenant.path("/catalog"), &tenant.viewer).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server.get(&tenant.path("/catalog"), &revoked_token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The log continues where it stopped, and rules still see the replayed usage.
    let (status, body) = server
        .post(
            &tenant.path("/assignments"),
            &tenant.operator,
            json!({"user_id": users[2], "type": "phone_system"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"]["violations"][0]["rule"],
        "one_base_per_type"
    );
    let fresh = server.user(&tenant, &sales, "fresh").await;
    let (status, body) = server
        .post(
            &tenant.path("/assignments"),
            &tenant.operator,
            json!({"user_id": fresh, "type": "phone_system"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], seq_before + 2);
}

#[tokio::test]
async fn an_empty_ledger_restarts_empty() {
    let server = Server::start();
    assert_eq!(server.event_count().await, 0);
    let server = server.restart().await;
    assert_eq!(server.event_count().await, 0);
    let (status, body) = server
        .post("/v1/tenants", ROOT_TOKEN, json!({"name": "First"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["seq"], 25);
}
