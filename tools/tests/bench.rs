//! The bench binary (`cargo run -p tools --bin bench`) with `--only memory` on a small
//! tenant: the memory row is in the table, with a peak RSS measured by the child process that
//! is plausible beside its references (the empty store, the scan that folds nothing). Not
//! timed: the figures are only checked to be there and sane.

use std::process::Command;

/// The first number after `label` in `text`, such as 42 in `peak RSS 42 MiB`.
fn number_after(text: &str, label: &str) -> Option<f64> {
    let rest = &text[text.find(label)? + label.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn memory_row_reports_the_peak_rss_of_a_full_replay_beside_an_empty_store() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("BENCH.md");
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--only", "memory"])
        .args(["--memory-users", "300", "--memory-licences", "3000"])
        .arg("--out")
        .arg(&out)
        .arg("--scratch")
        .arg(dir.path().join("scratch"))
        .output()
        .expect("run the bench binary");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = std::fs::read_to_string(&out).expect("the table");
    // The table names the command that reproduces it, not the path of the binary that ran.
    assert!(
        table.contains("Command: `cargo run --release -p tools --bin bench -- --only memory "),
        "{table}"
    );
    let row = table
        .lines()
        .find(|line| line.starts_with("| projection memory, 300 users, 3000 licences"))
        .unwrap_or_else(|| panic!("no memory row in:\n{table}"));
    assert_eq!(
        table.lines().filter(|l| l.starts_with("| ")).count(),
        2,
        "{table}"
    );
    if !cfg!(target_os = "linux") {
        assert!(row.contains("skipped"), "{row}");
        return;
    }
    assert!(row.contains("300 users, 3000 licences of which"), "{row}");
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let peak = number_after(cells[2], "peak RSS").expect("a peak RSS figure");
    let empty = number_after(cells[3], "empty store:").expect("the empty store's figure");
    let scanned = number_after(cells[3], "folding nothing:").expect("the scan's figure");
    let share = number_after(cells[4], "").expect("a share of the target");
    // Rounded to whole MiB, and a process's RSS wobbles a little from run to run.
    assert!(empty >= 1.0 && empty <= peak + 1.0, "{row}");
    assert!(scanned >= 1.0 && scanned <= peak + 1.0, "{row}");
    assert!(peak < 1024.0, "{row}");
    assert!(share > 0.0 && share < 1.0, "{row}");
}
