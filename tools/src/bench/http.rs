//! The HTTP rows of the bench: assign / unassign churn over loopback HTTP against the real
//! router, against a bare axum endpoint served the same way, and against a CRUD service on
//! PostgreSQL, all driven by the same open-loop load driver ([`crate::load`]) in this process.
//!
//! Method: each server first gets a closed-loop probe (every connection sends its next request
//! as soon as the answer came) to find its capacity, then an open-loop run at a share of that
//! capacity (Poisson arrivals at a fixed rate, latency measured from the scheduled moment).
//! Every connection owns its own licence–user pairs, so no two requests conflict; only 2xx
//! counts as a success.

use super::common::{ms, request, serve, setup_layout, BenchArgs, Row};
use crate::load::{
    measure_at_capacity, AssignUnassignChurn, CapacityReport, LoadConfig, LoadReport, Pace,
};
use crate::postgres::{self, Cluster, ReferenceTenant};
use axum::routing::post;
use axum::{Json, Router};
use events::TypeCode;
use ledger::http::auth::token_hash;
use ledger::http::{app, App};
use ledger::ledger::Ledger;
use ledger::ledger::World;
use ledger::store::postgres::{Access, PostgresStore};
use ledger::store::sled_store::SledStore;
use ledger::store::EventStore;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;
use uuid::Uuid;

/// Users of the tenant the HTTP scenarios churn on (the same size as the append scenario's).
const HTTP_TENANT_USERS: usize = 20_000;
/// Licence–user pairs each connection owns.
const PAIRS_PER_CONNECTION: usize = 16;
/// Seed of the load driver's arrival process.
const LOAD_SEED: u64 = 5;
/// The root token of the ledger under load (bench only; it sets the tenant up).
const BENCH_ROOT_TOKEN: &str = "bench-root-token";
/// The bearer token the load is sent with: an operator key of the bench tenant, looked up in
/// the key index like any client's.
const BENCH_OPERATOR_TOKEN: &str = "bench-operator-token";

/// One server's figures.
struct Measured(CapacityReport);

impl Measured {
    fn run(&self) -> &LoadReport {
        &self.0.run
    }

    fn figure(&self) -> String {
        format!(
            "{} (offered {:.0}/s{}; closed-loop probe {:.0}/s)",
            self.0.run.summary(),
            self.0.offered_per_second,
            if self.0.kept_up { "" } else { ", fell behind" },
            self.0.probe.successes_per_second()
        )
    }
}

/// The HTTP rows, each with its reference and the ratio. Never fails: a reference that cannot
/// be measured says why in its cell.
pub(super) fn http_rows(runtime: &Runtime, scratch: &Path, args: &BenchArgs) -> Vec<Row> {
    match ledger_and_bare(runtime, scratch, args) {
        Ok(rows) => rows,
        Err(reason) => vec![Row {
            scenario: "assign/unassign over HTTP".into(),
            figure: format!("failed: {reason}"),
            reference: "—".into(),
            ratio: "—".into(),
        }],
    }
}

fn load_config(address: SocketAddr, args: &BenchArgs) -> LoadConfig {
    LoadConfig {
        address,
        duration: Duration::from_secs(args.http_seconds),
        pace: Pace::ClosedLoop,
        seed: LOAD_SEED,
        headers: vec![(
            "authorization".into(),
            format!("Bearer {BENCH_OPERATOR_TOKEN}"),
        )],
        requests_per_connection_max: None,
    }
}

fn measure(
    runtime: &Runtime,
    router: Router,
    prefix: &str,
    pairs: &[(Uuid, Uuid)],
    args: &BenchArgs,
) -> Result<Measured, String> {
    runtime.block_on(async {
        let (address, stop) = serve(router).await?;
        let workloads = AssignUnassignChurn::split(prefix, pairs, args.connections);
        let report = measure_at_capacity(
            &load_config(address, args),
            Duration::from_secs(args.http_probe_seconds),
            args.http_load_percent,
            workloads,
        )
        .await;
        stop.stop().await;
        Ok(Measured(report))
    })
}

/// A ledger on a fresh store in `dir`, with the bench tenant set up and an operator key issued:
/// the router, the path prefix of the tenant and the licence–user pairs the load churns on,
/// and every live licence with its type (for the PostgreSQL reference).
struct BenchLedger {
    router: Router,
    prefix: String,
    pairs: Vec<(Uuid, Uuid)>,
    licenses: Vec<(Uuid, String)>,
    layout: crate::Layout,
}

