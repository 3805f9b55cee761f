//! Users in several groups (issue 16 item 3) through the real router: joining and leaving
//! groups (`POST /users/{u}/groups`, `DELETE /users/{u}/groups/{g}`), `group_id` on an
//! assignment naming the group its quota counts against, the user and licence answers showing
//! it, explain judging the licence by that group's path, what-if and audit.

use crate::support::{assert_error, violation_rules, Server, Tenant, ROOT_TOKEN};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// HQ → Sales (phone_system limit 2), HQ → Support (phone_system limit 1), and a root group
/// Partners; Alice in Sales; three phone_system licences.
struct World {
    server: Server,
    tenant: Tenant,
    sales: String,
    support: String,
    partners: String,
    alice: String,
    phones: Vec<String>,
}

async fn world() -> World {
    let server = Server::start();
    let tenant = server.tenant().await;
    let hq = server.group(&tenant, "HQ", None).await;
    let sales = server.group(&tenant, "Sales", Some(&hq)).await;
    let support = server.group(&tenant, "Support", Some(&hq)).await;
    let partners = server.group(&tenant, "Partners", None).await;
    server
        .restrict(&tenant, &sales, json!({"phone_system": 2}))
        .await;
    server
        .restrict(&tenant, &support, json!({"phone_system": 1}))
        .await;
    let alice = server.user(&tenant, &sales, "Alice").await;
    let phones = server.provision(&tenant, "phone_system", 3).await;
    World {
        server,
        tenant,
        sales,
        support,
        partners,
        alice,
        phones,
    }
}

impl World {
    async fn join(&self, user: &str, group: &str) -> (StatusCode, Value) {
        self.server
            .post(
                &self.tenant.path(&format!("/users/{user}/groups")),
                &self.tenant.operator,
                json!({"group_id": group}),
            )
            .await
    }

    async fn leave(&self, user: &str, group: &str) -> (StatusCode, Value) {
        self.server
            .delete(
                &self.tenant.path(&format!("/users/{user}/groups/{group}")),
                &self.tenant.operator,
            )
            .await
    }

    async fn assign_in(
        &self,
        license: &str,
        user: &str,
        group: Option<&str>,
    ) -> (StatusCode, Value) {
        self.server
            .post(
                &self.tenant.path(&format!("/licenses/{license}/assign")),
                &self.tenant.operator,
                json!({"user_id": user, "group_id": group}),
            )
            .await
    }

    async fn used(&self, group: &str) -> Value {
        let state = self.server.group_state(&self.tenant, group).await;
        state["types"]["phone_system"]["used"].clone()
    }

