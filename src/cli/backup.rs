//! `ledger backup --url URL --to DIR`: a consistent copy of a serving ledger's log, read over
//! HTTP (`GET /v1/log`, root token) into a sled store in DIR, then checked like `ledger verify`
//! does. Run again on the same DIR, it copies only what was appended since. DIR is then a data
//! directory `ledger serve --data DIR` starts from: the restore.

use crate::http::log::{HEAD_HEADER, LOG_PAGE_EVENTS_MAX};
use crate::store::record::decode_record;
use crate::store::sled_store::SledStore;
use crate::store::EventStore;
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;

/// `ledger backup`.
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// The serving ledger's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: String,
    /// The directory to copy into (created; a previous backup of the same log is continued).
    #[arg(long)]
    pub to: PathBuf,
    /// The root token.
    #[arg(long, env = "LEDGER_ROOT_TOKEN", hide_env_values = true)]
    pub root_token: Option<String>,
}

/// Largest page answer read (a page holds at most 32 MiB of events, plus its framing).
const PAGE_ANSWER_BYTES_MAX: u64 = 64 << 20;

/// Copy, check, report.
pub fn run(args: &BackupArgs) -> Result<(), String> {
    let token = args
        .root_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or("no root token: set LEDGER_ROOT_TOKEN (or --root-token)")?;
    std::fs::create_dir_all(&args.to)
        .map_err(|e| format!("cannot create {}: {e}", args.to.display()))?;
    let store = SledStore::open(&args.to)
        .map_err(|e| format!("cannot open the backup in {}: {e}", args.to.display()))?;
    let started_at = store.head();
    let base = args.url.trim_end_matches('/');
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(300))
        .build();
    let mut head_seen = 0u64;
    loop {
        let after = store.head();
        let answer = agent
            .get(&format!("{base}/v1/log"))
            .query("after", &after.to_string())
            .query("limit", &LOG_PAGE_EVENTS_MAX.to_string())
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .map_err(|e| match e {
                ureq::Error::Status(status, response) => format!(
                    "{base}/v1/log answered {status}: {}",
                    response.into_string().unwrap_or_default()
                ),
                other => format!("cannot read {base}/v1/log: {other}"),
            })?;
        head_seen = answer
            .header(HEAD_HEADER)
            .and_then(|h| h.parse().ok())
            .unwrap_or(head_seen);
        let mut record = Vec::new();
        answer
            .into_reader()
            .take(PAGE_ANSWER_BYTES_MAX)
            .read_to_end(&mut record)
            .map_err(|e| format!("cannot read a page of the log: {e}"))?;
        let events = decode_record(after + 1, &record)
            .map_err(|e| format!("the page after sequence {after} is damaged: {e}"))?;
        if events.is_empty() {
            break;
        }
        store
            .append(&events)
            .map_err(|e| format!("cannot write the backup: {e}"))?;
        if store.head() >= head_seen {
            break;
        }
    }
    let report = super::offline::verify(&store, None)
        .map_err(|e| format!("the backup does not verify: {e}"))?;
    let checked: serde_json::Value = serde_json::from_str(&report).unwrap_or_default();
    println!(
        "{}",
        json!({
            "to": args.to.display().to_string(),
            "events": store.head(),
            "copied": store.head() - started_at,
            "tenants": checked["tenants"],
            "verified": true,
        })
    );
    Ok(())
}
