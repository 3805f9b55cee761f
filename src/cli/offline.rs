//! Commands that read the log without a server: replay, export, verify.

use crate::http::imports::IMPORT_BYTES_MAX;
use crate::ledger::World;
use crate::store::sled_store::SledStore;
use crate::store::{Error as StoreError, EventStore};
use events::{evolve, Envelope, EventHash, Tenant, TenantId};
use projections::{invoice, invoice_bytes, Billing, Month};
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::path::Path;

/// Open the store read side, explaining the usual failure (a server holding the lock).
pub fn open_store(data: &Path) -> Result<SledStore, String> {
    if !data.exists() {
        return Err(format!("no store at {}", data.display()));
    }
    SledStore::open(data).map_err(|e| {
        let text = e.to_string();
        let hint = if text.contains("lock") {
            " (a server is running on it: stop it, or replay an export with --from)"
        } else {
            ""
        };
        format!("cannot open the store in {}: {text}{hint}", data.display())
    })
}

/// Fold one tenant's events of the whole log into billing, checking its hash chain.
pub fn replay_billing(store: &dyn EventStore, tenant: TenantId) -> Result<Billing, String> {
    let mut billing = Billing::default();
    let mut chain = ChainCheck::default();
    let mut failure = None;
    let progress = progress_bar(store.head(), "replaying");
    store
        .scan_tenant(tenant, 0, &mut |stored| {
            progress.set_position(stored.seq);
            let step = stored.decode().and_then(|envelope| {
                let hash = stored.hash();
                chain.check(&envelope)?;
                chain.last = hash;
                billing.apply(&envelope, hash);
                Ok(())
            });
            match step {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })
        .map_err(|e| e.to_string())?;
    progress.finish_and_clear();
    if let Some(e) = failure {
        return Err(e.to_string());
    }
    if chain.version == 0 {
        return Err(format!("tenant {tenant} has no events in this log"));
    }
    Ok(billing)
}

/// A progress bar over global sequences on a terminal; hidden when stderr is piped.
pub fn progress_bar(total: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {bar:40} {pos}/{len} events ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

#[derive(Default)]
struct ChainCheck {
    version: u64,
    last: EventHash,
}

impl ChainCheck {
    fn check(&mut self, envelope: &Envelope) -> Result<(), StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            seq: envelope.seq,
            reason: reason.to_string(),
        };
        if envelope.version != self.version + 1 {
            return Err(corrupt("tenant version out of order"));
        }
        if envelope.prev_hash != self.last {
            return Err(corrupt("hash chain broken"));
        }
        self.version = envelope.version;
        Ok(())
    }
}

/// Longest line of an export that `replay --from` reads, in bytes: the JSON of the largest
/// envelope the store takes, with room to spare. A longer line is refused before it is held
/// whole in memory.
pub const EXPORT_LINE_BYTES_MAX: usize = 4 * events::event::ENVELOPE_BYTES_MAX as usize;

