//! Billing: per type and calendar month (in the tenant's billing time zone), the peak number of
//! licence units that existed at any instant, when and by which event it was first reached, the
//! peak assigned count and the units at month end; and the invoice priced from it.
//!
//! A fold over one tenant's envelopes in log order. Units are owned (not terminated) licences,
//! times `months / 3` for `call_recording` (0 under free 14-day retention). The level carried
//! into a month counts from its first instant, so a licence that existed for one second of a
//! month counts in that month's peak.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use events::{Envelope, Event, EventHash, Retention, TypeCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The type whose units scale with recording retention.
pub const CALL_RECORDING: &str = "call_recording";

pub use events::time::Month;

/// The figures of one type in one month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeMonth {
    pub peak_units: u64,
    pub peak_at: DateTime<Utc>,
    /// Global sequence of the event that first raised the month to its peak.
    pub peak_seq: u64,
    /// Who sent that event.
    pub peak_actor: String,
    pub peak_assigned: u64,
    pub units_at_end: u64,
    /// The level at the month's end, carried into months without events of their own.
    pub carried: Carried,
}

/// The event and assigned count behind the units at a month's end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    pub seq: u64,
    pub actor: String,
    pub assigned: u64,
}

/// The last event a month's figures include.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Through {
    pub seq: u64,
    pub hash: EventHash,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Level {
    owned: u64,
    assigned: u64,
    /// The event that brought the units to their current level.
    seq: u64,
    actor: String,
}

impl Level {
    fn carried(&self) -> Carried {
        Carried {
            seq: self.seq,
            actor: self.actor.clone(),
            assigned: self.assigned,
        }
    }
}

/// A metered service's terms from an instant on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTerms {
    pub recorded_at: DateTime<Utc>,
    pub unit: String,
    pub base_allowance: u64,
    pub monthly_cap: Option<u64>,
}

impl ServiceTerms {
    /// The most units a month may count; `None` without a cap.
    pub fn monthly_maximum(&self) -> Option<u64> {
        self.monthly_cap
            .map(|cap| cap.saturating_add(self.base_allowance))
    }
}

/// One metered service's consumption in one month (the month each record occurred in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceMonthBill {
    /// Units counted.
    pub used: u64,
    pub records: u64,
    /// The global sequence of the event whose record reached the month's cap, and its id.
    pub cap_reached_seq: Option<u64>,
    pub cap_reached_record: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PriceEntry {
    recorded_at: DateTime<Utc>,
    effective_from: DateTime<Utc>,
    unit_price_minor: i64,
}

/// The billing fold of one tenant.
/// Serialisable for start-up snapshots, which hold it beside the state it was folded with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Billing {
    pub timezone: Tz,
    pub currency: String,
    retention: Retention,
    levels: BTreeMap<TypeCode, Level>,
    months: BTreeMap<Month, BTreeMap<TypeCode, TypeMonth>>,
    /// The last event of each month that has events.
    through: BTreeMap<Month, Through>,
    prices: BTreeMap<TypeCode, Vec<PriceEntry>>,
    /// The month of the last event, with its start and end instants.
    current: Option<(Month, DateTime<Utc>, DateTime<Utc>)>,
    /// Metered services' terms as they changed.
    #[serde(default)]
    services: BTreeMap<TypeCode, Vec<ServiceTerms>>,
    /// Metered consumption per month of occurrence and service.
    #[serde(default)]
    metered: BTreeMap<Month, BTreeMap<TypeCode, ServiceMonthBill>>,
}

impl Default for Billing {
    fn default() -> Self {
        Billing {
            timezone: Tz::UTC,
            currency: "EUR".into(),
            retention: Retention::default(),
            levels: BTreeMap::new(),
            months: BTreeMap::new(),
            through: BTreeMap::new(),
            prices: BTreeMap::new(),
            current: None,
            services: BTreeMap::new(),
            metered: BTreeMap::new(),
        }
    }
}

impl Billing {
    fn multiplier(&self, license_type: &TypeCode) -> u64 {
        if license_type.as_str() == CALL_RECORDING {
            self.retention.units_per_license()
        } else {
            1
        }
    }

