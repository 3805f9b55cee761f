//! Instants in events: RFC 3339 text in human-readable formats (JSON), integer microseconds
//! since the Unix epoch in binary ones (bincode), so stored events stay small and exact.

use chrono::{DateTime, TimeZone, Utc};
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
