//! Crash trials of the real binary.
//!
//! `ledger serve` acknowledges a write only once it is flushed, so a write that got a 2xx
//! answer must survive a SIGKILL, and the state a restarted server serves must equal what a
//! fresh process replays from the same log. Each trial starts the binary, drives 16 threads of
//! writes of every kind, SIGKILLs it at a seeded random moment, restarts it and checks: every
//! acknowledged write is present (in the state, in `/events` at its sequence, in a sample of
//! licence histories), no write never sent is, sequences and tenant versions have no gap,
//! usage and group states agree with the licences, the server writes on where the log ends,
//! its state equals a replay by a second process, and `ledger verify` (hash chain, checksums,
//! every projection rebuilt) passes. The workload touches every licence and user with exactly
//! one write, so each write's effect is checkable on its own: acknowledged → present, never
//! sent → absent, in flight at the kill → either, but nothing in between.
//!
//! [`run_cluster_trials`] runs the same workload against three nodes on one PostgreSQL log
//! and kills the writer node or crashes the database under it (see `crash/cluster.rs`).
//!
//! The harness talks to the binary over HTTP and its command line only. Timeouts are only
//! safety nets against hangs; nothing is judged on timing.

mod cluster;
mod process;
mod workload;

pub use cluster::{run_cluster_trials, ClusterTrialReport, Fault, NODES};
pub use process::{Api, Failure, RootToken, Server, StartError, ROOT_TOKEN};

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};
use workload::{first_difference, holds, is_free, snapshot, Observed, Outcome, State, Write};

/// Safety net against hangs (startup, shutdown, one HTTP call); never a timing assertion.
pub const HANG_TIMEOUT: Duration = Duration::from_secs(120);
/// The seed of the first trial unless one is given.
pub const SEED_DEFAULT: u64 = 0x5eed_c0ff_ee15_0001;

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
/// Problems listed in a failure message at most.
const PROBLEMS_LISTED_MAX: usize = 10;

const _: () = assert!(UNASSIGNED + ATTACHED <= PHONES && ATTACHED < RECORDINGS);

/// The first problem a trial found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong, with the writes or answers concerned.
    pub message: String,
    /// Acknowledged writes found missing after the restart (0 for every other problem).
    pub lost_acknowledged: usize,
}

impl Problem {
    /// A problem that lost no acknowledged write.
    pub fn new(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            lost_acknowledged: 0,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Problem {}

/// Return a [`Problem`] unless `condition` holds.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(Problem::new(format!($($message)+)));
        }
    };
}

/// What a run of trials is given.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `ledger` executable.
    pub binary: PathBuf,
    /// How many trials.
    pub trials: u64,
    /// The seed of the first trial; the others follow from it ([`trial_seed`]).
    pub seed: u64,
    /// Where each trial's data directory is made (and removed after it).
    pub scratch: PathBuf,
    /// Keep the data directory of a failing trial.
    pub keep: bool,
    /// A PostgreSQL server's connection string: each trial's log is then a new database in it
    /// (`ledger serve --store postgres://…`) instead of sled in the trial's directory.
    pub postgres: Option<String>,
}

/// What one passing trial saw.
#[derive(Clone, Debug)]
pub struct TrialReport {
    /// Numbered from 1.
    pub trial: u64,
    pub seed: u64,
    /// Writes in the load.
    pub writes: usize,
    /// The delay from the first acknowledged write to the SIGKILL.
    pub kill_after: Duration,
    /// Writes acknowledged when the SIGKILL was sent.
    pub acknowledged_at_kill: usize,
    /// Writes acknowledged in all (some answers arrive as the kill lands).
    pub acknowledged: usize,
    /// Writes without a complete answer: in flight at the kill.
    pub in_flight: usize,
    /// Of those, the ones the restarted server shows done.
    pub in_flight_durable: usize,
    /// Writes never sent, or refused by a dead server.
    pub not_sent: usize,
    /// The global sequence after the restart.
    pub recovered_seq: u64,
    pub seconds: f64,
}

