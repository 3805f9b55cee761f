//! The bench (`cargo run --release -p tools --bin bench`): each figure measured beside its
//! reference in the same run, printed as one table and written to BENCH.md with the command
//! that produced it.
//!
//! [`common`] holds what the scenarios share (the arguments, a row, the actor, the large
//! tenant, churn steps, flushing a built log). The scenario modules (`append`, `log`,
//! `queries`, `import`, `http`, `memory`, `usage`, `console`) import it, and only `log` and
//! `console` another one (`queries`, with the ledger it started; `memory`, whose large tenant
//! the console's pages are timed on); none imports this module, which runs them: no circle.

mod append;
mod common;
mod console;
mod http;
mod import;
mod log;
pub mod memory;
mod queries;
mod usage;

pub use common::{BenchArgs, Scenario};

use chrono::Utc;
use common::Row;
use std::path::PathBuf;

/// How BENCH.md names the command that wrote it.
pub const COMMAND: &str = "cargo run --release -p tools --bin bench --";

/// Run every scenario and write the table.
pub fn run(args: BenchArgs, command_line: &str) -> Result<(), String> {
    let scratch_holder;
    let scratch = match &args.scratch {
        Some(dir) => dir.clone(),
        None => {
            scratch_holder = tempfile_dir()?;
            scratch_holder.clone()
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    if args.runs(Scenario::Append) {
        eprintln!("append: {} writers for {} s …", args.writers, args.seconds);
        rows.extend(runtime.block_on(append::append_scenario(&scratch.join("append"), &args))?);
    }
    if args.runs(Scenario::Log) {
        eprintln!("building a log of {} events …", args.events);
        rows.extend(log::log_scenarios(&scratch.join("log"), args.events)?);
    }
    if args.runs(Scenario::Import) {
        eprintln!("importing {} rows …", args.import_rows);
        rows.push(import::import_scenario(
            &scratch.join("import"),
            args.import_rows,
        )?);
    }
    if args.runs(Scenario::Http) && args.http_seconds > 0 {
        rows.extend(http::http_rows(&runtime, &scratch.join("http"), &args));
    }
    if args.runs(Scenario::Usage) {
        rows.extend(usage::usage_rows(&runtime, &scratch.join("usage"), &args));
    }
    if args.runs(Scenario::Console) && args.memory_users > 0 {
        eprintln!(
            "console pages: {} users, {} licences …",
            args.memory_users, args.memory_licences
        );
        rows.extend(console::console_rows(
            &runtime,
            &scratch.join("console"),
            args.memory_users,
            args.memory_licences,
        )?);
    }
    if args.runs(Scenario::Memory) && args.memory_users > 0 {
        eprintln!(
            "memory: {} users, {} licences …",
            args.memory_users, args.memory_licences
        );
        rows.push(memory::memory_row(
            &scratch.join("memory"),
            args.memory_users,
            args.memory_licences,
        )?);
    }
    let table = render(&rows, command_line);
    println!("{table}");
    std::fs::write(&args.out, &table)
        .map_err(|e| format!("cannot write {}: {e}", args.out.display()))?;
    if args.scratch.is_none() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("ledger-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn render(rows: &[Row], command_line: &str) -> String {
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(&format!(
        "Command: `{command_line}`  \nMachine: {}  \nDate: {}\n\n",
        machine(),
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    ));
    out.push_str("| scenario | figure | reference in the same run | ratio |\n|---|---|---|---|\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.scenario, row.figure, row.reference, row.ratio
        ));
    }
    out
}