/// Fold an export file (one JSON envelope per line) for one tenant, re-encoding every event
/// and checking it against the exported hash and the chain.
pub fn replay_billing_from_export(file: &Path, tenant: TenantId) -> Result<Billing, String> {
    let mut reader = std::io::BufReader::new(
        std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?,
    );
    let mut billing = Billing::default();
    let mut chain = ChainCheck::default();
    let mut buffer = Vec::new();
    for index in 0.. {
        buffer.clear();
        let read = std::io::Read::take(&mut reader, EXPORT_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buffer)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if read == 0 {
            break;
        }
        let text = buffer.strip_suffix(b"\n").unwrap_or(&buffer);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.len() > EXPORT_LINE_BYTES_MAX {
            return Err(format!(
                "line {} of {} is longer than {EXPORT_LINE_BYTES_MAX} bytes",
                index + 1,
                file.display()
            ));
        }
        let line = std::str::from_utf8(text)
            .map_err(|e| format!("line {} of {}: {e}", index + 1, file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let exported: ExportLine = serde_json::from_str(line)
            .map_err(|e| format!("line {}: not an exported event: {e}", index + 1))?;
        if exported.envelope.tenant != tenant {
            continue;
        }
        let hash = Envelope::hash_of(&exported.envelope.encode());
        if hash.to_hex() != exported.hash {
            return Err(format!(
                "line {}: event {} does not match its hash",
                index + 1,
                exported.envelope.seq
            ));
        }
        chain.check(&exported.envelope).map_err(|e| e.to_string())?;
        chain.last = hash;
        billing.apply(&exported.envelope, hash);
    }
    if chain.version == 0 {
        return Err(format!(
            "tenant {tenant} has no events in {}",
            file.display()
        ));
    }
    Ok(billing)
}

/// One line of a JSONL export: the whole envelope and its hash.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ExportLine {
    #[serde(flatten)]
    pub envelope: Envelope,
    pub hash: String,
}

/// The invoice bytes of a month, as `GET /invoices/{month}` answers them.
pub fn replay_invoice(billing: &Billing, month: &str) -> Result<Vec<u8>, String> {
    let month =
        Month::parse(month).ok_or_else(|| format!("month must be YYYY-MM, not `{month}`"))?;
    Ok(invoice_bytes(&invoice(billing, month)))
}

/// `ledger import`: print the report; a bad file exits non-zero with the report.
pub fn import(args: &super::ImportArgs) -> Result<(), String> {
    let bytes = read_import_file(&args.file)?;
    if let Some(base) = &args.url {
        return import_remote(args, base, &bytes);
    }
    let rows = crate::http::imports::parse_csv(&bytes)?;
    let count = rows.len();
    let access = if args.dry_run {
        crate::store::postgres::Access::Read
    } else {
        crate::store::postgres::Access::Write
    };
    let store = args.store.open(&args.data, access)?;
    let mut world = World::load(store.as_ref()).map_err(|e| e.to_string())?;
    if !world.tenants.contains_key(&args.tenant) {
        return Err(format!("tenant {} not found", args.tenant));
    }
    let request = crate::ledger::Request {
        tenant: args.tenant,
        actor: crate::ledger::Actor {
            id: format!(
                "cli:{}",
                std::env::var("USER").unwrap_or_else(|_| "import".into())
            ),
            reason: Some(format!("import of {}", args.file.display())),
            scope: None,
        },
        expected_version: None,
        command: events::Command::Import(rows),
    };
    let now = events::time::truncate_to_micros(chrono::Utc::now());
    let now = world.last_recorded_at.map_or(now, |last| last.max(now));
    let mut encoded = Vec::new();
    match world.decide_into(&request, events::CommandId::new_random(), now, &mut encoded) {
        Ok(done) => {
            if !args.dry_run {
                store.append(&encoded).map_err(|e| e.to_string())?;
            }
            println!(
                "{}",
                json!({"applied": !args.dry_run, "rows": count, "errors": [], "events": done.events.len()})
            );
            Ok(())
        }
        Err(crate::ledger::ExecError::Rejected(events::Rejection::ImportRejected(errors))) => {
            let errors: Vec<serde_json::Value> = errors
                .iter()
                .map(|e| json!({"row": e.row, "column": e.column, "code": e.code, "message": e.message}))
                .collect();
            println!(
                "{}",
                json!({"applied": false, "rows": count, "errors": errors})
            );
            Err(format!(
                "{} row(s) are bad; nothing was applied",
                errors.len()
            ))
        }
        Err(other) => Err(other.to_string()),
    }
}

/// The import file, refused whole past [`IMPORT_BYTES_MAX`] (the bound `POST /imports` has)
/// without reading more than one byte beyond it.
fn read_import_file(file: &Path) -> Result<Vec<u8>, String> {
    let shown = file.display();
    let opened = std::fs::File::open(file).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(opened, IMPORT_BYTES_MAX as u64 + 1),
        &mut bytes,
    )
    .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() > IMPORT_BYTES_MAX {
        return Err(format!(
            "{shown} is larger than {IMPORT_BYTES_MAX} bytes; split the import"
        ));
    }
    Ok(bytes)
}

fn import_remote(args: &super::ImportArgs, base: &str, bytes: &[u8]) -> Result<(), String> {
    let token = args
        .token
        .as_deref()
        .ok_or("--url needs a token in LEDGER_TOKEN (or --token)")?;
    let url = format!(
        "{}/v1/tenants/{}/imports?dry_run={}",
        base.trim_end_matches('/'),
        args.tenant,
        args.dry_run
    );
    let answer = ureq::post(&url)
        .set("Authorization", &format!("Bearer {token}"))
        .set("Content-Type", "text/csv")
        .send_bytes(bytes);
    match answer {
        Ok(response) => {
            println!("{}", response.into_string().map_err(|e| e.to_string())?);
            Ok(())
        }
        Err(ureq::Error::Status(status, response)) => {
            println!("{}", response.into_string().unwrap_or_default());
            Err(format!("the server answered {status}"))
        }
        Err(e) => Err(format!("cannot reach {base}: {e}")),
    }
}

/// Export format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

