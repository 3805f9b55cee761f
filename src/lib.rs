//! The `ledger` binary's library: the store, the ledger service, HTTP and the CLI.

pub mod allocator;
pub mod cli;
pub mod http;
pub mod idempotency;
pub mod ledger;
pub mod metrics;
pub mod reminders;
pub mod store;
