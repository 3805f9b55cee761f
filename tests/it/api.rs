//! Tenants, keys, catalogue, licences, headers, settings and prices: every endpoint's success
//! and failure answers as API.md states them.

use crate::support::{assert_error, id_of, violation_rules, Server, ROOT_TOKEN};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Events a new tenant appends: `tenant_created` and one `license_type_defined` per default type.
const EVENTS_OF_A_NEW_TENANT: u64 = 1 + 24;

const DEFAULT_TYPES: [&str; 24] = [
    "phone_system",
    "call_group",
    "auto_attendant",
    "developer",
    "cc_agent",
    "cc_supervisor",
    "cc_wallboard",
    "cc_admin",
    "voice",
    "call_recording",
    "device_desktop_app",
    "license_dnc_checking_enabled",
    "device_ip_phone",
    "device_mobile_app",
    "device_web_rtc",
    "license_number",
    "team_chat",
    "license_call_recording_unlimited_enabled",
    "outbound",
    "historical_analytics_viewer",
    "historical_analytics_creator",
    "accent_conversion",
    "sip_number",
    "mobile_app",
];

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tenants

#[tokio::test]
async fn creating_a_tenant_answers_201_with_id_seq_and_version() {
    let server = Server::start();
    let id = "6f1c2f7e-2d0b-4d8e-9a57-3c1f1f0c9a11";
    let (status, body) = server
        .post(
            "/v1/tenants",
            ROOT_TOKEN,
            json!({"id": id, "name": "Acme", "billing_timezone": "Europe/Prague", "currency": "CZK"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], id);
    assert_eq!(body["version"], EVENTS_OF_A_NEW_TENANT);
    assert_eq!(body["seq"], server.event_count().await);
    assert_eq!(body["seq"], EVENTS_OF_A_NEW_TENANT);

    let (status, tenant) = server.get(&format!("/v1/tenants/{id}"), ROOT_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["name"], "Acme");
    assert_eq!(tenant["billing_timezone"], "Europe/Prague");
    assert_eq!(tenant["currency"], "CZK");
}

#[tokio::test]
async fn a_tenant_without_an_id_gets_one_chosen_by_the_server() {
    let server = Server::start();
    let (status, body) = server
        .post("/v1/tenants", ROOT_TOKEN, json!({"name": "Acme"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = id_of(&body);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let (status, tenant) = server.get(&format!("/v1/tenants/{id}"), ROOT_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenant["billing_timezone"], "UTC");
    assert_eq!(tenant["currency"], "EUR");
}

#[tokio::test]
async fn a_duplicate_tenant_id_is_a_conflict_and_stores_nothing() {
    let server = Server::start();
    let body = json!({"id": "0b7f5a64-3f7e-4a55-8f0e-6f1d3c4b2a10", "name": "Acme"});
    let (status, _) = server.post("/v1/tenants", ROOT_TOKEN, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let before = server.event_count().await;
    let (status, answer) = server.post("/v1/tenants", ROOT_TOKEN, body).await;
    assert_error(status, &answer, StatusCode::CONFLICT, "conflict");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn a_tenant_admin_key_cannot_create_a_tenant() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let before = server.event_count().await;
    let (status, body) = server
        .post("/v1/tenants", &tenant.admin, json!({"name": "Other"}))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn an_unknown_billing_timezone_is_a_bad_request() {
    let server = Server::start();
    let (status, body) = server
        .post(
            "/v1/tenants",
            ROOT_TOKEN,
            json!({"name": "Acme", "billing_timezone": "Mars/Olympus_Mons"}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(server.event_count().await, 0);
}

#[tokio::test]
async fn an_unknown_tenant_is_not_found() {
    let server = Server::start();
    let path = "/v1/tenants/5d1c7b5e-0000-4000-8000-000000000000/catalog";
    let (status, body) = server.get(path, ROOT_TOKEN).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let path = "/v1/tenants/5d1c7b5e-0000-4000-8000-000000000000/licenses";
    let (status, body) = server
        .post(
            path,
            ROOT_TOKEN,
            json!({"type": "phone_system", "quantity": 1}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.event_count().await, 0);
}

// ---------------------------------------------------------------------------------------------
// Keys

#[tokio::test]
async fn an_issued_key_shows_its_token_once_and_the_token_works() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let (status, body) = server
        .post(
            &tenant.path("/keys"),
            ROOT_TOKEN,
            json!({"role": "viewer", "name": "support desk"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().expect("token").to_string();
    assert!(!token.is_empty());
    assert!(uuid::Uuid::parse_str(&id_of(&body)).is_ok());
    assert_eq!(body["seq"], server.event_count().await);
    assert!(body["version"].is_u64());

    let (status, catalog) = server.get(&tenant.path("/catalog"), &token).await;
    assert_eq!(status, StatusCode::OK, "{catalog}");
    // The token is never shown again: no read answer carries it.
    let (_, tenant_body) = server.get(&tenant.path(""), ROOT_TOKEN).await;
    assert!(!tenant_body.to_string().contains(&token));
}

#[tokio::test]
async fn a_tenant_admin_key_may_issue_keys_but_an_operator_may_not() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let (status, body) = server
        .post(
            &tenant.path("/keys"),
            &tenant.admin,
            json!({"role": "operator", "name": "script"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = server.event_count().await;
    let (status, body) = server
        .post(
            &tenant.path("/keys"),
            &tenant.operator,
            json!({"role": "admin", "name": "escalation"}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn a_revoked_token_is_unauthorized() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let (status, body) = server
        .post(
            &tenant.path("/keys"),
            ROOT_TOKEN,
            json!({"role": "operator", "name": "leaked"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let key = id_of(&body);
    let token = body["token"].as_str().unwrap().to_string();

    let (status, body) = server
        .delete(&tenant.path(&format!("/keys/{key}")), ROOT_TOKEN)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    assert!(body["version"].is_u64());

    let (status, body) = server.get(&tenant.path("/catalog"), &token).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    let (status, body) = server
        .delete(&tenant.path(&format!("/keys/{key}")), ROOT_TOKEN)
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let unknown = "7a0e5f1c-1111-4222-8333-444455556666";
    let (status, body) = server
        .delete(&tenant.path(&format!("/keys/{unknown}")), ROOT_TOKEN)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

// ---------------------------------------------------------------------------------------------
// Catalogue

#[tokio::test]
async fn the_catalog_lists_the_24_default_types_with_their_rules() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let (status, body) = server.get(&tenant.path("/catalog"), &tenant.viewer).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 24);
    let codes: BTreeSet<&str> = items.iter().map(|i| i["code"].as_str().unwrap()).collect();
    assert_eq!(codes, DEFAULT_TYPES.iter().copied().collect());
    let item = |code: &str| {
        items
            .iter()
            .find(|i| i["code"] == code)
            .unwrap_or_else(|| panic!("{code} missing"))
            .clone()
    };
    let bases = items.iter().filter(|i| i["kind"] == "base").count();
    assert_eq!(bases, 9);
    assert_eq!(
        items.iter().filter(|i| i["kind"] == "addon").count(),
        15,
        "every type is base or addon"
    );

    assert_eq!(
        item("phone_system"),
        json!({"code": "phone_system", "kind": "base", "attaches_to": [], "requires_any": [], "excludes": []})
    );
    assert_eq!(item("outbound")["requires_any"], json!(["voice"]));
    let agent_excludes: BTreeSet<String> =
        strings(&item("cc_agent")["excludes"]).into_iter().collect();
    assert_eq!(
        agent_excludes,
        ["cc_admin", "cc_supervisor", "cc_wallboard"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    for analytics in [
        "historical_analytics_viewer",
        "historical_analytics_creator",
    ] {
        let entry = item(analytics);
        let attaches: BTreeSet<String> = strings(&entry["attaches_to"]).into_iter().collect();
        assert_eq!(
            attaches,
            ["cc_wallboard", "cc_supervisor", "cc_admin"]
                .map(String::from)
                .into_iter()
                .collect(),
            "{analytics}: a cc_agent can never hold one"
        );
        assert!(!attaches.contains("cc_agent"));
    }
    assert_eq!(
        item("historical_analytics_viewer")["excludes"],
        json!(["historical_analytics_creator"])
    );
    assert_eq!(
        item("license_call_recording_unlimited_enabled")["requires_any"],
        json!(["call_recording"])
    );
}

// ---------------------------------------------------------------------------------------------
// Provisioning, quantity, termination

#[tokio::test]
async fn provisioning_answers_201_with_one_new_id_per_licence() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let (status, body) = server
        .post(
            &tenant.path("/licenses"),
            &tenant.admin,
            json!({"type": "phone_system", "quantity": 3}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ids: BTreeSet<String> = strings(&body["ids"]).into_iter().collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(body["seq"], server.event_count().await);
    assert!(body["version"].is_u64());
    for id in &ids {
        let license = server.license(&tenant, &tenant.viewer, id).await;
        assert_eq!(
            license,
            json!({"id": id, "type": "phone_system", "kind": "base", "status": "free", "addons": []})
        );
    }
    assert_eq!(
        server.usage(&tenant).await["phone_system"],
        json!({"owned": 3, "assigned": 0, "free": 3})
    );
}

#[tokio::test]
async fn provisioning_zero_or_more_than_10000_is_a_bad_request() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let before = server.event_count().await;
    for quantity in [0, 10_001] {
        let (status, body) = server
            .post(
                &tenant.path("/licenses"),
                ROOT_TOKEN,
                json!({"type": "phone_system", "quantity": quantity}),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(server.event_count().await, before);
    // The bounds themselves are accepted.
    assert_eq!(server.provision(&tenant, "voice", 1).await.len(), 1);
    assert_eq!(
        server.provision(&tenant, "voice", 10_000).await.len(),
        10_000
    );
}

#[tokio::test]
async fn provisioning_an_unknown_type_is_a_bad_request() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let before = server.event_count().await;
    for code in ["no_such_type", "Phone System", ""] {
        let (status, body) = server
            .post(
                &tenant.path("/licenses"),
                ROOT_TOKEN,
                json!({"type": code, "quantity": 1}),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn raising_the_subscription_provisions_the_difference() {
    let server = Server::start();
    let tenant = server.tenant().await;
    server.provision(&tenant, "phone_system", 2).await;
    let (status, body) = server
        .put(
            &tenant.path("/subscription/phone_system"),
            &tenant.admin,
            json!({"quantity": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["provisioned"].as_array().unwrap().len(), 3);
    assert_eq!(body["terminated"], json!([]));
    assert_eq!(body["seq"], server.event_count().await);
    assert_eq!(
        server.usage(&tenant).await["phone_system"],
        json!({"owned": 5, "assigned": 0, "free": 5})
    );
}

#[tokio::test]
async fn lowering_the_subscription_terminates_free_licences_only() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let ids = server.provision(&tenant, "phone_system", 5).await;
    server.assign(&tenant, &ids[0], &user).await;

    let (status, body) = server
        .put(
            &tenant.path("/subscription/phone_system"),
            ROOT_TOKEN,
            json!({"quantity": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let terminated = strings(&body["terminated"]);
    assert_eq!(terminated.len(), 3);
    assert!(!terminated.contains(&ids[0]), "the assigned one stays");
    for id in &terminated {
        assert_eq!(
            server.license(&tenant, ROOT_TOKEN, id).await["status"],
            "terminated"
        );
    }
    assert_eq!(
        server.usage(&tenant).await["phone_system"],
        json!({"owned": 2, "assigned": 1, "free": 1})
    );
}

#[tokio::test]
async fn lowering_the_subscription_below_the_assigned_count_is_422_and_changes_nothing() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ids = server.provision(&tenant, "phone_system", 3).await;
    for (index, id) in ids.iter().take(2).enumerate() {
        let user = server.user(&tenant, &group, &format!("user {index}")).await;
        server.assign(&tenant, id, &user).await;
    }
    let before = server.event_count().await;
    let usage_before = server.usage(&tenant).await;
    let (status, body) = server
        .put(
            &tenant.path("/subscription/phone_system"),
            ROOT_TOKEN,
            json!({"quantity": 1}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), ["not_enough_free_licenses"]);
    assert_eq!(server.event_count().await, before);
    assert_eq!(server.usage(&tenant).await, usage_before);
    assert_eq!(
        server.license(&tenant, ROOT_TOKEN, &ids[2]).await["status"],
        "free",
        "not even the free one was terminated"
    );
}

#[tokio::test]
async fn terminating_a_free_licence_answers_seq_and_version() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let ids = server.provision(&tenant, "call_group", 2).await;
    let (status, body) = server
        .delete(
            &tenant.path(&format!("/licenses/{}", ids[0])),
            &tenant.admin,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    assert!(body["version"].is_u64());
    assert_eq!(
        server.license(&tenant, ROOT_TOKEN, &ids[0]).await["status"],
        "terminated"
    );
    assert_eq!(
        server.usage(&tenant).await["call_group"],
        json!({"owned": 1, "assigned": 0, "free": 1})
    );
    // Terminated licences never come back.
    let before = server.event_count().await;
    let (status, body) = server
        .delete(&tenant.path(&format!("/licenses/{}", ids[0])), ROOT_TOKEN)
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let unknown = "11111111-2222-4333-8444-555555555555";
    let (status, body) = server
        .delete(&tenant.path(&format!("/licenses/{unknown}")), ROOT_TOKEN)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn terminating_a_licence_in_use_is_a_conflict_naming_the_user() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let base = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let addon = server.provision(&tenant, "team_chat", 1).await.remove(0);
    server.assign(&tenant, &base, &user).await;
    server.attach(&tenant, &base, &addon).await;
    let before = server.event_count().await;

    let (status, body) = server
        .delete(&tenant.path(&format!("/licenses/{base}")), ROOT_TOKEN)
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["error"]["details"]["user_id"], user.as_str());
    assert_eq!(body["error"]["details"]["license_id"], base.as_str());
    assert!(body["error"]["message"].as_str().unwrap().contains(&user));

    // An attached add-on is in use too, and names the holder of its base.
    let (status, body) = server
        .delete(&tenant.path(&format!("/licenses/{addon}")), ROOT_TOKEN)
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["error"]["details"]["user_id"], user.as_str());
    assert_eq!(body["error"]["details"]["base_id"], base.as_str());
    assert_eq!(server.event_count().await, before);
}

// ---------------------------------------------------------------------------------------------
// Assign, unassign, reassign

#[tokio::test]
async fn assigning_a_free_licence_marks_it_assigned_to_the_user() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let id = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let (status, body) = server
        .assign_as(&tenant, &tenant.operator, &id, &user)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    assert!(body["version"].is_u64());
    let license = server.license(&tenant, &tenant.viewer, &id).await;
    assert_eq!(
        license,
        json!({"id": id, "type": "phone_system", "kind": "base", "status": "assigned", "user_id": user,
               "group_id": group, "addons": []})
    );
    assert_eq!(
        server.usage(&tenant).await["phone_system"],
        json!({"owned": 1, "assigned": 1, "free": 0})
    );
}

#[tokio::test]
async fn assigning_an_assigned_licence_is_a_conflict_naming_the_holder() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server.user(&tenant, &group, "Ada").await;
    let bob = server.user(&tenant, &group, "Bob").await;
    let id = server.provision(&tenant, "phone_system", 1).await.remove(0);
    server.assign(&tenant, &id, &ada).await;
    let before = server.event_count().await;
    let (status, body) = server.assign_as(&tenant, ROOT_TOKEN, &id, &bob).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["error"]["details"]["user_id"], ada.as_str());
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn assigning_to_an_unknown_user_or_licence_is_not_found() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let id = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let nobody = "22222222-3333-4444-8555-666666666666";
    let before = server.event_count().await;
    let (status, body) = server.assign_as(&tenant, ROOT_TOKEN, &id, nobody).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = server.assign_as(&tenant, ROOT_TOKEN, nobody, &user).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn a_user_holds_at_most_one_base_licence_of_a_type() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let ids = server.provision(&tenant, "phone_system", 2).await;
    server.assign(&tenant, &ids[0], &user).await;
    let before = server.event_count().await;
    let (status, body) = server.assign_as(&tenant, ROOT_TOKEN, &ids[1], &user).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), ["one_base_per_type"]);
    // And at most one cc_* seat.
    let agent = server.provision(&tenant, "cc_agent", 1).await.remove(0);
    let admin_seat = server.provision(&tenant, "cc_admin", 1).await.remove(0);
    server.assign(&tenant, &agent, &user).await;
    let before_seat = server.event_count().await;
    let (status, body) = server
        .assign_as(&tenant, ROOT_TOKEN, &admin_seat, &user)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), ["excluded_type"]);
    assert_eq!(server.event_count().await, before_seat);
    assert!(before < before_seat);
}

#[tokio::test]
async fn unassigning_frees_the_licence_and_unassigning_a_free_one_is_a_conflict() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let id = server.provision(&tenant, "phone_system", 1).await.remove(0);
    server.assign(&tenant, &id, &user).await;
    let path = tenant.path(&format!("/licenses/{id}/unassign"));
    let (status, body) = server.post(&path, &tenant.operator, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    assert_eq!(
        server.license(&tenant, ROOT_TOKEN, &id).await["status"],
        "free"
    );
    let before = server.event_count().await;
    let (status, body) = server.post(&path, &tenant.operator, json!({})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn reassign_moves_addons_with_the_licence() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server.user(&tenant, &group, "Ada").await;
    let bob = server.user(&tenant, &group, "Bob").await;
    let base = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let phone = server
        .provision(&tenant, "device_ip_phone", 1)
        .await
        .remove(0);
    server.assign(&tenant, &base, &ada).await;
    server.attach(&tenant, &base, &phone).await;

    let (status, body) = server
        .post(
            &tenant.path(&format!("/licenses/{base}/reassign")),
            &tenant.operator,
            json!({"user_id": bob}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);

    let (status, bob_body) = server
        .get(&tenant.path(&format!("/users/{bob}")), &tenant.viewer)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        bob_body["licenses"],
        json!([{"id": base, "type": "phone_system", "group_id": group,
                "addons": [{"id": phone, "type": "device_ip_phone"}]}])
    );
    let (_, ada_body) = server
        .get(&tenant.path(&format!("/users/{ada}")), &tenant.viewer)
        .await;
    assert_eq!(ada_body["licenses"], json!([]));
    let addon = server.license(&tenant, ROOT_TOKEN, &phone).await;
    assert_eq!(addon["user_id"], bob.as_str());
    assert_eq!(addon["base_id"], base.as_str());
}

#[tokio::test]
async fn reassigning_a_free_licence_is_a_conflict() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server.user(&tenant, &group, "Ada").await;
    let id = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let before = server.event_count().await;
    let (status, body) = server
        .post(
            &tenant.path(&format!("/licenses/{id}/reassign")),
            ROOT_TOKEN,
            json!({"user_id": ada}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(server.event_count().await, before);
}

// ---------------------------------------------------------------------------------------------
// Add-ons and assignments

#[tokio::test]
async fn attaching_and_detaching_an_addon() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let base = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let addon = server
        .provision(&tenant, "device_ip_phone", 1)
        .await
        .remove(0);
    server.assign(&tenant, &base, &user).await;

    let (status, body) = server
        .post(
            &tenant.path(&format!("/licenses/{base}/addons")),
            &tenant.operator,
            json!({"addon_id": addon}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    assert_eq!(
        server.license(&tenant, ROOT_TOKEN, &base).await["addons"],
        json!([{"id": addon, "type": "device_ip_phone"}])
    );
    assert_eq!(
        server.usage(&tenant).await["device_ip_phone"],
        json!({"owned": 1, "assigned": 1, "free": 0}),
        "an attached add-on counts as assigned"
    );

    let (status, body) = server
        .delete(
            &tenant.path(&format!("/licenses/{base}/addons/{addon}")),
            &tenant.operator,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    assert_eq!(
        server.license(&tenant, &tenant.viewer, &addon).await,
        json!({"id": addon, "type": "device_ip_phone", "kind": "addon", "status": "free", "addons": []})
    );
    let before = server.event_count().await;
    let (status, body) = server
        .delete(
            &tenant.path(&format!("/licenses/{base}/addons/{addon}")),
            ROOT_TOKEN,
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn attaching_an_addon_that_breaks_a_catalogue_rule_is_422() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let phone = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let agent = server.provision(&tenant, "cc_agent", 1).await.remove(0);
    let outbound = server.provision(&tenant, "outbound", 1).await.remove(0);
    let analytics = server
        .provision(&tenant, "historical_analytics_viewer", 1)
        .await
        .remove(0);
    let other_base = server.provision(&tenant, "call_group", 1).await.remove(0);
    server.assign(&tenant, &phone, &user).await;
    server.assign(&tenant, &agent, &user).await;
    let before = server.event_count().await;

    let cases = [
        (&phone, &outbound, "requires_missing"),
        (&agent, &analytics, "addon_cannot_attach"),
        (&phone, &other_base, "not_an_addon"),
    ];
    for (base, addon, rule) in cases {
        let (status, body) = server
            .post(
                &tenant.path(&format!("/licenses/{base}/addons")),
                ROOT_TOKEN,
                json!({"addon_id": addon}),
            )
            .await;
        assert_error(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "rule_violation",
        );
        assert!(violation_rules(&body).contains(&rule.to_string()), "{body}");
    }
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn removing_a_licence_another_held_licence_requires_is_a_conflict_listing_the_dependants() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server.user(&tenant, &group, "Ada").await;
    let bob = server.user(&tenant, &group, "Bob").await;
    let phone = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let voice = server.provision(&tenant, "voice", 1).await.remove(0);
    let outbound = server.provision(&tenant, "outbound", 1).await.remove(0);
    server.assign(&tenant, &phone, &ada).await;
    server.assign(&tenant, &voice, &ada).await;
    server.attach(&tenant, &phone, &outbound).await;
    let before = server.event_count().await;

    let refusals = [
        (format!("/licenses/{voice}/unassign"), json!({})),
        (
            format!("/licenses/{voice}/reassign"),
            json!({"user_id": bob}),
        ),
    ];
    for (path, body) in refusals {
        let (status, answer) = server
            .post(&tenant.path(&path), &tenant.operator, body)
            .await;
        assert_error(status, &answer, StatusCode::CONFLICT, "conflict");
        let details = &answer["error"]["details"];
        assert_eq!(details["reason"], "required_by_held_licenses", "{answer}");
        assert_eq!(details["license_id"], voice.as_str(), "{answer}");
        assert_eq!(details["user_id"], ada.as_str(), "{answer}");
        assert_eq!(
            details["dependants"],
            json!([{"license_id": outbound, "type": "outbound"}]),
            "{answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&outbound)),
            "the message names the dependant: {answer}"
        );
    }
    assert_eq!(server.event_count().await, before, "nothing changed");

    // Detach the dependant first; then voice goes.
    let (status, body) = server
        .delete(
            &tenant.path(&format!("/licenses/{phone}/addons/{outbound}")),
            &tenant.operator,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .post(
            &tenant.path(&format!("/licenses/{voice}/unassign")),
            &tenant.operator,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_assignment_by_type_picks_free_licences_and_attaches_addons() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let base = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let chat = server.provision(&tenant, "team_chat", 1).await.remove(0);
    let (status, body) = server
        .post(
            &tenant.path("/assignments"),
            &tenant.operator,
            json!({"user_id": user, "type": "phone_system", "addons": ["team_chat"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["license_id"], base.as_str());
    assert_eq!(body["user_id"], user.as_str());
    assert_eq!(body["addons"], json!([{"id": chat, "type": "team_chat"}]));
    assert_eq!(body["seq"], server.event_count().await);
    let (_, user_body) = server
        .get(&tenant.path(&format!("/users/{user}")), ROOT_TOKEN)
        .await;
    assert_eq!(
        user_body["licenses"],
        json!([{"id": base, "type": "phone_system", "group_id": group,
                "addons": [{"id": chat, "type": "team_chat"}]}])
    );
}

#[tokio::test]
async fn an_assignment_with_no_free_licence_is_422_no_free_license() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server.user(&tenant, &group, "Ada").await;
    let bob = server.user(&tenant, &group, "Bob").await;
    let base = server.provision(&tenant, "phone_system", 1).await.remove(0);
    server.assign(&tenant, &base, &ada).await;
    let before = server.event_count().await;
    let (status, body) = server
        .post(
            &tenant.path("/assignments"),
            ROOT_TOKEN,
            json!({"user_id": bob, "type": "phone_system"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), ["no_free_license"]);
    let violation = &body["error"]["details"]["violations"][0];
    assert_eq!(violation["type"], "phone_system");
    assert_eq!(server.event_count().await, before);
}

// ---------------------------------------------------------------------------------------------
// Lists and history

#[tokio::test]
async fn the_licence_list_filters_by_type_user_extension_and_status() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let ada = server
        .user_with(
            &tenant,
            json!({"name": "Ada", "group_id": group, "extension": "201"}),
        )
        .await;
    let phones = server.provision(&tenant, "phone_system", 3).await;
    let chats = server.provision(&tenant, "team_chat", 2).await;
    server.assign(&tenant, &phones[0], &ada).await;
    server.attach(&tenant, &phones[0], &chats[0]).await;
    let (status, _) = server
        .delete(
            &tenant.path(&format!("/licenses/{}", phones[2])),
            ROOT_TOKEN,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let list = |query: String| {
        let server = &server;
        let path = tenant.path(&format!("/licenses{query}"));
        let viewer = tenant.viewer.clone();
        async move {
            let (status, body) = server.get(&path, &viewer).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            assert_eq!(body["next"], Value::Null);
            let ids: BTreeSet<String> = body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_string())
                .collect();
            ids
        }
    };
    let set = |ids: &[&String]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();

    assert_eq!(
        list("?type=phone_system".into()).await,
        set(&[&phones[0], &phones[1], &phones[2]])
    );
    assert_eq!(
        list(format!("?user_id={ada}")).await,
        set(&[&phones[0], &chats[0]])
    );
    assert_eq!(
        list("?extension=201".into()).await,
        set(&[&phones[0], &chats[0]])
    );
    assert_eq!(list("?extension=999".into()).await, BTreeSet::new());
    assert_eq!(
        list("?status=free".into()).await,
        set(&[&phones[1], &chats[1]])
    );
    assert_eq!(
        list("?status=assigned".into()).await,
        set(&[&phones[0], &chats[0]])
    );
    assert_eq!(list("?status=terminated".into()).await, set(&[&phones[2]]));
    assert_eq!(
        list("?type=team_chat&status=free".into()).await,
        set(&[&chats[1]])
    );

    // Items carry the documented fields.
    let (_, body) = server
        .get(
            &tenant.path("/licenses?type=team_chat&status=assigned"),
            ROOT_TOKEN,
        )
        .await;
    assert_eq!(
        body["items"],
        json!([{"id": chats[0], "type": "team_chat", "kind": "addon", "status": "assigned",
                "user_id": ada, "group_id": group, "base_id": phones[0], "addons": []}])
    );
}

#[tokio::test]
async fn the_licence_list_pages_with_limit_after_and_next() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let mut all: Vec<String> = server.provision(&tenant, "voice", 5).await;
    all.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &after {
            None => "?limit=2".to_string(),
            Some(cursor) => format!("?limit=2&after={cursor}"),
        };
        let (status, body) = server
            .get(&tenant.path(&format!("/licenses{query}")), &tenant.viewer)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_string()));
        pages += 1;
        match &body["next"] {
            Value::Null => break,
            Value::String(cursor) => {
                assert_eq!(cursor, seen.last().unwrap(), "the cursor is the last id");
                after = Some(cursor.clone());
            }
            other => panic!("next must be a string or null, not {other}"),
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all, "every licence once, in id order");
}

#[tokio::test]
async fn licence_history_is_shown_to_admins_and_auditors_only() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let id = server.provision(&tenant, "phone_system", 1).await.remove(0);
    server.assign(&tenant, &id, &user).await;
    let (status, _) = server
        .post(
            &tenant.path(&format!("/licenses/{id}/unassign")),
            ROOT_TOKEN,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    for token in [&tenant.auditor, &tenant.admin] {
        let body = server.license(&tenant, token, &id).await;
        let events = body["events"].as_array().expect("events");
        let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "licenses_provisioned",
                "license_assigned",
                "license_unassigned"
            ]
        );
        for event in events {
            for field in [
                "seq",
                "version",
                "recorded_at",
                "actor",
                "reason",
                "kind",
                "data",
                "hash",
            ] {
                assert!(event.get(field).is_some(), "{field} missing in {event}");
            }
            assert_eq!(event["actor"], "root");
        }
        assert_eq!(events[1]["data"]["user"], user.as_str());
    }
    for token in [&tenant.viewer, &tenant.operator, &tenant.billing] {
        let body = server.license(&tenant, token, &id).await;
        assert!(body.get("events").is_none(), "{body}");
        assert_eq!(body["status"], "free");
    }
    let unknown = "33333333-4444-4555-8666-777777777777";
    let (status, body) = server
        .get(&tenant.path(&format!("/licenses/{unknown}")), ROOT_TOKEN)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

// ---------------------------------------------------------------------------------------------
// Headers: ETag, If-Match, X-Reason

#[tokio::test]
async fn tenant_scoped_answers_carry_the_version_as_etag() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let reply = server
        .request(
            Method::POST,
            &tenant.path("/licenses"),
            Some(ROOT_TOKEN),
            Some(json!({"type": "voice", "quantity": 1})),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let version = reply.body["version"].as_u64().unwrap();
    assert_eq!(reply.etag(), Some(format!("\"{version}\"").as_str()));

    for path in ["", "/catalog", "/usage", "/licenses", "/users", "/groups"] {
        let reply = server
            .request(
                Method::GET,
                &tenant.path(path),
                Some(&tenant.viewer),
                None,
                &[],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        assert_eq!(
            reply.etag(),
            Some(format!("\"{version}\"").as_str()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn if_match_with_a_stale_version_is_a_conflict_and_stores_nothing() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let (_, current) = server.get(&tenant.path(""), ROOT_TOKEN).await;
    let version = current["version"].as_u64().unwrap();
    let before = server.event_count().await;
    let body = json!({"type": "voice", "quantity": 1});

    for stale in [format!("{}", version - 1), format!("\"{}\"", version + 7)] {
        let reply = server
            .request(
                Method::POST,
                &tenant.path("/licenses"),
                Some(ROOT_TOKEN),
                Some(body.clone()),
                &[("if-match", &stale)],
            )
            .await;
        assert_error(reply.status, &reply.body, StatusCode::CONFLICT, "conflict");
    }
    assert_eq!(server.event_count().await, before);
    assert_eq!(server.usage(&tenant).await, json!({}));

    // The current version, plain or as its quoted ETag, goes through.
    let reply = server
        .request(
            Method::POST,
            &tenant.path("/licenses"),
            Some(ROOT_TOKEN),
            Some(body.clone()),
            &[("if-match", &version.to_string())],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let etag = reply.etag().unwrap().to_string();
    let reply = server
        .request(
            Method::POST,
            &tenant.path("/licenses"),
            Some(ROOT_TOKEN),
            Some(body),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn x_reason_is_stored_and_shown_in_licence_history() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "Ada").await;
    let id = server.provision(&tenant, "phone_system", 1).await.remove(0);
    let reply = server
        .request(
            Method::POST,
            &tenant.path(&format!("/licenses/{id}/assign")),
            Some(&tenant.operator),
            Some(json!({"user_id": user})),
            &[("x-reason", "ticket SUP-42: new hire")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let history = server.license(&tenant, &tenant.auditor, &id).await;
    let events = history["events"].as_array().unwrap();
    assert_eq!(events[0]["reason"], Value::Null);
    assert_eq!(events[1]["kind"], "license_assigned");
    assert_eq!(events[1]["reason"], "ticket SUP-42: new hire");
    assert!(events[1]["actor"].as_str().unwrap().starts_with("key:"));
}

// ---------------------------------------------------------------------------------------------
// Settings, prices, health

#[tokio::test]
async fn recording_retention_takes_days_or_months() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let path = tenant.path("/settings/recording-retention");
    let (status, body) = server.put(&path, &tenant.admin, json!({"months": 9})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    let (_, t) = server.get(&tenant.path(""), ROOT_TOKEN).await;
    assert_eq!(t["recording_retention"], json!({"months": 9}));
    let (status, _) = server.put(&path, &tenant.admin, json!({"days": 14})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, t) = server.get(&tenant.path(""), ROOT_TOKEN).await;
    assert_eq!(t["recording_retention"], json!({"days": 14}));

    let before = server.event_count().await;
    for bad in [
        json!({"months": 4}),
        json!({"months": 0}),
        json!({"days": 30}),
        json!({"days": 14, "months": 3}),
        json!({}),
    ] {
        let (status, body) = server.put(&path, ROOT_TOKEN, bad.clone()).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    let (status, body) = server
        .put(&path, &tenant.operator, json!({"days": 7}))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn prices_are_set_per_type_in_the_tenant_currency() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let (status, body) = server
        .put(
            &tenant.path("/prices/phone_system"),
            &tenant.admin,
            json!({"unit_price_minor": 1500, "currency": "EUR", "effective_from": "2024-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seq"], server.event_count().await);
    assert!(body["version"].is_u64());

    let before = server.event_count().await;
    let (status, body) = server
        .put(
            &tenant.path("/prices/phone_system"),
            ROOT_TOKEN,
            json!({"unit_price_minor": 1500, "currency": "USD"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), ["currency_mismatch"]);
    for (path, body) in [
        ("/prices/no_such_type", json!({"unit_price_minor": 1})),
        ("/prices/phone_system", json!({"unit_price_minor": -1})),
        ("/prices/phone_system", json!({"unit_price_minor": 1.5})),
        (
            "/prices/phone_system",
            json!({"unit_price_minor": 1, "effective_from": "next tuesday"}),
        ),
    ] {
        let (status, answer) = server.put(&tenant.path(path), ROOT_TOKEN, body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "bad_request");
    }
    let (status, body) = server
        .put(
            &tenant.path("/prices/phone_system"),
            &tenant.billing,
            json!({"unit_price_minor": 1}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn healthz_reports_ok_and_the_global_sequence_without_auth() {
    let server = Server::start();
    let (status, body) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok", "seq": 0, "writes": "ok"}));
    let tenant = server.tenant().await;
    let (status, written) = server
        .post(
            &tenant.path("/licenses"),
            ROOT_TOKEN,
            json!({"type": "voice", "quantity": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        body,
        json!({"status": "ok", "seq": written["seq"], "writes": "ok"})
    );
    // 25 tenant events, 5 keys, 1 provisioning.
    assert_eq!(body["seq"], EVENTS_OF_A_NEW_TENANT + 5 + 1);
}