fn bench_ledger(runtime: &Runtime, dir: &Path, args: &BenchArgs) -> Result<BenchLedger, String> {
    let store = Arc::new(SledStore::open(dir).map_err(|e| e.to_string())?);
    bench_ledger_on(runtime, store, args)
}

/// [`bench_ledger`] on a store already open.
fn bench_ledger_on(
    runtime: &Runtime,
    store: Arc<dyn EventStore>,
    args: &BenchArgs,
) -> Result<BenchLedger, String> {
    let ledger = Ledger::start(store).map_err(|e| e.to_string())?;
    let layout = runtime.block_on(setup_layout(&ledger, HTTP_TENANT_USERS))?;
    let operator_key = request(
        layout.tenant,
        events::Command::IssueKey {
            key: events::KeyId::new_random(),
            name: "bench load".into(),
            role: events::Role::Operator,
            token_hash: token_hash(BENCH_OPERATOR_TOKEN),
            group: None,
        },
    );
    runtime
        .block_on(ledger.execute(operator_key))
        .map_err(|e| e.to_string())?;
    let (pairs, licenses) = {
        let world = ledger.read();
        let tenant = world
            .tenants
            .get(&layout.tenant)
            .ok_or("the bench tenant is missing")?;
        let free = tenant
            .free
            .get(&TypeCode::from("phone_system"))
            .ok_or("the bench tenant has no phone_system licences")?;
        let pairs: Vec<(Uuid, Uuid)> = free
            .iter()
            .zip(&layout.users)
            .take(args.connections.max(1) * PAIRS_PER_CONNECTION)
            .map(|(license, user)| (license.0, user.0))
            .collect();
        let licenses: Vec<(Uuid, String)> = tenant
            .licenses
            .values()
            .filter(|l| !l.terminated)
            .map(|l| (l.id.0, l.license_type.to_string()))
            .collect();
        (pairs, licenses)
    };
    let prefix = format!("/v1/tenants/{}", layout.tenant);
    let state = App {
        ledger,
        root_token_hash: token_hash(BENCH_ROOT_TOKEN),
    };
    Ok(BenchLedger {
        router: app(state),
        prefix,
        pairs,
        licenses,
        layout,
    })
}

fn ledger_and_bare(
    runtime: &Runtime,
    scratch: &Path,
    args: &BenchArgs,
) -> Result<Vec<Row>, String> {
    let BenchLedger {
        router,
        prefix,
        pairs,
        licenses,
        layout,
    } = bench_ledger(runtime, &scratch.join("ledger"), args)?;

    eprintln!("HTTP: ledger router, {} connections …", args.connections);
    let ledger_figures = measure(runtime, router, &prefix, &pairs, args)?;
    eprintln!("HTTP: bare axum endpoint …");
    let bare_figures = measure(runtime, bare_router(), &prefix, &pairs, args)?;
    let postgres_reference = if args.no_postgres {
        Err("skipped: --no-postgres".to_string())
    } else {
        eprintln!("HTTP: CRUD service on PostgreSQL …");
        let tenant = ReferenceTenant::from_setup(&layout.setup, licenses);
        postgres_figures(runtime, scratch, &tenant, &prefix, &pairs, args)
    };
    let method = format!(
        "open loop, Poisson arrivals, latency from the scheduled send, at {:.0} % of a {} s \
         closed-loop probe (stepping down ×{} until it keeps up), {} s, {} connections",
        args.http_load_percent,
        args.http_probe_seconds,
        crate::load::LOAD_STEP_FACTOR,
        args.http_seconds,
        args.connections
    );
    let crud_reference = postgres_reference
        .as_ref()
        .map(|on| Measured(on.crud.0.clone()))
        .map_err(String::clone);
    let mut rows = vec![
        versus_postgres(&ledger_figures, &crud_reference, &method),
        versus_bare(&ledger_figures, &bare_figures, &method),
    ];
    rows.extend(on_postgres_rows(&postgres_reference, &method));
    if let Ok(postgres) = &crud_reference {
        let rate = postgres.run().successes_per_second();
        if rate > 0.0 {
            eprintln!("HTTP: a fresh ledger at PostgreSQL's rate ({rate:.0}/s) …");
            let fresh = bench_ledger(runtime, &scratch.join("ledger-same-load"), args);
            rows.push(at_postgres_rate(runtime, fresh, "", args, postgres, rate));
        }
    }
    Ok(rows)
}

