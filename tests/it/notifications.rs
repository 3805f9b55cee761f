//! Notifications over the real router: group contacts (own and inherited), the tenant's
//! notification template, signed webhook deliveries, and `unblocked` notifications.

use crate::reminders::{quick, Receiver};
use crate::support::{assert_error, Server, Tenant, ROOT_TOKEN};
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use ledger::reminders::deliver_due;
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

/// Check a `Ledger-Signature` header as a receiver would: parse `t` and `v1`, recompute
/// HMAC-SHA256 over `"<t>.<raw body>"` with the secret, compare in constant time, and refuse a
/// timestamp more than `tolerance_seconds` from now.
fn signature_holds(secret: &str, header: &str, raw: &[u8], tolerance_seconds: i64) -> bool {
    use hmac::{KeyInit, Mac};
    let mut timestamp = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", hex_mac)) => v1 = hex::decode(hex_mac).ok(),
            _ => {}
        }
    }
    let (Some(timestamp), Some(v1)) = (timestamp, v1) else {
        return false;
    };
    if (Utc::now().timestamp() - timestamp).abs() > tolerance_seconds {
        return false;
    }
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(raw);
    mac.verify_slice(&v1).is_ok()
}

/// A root group created with its administrator's contact; its id.
async fn group_with_contact(server: &Server, tenant: &Tenant, name: &str, email: &str) -> String {
    let (status, body) = server
        .post(
            &tenant.path("/groups"),
            &tenant.admin,
            json!({"name": name, "contact_email": email}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reminder_goes_signed_to_the_inherited_contact_in_the_tenants_words() {
    let receiver = Receiver::start();
    let server = Server::start();
    let tenant = server.tenant().await;
    let hq = group_with_contact(&server, &tenant, "HQ", "it@acme.example.com").await;
    let dealer = server.group(&tenant, "Dealer", Some(&hq)).await;
    let until = Utc::now() + Duration::days(5);
    let (status, body) = server
        .put(
            &tenant.path(&format!("/groups/{dealer}/restriction")),
            &tenant.admin,
            json!({"enabled": true, "valid_until": until.to_rfc3339(),
                   "reminder": {"days_before": 10, "frequency": "once"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .put(
            &tenant.path("/notification-template"),
            &tenant.admin,
            json!({"subject": "[{{ tenant_name }}] {{ group_name }}",
                   "body": "{{ group_name }} ends {{ expiry_date }}, in {{ days_left }} days."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, set) = server
        .put(
            &tenant.path("/webhook"),
            &tenant.admin,
            json!({"url": receiver.url}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let secret = set["secret"].as_str().expect("a secret").to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 64,
        "{secret}"
    );

    assert_eq!(deliver_due(server.ledger(), &quick()).await, 1);
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let delivery = &deliveries[0];
    let header = delivery.header("ledger-signature").expect("signed");
    assert!(
        signature_holds(&secret, header, &delivery.raw, 300),
        "{header}"
    );
    assert!(!signature_holds("whsec_other", header, &delivery.raw, 300));
    let mut tampered = delivery.raw.clone();
    tampered[0] ^= 1;
    assert!(!signature_holds(&secret, header, &tampered, 300));

    let reminder = &delivery.json;
    assert_eq!(reminder["kind"], "reminder", "{reminder}");
    assert_eq!(reminder["to"], "it@acme.example.com", "{reminder}");
    assert_eq!(reminder["subject"], "[Acme] Dealer", "{reminder}");
    let expiry = until.format("%Y-%m-%d").to_string();
    assert_eq!(
        reminder["body"],
        format!("Dealer ends {expiry}, in 10 days."),
        "{reminder}"
    );
    // The fields outside clients already read are all still there.
    for field in [
        "reminder_id",
        "tenant_id",
        "group_id",
        "group_name",
        "valid_until",
        "due_at",
        "days_before",
        "frequency",
    ] {
        assert!(!reminder[field].is_null(), "{field} in {reminder}");
    }
    // The secret never shows in the history.
    let (_, history) = server
        .get(
            &tenant.path("/events?kind=webhook_secret_set"),
            &tenant.auditor,
        )
        .await;
    assert_eq!(history["items"].as_array().map(Vec::len), Some(1));
    assert!(!history.to_string().contains(&secret), "{history}");
}

#[tokio::test]
async fn setting_the_webhook_again_rotates_its_secret() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let path = tenant.path("/webhook");
    let set = || {
        server.put(
            &path,
            &tenant.admin,
            json!({"url": "https://hooks.example.com/x"}),
        )
    };
    let (_, first) = set().await;
    let (_, second) = set().await;
    assert!(first["secret"].is_string() && second["secret"].is_string());
    assert_ne!(first["secret"], second["secret"]);
}

#[tokio::test]
async fn the_template_is_the_default_until_set_and_a_bad_one_is_refused_changing_nothing() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let path = tenant.path("/notification-template");
    let (status, template) = server.get(&path, &tenant.viewer).await;
    assert_eq!(status, StatusCode::OK, "{template}");
    assert_eq!(template["default"], true);
    assert!(template["subject"]
        .as_str()
        .is_some_and(|s| s.contains("{{ group_name }}")));
    let names: Vec<&str> = template["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(names.contains(&"days_left") && names.contains(&"expiry_date"));

    let before = server.event_count().await;
    let (status, body) = server
        .put(
            &path,
            &tenant.admin,
            json!({"subject": "{{ group_name }}", "body": "Dear {{ customer }}"}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(
        body["error"]["details"]["reason"],
        "unknown_template_variable"
    );
    assert_eq!(body["error"]["details"]["field"], "body");
    assert_eq!(body["error"]["details"]["unknown"], json!(["customer"]));
    let (status, body) = server
        .put(
            &path,
            &tenant.admin,
            json!({"subject": "{% if x %}", "body": "b"}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(body["error"]["details"]["reason"], "template_syntax");
    assert_eq!(server.event_count().await, before);

    let (status, body) = server
        .put(
            &path,
            &tenant.admin,
            json!({"subject": "{{ group_name }}", "body": "{{ days_left }} days"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, template) = server.get(&path, &tenant.viewer).await;
    assert_eq!(template["default"], false);
    assert_eq!(template["body"], "{{ days_left }} days");
    let (status, _) = server
        .put(
            &path,
            &tenant.operator,
            json!({"subject": "s", "body": "b"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extending_an_expired_window_sends_one_signed_unblocked_notification() {
    let receiver = Receiver::start();
    let server = Server::start();
    let tenant = server.tenant().await;
    let dealer = group_with_contact(&server, &tenant, "Dealer", "dealer@acme.example.com").await;
    let site = server.group(&tenant, "Site", Some(&dealer)).await;
    for name in ["Ann", "Bob"] {
        let (status, body) = server
            .post(
                &tenant.path("/users"),
                &tenant.admin,
                json!({"name": name, "group_id": site}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let restriction = tenant.path(&format!("/groups/{dealer}/restriction"));
    let ended = Utc::now() - Duration::days(1);
    let (status, body) = server
        .put(
            &restriction,
            &tenant.admin,
            json!({"enabled": true, "valid_until": ended.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, set) = server
        .put(
            &tenant.path("/webhook"),
            &tenant.admin,
            json!({"url": receiver.url}),
        )
        .await;
    let secret = set["secret"].as_str().expect("a secret").to_string();
    // Nothing is owed while the window stays over.
    assert_eq!(deliver_due(server.ledger(), &quick()).await, 0);

    let until = Utc::now() + Duration::days(90);
    let (status, body) = server
        .put(
            &restriction,
            &tenant.admin,
            json!({"enabled": true, "valid_until": until.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(deliver_due(server.ledger(), &quick()).await, 1);
    // Delivered once: a second look owes nothing, and extending a window that blocks nobody
    // owes nothing either.
    assert_eq!(deliver_due(server.ledger(), &quick()).await, 0);
    let later = Utc::now() + Duration::days(120);
    server
        .put(
            &restriction,
            &tenant.admin,
            json!({"enabled": true, "valid_until": later.to_rfc3339()}),
        )
        .await;
    assert_eq!(deliver_due(server.ledger(), &quick()).await, 0);

    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    let delivery = &deliveries[0];
    let header = delivery.header("ledger-signature").expect("signed");
    assert!(
        signature_holds(&secret, header, &delivery.raw, 300),
        "{header}"
    );
    let note = &delivery.json;
    assert_eq!(note["kind"], "unblocked", "{note}");
    assert_eq!(note["to"], "dealer@acme.example.com", "{note}");
    assert_eq!(note["group_id"], json!(dealer), "{note}");
    assert_eq!(note["users"], 2, "{note}");
    let freed: Vec<&str> = note["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["group_name"].as_str())
        .collect();
    assert_eq!(freed, ["Dealer", "Site"], "{note}");
    assert!(note["notification_id"]
        .as_str()
        .is_some_and(|id| id.len() == 32));
    assert!(
        note["subject"]
            .as_str()
            .is_some_and(|s| s.contains("Dealer")),
        "{note}"
    );

    // The history shows the unblocking and its delivery.
    let (_, history) = server
        .get(
            &tenant.path(&format!("/events?group_id={site}")),
            &tenant.auditor,
        )
        .await;
    let kinds: Vec<&str> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"groups_unblocked"), "{history}");
    let (_, delivered) = server
        .get(
            &tenant.path("/events?kind=unblocked_notified"),
            &tenant.auditor,
        )
        .await;
    assert_eq!(
        delivered["items"].as_array().map(Vec::len),
        Some(1),
        "{delivered}"
    );
}
