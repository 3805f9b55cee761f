//! One conformance suite for `EventStore`, run against every backend: memory, sled and
//! PostgreSQL (a throw-away cluster started from the machine's server binaries; a missing
//! PostgreSQL fails these tests, it never skips them — `scripts/install-postgres.sh`).
//! Then what only PostgreSQL does: the write lease, read-only opens, its schema versions.

use events::TenantId;
use ledger::store::memory::MemoryStore;
use ledger::store::postgres::{Access, PostgresStore};
use ledger::store::record::RECORD_EVENTS_MAX;
use ledger::store::sled_store::SledStore;
use ledger::store::{EncodedEvent, Error, EventStore};
use std::sync::{Arc, Barrier};
use tools::postgres::{find_server_binaries, Cluster};

fn event(seq: u64, tenant: TenantId) -> EncodedEvent {
    EncodedEvent {
        seq,
        tenant,
        bytes: format!("event {seq} of {tenant}").into_bytes(),
    }
}

fn events(from: u64, to: u64, tenants: &[TenantId]) -> Vec<EncodedEvent> {
    (from..=to)
        .map(|seq| event(seq, tenants[seq as usize % tenants.len()]))
        .collect()
}

fn all(store: &dyn EventStore, after: u64) -> Vec<EncodedEvent> {
    let mut out = Vec::new();
    store
        .scan(after, &mut |e| {
            out.push(e);
            true
        })
        .expect("scanned");
    out
}

fn of_tenant(store: &dyn EventStore, tenant: TenantId, after: u64) -> Vec<EncodedEvent> {
    let mut out = Vec::new();
    store
        .scan_tenant(tenant, after, &mut |e| {
            out.push(e);
            true
        })
        .expect("scanned");
    out
}

/// A backend under test: opens a fresh, empty store, and reopens the same one.
trait Backend {
    fn name(&self) -> &str;
    fn fresh(&mut self) -> Box<dyn EventStore>;
    /// The store `fresh` last opened, opened again after the handle is dropped; `None` for a
    /// backend that keeps nothing.
    fn reopen(&mut self, store: Box<dyn EventStore>) -> Option<Box<dyn EventStore>>;
}

/// One case of the suite: it opens the stores it needs from the backend.
type Case = fn(&mut dyn Backend);

/// The suite, as every backend must pass it.
const CASES: &[(&str, Case)] = &[
    ("an_empty_store_has_head_zero_and_scans_nothing", empty),
    (
        "appended_events_read_back_in_order_globally_and_per_tenant",
        read_back,
    ),
    (
        "a_scan_from_inside_a_record_starts_after_the_given_sequence",
        scan_from_inside,
    ),
    ("a_scan_stops_when_the_visitor_says_so", scan_stops),
    ("scan_ref_lends_what_scan_copies", scan_ref_equals_scan),
    (
        "an_append_with_a_sequence_gap_is_refused_and_changes_nothing",
        gap_refused,
    ),
    ("a_large_append_reads_back_whole", large_append),
    (
        "appended_events_survive_a_reopen_and_appends_go_on",
        survives_reopen,
    ),
];

fn run_suite(backend: &mut dyn Backend) {
    for (name, case) in CASES {
        eprintln!("{}: {name}", backend.name());
        case(backend);
    }
}

fn empty(backend: &mut dyn Backend) {
    let store = backend.fresh();
    assert_eq!(store.head(), 0);
    assert!(all(store.as_ref(), 0).is_empty());
    assert!(of_tenant(store.as_ref(), TenantId::new_random(), 0).is_empty());
}

fn read_back(backend: &mut dyn Backend) {
    let store = backend.fresh();
    let (a, b) = (TenantId::new_random(), TenantId::new_random());
    let first = events(1, 3, &[a, b]);
    let second = events(4, 9, &[a, b, b]);
    store.append(&first).expect("appended");
    store.append(&second).expect("appended");
    assert_eq!(store.head(), 9, "{}", backend.name());
    let expected: Vec<EncodedEvent> = first.iter().chain(&second).cloned().collect();
    assert_eq!(all(store.as_ref(), 0), expected, "{}", backend.name());
    for tenant in [a, b] {
        let mine: Vec<EncodedEvent> = expected
            .iter()
            .filter(|e| e.tenant == tenant)
            .cloned()
            .collect();
        assert_eq!(
            of_tenant(store.as_ref(), tenant, 0),
            mine,
            "{}",
            backend.name()
        );
        assert_eq!(store.read_tenant(tenant).expect("read"), mine);
    }
    assert!(of_tenant(store.as_ref(), TenantId::new_random(), 0).is_empty());
}

