//! Expiry reminders reach a real local HTTP receiver exactly once, across a restart.

use crate::support::Server;
use axum::http::StatusCode;
use chrono::{Duration, Utc};
use ledger::reminders::{deliver_due, Delivery};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One POST a [`Receiver`] took: its headers (names lowercased), raw body and the body as JSON.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub raw: Vec<u8>,
    pub json: Value,
}

impl Received {
    /// The value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A tiny HTTP receiver on loopback that records every JSON body POSTed to it.
pub struct Receiver {
    pub url: String,
    bodies: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
        let url = format!(
            "http://{}/hooks/ledger",
            listener.local_addr().expect("address")
        );
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
                let mut length = 0usize;
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_ok() {
                    if let Ok(json) = serde_json::from_slice(&body) {
                        sink.lock().expect("lock").push(Received {
                            headers,
                            raw: body,
                            json,
                        });
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Receiver { url, bodies }
    }

    pub fn received(&self) -> Vec<Value> {
        self.deliveries().into_iter().map(|r| r.json).collect()
    }

    /// Every POST taken, in order.
    pub fn deliveries(&self) -> Vec<Received> {
        self.bodies.lock().expect("lock").clone()
    }
}

/// A deliverer that does not wait long.
pub fn quick() -> Delivery {
    Delivery {
        interval: std::time::Duration::from_millis(10),
        attempts: 2,
        backoff: std::time::Duration::from_millis(10),
        timeout: std::time::Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_reminder_is_delivered_exactly_once_across_a_restart() {
    let receiver = Receiver::start();
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Project Alpha", None).await;
    let until = (Utc::now() + Duration::days(5)).to_rfc3339();
    let (status, body) = server
        .put(
            &tenant.path(&format!("/groups/{group}/restriction")),
            &tenant.admin,
            json!({"enabled": true, "limits": {}, "valid_until": until,
                   "reminder": {"days_before": 10, "frequency": "once"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, due) = server.get(&tenant.path("/reminders"), &tenant.viewer).await;
    assert_eq!(due["items"][0]["group_id"], json!(group));
    assert_eq!(due["items"][0]["delivered"], false);
    let (status, body) = server
        .put(
            &tenant.path("/webhook"),
            &tenant.admin,
            json!({"url": receiver.url}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    assert_eq!(deliver_due(server.ledger(), &quick()).await, 1);
    assert_eq!(deliver_due(server.ledger(), &quick()).await, 0);
    let server = server.restart().await;
    assert_eq!(deliver_due(server.ledger(), &quick()).await, 0);

    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["group_id"], json!(group));
    assert_eq!(received[0]["group_name"], "Project Alpha");
    assert!(received[0]["reminder_id"]
        .as_str()
        .is_some_and(|id| id.len() == 32));
    let (_, due) = server.get(&tenant.path("/reminders"), &tenant.viewer).await;
    assert_eq!(due["items"][0]["delivered"], true);
    let (_, history) = server
        .get(
            &tenant.path("/events?kind=reminder_delivered"),
            &tenant.auditor,
        )
        .await;
    assert_eq!(history["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_leaves_the_reminder_due_for_the_next_look() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let group = server.group(&tenant, "Project Beta", None).await;
    let until = (Utc::now() + Duration::days(1)).to_rfc3339();
    server
        .put(
            &tenant.path(&format!("/groups/{group}/restriction")),
            &tenant.admin,
            json!({"enabled": true, "valid_until": until,
                   "reminder": {"days_before": 3, "frequency": "daily"}}),
        )
        .await;
    // A port nobody listens on: bind, read the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    server
        .put(
            &tenant.path("/webhook"),
            &tenant.admin,
            json!({"url": format!("http://127.0.0.1:{port}/x")}),
        )
        .await;
    assert_eq!(deliver_due(server.ledger(), &quick()).await, 0);
    let (_, due) = server.get(&tenant.path("/reminders"), &tenant.viewer).await;
    assert_eq!(due["items"][0]["delivered"], false);
}

#[tokio::test]
async fn a_webhook_must_be_an_http_url_and_only_admins_set_it() {
    let server = Server::start();
    let tenant = server.tenant().await;
    for url in ["not a url", "ftp://example.com/x", "file:///etc/passwd"] {
        let (status, _) = server
            .put(&tenant.path("/webhook"), &tenant.admin, json!({"url": url}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}");
    }
    let (status, _) = server
        .put(
            &tenant.path("/webhook"),
            &tenant.operator,
            json!({"url": "https://example.com/x"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_reminder_without_its_own_end_counts_back_from_the_inherited_one() {
    let server = Server::start();
    let tenant = server.tenant().await;
    let parent = server.group(&tenant, "Distributor", None).await;
    let child = server.group(&tenant, "Dealer", Some(&parent)).await;
    let parent_until = Utc::now() + Duration::days(5);
    for (group, body) in [
        (
            &parent,
            json!({"enabled": true, "valid_until": parent_until.to_rfc3339()}),
        ),
        (
            &child,
            json!({"enabled": true, "reminder": {"days_before": 10, "frequency": "once"}}),
        ),
    ] {
        let (status, body) = server
            .put(
                &tenant.path(&format!("/groups/{group}/restriction")),
                &tenant.admin,
                body,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // The dealer's window has no end of its own, but its users are blocked in five days.
    let (_, due) = server.get(&tenant.path("/reminders"), &tenant.viewer).await;
    let items = due["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{due}");
    assert_eq!(items[0]["group_id"], json!(child), "{due}");
    let reported = chrono::DateTime::parse_from_rfc3339(
        items[0]["valid_until"].as_str().expect("valid_until"),
    )
    .expect("an instant");
    assert!(
        (reported.with_timezone(&Utc) - parent_until)
            .num_seconds()
            .abs()
            < 1,
        "the inherited end: {due}"
    );
}
