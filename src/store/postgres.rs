//! The event store on PostgreSQL, for deployments that need power-loss durability or more than
//! one machine: `ledger serve --store postgres://…`.
//!
//! The log is two tables (see `migrations/postgres/`): `ledger_records`, one row per record of
//! consecutive events in exactly the bytes sled keeps ([`super::record`], checksum included),
//! and `ledger_tenant_records`, which records hold events of a tenant. The schema is created and
//! migrated on open, one versioned file at a time, recorded in `ledger_schema_migrations`.
//!
//! **One writer.** A store opened for writing holds the *write lease*: a session advisory lock
//! on its own connection, taken on open and held until the store is dropped or the connection
//! dies. Every append is one transaction on that connection that first checks the log's head is
//! the one this store last wrote (fencing: a store that lost its lease, or whose view is stale,
//! cannot append) and commits with `synchronous_commit = on`: an acknowledged append is in the
//! fsynced WAL. Because appends are serialised by the lease and each starts from the committed
//! head, sequences commit in order: a reader never sees a sequence before every lower one has
//! committed, so no scan can skip an event that commits later with a lower number.
//!
//! The `postgres` client blocks, and the store is called from the writer thread and from async
//! handlers alike, so every connection lives on a thread of its own and is lent a job at a time.

use super::record::{
    decode_record, encode_record, record_tenants, visit_record, RECORD_EVENTS_MAX,
};
use super::{EncodedEvent, Error, EventRef, EventStore};
use events::TenantId;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use uuid::Uuid;

/// The schema's migrations in order: version, name and SQL. Each runs once, in the transaction
/// that records it.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "log",
        include_str!("../../migrations/postgres/0001_log.sql"),
    ),
    (
        2,
        "writer",
        include_str!("../../migrations/postgres/0002_writer.sql"),
    ),
];

/// Advisory lock key of the write lease (`pg_try_advisory_lock` takes a bigint).
pub const WRITE_LEASE_KEY: i64 = 0x6c65_6467_6572_0001;
/// The channel every append notifies, with its last sequence, when it commits.
pub const NOTIFY_CHANNEL: &str = "ledger_log";
/// Advisory lock key that serialises migrations of several processes starting at once.
const MIGRATION_LOCK_KEY: i64 = 0x6c65_6467_6572_0002;
/// Records read per query when scanning; the next page is asked for while one is visited.
const SCAN_PAGE_RECORDS: i64 = 64;
/// Connections that serve scans, beside the writer's.
const READER_CONNECTIONS: usize = 2;
/// How long connecting may take before the open fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the store is opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Take the write lease; fails when another process holds it.
    Write,
    /// No lease, appends refused until [`PostgresStore::try_take_lease`] takes it (`verify`,
    /// `replay`, `export`, `what-if`, and `serve`, which follows the writer until then).
    Read,
}

/// See the module documentation.
pub struct PostgresStore {
    /// The connection that holds the write lease, or asks for it.
    writer: Mutex<Option<Connections>>,
    /// Whether `writer` holds the lease.
    leased: std::sync::atomic::AtomicBool,
    readers: Connections,
    /// The connection that listens for appends of another writer, once asked to.
    listener: Mutex<Option<Connections>>,
    head: AtomicU64,
    config: postgres::Config,
    /// Host, port and database, for messages (never the password).
    target: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .field("writer", &self.is_writer())
            .field("head", &self.head())
            .finish()
    }
}

