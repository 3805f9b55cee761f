//! Dealers: a key scoped to a group reads and manages that group's subtree only, through the
//! real router. A distributor's tree:
//!
//! ```text
//! Distributor ─┬─ Dealer North ── Site Brno      (anna, in Site Brno)
//!              └─ Dealer South                   (clara, in Dealer South)
//! ```

use crate::support::{assert_error, id_of, Server, Tenant, ROOT_TOKEN};
use axum::http::StatusCode;
use serde_json::{json, Value};

struct Tree {
    tenant: Tenant,
    north: String,
    site: String,
    south: String,
    anna: String,
    clara: String,
    anna_phone: String,
    clara_phone: String,
    /// An admin key scoped to Dealer North.
    dealer: String,
}

async fn tree(server: &Server) -> Tree {
    let tenant = server.tenant().await;
    let distributor = server.group(&tenant, "Distributor", None).await;
    let north = server
        .group(&tenant, "Dealer North", Some(&distributor))
        .await;
    let site = server.group(&tenant, "Site Brno", Some(&north)).await;
    let south = server
        .group(&tenant, "Dealer South", Some(&distributor))
        .await;
    let (status, body) = server
        .put(
            &tenant.path(&format!("/groups/{north}/restriction")),
            ROOT_TOKEN,
            json!({"enabled": true, "limits": {"phone_system": 2}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let anna = server.user(&tenant, &site, "Anna").await;
    let clara = server.user(&tenant, &south, "Clara").await;
    let mut phones = server.provision(&tenant, "phone_system", 4).await;
    let (anna_phone, clara_phone) = (phones.remove(0), phones.remove(0));
    server.assign(&tenant, &anna_phone, &anna).await;
    server.assign(&tenant, &clara_phone, &clara).await;
    let dealer = scoped_key(server, &tenant, "admin", &north).await;
    Tree {
        tenant,
        north,
        site,
        south,
        anna,
        clara,
        anna_phone,
        clara_phone,
        dealer,
    }
}

async fn scoped_key(server: &Server, tenant: &Tenant, role: &str, group: &str) -> String {
    let (status, body) = server
        .post(
            &tenant.path("/keys"),
            ROOT_TOKEN,
            json!({"role": role, "name": format!("{role} of {group}"), "group_id": group}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["group_id"], json!(group));
    body["token"].as_str().expect("token").to_string()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_dealer_key_lists_only_its_subtree() {
    let server = Server::start();
    let t = tree(&server).await;
    let (status, groups) = server.get(&t.tenant.path("/groups"), &t.dealer).await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    let mut shown = ids(&groups);
    shown.sort();
    let mut expected = vec![t.north.clone(), t.site.clone()];
    expected.sort();
    assert_eq!(shown, expected);
    // The dealer's own group is its root: the distributor above is not named.
    let (_, north) = server
        .get(&t.tenant.path(&format!("/groups/{}", t.north)), &t.dealer)
        .await;
    assert_eq!(north["parent_id"], Value::Null, "{north}");
    let (_, users) = server.get(&t.tenant.path("/users"), &t.dealer).await;
    assert_eq!(ids(&users), vec![t.anna.clone()]);
    let (_, licenses) = server.get(&t.tenant.path("/licenses"), &t.dealer).await;
    assert_eq!(ids(&licenses), vec![t.anna_phone.clone()]);
    let (status, events) = server.get(&t.tenant.path("/events"), &t.dealer).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let text = events.to_string();
    assert!(text.contains(&t.anna), "Anna's events are shown: {text}");
    assert!(!text.contains(&t.clara), "Clara's events are not: {text}");
    assert!(!text.contains(&t.south), "Dealer South is not: {text}");
}

#[tokio::test]
async fn outside_its_subtree_a_dealer_key_gets_404_as_for_unknown_ids() {
    let server = Server::start();
    let t = tree(&server).await;
    let before = server.event_count().await;
    let paths = [
        format!("/groups/{}", t.south),
        format!("/groups/{}/state", t.south),
        format!("/users/{}", t.clara),
        format!("/users/{}/entitlements/phone_system", t.clara),
        format!("/licenses/{}", t.clara_phone),
    ];
    for path in &paths {
        let (status, body) = server.get(&t.tenant.path(path), &t.dealer).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let writes = [
        (format!("/licenses/{}/unassign", t.clara_phone), json!({})),
        (
            format!("/licenses/{}/reassign", t.anna_phone),
            json!({"user_id": t.clara}),
        ),
        (
            "/users".to_string(),
            json!({"name": "Mole", "group_id": t.south}),
        ),
        (
            "/groups".to_string(),
            json!({"name": "Mole", "parent_id": t.south}),
        ),
    ];
    for (path, body) in writes {
        let (status, answer) = server.post(&t.tenant.path(&path), &t.dealer, body).await;
        assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    }
    let (status, answer) = server
        .patch(
            &t.tenant.path(&format!("/users/{}", t.anna)),
            &t.dealer,
            json!({"group_id": t.south}),
        )
        .await;
    assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(server.event_count().await, before, "nothing was written");
}

#[tokio::test]
async fn a_dealer_key_manages_its_subtree_within_the_grant_and_not_the_grant_itself() {
    let server = Server::start();
    let t = tree(&server).await;
    // Below its group the dealer sets limits, never above what it was granted.
    let (status, body) = server
        .put(
            &t.tenant.path(&format!("/groups/{}/restriction", t.site)),
            &t.dealer,
            json!({"enabled": true, "limits": {"phone_system": 5}}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    let (status, body) = server
        .put(
            &t.tenant.path(&format!("/groups/{}/restriction", t.north)),
            &t.dealer,
            json!({"enabled": true, "limits": {"phone_system": 50}}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(body["error"]["details"]["reason"], "outside_key_scope");
    // Tenant-wide reads and writes are not a dealer's.
    for path in ["/usage", "/billing/2026-12", "/invoices/2026-12"] {
        let (status, body) = server.get(&t.tenant.path(path), &t.dealer).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, body) = server
        .post(
            &t.tenant.path("/licenses"),
            &t.dealer,
            json!({"type": "phone_system", "quantity": 1}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    // Inside, it creates a user and hands them a licence from the tenant's pool.
    let (status, body) = server
        .post(
            &t.tenant.path("/users"),
            &t.dealer,
            json!({"name": "Boris", "group_id": t.site}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let boris = id_of(&body);
    let (status, body) = server
        .post(
            &t.tenant.path("/assignments"),
            &t.dealer,
            json!({"user_id": boris, "type": "phone_system"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A third phone in Dealer North passes the 2 granted.
    let carl = server.user(&t.tenant, &t.site, "Carl").await;
    let (status, body) = server
        .post(
            &t.tenant.path("/assignments"),
            &t.dealer,
            json!({"user_id": carl, "type": "phone_system"}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    // It issues keys for its subtree only.
    let (status, body) = server
        .post(
            &t.tenant.path("/keys"),
            &t.dealer,
            json!({"role": "operator", "name": "site", "group_id": t.site}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server
        .post(
            &t.tenant.path("/keys"),
            &t.dealer,
            json!({"role": "operator", "name": "whole tenant"}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn explain_shows_a_block_above_a_dealers_group_as_its_grant() {
    let server = Server::start();
    let t = tree(&server).await;
    // The distributor's window ended yesterday: everything below is blocked.
    let (_, groups) = server.get(&t.tenant.path("/groups"), ROOT_TOKEN).await;
    let distributor = groups["items"]
        .as_array()
        .and_then(|items| items.iter().find(|g| g["name"] == "Distributor"))
        .and_then(|g| g["id"].as_str())
        .expect("the distributor group")
        .to_string();
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (status, body) = server
        .put(
            &t.tenant.path(&format!("/groups/{distributor}/restriction")),
            ROOT_TOKEN,
            json!({"enabled": true, "valid_from": "2020-01-01T00:00:00Z", "valid_until": yesterday}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = t
        .tenant
        .path(&format!("/users/{}/entitlements/phone_system", t.anna));
    let (_, admin_view) = server.get(&path, ROOT_TOKEN).await;
    assert_eq!(admin_view["blocked_by"]["group_id"], json!(distributor));
    let (status, dealer_view) = server.get(&path, &t.dealer).await;
    assert_eq!(status, StatusCode::OK, "{dealer_view}");
    assert_eq!(dealer_view["allowed"], false);
    assert_eq!(dealer_view["blocked_by"]["rule"], "window_expired");
    assert_eq!(dealer_view["blocked_by"]["group_id"], json!(t.north));
    assert_eq!(dealer_view["blocked_by"]["above_scope"], true);
    assert!(
        !dealer_view.to_string().contains(&distributor),
        "the distributor is never named to the dealer: {dealer_view}"
    );
    let (_, state) = server
        .get(
            &t.tenant.path(&format!("/groups/{}/state", t.site)),
            &t.dealer,
        )
        .await;
    assert!(
        !state.to_string().contains(&distributor),
        "group state does not name the distributor: {state}"
    );
    assert_eq!(
        state["blocked_by"][0]["group_id"],
        json!(t.north),
        "{state}"
    );
}

#[tokio::test]
async fn scoped_keys_of_every_role_keep_their_role_inside_the_subtree() {
    let server = Server::start();
    let t = tree(&server).await;
    let viewer = scoped_key(&server, &t.tenant, "viewer", &t.north).await;
    let operator = scoped_key(&server, &t.tenant, "operator", &t.north).await;
    let auditor = scoped_key(&server, &t.tenant, "auditor", &t.north).await;
    let billing = scoped_key(&server, &t.tenant, "billing", &t.north).await;
    let unassign = t
        .tenant
        .path(&format!("/licenses/{}/unassign", t.anna_phone));
    let (status, body) = server.post(&unassign, &viewer, json!({})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    for key in [&viewer, &operator, &auditor, &billing] {
        let (status, body) = server
            .get(&t.tenant.path(&format!("/users/{}", t.anna)), key)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = server
            .get(&t.tenant.path(&format!("/users/{}", t.clara)), key)
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (status, body) = server.get(&t.tenant.path("/events"), &auditor).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.get(&t.tenant.path("/events"), &operator).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = server
        .get(&t.tenant.path("/billing/2026-12"), &billing)
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = server.post(&unassign, &operator, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // What-if runs as the key would write: outside is refused, nothing of the tenant's money.
    let (status, body) = server
        .post(
            &t.tenant.path("/what-if"),
            &operator,
            json!({"commands": [{"op": "unassign", "license_id": t.clara_phone}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["results"][0]["error"]["code"], "not_found", "{body}");
    assert_eq!(body["billing_delta"], json!({}), "{body}");
}

#[tokio::test]
async fn a_taken_extension_names_its_holder_to_a_dealer_only_inside_its_subtree() {
    let server = Server::start();
    let t = tree(&server).await;
    for (user, extension) in [(&t.anna, "101"), (&t.clara, "201")] {
        let (status, body) = server
            .patch(
                &t.tenant.path(&format!("/users/{user}")),
                ROOT_TOKEN,
                json!({"extension": extension}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let create =
        |extension: &str| json!({"name": "Eva", "group_id": t.site, "extension": extension});
    // Clara is outside Dealer North: the extension is refused, her id not shown.
    let outside = [
        server
            .post(&t.tenant.path("/users"), &t.dealer, create("201"))
            .await,
        server
            .patch(
                &t.tenant.path(&format!("/users/{}", t.anna)),
                &t.dealer,
                json!({"extension": "201"}),
            )
            .await,
        server
            .post(
                &t.tenant.path("/users/batch"),
                &t.dealer,
                json!({"users": [create("201")]}),
            )
            .await,
    ];
    for (status, body) in &outside {
        assert_eq!(*status, StatusCode::CONFLICT, "{body}");
        assert!(
            !body.to_string().contains(&t.clara),
            "the holder outside the subtree is named: {body}"
        );
        assert!(body.to_string().contains("extension_taken"), "{body}");
    }
    assert_eq!(
        outside[0].1["error"]["message"],
        "extension 201 is already used by another user"
    );
    // The same in a bulk import's row report.
    let request = axum::http::Request::builder()
        .method(axum::http::Method::POST)
        .uri(t.tenant.path("/imports?dry_run=true"))
        .header("authorization", format!("Bearer {}", t.dealer))
        .header("content-type", "text/csv")
        .body(axum::body::Body::from(format!(
            "Ext Key,Number,User\n201,6567891230,{}\n",
            t.anna
        )))
        .expect("request");
    let reply = server.send(request).await;
    let report = reply.body.to_string();
    assert!(report.contains("extension_taken"), "{report}");
    assert!(report.contains("already used by another user"), "{report}");
    assert!(!report.contains(&t.clara), "the holder is named: {report}");
    // Anna is inside: named, as to the whole tenant's keys.
    let (status, body) = server
        .post(&t.tenant.path("/users"), &t.dealer, create("101"))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["error"]["details"]["reason"], "extension_taken");
    assert_eq!(body["error"]["details"]["user_id"], json!(t.anna));
    let (status, body) = server
        .post(&t.tenant.path("/users"), ROOT_TOKEN, create("201"))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["error"]["details"]["user_id"], json!(t.clara));
}

#[tokio::test]
async fn a_limit_reached_above_a_dealers_group_is_refused_as_its_grant_without_the_issuers_figures()
{
    let server = Server::start();
    let t = tree(&server).await;
    let (_, north) = server
        .get(&t.tenant.path(&format!("/groups/{}", t.north)), ROOT_TOKEN)
        .await;
    let distributor = north["parent_id"].as_str().expect("parent").to_string();
    // The distributor's limit, set by its issuer: Anna's and Clara's phones fill it.
    let (status, body) = server
        .put(
            &t.tenant.path(&format!("/groups/{distributor}/restriction")),
            ROOT_TOKEN,
            json!({"enabled": true, "limits": {"phone_system": 2}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dora = server.user(&t.tenant, &t.site, "Dora").await;
    let assign = json!({"user_id": dora, "type": "phone_system"});
    let (status, body) = server
        .post(&t.tenant.path("/assignments"), &t.dealer, assign.clone())
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    let violations = body["error"]["details"]["violations"]
        .as_array()
        .expect("violations");
    assert_eq!(violations.len(), 1, "{body}");
    let v = &violations[0];
    assert_eq!(v["rule"], "group_limit_reached");
    assert_eq!(v["group_id"], json!(t.north), "shown as the dealer's grant");
    assert_eq!(v["above_scope"], true);
    assert_eq!(v["type"], "phone_system");
    assert!(v.get("limit").is_none() && v.get("used").is_none(), "{v}");
    let text = body.to_string();
    assert!(
        !text.contains(&distributor),
        "the group above is named: {text}"
    );
    assert!(
        !text.contains("Distributor"),
        "the group above is named: {text}"
    );
    // The tenant's own keys see where it is.
    let (status, body) = server
        .post(&t.tenant.path("/assignments"), ROOT_TOKEN, assign)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    let v = &body["error"]["details"]["violations"][0];
    assert_eq!(v["group_id"], json!(distributor));
    assert_eq!(
        (v["limit"].clone(), v["used"].clone()),
        (json!(2), json!(2))
    );
}
