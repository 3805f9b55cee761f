//! `ledger what-if --data DIR --tenant T FILE.json`: the preview of `POST /what-if` without a
//! server. FILE holds the same JSON body; the answer is the same JSON, on stdout. The store is
//! opened read-only in effect: nothing is appended.

use crate::http::error::ApiError;
use crate::http::whatif::{answer, parse, Snapshot, WhatIfBody};
use crate::http::REQUEST_BODY_BYTES_MAX;
use crate::ledger::World;
use chrono::Utc;
use std::io::Read;
use std::path::PathBuf;

/// `ledger what-if`.
#[derive(clap::Args, Debug)]
pub struct WhatIfArgs {
    #[arg(long, default_value = "./ledger-data")]
    pub data: PathBuf,
    /// Where the log is: `sled` (the embedded store in --data) or a PostgreSQL connection
    /// string, `postgres://user@host:port/database`.
    #[arg(
        long,
        env = "LEDGER_STORE",
        hide_env_values = true,
        default_value = "sled"
    )]
    pub store: crate::cli::store::StoreSpec,
    #[arg(long)]
    pub tenant: events::TenantId,
    /// A JSON file with the body of `POST /v1/tenants/{t}/what-if`.
    pub file: PathBuf,
}

fn describe(error: ApiError) -> String {
    match error.details {
        Some(details) => format!("{}: {} ({details})", error.code, error.message),
        None => format!("{}: {}", error.code, error.message),
    }
}

/// Read the body, replay the log, preview, print.
pub fn run(args: WhatIfArgs) -> Result<(), String> {
    let shown = args.file.display();
    let file = std::fs::File::open(&args.file).map_err(|e| format!("cannot open {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(REQUEST_BODY_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() > REQUEST_BODY_BYTES_MAX {
        return Err(format!(
            "{shown} is larger than {REQUEST_BODY_BYTES_MAX} bytes"
        ));
    }
    let body: WhatIfBody = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{shown}: invalid what-if body: {e}"))?;
    let preview = parse(body).map_err(describe)?;
    let store = args
        .store
        .open(&args.data, crate::store::postgres::Access::Read)?;
    let world = World::load(store.as_ref()).map_err(|e| format!("cannot replay the log: {e}"))?;
    let clock = events::time::truncate_to_micros(Utc::now());
    let snapshot = Snapshot::take(&world, args.tenant, clock).map_err(describe)?;
    let report = answer(&snapshot, preview, None).map_err(describe)?;
    println!("{report}");
    Ok(())
}
