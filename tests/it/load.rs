//! The load driver (`tools::load`) against a tiny server that answers 500 to every third
//! request: every request is counted once, as a success or an error, in both paces.

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tools::load::{drive, AssignUnassignChurn, LoadConfig, Pace};
use uuid::Uuid;

const CONNECTIONS: usize = 4;
const REQUESTS_PER_CONNECTION: u64 = 30;

/// Serve a router that answers 500 to every third request it sees, on 127.0.0.1.
async fn every_third_fails() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let seen = Arc::new(AtomicU64::new(0));
    let counter = seen.clone();
    let answer = move || {
        let counter = counter.clone();
        async move {
            if (counter.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(3) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
    };
    let router = Router::new()
        .route("/t/licenses/{id}/assign", post(answer.clone()))
        .route("/t/licenses/{id}/unassign", post(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (address, seen)
}

fn workloads() -> Vec<AssignUnassignChurn> {
    let pairs: Vec<(Uuid, Uuid)> = (0..CONNECTIONS * 2)
        .map(|_| (Uuid::new_v4(), Uuid::new_v4()))
        .collect();
    AssignUnassignChurn::split("/t", &pairs, CONNECTIONS)
}

fn config(address: std::net::SocketAddr, pace: Pace) -> LoadConfig {
    LoadConfig {
        address,
        // Long enough that the request cap, not the clock, ends the run.
        duration: Duration::from_secs(120),
        pace,
        seed: 1,
        headers: vec![("authorization".into(), "Bearer t".into())],
        requests_per_connection_max: Some(REQUESTS_PER_CONNECTION),
    }
}

async fn counts_every_request_once(pace: Pace) {
    let (address, seen) = every_third_fails().await;
    let (report, returned) = drive(&config(address, pace), workloads()).await;
    let total = CONNECTIONS as u64 * REQUESTS_PER_CONNECTION;
    assert_eq!(returned.len(), CONNECTIONS);
    assert_eq!(seen.load(Ordering::SeqCst), total);
    assert_eq!(report.answered, total);
    assert_eq!(report.failures, total / 3);
    assert_eq!(report.successes, total - total / 3);
    assert_eq!(report.transport_errors, 0);
    assert_eq!(report.not_sent, 0);
    assert_eq!(report.errors(), total / 3);
    assert_eq!(report.statuses.get(&500), Some(&(total / 3)));
    assert_eq!(report.success_latencies.len() as u64, report.successes);
    assert!(report.summary().contains("non-2xx"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_successes_and_server_errors() {
    counts_every_request_once(Pace::ClosedLoop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_counts_successes_and_server_errors() {
    counts_every_request_once(Pace::OpenLoop {
        requests_per_second: 2_000.0,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_gone_counts_as_transport_errors() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    drop(listener);
    let (report, _) = drive(&config(address, Pace::ClosedLoop), workloads()).await;
    assert_eq!(report.successes, 0);
    assert_eq!(report.answered, 0);
    assert_eq!(
        report.transport_errors + report.not_sent,
        CONNECTIONS as u64 * REQUESTS_PER_CONNECTION
    );
}
