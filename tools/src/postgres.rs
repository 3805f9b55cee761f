//! The reference a user would build instead of the ledger: a CRUD service on PostgreSQL with
//! the same assign / unassign endpoints. One transaction per command: the licence row locked,
//! every ancestor group's quota counter locked root first, limits checked, counters and licence
//! updated, an audit row inserted, COMMIT with `synchronous_commit=on` and `fsync=on`.
//!
//! [`Cluster`] runs a throw-away PostgreSQL cluster from the server binaries found on the
//! machine (nothing is downloaded); [`router`] is the service; [`load_tenant`] copies a
//! generated tenant into its tables.

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use events::{Command, GroupId};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use tokio_postgres::{Client, NoTls, Statement};
use uuid::Uuid;

/// Seconds `pg_ctl` waits for the server to start or stop.
pub const CLUSTER_WAIT_SECONDS: u32 = 60;
/// Most pooled connections to PostgreSQL.
pub const POOL_CONNECTIONS_MAX: usize = 256;
/// Rows per INSERT when loading a tenant.
const LOAD_ROWS_PER_STATEMENT: usize = 5_000;

/// Where the PostgreSQL server binaries are: `$LEDGER_PG_BIN`, the newest
/// `/usr/lib/postgresql/*/bin`, or `initdb` on `PATH`. The error says what was looked for.
pub fn find_server_binaries() -> Result<PathBuf, String> {
    let complete = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("LEDGER_PG_BIN").map(PathBuf::from) {
        if complete(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if complete(&dir) {
            return Ok(dir);
        }
    }
    Err(
        "no PostgreSQL server binaries (initdb and pg_ctl not in $LEDGER_PG_BIN, \
         /usr/lib/postgresql/*/bin or PATH; scripts/install-postgres.sh installs them)"
            .into(),
    )
}

/// A temporary PostgreSQL cluster on 127.0.0.1, stopped and removed when dropped.
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
    /// The system user the server runs as when this process is root (`postgres` refuses root).
    run_as: Option<String>,
    running: bool,
    /// The server options it was started with, to start it again.
    options: String,
}

impl Cluster {
    /// `initdb` a cluster in `dir` (created; must not exist) and start it on a free loopback
    /// port with `fsync=on` and `synchronous_commit=on`.
    pub fn start(bin: &Path, dir: &Path) -> Result<Cluster, String> {
        let run_as = if effective_uid_is_root() {
            Some("postgres".to_string())
        } else {
            None
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if let Some(user) = &run_as {
            let (uid, gid) = system_user_ids(user)?;
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .map_err(|e| format!("cannot give {} to {user}: {e}", dir.display()))?;
        }
        let mut cluster = Cluster {
            bin: bin.to_path_buf(),
            data: dir.join("data"),
            port: free_loopback_port()?,
            run_as,
            running: false,
            options: String::new(),
        };
        let data = cluster.data.display().to_string();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        )?;
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=on \
             -c synchronous_commit=on -c max_connections={} -c shared_buffers=256MB",
            cluster.port,
            dir.display(),
            POOL_CONNECTIONS_MAX + 20
        );
        cluster.options = options;
        cluster.running = true;
        cluster.start_server()?;
        Ok(cluster)
    }

    fn start_server(&self) -> Result<(), String> {
        let data = self.data.display().to_string();
        let log = self
            .data
            .with_file_name("postgres.log")
            .display()
            .to_string();
        let wait = CLUSTER_WAIT_SECONDS.to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                &log,
                "-w",
                "-t",
                &wait,
                "-o",
                &self.options,
                "start",
            ],
        )
    }

    /// Crash the server (`pg_ctl stop -m immediate`: no checkpoint, clients cut off, recovery
    /// from the WAL on the next start) and start it again on the same port.
    pub fn crash_and_restart(&self) -> Result<(), String> {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])?;
        self.start_server()
    }

    /// The tokio-postgres connection string.
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut process = match &self.run_as {
            Some(user) => {
                let mut process = Process::new("runuser");
                process.arg("-u").arg(user).arg("--").arg(&path);
                process
            }
            None => Process::new(&path),
        };
        let output = process
            .args(args)
            .current_dir(std::env::temp_dir())
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("").trim();
        Err(format!("{program} failed ({}): {last}", output.status))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let data = self.data.display().to_string();
            let wait = CLUSTER_WAIT_SECONDS.to_string();
            let _ = self.run(
                "pg_ctl",
                &["-D", &data, "-m", "fast", "-w", "-t", &wait, "stop"],
            );
        }
        if let Some(dir) = self.data.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn effective_uid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|uid| uid == "0")
        })
        .unwrap_or(false)
}