/// A fresh ledger (`on`: which store, for the scenario, "" for sled) driven open loop at the
/// rate PostgreSQL sustained: the p99 each gives the same offered load.
fn at_postgres_rate(
    runtime: &Runtime,
    fresh: Result<BenchLedger, String>,
    on: &str,
    args: &BenchArgs,
    postgres: &Measured,
    rate: f64,
) -> Row {
    let scenario = format!(
        "assign/unassign over HTTP{on} at PostgreSQL's rate: open loop, Poisson arrivals at \
         {rate:.0} requests/s, latency from the scheduled send, {} s, {} connections",
        args.http_seconds, args.connections
    );
    let measured = fresh.and_then(|l| {
        runtime.block_on(async {
            let (address, stop) = serve(l.router).await?;
            let workloads = AssignUnassignChurn::split(&l.prefix, &l.pairs, args.connections);
            let config = LoadConfig {
                pace: Pace::OpenLoop {
                    requests_per_second: rate,
                },
                ..load_config(address, args)
            };
            let (report, _) = crate::load::drive(&config, workloads).await;
            stop.stop().await;
            Ok::<_, String>(report)
        })
    });
    match measured {
        Ok(ledger) => {
            let (mine, theirs) = (ledger.percentile(0.99), postgres.run().percentile(0.99));
            Row {
                scenario,
                figure: ledger.summary(),
                reference: format!("PostgreSQL at its own capacity: {}", postgres.figure()),
                ratio: format!(
                    "p99 {} ({} vs {})",
                    if mine < theirs { "lower" } else { "not lower" },
                    ms(mine),
                    ms(theirs)
                ),
            }
        }
        Err(reason) => Row {
            scenario,
            figure: format!("failed: {reason}"),
            reference: "—".into(),
            ratio: "—".into(),
        },
    }
}

fn versus_postgres(ledger: &Measured, postgres: &Result<Measured, String>, method: &str) -> Row {
    let scenario =
        format!("assign/unassign over HTTP, ledger vs a CRUD service on PostgreSQL ({method})");
    match postgres {
        Ok(postgres) => Row {
            scenario,
            figure: ledger.figure(),
            reference: format!(
                "PostgreSQL, one transaction per command, row locks on the licence and \
                     every ancestor's counter, audit row, synchronous_commit on: {}",
                postgres.figure()
            ),
            ratio: ratio_to_postgres(ledger, postgres),
        },
        Err(reason) => Row {
            scenario,
            figure: ledger.figure(),
            reference: reason.clone(),
            ratio: "—".into(),
        },
    }
}

fn versus_bare(ledger: &Measured, bare: &Measured, method: &str) -> Row {
    let bare_rate = bare.run().successes_per_second();
    Row {
        scenario: format!("HTTP assign/unassign, ledger vs a bare axum endpoint ({method})"),
        figure: ledger.figure(),
        reference: format!("bare axum endpoint, same requests: {}", bare.figure()),
        ratio: if bare_rate > 0.0 {
            format!(
                "{:.0} % of bare",
                100.0 * ledger.run().successes_per_second() / bare_rate
            )
        } else {
            "— (bare answered nothing)".into()
        },
    }
}

/// The same routes as the ledger's assign / unassign, answering a small JSON at once.
fn bare_router() -> Router {
    async fn bare(Json(body): Json<Value>) -> Json<Value> {
        std::hint::black_box(body);
        Json(json!({"seq": 0, "version": 0}))
    }
    Router::new()
        .route("/v1/tenants/{t}/licenses/{id}/assign", post(bare))
        .route("/v1/tenants/{t}/licenses/{id}/unassign", post(bare))
}

/// What the bench measures on one throw-away PostgreSQL cluster: the CRUD reference, the
/// ledger on the PostgreSQL store (same tenant, same load), and a replay of that store's log.
struct OnPostgres {
    crud: Measured,
    ledger: Result<Measured, String>,
    /// A fresh ledger on a second PostgreSQL store at the CRUD service's rate.
    at_rate: Option<Row>,
    /// Events replayed and the seconds it took.
    replay: Result<(u64, f64), String>,
}