    fn units(&self, license_type: &TypeCode, level: &Level) -> u64 {
        level.owned * self.multiplier(license_type)
    }

    /// Fold one envelope of this tenant (in log order) with its stored hash.
    pub fn apply(&mut self, envelope: &Envelope, hash: EventHash) {
        if let Event::TenantCreated {
            billing_timezone,
            currency,
            ..
        } = &envelope.event
        {
            self.timezone = billing_timezone.parse().unwrap_or(Tz::UTC);
            self.currency = currency.clone();
        }
        let month = match self.current {
            Some((month, start, end)) if (start..end).contains(&envelope.recorded_at) => month,
            _ => {
                let month = Month::of(envelope.recorded_at, self.timezone);
                if self.current.map(|(m, _, _)| m) != Some(month) {
                    self.open_month(month);
                }
                month
            }
        };
        let at = envelope.recorded_at;
        let seq = envelope.seq;
        let actor = &envelope.actor;
        match &envelope.event {
            Event::LicensesProvisioned { license_type, ids } => {
                self.shift(month, at, license_type, ids.len() as i64, 0, seq, actor);
            }
            Event::LicenseTerminated { license_type, .. } => {
                self.shift(month, at, license_type, -1, 0, seq, actor);
            }
            Event::LicenseAssigned { license_type, .. } => {
                self.shift(month, at, license_type, 0, 1, seq, actor);
            }
            Event::LicenseUnassigned { license_type, .. } => {
                self.shift(month, at, license_type, 0, -1, seq, actor);
            }
            Event::AddonAttached { addon_type, .. } => {
                self.shift(month, at, addon_type, 0, 1, seq, actor);
            }
            Event::AddonDetached { addon_type, .. } => {
                self.shift(month, at, addon_type, 0, -1, seq, actor);
            }
            Event::RetentionSet { retention } => {
                self.retention = *retention;
                let recording = TypeCode::from(CALL_RECORDING);
                self.shift(month, at, &recording, 0, 0, seq, actor);
            }
            Event::PriceSet {
                license_type,
                unit_price_minor,
                effective_from,
                ..
            } => {
                let prices = self.prices.entry(license_type.clone()).or_default();
                prices.push(PriceEntry {
                    recorded_at: envelope.recorded_at,
                    effective_from: *effective_from,
                    unit_price_minor: *unit_price_minor,
                });
            }
            Event::ServiceDefined { service } => {
                self.services
                    .entry(service.code.clone())
                    .or_default()
                    .push(ServiceTerms {
                        recorded_at: at,
                        unit: service.unit.clone(),
                        base_allowance: service.base_allowance,
                        monthly_cap: service.monthly_cap,
                    });
            }
            Event::UsageRecorded { records } => {
                for record in records {
                    let occurred = Month::of(record.occurred_at, self.timezone);
                    let maximum = self
                        .services
                        .get(&record.service)
                        .and_then(|terms| terms.last())
                        .and_then(ServiceTerms::monthly_maximum);
                    let figures = self
                        .metered
                        .entry(occurred)
                        .or_default()
                        .entry(record.service.clone())
                        .or_default();
                    figures.used = figures.used.saturating_add(record.counted);
                    figures.records += 1;
                    let reached = record.outcome == events::metering::RecordOutcome::Capped
                        || maximum.is_some_and(|m| record.counted > 0 && figures.used >= m);
                    if reached && figures.cap_reached_seq.is_none() {
                        figures.cap_reached_seq = Some(seq);
                        figures.cap_reached_record = Some(record.id.clone());
                    }
                    // A late record changes an earlier month: its figures now include this
                    // event.
                    if occurred != month {
                        self.through.insert(occurred, Through { seq, hash });
                    }
                }
            }
            _ => {}
        }
        match self.through.get_mut(&month) {
            Some(through) => *through = Through { seq, hash },
            None => {
                self.through.insert(month, Through { seq, hash });
            }
        }
    }