impl std::fmt::Display for TrialReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trial {} seed {}: kill {} ms after the first ack with {} acknowledged; {} of {} \
             writes acknowledged, 0 lost; {} in flight ({} durable), {} never sent; recovered \
             seq {}; {:.1} s",
            self.trial,
            self.seed,
            self.kill_after.as_millis(),
            self.acknowledged_at_kill,
            self.acknowledged,
            self.writes,
            self.in_flight,
            self.in_flight_durable,
            self.not_sent,
            self.recovered_seq,
            self.seconds
        )
    }
}

/// The trial that failed and why.
#[derive(Clone, Debug)]
pub struct TrialFailure {
    /// Numbered from 1.
    pub trial: u64,
    pub seed: u64,
    pub problem: Problem,
    /// The failing trial's data directory, when kept.
    pub kept: Option<PathBuf>,
}

impl std::fmt::Display for TrialFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trial {} (seed {}) failed: {}",
            self.trial, self.seed, self.problem
        )?;
        if let Some(kept) = &self.kept {
            write!(f, "\nits data is kept in {}", kept.display())?;
        }
        Ok(())
    }
}

/// A run of trials: totals over the trials run, and the failure that stopped it, if any.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Trials run, the failing one included.
    pub trials: u64,
    /// Writes acknowledged over the passing trials.
    pub acknowledged: usize,
    /// Acknowledged writes found missing.
    pub lost: usize,
    pub seconds: f64,
    /// Cluster trials: the longest time writes were stopped by a fault (from the fault to the
    /// first acknowledgement of a write sent after it).
    pub writes_stopped_max: Option<Duration>,
    pub failure: Option<TrialFailure>,
}

impl Summary {
    /// Every trial passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} trials, {} acknowledged writes, {} lost, {:.0} s",
            self.trials, self.acknowledged, self.lost, self.seconds
        )?;
        if let Some(stopped) = self.writes_stopped_max {
            write!(f, "; writes stopped at most {} ms", stopped.as_millis())?;
        }
        if let Some(failure) = &self.failure {
            write!(f, "\nFAILED: {failure}")?;
        }
        Ok(())
    }
}

/// The seed of trial `index` (from 0) of a run starting at `first`.
pub fn trial_seed(first: u64, index: u64) -> u64 {
    first.wrapping_add(index.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Run `options.trials` trials, handing each passing one to `on_trial`; stop at the first
/// failure.
pub fn run_trials(options: &Options, on_trial: impl FnMut(&TrialReport)) -> Summary {
    run_each(
        options,
        "trial",
        |_, dir, seed, store| run_trial(&options.binary, dir, seed, store),
        on_trial,
    )
}

/// What a run of trials takes from each passing trial's report.
trait Report {
    /// Number the report (from 1).
    fn number(&mut self, trial: u64);
    /// Writes acknowledged in the trial.
    fn acknowledged(&self) -> usize;
    /// How long writes were stopped by the fault, where the trial measures it.
    fn writes_stopped(&self) -> Option<Duration>;
}

impl Report for TrialReport {
    fn number(&mut self, trial: u64) {
        self.trial = trial;
    }
    fn acknowledged(&self) -> usize {
        self.acknowledged
    }
    fn writes_stopped(&self) -> Option<Duration> {
        None
    }
}

/// The loop of every kind of trial: `run(trial, dir, seed, store)` for each trial in its own
/// directory `{kind}-{trial}-seed-{seed}` (removed after it unless it failed and
/// `options.keep`), with a new database when `options.postgres` names a server; a panic of the
/// harness is a failure too. Stops at the first failure.
fn run_each<R: Report>(
    options: &Options,
    kind: &str,
    run: impl Fn(u64, &Path, u64, Option<&str>) -> Result<R, Problem>,
    mut on_trial: impl FnMut(&R),
) -> Summary {
    let started = Instant::now();
    let mut summary = Summary {
        trials: 0,
        acknowledged: 0,
        lost: 0,
        seconds: 0.0,
        writes_stopped_max: None,
        failure: None,
    };
    for index in 0..options.trials {
        let (trial, seed) = (index + 1, trial_seed(options.seed, index));
        summary.trials = trial;
        let dir = options.scratch.join(format!("{kind}-{trial}-seed-{seed}"));
        let result = std::fs::create_dir_all(&dir)
            .map_err(|e| Problem::new(format!("create {}: {e}", dir.display())))
            .and_then(|()| match &options.postgres {
                Some(server) => new_database(server, &format!("ledger_{kind}_{trial}_{seed}")),
                None => Ok(None),
            })
            .and_then(|store| caught(|| run(trial, &dir, seed, store.as_deref())));
        let keep = result.is_err() && options.keep;
        if !keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        match result {
            Ok(mut report) => {
                report.number(trial);
                summary.acknowledged += report.acknowledged();
                if let Some(stopped) = report.writes_stopped() {
                    let max = summary.writes_stopped_max.get_or_insert(stopped);
                    *max = (*max).max(stopped);
                }
                on_trial(&report);
            }
            Err(problem) => {
                summary.lost += problem.lost_acknowledged;
                summary.failure = Some(TrialFailure {
                    trial,
                    seed,
                    problem,
                    kept: keep.then_some(dir),
                });
                break;
            }
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    summary
}

/// `trial`, with a panic (a bug of the harness) turned into a problem.
fn caught<T>(trial: impl FnOnce() -> Result<T, Problem>) -> Result<T, Problem> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(trial)).unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(Problem::new(format!("the harness panicked: {text}")))
    })
}