impl PostgresStore {
    /// Connect to `url` (`postgres://user@host:port/database`), create or migrate the schema,
    /// read the head, and take the write lease when `access` says so.
    pub fn open(url: &str, access: Access) -> Result<PostgresStore, Error> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| Error::Io(format!("bad PostgreSQL connection string: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let target = describe(&config);
        let readers = Connections::start(&config, READER_CONNECTIONS, &target, Reconnect::Yes)?;
        readers.call(migrate)??;
        let store = PostgresStore {
            writer: Mutex::new(None),
            leased: std::sync::atomic::AtomicBool::new(false),
            readers,
            listener: Mutex::new(None),
            head: AtomicU64::new(0),
            config,
            target,
        };
        store.head.store(store.read_head()?, Ordering::Release);
        if access == Access::Write && !store.try_take_lease(None)? {
            return Err(Error::Io(format!(
                "another ledger process holds the write lease on {}: one writer at a time",
                store.target
            )));
        }
        Ok(store)
    }

    /// The sequence the log ends at, checked against the last record's own bytes.
    fn read_head(&self) -> Result<u64, Error> {
        let last = self
            .readers
            .call(|c| {
                let row = c.query_opt(
                    "SELECT first_seq, last_seq, record FROM ledger_records \
                     ORDER BY last_seq DESC LIMIT 1",
                    &[],
                )?;
                Ok::<_, postgres::Error>(row.map(|r| {
                    (
                        r.get::<_, i64>(0),
                        r.get::<_, i64>(1),
                        r.get::<_, Vec<u8>>(2),
                    )
                }))
            })?
            .map_err(pg)?;
        let Some((first, last, record)) = last else {
            return Ok(0);
        };
        let first = sequence(first)?;
        let events = decode_record(first, &record)?;
        let decoded = events.last().map_or(0, |e| e.seq);
        if decoded != sequence(last)? {
            return Err(Error::Corrupt {
                seq: first,
                reason: format!("the record's row says it ends at {last}, it holds {decoded}"),
            });
        }
        Ok(decoded)
    }

    /// Take the write lease if it is free (true), advertising `url` as where writes go; the
    /// head is then read again, since another writer may have appended until now. True at once
    /// when this store already holds it.
    pub fn try_take_lease(&self, url: Option<&str>) -> Result<bool, Error> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if self.leased.load(Ordering::Acquire) {
            return Ok(true);
        }
        // The same connection asks again and again while another process holds the lease.
        if writer.is_none() {
            // Never reconnected behind the lease's back: the lock lives and dies with it.
            *writer = Some(Connections::start(
                &self.config,
                1,
                &self.target,
                Reconnect::No,
            )?);
        }
        let Some(connection) = writer.as_ref() else {
            return Ok(false);
        };
        let url = url.map(str::to_string);
        let leased = connection.call(move |c| {
            let row = c.query_one("SELECT pg_try_advisory_lock($1)", &[&WRITE_LEASE_KEY])?;
            if !row.get::<_, bool>(0) {
                return Ok(false);
            }
            c.batch_execute("SET synchronous_commit = on")?;
            c.execute(
                "INSERT INTO ledger_writer (only_row, url, since) VALUES (true, $1, now()) \
                 ON CONFLICT (only_row) DO UPDATE SET url = EXCLUDED.url, since = now()",
                &[&url],
            )?;
            Ok::<bool, postgres::Error>(true)
        });
        let leased = match leased {
            Ok(Ok(leased)) => leased,
            Ok(Err(e)) => {
                // Broken or refused: a new connection next time.
                *writer = None;
                return Err(pg(e));
            }
            Err(e) => {
                *writer = None;
                return Err(e);
            }
        };
        if !leased {
            return Ok(false);
        }
        self.head.store(self.read_head()?, Ordering::Release);
        self.leased.store(true, Ordering::Release);
        tracing::info!(target = %self.target, "took the write lease");
        Ok(true)
    }

    /// Let the lease go: the connection holding it is closed, so the database releases the
    /// lock whether or not it can still be reached. Appends are refused until it is taken again.
    pub fn release_lease(&self) {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        self.leased.store(false, Ordering::Release);
        *writer = None;
    }

    /// Whether this store holds the write lease.
    pub fn is_writer(&self) -> bool {
        self.leased.load(Ordering::Acquire)
    }

    /// Where the lease holder takes writes, as it advertised it (`None`: nobody serving).
    pub fn writer_url(&self) -> Result<Option<String>, Error> {
        self.readers
            .call(|c| {
                let row = c.query_opt("SELECT url FROM ledger_writer", &[])?;
                Ok::<_, postgres::Error>(row.and_then(|r| r.get::<_, Option<String>>(0)))
            })?
            .map_err(pg)
    }

    /// The last committed sequence in the database, whoever wrote it (this store's
    /// [`EventStore::head`] is the last it wrote or saw on open).
    pub fn log_head(&self) -> Result<u64, Error> {
        let found: i64 = self
            .readers
            .call(|c| {
                c.query_one("SELECT COALESCE(MAX(last_seq), 0) FROM ledger_records", &[])
                    .map(|r| r.get(0))
            })?
            .map_err(pg)?;
        sequence(found)
    }

