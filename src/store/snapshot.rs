//! The file a start-up snapshot lives in, beside the log: written to a temporary file, fsynced,
//! then renamed over the old one, so a crash mid-write leaves the previous snapshot whole. What
//! the bytes mean is the ledger's ([`crate::ledger::snapshots`]); the store only keeps them.

use std::io::Write;
use std::path::Path;

/// The snapshot's file name in the data directory.
pub const SNAPSHOT_FILE: &str = "ledger-snapshot";
const SNAPSHOT_TEMPORARY_FILE: &str = "ledger-snapshot.partial";

/// Write snapshot bytes into `dir`, replacing the previous snapshot only once the new one is
/// durable.
pub fn write(dir: &Path, bytes: &[u8]) -> Result<(), String> {
    let partial = dir.join(SNAPSHOT_TEMPORARY_FILE);
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", partial.display());
    let mut file = std::fs::File::create(&partial).map_err(|e| fail("create", e))?;
    file.write_all(bytes).map_err(|e| fail("write", e))?;
    file.sync_all().map_err(|e| fail("sync", e))?;
    drop(file);
    std::fs::rename(&partial, dir.join(SNAPSHOT_FILE)).map_err(|e| fail("rename", e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", dir.display()))
}

/// The snapshot file in `dir`, open for reading: `Ok(None)` when there is none.
pub fn open(dir: &Path) -> Result<Option<std::fs::File>, String> {
    match std::fs::File::open(dir.join(SNAPSHOT_FILE)) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the snapshot: {e}")),
    }
}