/// A new empty database `name` on the PostgreSQL server at `server`, as a `--store` value.
fn new_database(server: &str, name: &str) -> Result<Option<String>, Problem> {
    let failed = |e: postgres::Error| Problem::new(format!("create database {name}: {e}"));
    let mut admin = postgres::Client::connect(server, postgres::NoTls).map_err(failed)?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .map_err(failed)?;
    let mut config: postgres::Config = server
        .parse()
        .map_err(|e| Problem::new(format!("bad connection string: {e}")))?;
    config.dbname(name);
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    Ok(Some(format!("postgres://{user}@{host}:{port}/{name}")))
}

/// One trial in `dir` (which it fills with `data/` and `copy/`): load, SIGKILL at a moment
/// chosen by `seed`, restart, check everything. The log is on sled in `data/`, or in the
/// PostgreSQL database `store` names. The report's `trial` is 0.
pub fn run_trial(
    binary: &Path,
    dir: &Path,
    seed: u64,
    store: Option<&str>,
) -> Result<TrialReport, Problem> {
    let started = Instant::now();
    let mut rng = Rng(seed);
    let data = dir.join("data");
    let mut server = Server::start_on(binary, &data, store)?;
    let api = Api::new(&server.base, ROOT_TOKEN, WORKERS * 2);
    let setup = Setup::make(&api)?;
    let writes = setup.writes(&mut rng);
    let kill_after = Duration::from_millis(300 + rng.below(501));
    let seq_before_load = api.health_seq()?;
    let (outcomes, acknowledged_at_kill) =
        load(&api, &mut server, &setup.tenant, &writes, kill_after)?;
    drop(api);
    ensure!(
        acknowledged_at_kill > 0,
        "safety net: no write acknowledged within {HANG_TIMEOUT:?}; first answers: {:?}",
        outcomes
            .iter()
            .filter(|o| **o != Outcome::NotSent)
            .take(5)
            .collect::<Vec<_>>()
    );
    let acked = acknowledged_seqs(&writes, &outcomes, seq_before_load)?;
    let max_acked = acked.iter().map(|(_, s)| *s).max().unwrap_or(0);

    // Restart on the same data: every acknowledged write is there, nothing else is.
    let mut restarted = Server::start_on(binary, &data, store)?;
    let api = Api::new(&restarted.base, ROOT_TOKEN, WORKERS * 2);
    let recovered_seq = api.health_seq()?;
    ensure!(
        recovered_seq >= max_acked,
        "after the restart /healthz seq is {recovered_seq}, but a write was acknowledged at {max_acked}"
    );
    let state = State::read(&api, &setup.tenant)?;
    let in_flight_durable = check_outcomes(&setup, &state, &writes, &outcomes)?;
    check_log(&api, &setup.tenant, &writes, &acked, recovered_seq)?;
    check_gets(&setup, &restarted, &api, &state, &writes, &acked)?;
    check_counts(&setup, &api, &state)?;
    write_on(&setup, &api, recovered_seq)?;

    // The restarted server's state equals a replay from scratch by a second process on a copy
    // of the log, taken after a clean stop.
    let groups = [setup.parent.as_str(), setup.child.as_str()];
    let live = snapshot(&api, &setup.tenant, &groups)?;
    drop(api);
    let status = restarted.interrupt()?;
    ensure!(
        status.success(),
        "the restarted server exited with {status} on SIGINT; stderr:\n{}",
        restarted.stderr()
    );
    // On PostgreSQL the second process shares the database and starts with no snapshot.
    let copy = dir.join("copy");
    match store {
        // Without the snapshot the clean stop left (ledger's SNAPSHOT_FILE): a full replay.
        None => {
            copy_dir(&data, &copy)?;
            let _ = std::fs::remove_file(copy.join("ledger-snapshot"));
        }
        Some(_) => std::fs::create_dir_all(&copy)
            .map_err(|e| Problem::new(format!("create {}: {e}", copy.display())))?,
    }
    let mut replayer = Server::start_on(binary, &copy, store)?;
    let replayed = snapshot(
        &Api::new(&replayer.base, ROOT_TOKEN, 2),
        &setup.tenant,
        &groups,
    )?;
    if let Some(difference) = first_difference(&live, &replayed) {
        return Err(Problem::new(difference));
    }
    ensure!(
        replayer.interrupt()?.success(),
        "the replaying server did not stop cleanly; stderr:\n{}",
        replayer.stderr()
    );
    verify(binary, &copy, store)?;
    // The original keeps the snapshot the clean stop wrote: it equals a full replay too.
    verify(binary, &data, store)?;

    let in_flight = count(&outcomes, |o| matches!(o, Outcome::Lost(_)));
    Ok(TrialReport {
        trial: 0,
        seed,
        writes: writes.len(),
        kill_after,
        acknowledged_at_kill,
        acknowledged: acked.len(),
        in_flight,
        in_flight_durable,
        not_sent: count(&outcomes, |o| {
            matches!(o, Outcome::NotSent | Outcome::Refused(_))
        }),
        recovered_seq,
        seconds: started.elapsed().as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------------
// Setup and load.

/// The tenant a trial builds before the load: licences, a parent and a child group with
/// restrictions, one user per phone, and a viewer key.
struct Setup {
    tenant: String,
    phones: Vec<String>,
    recordings: Vec<String>,
    parent: String,
    child: String,
    users: Vec<String>,
    viewer_token: String,
}

impl Setup {
    fn make(api: &Api) -> Result<Setup, Problem> {
        let tenant = id(1, 1);
        api.expect(
            "POST",
            "/v1/tenants",
            Some(&json!({"id": tenant, "name": "Crash Test s.r.o.", "billing_timezone": "Europe/Prague"})),
            201,
        )?;
        let t = format!("/v1/tenants/{tenant}");
        let phones = provision(api, &t, "phone_system", PHONES)?;
        let recordings = provision(api, &t, "call_recording", RECORDINGS)?;
        let (parent, child) = (id(2, 1), id(2, 2));
        let groups = [
            json!({"id": parent, "name": "Prague"}),
            json!({"id": child, "name": "Support", "parent_id": parent}),
        ];
        for group in &groups {
            api.expect("POST", &format!("{t}/groups"), Some(group), 201)?;
        }
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
            )?;
        }
        let mut setup = Setup {
            tenant,
            phones,
            recordings,
            parent,
            child,
            users: (0..PHONES).map(|n| id(3, n)).collect(),
            viewer_token: String::new(),
        };
        setup.create_users(api)?;
        let key = api.expect(
            "POST",
            &format!("{t}/keys"),
            Some(&json!({"role": "viewer", "name": "crash check"})),
            201,
        )?;
        setup.viewer_token = string_of(&key, "token")?;
        let preassigned: Vec<usize> = (0..UNASSIGNED + ATTACHED).collect();
        parallel(&preassigned, WORKERS, |&n| {
            api.expect(
                "POST",
                &format!("{t}/licenses/{}/assign", setup.phones[n]),
                Some(&json!({"user_id": setup.users[n]})),
                200,
            )
            .err()
            .map(|problem| problem.message)
        })?;
        Ok(setup)
    }

    /// User `n` of the setup holds (or will hold) phone `n`; even users in the parent, odd in
    /// the child.
    fn create_users(&self, api: &Api) -> Result<(), Problem> {
        let t = format!("/v1/tenants/{}", self.tenant);
        for chunk in (0..PHONES).collect::<Vec<_>>().chunks(USERS_PER_BATCH) {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|&n| json!({"id": self.users[n], "name": format!("user {n}"), "group_id": self.group_of(n)}))
                .collect();
            let answer = api.expect(
                "POST",
                &format!("{t}/users/batch"),
                Some(&json!({ "users": batch })),
                201,
            )?;
            ensure!(
                answer["ids"].as_array().map(Vec::len) == Some(chunk.len()),
                "a batch of {} users answered {answer}",
                chunk.len()
            );
        }
        Ok(())
    }

    fn group_of(&self, n: usize) -> &String {
        if n.is_multiple_of(2) {
            &self.parent
        } else {
            &self.child
        }
    }

    /// The load, in a seeded order so that every kind of write runs all along.
    fn writes(&self, rng: &mut Rng) -> Vec<Write> {
        let mut writes: Vec<Write> = Vec::new();
        for n in 0..PHONES {
            let (license, user) = (self.phones[n].clone(), self.users[n].clone());
            writes.push(if n < UNASSIGNED {
                Write::Unassign { license, user }
            } else if n < UNASSIGNED + ATTACHED {
                let addon = self.recordings[n - UNASSIGNED].clone();
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
                group: self.group_of(n).clone(),
                extension: format!("{}", 10_000 + n),
            });
        }
        for i in (1..writes.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            writes.swap(i, j);
        }
        writes
    }
}

