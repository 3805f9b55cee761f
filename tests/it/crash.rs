//! Crash safety of the real binary.
//!
//! `ledger serve` acknowledges a write only once it is flushed, so a write that got a 2xx
//! answer must survive a SIGKILL, and the state a restarted server serves must equal what a
//! fresh process replays from the same log. The workload touches every licence and user with
//! exactly one write, so each write's effect is checkable on its own: acknowledged → present,
//! never sent → absent, in flight at the kill → either, but nothing in between.
//!
//! Timeouts here are only safety nets against hangs; nothing asserts on timing.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) const ROOT_TOKEN: &str = "crash-test-root-token";
/// Safety net against hangs (startup, shutdown, one HTTP call); never a timing assertion.
const HANG_TIMEOUT: Duration = Duration::from_secs(120);
/// Default seed of the workload order and the kill delay; `CRASH_SEED` overrides it.
const SEED_DEFAULT: u64 = 0x5eed_c0ff_ee15_0001;

/// `phone_system` licences provisioned, and users created before the load (one per licence).
const PHONES: usize = 2000;
/// Phones `0..UNASSIGNED` are assigned before the load and unassigned during it.
const UNASSIGNED: usize = 300;
/// Phones `UNASSIGNED..UNASSIGNED + ATTACHED` are assigned before the load and get a
/// `call_recording` add-on during it; the remaining phones are assigned during it.
const ATTACHED: usize = 300;
/// `call_recording` licences provisioned; those beyond `ATTACHED` stay untouched.
const RECORDINGS: usize = 400;
/// Users created one by one during the load.
const CREATED_USERS: usize = 3000;
/// Users per `POST /users/batch` during the setup.
const USERS_PER_BATCH: usize = 500;
/// Acknowledged licence writes checked in the licence history: this many of the last ones
/// before the kill, and about as many spread over the others.
const HISTORY_SAMPLE: usize = 64;
/// Threads sending writes.
const WORKERS: usize = 16;
/// Limits of the restrictions; above what the workload can use, so no write is refused.
const PARENT_PHONE_LIMIT: u64 = 5000;
const CHILD_PHONE_LIMIT: u64 = 1500;
const RECORDING_LIMIT: u64 = 1000;

// ---------------------------------------------------------------------------------------------
// The child process.

/// A running `ledger serve`; killed (SIGKILL) and reaped on drop, so a failing test never
/// leaves a process behind.
pub(crate) struct Server {
    child: Child,
    /// `http://ADDR` as printed by the server.
    pub(crate) base: String,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
}

/// A server that exited before it printed `listening on`.
#[derive(Debug)]
struct Exited {
    status: ExitStatus,
    stdout: Vec<String>,
    stderr: String,
}

/// How the root token is given to the server.
#[derive(Clone, Copy)]
enum RootToken<'a> {
    Env(&'a str),
    Missing,
}

impl Server {
    /// Start on `data` with the test's root token; panics if it does not come up.
    pub(crate) fn start(data: &Path) -> Server {
        match Server::spawn(data, RootToken::Env(ROOT_TOKEN), false) {
            Ok((server, _)) => server,
            Err(exited) => panic!("the server did not start: {exited:?}"),
        }
    }

