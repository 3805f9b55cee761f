//! `--store`: where the log lives, for every command that opens it.

use crate::store::postgres::{Access, PostgresStore};
use crate::store::EventStore;
use std::path::Path;

/// The value of `--store` (or `LEDGER_STORE`): `sled`, the embedded store in `--data`, or a
/// PostgreSQL connection string (`postgres://user@host:port/database`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    Sled,
    Postgres(String),
}

impl std::str::FromStr for StoreSpec {
    type Err = String;

    fn from_str(value: &str) -> Result<StoreSpec, String> {
        if value == "sled" {
            return Ok(StoreSpec::Sled);
        }
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Ok(StoreSpec::Postgres(value.to_string()));
        }
        Err("expected `sled` or a PostgreSQL connection string (postgres://user@host:port/database)".into())
    }
}

impl StoreSpec {
    /// Open the log: sled in `data`, or PostgreSQL for `access` (a writer takes the lease).
    pub fn open(&self, data: &Path, access: Access) -> Result<Box<dyn EventStore>, String> {
        match self {
            StoreSpec::Sled => Ok(Box::new(super::offline::open_store(data)?)),
            StoreSpec::Postgres(url) => PostgresStore::open(url, access)
                .map(|store| Box::new(store) as Box<dyn EventStore>)
                .map_err(|e| format!("cannot open the PostgreSQL store: {e}")),
        }
    }
}