/// Provision `quantity` licences of `license_type`; their ids.
fn provision(
    api: &Api,
    t: &str,
    license_type: &str,
    quantity: usize,
) -> Result<Vec<String>, Problem> {
    let answer = api.expect(
        "POST",
        &format!("{t}/licenses"),
        Some(&json!({"type": license_type, "quantity": quantity})),
        201,
    )?;
    let ids: Vec<String> = answer["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.as_str().map(str::to_string))
        .collect();
    ensure!(
        ids.len() == quantity,
        "provisioning {quantity} {license_type} answered {answer}"
    );
    Ok(ids)
}

/// Send `writes` from [`WORKERS`] threads and SIGKILL `server` `kill_after` the first
/// acknowledged one (earlier if the load is nearly through, so the kill always lands while
/// writes run). Every write's outcome, and how many were acknowledged at the kill.
fn load(
    api: &Api,
    server: &mut Server,
    tenant: &str,
    writes: &[Write],
    kill_after: Duration,
) -> Result<(Vec<Outcome>, usize), Problem> {
    let outcomes = Mutex::new(vec![Outcome::NotSent; writes.len()]);
    let set = |index: usize, outcome: Outcome| {
        if let Ok(mut outcomes) = outcomes.lock() {
            outcomes[index] = outcome;
        }
    };
    let next = AtomicUsize::new(0);
    let acked = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let killed = thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                while !stop.load(Ordering::Acquire) {
                    let index = next.fetch_add(1, Ordering::AcqRel);
                    let Some(write) = writes.get(index) else {
                        break;
                    };
                    set(index, Outcome::InFlight);
                    let outcome = send(api, tenant, write);
                    if matches!(outcome, Outcome::Acked(_)) {
                        acked.fetch_add(1, Ordering::AcqRel);
                    }
                    // Past the kill every call fails: one failure per thread is enough.
                    let failed = matches!(outcome, Outcome::Refused(_) | Outcome::Lost(_));
                    set(index, outcome);
                    if failed {
                        break;
                    }
                }
            });
        }
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
        let acked_now = acked.load(Ordering::Acquire);
        let killed = server.sigkill();
        stop.store(true, Ordering::Release);
        killed.map(|()| acked_now)
    })?;
    let outcomes = outcomes
        .into_inner()
        .map_err(|_| Problem::new("a load thread panicked"))?;
    Ok((outcomes, killed))
}