    /// Spawn `ledger serve --data DATA --listen 127.0.0.1:0` and wait for `listening on`.
    /// Returns the server and the stdout lines printed before that line.
    fn spawn(
        data: &Path,
        token: RootToken<'_>,
        dev: bool,
    ) -> Result<(Server, Vec<String>), Exited> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
        command
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("LEDGER_ROOT_TOKEN")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if dev {
            command.arg("--dev");
        }
        if let RootToken::Env(token) = token {
            command.env("LEDGER_ROOT_TOKEN", token);
        }
        let mut child = command.spawn().expect("spawn the ledger binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let stderr_reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr_pipe.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut server = Server {
            child,
            base: String::new(),
            stderr,
            stderr_reader: Some(stderr_reader),
        };
        // Keep draining stdout for the life of the process so it never blocks on a full pipe.
        let (lines_tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + HANG_TIMEOUT;
        let mut banner = Vec::new();
        loop {
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => match line.strip_prefix("listening on http://") {
                    Some(addr) => {
                        server.base = format!("http://{}", addr.trim());
                        return Ok((server, banner));
                    }
                    None => banner.push(line),
                },
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait().expect("wait for the server");
                    if let Some(reader) = server.stderr_reader.take() {
                        let _ = reader.join();
                    }
                    let stderr = server.stderr.lock().unwrap().clone();
                    return Err(Exited {
                        status,
                        stdout: banner,
                        stderr,
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "safety net: no `listening on` line within {HANG_TIMEOUT:?}; stderr:\n{}",
                    server.stderr()
                ),
            }
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL (what `Child::kill` sends on Unix) and reap.
    pub(crate) fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the killed server");
    }

    /// SIGINT (graceful shutdown) and wait for the exit.
    fn interrupt(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill -INT");
        assert!(sent.success(), "kill -INT failed: {sent}");
        let deadline = Instant::now() + HANG_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "safety net: the server did not exit within {HANG_TIMEOUT:?} of SIGINT; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP.

/// Why a call got no 2xx answer with a JSON body.
#[derive(Debug)]
enum Failure {
    /// The server answered with this status.
    Status(u16, String),
    /// The connection could not be made: the request never reached a server.
    Refused(String),
    /// No (complete) answer: reset, cut off.
    Transport(String),
}

#[derive(Clone)]
struct Api {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Api {
    fn new(base: &str, token: &str) -> Api {
        Api {
            agent: ureq::AgentBuilder::new()
                .timeout(HANG_TIMEOUT)
                .max_idle_connections_per_host(WORKERS * 2)
                .build(),
            base: base.to_string(),
            token: token.to_string(),
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Failure> {
        let request = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token));
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match result {
            Ok(response) => {
                let status = response.status();
                response
                    .into_json::<Value>()
                    .map(|body| (status, body))
                    .map_err(|e| Failure::Transport(format!("reading the {status} answer: {e}")))
            }
            Err(ureq::Error::Status(status, response)) => Err(Failure::Status(
                status,
                response.into_string().unwrap_or_default(),
            )),
            Err(ureq::Error::Transport(error)) => match error.kind() {
                ureq::ErrorKind::ConnectionFailed => Err(Failure::Refused(error.to_string())),
                _ => Err(Failure::Transport(error.to_string())),
            },
        }
    }

    /// A call that must answer `status`; its body.
    fn expect(&self, method: &str, path: &str, body: Option<&Value>, status: u16) -> Value {
        match self.send(method, path, body) {
            Ok((got, answer)) if got == status => answer,
            other => panic!("{method} {path}: expected {status}, got {other:?}"),
        }
    }

    fn get(&self, path: &str) -> Value {
        self.expect("GET", path, None, 200)
    }

    /// Every item of a paged list, in order.
    fn list_all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = match &after {
                None => self.get(&format!("{path}?limit=1000")),
                Some(cursor) => self.get(&format!("{path}?limit=1000&after={cursor}")),
            };
            items.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next"].as_str() {
                Some(cursor) => after = Some(cursor.to_string()),
                None => return items,
            }
        }
    }

    fn health_seq(&self) -> u64 {
        self.get("/healthz")["seq"].as_u64().expect("healthz seq")
    }
}

/// The `seq` of a write's answer.
fn seq_of(answer: &Value) -> u64 {
    answer["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {answer}"))
}

// ---------------------------------------------------------------------------------------------
// Determinism.

/// splitmix64: the workload order and the kill delay follow from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    match std::env::var("CRASH_SEED") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("CRASH_SEED must be a u64, not {text:?}")),
        Err(_) => SEED_DEFAULT,
    }
}

/// A client-chosen id: `kind` tells entities apart, `n` numbers them.
fn id(kind: u16, n: usize) -> String {
    format!("c7a5e000-{kind:04x}-4000-8000-{n:012x}")
}

/// Run `work` over `items` on `threads` threads; a panic in one fails the caller.
fn parallel<T: Sync>(items: &[T], threads: usize, work: impl Fn(&T) + Sync) {
    let next = AtomicUsize::new(0);
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else { break };
                work(item);
            });
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The workload.

/// One write of the load; every licence and user is named by exactly one of them.
#[derive(Clone, Debug)]
enum Write {
    Assign {
        license: String,
        user: String,
    },
    Unassign {
        license: String,
        user: String,
    },
    Attach {
        base: String,
        user: String,
        addon: String,
    },
    CreateUser {
        user: String,
        group: String,
        extension: String,
    },
}

