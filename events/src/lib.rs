//! The licensing domain: ids, events and their versioned encoding, commands, the catalogue,
//! `decide` and `evolve`.
//!
//! **Invariant:** this crate does no I/O and never reads the clock: time arrives inside the
//! command's [`Context`].

pub mod catalogue;
pub mod command;
pub mod decide;
pub mod event;
pub mod ids;
pub mod index;
pub mod metering;
pub mod notification;
pub mod rejection;
pub mod state;
pub mod time;

pub use catalogue::{Catalogue, Feature, Features, Kind, LicenseType};
pub use command::{Command, Context, ImportRow, NewUser};
pub use decide::{decide, decide_as};
pub use event::{
    Envelope, Event, EventHash, Reminder, ReminderFrequency, Restriction, Retention, Role,
    UserRestriction,
};
pub use ids::{CartId, CommandId, GroupId, KeyId, LicenseId, TenantId, TypeCode, UserId};
pub use index::{IdMap, ShardKey};
pub use notification::NotificationTemplate;
pub use rejection::{Rejection, RejectionClass, RowError, Rule, Violation};
pub use state::{evolve, License, LicenseStatus, Tenant, Unblock};