/// Send one write; what became of it.
fn send(api: &Api, tenant: &str, write: &Write) -> Outcome {
    let (path, body, status) = write.request(tenant);
    match api.send("POST", &path, Some(&body)) {
        Ok((got, answer)) if got == status => match answer["seq"].as_u64() {
            Some(seq) => Outcome::Acked(seq),
            None => Outcome::Unexpected(format!("{got} without seq: {answer}")),
        },
        Ok((got, answer)) => Outcome::Unexpected(format!("{got} {answer}")),
        Err(Failure::Status(got, body)) => Outcome::Unexpected(format!("{got} {body}")),
        Err(Failure::Refused(error)) => Outcome::Refused(error),
        Err(Failure::Transport(error)) => Outcome::Lost(error),
    }
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// The acknowledged writes with their seqs: no write got an unexpected answer, no two share a
/// seq, and every one comes after the setup.
fn acknowledged_seqs(
    writes: &[Write],
    outcomes: &[Outcome],
    seq_before_load: u64,
) -> Result<Vec<(usize, u64)>, Problem> {
    let unexpected: Vec<(&Write, &Outcome)> = writes
        .iter()
        .zip(outcomes)
        .filter(|(_, o)| matches!(o, Outcome::Unexpected(_) | Outcome::InFlight))
        .collect();
    ensure!(
        unexpected.is_empty(),
        "{} writes got an unexpected answer; first: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
    let acked: Vec<(usize, u64)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            Outcome::Acked(seq) => Some((i, *seq)),
            _ => None,
        })
        .collect();
    let distinct: HashSet<u64> = acked.iter().map(|(_, s)| *s).collect();
    ensure!(
        distinct.len() == acked.len(),
        "two acknowledged writes share a seq"
    );
    ensure!(
        acked.iter().all(|(_, s)| *s > seq_before_load),
        "an acknowledged write of the load has a seq from before it ({seq_before_load})"
    );
    Ok(acked)
}