fn system_user_ids(user: &str) -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&user) && fields.len() > 3)
        .and_then(|fields| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
        .ok_or_else(|| {
            format!("running as root and there is no system user {user} to run PostgreSQL as")
        })
}

fn free_loopback_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// A tenant as the CRUD service stores it.
#[derive(Clone, Debug, Default)]
pub struct ReferenceTenant {
    /// Each group, its parent and its depth (0 for a root).
    pub groups: Vec<(Uuid, Option<Uuid>, i32)>,
    /// Each user and its group.
    pub users: Vec<(Uuid, Uuid)>,
    /// Quota counters: group, licence type, limit.
    pub limits: Vec<(Uuid, String, i64)>,
    /// Each licence and its type, all free.
    pub licenses: Vec<(Uuid, String)>,
}

impl ReferenceTenant {
    /// The groups, restrictions and users a generated tenant's setup commands create, with
    /// `licenses` (id, type) as its licences.
    pub fn from_setup(setup: &[Command], licenses: Vec<(Uuid, String)>) -> ReferenceTenant {
        let mut tenant = ReferenceTenant {
            licenses,
            ..ReferenceTenant::default()
        };
        let mut depth_of: HashMap<GroupId, i32> = HashMap::new();
        for command in setup {
            match command {
                Command::CreateGroup { group, parent, .. } => {
                    let depth = parent.and_then(|p| depth_of.get(&p)).map_or(0, |d| d + 1);
                    depth_of.insert(*group, depth);
                    tenant.groups.push((group.0, parent.map(|p| p.0), depth));
                }
                Command::SetRestriction { group, restriction } if restriction.enabled => {
                    for (code, limit) in &restriction.limits {
                        let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
                        tenant.limits.push((group.0, code.to_string(), limit));
                    }
                }
                Command::CreateUsers(users) => {
                    tenant
                        .users
                        .extend(users.iter().map(|u| (u.user.0, u.group.0)));
                }
                _ => {}
            }
        }
        tenant
    }
}

const SCHEMA: &str = "
CREATE TABLE groups (id uuid PRIMARY KEY, parent_id uuid REFERENCES groups(id), depth int NOT NULL);
CREATE TABLE users (id uuid PRIMARY KEY, group_id uuid NOT NULL REFERENCES groups(id));
CREATE TABLE quota_counters (group_id uuid NOT NULL REFERENCES groups(id), type text NOT NULL,
    used bigint NOT NULL DEFAULT 0, quota_limit bigint NOT NULL, PRIMARY KEY (group_id, type));
CREATE TABLE licenses (id uuid PRIMARY KEY, type text NOT NULL, user_id uuid REFERENCES users(id));
CREATE TABLE audit (id bigserial PRIMARY KEY, at timestamptz NOT NULL, actor text NOT NULL,
    kind text NOT NULL, license_id uuid NOT NULL, user_id uuid);
";