    /// Start a month: every type's carried level counts from the month's first instant.
    fn open_month(&mut self, month: Month) {
        let start = month.start(self.timezone);
        let figures: BTreeMap<TypeCode, TypeMonth> = self
            .levels
            .iter()
            .map(|(t, level)| {
                let units = self.units(t, level);
                let figures = TypeMonth {
                    peak_units: units,
                    peak_at: start,
                    peak_seq: level.seq,
                    peak_actor: level.actor.clone(),
                    peak_assigned: level.assigned,
                    units_at_end: units,
                    carried: level.carried(),
                };
                (t.clone(), figures)
            })
            .collect();
        self.months.insert(month, figures);
        self.current = Some((month, start, month.end(self.timezone)));
    }

    /// Move one type's level and record its effect on the month's figures.
    #[allow(clippy::too_many_arguments)]
    fn shift(
        &mut self,
        month: Month,
        at: DateTime<Utc>,
        license_type: &TypeCode,
        owned: i64,
        assigned: i64,
        seq: u64,
        actor: &str,
    ) {
        let multiplier = self.multiplier(license_type);
        // One search of each map for the usual case, a type already there.
        let level = match self.levels.get_mut(license_type) {
            Some(level) => level,
            None => self.levels.entry(license_type.clone()).or_insert(Level {
                owned: 0,
                assigned: 0,
                seq,
                actor: actor.to_string(),
            }),
        };
        level.owned = level.owned.saturating_add_signed(owned);
        level.assigned = level.assigned.saturating_add_signed(assigned);
        if (owned != 0 || license_type.as_str() == CALL_RECORDING) && level.seq != seq {
            level.seq = seq;
            level.actor = actor.to_string();
        }
        let units = level.owned * multiplier;
        let figures = self.months.entry(month).or_default();
        let entry = match figures.get_mut(license_type) {
            Some(entry) => entry,
            None => figures
                .entry(license_type.clone())
                .or_insert_with(|| TypeMonth {
                    peak_units: 0,
                    peak_at: at,
                    peak_seq: level.seq,
                    peak_actor: level.actor.clone(),
                    peak_assigned: 0,
                    units_at_end: 0,
                    carried: Carried::default(),
                }),
        };
        if units > entry.peak_units {
            entry.peak_units = units;
            entry.peak_at = at;
            entry.peak_seq = level.seq;
            entry.peak_actor.clone_from(&level.actor);
        }
        entry.peak_assigned = entry.peak_assigned.max(level.assigned);
        entry.units_at_end = units;
        if entry.carried.seq != level.seq || entry.carried.actor.is_empty() {
            entry.carried = level.carried();
        } else {
            entry.carried.assigned = level.assigned;
        }
    }

    /// The figures of `month`: from its own events, or carried unchanged from the last month
    /// before it that had any. Empty before the tenant's first event.
    pub fn month(&self, month: Month) -> BTreeMap<TypeCode, TypeMonth> {
        if let Some(figures) = self.months.get(&month) {
            return figures.clone();
        }
        let Some((_, earlier)) = self.months.range(..month).next_back() else {
            return BTreeMap::new();
        };
        let start = month.start(self.timezone);
        earlier
            .iter()
            .map(|(t, f)| {
                let figures = TypeMonth {
                    peak_units: f.units_at_end,
                    peak_at: start,
                    peak_seq: f.carried.seq,
                    peak_actor: f.carried.actor.clone(),
                    peak_assigned: f.carried.assigned,
                    units_at_end: f.units_at_end,
                    carried: f.carried.clone(),
                };
                (t.clone(), figures)
            })
            .collect()
    }

    /// The last event included in `month`'s figures: the month's last event, or the last one
    /// before it.
    pub fn through(&self, month: Month) -> Option<Through> {
        self.through.range(..=month).next_back().map(|(_, t)| *t)
    }

    /// Metered consumption in `month` (the month each record occurred in), per service.
    pub fn metered(&self, month: Month) -> BTreeMap<TypeCode, ServiceMonthBill> {
        self.metered.get(&month).cloned().unwrap_or_default()
    }

    /// A service's terms in force at `at` (the last set before it), else its first terms.
    pub fn service_terms_at(&self, service: &TypeCode, at: DateTime<Utc>) -> Option<&ServiceTerms> {
        let terms = self.services.get(service)?;
        terms
            .iter()
            .rev()
            .find(|t| t.recorded_at < at)
            .or_else(|| terms.first())
    }