/// Every write is as its outcome says: acknowledged → done, never sent → not done, in flight →
/// either, never half done. The number of in-flight writes that are done.
fn check_outcomes(
    setup: &Setup,
    state: &State,
    writes: &[Write],
    outcomes: &[Outcome],
) -> Result<usize, Problem> {
    ensure!(
        state.licenses.len() == PHONES + RECORDINGS,
        "{} licences after the restart, {} provisioned",
        state.licenses.len(),
        PHONES + RECORDINGS
    );
    let mut wrong = Vec::new();
    let mut lost_acknowledged = 0;
    let mut in_flight_durable = 0;
    for (write, outcome) in writes.iter().zip(outcomes) {
        let observed = state.observe(write)?;
        let fine = match (outcome, &observed) {
            (Outcome::Acked(_), Observed::After)
            | (Outcome::NotSent | Outcome::Refused(_), Observed::Before)
            | (Outcome::Lost(_), Observed::Before) => true,
            (Outcome::Lost(_), Observed::After) => {
                in_flight_durable += 1;
                true
            }
            (Outcome::Acked(_), _) => {
                lost_acknowledged += 1;
                false
            }
            _ => false,
        };
        if !fine {
            wrong.push(format!("{write:?}: {outcome:?} but observed {observed:?}"));
        }
    }
    if !wrong.is_empty() {
        return Err(Problem {
            message: format!(
                "{} writes are not as acknowledged after the SIGKILL ({lost_acknowledged} \
                 acknowledged ones missing); first:\n{}",
                wrong.len(),
                wrong[..wrong.len().min(PROBLEMS_LISTED_MAX)].join("\n")
            ),
            lost_acknowledged,
        });
    }
    for recording in &setup.recordings[ATTACHED..] {
        ensure!(
            is_free(state.license(recording)?),
            "untouched {recording} changed"
        );
    }
    for user in &setup.users {
        ensure!(state.users.contains_key(user), "setup user {user} is gone");
    }
    Ok(in_flight_durable)
}

/// The tenant's log (`/events`, the only tenant of the store): sequences run from 1 to the
/// head and versions from 1 without a gap, and every acknowledged write is the event of its
/// kind at its seq.
fn check_log(
    api: &Api,
    tenant: &str,
    writes: &[Write],
    acked: &[(usize, u64)],
    head: u64,
) -> Result<(), Problem> {
    let events = api.list_all(&format!("/v1/tenants/{tenant}/events"))?;
    let mut kinds = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        let expected = index as u64 + 1;
        ensure!(
            event["seq"] == json!(expected) && event["version"] == json!(expected),
            "a gap in the log: event {expected} is {event}"
        );
        kinds.insert(expected, event["kind"].clone());
    }
    ensure!(
        events.len() as u64 == head,
        "the log holds {} events, /healthz says {head}",
        events.len()
    );
    for &(index, seq) in acked {
        let write = &writes[index];
        ensure!(
            kinds.get(&seq) == Some(&json!(write.kind())),
            "{write:?} acknowledged at seq {seq}, but the log has {:?} there",
            kinds.get(&seq)
        );
    }
    Ok(())
}