impl Write {
    fn request(&self, tenant: &str) -> (String, Value, u16) {
        let licenses = format!("/v1/tenants/{tenant}/licenses");
        match self {
            Write::Assign { license, user } => (
                format!("{licenses}/{license}/assign"),
                json!({"user_id": user}),
                200,
            ),
            Write::Unassign { license, .. } => {
                (format!("{licenses}/{license}/unassign"), json!({}), 200)
            }
            Write::Attach { base, addon, .. } => (
                format!("{licenses}/{base}/addons"),
                json!({"addon_id": addon}),
                200,
            ),
            Write::CreateUser {
                user,
                group,
                extension,
            } => (
                format!("/v1/tenants/{tenant}/users"),
                json!({"id": user, "name": format!("load user {extension}"), "group_id": group,
                       "extension": extension}),
                201,
            ),
        }
    }

    /// The licence whose history records this write, and the event kind.
    fn history(&self) -> Option<(&str, &'static str)> {
        match self {
            Write::Assign { license, .. } => Some((license, "license_assigned")),
            Write::Unassign { license, .. } => Some((license, "license_unassigned")),
            Write::Attach { addon, .. } => Some((addon, "addon_attached")),
            Write::CreateUser { .. } => None,
        }
    }
}

/// What became of one write of the load.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    NotSent,
    /// The connection was refused (the server was dead): the write never reached it.
    Refused(String),
    InFlight,
    /// A 2xx answer with this `seq`.
    Acked(u64),
    /// No complete answer (the server died): the write may or may not have happened.
    Lost(String),
    /// Any other answer; the workload is built so that none is expected.
    Unexpected(String),
}

/// Whether the state shows a write as not done, done, or neither.
#[derive(Debug, PartialEq)]
enum Observed {
    Before,
    After,
    Neither(String),
}

/// The state a server serves, keyed for lookups.
struct State {
    licenses: BTreeMap<String, Value>,
    users: BTreeMap<String, Value>,
}

impl State {
    fn read(api: &Api, tenant: &str) -> State {
        let key = |item: &Value| item["id"].as_str().expect("id").to_string();
        State {
            licenses: api
                .list_all(&format!("/v1/tenants/{tenant}/licenses"))
                .into_iter()
                .map(|l| (key(&l), l))
                .collect(),
            users: api
                .list_all(&format!("/v1/tenants/{tenant}/users"))
                .into_iter()
                .map(|u| (key(&u), u))
                .collect(),
        }
    }

    fn license(&self, id: &str) -> &Value {
        self.licenses
            .get(id)
            .unwrap_or_else(|| panic!("licence {id} is missing"))
    }

    fn observe(&self, write: &Write) -> Observed {
        match write {
            Write::Assign { license, user } => {
                let l = self.license(license);
                if is_free(l) {
                    Observed::Before
                } else if holds(l, user) {
                    Observed::After
                } else {
                    Observed::Neither(l.to_string())
                }
            }
            Write::Unassign { license, user } => {
                let l = self.license(license);
                if holds(l, user) {
                    Observed::Before
                } else if is_free(l) {
                    Observed::After
                } else {
                    Observed::Neither(l.to_string())
                }
            }
            Write::Attach { base, user, addon } => {
                let (b, a) = (self.license(base), self.license(addon));
                let attached = b["addons"].as_array().expect("addons").as_slice();
                if !holds_base(b, user) {
                    Observed::Neither(format!("base {b}"))
                } else if attached.is_empty() && is_free(a) {
                    Observed::Before
                } else if attached.len() == 1
                    && attached[0]["id"] == json!(addon)
                    && attached[0]["type"] == "call_recording"
                    && a["status"] == "assigned"
                    && a["base_id"] == json!(base)
                    && a["user_id"] == json!(user)
                {
                    Observed::After
                } else {
                    Observed::Neither(format!("base {b}, add-on {a}"))
                }
            }
            Write::CreateUser {
                user,
                group,
                extension,
            } => match self.users.get(user) {
                None => Observed::Before,
                Some(u)
                    if u["group_id"] == json!(group)
                        && u["extension"] == json!(extension)
                        && u["licenses"] == json!([]) =>
                {
                    Observed::After
                }
                Some(u) => Observed::Neither(u.to_string()),
            },
        }
    }
}