    async fn user(&self, user: &str) -> Value {
        let (status, body) = self
            .server
            .get(
                &self.tenant.path(&format!("/users/{user}")),
                &self.tenant.viewer,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

#[tokio::test]
async fn a_user_in_two_groups_has_a_licence_counted_against_the_group_the_assignment_names() {
    let w = world().await;
    let (status, body) = w.join(&w.alice, &w.support).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["group_id"], json!(w.support));
    let alice = w.user(&w.alice).await;
    assert_eq!(alice["group_id"], json!(w.sales));
    assert_eq!(alice["other_group_ids"], json!([w.support]));

    let (status, body) = w.assign_in(&w.phones[0], &w.alice, Some(&w.support)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(w.used(&w.support).await, 1);
    assert_eq!(w.used(&w.sales).await, 0);
    let alice = w.user(&w.alice).await;
    assert_eq!(alice["licenses"][0]["group_id"], json!(w.support));
    let licence = w
        .server
        .license(&w.tenant, &w.tenant.viewer, &w.phones[0])
        .await;
    assert_eq!(licence["group_id"], json!(w.support));

    // Support is full now (1 of 1); Sales still has room for a colleague's licence.
    let bob = w.server.user(&w.tenant, &w.sales, "Bob").await;
    w.join(&bob, &w.support).await;
    let (status, body) = w.assign_in(&w.phones[1], &bob, Some(&w.support)).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), vec!["group_limit_reached"]);
    assert_eq!(
        body["error"]["details"]["violations"][0]["group_id"],
        json!(w.support)
    );
    let (status, body) = w
        .server
        .post(
            &w.tenant.path("/assignments"),
            &w.tenant.operator,
            json!({"user_id": bob, "type": "phone_system"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["group_id"],
        Value::Null,
        "counted against his own group"
    );
    assert_eq!(w.used(&w.sales).await, 1);
}

#[tokio::test]
async fn an_assignment_counted_against_a_group_the_user_is_not_in_is_refused_and_changes_nothing() {
    let w = world().await;
    let before = w.server.event_count().await;
    let (status, body) = w.assign_in(&w.phones[0], &w.alice, Some(&w.partners)).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), vec!["user_not_in_group"]);
    let violation = &body["error"]["details"]["violations"][0];
    assert_eq!(violation["group_id"], json!(w.partners));
    assert_eq!(violation["user_id"], json!(w.alice));
    let (status, body) = w
        .server
        .post(
            &w.tenant.path("/assignments"),
            &w.tenant.operator,
            json!({"user_id": w.alice, "type": "phone_system", "group_id": w.partners}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(w.server.event_count().await, before);
}

#[tokio::test]
async fn joining_and_leaving_answer_with_clear_errors() {
    let w = world().await;
    let (status, body) = w.join(&w.alice, &w.sales).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["error"]["details"]["reason"], "already_in_group");
    let (status, body) = w.leave(&w.alice, &w.sales).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["error"]["details"]["reason"], "own_group");
    let (status, body) = w.leave(&w.alice, &w.partners).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(body["error"]["details"]["reason"], "membership_not_found");
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, body) = w.join(&w.alice, &unknown).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = w
        .server
        .post(
            &w.tenant.path(&format!("/users/{}/groups", w.alice)),
            &w.tenant.operator,
            json!({"group_id": "not-a-uuid"}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, body) = w
        .server
        .post(
            &w.tenant.path(&format!("/users/{}/groups", w.alice)),
            &w.tenant.viewer,
            json!({"group_id": w.support}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn leaving_a_group_moves_its_licences_home_unless_home_is_full() {
    let w = world().await;
    w.join(&w.alice, &w.support).await;
    let (status, body) = w.assign_in(&w.phones[0], &w.alice, Some(&w.support)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Fill Sales (2 of 2) with two colleagues.
    for (name, phone) in [("Carol", &w.phones[1]), ("Dave", &w.phones[2])] {
        let colleague = w.server.user(&w.tenant, &w.sales, name).await;
        w.server.assign(&w.tenant, phone, &colleague).await;
    }
    let before = w.server.event_count().await;
    let (status, body) = w.leave(&w.alice, &w.support).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    let violation = &body["error"]["details"]["violations"][0];
    assert_eq!(violation["rule"], "group_limit_reached");
    assert_eq!(violation["group_id"], json!(w.sales));
    assert_eq!(
        (violation["limit"].clone(), violation["used"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(w.server.event_count().await, before);

    // With room at home the licence follows her there.
    w.server
        .restrict(&w.tenant, &w.sales, json!({"phone_system": 3}))
        .await;
    let (status, body) = w.leave(&w.alice, &w.support).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(w.used(&w.support).await, 0);
    assert_eq!(w.used(&w.sales).await, 3);
    let alice = w.user(&w.alice).await;
    assert_eq!(alice["other_group_ids"], json!([]));
    assert_eq!(alice["licenses"][0]["group_id"], json!(w.sales));
}

#[tokio::test]
async fn explain_judges_a_licence_by_the_path_of_the_group_it_counts_against() {
    let w = world().await;
    w.join(&w.alice, &w.support).await;
    w.assign_in(&w.phones[0], &w.alice, Some(&w.support)).await;
    // Support's window is over; Sales' is open.
    let (status, body) = w
        .server
        .put(
            &w.tenant.path(&format!("/groups/{}/restriction", w.support)),
            &w.tenant.admin,
            json!({"enabled": true, "limits": {"phone_system": 1},
                   "valid_from": "2020-01-01T00:00:00Z", "valid_until": "2021-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = w
        .server
        .get(
            &w.tenant
                .path(&format!("/users/{}/entitlements/phone_system", w.alice)),
            &w.tenant.viewer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], false, "{body}");
    assert_eq!(body["blocked_by"]["rule"], "window_expired", "{body}");
    assert_eq!(body["blocked_by"]["group_id"], json!(w.support), "{body}");
}

#[tokio::test]
async fn what_if_previews_a_membership_and_an_assignment_counted_in_it_without_writing() {
    let w = world().await;
    let before = w.server.event_count().await;
    let (status, body) = w
        .server
        .post(
            &w.tenant.path("/what-if"),
            &w.tenant.operator,
            json!({"commands": [
                {"op": "add_user_to_group", "user_id": w.alice, "group_id": w.partners},
                {"op": "assign", "license_id": w.phones[0], "user_id": w.alice,
                 "group_id": w.partners},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    let (status, body) = w
        .server
        .post(
            &w.tenant.path("/what-if"),
            &w.tenant.operator,
            json!({"commands": [
                {"op": "assign", "license_id": w.phones[0], "user_id": w.alice,
                 "group_id": w.partners},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["violations"][0]["rule"], "user_not_in_group", "{body}");
    assert_eq!(w.server.event_count().await, before);
}

#[tokio::test]
async fn memberships_and_where_a_licence_counts_are_audited() {
    let w = world().await;
    w.join(&w.alice, &w.support).await;
    w.assign_in(&w.phones[0], &w.alice, Some(&w.support)).await;
    let (status, body) = w
        .server
        .get(
            &w.tenant.path(&format!("/events?group_id={}", w.support)),
            &w.tenant.auditor,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let kinds: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect();
    assert!(kinds.contains(&"user_group_added"), "{kinds:?}");
    assert!(kinds.contains(&"license_counted_in"), "{kinds:?}");
    let (status, body) = w
        .server
        .get(
            &w.tenant
                .path(&format!("/events?license_id={}", w.phones[0])),
            &w.tenant.auditor,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let counted = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["kind"] == "license_counted_in")
        .expect("the licence's history shows where it counts");
    assert_eq!(counted["data"]["group"], json!(w.support), "{counted}");
}

#[tokio::test]
async fn a_dealer_key_adds_users_only_to_groups_of_its_subtree() {
    let w = world().await;
    let (status, body) = w
        .server
        .post(
            &w.tenant.path("/keys"),
            ROOT_TOKEN,
            json!({"role": "operator", "name": "sales dealer", "group_id": w.sales}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let dealer = body["token"].as_str().expect("token").to_string();
    let (status, body) = w
        .server
        .post(
            &w.tenant.path(&format!("/users/{}/groups", w.alice)),
            &dealer,
            json!({"group_id": w.partners}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let team = w
        .server
        .group(&w.tenant, "Sales team", Some(&w.sales))
        .await;
    let (status, body) = w
        .server
        .post(
            &w.tenant.path(&format!("/users/{}/groups", w.alice)),
            &dealer,
            json!({"group_id": team}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// The names of the users `GET /users?group_id=` lists for `group`, sorted.
async fn member_names(w: &World, group: &str) -> Vec<String> {
    let path = w.tenant.path(&format!("/users?group_id={group}"));
    let (status, body) = w.server.get(&path, &w.tenant.viewer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut names: Vec<String> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["name"].as_str().expect("name").to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn listing_a_group_s_users_includes_the_members_who_joined_it() {
    let w = world().await;
    w.server.user(&w.tenant, &w.support, "Bob").await;
    let (status, _) = w.join(&w.alice, &w.support).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        member_names(&w, &w.support).await,
        ["Alice", "Bob"],
        "Bob's own group, one Alice joined"
    );
    assert_eq!(member_names(&w, &w.sales).await, ["Alice"]);
    let (status, _) = w.leave(&w.alice, &w.support).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        member_names(&w, &w.support).await,
        ["Bob"],
        "left: listed no more"
    );
}
