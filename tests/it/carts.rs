//! Carts (issue 17 item 4) through the real router: `POST /carts` stores what-if commands
//! with their preview and price, `POST /carts/{id}/confirm` applies them all in one batch or
//! none, only while the tenant has not changed (409 `cart_stale` with a fresh preview), and the
//! audit shows who confirmed what price.

use crate::support::{assert_error, Server, Tenant, ROOT_TOKEN};
use axum::http::StatusCode;
use serde_json::{json, Value};

struct World {
    server: Server,
    tenant: Tenant,
}

/// phone_system priced at 15.00 a unit.
async fn world() -> World {
    let server = Server::start();
    let tenant = server.tenant().await;
    let (status, body) = server
        .put(
            &tenant.path("/prices/phone_system"),
            ROOT_TOKEN,
            json!({"unit_price_minor": 1500}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    World { server, tenant }
}

impl World {
    async fn create(&self, token: &str, commands: Value) -> (StatusCode, Value) {
        self.server
            .post(
                &self.tenant.path("/carts"),
                token,
                json!({"commands": commands}),
            )
            .await
    }

    async fn confirm(&self, cart: &str) -> (StatusCode, Value) {
        self.server
            .post(
                &self.tenant.path(&format!("/carts/{cart}/confirm")),
                &self.tenant.admin,
                json!({}),
            )
            .await
    }

    async fn owned(&self) -> u64 {
        self.server.usage(&self.tenant).await["phone_system"]["owned"]
            .as_u64()
            .unwrap_or(0)
    }
}

fn two_changes() -> Value {
    json!([
        {"op": "provision", "type": "phone_system", "quantity": 2},
        {"op": "set_quantity", "type": "phone_system", "quantity": 5},
    ])
}

#[tokio::test]
async fn a_cart_shows_its_price_and_confirming_applies_every_change_at_once() {
    let w = world().await;
    let (status, body) = w.create(&w.tenant.admin, two_changes()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cart = body["id"].as_str().expect("id").to_string();
    assert_eq!(body["preview"]["ok"], true, "{body}");
    assert_eq!(body["amount_minor_delta"], 7500, "5 units at 15.00: {body}");
    assert_eq!(w.owned().await, 0, "storing a cart changes no licence");
    let (status, stored) = w
        .server
        .get(&w.tenant.path(&format!("/carts/{cart}")), &w.tenant.viewer)
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["commands"], two_changes());
    assert_eq!(stored["confirmed"], false);

    let before = w.server.event_count().await;
    let (status, done) = w.confirm(&cart).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(w.owned().await, 5);
    // Provisioning 2, provisioning 3 more, and the confirmation: one batch.
    assert_eq!(done["events"], 3, "{done}");
    assert_eq!(w.server.event_count().await, before + 3);
    let (_, stored) = w
        .server
        .get(&w.tenant.path(&format!("/carts/{cart}")), &w.tenant.viewer)
        .await;
    assert_eq!(stored["confirmed"], true);

    let (status, page) = w
        .server
        .get(&w.tenant.path("/events?limit=100"), &w.tenant.auditor)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let confirmed = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["kind"] == "cart_confirmed")
        .expect("the confirmation is an event");
    assert_eq!(confirmed["data"]["amount_minor_delta"], 7500);
    assert!(
        confirmed["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("key:")),
        "the audit names who confirmed: {confirmed}"
    );

    let (status, body) = w.confirm(&cart).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["error"]["details"]["reason"], "cart_already_confirmed");
}

#[tokio::test]
async fn a_cart_whose_tenant_changed_is_refused_with_a_fresh_preview() {
    let w = world().await;
    let (_, body) = w.create(&w.tenant.admin, two_changes()).await;
    let cart = body["id"].as_str().expect("id").to_string();
    w.server.provision(&w.tenant, "phone_system", 1).await;
    let (status, body) = w.confirm(&cart).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let details = &body["error"]["details"];
    assert_eq!(details["reason"], "cart_stale", "{body}");
    assert_eq!(details["preview"]["ok"], true, "{body}");
    assert_eq!(
        details["preview"]["billing_delta"]["phone_system"]["peak_units_after"], 5,
        "the fresh preview starts from the licence provisioned since: {body}"
    );
    assert_eq!(w.owned().await, 1, "nothing of the cart was applied");
}

#[tokio::test]
async fn a_cart_with_a_refused_change_applies_nothing() {
    let w = world().await;
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = w
        .create(
            &w.tenant.admin,
            json!([
                {"op": "provision", "type": "phone_system", "quantity": 2},
                {"op": "terminate", "license_id": unknown},
            ]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["preview"]["ok"], false, "the preview says so: {body}");
    let cart = body["id"].as_str().expect("id").to_string();
    let before = w.server.event_count().await;
    let (status, body) = w.confirm(&cart).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(body["error"]["details"]["errors"][0]["index"], 1, "{body}");
    assert_eq!(w.server.event_count().await, before);
    assert_eq!(w.owned().await, 0);
}

#[tokio::test]
async fn carts_follow_the_roles_of_their_commands() {
    let w = world().await;
    let (status, body) = w.create(&w.tenant.viewer, two_changes()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = w.create(&w.tenant.operator, two_changes()).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = w
        .create(&w.tenant.admin, json!([{"op": "no_such_op"}]))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let unknown = uuid::Uuid::new_v4();
    let (status, body) = w.confirm(&unknown.to_string()).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(body["error"]["details"]["reason"], "cart_not_found");
}
