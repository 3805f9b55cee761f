//! Start-up snapshots: the folded state of every tenant written to a file beside the log, so
//! that a restart reads it and folds only the events after it instead of the whole log.
//!
//! A snapshot is a cache, never the source of truth. It names the sequence it was folded
//! through and carries the hash chain's head for every tenant; on start it is used only if its
//! checksum holds, its format is this binary's, and the log's event at that sequence hashes to
//! what the snapshot says. Anything else is logged and the log is replayed from scratch.
//! `ledger verify` checks that the snapshot plus the events after it equals a full replay.
//!
//! File layout: `[magic 8][format u32 LE][head u64 LE][blake3 of body, 32][body]`, the body
//! being bincode of [`World`]. Written to a temporary file, fsynced, then renamed over the old
//! one, so a crash mid-write leaves the previous snapshot whole.

use crate::ledger::World;
use bincode::Options;
use std::io::{Read, Write};
use std::path::Path;

/// The snapshot's file name in the data directory.
pub const SNAPSHOT_FILE: &str = "ledger-snapshot";
const SNAPSHOT_TEMPORARY_FILE: &str = "ledger-snapshot.partial";
const MAGIC: &[u8; 8] = b"LEDGSNAP";
/// The shape of the serialised state. Bump it whenever a type inside [`World`] changes: a
/// snapshot of another format is ignored, and the log replayed.
pub const SNAPSHOT_FORMAT: u32 = 5;
/// Largest snapshot body read; a corrupt file never allocates beyond it.
pub const SNAPSHOT_BYTES_MAX: u64 = 16 << 30;
const HEADER_BYTES: usize = 8 + 4 + 8 + 32;

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_limit(SNAPSHOT_BYTES_MAX)
}

/// The snapshot bytes of `world`.
pub fn encode(world: &World) -> Result<Vec<u8>, String> {
    let body = options()
        .serialize(world)
        .map_err(|e| format!("cannot serialise the state: {e}"))?;
    let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
    bytes.extend_from_slice(&world.head.to_le_bytes());
    bytes.extend_from_slice(blake3::hash(&body).as_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// The state in snapshot bytes, if they are whole and of this binary's format.
pub fn decode(bytes: &[u8]) -> Result<World, String> {
    decode_from(bytes)
}

/// Hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Bytes read from a snapshot at a time: the body streams from the file into the decoder, so a
/// start-up never holds the whole file in memory besides the state it decodes.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// [`decode`] from a reader: the header, then the body decoded as it streams in and hashed on
/// the way; the state is returned only if the body hashes to the header's checksum and nothing
/// follows it.
fn decode_from(reader: impl Read) -> Result<World, String> {
    let mut reader = reader;
    let mut header = [0u8; HEADER_BYTES];
    reader
        .read_exact(&mut header)
        .map_err(|_| "not a snapshot file".to_string())?;
    if &header[..8] != MAGIC {
        return Err("not a snapshot file".into());
    }
    let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if format != SNAPSHOT_FORMAT {
        return Err(format!(
            "snapshot format {format}, this binary writes {SNAPSHOT_FORMAT}"
        ));
    }
    let head = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
    let mut body = std::io::BufReader::with_capacity(
        READ_BUFFER_BYTES,
        Hashing {
            inner: reader,
            hasher: blake3::Hasher::new(),
        },
    );
    let decoded: Result<World, _> = options().deserialize_from(&mut body);
    // Whatever follows the state is hashed too: a longer body fails the checksum below.
    let rest = std::io::copy(&mut body, &mut std::io::sink())
        .map_err(|e| format!("cannot read the snapshot: {e}"))?;
    let hashing = body.into_inner();
    if hashing.hasher.finalize().as_bytes() != &header[20..52] {
        return Err("snapshot checksum mismatch".into());
    }
    let world = decoded.map_err(|e| format!("undecodable snapshot: {e}"))?;
    if rest != 0 {
        return Err(format!("{rest} bytes after the state in the snapshot"));
    }
    if world.head != head {
        return Err(format!(
            "snapshot header says sequence {head}, its state {}",
            world.head
        ));
    }
    Ok(world)
}

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

/// The snapshot in `dir`: `Ok(None)` when there is none, `Err` when it is unusable.
pub fn read(dir: &Path) -> Result<Option<World>, String> {
    match std::fs::File::open(dir.join(SNAPSHOT_FILE)) {
        Ok(file) => decode_from(file).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the snapshot: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_snapshot_is_refused_not_trusted() {
        let world = World {
            head: 7,
            ..World::default()
        };
        let bytes = encode(&world).unwrap();
        assert_eq!(decode(&bytes).unwrap(), world);
        for at in [0, 9, 13, HEADER_BYTES - 1, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(decode(&damaged).is_err(), "byte {at} flipped");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
