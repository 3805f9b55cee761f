//! Instants in events: RFC 3339 text in human-readable formats (JSON), integer microseconds
//! since the Unix epoch in binary ones (bincode), so stored events stay small and exact.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

/// Truncate an instant to whole microseconds, the precision the log stores.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    from_micros(at.timestamp_micros()).unwrap_or(at)
}

fn from_micros(micros: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_micros(micros).single()
}

/// Serde adapter for `DateTime<Utc>`.
pub mod instant {
    use super::*;

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        } else {
            s.serialize_i64(at.timestamp_micros())
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            DateTime::parse_from_rfc3339(&text)
                .map(|at| at.with_timezone(&Utc))
                .map_err(D::Error::custom)
        } else {
            let micros = i64::deserialize(d)?;
            from_micros(micros).ok_or_else(|| D::Error::custom("instant out of range"))
        }
    }
}

/// Serde adapter for `Option<DateTime<Utc>>`.
pub mod optional_instant {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_some(&Wrapper(*at)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<Wrapper>::deserialize(d)?.map(|w| w.0))
    }

    struct Wrapper(DateTime<Utc>);

    impl serde::Serialize for Wrapper {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            instant::serialize(&self.0, s)
        }
    }

    impl<'de> Deserialize<'de> for Wrapper {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            instant::deserialize(d).map(Wrapper)
        }
    }
}

/// A calendar month, `YYYY-MM`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// Parse `YYYY-MM`.
    pub fn parse(text: &str) -> Option<Month> {
        let (year, month) = text.split_once('-')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        let month: u32 = month.parse().ok()?;
        NaiveDate::from_ymd_opt(year, month, 1)?;
        Some(Month { year, month })
    }

    /// The month containing `at` in `tz`.
    pub fn of(at: DateTime<Utc>, tz: Tz) -> Month {
        let local = at.with_timezone(&tz);
        Month {
            year: local.year(),
            month: local.month(),
        }
    }

    /// The next month.
    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The month before.
    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The first instant of the month in `tz`, as UTC.
    pub fn start(self, tz: Tz) -> DateTime<Utc> {
        let midnight = NaiveDate::from_ymd_opt(self.year, self.month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("a parsed month has a first day");
        match tz.from_local_datetime(&midnight).earliest() {
            Some(local) => local.with_timezone(&Utc),
            // Midnight skipped by a DST jump: the month starts at the first instant after it.
            None => tz
                .from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                .earliest()
                .map_or_else(
                    || Utc.from_utc_datetime(&midnight),
                    |l| l.with_timezone(&Utc),
                ),
        }
    }

    /// The first instant of the next month: the end (exclusive) of this one.
    pub fn end(self, tz: Tz) -> DateTime<Utc> {
        self.next().start(tz)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The time zone a tenant bills in; UTC for a name the zone table does not know (a tenant is
/// created only with a known one).
pub fn billing_zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}