/// Every acknowledged write shows in a plain GET (as a viewer: no history, so cheap); its seq
/// is its event in the licence's history for the writes acknowledged last before the kill and
/// a sample of the others (a history is a read of the whole log).
fn check_gets(
    setup: &Setup,
    server: &Server,
    api: &Api,
    state: &State,
    writes: &[Write],
    acked: &[(usize, u64)],
) -> Result<(), Problem> {
    let t = format!("/v1/tenants/{}", setup.tenant);
    let viewer = Api::new(&server.base, &setup.viewer_token, 8);
    let mut licence_acks: Vec<(u64, usize)> = acked
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
    parallel(acked, 8, |&(index, seq)| {
        let write = &writes[index];
        let wrong =
            |one: &Value| format!("{write:?} acknowledged at seq {seq}, but GET answers {one}");
        let checked = || -> Result<Option<String>, Problem> {
            let Some(license) = write.history() else {
                let Write::CreateUser { user, group, .. } = write else {
                    return Ok(Some(format!("{write:?} has no licence history")));
                };
                let one = viewer.get(&format!("{t}/users/{user}"))?;
                return Ok((one["group_id"] != json!(group)).then(|| wrong(&one)));
            };
            let one = viewer.get(&format!("{t}/licenses/{license}"))?;
            let assigned = match write {
                Write::Assign { user, .. } => holds(&one, user),
                _ => true,
            };
            if !assigned || Some(&one) != state.licenses.get(license) {
                return Ok(Some(wrong(&one)));
            }
            if !with_history.contains(&index) {
                return Ok(None);
            }
            let audited = api.get(&format!("{t}/licenses/{license}"))?;
            let in_history = audited["events"].as_array().is_some_and(|events| {
                events
                    .iter()
                    .any(|e| e["seq"] == json!(seq) && e["kind"] == write.kind())
            });
            Ok((!in_history).then(|| wrong(&audited)))
        };
        checked().unwrap_or_else(|problem| Some(problem.message))
    })
}

/// Whether a user (by id) is a member of a group, in [`check_counts`].
type Member<'a> = dyn Fn(&str) -> bool + 'a;

/// Usage and group states agree with the licences.
fn check_counts(setup: &Setup, api: &Api, state: &State) -> Result<(), Problem> {
    let t = format!("/v1/tenants/{}", setup.tenant);
    let assigned_of = |code: &str, member: &Member| {
        state
            .licenses
            .values()
            .filter(|l| l["type"] == code && l["status"] == "assigned")
            .filter(|l| l["user_id"].as_str().is_some_and(member))
            .count() as u64
    };
    let in_child = |user: &str| {
        state
            .users
            .get(user)
            .is_some_and(|u| u["group_id"] == json!(setup.child))
    };
    let usage = api.get(&format!("{t}/usage"))?;
    for (code, owned) in [("phone_system", PHONES), ("call_recording", RECORDINGS)] {
        let assigned = assigned_of(code, &|_| true);
        let expected =
            json!({"owned": owned, "assigned": assigned, "free": owned as u64 - assigned});
        ensure!(
            usage["types"][code] == expected,
            "usage of {code} is {}, the licences say {expected}",
            usage["types"][code]
        );
    }
    let everyone = |_: &str| true;
    let groups: [(&String, u64, &Member); 2] = [
        (&setup.parent, PARENT_PHONE_LIMIT, &everyone),
        (&setup.child, CHILD_PHONE_LIMIT, &in_child),
    ];
    for (group, phone_limit, member) in groups {
        let group_state = api.get(&format!("{t}/groups/{group}/state"))?;
        ensure!(
            group_state["blocked_by"] == json!([]),
            "group {group} is blocked: {group_state}"
        );
        for (code, limit) in [
            ("phone_system", phone_limit),
            ("call_recording", RECORDING_LIMIT),
        ] {
            let used = assigned_of(code, member);
            let of_type = &group_state["types"][code];
            ensure!(
                of_type["limit"] == json!(limit)
                    && of_type["used"] == json!(used)
                    && of_type["remaining"] == json!(limit - used),
                "group {group} {code}: {of_type}, the licences say {used} used of {limit}"
            );
        }
    }
    Ok(())
}

