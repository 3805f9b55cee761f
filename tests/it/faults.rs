//! Storage faults injected behind the store's trait: a failed append stops the writer for
//! good (never retried and carried on), reads go on, and nothing acknowledged is lost.

use crate::support::{build, send, ROOT_TOKEN};
use axum::http::{Method, StatusCode};
use axum::Router;
use ledger::http::auth::token_hash;
use ledger::http::{app, App};
use ledger::ledger::Ledger;
use ledger::store::sled_store::SledStore;
use ledger::store::{EncodedEvent, Error, EventStore};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// What the next appends do.
#[derive(Clone, Debug)]
enum Fault {
    None,
    /// Nothing reaches the disk (a full disk, a refused write).
    BeforeWrite(String),
    /// The batch reaches sled but the flush reports a failure: its outcome is unknown.
    AfterWrite(String),
    /// Reading the log fails (a database restarting); appends are not touched.
    ReadsFail(String),
}

struct FaultyStore {
    inner: SledStore,
    fault: Mutex<Fault>,
}

impl FaultyStore {
    fn set(&self, fault: Fault) {
        *self.fault.lock().expect("fault lock") = fault;
    }

    /// The injected read failure, if any.
    fn reads(&self) -> Result<(), Error> {
        match &*self.fault.lock().expect("fault lock") {
            Fault::ReadsFail(message) => Err(Error::Io(message.clone())),
            _ => Ok(()),
        }
    }
}

impl EventStore for FaultyStore {
    fn append(&self, batch: &[EncodedEvent]) -> Result<(), Error> {
        let fault = self.fault.lock().expect("fault lock").clone();
        match fault {
            Fault::None | Fault::ReadsFail(_) => self.inner.append(batch),
            Fault::BeforeWrite(message) => Err(Error::Io(message)),
            Fault::AfterWrite(message) => {
                self.inner.append(batch)?;
                Err(Error::Io(message))
            }
        }
    }

    fn scan(&self, after: u64, visit: &mut dyn FnMut(EncodedEvent) -> bool) -> Result<(), Error> {
        self.reads()?;
        self.inner.scan(after, visit)
    }

    fn scan_tenant(
        &self,
        tenant: events::TenantId,
        after: u64,
        visit: &mut dyn FnMut(EncodedEvent) -> bool,
    ) -> Result<(), Error> {
        self.reads()?;
        self.inner.scan_tenant(tenant, after, visit)
    }

    fn head(&self) -> u64 {
        self.inner.head()
    }
}

fn open(dir: &Path) -> (Router, Ledger, Arc<FaultyStore>) {
    let store = Arc::new(FaultyStore {
        inner: SledStore::open(dir).expect("open the store"),
        fault: Mutex::new(Fault::None),
    });
    let ledger = Ledger::start(store.clone()).expect("start the ledger");
    let router = app(App {
        ledger: ledger.clone(),
        root_token_hash: token_hash(ROOT_TOKEN),
    });
    (router, ledger, store)
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let reply = send(
        router.clone(),
        build(method, path, Some(ROOT_TOKEN), body, &[]),
    )
    .await;
    (reply.status, reply.body)
}

