//! The bench's memory row: the peak resident memory of a process that rebuilds every
//! projection from a log holding one tenant of 100 000 users and 1 000 000 licences.
//!
//! The bench process itself has allocated a great deal by then (it built the log), so the
//! figure comes from a child process of the same binary, `bench load` (hidden), which opens the
//! store, replays the whole log (no snapshot) and reports its own peak RSS. The references are
//! the same child on an empty store (the process and sled's fixed buffers) and the same child
//! only scanning the log without folding it (what sled's cache of the records read adds).
//! Peak RSS is read from `/proc/self/status`: elsewhere the row says it was skipped, and why.

use super::common::{flush_if_large, request, Row};
use chrono::Utc;
use events::CommandId;
use ledger::ledger::World;
use ledger::store::sled_store::SledStore;
use ledger::store::EventStore;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The target of the row: the projections of the large tenant fit in 1 GiB.
const MEMORY_TARGET_BYTES: u64 = 1 << 30;
/// The hidden subcommand of the bench binary that runs the child.
pub const LOAD_COMMAND: &str = "load";
const MIB: f64 = (1u64 << 20) as f64;
const GIB: f64 = (1u64 << 30) as f64;

/// `bench load`: the child process of the memory row.
#[derive(clap::Args, Debug)]
pub struct BenchLoadArgs {
    /// Directory of the store to replay.
    #[arg(long)]
    pub data: std::path::PathBuf,
    /// Only read every event of the log, folding nothing.
    #[arg(long)]
    pub scan_only: bool,
}

/// What `bench load` prints on stdout, one JSON object.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoadReport {
    /// Events replayed.
    pub events: u64,
    pub tenants: usize,
    pub users: usize,
    pub licenses: usize,
    /// Peak resident set size of the process (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// Resident set size once the state is loaded (`VmRSS`).
    pub rss_bytes: u64,
    /// How long the replay (or the scan) took, opening the store left out.
    pub replay_seconds: f64,
}

/// Open the store in `data`, replay the whole log into a [`World`] (with `scan_only`, only
/// read its events) and report the process's peak RSS with the state still held.
pub fn load_and_report(data: &Path, scan_only: bool) -> Result<LoadReport, String> {
    let store = ledger::cli::offline::open_store(data)?;
    let started = std::time::Instant::now();
    let world = if scan_only {
        let mut events = 0;
        store
            .scan_ref(0, &mut |_| {
                events += 1;
                true
            })
            .map_err(|e| e.to_string())?;
        World {
            head: events,
            ..World::default()
        }
    } else {
        World::load(&store).map_err(|e| e.to_string())?
    };
    let replay_seconds = started.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    let report = LoadReport {
        events: world.head,
        tenants: world.tenants.len(),
        users: world.tenants.values().map(|t| t.users.len()).sum(),
        licenses: world.tenants.values().map(|t| t.licenses.len()).sum(),
        peak_rss_bytes: status_bytes(&status, "VmHWM")?,
        rss_bytes: status_bytes(&status, "VmRSS")?,
        replay_seconds,
    };
    // Held until measured: the figure is of the state loaded, not of a process that dropped it.
    drop(world);
    Ok(report)
}

/// A `kB` field of the text of `/proc/self/status`, in bytes.
fn status_bytes(status: &str, field: &str) -> Result<u64, String> {
    parse_status_kib(status, field)
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("no {field} in /proc/self/status"))
}

/// The value in KiB of a line such as `VmHWM:   123456 kB`.
fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|number| number.trim().parse().ok())
}

/// The memory row: build the log of `users` users and `licenses` licences in `dir`, then run
/// the child on it and on an empty store.
pub(super) fn memory_row(dir: &Path, users: usize, licenses: u32) -> Result<Row, String> {
    let scenario =
        format!("projection memory, {users} users, {licenses} licences (full replay, no snapshot)");
    if !cfg!(target_os = "linux") {
        return Ok(Row {
            scenario,
            figure: "skipped: peak RSS is read from /proc/self/status, which only Linux has".into(),
            reference: "—".into(),
            ratio: "—".into(),
        });
    }
    let assigned = build_memory_log(&dir.join("log"), users, licenses)?;
    let empty_dir = dir.join("empty");
    drop(SledStore::open(&empty_dir).map_err(|e| e.to_string())?);
    let empty = run_child(&empty_dir, false)?;
    let scanned = run_child(&dir.join("log"), true)?;
    let full = run_child(&dir.join("log"), false)?;
    if full.users != users || full.licenses != licenses as usize {
        return Err(format!(
            "the child loaded {} users and {} licences, not {users} and {licenses}",
            full.users, full.licenses
        ));
    }
    Ok(Row {
        scenario,
        figure: format!(
            "peak RSS {:.0} MiB ({} users, {} licences of which {assigned} assigned, {} events; \
             {:.0} MiB resident after the replay)",
            full.peak_rss_bytes as f64 / MIB,
            full.users,
            full.licenses,
            full.events,
            full.rss_bytes as f64 / MIB
        ),
        reference: format!(
            "the same process on an empty store: {:.0} MiB; only scanning the log, folding \
             nothing: {:.0} MiB",
            empty.peak_rss_bytes as f64 / MIB,
            scanned.peak_rss_bytes as f64 / MIB
        ),
        ratio: format!(
            "{:.2} GiB of the {:.0} GiB target",
            full.peak_rss_bytes as f64 / GIB,
            MEMORY_TARGET_BYTES as f64 / GIB
        ),
    })
}

/// Append the tenant of [`crate::memory_layout`] and its assignments to a new store in `dir`,
/// in records of about 4096 events, one command a millisecond; returns the licences assigned.
pub(super) fn build_memory_log(dir: &Path, users: usize, licenses: u32) -> Result<u64, String> {
    let memory = crate::memory_layout(users, licenses, 5);
    let store = SledStore::open(dir).map_err(|e| e.to_string())?;
    let mut world = World::default();
    let mut encoded = Vec::new();
    let start = events::time::truncate_to_micros(Utc::now()) - chrono::Duration::days(7);
    let commands = memory.layout.setup.into_iter().chain(memory.assignments);
    for (index, command) in commands.enumerate() {
        let now = start + chrono::Duration::milliseconds(index as i64);
        world
            .decide_into(
                &request(memory.layout.tenant, command),
                CommandId::new_random(),
                now,
                &mut encoded,
            )
            .map_err(|e| format!("building the memory log: {e}"))?;
        flush_if_large(&store, &mut encoded, 4096)?;
    }
    flush_if_large(&store, &mut encoded, 0)?;
    Ok(memory.assigned)
}

/// Run `bench load --data dir` (this very binary) and read its report.
pub(super) fn run_child(dir: &Path, scan_only: bool) -> Result<LoadReport, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut child = std::process::Command::new(&exe);
    child.arg(LOAD_COMMAND).arg("--data").arg(dir);
    if scan_only {
        child.arg("--scan-only");
    }
    let output = child
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !output.status.success() {
        return Err(format!(
            "`{} {LOAD_COMMAND}` failed ({}): {}",
            exe.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "`{LOAD_COMMAND}` printed no report ({e}): {}",
            String::from_utf8_lossy(&output.stdout).trim()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tledger\nVmPeak:\t  900 kB\nVmHWM:\t  123456 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(123_456));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(100));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        assert_eq!(parse_status_kib("VmHWM: lots kB\n", "VmHWM"), None);
    }
}
