//! Crash trials of three `ledger serve` nodes on one PostgreSQL log, under load.
//!
//! Each trial starts three nodes on a new database, builds the tenant of the single-node trials
//! through the writer, and drives the same writes from 16 threads spread over all three nodes
//! (a write sent to a follower is forwarded to the writer). Every write carries an
//! `Idempotency-Key` and is retried, on the next node, until it is acknowledged: the way a
//! client behind a load balancer is told to behave on a 503 or a cut connection. At a seeded
//! moment the trial injects one fault: odd trials SIGKILL the writer node (and start it again a
//! seeded moment later, on its own data directory, to rejoin as a follower), even trials crash
//! the database (`pg_ctl stop -m immediate`, then start it again). Then it checks that every
//! write was applied exactly once (the log grew by exactly one event per write, each at the seq
//! its acknowledgement gave), sequences and versions have no gap, every node's state equals the
//! others' and a fresh replay's, usage and group states agree with the licences on every node,
//! the cluster writes on, every node stops cleanly and `ledger verify --store` passes on every
//! node's directory. It reports how long writes were stopped: from the end of the fault (the
//! SIGKILLed writer reaped, or the database up again) to the first acknowledgement of a write
//! sent after it.

use super::process::{Api, Failure, Server, ROOT_TOKEN};
use super::workload::{first_difference, snapshot, Outcome, State, Write};
use super::{
    acknowledged_seqs, check_counts, check_gets, check_log, check_outcomes, run_each, verify,
    write_on, Options, Problem, Report, Rng, Setup, Summary, HANG_TIMEOUT, WORKERS,
};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

/// Nodes in a trial.
pub const NODES: usize = 3;

/// The fault a cluster trial injects under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the node that holds the write lease, and start it again later.
    KillWriter,
    /// `pg_ctl stop -m immediate` of the database server, and start it again.
    CrashDatabase,
}

impl Fault {
    /// Trial `n` (from 1): odd trials kill the writer, even ones crash the database.
    pub fn of_trial(trial: u64) -> Fault {
        if trial % 2 == 1 {
            Fault::KillWriter
        } else {
            Fault::CrashDatabase
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fault::KillWriter => "writer SIGKILLed",
            Fault::CrashDatabase => "database crashed",
        })
    }
}

/// What one passing cluster trial saw.
#[derive(Clone, Debug)]
pub struct ClusterTrialReport {
    /// Numbered from 1.
    pub trial: u64,
    pub seed: u64,
    pub fault: Fault,
    /// Writes in the load, every one acknowledged in the end.
    pub writes: usize,
    /// Writes acknowledged when the fault struck.
    pub acknowledged_at_fault: usize,
    /// Writes that needed more than one attempt (a 503, a cut connection, a dead node).
    pub retried: usize,
    /// Of those, the ones whose earlier attempt had been applied (the retry answered the first
    /// answer, by its `Idempotency-Key`).
    pub retried_applied: usize,
    /// From the end of the fault (the writer's SIGKILL reaped, or the database up again) to
    /// the first acknowledgement of a write sent after it.
    pub writes_stopped: Duration,
    /// The global sequence at the end of the load.
    pub head: u64,
    pub seconds: f64,
}

impl std::fmt::Display for ClusterTrialReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trial {} seed {}: {} with {} acknowledged; first write acknowledged {} ms after; all {} writes \
             acknowledged once, 0 lost; {} retried ({} of them had been applied); head {}; \
             {:.1} s",
            self.trial,
            self.seed,
            self.fault,
            self.acknowledged_at_fault,
            self.writes_stopped.as_millis(),
            self.writes,
            self.retried,
            self.retried_applied,
            self.head,
            self.seconds
        )
    }
}