/// Write one tenant's events recorded in `[since, until)` to `out`; returns how many.
pub fn export(
    store: &dyn EventStore,
    tenant: TenantId,
    since: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, String> {
    let mut selected = Vec::new();
    for stored in store.read_tenant(tenant).map_err(|e| e.to_string())? {
        let envelope = stored.decode().map_err(|e| e.to_string())?;
        let before = since.is_some_and(|s| envelope.recorded_at < s);
        let after = until.is_some_and(|u| envelope.recorded_at >= u);
        if !before && !after {
            selected.push((envelope, stored.hash().to_hex()));
        }
    }
    match format {
        ExportFormat::Jsonl => {
            for (envelope, hash) in &selected {
                let line = serde_json::to_string(&ExportLineRef { envelope, hash })
                    .map_err(|e| e.to_string())?;
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
            }
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "seq",
                "version",
                "recorded_at",
                "actor",
                "reason",
                "kind",
                "data",
                "hash",
            ])
            .map_err(|e| e.to_string())?;
            for (envelope, hash) in &selected {
                let event = crate::http::licenses::event_json(envelope, hash);
                w.write_record([
                    envelope.seq.to_string(),
                    envelope.version.to_string(),
                    crate::http::views::instant(envelope.recorded_at),
                    envelope.actor.clone(),
                    envelope.reason.clone().unwrap_or_default(),
                    envelope.event.kind().to_string(),
                    event["data"].to_string(),
                    hash.clone(),
                ])
                .map_err(|e| e.to_string())?;
            }
            w.flush().map_err(|e| e.to_string())?;
        }
    }
    Ok(selected.len() as u64)
}

#[derive(serde::Serialize)]
struct ExportLineRef<'a> {
    #[serde(flatten)]
    envelope: &'a Envelope,
    hash: &'a str,
}

/// Replay the whole log (sequences, checksums, hash chains), then rebuild every tenant from
/// its own stream through the tenant index and check it equals the global replay.
pub fn verify(store: &dyn EventStore, dir: Option<&Path>) -> Result<String, String> {
    let progress = progress_bar(store.head(), "verifying");
    let world = World::load_observed(store, &mut |seq| progress.set_position(seq))
        .map_err(|e| e.to_string())?;
    progress.finish_and_clear();
    let mut tenants: Vec<&TenantId> = world.tenants.keys().collect();
    tenants.sort();
    for tenant in tenants {
        let mut state = Tenant::empty(*tenant);
        let mut billing = Billing::default();
        for stored in store.read_tenant(*tenant).map_err(|e| e.to_string())? {
            let envelope = stored.decode().map_err(|e| e.to_string())?;
            evolve(&mut state, &envelope.event, envelope.version);
            state.last_hash = stored.hash();
            billing.apply(&envelope, stored.hash());
        }
        if Some(&state) != world.tenants.get(tenant).map(|t| &**t) {
            return Err(format!(
                "tenant {tenant}: state rebuilt from its stream differs from the global replay (version {} vs {})",
                state.version,
                world.tenants.get(tenant).map_or(0, |t| t.version)
            ));
        }
        if Some(&billing) != world.billing.get(tenant).map(|b| &**b) {
            return Err(format!(
                "tenant {tenant}: billing rebuilt from its stream differs from the global replay"
            ));
        }
    }
    let snapshot = match dir {
        Some(dir) => verify_snapshot(store, dir, &world)?,
        None => Value::Null,
    };
    Ok(json!({
        "ok": true, "events": world.head, "tenants": world.tenants.len(), "snapshot": snapshot,
    })
    .to_string())
}

/// The snapshot in `dir`, if any, plus the events after it must equal the full replay: a
/// snapshot the server would start from is checked like every other projection.
fn verify_snapshot(store: &dyn EventStore, dir: &Path, replayed: &World) -> Result<Value, String> {
    let snapshot = match crate::ledger::snapshots::read(dir) {
        Ok(None) => return Ok(Value::Null),
        Ok(Some(snapshot)) => snapshot,
        Err(reason) => {
            return Err(format!(
            "snapshot: {reason} (the server would replay the whole log; delete {} to silence this)",
            dir.join(crate::store::snapshot::SNAPSHOT_FILE).display()
        ))
        }
    };
    let at = snapshot.head;
    let resumed = World::load_after_snapshot(store, snapshot, &mut |_| {})
        .map_err(|reason| format!("snapshot at sequence {at}: {reason}"))?;
    if &resumed != replayed {
        return Err(format!(
            "snapshot at sequence {at}: the snapshot plus the events after it differs from a full replay"
        ));
    }
    Ok(json!({"seq": at}))
}