    /// Wait until a writer commits an append (a notification on [`NOTIFY_CHANNEL`]) or
    /// `timeout` passes, whichever is first.
    pub fn wait_for_append(&self, timeout: Duration) -> Result<(), Error> {
        let mut listener = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        if listener.is_none() {
            // Opened again, LISTEN included, by the next wait after an error.
            let connection = Connections::start(&self.config, 1, &self.target, Reconnect::No)?;
            connection
                .call(|c| c.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}")))?
                .map_err(pg)?;
            *listener = Some(connection);
        }
        let Some(connection) = listener.as_ref() else {
            return Ok(());
        };
        let waited = connection.call(move |c| {
            let mut notifications = c.notifications();
            let mut waiting = notifications.timeout_iter(timeout);
            waiting.next().map(|_| ())
        })?;
        if let Err(e) = waited {
            // A broken listening connection is opened again on the next wait.
            *listener = None;
            return Err(pg(e));
        }
        Ok(())
    }

    /// Host, port and database of the store, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Visit the events of the records a query selects, a page at a time, the next page asked
    /// for while one is visited. `page(cursor)` returns the query for the records after
    /// `cursor` (a last sequence); each row is first sequence, last sequence, record.
    fn scan_pages(
        &self,
        after: u64,
        page: impl Fn(i64) -> Job<Page>,
        visit: &mut dyn FnMut(EventRef<'_>) -> bool,
    ) -> Result<(), Error> {
        let cursor = i64::try_from(after).unwrap_or(i64::MAX);
        let mut pending = self.readers.submit(page(cursor))?;
        loop {
            let rows = receive(pending)?.map_err(pg)?;
            let full = rows.len() as i64 == SCAN_PAGE_RECORDS;
            let next = rows.last().map(|r| r.1);
            pending = match (full, next) {
                (true, Some(cursor)) => self.readers.submit(page(cursor))?,
                _ => mpsc::sync_channel(1).1,
            };
            for (first, _, record) in &rows {
                if !visit_record(sequence(*first)?, record, &mut *visit)? {
                    return Ok(());
                }
            }
            if !(full && next.is_some()) {
                return Ok(());
            }
        }
    }
}

impl EventStore for PostgresStore {
    fn append(&self, batch: &[EncodedEvent]) -> Result<(), Error> {
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let Some(writer) = writer.as_ref().filter(|_| self.is_writer()) else {
            return Err(Error::Io(format!(
                "the store on {} is read-only: this process does not hold the write lease",
                self.target
            )));
        };
        if batch.is_empty() {
            return Ok(());
        }
        let head = self.head.load(Ordering::Acquire);
        super::check_follows(head, batch)?;
        let rows: Vec<Row> = batch.chunks(RECORD_EVENTS_MAX).map(Row::of).collect();
        let last = batch.last().map_or(head, |e| e.seq);
        let expected_head = head as i64;
        let fenced = writer.call(move |c| {
            let mut tx = c.transaction()?;
            let found: i64 = tx
                .query_one("SELECT COALESCE(MAX(last_seq), 0) FROM ledger_records", &[])?
                .get(0);
            if found != expected_head {
                return Ok(Some(found));
            }
            let insert_record = tx.prepare(
                "INSERT INTO ledger_records (first_seq, last_seq, record) VALUES ($1, $2, $3)",
            )?;
            let insert_tenants = tx.prepare(
                "INSERT INTO ledger_tenant_records (tenant, last_seq, first_seq) \
                 SELECT unnest($1::uuid[]), $2, $3",
            )?;
            for row in &rows {
                tx.execute(&insert_record, &[&row.first, &row.last, &row.record])?;
                tx.execute(&insert_tenants, &[&row.tenants, &row.last, &row.first])?;
            }
            let last = rows.last().map_or(0, |r| r.last).to_string();
            tx.execute("SELECT pg_notify($1, $2)", &[&NOTIFY_CHANNEL, &last])?;
            tx.commit()?;
            Ok::<_, postgres::Error>(None)
        })?;
        if let Some(found) = fenced.map_err(pg)? {
            return Err(Error::Io(format!(
                "the log on {} is at sequence {found}, not {head} as this writer left it: \
                 another writer appended, so this one stops",
                self.target
            )));
        }
        self.head.store(last, Ordering::Release);
        Ok(())
    }