/// The recovered server keeps writing where the log ends.
fn write_on(setup: &Setup, api: &Api, recovered_seq: u64) -> Result<(), Problem> {
    let t = format!("/v1/tenants/{}", setup.tenant);
    let late_user = id(5, 1);
    let fresh = api.expect(
        "POST",
        &format!("{t}/licenses"),
        Some(&json!({"type": "phone_system", "quantity": 3})),
        201,
    )?;
    let fresh_phone = fresh["ids"][0].as_str().unwrap_or_default().to_string();
    let mut last = recovered_seq;
    let mut answers = vec![fresh];
    for (method, path, body, status) in [
        (
            "POST",
            format!("{t}/users"),
            json!({"id": late_user, "name": "after the crash", "group_id": setup.child}),
            201,
        ),
        (
            "POST",
            format!("{t}/licenses/{fresh_phone}/assign"),
            json!({"user_id": late_user}),
            200,
        ),
        (
            "POST",
            format!("{t}/licenses/{fresh_phone}/addons"),
            json!({"addon_id": setup.recordings[ATTACHED]}),
            200,
        ),
    ] {
        answers.push(api.expect(method, &path, Some(&body), status)?);
    }
    for answer in &answers {
        let seq = answer["seq"].as_u64().unwrap_or(0);
        ensure!(
            seq > last,
            "seq {seq} after the restart does not follow {last}: {answer}"
        );
        last = seq;
    }
    let head = api.health_seq()?;
    ensure!(
        head == last,
        "/healthz says {head} after writes up to {last}"
    );
    Ok(())
}

/// `ledger verify`: sequences, checksums, hash chains and every projection rebuilt per tenant.
fn verify(binary: &Path, data: &Path, store: Option<&str>) -> Result<(), Problem> {
    let verified = Command::new(binary)
        .args(["verify", "--data"])
        .arg(data)
        .args(["--store", store.unwrap_or("sled")])
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| Problem::new(format!("run ledger verify: {e}")))?;
    ensure!(
        verified.status.success(),
        "ledger verify after the crash: {}",
        String::from_utf8_lossy(&verified.stderr)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Helpers.

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

/// A client-chosen id: `kind` tells entities apart, `n` numbers them.
fn id(kind: u16, n: usize) -> String {
    format!("c7a5e000-{kind:04x}-4000-8000-{n:012x}")
}

fn string_of(answer: &Value, field: &str) -> Result<String, Problem> {
    answer[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Problem::new(format!("no {field} in {answer}")))
}

fn count(outcomes: &[Outcome], which: impl Fn(&Outcome) -> bool) -> usize {
    outcomes.iter().filter(|o| which(o)).count()
}

/// Run `work` over `items` on `threads` threads; the problems it returns, the first
/// [`PROBLEMS_LISTED_MAX`] listed.
fn parallel<T: Sync>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> Option<String> + Sync,
) -> Result<(), Problem> {
    let next = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else { break };
                if let Some(problem) = work(item) {
                    if let Ok(mut problems) = problems.lock() {
                        problems.push(problem);
                    }
                }
            });
        }
    });
    let problems = problems.into_inner().unwrap_or_default();
    ensure!(
        problems.is_empty(),
        "{} problems; first:\n{}",
        problems.len(),
        problems[..problems.len().min(PROBLEMS_LISTED_MAX)].join("\n")
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), Problem> {
    let io = |what: &str, path: &Path, e: std::io::Error| {
        Problem::new(format!("{what} {}: {e}", path.display()))
    };
    std::fs::create_dir_all(to).map_err(|e| io("create", to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io("read", from, e))? {
        let entry = entry.map_err(|e| io("read", from, e))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry
            .file_type()
            .map_err(|e| io("stat", &source, e))?
            .is_dir()
        {
            copy_dir(&source, &target)?;
        } else {
            std::fs::copy(&source, &target).map_err(|e| io("copy", &source, e))?;
        }
    }
    Ok(())
}
