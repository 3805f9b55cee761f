//! The metered-usage rows of the bench: usage records ingested through HTTP in batches of
//! 1 000 (records/s and the p99 of a batch, closed loop), and the fold of a month of records
//! into billing with the invoice's metered line.

use super::common::{ms, request, serve, BenchArgs, Row};
use crate::load::{drive, LoadConfig, Outgoing, Pace, Workload};
use bytes::Bytes;
use chrono::{DateTime, Duration as Span, TimeZone, Utc};
use events::metering::{NewUsageRecord, Service};
use events::{decide, evolve, Command, CommandId, Context, Envelope, Tenant, TenantId, TypeCode};
use hyper::Method;
use ledger::http::auth::token_hash;
use ledger::http::{app, App};
use ledger::ledger::Ledger;
use ledger::store::sled_store::SledStore;
use projections::billing::{invoice, Billing, Month};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Records in one HTTP batch.
const RECORDS_PER_BATCH: usize = 1000;
/// The target of issue 17 for ingestion.
const TARGET_RECORDS_PER_SECOND: f64 = 200_000.0;
/// Concurrent connections sending batches.
const CONNECTIONS: usize = 16;
const OPERATOR_TOKEN: &str = "bench-usage-operator";

fn service() -> Service {
    Service {
        code: TypeCode::from("speech_to_text"),
        name: "Speech-to-Text".into(),
        unit: "minute".into(),
        enabled: true,
        base_allowance: 5000,
        monthly_cap: None,
        requires: vec![],
    }
}

/// Batches of records with ids no other connection uses.
struct UsageBatches {
    prefix: String,
    connection: usize,
    sent: u64,
    occurred_at: String,
}

impl Workload for UsageBatches {
    fn next_request(&mut self) -> Outgoing {
        let records: Vec<serde_json::Value> = (0..RECORDS_PER_BATCH)
            .map(|i| {
                serde_json::json!({
                    "id": format!("c{}-{}-{i}", self.connection, self.sent),
                    "service": "speech_to_text",
                    "quantity": 1,
                    "queue": "support",
                    "occurred_at": self.occurred_at,
                })
            })
            .collect();
        self.sent += 1;
        Outgoing {
            method: Method::POST,
            path: format!("{}/usage-records", self.prefix),
            body: Bytes::from(serde_json::json!({ "records": records }).to_string()),
        }
    }
}

/// Both rows; a scenario that cannot run says why in its cell.
pub(super) fn usage_rows(runtime: &Runtime, scratch: &Path, args: &BenchArgs) -> Vec<Row> {
    let mut rows = Vec::new();
    if args.usage_seconds > 0 {
        eprintln!(
            "usage: batches of {RECORDS_PER_BATCH} records over HTTP for {} s …",
            args.usage_seconds
        );
        rows.push(
            ingestion(runtime, scratch, args.usage_seconds).unwrap_or_else(|why| Row {
                scenario: "usage records over HTTP".into(),
                figure: format!("not measured: {why}"),
                reference: String::new(),
                ratio: String::new(),
            }),
        );
    }
    if args.usage_records > 0 {
        eprintln!("usage: a month of {} records …", args.usage_records);
        rows.push(month_fold(args.usage_records));
    }
    rows
}

fn ingestion(runtime: &Runtime, scratch: &Path, seconds: u64) -> Result<Row, String> {
    let store = Arc::new(SledStore::open(scratch).map_err(|e| e.to_string())?);
    let ledger = Ledger::start(store).map_err(|e| e.to_string())?;
    let tenant = TenantId::new_random();
    let setup = [
        Command::CreateTenant {
            name: "Usage bench".into(),
            billing_timezone: "UTC".into(),
            currency: "EUR".into(),
        },
        Command::DefineService(service()),
        Command::IssueKey {
            key: events::KeyId::new_random(),
            name: "usage load".into(),
            role: events::Role::Operator,
            token_hash: token_hash(OPERATOR_TOKEN),
            group: None,
        },
    ];
    for command in setup {
        runtime
            .block_on(ledger.execute(request(tenant, command)))
            .map_err(|e| e.to_string())?;
    }
    let router = app(App {
        ledger,
        root_token_hash: token_hash("bench-usage-root"),
    });
    let occurred_at = Utc::now().to_rfc3339();
    let report = runtime.block_on(async {
        let (address, serving) = serve(router).await?;
        let workloads: Vec<UsageBatches> = (0..CONNECTIONS)
            .map(|connection| UsageBatches {
                prefix: format!("/v1/tenants/{tenant}"),
                connection,
                sent: 0,
                occurred_at: occurred_at.clone(),
            })
            .collect();
        let config = LoadConfig {
            address,
            duration: Duration::from_secs(seconds),
            pace: Pace::ClosedLoop,
            seed: 17,
            headers: vec![("authorization".into(), format!("Bearer {OPERATOR_TOKEN}"))],
            requests_per_connection_max: None,
        };
        let (report, _) = drive(&config, workloads).await;
        serving.stop().await;
        Ok::<_, String>(report)
    })?;
    let records_per_second = report.successes_per_second() * RECORDS_PER_BATCH as f64;
    Ok(Row {
        scenario: format!(
            "usage records over HTTP, batches of {RECORDS_PER_BATCH}, {CONNECTIONS} connections, closed loop"
        ),
        figure: format!(
            "{records_per_second:.0} records/s; batch p50 {} p99 {}; {} batches, {} errors",
            ms(report.percentile(0.5)),
            ms(report.percentile(0.99)),
            report.successes,
            report.errors()
        ),
        reference: format!("target {TARGET_RECORDS_PER_SECOND:.0} records/s"),
        ratio: format!("{:.2}", records_per_second / TARGET_RECORDS_PER_SECOND),
    })
}

