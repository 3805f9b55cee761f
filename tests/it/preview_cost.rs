//! `?preview_cost=true` on a write: how it moved this month's peak units and amount.

use crate::support::{assert_error, Server};
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_write_with_preview_cost_reports_how_it_moved_this_months_bill() {
    let server = Server::start();
    let tenant = server.tenant().await;
    server.provision(&tenant, "phone_system", 10).await;
    let (status, _) = server
        .put(
            &tenant.path("/prices/phone_system"),
            &tenant.admin,
            json!({"unit_price_minor": 1500}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .post(
            &tenant.path("/licenses?preview_cost=true"),
            &tenant.admin,
            json!({"type": "phone_system", "quantity": 4}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["cost"]["phone_system"],
        json!({"peak_units_before": 10, "peak_units_after": 14, "amount_minor_delta": 6000})
    );
    // Lowering the quantity never lowers the month's peak: the bill does not move.
    let (status, body) = server
        .put(
            &tenant.path("/subscription/phone_system?preview_cost=true"),
            &tenant.admin,
            json!({"quantity": 12}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cost"]["phone_system"]["peak_units_after"], 14);
    assert_eq!(body["cost"]["phone_system"]["amount_minor_delta"], 0);
    // Without the flag, no cost.
    let (_, body) = server
        .post(
            &tenant.path("/licenses"),
            &tenant.admin,
            json!({"type": "phone_system", "quantity": 1}),
        )
        .await;
    assert!(body.get("cost").is_none(), "{body}");
}

#[tokio::test]
async fn a_malformed_preview_cost_is_a_bad_request_and_changes_nothing() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let events = server.event_count().await;
    let (status, body) = server
        .post(
            &tenant.path("/licenses?preview_cost=maybe"),
            &tenant.admin,
            json!({"type": "phone_system", "quantity": 1}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(server.event_count().await, events);
}