fn is_free(license: &Value) -> bool {
    license["status"] == "free"
        && license.get("user_id").is_none()
        && license.get("base_id").is_none()
        && license["addons"] == json!([])
}

/// A base licence assigned to `user`, whatever its add-ons.
fn holds_base(license: &Value, user: &str) -> bool {
    license["status"] == "assigned" && license["user_id"] == json!(user)
}

/// A base licence assigned to `user` without add-ons.
fn holds(license: &Value, user: &str) -> bool {
    holds_base(license, user) && license["addons"] == json!([])
}

/// Everything compared between the restarted server and a fresh replay (`at` dropped: it is
/// the instant of the request).
fn snapshot(api: &Api, tenant: &str, groups: &[&str]) -> BTreeMap<String, Value> {
    let without_at = |mut v: Value| {
        v.as_object_mut().expect("object").remove("at");
        v
    };
    let mut out = BTreeMap::new();
    out.insert("healthz.seq".into(), json!(api.health_seq()));
    out.insert(
        "usage".into(),
        without_at(api.get(&format!("/v1/tenants/{tenant}/usage"))),
    );
    for group in groups {
        out.insert(
            format!("group {group} state"),
            without_at(api.get(&format!("/v1/tenants/{tenant}/groups/{group}/state"))),
        );
    }
    out.insert("tenant".into(), api.get(&format!("/v1/tenants/{tenant}")));
    out.insert(
        "licenses".into(),
        Value::Array(api.list_all(&format!("/v1/tenants/{tenant}/licenses"))),
    );
    out.insert(
        "users".into(),
        Value::Array(api.list_all(&format!("/v1/tenants/{tenant}/users"))),
    );
    out
}