/// Open one connection, driving it on the current runtime.
pub async fn connect(connection_string: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(connection_string, NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Create the schema and copy `tenant` into it.
pub async fn load_tenant(client: &Client, tenant: &ReferenceTenant) -> Result<(), String> {
    let sql = |e: tokio_postgres::Error| format!("loading the PostgreSQL reference: {e}");
    client.batch_execute(SCHEMA).await.map_err(sql)?;
    for (group, parent, depth) in &tenant.groups {
        client
            .execute(
                "INSERT INTO groups (id, parent_id, depth) VALUES ($1, $2, $3)",
                &[group, parent, depth],
            )
            .await
            .map_err(sql)?;
    }
    for (group, code, limit) in &tenant.limits {
        client
            .execute(
                "INSERT INTO quota_counters (group_id, type, quota_limit) VALUES ($1, $2, $3)",
                &[group, code, limit],
            )
            .await
            .map_err(sql)?;
    }
    for chunk in tenant.users.chunks(LOAD_ROWS_PER_STATEMENT) {
        let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
        let groups: Vec<Uuid> = chunk.iter().map(|(_, g)| *g).collect();
        client
            .execute(
                "INSERT INTO users (id, group_id) SELECT * FROM unnest($1::uuid[], $2::uuid[])",
                &[&ids, &groups],
            )
            .await
            .map_err(sql)?;
    }
    for chunk in tenant.licenses.chunks(LOAD_ROWS_PER_STATEMENT) {
        let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
        let types: Vec<String> = chunk.iter().map(|(_, t)| t.clone()).collect();
        client
            .execute(
                "INSERT INTO licenses (id, type) SELECT * FROM unnest($1::uuid[], $2::text[])",
                &[&ids, &types],
            )
            .await
            .map_err(sql)?;
    }
    client.batch_execute("ANALYZE").await.map_err(sql)
}

/// The statements of one command, prepared once per pooled connection.
struct Prepared {
    client: Client,
    lock_license: Statement,
    user_group: Statement,
    lock_counters: Statement,
    move_counters: Statement,
    set_holder: Statement,
    audit: Statement,
}

impl Prepared {
    async fn new(client: Client) -> Result<Prepared, tokio_postgres::Error> {
        Ok(Prepared {
            lock_license: client
                .prepare("SELECT type, user_id FROM licenses WHERE id = $1 FOR UPDATE")
                .await?,
            user_group: client
                .prepare("SELECT group_id FROM users WHERE id = $1")
                .await?,
            // Every ancestor's counter of the type, root first, locked in that order.
            lock_counters: client
                .prepare(
                    "WITH RECURSIVE chain AS (
                         SELECT id, parent_id, depth FROM groups WHERE id = $1
                         UNION ALL
                         SELECT g.id, g.parent_id, g.depth FROM groups g JOIN chain c ON g.id = c.parent_id)
                     SELECT q.group_id, q.used, q.quota_limit FROM quota_counters q
                     JOIN chain c ON c.id = q.group_id WHERE q.type = $2
                     ORDER BY c.depth FOR UPDATE OF q",
                )
                .await?,
            move_counters: client
                .prepare(
                    "UPDATE quota_counters SET used = used + $3 WHERE group_id = ANY($1) AND type = $2",
                )
                .await?,
            set_holder: client
                .prepare("UPDATE licenses SET user_id = $2 WHERE id = $1")
                .await?,
            audit: client
                .prepare(
                    "INSERT INTO audit (at, actor, kind, license_id, user_id) VALUES (now(), $1, $2, $3, $4)",
                )
                .await?,
            client,
        })
    }
}

/// A fixed pool of prepared connections.
pub struct Pool {
    idle: Mutex<Vec<Prepared>>,
    available: Semaphore,
}

struct Borrowed {
    pool: Arc<Pool>,
    connection: Option<Prepared>,
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        if let (Some(connection), Ok(mut idle)) = (self.connection.take(), self.pool.idle.lock()) {
            idle.push(connection);
            self.pool.available.add_permits(1);
        }
    }
}

impl Pool {
    /// Open `size` connections (at most [`POOL_CONNECTIONS_MAX`]) and prepare their statements.
    pub async fn open(connection_string: &str, size: usize) -> Result<Arc<Pool>, String> {
        let mut idle = Vec::new();
        for _ in 0..size.clamp(1, POOL_CONNECTIONS_MAX) {
            let client = connect(connection_string).await?;
            idle.push(
                Prepared::new(client)
                    .await
                    .map_err(|e| format!("cannot prepare statements: {e}"))?,
            );
        }
        let available = Semaphore::new(idle.len());
        Ok(Arc::new(Pool {
            idle: Mutex::new(idle),
            available,
        }))
    }

    async fn borrow(self: &Arc<Pool>) -> Option<Borrowed> {
        self.available.acquire().await.ok()?.forget();
        let connection = self.idle.lock().ok()?.pop();
        Some(Borrowed {
            pool: self.clone(),
            connection,
        })
    }
}