    /// The unit price of `license_type` in force at `at`, as known from events recorded before
    /// `at`.
    pub fn price_at(&self, license_type: &TypeCode, at: DateTime<Utc>) -> Option<i64> {
        self.prices
            .get(license_type)?
            .iter()
            .filter(|p| p.recorded_at < at && p.effective_from < at)
            .max_by_key(|p| (p.effective_from, p.recorded_at))
            .map(|p| p.unit_price_minor)
    }
}

/// One invoice line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvoiceLine {
    #[serde(rename = "type")]
    pub license_type: TypeCode,
    pub peak_units: u64,
    /// `null` when no price was in force at month end.
    pub unit_price_minor: Option<i64>,
    pub amount_minor: i64,
}

/// One metered line: the units counted over the month's base allowance × the service's price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MeteredLine {
    pub service: TypeCode,
    pub unit: String,
    pub used: u64,
    pub base_allowance: u64,
    /// `used` less the base allowance (0 when under it).
    pub billable_units: u64,
    /// `null` when no price was in force at month end.
    pub unit_price_minor: Option<i64>,
    pub amount_minor: i64,
}

/// The invoice of one month; its `digest` binds it to the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Invoice {
    pub month: String,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    /// Metered services with consumption in the month; left out when there are none, so an
    /// invoice without them keeps the bytes it always had.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metered: Vec<MeteredLine>,
    pub total_minor: i64,
    pub through_seq: u64,
    /// blake3 over the canonical invoice bytes (without the digest) and the hash of the last
    /// event included.
    pub digest: String,
}

/// The invoice for `month`: peak units × the price in force at month end, per type with units.
pub fn invoice(billing: &Billing, month: Month) -> Invoice {
    let end = month.end(billing.timezone);
    let lines: Vec<InvoiceLine> = billing
        .month(month)
        .into_iter()
        .filter(|(_, f)| f.peak_units > 0)
        .map(|(t, f)| {
            let price = billing.price_at(&t, end);
            let amount = price.map_or(0, |p| p.saturating_mul(f.peak_units as i64));
            InvoiceLine {
                license_type: t,
                peak_units: f.peak_units,
                unit_price_minor: price,
                amount_minor: amount,
            }
        })
        .collect();
    let metered: Vec<MeteredLine> = billing
        .metered(month)
        .into_iter()
        .filter(|(_, f)| f.used > 0)
        .map(|(service, f)| {
            let terms = billing.service_terms_at(&service, end);
            let base_allowance = terms.map_or(0, |t| t.base_allowance);
            let billable_units = f.used.saturating_sub(base_allowance);
            let price = billing.price_at(&service, end);
            let amount = price.map_or(0, |p| {
                p.saturating_mul(i64::try_from(billable_units).unwrap_or(i64::MAX))
            });
            MeteredLine {
                unit: terms.map_or_else(|| "unit".into(), |t| t.unit.clone()),
                service,
                used: f.used,
                base_allowance,
                billable_units,
                unit_price_minor: price,
                amount_minor: amount,
            }
        })
        .collect();
    let total_minor = lines
        .iter()
        .map(|l| l.amount_minor)
        .chain(metered.iter().map(|m| m.amount_minor))
        .fold(0i64, |sum, amount| sum.saturating_add(amount));
    let through = billing.through(month);
    let mut invoice = Invoice {
        month: month.to_string(),
        currency: billing.currency.clone(),
        lines,
        metered,
        total_minor,
        through_seq: through.map_or(0, |t| t.seq),
        digest: String::new(),
    };
    let canonical = serde_json::to_vec(&invoice).expect("an invoice always serialises");
    let mut hasher = blake3::Hasher::new();
    hasher.update(&canonical);
    hasher.update(&through.map_or([0; 32], |t| t.hash.0));
    invoice.digest = hasher.finalize().to_hex().to_string();
    invoice
}

/// The exact bytes of an invoice on the wire; HTTP and `ledger replay` both print these.
pub fn invoice_bytes(invoice: &Invoice) -> Vec<u8> {
    serde_json::to_vec(invoice).expect("an invoice always serialises")
}
