//! Bulk import: the vendor's own sample applies; a bad file reports every bad row and changes
//! nothing; a dry run changes nothing.

use crate::support::{assert_error, Server, Tenant, ROOT_TOKEN};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::Value;

/// The sample of ../shared/seeds/000_0a3b5793ffbb9a1c.txt, as the vendor wrote it.
const VENDOR_SAMPLE: &str = "\
Ext Key,Number,User,Addon license 1,Addon license 2,Addon license 3,Addon license 4
101,6567891230,John,device_ip_phone,device_mobile_app,license_dnc_checking_enabled,call_recording
102,6567891231,Alice,device_ip_phone,device_mobile_app,license_dnc_checking_enabled,call_recording
104,6567891232,Lucie,device_ip_phone,device_desktop_app,call_recording
109,6567891233,Hallie,device_ip_phone,device_desktop_app,call_recording
";

async fn post_csv(server: &Server, tenant: &Tenant, query: &str, csv: &str) -> (StatusCode, Value) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(tenant.path(&format!("/imports{query}")))
        .header(header::AUTHORIZATION, format!("Bearer {}", tenant.operator))
        .header(header::CONTENT_TYPE, "text/csv")
        .body(Body::from(csv.to_string()))
        .expect("request");
    let reply = server.send(request).await;
    (reply.status, reply.body)
}

/// A tenant with the sample's four users and enough licences for it.
async fn vendor_tenant(server: &Server) -> Tenant {
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Office", None).await;
    for name in ["John", "Alice", "Lucie", "Hallie"] {
        server.user(&tenant, &group, name).await;
    }
    for (code, quantity) in [
        ("phone_system", 4),
        ("device_ip_phone", 4),
        ("device_mobile_app", 2),
        ("license_dnc_checking_enabled", 2),
        ("call_recording", 4),
        ("device_desktop_app", 2),
    ] {
        server.provision(&tenant, code, quantity).await;
    }
    tenant
}

#[tokio::test]
async fn the_served_sample_file_is_the_vendors_and_imports_as_it_is() {
    let server = Server::start();
    let tenant = vendor_tenant(&server).await;
    let request = Request::builder()
        .method(Method::GET)
        .uri(tenant.path("/imports/sample.csv"))
        .header(header::AUTHORIZATION, format!("Bearer {}", tenant.viewer))
        .body(Body::empty())
        .expect("request");
    let reply = server.send(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let header_of = |name| reply.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(
        header_of(header::CONTENT_TYPE),
        Some("text/csv; charset=utf-8")
    );
    assert!(
        header_of(header::CONTENT_DISPOSITION).is_some_and(|d| d.starts_with("attachment")),
        "offered for download: {:?}",
        reply.headers
    );
    let sample = reply.body.as_str().expect("CSV text").to_string();
    assert_eq!(sample, VENDOR_SAMPLE);
    let (status, body) = post_csv(&server, &tenant, "", &sample).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], true, "{body}");
    assert_eq!(body["rows"], 4, "{body}");
}

#[tokio::test]
async fn the_vendors_own_sample_applies() {
    let server = Server::start();
    let tenant = vendor_tenant(&server).await;
    let (status, body) = post_csv(&server, &tenant, "", VENDOR_SAMPLE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], true);
    assert_eq!(body["rows"], 4);
    assert_eq!(body["errors"], serde_json::json!([]));
    let usage = server.usage(&tenant).await;
    for code in ["phone_system", "device_ip_phone", "call_recording"] {
        assert_eq!(usage[code]["assigned"], 4, "{code}");
    }
    let (_, users) = server
        .get(&tenant.path("/users?q=Lucie"), &tenant.viewer)
        .await;
    let lucie = &users["items"][0];
    assert_eq!(lucie["extension"], "104");
    assert_eq!(lucie["number"], "6567891232");
    let addons: Vec<&str> = lucie["licenses"][0]["addons"]
        .as_array()
        .expect("add-ons")
        .iter()
        .filter_map(|a| a["type"].as_str())
        .collect();
    assert_eq!(addons.len(), 3);
    for code in ["device_ip_phone", "device_desktop_app", "call_recording"] {
        assert!(addons.contains(&code), "{addons:?}");
    }
    let (_, found) = server
        .get(&tenant.path("/licenses?extension=109"), &tenant.viewer)
        .await;
    assert_eq!(
        found["items"].as_array().map(Vec::len),
        Some(4),
        "Hallie's base and 3 add-ons"
    );
}

#[tokio::test]
async fn a_file_with_an_unknown_addon_and_a_duplicate_extension_reports_both_rows_and_changes_nothing(
) {
    let server = Server::start();
    let tenant = vendor_tenant(&server).await;
    let events = server.event_count().await;
    let csv = "\
ext key , NUMBER,user,Addon License 1,Addon License 2
101,6567891230,John,device_ip_phone,fax_machine
102,6567891231,Alice,device_ip_phone,
101,6567891232,Lucie,call_recording,
";
    let (status, body) = post_csv(&server, &tenant, "", csv).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    let details = &body["error"]["details"];
    assert_eq!(details["applied"], false);
    assert_eq!(details["rows"], 3);
    let errors: Vec<(u64, &str, &str)> = details["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["row"].as_u64().unwrap_or(0),
                e["column"].as_str().unwrap_or(""),
                e["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            (1, "Addon License 2", "unknown_license_type"),
            (3, "Ext Key", "extension_taken"),
        ]
    );
    assert_eq!(server.event_count().await, events);
}

#[tokio::test]
async fn more_rows_than_free_licences_is_reported_for_the_rows_that_do_not_fit() {
    let server = Server::start();
    let tenant = vendor_tenant(&server).await;
    let group = server.group(&tenant, "More", None).await;
    server.user(&tenant, &group, "Zoe").await;
    let csv = format!("{VENDOR_SAMPLE}110,6567891234,Zoe,\n");
    let events = server.event_count().await;
    let (status, body) = post_csv(&server, &tenant, "", &csv).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    let errors = body["error"]["details"]["errors"]
        .as_array()
        .expect("errors")
        .clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["row"], 5);
    assert_eq!(errors[0]["code"], "no_free_license");
    assert_eq!(server.event_count().await, events);
}

#[tokio::test]
async fn a_dry_run_reports_without_applying() {
    let server = Server::start();
    let tenant = vendor_tenant(&server).await;
    let events = server.event_count().await;
    let (status, body) = post_csv(&server, &tenant, "?dry_run=true", VENDOR_SAMPLE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], false);
    assert_eq!(body["rows"], 4);
    assert_eq!(server.event_count().await, events);
    let bad = VENDOR_SAMPLE.replace("Hallie", "Nobody");
    let (status, body) = post_csv(&server, &tenant, "?dry_run=true", &bad).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    assert_eq!(
        body["error"]["details"]["errors"][0]["code"],
        "user_not_found"
    );
    assert_eq!(server.event_count().await, events);
}

#[tokio::test]
async fn a_file_without_the_required_columns_is_a_bad_request() {
    let server = Server::start();
    let tenant = vendor_tenant(&server).await;
    for csv in ["", "Name,Phone\nJohn,1\n", "Ext Key,Number,User\n"] {
        let (status, body) = post_csv(&server, &tenant, "", csv).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    let (status, body) = server
        .call(
            Method::POST,
            &tenant.path("/imports"),
            Some(&tenant.viewer),
            None,
        )
        .await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::FORBIDDEN,
        "{body}"
    );
    let _ = ROOT_TOKEN;
}