/// Panic naming the first difference, not two pages of JSON.
fn assert_same(live: &BTreeMap<String, Value>, replayed: &BTreeMap<String, Value>) {
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        replayed.keys().collect::<Vec<_>>()
    );
    for (part, a) in live {
        let b = &replayed[part];
        if a == b {
            continue;
        }
        if let (Some(a), Some(b)) = (a.as_array(), b.as_array()) {
            let first = a.iter().zip(b).position(|(x, y)| x != y);
            panic!(
                "{part} differs after the replay: {} vs {} items; first difference at {first:?}: \
                 restarted {:?} vs replayed {:?}",
                a.len(),
                b.len(),
                first.map(|i| &a[i]),
                first.map(|i| &b[i]),
            );
        }
        panic!("{part} differs after the replay:\nrestarted {a}\nreplayed  {b}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the data dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// Crash trials run by default; `CRASH_TRIALS` overrides it (the README reports a 100-trial
/// run: `CRASH_TRIALS=100 cargo test --release --test it crash`).
const TRIALS_DEFAULT: u64 = 10;

fn trials() -> u64 {
    match std::env::var("CRASH_TRIALS") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("CRASH_TRIALS must be a u64, not {text:?}")),
        Err(_) => TRIALS_DEFAULT,
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_and_state_equals_replay() {
    let first = seed();
    let trials = trials();
    for trial in 0..trials {
        let seed = first.wrapping_add(trial.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        eprintln!("crash trial {} of {trials}, seed {seed}", trial + 1);
        crash_trial(seed);
    }
    eprintln!("crash: {trials} trials, no acknowledged write lost");
}

/// One trial: load, SIGKILL at a moment chosen by `seed`, restart, check everything.
fn crash_trial(seed: u64) {
    let mut rng = Rng(seed);
    let data = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start(data.path());
    let api = Api::new(&server.base, ROOT_TOKEN);

    // Setup: a tenant, licences, a parent and a child group with restrictions, users.
    let tenant = id(1, 1);
    api.expect(
        "POST",
        "/v1/tenants",
        Some(&json!({"id": tenant, "name": "Crash Test s.r.o.", "billing_timezone": "Europe/Prague"})),
        201,
    );
    let t = format!("/v1/tenants/{tenant}");
    let provision = |license_type: &str, quantity: usize| -> Vec<String> {
        let answer = api.expect(
            "POST",
            &format!("{t}/licenses"),
            Some(&json!({"type": license_type, "quantity": quantity})),
            201,
        );
        let ids: Vec<String> = answer["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|i| i.as_str().expect("id").to_string())
            .collect();
        assert_eq!(ids.len(), quantity);
        ids
    };
    let phones = provision("phone_system", PHONES);
    let recordings = provision("call_recording", RECORDINGS);
    let (parent, child) = (id(2, 1), id(2, 2));
    api.expect(
        "POST",
        &format!("{t}/groups"),
        Some(&json!({"id": parent, "name": "Prague"})),
        201,
    );
    api.expect(
        "POST",
        &format!("{t}/groups"),
        Some(&json!({"id": child, "name": "Support", "parent_id": parent})),
        201,
    );
    for (group, phone_limit) in [(&parent, PARENT_PHONE_LIMIT), (&child, CHILD_PHONE_LIMIT)] {
        api.expect(
            "PUT",
            &format!("{t}/groups/{group}/restriction"),
            Some(&json!({
                "enabled": true,
                "limits": {"phone_system": phone_limit, "call_recording": RECORDING_LIMIT},
                "valid_from": "2020-01-01T00:00:00Z",
                "valid_until": "2100-01-01T00:00:00Z",
            })),
            200,
        );
    }
    // User i of the setup holds (or will hold) phone i; even users in the parent, odd in the child.
    let group_of = |n: usize| if n.is_multiple_of(2) { &parent } else { &child };
    let users: Vec<String> = (0..PHONES).map(|n| id(3, n)).collect();
    for chunk in (0..PHONES).collect::<Vec<_>>().chunks(USERS_PER_BATCH) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|&n| json!({"id": users[n], "name": format!("user {n}"), "group_id": group_of(n)}))
            .collect();
        let answer = api.expect(
            "POST",
            &format!("{t}/users/batch"),
            Some(&json!({ "users": batch })),
            201,
        );
        assert_eq!(answer["ids"].as_array().map(Vec::len), Some(chunk.len()));
    }
    let viewer_token = api.expect(
        "POST",
        &format!("{t}/keys"),
        Some(&json!({"role": "viewer", "name": "crash check"})),
        201,
    )["token"]
        .as_str()
        .expect("token")
        .to_string();
    let preassigned: Vec<usize> = (0..UNASSIGNED + ATTACHED).collect();
    parallel(&preassigned, WORKERS, |&n| {
        api.expect(
            "POST",
            &format!("{t}/licenses/{}/assign", phones[n]),
            Some(&json!({"user_id": users[n]})),
            200,
        );
    });

    // The load, in a seeded order so that every kind of write runs all along.
    let mut writes: Vec<Write> = Vec::new();
    for n in 0..PHONES {
        let (license, user) = (phones[n].clone(), users[n].clone());
        writes.push(if n < UNASSIGNED {
            Write::Unassign { license, user }
        } else if n < UNASSIGNED + ATTACHED {
            let addon = recordings[n - UNASSIGNED].clone();
            Write::Attach {
                base: license,
                user,
                addon,
            }
        } else {
            Write::Assign { license, user }
        });
    }
    for n in 0..CREATED_USERS {
        writes.push(Write::CreateUser {
            user: id(4, n),
            group: group_of(n).clone(),
            extension: format!("{}", 10_000 + n),
        });
    }
    for i in (1..writes.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        writes.swap(i, j);
    }
    let kill_after = Duration::from_millis(300 + rng.below(501));
    let seq_before_load = api.health_seq();

    let outcomes = Mutex::new(vec![Outcome::NotSent; writes.len()]);
    let next = AtomicUsize::new(0);
    let acked = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (taken_at_kill, acked_at_kill) = thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                let api = api.clone();
                while !stop.load(Ordering::Acquire) {
                    let index = next.fetch_add(1, Ordering::AcqRel);
                    let Some(write) = writes.get(index) else {
                        break;
                    };
                    outcomes.lock().unwrap()[index] = Outcome::InFlight;
                    let (path, body, status) = write.request(&tenant);
                    let outcome = match api.send("POST", &path, Some(&body)) {
                        Ok((got, answer)) if got == status && answer["seq"].is_u64() => {
                            acked.fetch_add(1, Ordering::AcqRel);
                            Outcome::Acked(seq_of(&answer))
                        }
                        Ok((got, answer)) => Outcome::Unexpected(format!("{got} {answer}")),
                        Err(Failure::Status(got, body)) => {
                            Outcome::Unexpected(format!("{got} {body}"))
                        }
                        Err(Failure::Refused(error)) => Outcome::Refused(error),
                        Err(Failure::Transport(error)) => Outcome::Lost(error),
                    };
                    // Past the kill every call fails: one failure per thread is enough.
                    let failed = matches!(outcome, Outcome::Refused(_) | Outcome::Lost(_));
                    outcomes.lock().unwrap()[index] = outcome;
                    if failed {
                        break;
                    }
                }
            });
        }
        // The killer: the delay counts from the first acknowledged write of the load; it fires
        // early if the load is nearly through, so the kill always lands while writes run.
        let deadline = Instant::now() + HANG_TIMEOUT;
        let mut first_ack = None;
        while next.load(Ordering::Acquire) < writes.len() * 9 / 10 && Instant::now() < deadline {
            if acked.load(Ordering::Acquire) > 0
                && first_ack.get_or_insert_with(Instant::now).elapsed() >= kill_after
            {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        let taken = next.load(Ordering::Acquire);
        let acked_now = acked.load(Ordering::Acquire);
        server.sigkill();
        stop.store(true, Ordering::Release);
        (taken.min(writes.len()), acked_now)
    });
    drop(api);
    let outcomes = outcomes.into_inner().unwrap();
    assert!(
        acked_at_kill > 0,
        "safety net: no write acknowledged within {HANG_TIMEOUT:?} (seed {seed}); first answers: {:?}",
        outcomes.iter().filter(|o| **o != Outcome::NotSent).take(5).collect::<Vec<_>>()
    );

    let unexpected: Vec<(usize, &Outcome)> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, Outcome::Unexpected(_) | Outcome::InFlight))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} writes got an unexpected answer (seed {seed}); first: {:?}",
        unexpected.len(),
        unexpected
            .iter()
            .take(5)
            .map(|(i, o)| (&writes[*i], o))
            .collect::<Vec<_>>()
    );
    let acked_seqs: Vec<(usize, u64)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Outcome::Acked(seq) => Some((i, *seq)),
            _ => None,
        })
        .collect();
    let lost = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Lost(_)))
        .count();
    let not_sent = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::NotSent | Outcome::Refused(_)))
        .count();
    let distinct: HashSet<u64> = acked_seqs.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        distinct.len(),
        acked_seqs.len(),
        "two acknowledged writes share a seq"
    );
    assert!(
        acked_seqs.iter().all(|(_, s)| *s > seq_before_load),
        "an acknowledged write of the load has a seq from before it"
    );
    let max_acked = acked_seqs.iter().map(|(_, s)| *s).max().unwrap_or(0);
    eprintln!(
        "crash: seed {seed}, kill after {kill_after:?} with {taken_at_kill} of {} writes taken and \
         {acked_at_kill} acknowledged; final: {} acknowledged (max seq {max_acked}), {lost} lost \
         in flight, {not_sent} never sent or refused",
        writes.len(),
        acked_seqs.len()
    );

    // Restart on the same data: every acknowledged write is there, nothing else is.
    let mut restarted = Server::start(data.path());
    let api = Api::new(&restarted.base, ROOT_TOKEN);
    let recovered_seq = api.health_seq();
    assert!(
        recovered_seq >= max_acked,
        "after the restart /healthz seq is {recovered_seq}, but a write was acknowledged at {max_acked}"
    );
    let state = State::read(&api, &tenant);
    assert_eq!(state.licenses.len(), PHONES + RECORDINGS);
    let mut failures = Vec::new();
    let mut done_but_unacked = 0;
    for (write, outcome) in writes.iter().zip(&outcomes) {
        let observed = state.observe(write);
        let fine = match (outcome, &observed) {
            (Outcome::Acked(_), Observed::After)
            | (Outcome::NotSent | Outcome::Refused(_), Observed::Before) => true,
            (Outcome::Lost(_), Observed::Before) => true,
            (Outcome::Lost(_), Observed::After) => {
                done_but_unacked += 1;
                true
            }
            _ => false,
        };
        if !fine {
            failures.push(format!("{write:?}: {outcome:?} but observed {observed:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} writes are not as acknowledged after the SIGKILL (seed {seed}); first:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    for recording in &recordings[ATTACHED..] {
        assert!(
            is_free(state.license(recording)),
            "untouched {recording} changed"
        );
    }
    for user in &users {
        assert!(state.users.contains_key(user), "setup user {user} is gone");
    }
    eprintln!("crash: {done_but_unacked} writes lost in flight were durable all the same");

    // Every acknowledged write shows in a plain GET (as a viewer: no history, so cheap). The
    // acknowledged seq is the write's event in the licence's history for the writes acknowledged
    // last before the kill and a sample of the others (a history is a read of the whole log).
    let viewer = Api::new(&restarted.base, &viewer_token);
    let mut licence_acks: Vec<(u64, usize)> = acked_seqs
        .iter()
        .filter(|(index, _)| writes[*index].history().is_some())
        .map(|&(index, seq)| (seq, index))
        .collect();
    licence_acks.sort_unstable();
    let stride = (licence_acks.len() / HISTORY_SAMPLE).max(1);
    let with_history: HashSet<usize> = licence_acks
        .iter()
        .rev()
        .take(HISTORY_SAMPLE)
        .chain(licence_acks.iter().step_by(stride))
        .map(|(_, index)| *index)
        .collect();
    let failures = Mutex::new(Vec::new());
    parallel(&acked_seqs, 8, |&(index, seq)| {
        let write = &writes[index];
        let wrong =
            |one: &Value| format!("{write:?} acknowledged at seq {seq}, but GET answers {one}");
        let problem = match (write, write.history()) {
            (Write::CreateUser { user, group, .. }, _) => {
                let one = viewer.get(&format!("{t}/users/{user}"));
                (one["group_id"] != json!(group)).then(|| wrong(&one))
            }
            (_, Some((license, kind))) => {
                let one = viewer.get(&format!("{t}/licenses/{license}"));
                let assigned = match write {
                    Write::Assign { user, .. } => holds(&one, user),
                    _ => true,
                };
                if !assigned || one != state.licenses[license] {
                    Some(wrong(&one))
                } else if with_history.contains(&index) {
                    let audited = api.get(&format!("{t}/licenses/{license}"));
                    let in_history = audited["events"]
                        .as_array()
                        .expect("events")
                        .iter()
                        .any(|e| e["seq"] == json!(seq) && e["kind"] == kind);
                    (!in_history).then(|| wrong(&audited))
                } else {
                    None
                }
            }
            (_, None) => unreachable!("every licence write has a history"),
        };
        if let Some(problem) = problem {
            failures.lock().unwrap().push(problem);
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} acknowledged writes are wrong in GET (seed {seed}); first:\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
    drop(viewer);

    // Usage and group states agree with the licences.
    let assigned_of = |prefix: &str, user_filter: &dyn Fn(&str) -> bool| {
        state
            .licenses
            .values()
            .filter(|l| l["type"] == prefix && l["status"] == "assigned")
            .filter(|l| user_filter(l["user_id"].as_str().expect("holder")))
            .count() as u64
    };
    let in_child = |user: &str| state.users[user]["group_id"] == json!(child);
    let usage = api.get(&format!("{t}/usage"));
    for (code, owned) in [("phone_system", PHONES), ("call_recording", RECORDINGS)] {
        let assigned = assigned_of(code, &|_| true);
        assert_eq!(
            usage["types"][code],
            json!({"owned": owned, "assigned": assigned, "free": owned as u64 - assigned}),
            "usage of {code}"
        );
    }
    for (group, phone_limit, member) in [
        (
            &parent,
            PARENT_PHONE_LIMIT,
            &(|_: &str| true) as &dyn Fn(&str) -> bool,
        ),
        (&child, CHILD_PHONE_LIMIT, &in_child),
    ] {
        let group_state = api.get(&format!("{t}/groups/{group}/state"));
        assert_eq!(group_state["blocked_by"], json!([]));
        for (code, limit) in [
            ("phone_system", phone_limit),
            ("call_recording", RECORDING_LIMIT),
        ] {
            let used = assigned_of(code, member);
            let of_type = &group_state["types"][code];
            assert_eq!(of_type["limit"], json!(limit), "{group} {code}: {of_type}");
            assert_eq!(of_type["used"], json!(used), "{group} {code}: {of_type}");
            assert_eq!(
                of_type["remaining"],
                json!(limit - used),
                "{group} {code}: {of_type}"
            );
        }
    }

    // The recovered server keeps writing where the log ends.
    let mut last = recovered_seq;
    let mut after = |answer: Value| {
        let seq = seq_of(&answer);
        assert!(
            seq > last,
            "seq {seq} after the restart does not follow {last}"
        );
        last = seq;
        answer
    };
    let fresh = after(api.expect(
        "POST",
        &format!("{t}/licenses"),
        Some(&json!({"type": "phone_system", "quantity": 3})),
        201,
    ));
    let fresh_phone = fresh["ids"][0].as_str().expect("id").to_string();
    let late_user = id(5, 1);
    after(api.expect(
        "POST",
        &format!("{t}/users"),
        Some(&json!({"id": late_user, "name": "after the crash", "group_id": child})),
        201,
    ));
    after(api.expect(
        "POST",
        &format!("{t}/licenses/{fresh_phone}/assign"),
        Some(&json!({"user_id": late_user})),
        200,
    ));
    after(api.expect(
        "POST",
        &format!("{t}/licenses/{fresh_phone}/addons"),
        Some(&json!({"addon_id": recordings[ATTACHED]})),
        200,
    ));
    assert_eq!(api.health_seq(), last);

    // The restarted server's state equals a replay from scratch by a second process on a copy
    // of the log, taken after a clean stop.
    let groups = [parent.as_str(), child.as_str()];
    let live = snapshot(&api, &tenant, &groups);
    drop(api);
    let status = restarted.interrupt();
    assert!(
        status.success(),
        "the restarted server exited with {status} on SIGINT; stderr:\n{}",
        restarted.stderr()
    );
    let copy = tempfile::tempdir().expect("temp dir");
    copy_dir(data.path(), copy.path());
    let mut replayer = Server::start(copy.path());
    let replayed = snapshot(&Api::new(&replayer.base, ROOT_TOKEN), &tenant, &groups);
    assert_same(&live, &replayed);
    // Sequences, checksums, hash chains and every projection rebuilt per tenant.
    assert!(replayer.interrupt().success());
    let verified = Command::new(env!("CARGO_BIN_EXE_ledger"))
        .args(["verify", "--data"])
        .arg(copy.path())
        .output()
        .expect("run ledger verify");
    assert!(
        verified.status.success(),
        "ledger verify after the crash: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let mut report = String::new();
    for (code, usage) in live["usage"]["types"].as_object().expect("types") {
        let _ = write!(report, " {code} {usage}");
    }
    eprintln!("crash: state after the replay equals the restarted server's:{report}");
}

#[test]
fn serve_refuses_to_start_without_a_root_token_and_dev_prints_one_that_works() {
    let data = tempfile::tempdir().expect("temp dir");

    for token in [RootToken::Missing, RootToken::Env("")] {
        let exited = match Server::spawn(data.path(), token, false) {
            Ok((server, _)) => panic!("the server started without a root token at {}", server.base),
            Err(exited) => exited,
        };
        assert!(!exited.status.success(), "exit status {}", exited.status);
        assert!(
            exited.stdout.is_empty(),
            "printed before refusing: {exited:?}"
        );
        assert!(
            exited.stderr.contains("no root token")
                && exited.stderr.contains("LEDGER_ROOT_TOKEN")
                && exited.stderr.contains("--dev"),
            "the refusal does not say what is missing: {exited:?}"
        );
    }

    let (server, banner) =
        Server::spawn(data.path(), RootToken::Missing, true).expect("start with --dev");
    let token = banner
        .iter()
        .find_map(|line| line.strip_prefix("dev root token: "))
        .unwrap_or_else(|| panic!("no `dev root token:` line before `listening on`: {banner:?}"))
        .trim();
    assert!(!token.is_empty());
    let body = json!({"name": "Dev s.r.o."});
    let created = Api::new(&server.base, token).expect("POST", "/v1/tenants", Some(&body), 201);
    assert!(created["id"].is_string(), "{created}");
    match Api::new(&server.base, ROOT_TOKEN).send("POST", "/v1/tenants", Some(&body)) {
        Err(Failure::Status(401, _)) => {}
        other => panic!("another token than the printed one must be refused: {other:?}"),
    }
}
