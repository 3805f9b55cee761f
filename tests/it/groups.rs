//! Groups: create, rename, move, restrictions (every violated rule listed, nothing stored) and
//! the group state with remainders and blocking windows.

use crate::support::{assert_error, violation_rules, Server, ROOT_TOKEN};
use axum::http::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[tokio::test]
async fn creating_a_group_answers_201_and_honours_a_client_id() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let id = "44444444-5555-4666-8777-888888888888";
    let (status, body) = server
        .post(
            &tenant.path("/groups"),
            &tenant.admin,
            json!({"id": id, "name": "Sales"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], id);
    assert_eq!(body["seq"], server.event_count().await);
    assert!(body["version"].is_u64());
    let child = server.group(&tenant, "Inside sales", Some(id)).await;

    let (status, group) = server
        .get(&tenant.path(&format!("/groups/{id}")), &tenant.viewer)
        .await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["name"], "Sales");
    assert_eq!(group["parent_id"], Value::Null);
    assert_eq!(group["children"], json!([child]));

    let before = server.event_count().await;
    let (status, body) = server
        .post(
            &tenant.path("/groups"),
            ROOT_TOKEN,
            json!({"id": id, "name": "Again"}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let unknown = "55555555-6666-4777-8888-999999999999";
    let (status, body) = server
        .post(
            &tenant.path("/groups"),
            ROOT_TOKEN,
            json!({"name": "Orphan", "parent_id": unknown}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = server
        .get(&tenant.path(&format!("/groups/{unknown}")), ROOT_TOKEN)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn patching_a_group_renames_and_moves_it_and_null_parent_makes_it_a_root() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let sales = server.group(&tenant, "Sales", None).await;
    let support = server.group(&tenant, "Support", None).await;
    let team = server.group(&tenant, "Team", Some(&sales)).await;
    let path = tenant.path(&format!("/groups/{team}"));

    let (status, body) = server
        .patch(&path, &tenant.admin, json!({"name": "Team A"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    let (_, group) = server.get(&path, ROOT_TOKEN).await;
    assert_eq!(group["name"], "Team A");
    assert_eq!(group["parent_id"], sales.as_str());

    let (status, body) = server
        .patch(&path, &tenant.admin, json!({"parent_id": support}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, group) = server.get(&path, ROOT_TOKEN).await;
    assert_eq!(group["parent_id"], support.as_str());
    let (_, old_parent) = server
        .get(&tenant.path(&format!("/groups/{sales}")), ROOT_TOKEN)
        .await;
    assert_eq!(old_parent["children"], json!([]));

    let (status, body) = server
        .patch(&path, &tenant.admin, json!({"parent_id": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, group) = server.get(&path, ROOT_TOKEN).await;
    assert_eq!(group["parent_id"], Value::Null);
    assert_eq!(group["name"], "Team A", "a move keeps the name");
}

#[tokio::test]
async fn moving_a_group_under_its_own_subtree_is_422_group_cycle() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let top = server.group(&tenant, "Top", None).await;
    let middle = server.group(&tenant, "Middle", Some(&top)).await;
    let bottom = server.group(&tenant, "Bottom", Some(&middle)).await;
    let before = server.event_count().await;
    for new_parent in [&bottom, &middle, &top] {
        let (status, body) = server
            .patch(
                &tenant.path(&format!("/groups/{top}")),
                ROOT_TOKEN,
                json!({"parent_id": new_parent}),
            )
            .await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_violation",
        );
        assert_eq!(violation_rules(&body), ["group_cycle"]);
    }
    assert_eq!(server.event_count().await, before);
    let (_, group) = server
        .get(&tenant.path(&format!("/groups/{top}")), ROOT_TOKEN)
        .await;
    assert_eq!(group["parent_id"], Value::Null);
}

#[tokio::test]
async fn a_restriction_is_stored_and_shown_on_the_group() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let restriction = json!({
        "enabled": true,
        "limits": {"phone_system": 10, "sip_number": 4, "mobile_app": 4},
        "valid_from": "2024-01-01T00:00:00Z",
        "valid_until": "2124-01-01T00:00:00Z",
        "reminder": {"days_before": 30, "frequency": "weekly"},
    });
    let (status, body) = server
        .put(
            &tenant.path(&format!("/groups/{group}/restriction")),
            &tenant.admin,
            restriction.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    let (_, stored) = server
        .get(&tenant.path(&format!("/groups/{group}")), &tenant.viewer)
        .await;
    let mut shown = restriction;
    shown["features"] = json!({});
    assert_eq!(
        stored["restriction"], shown,
        "as sent, with the features it switches"
    );
}

#[tokio::test]
async fn a_restriction_breaking_rules_lists_every_violation_and_stores_nothing() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let parent = server.group(&tenant, "Parent", None).await;
    let child = server.group(&tenant, "Child", Some(&parent)).await;
    let (status, body) = server
        .put(
            &tenant.path(&format!("/groups/{parent}/restriction")),
            ROOT_TOKEN,
            json!({
                "enabled": true,
                "limits": {"phone_system": 5, "call_group": 5, "sip_number": 2},
                "valid_from": "2020-01-01T00:00:00Z",
                "valid_until": "2120-01-01T00:00:00Z",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let phones = server.provision(&tenant, "phone_system", 2).await;
    for (index, id) in phones.iter().enumerate() {
        let user = server.user(&tenant, &child, &format!("user {index}")).await;
        server.assign(&tenant, id, &user).await;
    }
    let before = server.event_count().await;
    let child_before = server.group_state(&tenant, &child).await;

    let (status, body) = server
        .put(
            &tenant.path(&format!("/groups/{child}/restriction")),
            ROOT_TOKEN,
            json!({
                "enabled": true,
                // phone_system 1 < 2 used; call_group 10 > parent's 5; sip_number 1 < mobile_app 3.
                "limits": {"phone_system": 1, "call_group": 10, "sip_number": 1, "mobile_app": 3},
                // Starts before the parent's window and ends before it starts.
                "valid_from": "2019-01-01T00:00:00Z",
                "valid_until": "2018-01-01T00:00:00Z",
            }),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    let rules: BTreeSet<String> = violation_rules(&body).into_iter().collect();
    let expected: BTreeSet<String> = [
        "limit_below_usage",
        "child_limit_exceeds_parent",
        "sip_number_below_mobile_app",
        "window_reversed",
        "window_outside_parent",
    ]
    .map(String::from)
    .into_iter()
    .collect();
    assert_eq!(rules, expected, "{body}");
    let violations = body["error"]["details"]["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 5, "{body}");
    let below = violations
        .iter()
        .find(|v| v["rule"] == "limit_below_usage")
        .unwrap();
    assert_eq!(below["group_id"], child.as_str());
    assert_eq!(below["type"], "phone_system");
    assert_eq!(below["limit"], 1);
    assert_eq!(below["used"], 2);
    for v in violations {
        assert!(!v["message"].as_str().unwrap().is_empty());
    }

    assert_eq!(server.event_count().await, before);
    assert_eq!(server.group_state(&tenant, &child).await, child_before);
    let (_, stored) = server
        .get(&tenant.path(&format!("/groups/{child}")), ROOT_TOKEN)
        .await;
    assert_eq!(stored["restriction"], Value::Null);
}

#[tokio::test]
async fn a_restriction_naming_an_unknown_type_is_a_bad_request() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let before = server.event_count().await;
    let path = tenant.path(&format!("/groups/{group}/restriction"));
    for body in [
        json!({"enabled": true, "limits": {"no_such_type": 1}}),
        json!({"enabled": true, "limits": {"phone_system": -1}}),
        json!({"enabled": "yes"}),
        json!({"enabled": true, "valid_until": "tomorrow"}),
        json!({"enabled": true, "reminder": {"days_before": 3, "frequency": "hourly"}}),
    ] {
        let (status, answer) = server.put(&path, ROOT_TOKEN, body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn group_state_shows_limits_usage_and_the_effective_remainder_of_ancestors() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let parent = server.group(&tenant, "Parent", None).await;
    let child = server.group(&tenant, "Child", Some(&parent)).await;
    server
        .restrict(&tenant, &parent, json!({"phone_system": 5}))
        .await;
    let phones = server.provision(&tenant, "phone_system", 2).await;
    for (index, id) in phones.iter().enumerate() {
        let user = server.user(&tenant, &child, &format!("user {index}")).await;
        server.assign(&tenant, id, &user).await;
    }

    let (status, body) = server
        .get(
            &tenant.path(&format!("/groups/{child}/state")),
            &tenant.viewer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["group"]["id"], child.as_str());
    assert_eq!(body["group"]["parent_id"], parent.as_str());
    assert_eq!(body["restriction"], Value::Null);
    assert_eq!(
        body["types"],
        json!({"phone_system": {"limit": null, "used": 2, "remaining": null,
                                "effective_remaining": 3, "limited_by": parent}})
    );
    assert_eq!(body["blocked_by"], json!([]));
    assert_eq!(body["valid_from"], Value::Null);
    assert_eq!(body["valid_until"], Value::Null);

    let state = server.group_state(&tenant, &parent).await;
    assert_eq!(
        state["types"],
        json!({"phone_system": {"limit": 5, "used": 2, "remaining": 3,
                                "effective_remaining": 3, "limited_by": parent}})
    );
    assert_eq!(state["restriction"]["limits"], json!({"phone_system": 5}));
}

#[tokio::test]
async fn an_expired_ancestor_window_blocks_the_group_until_it_is_extended() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let parent = server.group(&tenant, "Parent", None).await;
    let child = server.group(&tenant, "Child", Some(&parent)).await;
    let restriction_path = tenant.path(&format!("/groups/{parent}/restriction"));
    let (status, body) = server
        .put(
            &restriction_path,
            ROOT_TOKEN,
            json!({"enabled": true, "limits": {}, "valid_from": "2020-01-01T00:00:00Z",
                   "valid_until": "2021-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let state = server.group_state(&tenant, &child).await;
    assert_eq!(
        state["blocked_by"],
        json!([{"rule": "window_expired", "group_id": parent, "group_name": "Parent",
                "valid_from": "2020-01-01T00:00:00Z", "valid_until": "2021-01-01T00:00:00Z"}])
    );
    assert_eq!(state["valid_from"], "2020-01-01T00:00:00Z");
    assert_eq!(state["valid_until"], "2021-01-01T00:00:00Z");

    let (status, _) = server
        .put(
            &restriction_path,
            ROOT_TOKEN,
            json!({"enabled": true, "limits": {}, "valid_from": "2020-01-01T00:00:00Z",
                   "valid_until": "2120-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let state = server.group_state(&tenant, &child).await;
    assert_eq!(state["blocked_by"], json!([]));

    // A future instant evaluates the current state then; any role may ask.
    let (status, body) = server
        .get(
            &tenant.path(&format!("/groups/{child}/state?at=2121-06-01T00:00:00Z")),
            &tenant.viewer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["at"], "2121-06-01T00:00:00Z");
    assert_eq!(body["blocked_by"][0]["rule"], "window_expired");
    assert_eq!(body["blocked_by"][0]["group_id"], parent.as_str());
}

#[tokio::test]
async fn group_state_in_the_past_is_for_auditors() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let path = tenant.path(&format!("/groups/{group}/state?at=2000-01-01T00:00:00Z"));
    for token in [&tenant.viewer, &tenant.operator, &tenant.billing] {
        let (status, body) = server.get(&path, token).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    // The group did not exist yet in 2000.
    let (status, body) = server.get(&path, &tenant.auditor).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_full_limit_is_what_blocks_a_user_without_the_licence_with_limit_and_used() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let hq = server.group(&tenant, "HQ", None).await;
    let sales = server.group(&tenant, "Sales", Some(&hq)).await;
    server
        .restrict(&tenant, &hq, json!({"phone_system": 1}))
        .await;
    let ann = server.user(&tenant, &sales, "Ann").await;
    let bob = server.user(&tenant, &sales, "Bob").await;
    let licenses = server.provision(&tenant, "phone_system", 2).await;
    server.assign(&tenant, &licenses[0], &ann).await;

    let (status, answer) = server
        .get(
            &tenant.path(&format!("/users/{bob}/entitlements/phone_system")),
            &tenant.viewer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["allowed"], false, "{answer}");
    let blocked = &answer["blocked_by"];
    assert_eq!(blocked["rule"], "limit_reached", "{answer}");
    assert_eq!(blocked["group_id"], json!(hq), "{answer}");
    assert_eq!(blocked["limit"], 1, "{answer}");
    assert_eq!(blocked["used"], 1, "{answer}");
    // Every check is still listed in order; HQ's window check carries its limit too.
    let rules: Vec<&str> = answer["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["rule"].as_str())
        .collect();
    assert_eq!(
        rules,
        [
            "user_active",
            "holds_license",
            "excludes",
            "group_window",
            "group_window",
            "limit_reached"
        ],
        "{answer}"
    );
    assert_eq!(answer["checks"][4]["limit"], 1, "{answer}");
    assert!(answer["checks"][3].get("limit").is_none(), "{answer}");

    // The holder is entitled: the full limit does not block what is already held.
    let (_, held) = server
        .get(
            &tenant.path(&format!("/users/{ann}/entitlements/phone_system")),
            &tenant.viewer,
        )
        .await;
    assert_eq!(held["allowed"], true, "{held}");
    // With room under the limit, the answer for Bob is the plain holds_license again.
    server
        .restrict(&tenant, &hq, json!({"phone_system": 2}))
        .await;
    let (_, answer) = server
        .get(
            &tenant.path(&format!("/users/{bob}/entitlements/phone_system")),
            &tenant.viewer,
        )
        .await;
    assert_eq!(answer["blocked_by"]["rule"], "holds_license", "{answer}");
    assert!(answer["blocked_by"].get("limit").is_none(), "{answer}");
}
