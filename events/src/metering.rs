//! Metered services (Power Pack services, Speech-to-Text): consumption reported as usage
//! records, counted per calendar month in the tenant's billing time zone against a base
//! allowance and an optional cap on what goes over it. Once a month's cap is reached the
//! service stops until the month ends.

use crate::ids::{TypeCode, UserId};
use crate::time::{instant, Month};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A metered service of a tenant, as last set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub code: TypeCode,
    pub name: String,
    /// What one unit is, for people: `power_pack`, `minute`, …
    pub unit: String,
    /// Switched on: records count; switched off, they are kept but count nothing.
    pub enabled: bool,
    /// Units included every month.
    pub base_allowance: u64,
    /// The most units a month may use over the base allowance; `None`: no cap.
    pub monthly_cap: Option<u64>,
    /// Services that must be switched on for this one to work (AI topics on calls needs
    /// Speech-to-Text).
    pub requires: Vec<TypeCode>,
}

impl Service {
    /// The most units a month may count: the base allowance and the cap over it; `None`
    /// without a cap.
    pub fn monthly_maximum(&self) -> Option<u64> {
        self.monthly_cap
            .map(|cap| cap.saturating_add(self.base_allowance))
    }
}

/// What became of one usage record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordOutcome {
    /// Counted in full.
    Counted,
    /// Counted up to the month's cap (possibly nothing): the service is stopped for the
    /// rest of the month.
    Capped,
    /// The service was switched off: nothing counted.
    Disabled,
    /// A service it requires was switched off: nothing counted.
    RequiresMissing,
}

impl RecordOutcome {
    /// The wire name.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordOutcome::Counted => "counted",
            RecordOutcome::Capped => "capped",
            RecordOutcome::Disabled => "service_disabled",
            RecordOutcome::RequiresMissing => "requires_missing",
        }
    }
}

/// One stored usage record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The client's idempotency id: a second record with the same id in the same month is
    /// ignored.
    pub id: String,
    pub service: TypeCode,
    /// What the client reported.
    pub quantity: u64,
    /// What counted (at most `quantity`; less when the cap was reached).
    pub counted: u64,
    pub user: Option<UserId>,
    pub queue: Option<String>,
    #[serde(with = "instant")]
    pub occurred_at: DateTime<Utc>,
    pub outcome: RecordOutcome,
}

/// A record as a client sends it, before it is judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUsageRecord {
    pub id: String,
    pub service: TypeCode,
    pub quantity: u64,
    pub user: Option<UserId>,
    pub queue: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// Where a service's cap was reached in a month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapReached {
    /// The tenant version of the `usage_recorded` event holding the record.
    pub version: u64,
    pub record: String,
    #[serde(with = "instant")]
    pub occurred_at: DateTime<Utc>,
}

/// One service's consumption in one month.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeteredMonth {
    /// Units counted.
    pub used: u64,
    /// Units reported, counted or not.
    pub reported: u64,
    pub records: u64,
    pub cap_reached: Option<CapReached>,
}

/// The key of a service's month.
pub type ServiceMonth = (TypeCode, Month);
