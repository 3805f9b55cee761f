//! Concurrency: two conflicting commands never both succeed; no limit is ever over-assigned.

use crate::support::{assert_error, build, send, violation_rules, Server, ROOT_TOKEN};
use axum::http::{Method, StatusCode};
use serde_json::json;

const CONTENDERS: usize = 40;
const GROUP_LIMIT: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_concurrent_assigns_against_a_limit_of_twenty_let_exactly_twenty_through() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    server
        .restrict(&tenant, &group, json!({"phone_system": GROUP_LIMIT}))
        .await;
    let licenses = server
        .provision(&tenant, "phone_system", CONTENDERS as u32)
        .await;
    let users: Vec<String> = {
        let batch: Vec<_> = (0..CONTENDERS)
            .map(|i| json!({"name": format!("user {i}"), "group_id": group}))
            .collect();
        let (status, body) = server
            .post(
                &tenant.path("/users/batch"),
                ROOT_TOKEN,
                json!({"users": batch}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().to_string())
            .collect()
    };

    let mut tasks = Vec::new();
    for (license, user) in licenses.iter().zip(&users) {
        let request = build(
            Method::POST,
            &tenant.path(&format!("/licenses/{license}/assign")),
            Some(&tenant.operator),
            Some(json!({"user_id": user})),
            &[],
        );
        tasks.push(tokio::spawn(send(server.router(), request)));
    }
    let mut succeeded = 0;
    let mut refused = 0;
    for task in tasks {
        let reply = task.await.expect("the task did not panic");
        match reply.status {
            StatusCode::OK => succeeded += 1,
            _ => {
                assert_error(
                    reply.status,
                    &reply.body,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "rule_violation",
                );
                assert_eq!(violation_rules(&reply.body), ["group_limit_reached"]);
                let violation = &reply.body["error"]["details"]["violations"][0];
                assert_eq!(violation["group_id"], group.as_str());
                assert_eq!(violation["limit"], GROUP_LIMIT);
                assert_eq!(violation["used"], GROUP_LIMIT);
                refused += 1;
            }
        }
    }
    assert_eq!(succeeded, GROUP_LIMIT);
    assert_eq!(refused, CONTENDERS as u64 - GROUP_LIMIT);

    let state = server.group_state(&tenant, &group).await;
    assert_eq!(
        state["types"]["phone_system"],
        json!({"limit": GROUP_LIMIT, "used": GROUP_LIMIT, "remaining": 0,
               "effective_remaining": 0, "limited_by": group})
    );
    assert_eq!(
        server.usage(&tenant).await["phone_system"],
        json!({"owned": CONTENDERS, "assigned": GROUP_LIMIT, "free": CONTENDERS as u64 - GROUP_LIMIT})
    );
    // The survivors reached the state too: exactly twenty users hold a licence.
    let (_, holders) = server
        .get(&tenant.path("/users?type=phone_system"), ROOT_TOKEN)
        .await;
    assert_eq!(
        holders["items"].as_array().unwrap().len() as u64,
        GROUP_LIMIT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_assigns_of_one_licence_let_exactly_one_through() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let license = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let mut users = Vec::new();
    for i in 0..16 {
        users.push(server.user(&tenant, &group, &format!("user {i}")).await);
    }
    let tasks: Vec<_> = users
        .iter()
        .map(|user| {
            let request = build(
                Method::POST,
                &tenant.path(&format!("/licenses/{license}/assign")),
                Some(ROOT_TOKEN),
                Some(json!({"user_id": user})),
                &[],
            );
            tokio::spawn(send(server.router(), request))
        })
        .collect();
    let mut winners = Vec::new();
    for (task, user) in tasks.into_iter().zip(&users) {
        let reply = task.await.expect("the task did not panic");
        if reply.status == StatusCode::OK {
            winners.push(user.clone());
        } else {
            assert_error(reply.status, &reply.body, StatusCode::CONFLICT, "conflict");
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(
        server.license(&tenant, ROOT_TOKEN, &license).await["user_id"],
        winners[0].as_str()
    );
}
