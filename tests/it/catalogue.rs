//! `PUT /catalog/{code}`: define or change a licence type.

use crate::support::{assert_error, violation_rules, Server};
use axum::http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn an_admin_defines_a_new_addon_and_it_appears_in_the_catalogue() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let (status, body) = server
        .put(
            &tenant.path("/catalog/fax"),
            &tenant.admin,
            json!({"kind": "addon", "attaches_to": ["phone_system"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server
        .put(
            &tenant.path("/catalog/fax"),
            &tenant.admin,
            json!({"kind": "addon", "attaches_to": ["phone_system", "voice"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, catalogue) = server.get(&tenant.path("/catalog"), &tenant.viewer).await;
    let fax = catalogue["items"]
        .as_array()
        .and_then(|items| items.iter().find(|t| t["code"] == "fax"))
        .cloned()
        .expect("fax in the catalogue");
    assert_eq!(fax["attaches_to"], json!(["phone_system", "voice"]));
}

#[tokio::test]
async fn a_change_that_would_break_an_assignment_is_refused_and_changes_nothing() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Sales", None).await;
    let user = server.user(&tenant, &group, "John").await;
    server.provision(&tenant, "phone_system", 1).await;
    server.provision(&tenant, "call_recording", 1).await;
    let (status, body) = server
        .post(
            &tenant.path("/assignments"),
            &tenant.operator,
            json!({"user_id": user, "type": "phone_system", "addons": ["call_recording"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = server.event_count().await;
    let (status, body) = server
        .put(
            &tenant.path("/catalog/call_recording"),
            &tenant.admin,
            json!({"kind": "addon", "attaches_to": ["cc_agent"]}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(violation_rules(&body), vec!["assignment_invalidated"]);
    assert_eq!(server.event_count().await, events);
}

#[tokio::test]
async fn malformed_definitions_are_bad_requests_and_operators_may_not_define() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let cases = [
        (
            "/catalog/fax",
            json!({"kind": "gadget", "attaches_to": ["phone_system"]}),
        ),
        (
            "/catalog/fax",
            json!({"kind": "addon", "attaches_to": ["telex"]}),
        ),
        (
            "/catalog/Fax%20Line",
            json!({"kind": "addon", "attaches_to": ["phone_system"]}),
        ),
    ];
    for (path, body) in cases {
        let (status, reply) = server.put(&tenant.path(path), &tenant.admin, body).await;
        assert_error(status, &reply, StatusCode::BAD_REQUEST, "bad_request");
    }
    let (status, reply) = server
        .put(
            &tenant.path("/catalog/fax"),
            &tenant.operator,
            json!({"kind": "addon", "attaches_to": ["phone_system"]}),
        )
        .await;
    assert_error(status, &reply, StatusCode::FORBIDDEN, "forbidden");
}
