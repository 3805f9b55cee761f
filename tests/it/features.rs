//! Features (issue 16 item 4) through the real router: defined in the catalogue as
//! `kind: "feature"`, switched on or off by groups' restrictions, explained, previewed,
//! audited and answered as of a past instant.

use crate::support::{assert_error, violation_rules, Server, Tenant, ROOT_TOKEN};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// HQ → Sales with Alice in Sales, and UKEY2 defined (off by default).
struct World {
    server: Server,
    tenant: Tenant,
    hq: String,
    sales: String,
    alice: String,
}

async fn world() -> World {
    let server = Server::start();
    let tenant = server.tenant().await;
    let (status, body) = server
        .put(
            &tenant.path("/catalog/ukey2"),
            &tenant.admin,
            json!({"kind": "feature", "name": "UKEY2"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let hq = server.group(&tenant, "HQ", None).await;
    let sales = server.group(&tenant, "Sales", Some(&hq)).await;
    let alice = server.user(&tenant, &sales, "Alice").await;
    World {
        server,
        tenant,
        hq,
        sales,
        alice,
    }
}

impl World {
    async fn switch(&self, group: &str, features: Value) -> (StatusCode, Value) {
        self.server
            .put(
                &self.tenant.path(&format!("/groups/{group}/restriction")),
                &self.tenant.admin,
                json!({"enabled": true, "limits": {}, "features": features}),
            )
            .await
    }

    async fn switched(&self, group: &str, features: Value) {
        let (status, body) = self.switch(group, features).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn entitlement(&self, query: &str, token: &str) -> Value {
        let path = format!("/users/{}/entitlements/ukey2{query}", self.alice);
        let (status, body) = self.server.get(&self.tenant.path(&path), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

#[tokio::test]
async fn a_feature_is_defined_in_the_catalogue_as_kind_feature_and_changed() {
    let w = world().await;
    let (status, body) = w
        .server
        .put(
            &w.tenant.path("/catalog/ukey2"),
            &w.tenant.admin,
            json!({"kind": "feature", "name": "UKEY2 access", "enabled_by_default": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a change: {body}");
    let (_, catalogue) = w
        .server
        .get(&w.tenant.path("/catalog"), &w.tenant.viewer)
        .await;
    let items = catalogue["items"].as_array().expect("items");
    let ukey2 = items
        .iter()
        .find(|t| t["code"] == "ukey2")
        .expect("ukey2 in the catalogue");
    assert_eq!(
        ukey2,
        &json!({
            "code": "ukey2", "kind": "feature", "name": "UKEY2 access",
            "enabled_by_default": true, "attaches_to": [], "requires_any": [], "excludes": [],
        })
    );
    let codes: Vec<&str> = items.iter().filter_map(|t| t["code"].as_str()).collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(codes, sorted, "one list in code order");
}

#[tokio::test]
async fn malformed_feature_definitions_and_kind_changes_are_refused() {
    let w = world().await;
    let cases = [
        ("/catalog/face_id", json!({"kind": "feature"})),
        (
            "/catalog/face_id",
            json!({"kind": "feature", "name": "Face", "attaches_to": ["phone_system"]}),
        ),
        (
            "/catalog/fax",
            json!({"kind": "addon", "attaches_to": ["phone_system"], "name": "Fax"}),
        ),
    ];
    for (path, body) in cases {
        let (status, reply) = w
            .server
            .put(&w.tenant.path(path), &w.tenant.admin, body)
            .await;
        assert_error(status, &reply, StatusCode::BAD_REQUEST, "bad_request");
    }
    let events = w.server.event_count().await;
    for (path, body) in [
        (
            "/catalog/voice",
            json!({"kind": "feature", "name": "Voice"}),
        ),
        ("/catalog/ukey2", json!({"kind": "base"})),
    ] {
        let (status, reply) = w
            .server
            .put(&w.tenant.path(path), &w.tenant.admin, body)
            .await;
        assert_error(
            status,
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_violation",
        );
        assert_eq!(violation_rules(&reply), vec!["catalogue_kind_change"]);
    }
    assert_eq!(w.server.event_count().await, events, "nothing stored");
}

#[tokio::test]
async fn a_feature_cannot_be_provisioned_priced_assigned_attached_or_limited() {
    let w = world().await;
    w.server.provision(&w.tenant, "phone_system", 1).await;
    let events = w.server.event_count().await;
    let attempts = [
        (
            "POST",
            "/licenses".to_string(),
            json!({"type": "ukey2", "quantity": 1}),
        ),
        (
            "PUT",
            "/subscription/ukey2".to_string(),
            json!({"quantity": 2}),
        ),
        (
            "PUT",
            "/prices/ukey2".to_string(),
            json!({"unit_price_minor": 100, "effective_from": "2020-01-01T00:00:00Z"}),
        ),
        (
            "POST",
            "/assignments".to_string(),
            json!({"user_id": w.alice, "type": "ukey2"}),
        ),
        (
            "POST",
            "/assignments".to_string(),
            json!({"user_id": w.alice, "type": "phone_system", "addons": ["ukey2"]}),
        ),
        (
            "PUT",
            format!("/groups/{}/restriction", w.hq),
            json!({"enabled": true, "limits": {"ukey2": 3}}),
        ),
        (
            "PUT",
            "/catalog/fax".to_string(),
            json!({"kind": "addon", "attaches_to": ["phone_system"], "requires_any": ["ukey2"]}),
        ),
    ];
    for (method, path, body) in attempts {
        let path = w.tenant.path(&path);
        let (status, reply) = match method {
            "POST" => w.server.post(&path, &w.tenant.admin, body).await,
            _ => w.server.put(&path, &w.tenant.admin, body).await,
        };
        assert_error(
            status,
            &reply,
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_violation",
        );
        assert_eq!(
            violation_rules(&reply),
            vec!["feature_has_no_units"],
            "{method} {path}"
        );
        assert_eq!(reply["error"]["details"]["violations"][0]["type"], "ukey2");
    }
    assert_eq!(w.server.event_count().await, events, "nothing stored");
}

#[tokio::test]
async fn switching_an_unknown_code_or_a_licence_type_is_refused() {
    let w = world().await;
    let (status, body) = w.switch(&w.hq, json!({"face_id": true})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(body["error"]["details"]["reason"], "unknown_feature");
    let (status, body) = w.switch(&w.hq, json!({"voice": true})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), vec!["not_a_feature"]);
    let (status, body) = w.switch(&w.hq, json!({"Not A Code": true})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn a_feature_switched_off_above_cannot_be_switched_on_below() {
    let w = world().await;
    w.switched(&w.hq, json!({"ukey2": false})).await;
    let events = w.server.event_count().await;
    let (status, body) = w.switch(&w.sales, json!({"ukey2": true})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), vec!["feature_disabled_above"]);
    assert_eq!(body["error"]["details"]["violations"][0]["group_id"], w.hq);
    assert_eq!(w.server.event_count().await, events);
}

#[tokio::test]
async fn group_answers_show_the_switches_and_group_state_the_effective_value() {
    let w = world().await;
    w.switched(&w.hq, json!({"ukey2": true})).await;
    w.switched(&w.sales, json!({})).await;
    let (status, group) = w
        .server
        .get(
            &w.tenant.path(&format!("/groups/{}", w.hq)),
            &w.tenant.viewer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{group}");
    assert_eq!(group["restriction"]["features"], json!({"ukey2": true}));
    let state = w.server.group_state(&w.tenant, &w.sales).await;
    assert_eq!(
        state["features"]["ukey2"],
        json!({"own": null, "enabled": true, "group_id": w.hq, "group_name": "HQ"})
    );
    // A restriction set without `features` keeps them; clearing it drops them.
    w.server
        .restrict(&w.tenant, &w.hq, json!({"phone_system": 5}))
        .await;
    let state = w.server.group_state(&w.tenant, &w.hq).await;
    assert_eq!(state["restriction"]["features"], json!({"ukey2": true}));
    assert_eq!(state["features"]["ukey2"]["own"], true);
    let (status, body) = w
        .server
        .delete(
            &w.tenant.path(&format!("/groups/{}/restriction", w.hq)),
            &w.tenant.admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let state = w.server.group_state(&w.tenant, &w.sales).await;
    assert_eq!(
        state["features"]["ukey2"],
        json!({"own": null, "enabled": false, "group_id": null, "group_name": null})
    );
}

#[tokio::test]
async fn explain_names_the_group_that_switched_the_feature_off() {
    let w = world().await;
    let answer = w.entitlement("", &w.tenant.viewer).await;
    assert_eq!(answer["allowed"], false);
    assert_eq!(answer["kind"], "feature");
    assert_eq!(answer["blocked_by"]["rule"], "feature_not_enabled");
    assert_eq!(answer["blocked_by"]["group_id"], Value::Null);
    w.switched(&w.hq, json!({"ukey2": true})).await;
    let answer = w.entitlement("", &w.tenant.viewer).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert!(answer.get("blocked_by").is_none(), "{answer}");
    w.switched(&w.sales, json!({"ukey2": false})).await;
    let answer = w.entitlement("", &w.tenant.viewer).await;
    for field in ["at", "user_id", "type", "allowed", "checks", "blocked_by"] {
        assert!(answer.get(field).is_some(), "{field} kept: {answer}");
    }
    assert_eq!(answer["allowed"], false);
    assert_eq!(
        answer["blocked_by"],
        json!({
            "rule": "feature_disabled", "group_id": w.sales, "group_name": "Sales",
            "detail": "group Sales switches ukey2 off",
        })
    );
    let rules: Vec<&str> = answer["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["rule"].as_str())
        .collect();
    assert_eq!(
        rules,
        vec![
            "user_active",
            "group_window",
            "feature_disabled",
            "group_window",
            "group_feature",
            "feature_enabled"
        ]
    );
}

#[tokio::test]
async fn an_expired_window_on_the_path_blocks_the_feature() {
    let w = world().await;
    let (status, body) = w
        .server
        .put(
            &w.tenant.path(&format!("/groups/{}/restriction", w.hq)),
            &w.tenant.admin,
            json!({
                "enabled": true, "valid_until": "2020-01-01T00:00:00Z",
                "features": {"ukey2": true},
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer = w.entitlement("", &w.tenant.viewer).await;
    assert_eq!(answer["blocked_by"]["rule"], "window_expired");
    assert_eq!(answer["blocked_by"]["group_id"], w.hq);
}

#[tokio::test]
async fn what_if_shows_who_would_lose_a_feature_switched_off() {
    let w = world().await;
    w.switched(&w.hq, json!({"ukey2": true})).await;
    let (status, body) = w
        .server
        .post(
            &w.tenant.path("/what-if"),
            &w.tenant.admin,
            json!({"commands": [{
                "op": "set_restriction", "group_id": w.sales, "enabled": true,
                "features": {"ukey2": false},
            }]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(
        body["results"][0]["events"],
        json!(["restriction_set", "restriction_features_set"])
    );
    let lost = body["would_block"].as_array().expect("would_block");
    assert_eq!(lost.len(), 1, "{body}");
    assert_eq!(lost[0]["user_id"], w.alice);
    assert_eq!(lost[0]["type"], "ukey2");
    assert_eq!(lost[0]["rule"], "feature_disabled");
    assert_eq!(lost[0]["group_id"], w.sales);
    // Nothing was written.
    let answer = w.entitlement("", &w.tenant.viewer).await;
    assert_eq!(answer["allowed"], true);
}

#[tokio::test]
async fn as_of_answers_the_feature_as_it_was_and_audit_finds_its_events() {
    let w = world().await;
    w.switched(&w.hq, json!({"ukey2": true})).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    w.switched(&w.sales, json!({"ukey2": false})).await;
    let at = between.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let query = format!("?at={}", at.replace('+', "%2B"));
    let then = w.entitlement(&query, &w.tenant.auditor).await;
    assert_eq!(then["allowed"], true, "{then}");
    let now = w.entitlement("", &w.tenant.auditor).await;
    assert_eq!(now["allowed"], false, "{now}");
    let (status, state) = w
        .server
        .get(
            &w.tenant.path(&format!("/groups/{}/state{query}", w.sales)),
            &w.tenant.auditor,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["features"]["ukey2"]["enabled"], true, "{state}");
    assert_eq!(state["features"]["ukey2"]["group_id"], w.hq);

    let kinds = |path: String| {
        let server = &w.server;
        let token = w.tenant.auditor.clone();
        async move {
            let (status, body) = server.get(&path, &token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|e| e["kind"].as_str().expect("kind").to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        kinds(w.tenant.path("/events?type=ukey2")).await,
        vec![
            "feature_defined",
            "restriction_features_set",
            "restriction_features_set"
        ]
    );
    let by_group = format!("/events?group_id={}&kind=restriction_features_set", w.sales);
    assert_eq!(
        kinds(w.tenant.path(&by_group)).await,
        vec!["restriction_features_set"]
    );
    let (_, events) = w.server.get(&w.tenant.path(&by_group), ROOT_TOKEN).await;
    assert_eq!(
        events["items"][0]["data"],
        json!({"group": w.sales, "features": {"ukey2": false}})
    );
}
