//! Users (create, batch, patch, delete, list, one) and usage, now and as it was.

use crate::support::{assert_error, violation_rules, Server, Tenant, ROOT_TOKEN};
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;

async fn user_ids(server: &Server, tenant: &Tenant, query: &str) -> BTreeSet<String> {
    let (status, body) = server
        .get(&tenant.path(&format!("/users{query}")), &tenant.viewer)
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn creating_a_user_answers_201_and_the_user_reads_back() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let id = "66666666-7777-4888-8999-aaaaaaaaaaaa";
    let (status, body) = server
        .post(
            &tenant.path("/users"),
            &tenant.operator,
            json!({"id": id, "name": "Ada Lovelace", "group_id": group, "extension": "201",
                   "number": "+420123456789"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], id);
    assert_eq!(body["seq"], server.event_count().await);
    assert!(body["version"].is_u64());
    let (status, user) = server
        .get(&tenant.path(&format!("/users/{id}")), &tenant.viewer)
        .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(
        user,
        json!({"id": id, "name": "Ada Lovelace", "group_id": group, "other_group_ids": [],
               "extension": "201", "number": "+420123456789", "removed": false,
               "licenses": [], "restriction": null})
    );
    let unknown = "77777777-8888-4999-8aaa-bbbbbbbbbbbb";
    let (status, body) = server
        .get(&tenant.path(&format!("/users/{unknown}")), ROOT_TOKEN)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_taken_extension_is_a_conflict_and_an_unknown_group_not_found() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server
        .user_with(
            &tenant,
            json!({"name": "Ada", "group_id": group, "extension": "201"}),
        )
        .await;
    let before = server.event_count().await;
    let (status, body) = server
        .post(
            &tenant.path("/users"),
            ROOT_TOKEN,
            json!({"name": "Bob", "group_id": group, "extension": "201"}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["error"]["details"]["extension"], "201");
    assert_eq!(body["error"]["details"]["user_id"], ada.as_str());
    let (status, body) = server
        .post(
            &tenant.path("/users"),
            ROOT_TOKEN,
            json!({"name": "Bob", "group_id": "88888888-9999-4aaa-8bbb-cccccccccccc"}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn a_user_batch_creates_every_user_at_once() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let users: Vec<Value> = (0..50)
        .map(|i| json!({"name": format!("user {i}"), "group_id": group, "extension": format!("{}", 100 + i)}))
        .collect();
    let (status, body) = server
        .post(
            &tenant.path("/users/batch"),
            &tenant.operator,
            json!({"users": users}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ids: BTreeSet<String> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 50);
    assert_eq!(body["seq"], server.event_count().await);
    assert_eq!(user_ids(&server, &tenant, "").await, ids);
}

#[tokio::test]
async fn a_user_batch_with_bad_items_stores_none_and_names_each_bad_index() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server
        .user_with(
            &tenant,
            json!({"name": "Ada", "group_id": group, "extension": "201"}),
        )
        .await;
    let before = server.event_count().await;
    let (status, body) = server
        .post(
            &tenant.path("/users/batch"),
            ROOT_TOKEN,
            json!({"users": [
                {"name": "fine", "group_id": group},
                {"name": "taken extension", "group_id": group, "extension": "201"},
                {"name": "also fine", "group_id": group, "extension": "202"},
                {"name": "same extension twice in the batch", "group_id": group, "extension": "202"},
                {"name": "existing id", "group_id": group, "id": ada},
            ]}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let errors = body["error"]["details"]["errors"]
        .as_array()
        .expect("errors");
    let indexes: Vec<u64> = errors
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 3, 4]);
    for error in errors {
        assert_eq!(error["code"], "conflict");
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(errors[0]["reason"], "extension_taken");
    assert_eq!(errors[2]["reason"], "user_already_exists");
    assert_eq!(server.event_count().await, before);
    assert_eq!(user_ids(&server, &tenant, "").await, set(&[&ada]));

    // An empty batch is malformed whatever the state.
    let (status, body) = server
        .post(
            &tenant.path("/users/batch"),
            ROOT_TOKEN,
            json!({"users": []}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn patching_a_user_renames_and_moves_them() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let sales = server.group(&tenant, "Sales", None).await;
    let support = server.group(&tenant, "Support", None).await;
    let ada = server.user(&tenant, &sales, "Ada").await;
    let phone = server.provision(&tenant, "phone_system", 1).await.remove(0);
    server.assign(&tenant, &phone, &ada).await;
    let path = tenant.path(&format!("/users/{ada}"));
    let (status, body) = server
        .patch(
            &path,
            &tenant.operator,
            json!({"name": "Ada L.", "group_id": support}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    let (_, user) = server.get(&path, ROOT_TOKEN).await;
    assert_eq!(user["name"], "Ada L.");
    assert_eq!(user["group_id"], support.as_str());
    // The usage followed the user.
    assert_eq!(
        server.group_state(&tenant, &support).await["types"]["phone_system"]["used"],
        1
    );
    assert_eq!(
        server.group_state(&tenant, &sales).await["types"],
        json!({})
    );
}

#[tokio::test]
async fn moving_a_user_whose_licences_break_the_new_groups_limit_is_422() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let open = server.group(&tenant, "Open", None).await;
    let full = server.group(&tenant, "Full", None).await;
    server
        .restrict(&tenant, &full, json!({"phone_system": 1}))
        .await;
    let phones = server.provision(&tenant, "phone_system", 2).await;
    let inside = server.user(&tenant, &full, "Inside").await;
    let mover = server.user(&tenant, &open, "Mover").await;
    server.assign(&tenant, &phones[0], &inside).await;
    server.assign(&tenant, &phones[1], &mover).await;
    let before = server.event_count().await;
    let (status, body) = server
        .patch(
            &tenant.path(&format!("/users/{mover}")),
            &tenant.operator,
            json!({"group_id": full}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), ["group_limit_reached"]);
    let violation = &body["error"]["details"]["violations"][0];
    assert_eq!(violation["group_id"], full.as_str());
    assert_eq!(violation["type"], "phone_system");
    assert_eq!(violation["limit"], 1);
    assert_eq!(violation["used"], 1);
    assert_eq!(server.event_count().await, before);
    let (_, user) = server
        .get(&tenant.path(&format!("/users/{mover}")), ROOT_TOKEN)
        .await;
    assert_eq!(user["group_id"], open.as_str());
}

#[tokio::test]
async fn deleting_a_user_holding_licences_is_a_conflict_until_they_are_freed() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server.user(&tenant, &group, "Ada").await;
    let phone = server.provision(&tenant, "phone_system", 1).await.remove(0);
    server.assign(&tenant, &phone, &ada).await;
    let path = tenant.path(&format!("/users/{ada}"));
    let before = server.event_count().await;
    let (status, body) = server.delete(&path, &tenant.operator).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["error"]["details"]["user_id"], ada.as_str());
    assert_eq!(body["error"]["details"]["licenses"], json!([phone]));
    assert_eq!(server.event_count().await, before);

    let (status, _) = server
        .post(
            &tenant.path(&format!("/licenses/{phone}/unassign")),
            ROOT_TOKEN,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server.delete(&path, &tenant.operator).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    assert_eq!(user_ids(&server, &tenant, "").await, BTreeSet::new());
    let (status, body) = server.delete(&path, ROOT_TOKEN).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    // A removed user cannot take a licence.
    let (status, body) = server.assign_as(&tenant, ROOT_TOKEN, &phone, &ada).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_user_list_searches_by_name_extension_number_and_licence_type() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server
        .user_with(
            &tenant,
            json!({"name": "Ada Lovelace", "group_id": group, "extension": "201", "number": "+4401"}),
        )
        .await;
    let bob = server
        .user_with(
            &tenant,
            json!({"name": "Bob Babbage", "group_id": group, "extension": "305", "number": "+4402"}),
        )
        .await;
    let voice = server.provision(&tenant, "voice", 1).await.remove(0);
    server.assign(&tenant, &voice, &bob).await;

    assert_eq!(user_ids(&server, &tenant, "").await, set(&[&ada, &bob]));
    assert_eq!(
        user_ids(&server, &tenant, "?q=lovelace").await,
        set(&[&ada])
    );
    assert_eq!(user_ids(&server, &tenant, "?q=BAB").await, set(&[&bob]));
    assert_eq!(user_ids(&server, &tenant, "?q=305").await, set(&[&bob]));
    assert_eq!(user_ids(&server, &tenant, "?q=4401").await, set(&[&ada]));
    assert_eq!(user_ids(&server, &tenant, "?q=nobody").await, set(&[]));
    assert_eq!(
        user_ids(&server, &tenant, "?type=voice").await,
        set(&[&bob])
    );
    assert_eq!(
        user_ids(&server, &tenant, "?type=phone_system").await,
        set(&[])
    );
    let (status, body) = server
        .get(&tenant.path("/users?type=no_such_type"), ROOT_TOKEN)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (_, body) = server
        .get(&tenant.path(&format!("/users/{bob}")), ROOT_TOKEN)
        .await;
    assert_eq!(
        body["licenses"],
        json!([{"id": voice, "type": "voice", "group_id": group, "addons": []}])
    );
}

#[tokio::test]
async fn usage_counts_owned_assigned_and_free_per_type() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server.user(&tenant, &group, "Ada").await;
    let phones = server.provision(&tenant, "phone_system", 3).await;
    let chats = server.provision(&tenant, "team_chat", 2).await;
    server.provision(&tenant, "voice", 1).await;
    server.assign(&tenant, &phones[0], &ada).await;
    server.attach(&tenant, &phones[0], &chats[0]).await;
    let (status, _) = server
        .delete(
            &tenant.path(&format!("/licenses/{}", phones[2])),
            ROOT_TOKEN,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = server.get(&tenant.path("/usage"), &tenant.viewer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["at"].is_string());
    assert_eq!(
        body["types"],
        json!({
            "phone_system": {"owned": 2, "assigned": 1, "free": 1},
            "team_chat": {"owned": 2, "assigned": 1, "free": 1},
            "voice": {"owned": 1, "assigned": 0, "free": 1},
        })
    );
}

/// When the `index`th history event of `license` was recorded.
async fn recorded_at(
    server: &Server,
    tenant: &Tenant,
    license: &str,
    index: usize,
) -> chrono::DateTime<chrono::Utc> {
    let history = server.license(tenant, &tenant.auditor, license).await;
    let text = history["events"][index]["recorded_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no recorded_at in {history}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn usage_and_group_state_at_a_past_instant_show_the_earlier_state_to_auditors() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server.user(&tenant, &group, "Ada").await;
    let phones = server.provision(&tenant, "phone_system", 3).await;
    let provisioned_at = recorded_at(&server, &tenant, &phones[0], 0).await;
    // Later events must carry a later `recorded_at` (microsecond resolution) than the instant
    // asked about.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let more = server.provision(&tenant, "phone_system", 2).await;
    server.assign(&tenant, &phones[0], &ada).await;
    assert!(
        recorded_at(&server, &tenant, &more[0], 0).await > provisioned_at,
        "the later events were recorded later"
    );
    let provisioned_at = provisioned_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    let usage_then = tenant.path(&format!("/usage?at={provisioned_at}"));
    for token in [&tenant.auditor, &tenant.billing, &tenant.admin] {
        let (status, body) = server.get(&usage_then, token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(body["at"].as_str().unwrap()).unwrap(),
            chrono::DateTime::parse_from_rfc3339(&provisioned_at).unwrap()
        );
        assert_eq!(
            body["types"],
            json!({"phone_system": {"owned": 3, "assigned": 0, "free": 3}})
        );
    }
    assert_eq!(
        server.usage(&tenant).await,
        json!({"phone_system": {"owned": 5, "assigned": 1, "free": 4}})
    );
    for token in [&tenant.viewer, &tenant.operator] {
        let (status, body) = server.get(&usage_then, token).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }

    let state_then = tenant.path(&format!("/groups/{group}/state?at={provisioned_at}"));
    let (status, body) = server.get(&state_then, &tenant.auditor).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["types"], json!({}));
    let now = server.group_state(&tenant, &group).await;
    assert_eq!(now["types"]["phone_system"]["used"], 1);

    // A future instant is the current state: any role may ask.
    let (status, body) = server
        .get(
            &tenant.path("/usage?at=2999-01-01T00:00:00Z"),
            &tenant.viewer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["types"],
        json!({"phone_system": {"owned": 5, "assigned": 1, "free": 4}})
    );
}

#[tokio::test]
async fn a_batch_takes_up_to_ten_thousand_users() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Everyone", None).await;
    let batch = |count: usize| {
        let users: Vec<Value> = (0..count)
            .map(|i| json!({"name": format!("user {i}"), "group_id": group, "extension": format!("{i}")}))
            .collect();
        json!({ "users": users })
    };
    let before = server.event_count().await;
    let (status, body) = server
        .post(&tenant.path("/users/batch"), ROOT_TOKEN, batch(10_001))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(server.event_count().await, before);

    let (status, body) = server
        .post(&tenant.path("/users/batch"), ROOT_TOKEN, batch(10_000))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["ids"].as_array().unwrap().len(), 10_000);
    assert_eq!(server.event_count().await, before + 10_000);
    let (_, page) = server
        .get(&tenant.path("/users?q=9999&limit=1000"), ROOT_TOKEN)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn entitlement_at_a_past_instant_shows_the_add_on_held_then_even_after_a_restart() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Support", None).await;
    let ada = server.user(&tenant, &group, "Ada").await;
    let phone = server.provision(&tenant, "phone_system", 1).await;
    let recording = server.provision(&tenant, "call_recording", 1).await;
    server.assign(&tenant, &phone[0], &ada).await;
    server.attach(&tenant, &phone[0], &recording[0]).await;
    let attached_at = recorded_at(&server, &tenant, &recording[0], 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, body) = server
        .delete(
            &tenant.path(&format!("/licenses/{}/addons/{}", phone[0], recording[0])),
            ROOT_TOKEN,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let attached_at = attached_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let then = tenant.path(&format!(
        "/users/{ada}/entitlements/call_recording?at={attached_at}"
    ));
    let now = tenant.path(&format!("/users/{ada}/entitlements/call_recording"));

    let server = server.restart().await;
    let (status, body) = server.get(&then, &tenant.auditor).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], true, "{body}");
    let held = &body["checks"][1];
    assert_eq!(held["rule"], "holds_license", "{body}");
    assert_eq!(
        held["detail"],
        format!(
            "holds call_recording add-on {} on phone_system licence {}",
            recording[0], phone[0]
        )
    );
    let (status, body) = server.get(&now, &tenant.auditor).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], false, "{body}");
    assert_eq!(body["blocked_by"]["rule"], "holds_license", "{body}");
}

#[tokio::test]
async fn patching_a_users_extension_and_number_reads_back_and_finds_their_licences_by_number() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server
        .user_with(
            &tenant,
            json!({"name": "Ada", "group_id": group, "extension": "201", "number": "+420601000201"}),
        )
        .await;
    let bob = server
        .user_with(
            &tenant,
            json!({"name": "Bob", "group_id": group, "extension": "202"}),
        )
        .await;
    let phones = server.provision(&tenant, "phone_system", 2).await;
    server.assign(&tenant, &phones[0], &ada).await;
    server.assign(&tenant, &phones[1], &bob).await;
    let ada_path = tenant.path(&format!("/users/{ada}"));

    // Bob's extension is refused, naming him; nothing changes.
    let events = server.event_count().await;
    let (status, body) = server
        .patch(&ada_path, &tenant.operator, json!({"extension": "202"}))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(
        body["error"]["details"]["reason"], "extension_taken",
        "{body}"
    );
    assert_eq!(body["error"]["details"]["user_id"], bob.as_str(), "{body}");
    assert_eq!(server.event_count().await, events);

    let (status, body) = server
        .patch(
            &ada_path,
            &tenant.operator,
            json!({"extension": "301", "number": "+420601000301"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, user) = server.get(&ada_path, &tenant.viewer).await;
    assert_eq!(user["extension"], "301", "{user}");
    assert_eq!(user["number"], "+420601000301", "{user}");
    let by = |query: &'static str| {
        let server = &server;
        let tenant = &tenant;
        async move {
            let (status, page) = server
                .get(&tenant.path(&format!("/licenses?{query}")), &tenant.viewer)
                .await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|l| l["id"].as_str().expect("id").to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(by("number=%2B420601000301").await, vec![phones[0].clone()]);
    assert_eq!(by("number=%2B420601000201").await, Vec::<String>::new());
    assert_eq!(by("extension=201").await, Vec::<String>::new());
    assert_eq!(by("extension=301").await, vec![phones[0].clone()]);
    // Holder filters combine: Ada's number with Bob's extension matches nobody.
    assert_eq!(
        by("number=%2B420601000301&extension=202").await,
        Vec::<String>::new()
    );

    // null clears the number; the old extension is free for Bob.
    let (status, body) = server
        .patch(&ada_path, &tenant.operator, json!({"number": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, user) = server.get(&ada_path, &tenant.viewer).await;
    assert_eq!(user["extension"], "301", "{user}");
    assert!(user["number"].is_null(), "{user}");
    let (status, body) = server
        .patch(
            &tenant.path(&format!("/users/{bob}")),
            &tenant.operator,
            json!({"extension": "201"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .patch(&ada_path, &tenant.operator, json!({"extension": "2 01"}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}
