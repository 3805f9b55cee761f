//! Notifications over the real router: group contacts (own and inherited), the tenant's
//! notification template, signed webhook deliveries, and `unblocked` notifications.

use crate::support::{assert_error, Server, ROOT_TOKEN};
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_groups_contact_is_shown_with_the_effective_one_and_where_it_comes_from() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let (status, body) = server
        .post(
            &tenant.path("/groups"),
            &tenant.admin,
            json!({"name": "HQ", "contact_email": "it@acme.example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let hq = body["id"].as_str().expect("id").to_string();
    let sales = server.group(&tenant, "Sales", Some(&hq)).await;

    let (_, group) = server
        .get(&tenant.path(&format!("/groups/{sales}")), &tenant.viewer)
        .await;
    assert_eq!(group["contact_email"], json!(null), "{group}");
    assert_eq!(
        group["effective_contact"],
        json!({"email": "it@acme.example.com", "group_id": hq, "group_name": "HQ", "inherited": true})
    );

    let (status, body) = server
        .patch(
            &tenant.path(&format!("/groups/{sales}")),
            &tenant.admin,
            json!({"contact_email": "sales@acme.example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, state) = server
        .get(
            &tenant.path(&format!("/groups/{sales}/state")),
            &tenant.viewer,
        )
        .await;
    assert_eq!(state["contact_email"], "sales@acme.example.com", "{state}");
    assert_eq!(state["effective_contact"]["inherited"], false, "{state}");
    assert_eq!(state["effective_contact"]["group_id"], json!(sales));

    // `null` clears the group's own contact; it inherits again. A PATCH without the field
    // leaves the contact as it is.
    server
        .patch(
            &tenant.path(&format!("/groups/{sales}")),
            &tenant.admin,
            json!({"name": "Sales EU"}),
        )
        .await;
    let (_, group) = server
        .get(&tenant.path(&format!("/groups/{sales}")), &tenant.viewer)
        .await;
    assert_eq!(group["contact_email"], "sales@acme.example.com", "{group}");
    let (status, body) = server
        .patch(
            &tenant.path(&format!("/groups/{sales}")),
            &tenant.admin,
            json!({"contact_email": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, group) = server
        .get(&tenant.path(&format!("/groups/{sales}")), &tenant.viewer)
        .await;
    assert_eq!(group["contact_email"], json!(null), "{group}");
    assert_eq!(group["effective_contact"]["group_id"], json!(hq), "{group}");
    let (_, history) = server
        .get(
            &tenant.path("/events?kind=group_contact_set"),
            &tenant.auditor,
        )
        .await;
    assert_eq!(
        history["items"].as_array().map(Vec::len),
        Some(3),
        "{history}"
    );
}

#[tokio::test]
async fn a_bad_contact_is_a_400_in_the_envelope_and_changes_nothing() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "HQ", None).await;
    let before = server.event_count().await;
    for bad in [json!("not an address"), json!("a@localhost"), json!(42)] {
        let (status, body) = server
            .patch(
                &tenant.path(&format!("/groups/{group}")),
                &tenant.admin,
                json!({"contact_email": bad, "name": "Renamed"}),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
        let (status, body) = server
            .post(
                &tenant.path("/groups"),
                ROOT_TOKEN,
                json!({"name": "Other", "contact_email": bad}),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
        if bad.is_string() {
            assert_eq!(
                body["error"]["details"]["reason"], "invalid_email",
                "{body}"
            );
        }
    }
    assert_eq!(server.event_count().await, before);
    let (_, one) = server
        .get(&tenant.path(&format!("/groups/{group}")), &tenant.viewer)
        .await;
    assert_eq!(one["name"], "HQ");
}