fn scan_from_inside(backend: &mut dyn Backend) {
    let store = backend.fresh();
    let (a, b) = (TenantId::new_random(), TenantId::new_random());
    let appended = events(1, 10, &[a, b]);
    store.append(&appended).expect("appended");
    let after: Vec<u64> = all(store.as_ref(), 4).iter().map(|e| e.seq).collect();
    assert_eq!(after, (5..=10).collect::<Vec<_>>(), "{}", backend.name());
    let of_a: Vec<u64> = of_tenant(store.as_ref(), a, 5)
        .iter()
        .map(|e| e.seq)
        .collect();
    let expected: Vec<u64> = appended
        .iter()
        .filter(|e| e.tenant == a && e.seq > 5)
        .map(|e| e.seq)
        .collect();
    assert_eq!(of_a, expected, "{}", backend.name());
    assert!(all(store.as_ref(), 10).is_empty());
}

fn scan_stops(backend: &mut dyn Backend) {
    let store = backend.fresh();
    let tenant = TenantId::new_random();
    store
        .append(&events(1, 5, &[tenant]))
        .expect("appended first");
    store
        .append(&events(6, 10, &[tenant]))
        .expect("appended second");
    let mut seen = Vec::new();
    store
        .scan(0, &mut |e| {
            seen.push(e.seq);
            e.seq < 7
        })
        .expect("scanned");
    assert_eq!(seen, vec![1, 2, 3, 4, 5, 6, 7], "{}", backend.name());
    let mut seen = Vec::new();
    store
        .scan_tenant(tenant, 2, &mut |e| {
            seen.push(e.seq);
            seen.len() < 2
        })
        .expect("scanned");
    assert_eq!(seen, vec![3, 4], "{}", backend.name());
}

fn scan_ref_equals_scan(backend: &mut dyn Backend) {
    let store = backend.fresh();
    store
        .append(&events(
            1,
            20,
            &[TenantId::new_random(), TenantId::new_random()],
        ))
        .expect("appended");
    let mut lent = Vec::new();
    store
        .scan_ref(3, &mut |e| {
            lent.push(e.to_owned_event());
            true
        })
        .expect("scanned");
    assert_eq!(lent, all(store.as_ref(), 3), "{}", backend.name());
}

fn gap_refused(backend: &mut dyn Backend) {
    let store = backend.fresh();
    let tenant = TenantId::new_random();
    store.append(&events(1, 2, &[tenant])).expect("appended");
    match store.append(&events(4, 5, &[tenant])) {
        Err(Error::OutOfOrder { expected, got }) => assert_eq!((expected, got), (3, 4)),
        other => panic!("{}: a gap was not refused: {other:?}", backend.name()),
    }
    assert_eq!(store.head(), 2);
    assert_eq!(all(store.as_ref(), 0).len(), 2, "{}", backend.name());
    store
        .append(&events(3, 3, &[tenant]))
        .expect("the next sequence is still accepted");
}

fn large_append(backend: &mut dyn Backend) {
    let store = backend.fresh();
    let tenants = [TenantId::new_random(), TenantId::new_random()];
    let count = RECORD_EVENTS_MAX as u64 * 2 + 17;
    let appended = events(1, count, &tenants);
    store.append(&appended).expect("appended");
    assert_eq!(store.head(), count);
    assert_eq!(all(store.as_ref(), 0), appended, "{}", backend.name());
    let middle: Vec<u64> = all(store.as_ref(), RECORD_EVENTS_MAX as u64 + 3)
        .iter()
        .map(|e| e.seq)
        .take(2)
        .collect();
    let after = RECORD_EVENTS_MAX as u64 + 3;
    assert_eq!(middle, vec![after + 1, after + 2]);
    let of_second = of_tenant(store.as_ref(), tenants[1], 0);
    assert_eq!(of_second.len() as u64, count.div_ceil(2));
}

fn survives_reopen(backend: &mut dyn Backend) {
    let store = backend.fresh();
    let tenant = TenantId::new_random();
    let first = events(1, 4, &[tenant]);
    store.append(&first).expect("appended");
    let Some(store) = backend.reopen(store) else {
        return;
    };
    assert_eq!(store.head(), 4, "{}", backend.name());
    assert_eq!(all(store.as_ref(), 0), first);
    store
        .append(&events(5, 6, &[tenant]))
        .expect("appends go on after a reopen");
    assert_eq!(of_tenant(store.as_ref(), tenant, 0).len(), 6);
}

