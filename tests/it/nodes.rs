//! Several real `ledger serve` processes on one PostgreSQL log: one writes, the others follow
//! it, serve reads, forward writes, and take over when the writer is killed.

use crate::store_conformance::Postgres;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use tools::crash::{Api, Server, ROOT_TOKEN};

/// How long the test waits for something promised "within seconds" before it fails: a safety
/// net, far above the promise, not a measurement.
const SAFETY_NET: Duration = Duration::from_secs(60);

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ledger"))
}

fn role(api: &Api) -> Option<String> {
    let health = api.get("/healthz").ok()?;
    health["role"].as_str().map(str::to_string)
}

/// Wait until exactly one of `apis` says it is the writer; its index and how long it took.
fn the_writer(apis: &[&Api]) -> (usize, Duration) {
    let started = Instant::now();
    loop {
        let writers: Vec<usize> = (0..apis.len())
            .filter(|&i| role(apis[i]).as_deref() == Some("writer"))
            .collect();
        if writers.len() == 1 {
            return (writers[0], started.elapsed());
        }
        assert!(writers.len() <= 1, "two writers at once: {writers:?}");
        assert!(started.elapsed() < SAFETY_NET, "no node became the writer");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn licence_count(api: &Api, tenant: &str, min_seq: u64) -> usize {
    let page = api
        .get(&format!(
            "/v1/tenants/{tenant}/licenses?limit=1000&min_seq={min_seq}"
        ))
        .expect("listed");
    page["items"].as_array().map_or(0, Vec::len)
}

#[test]
fn three_nodes_share_one_log_forward_writes_and_fail_over_when_the_writer_dies() {
    let mut pg = Postgres::start();
    let store = pg.new_database();
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut servers: Vec<Option<Server>> = (0..3)
        .map(|i| {
            let data = scratch.path().join(format!("node-{i}"));
            Some(Server::start_on(binary(), &data, Some(&store)).expect("node started"))
        })
        .collect();
    let apis: Vec<Api> = servers
        .iter()
        .map(|s| Api::new(&s.as_ref().expect("running").base, ROOT_TOKEN, 4))
        .collect();
    let (writer, _) = the_writer(&apis.iter().collect::<Vec<_>>());
    let followers: Vec<usize> = (0..3).filter(|&i| i != writer).collect();
    let (first, second) = (&apis[followers[0]], &apis[followers[1]]);
    assert_eq!(role(first).as_deref(), Some("follower"));

    // A write sent to a follower is forwarded, and that follower reads it back at once.
    let tenant = "11111111-1111-4111-8111-111111111111";
    let created = first
        .expect(
            "POST",
            "/v1/tenants",
            Some(&json!({"id": tenant, "name": "Acme", "billing_timezone": "UTC"})),
            201,
        )
        .expect("created through a follower");
    let tenant_read = first
        .get(&format!("/v1/tenants/{tenant}"))
        .expect("read back on the same follower");
    assert_eq!(tenant_read["name"], "Acme");
    // Another node waits for that write's seq when asked to.
    let seq = created["seq"].as_u64().expect("seq");
    second
        .get(&format!("/v1/tenants/{tenant}?min_seq={seq}"))
        .expect("seen on the other follower once it reached the seq");
    let provisioned = second
        .expect(
            "POST",
            &format!("/v1/tenants/{tenant}/licenses"),
            Some(&json!({"type": "phone_system", "quantity": 5})),
            201,
        )
        .expect("provisioned through the other follower");
    let acknowledged = provisioned["seq"].as_u64().expect("seq");
    assert_eq!(licence_count(&apis[writer], tenant, acknowledged), 5);
    let behind = first.send(
        "GET",
        &format!("/healthz?min_seq={}", acknowledged + 1_000),
        None,
    );
    assert!(
        matches!(behind, Err(tools::crash::Failure::Status(503, ref body)) if body.contains("behind")),
        "a node asked to wait for a sequence nobody wrote answers 503: {behind:?}"
    );
    assert!(
        matches!(
            first.send("GET", "/healthz?min_seq=soon", None),
            Err(tools::crash::Failure::Status(400, _))
        ),
        "a bad min_seq is a 400"
    );

    // The writer dies; one of the others takes the lease and writes, nothing is lost.
    servers[writer]
        .as_mut()
        .expect("running")
        .sigkill()
        .expect("killed");
    servers[writer] = None;
    let (index, took) = the_writer(&[first, second]);
    eprintln!("nodes: a follower took over {took:?} after the writer was killed");
    let (new_writer, other) = if index == 0 {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(licence_count(new_writer, tenant, acknowledged), 5);
    let after: Value = other
        .expect(
            "POST",
            &format!("/v1/tenants/{tenant}/licenses"),
            Some(&json!({"type": "phone_system", "quantity": 2})),
            201,
        )
        .expect("a write through the remaining follower reaches the new writer");
    let last = after["seq"].as_u64().expect("seq");
    assert!(last > acknowledged, "{last} follows {acknowledged}");
    assert_eq!(licence_count(other, tenant, last), 7);
    assert_eq!(licence_count(new_writer, tenant, last), 7);
    drop(servers);

    let verified = std::process::Command::new(binary())
        .args(["verify", "--store", &store, "--data"])
        .arg(scratch.path().join("verify"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("ran verify");
    assert!(
        verified.status.success(),
        "ledger verify: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let report: Value = serde_json::from_slice(&verified.stdout).expect("a JSON report");
    assert_eq!(report["events"].as_u64(), Some(last));
}
