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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn standby_script(args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-standby.sh");
    let ran = std::process::Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .expect("ran scripts/pg-standby.sh");
    assert!(
        ran.status.success(),
        "pg-standby.sh {args:?}: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
}

#[test]
fn writes_acknowledged_on_the_primary_are_on_the_promoted_standby() {
    use ledger::store::postgres::{Access, PostgresStore};
    use ledger::store::{EncodedEvent, EventStore};
    let dir = std::env::temp_dir().join(format!("ledger-it-standby-{}", uuid::Uuid::new_v4()));
    let dir_text = dir.display().to_string();
    let (primary, standby) = (free_port(), free_port());
    /// Stops both clusters and removes them, however the test ends.
    struct Clusters(String);
    impl Drop for Clusters {
        fn drop(&mut self) {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-standby.sh");
            let _ = std::process::Command::new("bash")
                .args([script, "stop", &self.0])
                .output();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _clusters = Clusters(dir_text.clone());
    standby_script(&[
        "start",
        &dir_text,
        &primary.to_string(),
        &standby.to_string(),
    ]);
    let url = |port: u16| format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let tenant = events::TenantId::new_random();
    let written: Vec<EncodedEvent> = (1..=50)
        .map(|seq| EncodedEvent {
            seq,
            tenant,
            bytes: format!("event {seq}").into_bytes(),
        })
        .collect();
    let mut admin = postgres::Client::connect(&url(primary), postgres::NoTls).expect("connected");
    let replication: Vec<(String, String)> = admin
        .query(
            "SELECT application_name, sync_state FROM pg_stat_replication",
            &[],
        )
        .expect("read")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        replication,
        vec![("standby".to_string(), "sync".to_string())],
        "the standby is synchronous"
    );
    let commit: String = admin
        .query_one("SHOW synchronous_commit", &[])
        .expect("read")
        .get(0);
    assert_eq!(commit, "remote_apply");
    drop(admin);
    {
        let store = PostgresStore::open(&url(primary), Access::Write).expect("opened the primary");
        for chunk in written.chunks(10) {
            store
                .append(chunk)
                .expect("acknowledged by primary and standby");
        }
    }
    // The primary's machine is lost: no clean shutdown, then the standby is promoted.
    let bin = tools::postgres::find_server_binaries().expect("PostgreSQL");
    let pg_ctl = bin.join("pg_ctl");
    let mut immediate = if running_as_root() {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
        c
    } else {
        std::process::Command::new(&pg_ctl)
    };
    let stopped = immediate
        .args([
            "-D",
            &format!("{dir_text}/primary"),
            "-m",
            "immediate",
            "stop",
        ])
        .output()
        .expect("ran pg_ctl");
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    standby_script(&["promote", &dir_text]);
    let promoted = PostgresStore::open(&url(standby), Access::Write).expect("opened the standby");
    let mut found = Vec::new();
    promoted
        .scan(0, &mut |e| {
            found.push(e);
            true
        })
        .expect("scanned");
    assert_eq!(
        found, written,
        "every acknowledged append is on the standby"
    );
    promoted
        .append(&[EncodedEvent {
            seq: 51,
            tenant,
            bytes: b"after the promotion".to_vec(),
        }])
        .expect("the promoted standby takes writes");
}

/// Whether this process runs as root (PostgreSQL then runs as `postgres`).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

/// Provision one licence through `api`, retrying while the nodes recover; the ids of each
/// acknowledged provisioning, and how many answers had an unknown outcome (503 or a cut
/// connection: maybe written, maybe not).
fn provision_until_acknowledged(api: &Api, tenant: &str) -> (Vec<String>, usize) {
    let started = Instant::now();
    let mut unknown = 0;
    loop {
        let sent = api.send(
            "POST",
            &format!("/v1/tenants/{tenant}/licenses"),
            Some(&json!({"type": "phone_system", "quantity": 1})),
        );
        match sent {
            Ok((201, body)) => {
                let ids = body["ids"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|id| id.as_str().expect("id").to_string())
                    .collect();
                return (ids, unknown);
            }
            other => {
                unknown += 1;
                assert!(
                    started.elapsed() < SAFETY_NET,
                    "no write acknowledged after the database came back: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

#[test]
fn nodes_go_on_writing_after_the_database_crashes_and_lose_nothing_acknowledged() {
    let mut pg = Postgres::start();
    let store = pg.new_database();
    let scratch = tempfile::tempdir().expect("temp dir");
    let servers: Vec<Server> = (0..2)
        .map(|i| {
            let data = scratch.path().join(format!("node-{i}"));
            Server::start_on(binary(), &data, Some(&store)).expect("node started")
        })
        .collect();
    let apis: Vec<Api> = servers
        .iter()
        .map(|s| Api::new(&s.base, ROOT_TOKEN, 4))
        .collect();
    let (writer, _) = the_writer(&apis.iter().collect::<Vec<_>>());
    let follower = &apis[1 - writer];
    let tenant = "22222222-2222-4222-8222-222222222222";
    follower
        .expect(
            "POST",
            "/v1/tenants",
            Some(&json!({"id": tenant, "name": "Crash", "billing_timezone": "UTC"})),
            201,
        )
        .expect("created");
    let mut acknowledged = Vec::new();
    let mut unknown = 0;
    for round in 0..3 {
        for api in [&apis[0], &apis[1]] {
            let (ids, maybe) = provision_until_acknowledged(api, tenant);
            acknowledged.extend(ids);
            unknown += maybe;
        }
        eprintln!("nodes: database crash {}", round + 1);
        pg.crash_and_restart();
    }
    for api in [&apis[0], &apis[1]] {
        let (ids, maybe) = provision_until_acknowledged(api, tenant);
        acknowledged.extend(ids);
        unknown += maybe;
    }
    let (writer, _) = the_writer(&apis.iter().collect::<Vec<_>>());
    let head = apis[writer].health_seq().expect("seq");
    for api in &apis {
        let listed = api
            .get(&format!(
                "/v1/tenants/{tenant}/licenses?limit=1000&min_seq={head}"
            ))
            .expect("listed");
        let ids: std::collections::BTreeSet<String> = listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|l| l["id"].as_str().expect("id").to_string())
            .collect();
        for id in &acknowledged {
            assert!(ids.contains(id), "acknowledged licence {id} is missing");
        }
        assert!(
            ids.len() <= acknowledged.len() + unknown,
            "{} licences, {} acknowledged, {unknown} unknown outcomes",
            ids.len(),
            acknowledged.len()
        );
    }
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
}