struct Memory;

impl Backend for Memory {
    fn name(&self) -> &str {
        "memory"
    }
    fn fresh(&mut self) -> Box<dyn EventStore> {
        Box::new(MemoryStore::default())
    }
    fn reopen(&mut self, _: Box<dyn EventStore>) -> Option<Box<dyn EventStore>> {
        None
    }
}

struct Sled {
    dirs: Vec<tempfile::TempDir>,
}

impl Backend for Sled {
    fn name(&self) -> &str {
        "sled"
    }
    fn fresh(&mut self) -> Box<dyn EventStore> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SledStore::open(dir.path()).expect("opened");
        self.dirs.push(dir);
        Box::new(store)
    }
    fn reopen(&mut self, store: Box<dyn EventStore>) -> Option<Box<dyn EventStore>> {
        drop(store);
        let dir = self.dirs.last().expect("a store was opened");
        Some(Box::new(SledStore::open(dir.path()).expect("reopened")))
    }
}

/// A throw-away PostgreSQL cluster; every fresh store is a new database in it.
pub(crate) struct Postgres {
    cluster: Cluster,
    databases: u32,
}

impl Postgres {
    /// Start a cluster; panics, naming what is missing, when PostgreSQL is not installed.
    pub(crate) fn start() -> Postgres {
        let bin = find_server_binaries().unwrap_or_else(|e| panic!("{e}"));
        let dir = std::env::temp_dir().join(format!("ledger-it-pg-{}", uuid::Uuid::new_v4()));
        let cluster = Cluster::start(&bin, &dir).unwrap_or_else(|e| panic!("{e}"));
        Postgres {
            cluster,
            databases: 0,
        }
    }

    /// A new empty database, as a connection string.
    pub(crate) fn new_database(&mut self) -> String {
        self.databases += 1;
        let name = format!("ledger_it_{}", self.databases);
        let mut admin =
            postgres::Client::connect(&self.cluster.connection_string(), postgres::NoTls)
                .expect("connected to the cluster");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("database created");
        self.url(&name)
    }

    /// The running cluster.
    pub(crate) fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// `pg_ctl stop -m immediate`, then start again on the same port.
    pub(crate) fn crash_and_restart(&self) {
        self.cluster
            .crash_and_restart()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The cluster's own `postgres` database, to create others from.
    pub(crate) fn server_url(&self) -> String {
        self.url("postgres")
    }

    fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            self.cluster.port
        )
    }

    fn last_url(&self) -> String {
        self.url(&format!("ledger_it_{}", self.databases))
    }
}

impl Backend for Postgres {
    fn name(&self) -> &str {
        "postgres"
    }
    fn fresh(&mut self) -> Box<dyn EventStore> {
        let url = self.new_database();
        Box::new(PostgresStore::open(&url, Access::Write).expect("opened"))
    }
    fn reopen(&mut self, store: Box<dyn EventStore>) -> Option<Box<dyn EventStore>> {
        drop(store);
        Some(Box::new(
            PostgresStore::open(&self.last_url(), Access::Write).expect("reopened"),
        ))
    }
}

#[test]
fn the_memory_store_passes_the_conformance_suite() {
    run_suite(&mut Memory);
}

#[test]
fn the_sled_store_passes_the_conformance_suite() {
    run_suite(&mut Sled { dirs: Vec::new() });
}

#[test]
fn the_postgres_store_passes_the_conformance_suite() {
    run_suite(&mut Postgres::start());
}

#[test]
fn only_one_of_several_racing_writers_takes_the_postgres_write_lease() {
    let mut pg = Postgres::start();
    let url = pg.new_database();
    let racers = 4;
    let start = Arc::new(Barrier::new(racers));
    let opened: Vec<Result<PostgresStore, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..racers)
            .map(|_| {
                let (start, url) = (Arc::clone(&start), url.clone());
                scope.spawn(move || {
                    start.wait();
                    PostgresStore::open(&url, Access::Write)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("racer"))
            .collect()
    });
    let (writers, refused): (Vec<_>, Vec<_>) = opened.into_iter().partition(|o| o.is_ok());
    assert_eq!(writers.len(), 1, "exactly one writer: {refused:?}");
    for refusal in &refused {
        let text = refusal
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(text.contains("write lease"), "{text}");
    }
    let writer = writers
        .into_iter()
        .next()
        .and_then(Result::ok)
        .expect("one");
    let tenant = TenantId::new_random();
    writer
        .append(&events(1, 3, &[tenant]))
        .expect("the lease holder appends");
    // Once the holder is gone the lease is free, and the next writer starts from its head.
    drop(writer);
    let next = PostgresStore::open(&url, Access::Write).expect("the lease was released");
    assert_eq!(next.head(), 3);
    next.append(&events(4, 4, &[tenant])).expect("appended");
}