fn postgres_figures(
    runtime: &Runtime,
    scratch: &Path,
    tenant: &ReferenceTenant,
    prefix: &str,
    pairs: &[(Uuid, Uuid)],
    args: &BenchArgs,
) -> Result<OnPostgres, String> {
    let bin = postgres::find_server_binaries().map_err(|reason| format!("skipped: {reason}"))?;
    let cluster = Cluster::start(&bin, &scratch.join("postgres"))
        .map_err(|reason| format!("failed: {reason}"))?;
    let router = runtime
        .block_on(async {
            let client = postgres::connect(&cluster.connection_string()).await?;
            postgres::load_tenant(&client, tenant).await?;
            let pool = postgres::Pool::open(&cluster.connection_string(), args.connections).await?;
            Ok::<_, String>(postgres::router(pool))
        })
        .map_err(|reason| format!("failed: {reason}"))?;
    let crud = measure(runtime, router, prefix, pairs, args).map_err(|r| format!("failed: {r}"))?;
    eprintln!("HTTP: ledger on the PostgreSQL store …");
    let on_store = new_store(runtime, &cluster, "ledger_store");
    let ledger = on_store.clone().and_then(|store| {
        let bench = bench_ledger_on(runtime, store, args)?;
        measure(runtime, bench.router, &bench.prefix, &bench.pairs, args)
    });
    let replay = on_store.and_then(|store| {
        eprintln!("HTTP: replay from the PostgreSQL store …");
        let started = std::time::Instant::now();
        let world = World::load(store.as_ref()).map_err(|e| format!("failed: {e}"))?;
        Ok((world.head, started.elapsed().as_secs_f64()))
    });
    let rate = crud.run().successes_per_second();
    let at_rate = (rate > 0.0).then(|| {
        eprintln!("HTTP: a fresh ledger on the PostgreSQL store at PostgreSQL's rate …");
        let fresh = new_store(runtime, &cluster, "ledger_store_at_rate")
            .and_then(|store| bench_ledger_on(runtime, store, args));
        at_postgres_rate(
            runtime,
            fresh,
            " on the PostgreSQL store",
            args,
            &crud,
            rate,
        )
    });
    drop(cluster);
    Ok(OnPostgres {
        crud,
        ledger,
        at_rate,
        replay,
    })
}

/// "N×; p99 lower than PostgreSQL's": the ledger's rate over the CRUD service's, and whether
/// its p99 is lower.
fn ratio_to_postgres(ledger: &Measured, postgres: &Measured) -> String {
    let rate = postgres.run().successes_per_second();
    format!(
        "{}; p99 {} than PostgreSQL's",
        if rate > 0.0 {
            format!("{:.1}×", ledger.run().successes_per_second() / rate)
        } else {
            "— (PostgreSQL answered nothing)".into()
        },
        if ledger.run().percentile(0.99) < postgres.run().percentile(0.99) {
            "lower"
        } else {
            "not lower"
        }
    )
}

/// A new database `name` in `cluster`, opened as the ledger's store.
fn new_store(
    runtime: &Runtime,
    cluster: &Cluster,
    name: &str,
) -> Result<Arc<dyn EventStore>, String> {
    runtime
        .block_on(async {
            let client = postgres::connect(&cluster.connection_string()).await?;
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .map_err(|e| e.to_string())
        })
        .map_err(|e| format!("failed: {e}"))?;
    let url = format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port);
    let store = PostgresStore::open(&url, Access::Write).map_err(|e| format!("failed: {e}"))?;
    Ok(Arc::new(store))
}

/// The ledger on the PostgreSQL store against the CRUD service on the same PostgreSQL.
fn on_postgres_rows(on: &Result<OnPostgres, String>, method: &str) -> Vec<Row> {
    let scenario = format!(
        "assign/unassign over HTTP, ledger on the PostgreSQL store vs the CRUD service on the same PostgreSQL ({method})"
    );
    let replay_scenario = "replay from the PostgreSQL store: decode + fold every projection of the log the row above wrote"
        .to_string();
    let on = match on {
        Ok(on) => on,
        Err(reason) => {
            return vec![Row {
                scenario,
                figure: reason.clone(),
                reference: "—".into(),
                ratio: "—".into(),
            }]
        }
    };
    let versus = match &on.ledger {
        Ok(ledger) => Row {
            scenario,
            figure: ledger.figure(),
            reference: format!("the CRUD service: {}", on.crud.figure()),
            ratio: ratio_to_postgres(ledger, &on.crud),
        },
        Err(reason) => Row {
            scenario,
            figure: format!("failed: {reason}"),
            reference: format!("the CRUD service: {}", on.crud.figure()),
            ratio: "—".into(),
        },
    };
    let replay = match &on.replay {
        Ok((events, seconds)) => Row {
            scenario: replay_scenario,
            figure: format!(
                "{:.0} events/s ({events} events in {seconds:.2} s)",
                *events as f64 / seconds.max(f64::EPSILON)
            ),
            reference: "—".into(),
            ratio: "—".into(),
        },
        Err(reason) => Row {
            scenario: replay_scenario,
            figure: reason.clone(),
            reference: "—".into(),
            ratio: "—".into(),
        },
    };
    let mut rows = vec![versus];
    rows.extend(on.at_rate.clone());
    rows.push(replay);
    rows
}
