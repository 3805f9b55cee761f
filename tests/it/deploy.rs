//! The deployment files (`deploy/ledger.service`, `Containerfile`) start the ledger with
//! flags it knows, on a data directory the service may write, reachable where they say: a
//! renamed flag or a path outside the unit's writable paths would only show on a user's machine.

use clap::Parser;
use ledger::cli::{Cli, CliCommand, ServeArgs};
use std::path::Path;

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `serve` arguments a command line means to the ledger's own parser.
fn serve_args(command_line: &[String]) -> ServeArgs {
    let cli = Cli::try_parse_from(command_line)
        .unwrap_or_else(|e| panic!("the ledger refuses {command_line:?}: {e}"));
    match cli.command {
        CliCommand::Serve(args) => args,
        other => panic!("{command_line:?} is not `serve`: {other:?}"),
    }
}

/// The values of `key=` in the unit file, in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .collect()
}

#[test]
fn the_systemd_unit_serves_from_its_state_directory_with_flags_the_ledger_knows() {
    let unit = read("deploy/ledger.service");
    let exec = unit_values(&unit, "ExecStart");
    assert_eq!(exec.len(), 1, "one ExecStart: {exec:?}");
    let command_line: Vec<String> = exec[0].split_whitespace().map(String::from).collect();
    assert!(
        command_line[0].ends_with("/ledger"),
        "ExecStart runs the ledger: {command_line:?}"
    );
    let args = serve_args(&command_line);
    // ProtectSystem=strict leaves only ReadWritePaths (and the StateDirectory under
    // /var/lib) writable: the store must be inside them.
    assert_eq!(unit_values(&unit, "ProtectSystem"), ["strict"]);
    let writable = unit_values(&unit, "ReadWritePaths");
    let state: Vec<String> = unit_values(&unit, "StateDirectory")
        .iter()
        .map(|d| format!("/var/lib/{d}"))
        .collect();
    assert!(
        writable
            .iter()
            .copied()
            .chain(state.iter().map(String::as_str))
            .any(|dir| args.data.starts_with(dir)),
        "the store {} is outside the unit's writable paths {writable:?} {state:?}",
        args.data.display()
    );
    assert_eq!(unit_values(&unit, "KillSignal"), ["SIGTERM"]);
    let timeout: Vec<u64> = unit_values(&unit, "TimeoutStopSec")
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect();
    assert!(
        timeout.first().is_some_and(|t| *t >= 30),
        "stopping leaves time for the snapshot: {timeout:?}"
    );
    assert!(
        !unit_values(&unit, "EnvironmentFile").is_empty(),
        "the root token comes from an environment file, not the command line"
    );
}

#[test]
fn the_container_serves_on_its_exposed_port_from_its_volume_with_flags_the_ledger_knows() {
    let file = read("Containerfile");
    let instruction = |name: &str| -> Vec<String> {
        file.lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .map(|rest| rest.trim().to_string())
            .collect()
    };
    let json_array = |name: &str| -> Vec<String> {
        let found = instruction(name);
        assert_eq!(found.len(), 1, "one {name}: {found:?}");
        serde_json::from_str(&found[0])
            .unwrap_or_else(|e| panic!("{name} is not a JSON array ({e}): {}", found[0]))
    };
    let mut command_line = json_array("ENTRYPOINT");
    command_line.extend(json_array("CMD"));
    let args = serve_args(&command_line);
    assert!(
        instruction("COPY")
            .iter()
            .any(|copy| copy.starts_with("--from=build") && copy.ends_with(&command_line[0])),
        "the image holds the binary its entry point runs, {}",
        command_line[0]
    );
    assert_eq!(instruction("VOLUME"), [args.data.display().to_string()]);
    assert_eq!(instruction("EXPOSE"), [args.listen.port().to_string()]);
    assert!(
        args.listen.ip().is_unspecified(),
        "a container must listen on every interface to be reached through its port, not on {}",
        args.listen
    );
    assert_eq!(instruction("STOPSIGNAL"), ["SIGTERM"]);
    assert!(
        instruction("USER").first().is_some_and(|u| u != "root"),
        "the ledger does not run as root"
    );
}

/// `THP_enabled` of a process's `/proc/PID/status`: whether the kernel may back its memory
/// with transparent huge pages.
fn huge_pages_enabled(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read the server's status: {e}"));
    match status
        .lines()
        .find_map(|line| line.strip_prefix("THP_enabled:"))
        .map(str::trim)
    {
        Some("0") => false,
        Some("1") => true,
        other => panic!("no THP_enabled in the server's status: {other:?}"),
    }
}

#[test]
fn the_server_runs_on_small_pages_unless_ledger_huge_pages_says_otherwise() {
    let binary = Path::new(env!("CARGO_BIN_EXE_ledger"));
    let data = tempfile::tempdir().expect("temp dir");
    let mut command = std::process::Command::new(binary);
    command.env_remove(ledger::allocator::HUGE_PAGES_VAR);
    let server = tools::crash::Server::start_command(command, &data.path().join("small"))
        .unwrap_or_else(|e| panic!("the server did not start: {e}"));
    assert!(!huge_pages_enabled(server.pid()));
    drop(server);
    let mut command = std::process::Command::new(binary);
    command.env(ledger::allocator::HUGE_PAGES_VAR, "1");
    let server = tools::crash::Server::start_command(command, &data.path().join("huge"))
        .unwrap_or_else(|e| panic!("the server did not start: {e}"));
    assert!(
        huge_pages_enabled(server.pid()),
        "LEDGER_HUGE_PAGES=1 keeps them"
    );
}