    fn scan(&self, after: u64, visit: &mut dyn FnMut(EncodedEvent) -> bool) -> Result<(), Error> {
        self.scan_ref(after, &mut |event| visit(event.to_owned_event()))
    }

    fn scan_ref(
        &self,
        after: u64,
        visit: &mut dyn FnMut(EventRef<'_>) -> bool,
    ) -> Result<(), Error> {
        let page = |cursor: i64| -> Job<Page> {
            Box::new(move |c: &mut Client| {
                c.query(
                    "SELECT first_seq, last_seq, record FROM ledger_records \
                     WHERE last_seq > $1 ORDER BY last_seq LIMIT $2",
                    &[&cursor, &SCAN_PAGE_RECORDS],
                )
                .and_then(rows)
            })
        };
        self.scan_pages(after, page, &mut |event| event.seq <= after || visit(event))
    }

    fn scan_tenant(
        &self,
        tenant: TenantId,
        after: u64,
        visit: &mut dyn FnMut(EncodedEvent) -> bool,
    ) -> Result<(), Error> {
        let id: Uuid = tenant.as_uuid();
        let page = move |cursor: i64| -> Job<Page> {
            Box::new(move |c: &mut Client| {
                c.query(
                    "SELECT r.first_seq, r.last_seq, r.record \
                     FROM ledger_tenant_records t JOIN ledger_records r USING (first_seq) \
                     WHERE t.tenant = $1 AND t.last_seq > $2 ORDER BY t.last_seq LIMIT $3",
                    &[&id, &cursor, &SCAN_PAGE_RECORDS],
                )
                .and_then(rows)
            })
        };
        self.scan_pages(after, page, &mut |event| {
            event.tenant != tenant || event.seq <= after || visit(event.to_owned_event())
        })
    }

    fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }
}

impl super::Lease for PostgresStore {
    fn try_take_lease(&self, url: Option<&str>) -> Result<bool, Error> {
        PostgresStore::try_take_lease(self, url)
    }
    fn release_lease(&self) {
        PostgresStore::release_lease(self)
    }
    fn writer_url(&self) -> Result<Option<String>, Error> {
        PostgresStore::writer_url(self)
    }
    fn log_head(&self) -> Result<u64, Error> {
        PostgresStore::log_head(self)
    }
    fn wait_for_append(&self, timeout: Duration) -> Result<(), Error> {
        PostgresStore::wait_for_append(self, timeout)
    }
}

/// One record as inserted.
struct Row {
    first: i64,
    last: i64,
    record: Vec<u8>,
    tenants: Vec<Uuid>,
}

impl Row {
    fn of(events: &[EncodedEvent]) -> Row {
        let tenants = record_tenants(events).iter().map(|t| t.as_uuid()).collect();
        Row {
            first: events.first().map_or(0, |e| e.seq as i64),
            last: events.last().map_or(0, |e| e.seq as i64),
            record: encode_record(events),
            tenants,
        }
    }
}

/// One page of a scan: first sequence, last sequence and bytes of each record.
type Page = Result<Vec<(i64, i64, Vec<u8>)>, postgres::Error>;

fn rows(found: Vec<postgres::Row>) -> Page {
    found
        .into_iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// A sequence read from a `bigint` column: never negative in a sound log.
fn sequence(value: i64) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| Error::Corrupt {
        seq: 0,
        reason: format!("negative sequence {value} in the log table"),
    })
}

/// Create or migrate the schema, in one transaction that waits for any other process doing
/// the same. Refused when the database was migrated by a newer ledger.
fn migrate(client: &mut Client) -> Result<(), Error> {
    let run = |client: &mut Client| -> Result<Result<(), Error>, postgres::Error> {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])?;
        // Not the notice that the table below already exists, on every start.
        tx.batch_execute("SET LOCAL client_min_messages = warning")?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS ledger_schema_migrations (\
                 version integer PRIMARY KEY, \
                 name text NOT NULL, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )?;
        let applied: Vec<i32> = tx
            .query(
                "SELECT version FROM ledger_schema_migrations ORDER BY version",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if let Some(newer) = applied.iter().find(|v| **v > known) {
            return Ok(Err(Error::CorruptStore(format!(
                "the database's schema is at version {newer}, written by a newer ledger; this \
                 one knows versions up to {known}"
            ))));
        }
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tx.batch_execute(sql)?;
            tx.execute(
                "INSERT INTO ledger_schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )?;
            tracing::info!(version, name, "PostgreSQL schema migrated");
        }
        tx.commit()?;
        Ok(Ok(()))
    };
    run(client).map_err(pg)?
}

