//! Crash safety of the real binary, through the one harness in `tools::crash` (also run as
//! `crash-trials`, which the README's 100-trial figures come from), and the server's start-up
//! refusals. Other modules start real servers with [`start`].

use serde_json::json;
use std::path::Path;
pub(crate) use tools::crash::ROOT_TOKEN;
use tools::crash::{
    run_cluster_trials, run_trials, Api, Failure, Options, RootToken, Server, StartError,
    SEED_DEFAULT,
};

/// The binary cargo built for this test run.
fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ledger"))
}

/// Start the real binary on `data` with [`ROOT_TOKEN`]; panics if it does not come up.
pub(crate) fn start(data: &Path) -> Server {
    Server::start(binary(), data).unwrap_or_else(|e| panic!("the server did not start: {e}"))
}

/// Crash trials run by default; `CRASH_TRIALS` overrides it.
const TRIALS_DEFAULT: u64 = 10;

/// A `u64` from the environment variable `name`, or `default`.
fn from_env(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a u64, not {text:?}")),
        Err(_) => default,
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_and_state_equals_replay() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let options = Options {
        binary: binary().to_path_buf(),
        trials: from_env("CRASH_TRIALS", TRIALS_DEFAULT),
        seed: from_env("CRASH_SEED", SEED_DEFAULT),
        scratch: scratch.path().to_path_buf(),
        keep: false,
        postgres: None,
    };
    let summary = run_trials(&options, |report| eprintln!("crash: {report}"));
    eprintln!("crash: {summary}");
    assert!(summary.passed(), "{summary}");
    assert_eq!(summary.trials, options.trials);
    assert_eq!(summary.lost, 0);
    assert!(summary.acknowledged > 0, "{summary}");
}

/// Trials on PostgreSQL run by default; `CRASH_TRIALS_POSTGRES` overrides it.
const POSTGRES_TRIALS_DEFAULT: u64 = 3;

#[test]
fn acknowledged_writes_on_postgres_survive_sigkill_and_state_equals_replay() {
    let pg = crate::store_conformance::Postgres::start();
    let scratch = tempfile::tempdir().expect("temp dir");
    let options = Options {
        binary: binary().to_path_buf(),
        trials: from_env("CRASH_TRIALS_POSTGRES", POSTGRES_TRIALS_DEFAULT),
        seed: from_env("CRASH_SEED", SEED_DEFAULT),
        scratch: scratch.path().to_path_buf(),
        keep: false,
        postgres: Some(pg.server_url()),
    };
    let summary = run_trials(&options, |report| eprintln!("crash on postgres: {report}"));
    eprintln!("crash on postgres: {summary}");
    assert!(summary.passed(), "{summary}");
    assert_eq!(summary.trials, options.trials);
    assert_eq!(summary.lost, 0);
    assert!(summary.acknowledged > 0, "{summary}");
}

/// Cluster trials run by default (one of each fault); `CRASH_TRIALS_NODES` overrides it.
const CLUSTER_TRIALS_DEFAULT: u64 = 2;

#[test]
fn three_nodes_under_load_apply_every_write_once_when_the_writer_or_the_database_dies() {
    let pg = crate::store_conformance::Postgres::start();
    let scratch = tempfile::tempdir().expect("temp dir");
    let options = Options {
        binary: binary().to_path_buf(),
        trials: from_env("CRASH_TRIALS_NODES", CLUSTER_TRIALS_DEFAULT),
        seed: from_env("CRASH_SEED", SEED_DEFAULT),
        scratch: scratch.path().to_path_buf(),
        keep: false,
        postgres: Some(pg.server_url()),
    };
    let crash_database = || pg.cluster().crash_and_restart();
    let summary = run_cluster_trials(&options, &crash_database, |report| {
        eprintln!("crash on three nodes: {report}")
    });
    eprintln!("crash on three nodes: {summary}");
    assert!(summary.passed(), "{summary}");
    assert_eq!(summary.trials, options.trials);
    assert_eq!(summary.lost, 0);
    assert!(summary.acknowledged > 0, "{summary}");
}

#[test]
fn serve_refuses_to_start_without_a_root_token_and_dev_prints_one_that_works() {
    let data = tempfile::tempdir().expect("temp dir");

    for token in [RootToken::Missing, RootToken::Env("")] {
        let (status, stdout, stderr) = match Server::spawn(binary(), data.path(), token, false) {
            Ok((server, _)) => panic!("the server started without a root token at {}", server.base),
            Err(StartError::Exited {
                status,
                stdout,
                stderr,
            }) => (status, stdout, stderr),
            Err(other) => panic!("{other}"),
        };
        assert!(!status.success(), "exit status {status}");
        assert!(stdout.is_empty(), "printed before refusing: {stdout:?}");
        assert!(
            stderr.contains("no root token")
                && stderr.contains("LEDGER_ROOT_TOKEN")
                && stderr.contains("--dev"),
            "the refusal does not say what is missing: {stderr}"
        );
    }

    let (server, banner) =
        Server::spawn(binary(), data.path(), RootToken::Missing, true).expect("start with --dev");
    let token = banner
        .iter()
        .find_map(|line| line.strip_prefix("dev root token: "))
        .unwrap_or_else(|| panic!("no `dev root token:` line before `listening on`: {banner:?}"))
        .trim();
    assert!(!token.is_empty());
    let body = json!({"name": "Dev s.r.o."});
    let created = Api::new(&server.base, token, 1)
        .expect("POST", "/v1/tenants", Some(&body), 201)
        .expect("the printed token creates a tenant");
    assert!(created["id"].is_string(), "{created}");
    match Api::new(&server.base, ROOT_TOKEN, 1).send("POST", "/v1/tenants", Some(&body)) {
        Err(Failure::Status(401, _)) => {}
        other => panic!("another token than the printed one must be refused: {other:?}"),
    }
}

