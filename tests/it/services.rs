//! Metered services (issue 17 items 1 and 2) through the real router: defining services
//! (`PUT /services/{code}`), usage records (`POST /usage-records`) counted up to the monthly
//! cap, duplicates and late records, the service answers, entitlements naming
//! `monthly_cap_reached`, what-if and who may do what.

use crate::support::{assert_error, build, send, Server, Tenant, ROOT_TOKEN};
use axum::http::StatusCode;
use chrono::{Datelike, Duration, TimeZone, Utc};
use serde_json::{json, Value};

struct World {
    server: Server,
    tenant: Tenant,
    user: String,
}

/// Speech-to-Text (5 000 minutes included, at most 2 000 over) and AI topics (at most 10 power
/// packs, needs Speech-to-Text); a user in a group.
async fn world() -> World {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Contact centre", None).await;
    let user = server.user(&tenant, &group, "Agent").await;
    let w = World {
        server,
        tenant,
        user,
    };
    let (status, body) = w
        .define(
            "speech_to_text",
            json!({"name": "Speech-to-Text", "unit": "minute", "enabled": true,
                   "base_allowance": 5000, "monthly_cap": 2000}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = w
        .define(
            "ai_topics",
            json!({"name": "AI Topics", "unit": "power_pack", "enabled": true,
                   "monthly_cap": 10, "requires": ["speech_to_text"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    w
}

fn now_text() -> String {
    Utc::now().to_rfc3339()
}

impl World {
    async fn define(&self, code: &str, body: Value) -> (StatusCode, Value) {
        self.server
            .put(
                &self.tenant.path(&format!("/services/{code}")),
                &self.tenant.admin,
                body,
            )
            .await
    }

    async fn record(&self, records: Value) -> (StatusCode, Value) {
        self.server
            .post(
                &self.tenant.path("/usage-records"),
                &self.tenant.operator,
                json!({"records": records}),
            )
            .await
    }

    async fn service(&self, code: &str) -> Value {
        let (status, body) = self
            .server
            .get(
                &self.tenant.path(&format!("/services/{code}")),
                &self.tenant.viewer,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn statuses(body: &Value) -> Vec<(String, String, u64)> {
    body["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records in {body}"))
        .iter()
        .map(|r| {
            (
                r["id"].as_str().expect("id").to_string(),
                r["status"].as_str().expect("status").to_string(),
                r["counted"].as_u64().expect("counted"),
            )
        })
        .collect()
}

#[tokio::test]
async fn services_are_defined_and_listed_with_this_months_consumption() {
    let w = world().await;
    let (status, body) = w
        .define(
            "speech_to_text",
            json!({"name": "Speech-to-Text", "unit": "minute", "enabled": true,
                   "base_allowance": 5000, "monthly_cap": 3000}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "changing a service answers 200: {body}"
    );
    let (status, page) = w
        .server
        .get(&w.tenant.path("/services"), &w.tenant.viewer)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let codes: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["code"].as_str().expect("code"))
        .collect();
    assert_eq!(codes, vec!["ai_topics", "speech_to_text"]);
    let stt = w.service("speech_to_text").await;
    assert_eq!(stt["used"], 0);
    assert_eq!(stt["remaining"], 8000);
    assert_eq!(stt["blocked"], false);
    assert_eq!(stt["blocked_by"], Value::Null);
    assert_eq!(stt["requires"], json!([]));
    assert_eq!(
        w.service("ai_topics").await["requires"],
        json!(["speech_to_text"])
    );
}

#[tokio::test]
async fn records_count_up_to_the_cap_and_the_service_then_stops_until_the_month_ends() {
    let w = world().await;
    let at = now_text();
    let (status, body) = w
        .record(json!([
            {"id": "call-1", "service": "ai_topics", "quantity": 7, "user_id": w.user,
             "occurred_at": at},
            {"id": "call-2", "service": "ai_topics", "quantity": 5, "queue": "support",
             "occurred_at": at},
            {"id": "call-3", "service": "ai_topics", "quantity": 1, "occurred_at": at},
        ]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        statuses(&body),
        vec![
            ("call-1".into(), "counted".into(), 7),
            ("call-2".into(), "capped".into(), 3),
            ("call-3".into(), "capped".into(), 0),
        ]
    );
    assert_eq!(body["counted"], 10);
    let topics = w.service("ai_topics").await;
    assert_eq!(topics["used"], 10);
    assert_eq!(topics["reported"], 13);
    assert_eq!(topics["remaining"], 0);
    assert_eq!(topics["blocked"], true);
    assert_eq!(topics["blocked_by"], "monthly_cap_reached");
    assert_eq!(topics["cap_reached"]["record_id"], "call-2");

    let (status, answer) = w
        .server
        .get(
            &w.tenant
                .path(&format!("/users/{}/entitlements/ai_topics", w.user)),
            &w.tenant.viewer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["kind"], "service");
    assert_eq!(answer["allowed"], false);
    let blocked = &answer["blocked_by"];
    assert_eq!(blocked["rule"], "monthly_cap_reached", "{answer}");
    assert_eq!(
        (blocked["limit"].clone(), blocked["used"].clone()),
        (json!(10), json!(10))
    );
    let now = Utc::now();
    let next_month = if now.month() == 12 {
        Utc.with_ymd_and_hms(now.year() + 1, 1, 1, 0, 0, 0)
    } else {
        Utc.with_ymd_and_hms(now.year(), now.month() + 1, 1, 0, 0, 0)
    }
    .single()
    .expect("a month start");
    assert_eq!(
        blocked["resets_at"],
        json!(next_month.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    );
}

#[tokio::test]
async fn a_service_whose_requirement_is_switched_off_counts_nothing_and_explain_says_why() {
    let w = world().await;
    let (status, body) = w
        .define(
            "speech_to_text",
            json!({"enabled": false, "unit": "minute"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = w
        .record(json!([{"id": "x", "service": "ai_topics", "quantity": 1,
                        "occurred_at": now_text()}]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        statuses(&body),
        vec![("x".into(), "requires_missing".into(), 0)]
    );
    let (_, answer) = w
        .server
        .get(
            &w.tenant
                .path(&format!("/users/{}/entitlements/ai_topics", w.user)),
            &w.tenant.viewer,
        )
        .await;
    assert_eq!(answer["blocked_by"]["rule"], "requires_missing", "{answer}");
}

#[tokio::test]
async fn a_record_sent_again_is_a_duplicate_and_counts_once() {
    let w = world().await;
    let record = json!({"id": "minute-batch-7", "service": "speech_to_text", "quantity": 120,
                        "occurred_at": now_text()});
    let (status, body) = w.record(json!([record.clone()])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let events = w.server.event_count().await;
    let (status, body) = w.record(json!([record])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        statuses(&body),
        vec![("minute-batch-7".into(), "duplicate".into(), 0)]
    );
    assert_eq!(body["duplicates"], 1);
    assert_eq!(
        w.server.event_count().await,
        events,
        "a duplicate writes nothing"
    );
    assert_eq!(w.service("speech_to_text").await["used"], 120);
}

#[tokio::test]
async fn a_late_record_counts_in_the_month_it_occurred_and_says_so() {
    let w = world().await;
    let now = Utc::now();
    let this_month = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .expect("a month start");
    let last_month = this_month - Duration::hours(1);
    let (status, body) = w
        .record(
            json!([{"id": "late", "service": "speech_to_text", "quantity": 30,
                        "occurred_at": last_month.to_rfc3339()}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"][0]["late"], true, "{body}");
    let month = format!("{:04}-{:02}", last_month.year(), last_month.month());
    let (_, previous) = w
        .server
        .get(
            &w.tenant
                .path(&format!("/services/speech_to_text?month={month}")),
            &w.tenant.viewer,
        )
        .await;
    assert_eq!(previous["used"], 30, "{previous}");
    assert_eq!(w.service("speech_to_text").await["used"], 0);
}

#[tokio::test]
async fn a_bad_record_refuses_the_batch_naming_it_and_changes_nothing() {
    let w = world().await;
    let before = w.server.event_count().await;
    let (status, body) = w
        .record(json!([
            {"id": "ok", "service": "speech_to_text", "quantity": 1, "occurred_at": now_text()},
            {"id": "bad", "service": "no_such_service", "quantity": 1, "occurred_at": now_text()},
            {"id": "zero", "service": "speech_to_text", "quantity": 0, "occurred_at": now_text()},
        ]))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let errors = body["error"]["details"]["errors"]
        .as_array()
        .expect("errors");
    let indices: Vec<u64> = errors
        .iter()
        .map(|e| e["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(indices, vec![1, 2]);
    assert_eq!(errors[0]["reason"], "unknown_service");
    let (status, body) = w
        .record(
            json!([{"id": "t", "service": "speech_to_text", "quantity": 1,
                        "occurred_at": "yesterday"}]),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("records[0]"),
        "{body}"
    );
    let (status, body) = w.define("phone_system", json!({"enabled": true})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "rule_violation",
    );
    let (status, body) = w
        .define(
            "ai_qa",
            json!({"enabled": true, "requires": ["nothing_here"]}),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(w.server.event_count().await, before);
}

#[tokio::test]
async fn only_operators_record_usage_only_admins_define_services_and_dealers_do_neither() {
    let w = world().await;
    let record = json!({"records": [{"id": "r", "service": "speech_to_text", "quantity": 1,
                                     "occurred_at": now_text()}]});
    let (status, body) = w
        .server
        .post(
            &w.tenant.path("/usage-records"),
            &w.tenant.viewer,
            record.clone(),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = w
        .server
        .put(
            &w.tenant.path("/services/speech_to_text"),
            &w.tenant.operator,
            json!({"enabled": false}),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let group = w.server.group(&w.tenant, "Dealer", None).await;
    let (status, key) = w
        .server
        .post(
            &w.tenant.path("/keys"),
            ROOT_TOKEN,
            json!({"role": "admin", "name": "dealer", "group_id": group}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let dealer = key["token"].as_str().expect("token").to_string();
    let (status, body) = w
        .server
        .post(&w.tenant.path("/usage-records"), &dealer, record)
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = w.server.get(&w.tenant.path("/services"), &dealer).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn what_if_previews_a_cap_change_without_writing() {
    let w = world().await;
    let before = w.server.event_count().await;
    let (status, body) = w
        .server
        .post(
            &w.tenant.path("/what-if"),
            &w.tenant.admin,
            json!({"commands": [{"op": "set_service", "code": "speech_to_text",
                                 "enabled": true, "base_allowance": 5000, "monthly_cap": 500,
                                 "requires": ["ai_topics"]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], false, "a requirement cycle is refused: {body}");
    assert_eq!(body["violations"][0]["rule"], "requires_cycle", "{body}");
    let (status, body) = w
        .server
        .post(
            &w.tenant.path("/what-if"),
            &w.tenant.admin,
            json!({"commands": [{"op": "set_service", "code": "speech_to_text",
                                 "enabled": true, "monthly_cap": 500}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(w.server.event_count().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_never_count_past_the_cap_and_every_unit_is_accounted_for() {
    let w = world().await;
    let at = now_text();
    let path = w.tenant.path("/usage-records");
    // 8 clients at once, each 5 batches of 3 records of 1 to 3 power packs: 180 asked for,
    // AI topics allows 10 a month.
    let mut clients = Vec::new();
    for client in 0..8 {
        let router = w.server.router();
        let (path, token, at) = (path.clone(), w.tenant.operator.clone(), at.clone());
        clients.push(tokio::spawn(async move {
            let mut counted = 0u64;
            for batch in 0..5 {
                let records: Vec<Value> = (0..3u64)
                    .map(|i| {
                        json!({"id": format!("{client}-{batch}-{i}"), "service": "ai_topics",
                                    "quantity": 1 + i, "occurred_at": at})
                    })
                    .collect();
                let request = build(
                    axum::http::Method::POST,
                    &path,
                    Some(&token),
                    Some(json!({"records": records})),
                    &[],
                );
                let reply = send(router.clone(), request).await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
                counted += reply.body["counted"].as_u64().expect("counted");
            }
            counted
        }));
    }
    let mut counted = 0;
    for client in clients {
        counted += client.await.expect("a client finished");
    }
    assert_eq!(counted, 10, "exactly the cap was counted over all answers");
    let topics = w.service("ai_topics").await;
    assert_eq!(topics["used"], 10);
    assert_eq!(topics["reported"], 8 * 5 * 6);
    assert_eq!(topics["records"], 8 * 5 * 3);
}