/// A PostgreSQL error as a storage failure, with the server's own message when it sent one.
fn pg(error: postgres::Error) -> Error {
    Error::Io(match error.as_db_error() {
        Some(db) => format!("PostgreSQL {}: {}", db.code().code(), db.message()),
        None => format!("PostgreSQL: {error}"),
    })
}

/// `host:port/database` of a connection string.
fn describe(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{database}")
}

/// Whether a connection found closed (the server restarted, the network broke) is opened
/// again before its next job.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reconnect {
    Yes,
    No,
}

/// Work lent to a connection's thread.
type Job<T> = Box<dyn FnOnce(&mut Client) -> T + Send>;
type Task = Box<dyn FnOnce(&mut Client) + Send>;

/// Connections, each on its own thread, taking jobs from one queue. Dropping them closes every
/// connection (and so releases a lease) before the drop returns.
struct Connections {
    queue: Option<mpsc::Sender<Task>>,
    threads: Vec<JoinHandle<()>>,
}

impl Connections {
    fn start(
        config: &postgres::Config,
        count: usize,
        target: &str,
        reconnect: Reconnect,
    ) -> Result<Connections, Error> {
        let (queue, tasks) = mpsc::channel::<Task>();
        let tasks = Arc::new(Mutex::new(tasks));
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let config = config.clone();
            let tasks = Arc::clone(&tasks);
            let (ready, connected) = mpsc::sync_channel(1);
            let thread = std::thread::Builder::new()
                .name(format!("ledger-pg-{index}"))
                .spawn(move || {
                    let mut client = match config.connect(NoTls) {
                        Ok(client) => {
                            let _ = ready.send(Ok(()));
                            client
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    loop {
                        let task = match tasks.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        let Ok(task) = task else {
                            return;
                        };
                        if client.is_closed() && reconnect == Reconnect::Yes {
                            match config.connect(NoTls) {
                                Ok(fresh) => client = fresh,
                                Err(e) => tracing::warn!(error = %pg(e), "cannot reconnect"),
                            }
                        }
                        task(&mut client);
                    }
                })
                .map_err(|e| Error::Io(format!("cannot start a PostgreSQL thread: {e}")))?;
            threads.push(thread);
            let connected = connected
                .recv()
                .map_err(|_| Error::Io(format!("cannot connect to PostgreSQL at {target}")))?;
            if let Err(e) = connected {
                let connections = Connections {
                    queue: Some(queue),
                    threads,
                };
                drop(connections);
                return Err(Error::Io(format!(
                    "cannot connect to PostgreSQL at {target}: {}",
                    pg(e)
                )));
            }
        }
        Ok(Connections {
            queue: Some(queue),
            threads,
        })
    }

    /// Hand `job` to the next free connection; its answer arrives on the receiver.
    fn submit<T: Send + 'static>(&self, job: Job<T>) -> Result<mpsc::Receiver<T>, Error> {
        let (answer, answered) = mpsc::sync_channel(1);
        let task: Task = Box::new(move |client| {
            let _ = answer.send(job(client));
        });
        self.queue
            .as_ref()
            .and_then(|queue| queue.send(task).ok())
            .ok_or_else(gone)?;
        Ok(answered)
    }

    /// Run `job` on the next free connection and wait for its answer.
    fn call<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Client) -> T + Send + 'static,
    ) -> Result<T, Error> {
        receive(self.submit(Box::new(job))?)
    }
}

impl Drop for Connections {
    fn drop(&mut self) {
        self.queue = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn receive<T>(answered: mpsc::Receiver<T>) -> Result<T, Error> {
    answered.recv().map_err(|_| gone())
}

fn gone() -> Error {
    Error::Io("the PostgreSQL connection is gone".into())
}