#[test]
fn a_postgres_writer_whose_log_moved_under_it_is_fenced_off() {
    let mut pg = Postgres::start();
    let url = pg.new_database();
    let writer = PostgresStore::open(&url, Access::Write).expect("opened");
    let tenant = TenantId::new_random();
    writer.append(&events(1, 2, &[tenant])).expect("appended");
    // Something that bypassed the lease (a restored backup, an operator) wrote sequence 3.
    let mut other = postgres::Client::connect(&url, postgres::NoTls).expect("connected");
    let record = ledger::store::record::encode_record(&events(3, 3, &[tenant]));
    other
        .execute(
            "INSERT INTO ledger_records (first_seq, last_seq, record) VALUES (3, 3, $1)",
            &[&record],
        )
        .expect("inserted");
    let refused = writer
        .append(&events(3, 3, &[tenant]))
        .expect_err("a stale writer cannot append");
    assert!(refused.to_string().contains("another writer"), "{refused}");
    assert_eq!(all(&writer, 0).len(), 3, "nothing was appended twice");
}

#[test]
fn a_read_only_postgres_store_reads_and_refuses_to_append() {
    let mut pg = Postgres::start();
    let url = pg.new_database();
    let writer = PostgresStore::open(&url, Access::Write).expect("opened");
    let tenant = TenantId::new_random();
    writer.append(&events(1, 5, &[tenant])).expect("appended");
    let reader = PostgresStore::open(&url, Access::Read).expect("a reader opens beside the writer");
    assert_eq!(reader.head(), 5);
    assert_eq!(all(&reader, 0), all(&writer, 0));
    let refused = reader
        .append(&events(6, 6, &[tenant]))
        .expect_err("read-only");
    assert!(refused.to_string().contains("read-only"), "{refused}");
}

#[test]
fn a_flipped_byte_in_a_postgres_record_is_reported_with_its_sequence() {
    let mut pg = Postgres::start();
    let url = pg.new_database();
    let writer = PostgresStore::open(&url, Access::Write).expect("opened");
    let tenant = TenantId::new_random();
    writer.append(&events(1, 2, &[tenant])).expect("appended");
    writer.append(&events(3, 4, &[tenant])).expect("appended");
    let mut other = postgres::Client::connect(&url, postgres::NoTls).expect("connected");
    other
        .execute(
            "UPDATE ledger_records SET record = set_byte(record, length(record) - 1, \
             get_byte(record, length(record) - 1) # 1) WHERE first_seq = 3",
            &[],
        )
        .expect("flipped");
    match writer.scan(0, &mut |_| true) {
        Err(Error::Corrupt { seq, reason }) => {
            assert_eq!(seq, 3);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("a flipped byte was not reported: {other:?}"),
    }
    drop(writer);
    match PostgresStore::open(&url, Access::Write) {
        Err(Error::Corrupt { seq, .. }) => assert_eq!(seq, 3),
        Err(other) => panic!("wrong refusal: {other}"),
        Ok(_) => panic!("a store whose last record is corrupt opened"),
    }
}

#[test]
fn a_postgres_schema_from_a_newer_ledger_is_refused_and_migrations_are_recorded() {
    let mut pg = Postgres::start();
    let url = pg.new_database();
    drop(PostgresStore::open(&url, Access::Write).expect("created the schema"));
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connected");
    let versions: Vec<i32> = admin
        .query(
            "SELECT version FROM ledger_schema_migrations ORDER BY version",
            &[],
        )
        .expect("read")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        vec![1, 2],
        "every migration this ledger knows, once"
    );
    // A second open migrates nothing and keeps the log.
    drop(PostgresStore::open(&url, Access::Write).expect("opened again"));
    admin
        .execute(
            "INSERT INTO ledger_schema_migrations (version, name) VALUES (999, 'future')",
            &[],
        )
        .expect("inserted");
    match PostgresStore::open(&url, Access::Write) {
        Err(e) => assert!(e.to_string().contains("newer ledger"), "{e}"),
        Ok(_) => panic!("a schema from a newer ledger was used"),
    }
}
