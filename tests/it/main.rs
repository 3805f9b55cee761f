//! The one integration binary (like ripgrep's): the real router driven without a socket.

mod support;

mod api;
mod bad_input;
mod carts;
mod catalogue;
mod cli;
mod console;
mod crash;
mod dealers;
mod deploy;
mod faults;
mod features;
mod fuzz_regressions;
mod groups;
mod idempotency;
mod imports;
mod isolation;
mod limits;
mod load;
mod memberships;
mod nodes;
mod notifications;
mod openapi;
mod preview_cost;
mod race;
mod reminders;
mod restart;
mod roles;
mod services;
mod store_conformance;
mod user_settings;
mod users;
mod whatif;
