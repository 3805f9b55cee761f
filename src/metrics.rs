//! Prometheus metrics: events appended, batch sizes, append-and-flush latency, HTTP requests
//! by route and status. One process-wide recorder, rendered by `GET /metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
const SIZE_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Install the recorder once; later calls return the same handle. `None` if another recorder
/// was installed first (metrics are then not rendered, nothing else changes).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &LATENCY_BUCKETS_SECONDS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Prefix("ledger_batch_".into()), &SIZE_BUCKETS)
                })
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .as_ref()
}

/// The Prometheus text exposition.
pub fn render() -> String {
    match handle() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}

/// Record one committed batch.
pub fn batch_committed(commands: usize, events: usize, append_seconds: f64) {
    metrics::counter!("ledger_events_appended_total").increment(events as u64);
    metrics::counter!("ledger_commands_total").increment(commands as u64);
    metrics::histogram!("ledger_batch_events").record(events as f64);
    metrics::histogram!("ledger_batch_commands").record(commands as f64);
    metrics::histogram!("ledger_append_flush_seconds").record(append_seconds);
}

/// Record one HTTP answer.
pub fn http_request(route: &str, method: &str, status: u16, seconds: f64) {
    let labels = [
        ("route", route.to_string()),
        ("method", method.to_string()),
        ("status", status.to_string()),
    ];
    metrics::counter!("ledger_http_requests_total", &labels).increment(1);
    metrics::histogram!("ledger_http_request_seconds", "route" => route.to_string())
        .record(seconds);
}

/// Record this node's part in a shared log: whether it writes, and how far behind it is.
pub fn node(writer: bool, lag_events: Option<u64>) {
    metrics::gauge!("ledger_node_writer").set(if writer { 1.0 } else { 0.0 });
    if let Some(lag) = lag_events {
        metrics::gauge!("ledger_follower_lag_events").set(lag as f64);
    }
}