/// Run `options.trials` cluster trials on the PostgreSQL server `options.postgres` names (a
/// new database each); `crash_database` crashes that server and starts it again. Stops at the
/// first failure. The summary's `writes_stopped_max` is the longest stop seen.
pub fn run_cluster_trials(
    options: &Options,
    crash_database: &(dyn Fn() -> Result<(), String> + Sync),
    on_trial: impl FnMut(&ClusterTrialReport),
) -> Summary {
    let run = |trial, dir: &Path, seed, store: Option<&str>| {
        let store = store.ok_or_else(|| Problem::new("cluster trials need a PostgreSQL server"))?;
        let trial = Trial {
            binary: &options.binary,
            dir,
            seed,
            store,
            fault: Fault::of_trial(trial),
            crash_database,
        };
        let nodes = Nodes::start(trial.binary, dir, store)?;
        trial.run(&nodes).map_err(|mut problem| {
            problem.message.push_str(&nodes.logs());
            problem
        })
    };
    run_each(options, "cluster", run, on_trial)
}

impl Report for ClusterTrialReport {
    fn number(&mut self, trial: u64) {
        self.trial = trial;
    }
    fn acknowledged(&self) -> usize {
        self.writes
    }
    fn writes_stopped(&self) -> Option<Duration> {
        Some(self.writes_stopped)
    }
}

/// What one cluster trial is given.
struct Trial<'a> {
    binary: &'a Path,
    /// Each node's data directory is under it.
    dir: &'a Path,
    seed: u64,
    /// The database the nodes share.
    store: &'a str,
    fault: Fault,
    crash_database: &'a (dyn Fn() -> Result<(), String> + Sync),
}

/// The nodes of a trial: the processes, and a client of each running one.
struct Nodes {
    servers: Mutex<Vec<Option<Server>>>,
    apis: RwLock<Vec<Option<Api>>>,
}

impl Nodes {
    fn start(binary: &Path, dir: &Path, store: &str) -> Result<Nodes, Problem> {
        let mut servers = Vec::new();
        let mut apis = Vec::new();
        for node in 0..NODES {
            let server = Server::start_on(binary, &node_dir(dir, node), Some(store))?;
            apis.push(Some(Api::new(&server.base, ROOT_TOKEN, WORKERS * 2)));
            servers.push(Some(server));
        }
        Ok(Nodes {
            servers: Mutex::new(servers),
            apis: RwLock::new(apis),
        })
    }

