//! The child process: a real `ledger serve` started, SIGKILLed, interrupted and reaped, and a
//! minimal HTTP client for it.

use super::{Problem, HANG_TIMEOUT};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The root token the harness gives every server it starts.
pub const ROOT_TOKEN: &str = "crash-test-root-token";

/// A running `ledger serve`; killed (SIGKILL) and reaped on drop, so a failing trial never
/// leaves a process behind.
pub struct Server {
    child: Child,
    /// `http://ADDR` as printed by the server.
    pub base: String,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
}

/// Why a server did not come up.
#[derive(Debug)]
pub enum StartError {
    /// It exited before it printed `listening on`.
    Exited {
        status: ExitStatus,
        /// The stdout lines it printed.
        stdout: Vec<String>,
        stderr: String,
    },
    /// It could not be spawned, or printed nothing within the safety net.
    Failed(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Exited {
                status,
                stdout,
                stderr,
            } => write!(
                f,
                "the server exited with {status} before listening; stdout {stdout:?}; stderr:\n{stderr}"
            ),
            StartError::Failed(message) => f.write_str(message),
        }
    }
}

impl From<StartError> for Problem {
    fn from(error: StartError) -> Problem {
        Problem::new(error.to_string())
    }
}

/// How the root token is given to the server.
#[derive(Clone, Copy, Debug)]
pub enum RootToken<'a> {
    /// In `LEDGER_ROOT_TOKEN`.
    Env(&'a str),
    /// Not at all.
    Missing,
}

fn lock(text: &Mutex<String>) -> String {
    text.lock().map(|t| t.clone()).unwrap_or_default()
}

impl Server {
    /// Start `binary` on `data` with [`ROOT_TOKEN`].
    pub fn start(binary: &Path, data: &Path) -> Result<Server, StartError> {
        Server::start_on(binary, data, None)
    }

    /// Start `binary` on `data` with [`ROOT_TOKEN`], the log in `store` (`--store`: a
    /// PostgreSQL connection string) or, when `None`, on sled in `data`.
    pub fn start_on(binary: &Path, data: &Path, store: Option<&str>) -> Result<Server, StartError> {
        let mut command = Command::new(binary);
        if let Some(store) = store {
            command.env("LEDGER_STORE", store);
        }
        Server::start_command(command, data)
    }

