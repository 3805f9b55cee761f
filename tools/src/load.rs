//! An open-loop HTTP/1.1 load driver: a fixed number of keep-alive connections, each sending the
//! requests of its own [`Workload`] one after another, at moments drawn from a seeded Poisson
//! process whose rate does not depend on how fast the server answers.
//!
//! Latency is measured from the moment a request was *scheduled*, not from when it could be
//! sent, so a server that falls behind is charged for the queue it causes (no coordinated
//! omission). A closed-loop run (each connection sends its next request as soon as the previous
//! answer arrived) finds the capacity; [`measure_at_capacity`] then runs open loop at a share
//! of it. Responses are parsed by hyper; only 2xx counts as a success.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Method, Request};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use uuid::Uuid;

/// Most connections one run opens.
pub const CONNECTIONS_MAX: usize = 4096;
/// How long a run waits after its last scheduled moment for answers still queued.
pub const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// Attempts to (re)connect in a row before a connection gives up for the rest of the run.
pub const CONNECT_ATTEMPTS_MAX: u32 = 20;

/// One request as the driver sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub method: Method,
    /// Path and query, e.g. `/v1/tenants/…/licenses/…/assign`.
    pub path: String,
    /// A JSON body.
    pub body: Bytes,
}

/// The requests of one connection, in order. Each connection owns its workload, so requests of
/// different connections never touch the same data.
pub trait Workload: Send + 'static {
    /// The next request to send.
    fn next_request(&mut self) -> Outgoing;
}

/// When requests are sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Each connection sends its next request as soon as the previous one was answered; the
    /// latency is measured from the actual send.
    ClosedLoop,
    /// Requests arrive at this total rate (a Poisson process per connection) whatever the
    /// answers; the latency is measured from the scheduled moment.
    OpenLoop { requests_per_second: f64 },
}

/// What one run does.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The server, on loopback.
    pub address: SocketAddr,
    /// How long requests are scheduled (closed loop: sent) for.
    pub duration: Duration,
    pub pace: Pace,
    /// Seed of the arrival process.
    pub seed: u64,
    /// Headers sent on every request besides `host` and `content-type`, e.g. `authorization`.
    pub headers: Vec<(String, String)>,
    /// Stop a connection after this many requests even before `duration` ends (for tests).
    pub requests_per_connection_max: Option<u64>,
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Requests whose answer was read (any status).
    pub answered: u64,
    /// Answers with a 2xx status.
    pub successes: u64,
    /// Answers with any other status.
    pub failures: u64,
    /// Requests sent whose answer never came (connection refused, reset, closed).
    pub transport_errors: u64,
    /// Requests scheduled but not sent before the drain grace ran out (open loop only).
    pub not_sent: u64,
    /// Count of answers per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// From the start until the last answer.
    pub elapsed: Duration,
    /// Latency of every 2xx answer, sorted.
    pub success_latencies: Vec<Duration>,
}

impl LoadReport {
    /// Successful requests per second over the run.
    pub fn successes_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds <= 0.0 {
            return 0.0;
        }
        self.successes as f64 / seconds
    }

    /// The `p`-quantile (0 to 1) of the 2xx latencies, zero when there are none.
    pub fn percentile(&self, p: f64) -> Duration {
        let sorted = &self.success_latencies;
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let index = ((sorted.len() as f64 - 1.0) * p.clamp(0.0, 1.0)).round() as usize;
        sorted[index.min(sorted.len() - 1)]
    }

    /// Every request that did not succeed: non-2xx, transport errors and never sent.
    pub fn errors(&self) -> u64 {
        self.failures + self.transport_errors + self.not_sent
    }

    fn merge(&mut self, other: LoadReport) {
        self.answered += other.answered;
        self.successes += other.successes;
        self.failures += other.failures;
        self.transport_errors += other.transport_errors;
        self.not_sent += other.not_sent;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.elapsed = self.elapsed.max(other.elapsed);
        self.success_latencies.extend(other.success_latencies);
    }

    /// One line for a table: rate, quantiles and what went wrong.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{:.0} commands/s; p50 {:.3} ms p99 {:.3} ms; {} ok",
            self.successes_per_second(),
            self.percentile(0.5).as_secs_f64() * 1000.0,
            self.percentile(0.99).as_secs_f64() * 1000.0,
            self.successes
        );
        if self.errors() > 0 {
            let statuses: Vec<String> = self
                .statuses
                .iter()
                .filter(|(status, _)| !(200..300).contains(*status))
                .map(|(status, count)| format!("{count}×{status}"))
                .collect();
            text.push_str(&format!(
                ", errors: {} non-2xx [{}], {} transport, {} not sent",
                self.failures,
                statuses.join(" "),
                self.transport_errors,
                self.not_sent
            ));
        }
        text
    }
}

