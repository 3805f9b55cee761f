//! Per-user licence settings (issue 16 item 2) through the real router: set and cleared with
//! `PUT`/`DELETE /users/{u}/restriction`, refused with every violated rule, shown in the user
//! (and as of a past instant), explained when they block, previewed by what-if and audited.

use crate::support::{assert_error, violation_rules, Server, Tenant, ROOT_TOKEN};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// HQ (phone_system limit 5, window 2020–2100) → Sales, Alice in Sales, two phone_system
/// and one call_recording licence.
struct World {
    server: Server,
    tenant: Tenant,
    hq: String,
    sales: String,
    alice: String,
    phones: Vec<String>,
    recording: String,
}

async fn world() -> World {
    let server = Server::start();
    let tenant = server.tenant().await;
    let hq = server.group(&tenant, "HQ", None).await;
    let sales = server.group(&tenant, "Sales", Some(&hq)).await;
    let (status, body) = server
        .put(
            &tenant.path(&format!("/groups/{hq}/restriction")),
            ROOT_TOKEN,
            json!({"enabled": true, "limits": {"phone_system": 5},
                   "valid_from": "2020-01-01T00:00:00Z", "valid_until": "2100-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alice = server.user(&tenant, &sales, "Alice").await;
    let phones = server.provision(&tenant, "phone_system", 2).await;
    let recording = server
        .provision(&tenant, "call_recording", 1)
        .await
        .remove(0);
    World {
        server,
        tenant,
        hq,
        sales,
        alice,
        phones,
        recording,
    }
}

impl World {
    fn restriction_path(&self) -> String {
        self.tenant
            .path(&format!("/users/{}/restriction", self.alice))
    }

    async fn set(&self, body: Value) -> (StatusCode, Value) {
        self.server
            .put(&self.restriction_path(), &self.tenant.admin, body)
            .await
    }

    async fn user(&self, query: &str, token: &str) -> Value {
        let path = format!("/users/{}{query}", self.alice);
        let (status, body) = self.server.get(&self.tenant.path(&path), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn entitlement(&self, code: &str) -> Value {
        let path = format!("/users/{}/entitlements/{code}", self.alice);
        let (status, body) = self
            .server
            .get(&self.tenant.path(&path), &self.tenant.viewer)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

#[tokio::test]
async fn personal_settings_are_set_shown_in_the_user_and_cleared() {
    let w = world().await;
    w.server.assign(&w.tenant, &w.phones[0], &w.alice).await;
    let (status, body) = w
        .set(json!({"limits": {"phone_system": 1, "call_recording": 0},
                    "valid_from": "2021-01-01T00:00:00Z", "valid_until": "2099-01-01T00:00:00Z"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let user = w.user("", &w.tenant.viewer).await;
    assert_eq!(
        user["restriction"],
        json!({"limits": {"call_recording": 0, "phone_system": 1},
               "used": {"call_recording": 0, "phone_system": 1},
               "valid_from": "2021-01-01T00:00:00Z", "valid_until": "2099-01-01T00:00:00Z"})
    );
    let (status, body) = w
        .server
        .delete(&w.restriction_path(), &w.tenant.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        w.user("", &w.tenant.viewer).await["restriction"],
        Value::Null
    );
}

#[tokio::test]
async fn an_assignment_beyond_the_personal_limit_is_a_422_naming_the_user() {
    let w = world().await;
    let (status, _) = w.set(json!({"limits": {"phone_system": 0}})).await;
    assert_eq!(status, StatusCode::OK);
    let before = w.server.event_count().await;
    let (status, body) = w
        .server
        .assign_as(&w.tenant, &w.tenant.operator, &w.phones[0], &w.alice)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    let v = &body["error"]["details"]["violations"][0];
    assert_eq!(v["rule"], "user_limit_reached");
    assert_eq!(v["user_id"], w.alice);
    assert_eq!(
        (v["limit"].clone(), v["used"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(w.server.event_count().await, before, "nothing stored");
}

#[tokio::test]
async fn personal_settings_outside_the_groups_are_refused_with_every_rule_and_nothing_stored() {
    let w = world().await;
    w.server.assign(&w.tenant, &w.phones[0], &w.alice).await;
    let before = w.server.event_count().await;
    let (status, body) = w
        .set(json!({"limits": {"phone_system": 6, "call_recording": 0},
                    "valid_from": "2019-01-01T00:00:00Z"}))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    let mut rules = violation_rules(&body);
    rules.sort();
    assert_eq!(
        rules,
        vec!["user_limit_exceeds_group", "user_window_outside_group"]
    );
    let (status, body) = w.set(json!({"limits": {"phone_system": 0}})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), vec!["user_limit_below_usage"]);
    let exceeds = w.set(json!({"limits": {"phone_system": 9}})).await.1;
    let v = &exceeds["error"]["details"]["violations"][0];
    assert_eq!(v["group_id"], w.hq);
    assert_eq!(v["user_id"], w.alice);
    assert_eq!(w.server.event_count().await, before, "nothing stored");
}

#[tokio::test]
async fn bad_personal_settings_are_a_400_and_need_an_admin() {
    let w = world().await;
    let (status, body) = w.set(json!({"limits": {"Not A Code": 1}})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, body) = w.set(json!({"valid_until": "tomorrow"})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, body) = w.set(json!({"limits": {"phone_system": -1}})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, body) = w
        .server
        .put(&w.restriction_path(), &w.tenant.operator, json!({}))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let unknown = w
        .tenant
        .path(&format!("/users/{}/restriction", uuid::Uuid::new_v4()));
    let (status, body) = w.server.put(&unknown, &w.tenant.admin, json!({})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn an_expired_personal_window_blocks_the_user_and_explain_names_the_rule_and_the_user() {
    let w = world().await;
    w.server.assign(&w.tenant, &w.phones[0], &w.alice).await;
    let (status, body) = w
        .set(json!({"valid_from": "2021-01-01T00:00:00Z", "valid_until": "2022-01-01T00:00:00Z"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = w.entitlement("phone_system").await;
    assert_eq!(answer["allowed"], false, "{answer}");
    assert_eq!(answer["blocked_by"]["rule"], "user_window_expired");
    assert_eq!(answer["blocked_by"]["user_id"], w.alice);
    assert_eq!(answer["blocked_by"]["group_id"], Value::Null);
    let (status, body) = w.set(json!({"valid_from": "2090-01-01T00:00:00Z"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = w.entitlement("phone_system").await;
    assert_eq!(answer["blocked_by"]["rule"], "user_window_not_started");
    // The groups' windows still follow the personal one, in order.
    let rules: Vec<&str> = answer["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["rule"].as_str().expect("rule"))
        .collect();
    assert_eq!(
        rules,
        vec![
            "user_active",
            "holds_license",
            "excludes",
            "user_window_not_started",
            "group_window",
            "group_window"
        ]
    );
}

#[tokio::test]
async fn a_full_personal_limit_is_what_explain_names_for_a_user_without_the_type() {
    let w = world().await;
    w.server.assign(&w.tenant, &w.phones[0], &w.alice).await;
    let (status, _) = w.set(json!({"limits": {"call_recording": 0}})).await;
    assert_eq!(status, StatusCode::OK);
    let answer = w.entitlement("call_recording").await;
    assert_eq!(answer["allowed"], false);
    let blocked = &answer["blocked_by"];
    assert_eq!(blocked["rule"], "user_limit_reached", "{answer}");
    assert_eq!(blocked["user_id"], w.alice);
    assert_eq!(
        (blocked["limit"].clone(), blocked["used"].clone()),
        (json!(0), json!(0))
    );
    // Holding the type, the limit check passes and shows the counts.
    let held = w.entitlement("phone_system").await;
    assert_eq!(held["allowed"], true, "{held}");
    let (_, body) = w.set(json!({"limits": {"phone_system": 1}})).await;
    assert!(body["seq"].is_u64(), "{body}");
    let held = w.entitlement("phone_system").await;
    let limit = held["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["rule"] == "user_limit")
        .cloned()
        .expect("a user_limit check");
    assert_eq!(
        (limit["limit"].clone(), limit["used"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(limit["passed"], true);
}

#[tokio::test]
async fn a_group_restriction_under_a_users_personal_limit_is_refused() {
    let w = world().await;
    let (status, _) = w.set(json!({"limits": {"phone_system": 1}})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = w
        .server
        .put(
            &w.tenant.path(&format!("/groups/{}/restriction", w.sales)),
            &w.tenant.admin,
            json!({"enabled": true, "limits": {"phone_system": 0}}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), vec!["user_limit_exceeds_group"]);
    assert_eq!(
        body["error"]["details"]["violations"][0]["user_id"],
        w.alice
    );
}

#[tokio::test]
async fn what_if_previews_a_personal_window_and_names_who_would_lose_what() {
    let w = world().await;
    w.server.assign(&w.tenant, &w.phones[0], &w.alice).await;
    w.server.attach(&w.tenant, &w.phones[0], &w.recording).await;
    let (status, body) = w
        .server
        .post(
            &w.tenant.path("/what-if"),
            &w.tenant.admin,
            json!({"commands": [{"op": "set_user_restriction", "user_id": w.alice,
                                 "valid_until": "2021-06-01T00:00:00Z"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    let lost: Vec<(String, String)> = body["would_block"]
        .as_array()
        .expect("would_block")
        .iter()
        .map(|b| {
            (
                b["type"].as_str().unwrap_or("").to_string(),
                b["rule"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        lost,
        vec![
            (
                "call_recording".to_string(),
                "user_window_expired".to_string()
            ),
            (
                "phone_system".to_string(),
                "user_window_expired".to_string()
            )
        ]
    );
    let refused = w
        .server
        .post(
            &w.tenant.path("/what-if"),
            &w.tenant.admin,
            json!({"commands": [{"op": "set_user_restriction", "user_id": w.alice,
                                 "limits": {"phone_system": 7}}]}),
        )
        .await
        .1;
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["violations"][0]["rule"], "user_limit_exceeds_group");
    assert_eq!(
        w.user("", &w.tenant.viewer).await["restriction"],
        Value::Null,
        "nothing written"
    );
}

#[tokio::test]
async fn the_user_as_of_a_past_instant_shows_the_settings_then_and_audit_finds_the_events() {
    let w = world().await;
    let (status, _) = w.set(json!({"limits": {"phone_system": 1}})).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, _) = w
        .server
        .delete(&w.restriction_path(), &w.tenant.admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    let at = between.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let query = format!("?at={}", at.replace('+', "%2B"));
    let then = w.user(&query, &w.tenant.auditor).await;
    assert_eq!(
        then["restriction"]["limits"],
        json!({"phone_system": 1}),
        "{then}"
    );
    assert_eq!(
        w.user("", &w.tenant.auditor).await["restriction"],
        Value::Null
    );
    let (status, body) = w
        .server
        .get(
            &w.tenant.path(&format!("/users/{}{query}", w.alice)),
            &w.tenant.viewer,
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    let path = w.tenant.path(&format!("/events?user_id={}", w.alice));
    let (status, events) = w.server.get(&path, &w.tenant.auditor).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "user_created",
            "user_restriction_set",
            "user_restriction_cleared"
        ]
    );
    assert_eq!(
        events["items"][1]["data"],
        json!({"user": w.alice, "restriction": {"limits": {"phone_system": 1},
               "valid_from": null, "valid_until": null}})
    );
}

#[tokio::test]
async fn a_dealer_sets_personal_settings_inside_its_subtree_only() {
    let w = world().await;
    let elsewhere = w.server.group(&w.tenant, "Elsewhere", None).await;
    let key = |group: String| {
        let server = &w.server;
        let path = w.tenant.path("/keys");
        async move {
            let (status, body) = server
                .post(
                    &path,
                    ROOT_TOKEN,
                    json!({"role": "admin", "name": "dealer", "group_id": group}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["token"].as_str().expect("token").to_string()
        }
    };
    let inside = key(w.sales.clone()).await;
    let outside = key(elsewhere).await;
    let body = json!({"limits": {"phone_system": 1}});
    let (status, answer) = w
        .server
        .put(&w.restriction_path(), &outside, body.clone())
        .await;
    assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    let (status, answer) = w.server.put(&w.restriction_path(), &inside, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}