    fn servers(&self) -> Result<std::sync::MutexGuard<'_, Vec<Option<Server>>>, Problem> {
        self.servers
            .lock()
            .map_err(|_| Problem::new("a thread panicked holding the nodes"))
    }

    /// The end of what each node wrote to stderr, to read beside a failure.
    fn logs(&self) -> String {
        const TAIL: usize = 3000;
        let Ok(servers) = self.servers.lock() else {
            return String::new();
        };
        let mut out = String::new();
        for (node, server) in servers.iter().enumerate() {
            let Some(server) = server else { continue };
            let log = server.stderr();
            let start = log.len().saturating_sub(TAIL);
            let start = (start..=log.len())
                .find(|&i| log.is_char_boundary(i))
                .unwrap_or(log.len());
            out.push_str(&format!(
                "\n--- node {node} stderr (end) ---\n{}",
                &log[start..]
            ));
        }
        out
    }

    /// SIGKILL `node` (out of the load's rotation first).
    fn kill(&self, node: usize) -> Result<(), Problem> {
        self.set_api(node, None);
        let mut servers = self.servers()?;
        match servers[node].take() {
            Some(mut server) => server.sigkill(),
            None => Err(Problem::new(format!("node {node} was not running"))),
        }
    }

    /// Start `node` again on its own data directory (a new port) and put it back in rotation.
    fn restart(&self, node: usize, binary: &Path, dir: &Path, store: &str) -> Result<(), Problem> {
        let server = Server::start_on(binary, &node_dir(dir, node), Some(store))?;
        let api = Api::new(&server.base, ROOT_TOKEN, WORKERS * 2);
        self.servers()?[node] = Some(server);
        self.set_api(node, Some(api));
        Ok(())
    }

    fn api(&self, node: usize) -> Option<Api> {
        self.apis.read().ok()?.get(node).cloned().flatten()
    }

    /// A client of every node, which must all be running.
    fn all(&self) -> Result<Vec<Api>, Problem> {
        (0..NODES)
            .map(|node| {
                self.api(node)
                    .ok_or_else(|| Problem::new(format!("node {node} is not running")))
            })
            .collect()
    }

    fn set_api(&self, node: usize, api: Option<Api>) {
        if let Ok(mut apis) = self.apis.write() {
            apis[node] = api;
        }
    }

    /// Wait until exactly one node says it is the writer; which. Two writers at once fail.
    fn writer(&self) -> Result<usize, Problem> {
        let deadline = Instant::now() + HANG_TIMEOUT;
        loop {
            let writers: Vec<usize> = (0..NODES)
                .filter(|&node| {
                    self.api(node)
                        .and_then(|api| api.get("/healthz").ok())
                        .is_some_and(|health| health["role"] == "writer")
                })
                .collect();
            match writers[..] {
                [one] => return Ok(one),
                [] if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                [] => {
                    return Err(Problem::new(format!(
                        "safety net: no node became the writer within {HANG_TIMEOUT:?}"
                    )))
                }
                _ => return Err(Problem::new(format!("two writers at once: {writers:?}"))),
            }
        }
    }

    /// Wait until every node has folded the log up to `seq`.
    fn caught_up(&self, seq: u64) -> Result<(), Problem> {
        for (node, api) in self.all()?.iter().enumerate() {
            let deadline = Instant::now() + HANG_TIMEOUT;
            while api.get(&format!("/healthz?min_seq={seq}")).is_err() {
                if Instant::now() >= deadline {
                    return Err(Problem::new(format!(
                        "safety net: node {node} did not reach seq {seq} within {HANG_TIMEOUT:?}"
                    )));
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

fn node_dir(dir: &Path, node: usize) -> std::path::PathBuf {
    dir.join(format!("node-{node}"))
}

/// What became of one write, with the moments of its acknowledged attempt.
#[derive(Clone, Debug)]
struct Attempted {
    outcome: Outcome,
    attempts: usize,
    /// The acknowledgement repeated an earlier attempt's answer (`Idempotent-Replayed`).
    replayed: bool,
    sent_at: Option<Instant>,
    acked_at: Option<Instant>,
}

impl Trial<'_> {
    /// The trial on its running nodes. The report's `trial` is 0.
    fn run(&self, nodes: &Nodes) -> Result<ClusterTrialReport, Problem> {
        let Trial {
            binary,
            dir,
            seed,
            store,
            fault,
            crash_database,
        } = *self;
        let started = Instant::now();
        let mut rng = Rng(seed);
        let writer = nodes.writer()?;
        let writer_api = nodes
            .api(writer)
            .ok_or_else(|| Problem::new("the writer has no client"))?;
        let setup = Setup::make(&writer_api)?;
        let writes = setup.writes(&mut rng);
        let fault_after = Duration::from_millis(300 + rng.below(501));
        let restart_after = Duration::from_millis(200 + rng.below(801));
        let seq_before_load = writer_api.health_seq()?;
        nodes.caught_up(seq_before_load)?;

        let (attempted, acknowledged_at_fault, fault_at) = load(
            nodes,
            binary,
            dir,
            store,
            &setup.tenant,
            &writes,
            (fault, fault_after, restart_after),
            crash_database,
        )?;
        let outcomes: Vec<Outcome> = attempted.iter().map(|a| a.outcome.clone()).collect();
        let acked = acknowledged_seqs(&writes, &outcomes, seq_before_load)?;
        if let Some((index, a)) = attempted
            .iter()
            .enumerate()
            .find(|(_, a)| !matches!(a.outcome, Outcome::Acked(_)))
        {
            return Err(Problem::new(format!(
                "{:?} was never acknowledged after {} attempts: {:?}",
                writes[index], a.attempts, a.outcome
            )));
        }
        let writes_stopped = attempted
            .iter()
            .filter(|a| a.sent_at.is_some_and(|sent| sent >= fault_at))
            .filter_map(|a| a.acked_at)
            .min()
            .map(|acked| acked.duration_since(fault_at))
            .ok_or_else(|| Problem::new("no write sent after the fault was acknowledged"))?;

        // Exactly once: one event per write, each at the seq its acknowledgement gave.
        let writer = nodes.writer()?;
        let writer_api = nodes
            .api(writer)
            .ok_or_else(|| Problem::new("the writer has no client"))?;
        let head = writer_api.health_seq()?;
        let expected_head = seq_before_load + writes.len() as u64;
        if head != expected_head {
            return Err(Problem::new(format!(
                "the log ends at {head} after {} writes from {seq_before_load}: {}",
                writes.len(),
                if head > expected_head {
                    "a write was applied twice, or something else was appended"
                } else {
                    "an acknowledged write is missing"
                }
            )));
        }
        nodes.caught_up(head)?;
        let apis = nodes.all()?;
        let state = State::read(&writer_api, &setup.tenant)?;
        check_outcomes(&setup, &state, &writes, &outcomes)?;
        check_log(&writer_api, &setup.tenant, &writes, &acked, head)?;
        for api in &apis {
            check_counts(&setup, api, &state)?;
        }
        let follower = (writer + 1) % NODES;
        {
            let servers = nodes.servers()?;
            let follower_server = servers[follower]
                .as_ref()
                .ok_or_else(|| Problem::new("a follower is not running"))?;
            check_gets(
                &setup,
                follower_server,
                &apis[follower],
                &state,
                &writes,
                &acked,
            )?;
        }
        // The cluster writes on, through a follower.
        write_on(&setup, &apis[follower], head)?;

        // Every node's state equals a fresh replay by a fourth process on an empty directory.
        let head = writer_api.health_seq()?;
        nodes.caught_up(head)?;
        let groups = [setup.parent.as_str(), setup.child.as_str()];
        let replayer_dir = dir.join("replayer");
        let mut replayer = Server::start_on(binary, &replayer_dir, Some(store))?;
        let replayer_api = Api::new(&replayer.base, ROOT_TOKEN, 2);
        replayer_api.get(&format!("/healthz?min_seq={head}"))?;
        let replayed = snapshot(&replayer_api, &setup.tenant, &groups)?;
        for (node, api) in apis.iter().enumerate() {
            let live = snapshot(api, &setup.tenant, &groups)?;
            if let Some(difference) = first_difference(&live, &replayed) {
                return Err(Problem::new(format!("node {node}: {difference}")));
            }
        }
        let mut servers = nodes.servers()?;
        let mut stopped = vec![&mut replayer];
        stopped.extend(servers.iter_mut().flatten());
        for server in stopped {
            let status = server.interrupt()?;
            if !status.success() {
                return Err(Problem::new(format!(
                    "a node exited with {status} on SIGINT; stderr:\n{}",
                    server.stderr()
                )));
            }
        }
        verify(binary, &replayer_dir, Some(store))?;
        for node in 0..NODES {
            verify(binary, &node_dir(dir, node), Some(store))?;
        }
        Ok(ClusterTrialReport {
            trial: 0,
            seed,
            fault,
            writes: writes.len(),
            acknowledged_at_fault,
            retried: attempted.iter().filter(|a| a.attempts > 1).count(),
            retried_applied: attempted.iter().filter(|a| a.replayed).count(),
            writes_stopped,
            head: expected_head,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// The fault, how long after the first acknowledgement it strikes, and (for a killed writer)
/// how long after the kill the node starts again.
type Plan = (Fault, Duration, Duration);

/// Send every write from [`WORKERS`] threads spread over the nodes, retrying each on the next
/// node until it is acknowledged, and strike `plan`'s fault under the load. Each write's
/// outcome, the acknowledgements at the fault, and the moment of the fault.
#[allow(clippy::too_many_arguments)]
fn load(
    nodes: &Nodes,
    binary: &Path,
    dir: &Path,
    store: &str,
    tenant: &str,
    writes: &[Write],
    (fault, fault_after, restart_after): Plan,
    crash_database: &(dyn Fn() -> Result<(), String> + Sync),
) -> Result<(Vec<Attempted>, usize, Instant), Problem> {
    let fresh = Attempted {
        outcome: Outcome::NotSent,
        attempts: 0,
        replayed: false,
        sent_at: None,
        acked_at: None,
    };
    let attempted = Mutex::new(vec![fresh; writes.len()]);
    let next = AtomicUsize::new(0);
    let acked = AtomicUsize::new(0);
    let victim = nodes.writer()?;
    let key_prefix = format!("crash-{}", uuid::Uuid::new_v4());
    let (acknowledged_at_fault, fault_at, struck) = thread::scope(|scope| {
        for worker in 0..WORKERS {
            let (next, acked, attempted, key_prefix) = (&next, &acked, &attempted, &key_prefix);
            scope.spawn(move || loop {
                let index = next.fetch_add(1, Ordering::AcqRel);
                let Some(write) = writes.get(index) else {
                    break;
                };
                let key = format!("{key_prefix}-{index}");
                let done = send_until_acknowledged(nodes, worker, tenant, write, &key);
                if matches!(done.outcome, Outcome::Acked(_)) {
                    acked.fetch_add(1, Ordering::AcqRel);
                }
                if let Ok(mut attempted) = attempted.lock() {
                    attempted[index] = done;
                }
            });
        }
        // The fault: after the first acknowledgement and `fault_after`, or when most writes
        // are sent, so that it always strikes under load.
        let deadline = Instant::now() + HANG_TIMEOUT;
        let mut first_ack = None;
        while next.load(Ordering::Acquire) < writes.len() * 6 / 10 && Instant::now() < deadline {
            if acked.load(Ordering::Acquire) > 0
                && first_ack.get_or_insert_with(Instant::now).elapsed() >= fault_after
            {
                break;
            }
            thread::sleep(Duration::from_millis(1));
        }
        let acked_now = acked.load(Ordering::Acquire);
        // Writes are stopped from the end of the fault: the writer's SIGKILL reaped, or the
        // database up again.
        let struck = match fault {
            Fault::KillWriter => nodes.kill(victim).map(|()| {
                let killed = Instant::now();
                thread::sleep(restart_after);
                (killed, nodes.restart(victim, binary, dir, store))
            }),
            Fault::CrashDatabase => crash_database()
                .map_err(Problem::new)
                .map(|()| (Instant::now(), Ok(()))),
        };
        match struck {
            Ok((fault_at, restarted)) => (acked_now, fault_at, restarted),
            Err(problem) => (acked_now, Instant::now(), Err(problem)),
        }
    });
    struck?;
    let attempted = attempted
        .into_inner()
        .map_err(|_| Problem::new("a load thread panicked"))?;
    Ok((attempted, acknowledged_at_fault, fault_at))
}

/// Send `write` to the nodes in turn, starting at `worker`'s, with `key`, until a node
/// acknowledges it or answers something no retry changes.
fn send_until_acknowledged(
    nodes: &Nodes,
    worker: usize,
    tenant: &str,
    write: &Write,
    key: &str,
) -> Attempted {
    let (path, body, status) = write.request(tenant);
    let deadline = Instant::now() + HANG_TIMEOUT;
    let mut attempts = 0;
    loop {
        let node = (worker + attempts) % NODES;
        attempts += 1;
        let give_up = |outcome| Attempted {
            outcome,
            attempts,
            replayed: false,
            sent_at: None,
            acked_at: None,
        };
        let Some(api) = nodes.api(node) else {
            continue;
        };
        let sent_at = Instant::now();
        let retry = match api.send_keyed("POST", &path, Some(&body), Some(key)) {
            Ok((got, answer, replayed)) if got == status => {
                return match answer["seq"].as_u64() {
                    Some(seq) => Attempted {
                        outcome: Outcome::Acked(seq),
                        attempts,
                        replayed,
                        sent_at: Some(sent_at),
                        acked_at: Some(Instant::now()),
                    },
                    None => give_up(Outcome::Unexpected(format!("{got} without seq: {answer}"))),
                }
            }
            Ok((got, answer, _)) => return give_up(Outcome::Unexpected(format!("{got} {answer}"))),
            // A node that lost the lease, a follower whose writer did not answer, a writer
            // that stepped down: the outcome is unknown, the key makes the retry safe.
            Err(Failure::Status(503, reason)) => reason,
            Err(Failure::Status(got, body)) => {
                return give_up(Outcome::Unexpected(format!("{got} {body}")))
            }
            Err(Failure::Refused(error)) | Err(Failure::Transport(error)) => error,
        };
        if Instant::now() >= deadline {
            return give_up(Outcome::Lost(format!(
                "safety net: not acknowledged within {HANG_TIMEOUT:?}; last: {retry}"
            )));
        }
        thread::sleep(Duration::from_millis(10 * attempts.min(10) as u64));
    }
}
