//! Pure views and folds over ledger state and events: usage, group state. Depends on `events`
//! only; no I/O, no clock (instants arrive as arguments).

pub mod group_state;
pub mod usage;

pub use group_state::{group_state, FeatureState, GroupState, TypeState, WindowBlock};
pub use usage::{usage, TypeUsage, UsageHistory};
pub mod billing;
pub use billing::{invoice, invoice_bytes, Billing, Invoice, Month, TypeMonth};
pub mod explain;
pub use explain::{
    blocked_index, entitlement, feature_entitlement, service_entitlement, Check, Entitlement,
    LimitUse,
};
pub mod audit;
pub use audit::{touches, Touches};
pub mod whatif;
pub use whatif::{
    what_if, what_if_as, BillingDelta, Block, CommandResult, IndexedViolation, WhatIf, WhatIfError,
};
pub mod reminders;
pub use reminders::{due_reminders, DueReminder};
pub mod past;
pub use past::PastIndex;