/// Decide a month of records in batches (not timed), then time what a replay does with them:
/// decode each stored event, fold it into the state and into billing; and the invoice.
fn month_fold(records: u64) -> Row {
    let month_start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
    let mut state = Tenant::empty(TenantId::new_random());
    let mut stored: Vec<Vec<u8>> = Vec::new();
    let mut seq = 0u64;
    let mut push = |state: &mut Tenant, event: events::Event, at: DateTime<Utc>| {
        seq += 1;
        let envelope = Envelope {
            seq,
            tenant: state.id,
            version: state.version + 1,
            recorded_at: at,
            actor: "bench".into(),
            reason: None,
            command_id: CommandId::new_random(),
            prev_hash: state.last_hash,
            event,
        };
        let bytes = envelope.encode();
        evolve(state, &envelope.event, envelope.version);
        state.last_hash = Envelope::hash_of(&bytes);
        bytes
    };
    let setup = [
        Command::CreateTenant {
            name: "Usage month".into(),
            billing_timezone: "UTC".into(),
            currency: "EUR".into(),
        },
        Command::DefineService(service()),
        Command::SetPrice {
            license_type: TypeCode::from("speech_to_text"),
            unit_price_minor: 2,
            currency: "EUR".into(),
            effective_from: month_start,
        },
    ];
    for command in setup {
        let ctx = Context {
            now: month_start,
            command_id: CommandId::new_random(),
        };
        for event in decide(&state, &command, &ctx).unwrap_or_default() {
            let bytes = push(&mut state, event, month_start);
            stored.push(bytes);
        }
    }
    let batches = records.div_ceil(RECORDS_PER_BATCH as u64);
    let step = Span::seconds(30 * 24 * 3600 / batches.max(1) as i64).max(Span::milliseconds(1));
    for batch in 0..batches {
        let at = month_start + step * batch as i32;
        let rows: Vec<NewUsageRecord> = (0..RECORDS_PER_BATCH)
            .map(|i| NewUsageRecord {
                id: format!("{batch}-{i}"),
                service: TypeCode::from("speech_to_text"),
                quantity: 1,
                user: None,
                queue: None,
                occurred_at: at,
            })
            .collect();
        let ctx = Context {
            now: at,
            command_id: CommandId::new_random(),
        };
        for event in decide(&state, &Command::RecordUsage(rows), &ctx).unwrap_or_default() {
            let bytes = push(&mut state, event, at);
            stored.push(bytes);
        }
    }
    let started = Instant::now();
    let mut replayed = Tenant::empty(state.id);
    let mut billing = Billing::default();
    for bytes in &stored {
        let Ok(envelope) = Envelope::decode(bytes) else {
            continue;
        };
        evolve(&mut replayed, &envelope.event, envelope.version);
        billing.apply(&envelope, Envelope::hash_of(bytes));
    }
    let october = invoice(
        &billing,
        Month::of(month_start, events::time::billing_zone("UTC")),
    );
    let took = started.elapsed();
    let used = october.metered.first().map_or(0, |m| m.used);
    Row {
        scenario: format!(
            "a month of {records} usage records ({batches} events): replay (decode, evolve, billing) and the invoice"
        ),
        figure: format!(
            "{:.2} s, {:.0} records/s; metered line {used} minutes, {} minor units",
            took.as_secs_f64(),
            records as f64 / took.as_secs_f64().max(1e-9),
            october.total_minor
        ),
        reference: format!("{} records counted", records),
        ratio: if used == records {
            "every record billed".into()
        } else {
            format!("{used} of {records} billed")
        },
    }
}