#[test]
fn sigterm_answers_requests_in_flight_writes_a_snapshot_and_exits_cleanly() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut server = start(data.path());
    let api = Api::new(&server.base, ROOT_TOKEN, 2);
    let tenant = "44444444-4444-4444-8444-444444444444";
    api.expect(
        "POST",
        "/v1/tenants",
        Some(&json!({"id": tenant, "name": "Term", "billing_timezone": "UTC"})),
        201,
    )
    .expect("created");
    let provisioned = api
        .expect(
            "POST",
            &format!("/v1/tenants/{tenant}/licenses"),
            Some(&json!({"type": "phone_system", "quantity": 3})),
            201,
        )
        .expect("provisioned");
    let seq = provisioned["seq"].as_u64().expect("seq");
    let status = server.terminate().expect("stopped on SIGTERM");
    assert!(
        status.success(),
        "exit status {status}; stderr:\n{}",
        server.stderr()
    );
    let snapshot = data.path().join(ledger::store::snapshot::SNAPSHOT_FILE);
    assert!(
        snapshot.is_file(),
        "no snapshot left at {}",
        snapshot.display()
    );
    let read = ledger::ledger::snapshots::read(data.path())
        .expect("a sound snapshot")
        .expect("a snapshot");
    assert_eq!(
        read.head, seq,
        "the snapshot holds every acknowledged write"
    );
    // The next start uses it and answers as before.
    let restarted = start(data.path());
    let api = Api::new(&restarted.base, ROOT_TOKEN, 2);
    assert_eq!(api.health_seq().expect("health"), seq);
    let usage = api
        .get(&format!("/v1/tenants/{tenant}/usage"))
        .expect("usage");
    assert!(usage.to_string().contains("phone_system"), "{usage}");
}

#[test]
fn backup_copies_a_serving_ledger_into_a_data_directory_that_restores_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let copy = tempfile::tempdir().expect("temp dir");
    let backup_dir = copy.path().join("backup");
    let server = start(data.path());
    let api = Api::new(&server.base, ROOT_TOKEN, 2);
    let tenant = "55555555-5555-4555-8555-555555555555";
    api.expect(
        "POST",
        "/v1/tenants",
        Some(&json!({"id": tenant, "name": "Backed up", "billing_timezone": "UTC"})),
        201,
    )
    .expect("created");
    let backup = |expected_copied: u64| {
        let ran = std::process::Command::new(binary())
            .args(["backup", "--url", &server.base, "--to"])
            .arg(&backup_dir)
            .env("LEDGER_ROOT_TOKEN", ROOT_TOKEN)
            .env("RUST_LOG", "warn")
            .output()
            .expect("ran backup");
        assert!(
            ran.status.success(),
            "ledger backup: {}",
            String::from_utf8_lossy(&ran.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&ran.stdout).expect("JSON");
        assert_eq!(report["copied"].as_u64(), Some(expected_copied), "{report}");
        assert_eq!(report["verified"], true);
        report["events"].as_u64().expect("events")
    };
    let first = api.health_seq().expect("seq");
    assert_eq!(
        backup(first),
        first,
        "the whole log, while the server serves"
    );
    let provisioned = api
        .expect(
            "POST",
            &format!("/v1/tenants/{tenant}/licenses"),
            Some(&json!({"type": "phone_system", "quantity": 4})),
            201,
        )
        .expect("provisioned");
    let last = provisioned["seq"].as_u64().expect("seq");
    assert_eq!(
        backup(last - first),
        last,
        "a second run copies what is new"
    );
    let denied = std::process::Command::new(binary())
        .args(["backup", "--url", &server.base, "--to"])
        .arg(copy.path().join("other"))
        .env("LEDGER_ROOT_TOKEN", "not-the-root-token")
        .output()
        .expect("ran backup");
    assert!(!denied.status.success(), "a wrong token copies nothing");
    // The copy is a data directory: a server started on it answers as the original.
    let restored = start(&backup_dir);
    let restored_api = Api::new(&restored.base, ROOT_TOKEN, 2);
    assert_eq!(restored_api.health_seq().expect("seq"), last);
    let path = format!("/v1/tenants/{tenant}/usage");
    assert_eq!(
        restored_api.get(&path).expect("usage")["types"],
        api.get(&path).expect("usage")["types"]
    );
}