/// Run `config` with one connection per workload; the workloads come back with the report so a
/// later run goes on where this one stopped.
pub async fn drive<W: Workload>(config: &LoadConfig, workloads: Vec<W>) -> (LoadReport, Vec<W>) {
    let connections = workloads.len().clamp(1, CONNECTIONS_MAX);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (index, workload) in workloads.into_iter().take(connections).enumerate() {
        let connection = Connection {
            config: config.clone(),
            rate_per_connection: match config.pace {
                Pace::ClosedLoop => None,
                Pace::OpenLoop {
                    requests_per_second,
                } => Some(requests_per_second / connections as f64),
            },
            rng: StdRng::seed_from_u64(config.seed.wrapping_add(index as u64)),
            started,
        };
        tasks.push(tokio::spawn(connection.run(workload)));
    }
    let mut report = LoadReport::default();
    let mut workloads = Vec::new();
    for task in tasks {
        match task.await {
            Ok((part, workload)) => {
                report.merge(part);
                workloads.push(workload);
            }
            Err(_) => report.transport_errors += 1,
        }
    }
    report.success_latencies.sort();
    (report, workloads)
}

/// Open-loop attempts of [`measure_at_capacity`] at most, each at a lower rate.
pub const LOAD_STEPS_MAX: usize = 3;
/// Each further attempt runs at this share of the previous one's rate.
pub const LOAD_STEP_FACTOR: f64 = 0.8;

/// What [`measure_at_capacity`] found.
#[derive(Clone, Debug)]
pub struct CapacityReport {
    /// The closed-loop probe.
    pub probe: LoadReport,
    /// The last open-loop run.
    pub run: LoadReport,
    /// The rate the last run offered, in requests per second.
    pub offered_per_second: f64,
    /// Whether the last run kept up with its rate (else every attempt fell behind).
    pub kept_up: bool,
}

/// A closed-loop probe of `probe` to find capacity, then open-loop runs of `config.duration`:
/// the first at `load_percent` of the probed rate, each further one (at most
/// [`LOAD_STEPS_MAX`] in all) at [`LOAD_STEP_FACTOR`] of the previous rate, until one keeps up
/// (answers at least 95 % of what it offered, and drains within a second of the end).
pub async fn measure_at_capacity<W: Workload>(
    config: &LoadConfig,
    probe: Duration,
    load_percent: f64,
    workloads: Vec<W>,
) -> CapacityReport {
    let probe_config = LoadConfig {
        duration: probe,
        pace: Pace::ClosedLoop,
        ..config.clone()
    };
    let (probed, mut workloads) = drive(&probe_config, workloads).await;
    let mut rate = probed.successes_per_second().max(1.0) * load_percent / 100.0;
    let mut step = 0;
    loop {
        let open_config = LoadConfig {
            pace: Pace::OpenLoop {
                requests_per_second: rate,
            },
            ..config.clone()
        };
        let (run, returned) = drive(&open_config, workloads).await;
        workloads = returned;
        step += 1;
        let kept_up = run.successes_per_second() >= 0.95 * rate
            && run.elapsed <= config.duration + Duration::from_secs(1);
        if kept_up || step >= LOAD_STEPS_MAX {
            return CapacityReport {
                probe: probed,
                run,
                offered_per_second: rate,
                kept_up,
            };
        }
        rate *= LOAD_STEP_FACTOR;
    }
}

struct Connection {
    config: LoadConfig,
    rate_per_connection: Option<f64>,
    rng: StdRng,
    started: Instant,
}

impl Connection {
    /// The next scheduled moment after `previous`: exponential gaps (Poisson arrivals).
    fn next_moment(&mut self, previous: Instant, rate: f64) -> Instant {
        let uniform: f64 = self.rng.gen_range(0.0..1.0);
        let gap = -(1.0 - uniform).ln() / rate.max(1e-9);
        previous + Duration::from_secs_f64(gap.min(3600.0))
    }

