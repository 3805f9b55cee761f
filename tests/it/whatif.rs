//! `POST /v1/tenants/{t}/what-if` and `ledger what-if`: a preview answers who would be blocked,
//! which rules break and how this month's bill moves, and writes nothing.

use crate::support::{assert_error, send, Server, Tenant, ROOT_TOKEN};
use axum::http::{Method, StatusCode};
use chrono::{Duration, Utc};
use ledger::http::auth::token_hash;
use ledger::http::{app, App};
use ledger::ledger::Ledger;
use ledger::store::sled_store::SledStore;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The worked example of issue 7: a tree of three levels (HQ → Sales, Support → two teams
/// each), 40 users holding `phone_system`, HQ limited to 50 until 2030 and Sales to 25.
struct Example {
    tenant: Tenant,
    groups: Vec<String>,
    hq: String,
    sales: String,
    users: Vec<String>,
    phone_licenses: Vec<String>,
    recording_licenses: Vec<String>,
}

const HQ_UNTIL: &str = "2030-01-01T00:00:00Z";

async fn example(server: &Server) -> Example {
    let tenant = server.tenant().await;
    let hq = server.group(&tenant, "HQ", None).await;
    let sales = server.group(&tenant, "Sales", Some(&hq)).await;
    let support = server.group(&tenant, "Support", Some(&hq)).await;
    let mut teams = Vec::new();
    for (name, parent) in [
        ("Sales East", &sales),
        ("Sales West", &sales),
        ("Support L1", &support),
        ("Support L2", &support),
    ] {
        teams.push(server.group(&tenant, name, Some(parent)).await);
    }
    let phone_licenses = server.provision(&tenant, "phone_system", 45).await;
    let recording_licenses = server.provision(&tenant, "call_recording", 5).await;
    let (status, body) = server
        .put(
            &tenant.path(&format!("/groups/{hq}/restriction")),
            ROOT_TOKEN,
            json!({"enabled": true, "limits": {"phone_system": 50}, "valid_until": HQ_UNTIL}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server
        .restrict(&tenant, &sales, json!({"phone_system": 25}))
        .await;
    let batch: Vec<Value> = (0..40)
        .map(|n| json!({"name": format!("user {n}"), "group_id": teams[n % 4]}))
        .collect();
    let (status, body) = server
        .post(
            &tenant.path("/users/batch"),
            ROOT_TOKEN,
            json!({"users": batch}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let users: Vec<String> = body["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids in {body}"))
        .iter()
        .map(|id| id.as_str().expect("id").to_string())
        .collect();
    // Regression: /assignments picks free licences in id order, not provision order, so the
    // held licences are listed first from the answers (tests unassign phone_licenses[0]).
    let mut held = Vec::new();
    for user in &users {
        let (status, body) = server
            .post(
                &tenant.path("/assignments"),
                ROOT_TOKEN,
                json!({"user_id": user, "type": "phone_system"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        held.push(body["license_id"].as_str().expect("license_id").to_string());
    }
    let free = phone_licenses.iter().filter(|l| !held.contains(l)).cloned();
    let phone_licenses: Vec<String> = held.iter().cloned().chain(free).collect();
    let (status, body) = server
        .put(
            &tenant.path("/prices/phone_system"),
            ROOT_TOKEN,
            json!({"unit_price_minor": 1500}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut groups = vec![hq.clone(), sales.clone(), support];
    groups.extend(teams);
    Example {
        tenant,
        groups,
        hq,
        sales,
        users,
        phone_licenses,
        recording_licenses,
    }
}

async fn what_if(
    server: &Server,
    tenant: &Tenant,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    server.post(&tenant.path("/what-if"), token, body).await
}

fn this_month() -> String {
    Utc::now().format("%Y-%m").to_string()
}

/// Everything a client can read about the tenant, with the ETags, minus "now" instants.
async fn everything(server: &Server, example: &Example) -> Value {
    let tenant = &example.tenant;
    let month = this_month();
    let mut reads = serde_json::Map::new();
    reads.insert("healthz seq".into(), json!(server.event_count().await));
    for path in [
        String::new(),
        "/licenses?limit=1000".into(),
        "/users?limit=1000".into(),
        "/groups".into(),
        format!("/billing/{month}"),
        format!("/invoices/{month}"),
        "/events?limit=1000".into(),
    ] {
        let reply = server
            .request(
                Method::GET,
                &tenant.path(&path),
                Some(ROOT_TOKEN),
                None,
                &[],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        reads.insert(format!("etag {path}"), json!(reply.etag()));
        reads.insert(path, reply.body);
    }
    reads.insert("usage".into(), server.usage(tenant).await);
    for group in &example.groups {
        reads.insert(
            format!("state {group}"),
            server.group_state(tenant, group).await,
        );
    }
    for user in example.users.iter().take(3) {
        let (status, mut body) = server
            .get(
                &tenant.path(&format!(
                    "/users/{user}/entitlements/phone_system?at=2029-06-01T00:00:00Z"
                )),
                ROOT_TOKEN,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_object_mut().expect("object").remove("at");
        reads.insert(format!("entitlement {user}"), body);
    }
    Value::Object(reads)
}

#[tokio::test]
async fn a_what_if_leaves_the_event_count_every_projection_and_the_version_unchanged() {
    let server = Server::start();
    let example = example(&server).await;
    let tenant = &example.tenant;
    let before = everything(&server, &example).await;
    let version = before["etag "].clone();

    let held = &example.phone_licenses[0];
    let free_phone = &example.phone_licenses[44];
    let body = json!({"commands": [
        {"op": "set_restriction", "group_id": example.hq, "enabled": true,
         "limits": {"phone_system": 50}, "valid_until": "2020-01-01T00:00:00Z"},
        {"op": "provision", "type": "phone_system", "quantity": 5},
        {"op": "set_quantity", "type": "call_recording", "quantity": 8},
        {"op": "set_retention", "months": 6},
        {"op": "set_price", "type": "call_recording", "unit_price_minor": 300},
        {"op": "unassign", "license_id": held},
        {"op": "terminate", "license_id": held},
        {"op": "assign", "license_id": free_phone, "user_id": example.users[0]},
        {"op": "attach_addon", "license_id": example.phone_licenses[1],
         "addon_id": example.recording_licenses[0]},
        {"op": "detach_addon", "license_id": example.phone_licenses[1],
         "addon_id": example.recording_licenses[0]},
        {"op": "reassign", "license_id": example.phone_licenses[2], "user_id": example.users[0]},
        {"op": "assign_type", "user_id": example.users[0], "type": "phone_system"},
        {"op": "move_user", "user_id": example.users[5], "group_id": example.sales},
        {"op": "move_group", "group_id": example.groups[6], "parent_id": example.sales},
        {"op": "clear_restriction", "group_id": example.sales},
    ]});
    let reply = server
        .request(
            Method::POST,
            &tenant.path("/what-if"),
            Some(&tenant.admin),
            Some(body.clone()),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        json!(reply.etag()),
        version,
        "the preview names the version it saw"
    );
    let answer = &reply.body;
    assert_eq!(
        answer["results"].as_array().map(Vec::len),
        Some(15),
        "{answer}"
    );
    assert!(
        answer["results"][1]["ok"].as_bool().expect("ok"),
        "{answer}"
    );
    assert_eq!(
        answer["results"][1]["events"],
        json!(["licenses_provisioned"])
    );
    assert_eq!(
        answer["would_block"].as_array().map(Vec::len),
        Some(40),
        "{answer}"
    );
    assert_eq!(
        answer["billing_delta"]["phone_system"]["peak_units_after"],
        50
    );

    let after = everything(&server, &example).await;
    let keys = before.as_object().expect("reads").keys();
    assert_eq!(keys.len(), after.as_object().expect("reads").len());
    for key in keys {
        assert_eq!(after[key], before[key], "a what-if changed `{key}`");
    }

    // The comparison sees a real write: executing the provision moves the count and version.
    server.provision(tenant, "phone_system", 5).await;
    let written = everything(&server, &example).await;
    assert_ne!(written["healthz seq"], before["healthz seq"]);
    assert_ne!(written["etag "], version);
}

#[tokio::test]
async fn lowering_the_roots_limit_below_usage_lists_the_violation() {
    let server = Server::start();
    let example = example(&server).await;
    let (status, answer) = what_if(
        &server,
        &example.tenant,
        &example.tenant.admin,
        json!({"commands": [{"op": "set_restriction", "group_id": example.hq, "enabled": true,
                             "limits": {"phone_system": 30}, "valid_until": HQ_UNTIL}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["ok"], false);
    let result = &answer["results"][0];
    assert_eq!(result["ok"], false);
    assert_eq!(result["op"], "set_restriction");
    assert_eq!(result["error"]["code"], "rule_violation", "{answer}");
    let violations = answer["violations"].as_array().expect("violations");
    assert!(
        violations.contains(&json!({
            "index": 0, "rule": "limit_below_usage", "group_id": example.hq,
            "type": "phone_system", "limit": 30, "used": 40,
            "message": "phone_system limit 30 is below the 40 already used in group HQ",
        })),
        "{answer}"
    );
    assert!(
        violations
            .iter()
            .any(
                |v| v["rule"] == "child_limit_exceeds_parent" && v["group_id"] == example.sales
                    || v["rule"] == "limit_below_usage" && v["group_id"] == example.hq
            ),
        "{answer}"
    );
    assert_eq!(answer["would_block"], json!([]));
    assert_eq!(answer["billing_delta"], json!({}));
}

#[tokio::test]
async fn shortening_the_roots_window_lists_every_user_under_it() {
    let server = Server::start();
    let example = example(&server).await;
    let yesterday = (Utc::now() - Duration::days(1)).to_rfc3339();
    let (status, answer) = what_if(
        &server,
        &example.tenant,
        &example.tenant.admin,
        json!({"commands": [{"op": "set_restriction", "group_id": example.hq, "enabled": true,
                             "limits": {"phone_system": 50}, "valid_until": yesterday}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["results"][0]["events"], json!(["restriction_set"]));
    let blocks = answer["would_block"].as_array().expect("would_block");
    let blocked: BTreeSet<&str> = blocks
        .iter()
        .map(|b| b["user_id"].as_str().expect("user_id"))
        .collect();
    let expected: BTreeSet<&str> = example.users.iter().map(String::as_str).collect();
    assert_eq!(blocked, expected);
    assert_eq!(blocks.len(), 40);
    for block in blocks {
        assert_eq!(block["type"], "phone_system");
        assert_eq!(block["rule"], "window_expired", "{block}");
        assert_eq!(block["group_id"], example.hq.as_str());
        assert_eq!(block["group_name"], "HQ");
    }
}

#[tokio::test]
async fn billing_delta_shows_how_this_months_peak_and_amount_would_move() {
    let server = Server::start();
    let example = example(&server).await;
    let (status, answer) = what_if(
        &server,
        &example.tenant,
        &example.tenant.admin,
        json!({"commands": [
            {"op": "provision", "type": "phone_system", "quantity": 5},
            {"op": "set_retention", "months": 9},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["month"], this_month());
    assert_eq!(answer["currency"], "EUR");
    assert_eq!(
        answer["billing_delta"]["phone_system"],
        json!({"peak_units_before": 45, "peak_units_after": 50,
               "amount_minor_before": 45 * 1500, "amount_minor_after": 50 * 1500,
               "amount_minor_delta": 5 * 1500})
    );
    assert_eq!(
        answer["billing_delta"]["call_recording"],
        json!({"peak_units_before": 0, "peak_units_after": 15,
               "amount_minor_before": 0, "amount_minor_after": 0, "amount_minor_delta": 0}),
        "5 licences × 9 months / 3, no price"
    );
    // Lowering the quantity never lowers a peak already reached this month.
    let (status, answer) = what_if(
        &server,
        &example.tenant,
        &example.tenant.admin,
        json!({"commands": [{"op": "set_quantity", "type": "phone_system", "quantity": 41}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(
        answer["billing_delta"]["phone_system"]["amount_minor_delta"],
        0
    );
}

#[tokio::test]
async fn malformed_commands_are_a_400_naming_the_index_and_write_nothing() {
    let server = Server::start();
    let example = example(&server).await;
    let tenant = &example.tenant;
    let before = server.event_count().await;
    let user = &example.users[0];
    let license = &example.phone_licenses[0];
    let ok = json!({"op": "unassign", "license_id": license});
    let cases = [
        (json!({"op": "explode"}), "unknown op `explode`"),
        (json!({"license_id": license}), "op"),
        (json!({"op": "assign", "license_id": license}), "user_id"),
        (
            json!({"op": "assign", "license_id": "nope", "user_id": user}),
            "UUID",
        ),
        (
            json!({"op": "assign", "license_id": license, "user": user}),
            "unknown field",
        ),
        (
            json!({"op": "provision", "type": "phone_system", "quantity": -1}),
            "quantity: invalid value",
        ),
        (
            json!({"op": "provision", "type": "Bad Type", "quantity": 1}),
            "licence type",
        ),
        (
            json!({"op": "set_restriction", "group_id": example.hq, "enabled": true,
                "valid_until": "tomorrow"}),
            "valid_until",
        ),
        (
            json!({"op": "set_restriction", "group_id": example.hq, "enabled": true,
                "limits": {"phone_system": 1}, "reminder": {"days_before": 3, "frequency": "hourly"}}),
            "hourly",
        ),
        (
            json!({"op": "move_group", "group_id": example.sales}),
            "parent_id",
        ),
        (
            json!({"op": "set_retention", "days": 14, "months": 3}),
            "exactly one",
        ),
        (json!({"op": "set_retention"}), "exactly one"),
        (
            json!({"op": "set_price", "type": "phone_system", "unit_price_minor": "ten"}),
            "unit_price_minor",
        ),
        (json!("assign"), "op"),
    ];
    for (bad, mentions) in cases {
        let body = json!({"commands": [ok, ok, bad]});
        let (status, answer) = what_if(&server, tenant, ROOT_TOKEN, body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "bad_request");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.starts_with("commands[2]"), "{bad}: {message}");
        assert!(message.contains(mentions), "{bad}: {message}");
        assert_eq!(answer["error"]["details"]["index"], 2, "{answer}");
    }
    for (body, mentions) in [
        (json!({}), "commands"),
        (json!({"commands": "all"}), "expected a sequence"),
        (json!({"commands": [], "at": "soon"}), "at"),
        (
            json!({"commands": [], "at": "2001-01-01T00:00:00Z"}),
            "2001-01",
        ),
        (json!({"commands": vec![ok.clone(); 1001]}), "at most 1000"),
    ] {
        let (status, answer) = what_if(&server, tenant, ROOT_TOKEN, body.clone()).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "bad_request");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(message.contains(mentions), "{body}: {message}");
    }
    // Previews never build huge copies: at most 100 000 licences provisioned in all.
    let big = json!({"op": "set_quantity", "type": "phone_system", "quantity": 1_000_000});
    let (status, answer) = what_if(
        &server,
        tenant,
        ROOT_TOKEN,
        json!({"commands": vec![big; 11]}),
    )
    .await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST, "bad_request");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("commands[10] (set_quantity)"),
        "{message}"
    );
    assert!(message.contains("more than 100000 licences"), "{message}");
    let (status, answer) = server
        .raw(
            Method::POST,
            &tenant.path("/what-if"),
            Some(ROOT_TOKEN),
            b"{\"commands\": [".to_vec(),
        )
        .await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(server.event_count().await, before);
}

#[tokio::test]
async fn a_refused_command_is_a_result_not_an_error_and_later_commands_still_run() {
    let server = Server::start();
    let example = example(&server).await;
    let held = &example.phone_licenses[0];
    let unknown = "99999999-9999-4999-8999-999999999999";
    let (status, answer) = what_if(
        &server,
        &example.tenant,
        &example.tenant.operator,
        json!({"commands": [
            {"op": "assign", "license_id": unknown, "user_id": example.users[0]},
            {"op": "unassign", "license_id": held},
            {"op": "unassign", "license_id": held},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["ok"], false);
    assert_eq!(
        answer["results"][0]["error"]["code"], "not_found",
        "{answer}"
    );
    assert_eq!(answer["results"][1]["ok"], true, "{answer}");
    assert_eq!(
        answer["results"][2]["error"]["code"], "conflict",
        "{answer}"
    );
    let blocks = answer["would_block"].as_array().expect("would_block");
    assert_eq!(blocks.len(), 1, "{answer}");
    assert_eq!(blocks[0]["rule"], "holds_license");
    assert_eq!(blocks[0]["group_id"], Value::Null);
}

#[tokio::test]
async fn operators_preview_what_they_may_do_and_admins_everything() {
    let server = Server::start();
    let example = example(&server).await;
    let tenant = &example.tenant;
    let operator_ops = json!({"commands": [
        {"op": "unassign", "license_id": example.phone_licenses[0]},
        {"op": "move_user", "user_id": example.users[1], "group_id": example.sales},
    ]});
    let admin_ops = json!({"commands": [
        {"op": "unassign", "license_id": example.phone_licenses[0]},
        {"op": "set_price", "type": "phone_system", "unit_price_minor": 1},
    ]});
    for token in [&tenant.admin, &tenant.operator, ROOT_TOKEN] {
        let (status, answer) = what_if(&server, tenant, token, operator_ops.clone()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    for token in [&tenant.admin, ROOT_TOKEN] {
        let (status, answer) = what_if(&server, tenant, token, admin_ops.clone()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (status, answer) = what_if(&server, tenant, &tenant.operator, admin_ops.clone()).await;
    assert_error(status, &answer, StatusCode::FORBIDDEN, "forbidden");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(message.contains("commands[1] (set_price)"), "{message}");
    for token in [&tenant.viewer, &tenant.auditor, &tenant.billing] {
        let (status, answer) = what_if(&server, tenant, token, operator_ops.clone()).await;
        assert_error(status, &answer, StatusCode::FORBIDDEN, "forbidden");
    }
    let other = server.tenant().await;
    let (status, answer) = what_if(&server, tenant, &other.admin, operator_ops.clone()).await;
    assert_error(status, &answer, StatusCode::FORBIDDEN, "forbidden");
    let (status, answer) = server
        .call(
            Method::POST,
            &tenant.path("/what-if"),
            None,
            Some(operator_ops.clone()),
        )
        .await;
    assert_error(status, &answer, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, answer) = server
        .post(
            "/v1/tenants/99999999-9999-4999-8999-999999999999/what-if",
            ROOT_TOKEN,
            operator_ops,
        )
        .await;
    assert_error(status, &answer, StatusCode::NOT_FOUND, "not_found");
}

/// How often the test tries to reopen the store after its ledger let go of it.
const REOPEN_ATTEMPTS_MAX: u32 = 2_000;

#[tokio::test]
async fn the_command_line_prints_what_the_endpoint_answers() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SledStore::open(dir.path()).expect("open the store");
    let ledger = Ledger::start(Arc::new(store)).expect("start the ledger");
    let router = app(App {
        ledger,
        root_token_hash: token_hash(ROOT_TOKEN),
    });
    let call = |method: Method, path: String, body: Value| {
        let router = router.clone();
        async move {
            let reply = send(
                router,
                crate::support::build(method, &path, Some(ROOT_TOKEN), Some(body), &[]),
            )
            .await;
            assert!(reply.status.is_success(), "{path}: {}", reply.body);
            reply.body
        }
    };
    let tenant = call(Method::POST, "/v1/tenants".into(), json!({"name": "Acme"})).await["id"]
        .as_str()
        .expect("tenant id")
        .to_string();
    let path = |rest: &str| format!("/v1/tenants/{tenant}{rest}");
    call(
        Method::PUT,
        path("/catalog/ukey2"),
        json!({"kind": "feature", "name": "UKEY2", "enabled_by_default": true}),
    )
    .await;
    let group = call(Method::POST, path("/groups"), json!({"name": "HQ"})).await["id"].clone();
    let user = call(
        Method::POST,
        path("/users"),
        json!({"name": "Ann", "group_id": group}),
    )
    .await["id"]
        .clone();
    call(
        Method::POST,
        path("/licenses"),
        json!({"type": "phone_system", "quantity": 3}),
    )
    .await;
    call(
        Method::POST,
        path("/assignments"),
        json!({"user_id": user, "type": "phone_system"}),
    )
    .await;
    let at = (Utc::now() + Duration::minutes(5)).to_rfc3339();
    let body = json!({"at": at, "commands": [
        {"op": "set_restriction", "group_id": group, "enabled": true, "limits": {"phone_system": 0}},
        {"op": "set_restriction", "group_id": group, "enabled": true,
         "valid_until": "2021-01-01T00:00:00Z"},
        {"op": "provision", "type": "phone_system", "quantity": 2},
        {"op": "set_restriction", "group_id": group, "enabled": true,
         "valid_until": "2021-01-01T00:00:00Z", "features": {"ukey2": false}},
    ]});
    let over_http = call(Method::POST, path("/what-if"), body.clone()).await;
    let lost: Vec<&Value> = over_http["would_block"]
        .as_array()
        .map(|items| items.iter().map(|b| &b["type"]).collect())
        .unwrap_or_default();
    assert_eq!(
        lost,
        [&json!("phone_system"), &json!("ukey2")],
        "{over_http}"
    );
    drop(router);

    // The writer thread lets go of the store once its queue is closed.
    let mut released = false;
    for _ in 0..REOPEN_ATTEMPTS_MAX {
        if SledStore::open(dir.path()).is_ok() {
            released = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(released, "the store was never released");
    let file = dir.path().join("what-if.json");
    std::fs::write(&file, serde_json::to_vec(&body).expect("body")).expect("write the body");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["what-if", "--data"])
        .arg(dir.path())
        .args(["--tenant", &tenant])
        .arg(&file)
        .output()
        .expect("run ledger what-if");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(printed, over_http);

    // A malformed file is a clean failure naming the command.
    std::fs::write(&file, br#"{"commands": [{"op": "explode"}]}"#).expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["what-if", "--data"])
        .arg(dir.path())
        .args(["--tenant", &tenant])
        .arg(&file)
        .output()
        .expect("run ledger what-if");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("commands[0]"), "{stderr}");
}