/// `GET /healthz` (no token): 200 and its body.
async fn health(router: &Router) -> Value {
    let reply = send(
        router.clone(),
        build(Method::GET, "/healthz", None, None, &[]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

/// `/healthz` reports stopped writes with a reason mentioning `cause`; its body.
async fn assert_health_says_writes_stopped(router: &Router, cause: &str) -> Value {
    let stopped = health(router).await;
    assert_eq!(stopped["writes"], "stopped", "{stopped}");
    assert!(
        stopped["writes_stopped_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains(cause)),
        "{stopped}"
    );
    stopped
}

async fn owned_phones(router: &Router, tenant: &str) -> Value {
    let (status, usage) = call(
        router,
        Method::GET,
        &format!("/v1/tenants/{tenant}/usage"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    usage["types"]["phone_system"]["owned"].clone()
}

/// Reopen the same directory once the old writer has let go of it.
async fn reopen(dir: &Path) -> (Router, Ledger, Arc<FaultyStore>) {
    for _ in 0..2000 {
        if let Ok(store) = SledStore::open(dir) {
            drop(store);
            return open(dir);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("cannot reopen the store");
}

async fn a_tenant_with_three_phones(router: &Router) -> String {
    let (status, body) = call(
        router,
        Method::POST,
        "/v1/tenants",
        Some(json!({"name": "Acme"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tenant = body["id"].as_str().expect("id").to_string();
    let (status, body) = call(
        router,
        Method::POST,
        &format!("/v1/tenants/{tenant}/licenses"),
        Some(json!({"type": "phone_system", "quantity": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    tenant
}

#[tokio::test]
async fn a_full_disk_stops_writes_keeps_reads_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (router, ledger, store) = open(dir.path());
    let tenant = a_tenant_with_three_phones(&router).await;
    let provision = format!("/v1/tenants/{tenant}/licenses");
    let healthy = health(&router).await;
    assert_eq!(healthy["writes"], "ok", "{healthy}");
    assert!(healthy.get("writes_stopped_reason").is_none(), "{healthy}");
    store.set(Fault::BeforeWrite(
        "No space left on device (os error 28)".into(),
    ));
    let (status, body) = call(
        &router,
        Method::POST,
        &provision,
        Some(json!({"type": "phone_system", "quantity": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("No space left")),
        "{body}"
    );
    // The disk has room again, but the writer does not carry on: what reached it is unknown.
    store.set(Fault::None);
    let (status, _) = call(
        &router,
        Method::POST,
        &provision,
        Some(json!({"type": "phone_system", "quantity": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ledger.writes_stopped().is_some());
    // `/healthz` says so, and keeps `status` and `seq` as they were.
    let stopped = assert_health_says_writes_stopped(&router, "No space left").await;
    assert_eq!(stopped["status"], "ok", "{stopped}");
    assert_eq!(stopped["seq"], healthy["seq"], "{stopped}");
    // Reads are served from the durable log.
    assert_eq!(owned_phones(&router, &tenant).await, 3);
    drop((router, ledger, store));
    let (router, _ledger, _store) = reopen(dir.path()).await;
    assert_eq!(owned_phones(&router, &tenant).await, 3);
    assert_eq!(health(&router).await["writes"], "ok");
    let (status, body) = call(
        &router,
        Method::POST,
        &provision,
        Some(json!({"type": "phone_system", "quantity": 1})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a restart on sound storage takes writes again: {body}"
    );
}

#[tokio::test]
async fn a_failed_flush_is_fatal_for_the_writer_and_its_batch_is_checked_after_a_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (router, ledger, store) = open(dir.path());
    let tenant = a_tenant_with_three_phones(&router).await;
    let provision = format!("/v1/tenants/{tenant}/licenses");
    store.set(Fault::AfterWrite("fsync failed: Input/output error".into()));
    let (status, body) = call(
        &router,
        Method::POST,
        &provision,
        Some(json!({"type": "phone_system", "quantity": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    store.set(Fault::None);
    let (status, _) = call(
        &router,
        Method::POST,
        &provision,
        Some(json!({"type": "phone_system", "quantity": 1})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "never retried and carried on"
    );
    assert_health_says_writes_stopped(&router, "fsync failed").await;
    drop((router, ledger, store));
    let (router, _ledger, _store) = reopen(dir.path()).await;
    // The acknowledged three are there, and the batch whose flush reported a failure had
    // reached sled, so it comes back whole: the 503 said its outcome was unknown.
    assert_eq!(owned_phones(&router, &tenant).await, 5);
}

#[tokio::test]
async fn a_log_that_cannot_be_read_answers_503_storage_changes_nothing_and_serves_once_back() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (router, _ledger, store) = open(dir.path());
    let tenant = a_tenant_with_three_phones(&router).await;
    let events = format!("/v1/tenants/{tenant}/events");
    let (status, before) = call(&router, Method::GET, &events, None).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    store.set(Fault::ReadsFail(
        "PostgreSQL 57P03: the database system is starting up".into(),
    ));
    let (status, body) = call(&router, Method::GET, &events, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(body["error"]["details"]["reason"], "storage", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("retry")),
        "{body}"
    );
    // State served from memory does not need the log, and writes were never stopped.
    assert_eq!(owned_phones(&router, &tenant).await, 3);
    assert_eq!(health(&router).await["writes"], "ok");
    store.set(Fault::None);
    let (status, after) = call(&router, Method::GET, &events, None).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after, before, "the failed read changed nothing");
}