/// How a command ended, as the service answers it.
enum Outcome {
    Done,
    NotFound(&'static str),
    Conflict(&'static str),
    OverLimit,
}

/// The CRUD service: `POST /v1/tenants/{t}/licenses/{id}/assign {"user_id"}` and
/// `.../unassign`, with the ledger's status codes (404, 409, 422) and `{"ok": true}` on success.
pub fn router(pool: Arc<Pool>) -> Router {
    Router::new()
        .route("/v1/tenants/{t}/licenses/{id}/assign", post(assign))
        .route("/v1/tenants/{t}/licenses/{id}/unassign", post(unassign))
        .with_state(pool)
}

#[derive(serde::Deserialize)]
struct UserBody {
    user_id: Uuid,
}

async fn assign(
    State(pool): State<Arc<Pool>>,
    UrlPath((_tenant, license)): UrlPath<(String, Uuid)>,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<UserBody>(&body) else {
        return answer(StatusCode::BAD_REQUEST, "bad_request");
    };
    respond(change_holder(&pool, license, Some(body.user_id)).await)
}

async fn unassign(
    State(pool): State<Arc<Pool>>,
    UrlPath((_tenant, license)): UrlPath<(String, Uuid)>,
) -> Response {
    respond(change_holder(&pool, license, None).await)
}

fn respond(outcome: Result<Outcome, String>) -> Response {
    match outcome {
        Ok(Outcome::Done) => (StatusCode::OK, Json(json!({"ok": true}))).into_response(),
        Ok(Outcome::NotFound(what)) => answer(StatusCode::NOT_FOUND, what),
        Ok(Outcome::Conflict(what)) => answer(StatusCode::CONFLICT, what),
        Ok(Outcome::OverLimit) => answer(StatusCode::UNPROCESSABLE_ENTITY, "rule_violation"),
        Err(detail) => answer(StatusCode::INTERNAL_SERVER_ERROR, &detail),
    }
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": {"message": message}}))).into_response()
}

/// One transaction: lock the licence, lock every ancestor's counter root first, check, move
/// the counters by one, set or clear the holder, write an audit row, commit.
async fn change_holder(
    pool: &Arc<Pool>,
    license: Uuid,
    new_holder: Option<Uuid>,
) -> Result<Outcome, String> {
    let mut borrowed = pool.borrow().await.ok_or("no connection")?;
    let connection = borrowed.connection.as_mut().ok_or("no connection")?;
    let sql = |e: tokio_postgres::Error| e.to_string();
    let transaction = connection.client.transaction().await.map_err(sql)?;
    let Some(row) = transaction
        .query_opt(&connection.lock_license, &[&license])
        .await
        .map_err(sql)?
    else {
        return Ok(Outcome::NotFound("no such licence"));
    };
    let license_type: String = row.try_get(0).map_err(sql)?;
    let holder: Option<Uuid> = row.try_get(1).map_err(sql)?;
    let (user, delta) = match (holder, new_holder) {
        (Some(_), Some(_)) => return Ok(Outcome::Conflict("already assigned")),
        (None, None) => return Ok(Outcome::Conflict("not assigned")),
        (None, Some(user)) => (user, 1i64),
        (Some(user), None) => (user, -1i64),
    };
    let Some(row) = transaction
        .query_opt(&connection.user_group, &[&user])
        .await
        .map_err(sql)?
    else {
        return Ok(Outcome::NotFound("no such user"));
    };
    let group: Uuid = row.try_get(0).map_err(sql)?;
    let counters = transaction
        .query(&connection.lock_counters, &[&group, &license_type])
        .await
        .map_err(sql)?;
    let mut groups = Vec::with_capacity(counters.len());
    for counter in &counters {
        let used: i64 = counter.try_get(1).map_err(sql)?;
        let limit: i64 = counter.try_get(2).map_err(sql)?;
        if delta > 0 && used >= limit {
            return Ok(Outcome::OverLimit);
        }
        groups.push(counter.try_get::<_, Uuid>(0).map_err(sql)?);
    }
    transaction
        .execute(&connection.move_counters, &[&groups, &license_type, &delta])
        .await
        .map_err(sql)?;
    transaction
        .execute(&connection.set_holder, &[&license, &new_holder])
        .await
        .map_err(sql)?;
    let kind = if delta > 0 {
        "license_assigned"
    } else {
        "license_unassigned"
    };
    transaction
        .execute(&connection.audit, &[&"bench", &kind, &license, &user])
        .await
        .map_err(sql)?;
    transaction.commit().await.map_err(sql)?;
    Ok(Outcome::Done)
}