    async fn run<W: Workload>(mut self, mut workload: W) -> (LoadReport, W) {
        let mut report = LoadReport::default();
        let deadline = self.started + self.config.duration;
        let give_up = deadline + DRAIN_GRACE;
        let mut sender: Option<SendRequest<Full<Bytes>>> = None;
        let mut failed_connects = 0u32;
        let mut attempted = 0u64;
        let mut scheduled = match self.rate_per_connection {
            Some(rate) => self.next_moment(self.started, rate),
            None => self.started,
        };
        while scheduled < deadline
            && self
                .config
                .requests_per_connection_max
                .is_none_or(|max| attempted < max)
        {
            attempted += 1;
            if self.rate_per_connection.is_some() {
                tokio::time::sleep_until(scheduled).await;
            }
            if Instant::now() >= give_up || failed_connects >= CONNECT_ATTEMPTS_MAX {
                report.not_sent += 1;
            } else {
                let from = match self.rate_per_connection {
                    Some(_) => scheduled,
                    None => Instant::now(),
                };
                let outgoing = workload.next_request();
                match self.send(&mut sender, &mut failed_connects, outgoing).await {
                    Some(status) => {
                        let now = Instant::now();
                        report.answered += 1;
                        report.elapsed = now - self.started;
                        *report.statuses.entry(status).or_default() += 1;
                        if (200..300).contains(&status) {
                            report.successes += 1;
                            report.success_latencies.push(now - from);
                        } else {
                            report.failures += 1;
                        }
                    }
                    None => report.transport_errors += 1,
                }
            }
            scheduled = match self.rate_per_connection {
                Some(rate) => self.next_moment(scheduled, rate),
                None => Instant::now(),
            };
        }
        // A closed loop, or an open loop that kept up, ran for the whole duration.
        report.elapsed = report
            .elapsed
            .max(self.config.duration.min(Instant::now() - self.started));
        (report, workload)
    }

    /// Send one request on the connection (opening it first if needed) and read the whole
    /// answer; `None` when the connection failed, which is then dropped and reopened next time.
    async fn send(
        &self,
        sender: &mut Option<SendRequest<Full<Bytes>>>,
        failed_connects: &mut u32,
        outgoing: Outgoing,
    ) -> Option<u16> {
        if sender.is_none() {
            match connect(self.config.address).await {
                Ok(opened) => {
                    *sender = Some(opened);
                    *failed_connects = 0;
                }
                Err(_) => {
                    *failed_connects += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    return None;
                }
            }
        }
        let open = sender.as_mut()?;
        let mut builder = Request::builder()
            .method(outgoing.method)
            .uri(outgoing.path)
            .header(header::HOST, self.config.address.to_string())
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in &self.config.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let Ok(request) = builder.body(Full::new(outgoing.body)) else {
            return None;
        };
        let answered = async {
            open.ready().await.ok()?;
            let response = open.send_request(request).await.ok()?;
            let status = response.status().as_u16();
            response.into_body().collect().await.ok()?;
            Some(status)
        }
        .await;
        if answered.is_none() {
            *sender = None;
        }
        answered
    }
}

async fn connect(address: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Assign / unassign churn on pairs of a licence and a user: `POST {prefix}/licenses/{id}/assign
/// {"user_id"}`, then `POST {prefix}/licenses/{id}/unassign {}`, then the next pair. A
/// connection owns its pairs, so its requests never conflict with another's.
#[derive(Clone, Debug)]
pub struct AssignUnassignChurn {
    prefix: String,
    pairs: Vec<(Uuid, Uuid)>,
    next_pair: usize,
    assign_next: bool,
}

impl AssignUnassignChurn {
    /// Churn under `prefix` (e.g. `/v1/tenants/{t}`) over `(licence, user)` pairs, starting
    /// with an assign of the first pair. The licences start free.
    pub fn new(prefix: String, pairs: Vec<(Uuid, Uuid)>) -> AssignUnassignChurn {
        AssignUnassignChurn {
            prefix,
            pairs,
            next_pair: 0,
            assign_next: true,
        }
    }

    /// Split `pairs` round-robin into `connections` churns, one per connection.
    pub fn split(
        prefix: &str,
        pairs: &[(Uuid, Uuid)],
        connections: usize,
    ) -> Vec<AssignUnassignChurn> {
        let connections = connections.max(1);
        let mut owned: Vec<Vec<(Uuid, Uuid)>> = vec![Vec::new(); connections];
        for (index, pair) in pairs.iter().enumerate() {
            owned[index % connections].push(*pair);
        }
        owned
            .into_iter()
            .filter(|pairs| !pairs.is_empty())
            .map(|pairs| AssignUnassignChurn::new(prefix.to_string(), pairs))
            .collect()
    }
}

impl Workload for AssignUnassignChurn {
    fn next_request(&mut self) -> Outgoing {
        let Some((license, user)) = self.pairs.get(self.next_pair).copied() else {
            return Outgoing {
                method: Method::GET,
                path: "/healthz".into(),
                body: Bytes::new(),
            };
        };
        let outgoing = if self.assign_next {
            Outgoing {
                method: Method::POST,
                path: format!("{}/licenses/{license}/assign", self.prefix),
                body: Bytes::from(serde_json::json!({ "user_id": user }).to_string()),
            }
        } else {
            self.next_pair = (self.next_pair + 1) % self.pairs.len();
            Outgoing {
                method: Method::POST,
                path: format!("{}/licenses/{license}/unassign", self.prefix),
                body: Bytes::from_static(b"{}"),
            }
        };
        self.assign_next = !self.assign_next;
        outgoing
    }
}
