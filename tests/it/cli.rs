//! The offline commands on a real store: `replay` prints the HTTP invoice's exact bytes, from
//! the store or from an export; `verify` passes a sound log and names the sequence where a
//! damaged one breaks.

use crate::crash::{start, ROOT_TOKEN};
use std::path::Path;
use std::process::{Command, Output};

fn ledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the ledger binary")
}

fn post(agent: &ureq::Agent, url: &str, body: serde_json::Value) -> serde_json::Value {
    agent
        .post(url)
        .set("Authorization", &format!("Bearer {ROOT_TOKEN}"))
        .send_json(body)
        .expect("a successful write")
        .into_json()
        .expect("a JSON answer")
}

/// A tenant with priced licences, served by a real process that is then killed.
fn tenant_log(data: &Path) -> (String, String, Vec<u8>) {
    let mut server = start(data);
    let agent = ureq::agent();
    let tenant = post(
        &agent,
        &format!("{}/v1/tenants", server.base),
        serde_json::json!({"name": "Flipme Corporation", "billing_timezone": "Europe/Prague"}),
    )["id"]
        .as_str()
        .expect("tenant id")
        .to_string();
    let base = format!("{}/v1/tenants/{tenant}", server.base);
    post(
        &agent,
        &format!("{base}/licenses"),
        serde_json::json!({"type": "phone_system", "quantity": 12}),
    );
    agent
        .put(&format!("{base}/prices/phone_system"))
        .set("Authorization", &format!("Bearer {ROOT_TOKEN}"))
        .send_json(serde_json::json!({"unit_price_minor": 1500}))
        .expect("a price");
    let month = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Prague)
        .format("%Y-%m")
        .to_string();
    let mut invoice = Vec::new();
    std::io::Read::read_to_end(
        &mut agent
            .get(&format!("{base}/invoices/{month}"))
            .set("Authorization", &format!("Bearer {ROOT_TOKEN}"))
            .call()
            .expect("the invoice")
            .into_reader(),
        &mut invoice,
    )
    .expect("invoice bytes");
    server.sigkill().expect("SIGKILL the server");
    (tenant, month, invoice)
}

#[test]
fn replay_prints_the_http_invoice_bytes_from_the_store_and_from_an_export() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let (tenant, month, invoice) = tenant_log(&data);
    let data = data.to_str().expect("utf-8 path");
    let replayed = ledger(&[
        "replay", "--data", data, "--tenant", &tenant, "--month", &month,
    ]);
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    assert_eq!(replayed.stdout, invoice);
    let parsed: serde_json::Value = serde_json::from_slice(&invoice).expect("JSON invoice");
    assert_eq!(parsed["total_minor"], 18_000);

    let exported = ledger(&[
        "export", "--data", data, "--tenant", &tenant, "--format", "jsonl",
    ]);
    assert!(exported.status.success());
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &exported.stdout).expect("write the export");
    let from_file = ledger(&[
        "replay",
        "--from",
        file.to_str().expect("utf-8 path"),
        "--tenant",
        &tenant,
        "--month",
        &month,
    ]);
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );
    assert_eq!(from_file.stdout, invoice);

    // An edited export no longer matches its hashes.
    let tampered = String::from_utf8(exported.stdout)
        .expect("utf-8 export")
        .replacen("Flipme Corporation", "Flipme Corporatiom", 1);
    std::fs::write(&file, tampered).expect("write the tampered export");
    let refused = ledger(&[
        "replay",
        "--from",
        file.to_str().expect("path"),
        "--tenant",
        &tenant,
        "--month",
        &month,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not match its hash"));
}

#[test]
fn verify_passes_a_sound_log() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    tenant_log(&data);
    let sound = ledger(&["verify", "--data", data.to_str().expect("utf-8 path")]);
    assert!(
        sound.status.success(),
        "{}",
        String::from_utf8_lossy(&sound.stderr)
    );
    assert!(String::from_utf8_lossy(&sound.stdout).contains("\"ok\":true"));
}

/// Flip one byte of the first stored event in sled's file.
fn flip_first_event(data: &Path) {
    let db = data.join("db");
    let mut bytes = std::fs::read(&db).expect("read sled's file");
    let needle = b"Flipme Corporation";
    let positions: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert!(
        !positions.is_empty(),
        "the tenant's name is stored in sled's file"
    );
    for position in positions {
        bytes[position + 3] ^= 0x01;
    }
    std::fs::write(&db, bytes).expect("write the damaged file");
}

#[test]
fn verify_and_serve_refuse_a_flipped_byte_naming_the_first_lost_sequence() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    tenant_log(&data);
    flip_first_event(&data);
    let path = data.to_str().expect("utf-8 path");
    let damaged = ledger(&["verify", "--data", path]);
    assert!(!damaged.status.success());
    let message = String::from_utf8_lossy(&damaged.stderr);
    assert!(message.contains("corrupt"), "{message}");
    assert!(message.contains("sequence 1"), "{message}");
    assert!(!message.contains("panicked"), "{message}");
    let serve = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["serve", "--data", path, "--listen", "127.0.0.1:0"])
        .env("LEDGER_ROOT_TOKEN", ROOT_TOKEN)
        .output()
        .expect("run serve");
    assert!(
        !serve.status.success(),
        "the server refuses to serve a damaged log"
    );
    assert!(String::from_utf8_lossy(&serve.stderr).contains("corrupt"));
    // A second look (after sled has had its say) still refuses, whatever layer notices.
    let again = ledger(&["verify", "--data", path]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("corrupt"));
}