    /// Start `command` (which names the binary and any environment of its own) on `data` with
    /// [`ROOT_TOKEN`].
    pub fn start_command(command: Command, data: &Path) -> Result<Server, StartError> {
        Server::spawn_command(command, data, RootToken::Env(ROOT_TOKEN), false)
            .map(|(server, _)| server)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Spawn `BINARY serve --data DATA --listen 127.0.0.1:0` (with `--dev` if asked) and wait
    /// for `listening on`. Returns the server and the stdout lines printed before that line.
    pub fn spawn(
        binary: &Path,
        data: &Path,
        token: RootToken<'_>,
        dev: bool,
    ) -> Result<(Server, Vec<String>), StartError> {
        let mut command = Command::new(binary);
        command.env_remove("LEDGER_STORE");
        Server::spawn_command(command, data, token, dev)
    }

    /// [`Server::spawn`] of a command that names the binary (and any environment of its own).
    fn spawn_command(
        mut command: Command,
        data: &Path,
        token: RootToken<'_>,
        dev: bool,
    ) -> Result<(Server, Vec<String>), StartError> {
        let binary = Path::new(command.get_program()).to_path_buf();
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
        let mut child = command
            .spawn()
            .map_err(|e| StartError::Failed(format!("spawn {}: {e}", binary.display())))?;
        let (Some(stdout), Some(mut stderr_pipe)) = (child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(StartError::Failed("the child's pipes are missing".into()));
        };
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let stderr_reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr_pipe.read(&mut buf) {
                if let Ok(mut sink) = sink.lock() {
                    sink.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
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
                    let status = server.child.wait().map_err(|e| {
                        StartError::Failed(format!("wait for the exited server: {e}"))
                    })?;
                    if let Some(reader) = server.stderr_reader.take() {
                        let _ = reader.join();
                    }
                    return Err(StartError::Exited {
                        status,
                        stdout: banner,
                        stderr: server.stderr(),
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(StartError::Failed(format!(
                        "safety net: no `listening on` line within {HANG_TIMEOUT:?}; stderr:\n{}",
                        server.stderr()
                    )))
                }
            }
        }
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr)
    }

    /// SIGKILL (what `Child::kill` sends on Unix) and reap.
    pub fn sigkill(&mut self) -> Result<(), Problem> {
        self.child
            .kill()
            .map_err(|e| Problem::new(format!("SIGKILL the server: {e}")))?;
        self.child
            .wait()
            .map_err(|e| Problem::new(format!("reap the killed server: {e}")))?;
        Ok(())
    }

    /// SIGINT (graceful shutdown) and wait for the exit.
    pub fn interrupt(&mut self) -> Result<ExitStatus, Problem> {
        self.signal_and_wait("INT")
    }

    /// SIGTERM (what systemd and container runtimes send) and wait for the exit.
    pub fn terminate(&mut self) -> Result<ExitStatus, Problem> {
        self.signal_and_wait("TERM")
    }

    fn signal_and_wait(&mut self, signal: &str) -> Result<ExitStatus, Problem> {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .map_err(|e| Problem::new(format!("run kill -{signal}: {e}")))?;
        if !sent.success() {
            return Err(Problem::new(format!("kill -{signal} failed: {sent}")));
        }
        let deadline = Instant::now() + HANG_TIMEOUT;
        loop {
            let polled = self
                .child
                .try_wait()
                .map_err(|e| Problem::new(format!("poll the server: {e}")))?;
            if let Some(status) = polled {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(Problem::new(format!(
                    "safety net: the server did not exit within {HANG_TIMEOUT:?} of SIG{signal}; stderr:\n{}",
                    self.stderr()
                )));
            }
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

/// Why a call got no 2xx answer with a JSON body.
#[derive(Debug)]
pub enum Failure {
    /// The server answered with this status and body.
    Status(u16, String),
    /// The connection could not be made: the request never reached a server.
    Refused(String),
    /// No (complete) answer: reset, cut off.
    Transport(String),
}

/// A bearer-token client of one server.
#[derive(Clone)]
pub struct Api {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl Api {
    /// A client of `base` (`http://ADDR`) sending `token`, with up to `connections` idle
    /// connections kept.
    pub fn new(base: &str, token: &str, connections: usize) -> Api {
        Api {
            agent: ureq::AgentBuilder::new()
                .timeout(HANG_TIMEOUT)
                .max_idle_connections_per_host(connections)
                .build(),
            base: base.to_string(),
            token: token.to_string(),
        }
    }

    /// One call; the status and JSON body of a 2xx answer.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Failure> {
        self.send_keyed(method, path, body, None)
            .map(|(status, answer, _)| (status, answer))
    }

    /// [`Api::send`] with an `Idempotency-Key`, when given: a retry with the same key returns
    /// the first answer and appends nothing. The third value: the answer says it repeats an
    /// earlier one (`Idempotent-Replayed: true`).
    pub fn send_keyed(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<(u16, Value, bool), Failure> {
        let mut request = self
            .agent
            .request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token));
        if let Some(key) = idempotency_key {
            request = request.set("Idempotency-Key", key);
        }
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match result {
            Ok(response) => {
                let status = response.status();
                let replayed = response.header("idempotent-replayed") == Some("true");
                response
                    .into_json::<Value>()
                    .map(|body| (status, body, replayed))
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
    pub fn expect(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Result<Value, Problem> {
        match self.send(method, path, body) {
            Ok((got, answer)) if got == status => Ok(answer),
            other => Err(Problem::new(format!(
                "{method} {path}: expected {status}, got {other:?}"
            ))),
        }
    }

    /// A GET that must answer 200; its body.
    pub fn get(&self, path: &str) -> Result<Value, Problem> {
        self.expect("GET", path, None, 200)
    }

    /// Every item of a paged list, in order.
    pub fn list_all(&self, path: &str) -> Result<Vec<Value>, Problem> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = match &after {
                None => self.get(&format!("{path}?limit=1000"))?,
                Some(cursor) => self.get(&format!("{path}?limit=1000&after={cursor}"))?,
            };
            let Some(page_items) = page["items"].as_array() else {
                return Err(Problem::new(format!("GET {path}: no items in {page}")));
            };
            items.extend(page_items.iter().cloned());
            match &page["next"] {
                Value::Null => return Ok(items),
                Value::String(cursor) => after = Some(cursor.clone()),
                next => after = Some(next.to_string()),
            }
        }
    }

    /// The global sequence `/healthz` reports.
    pub fn health_seq(&self) -> Result<u64, Problem> {
        let health = self.get("/healthz")?;
        health["seq"]
            .as_u64()
            .ok_or_else(|| Problem::new(format!("no seq in /healthz: {health}")))
    }
}
