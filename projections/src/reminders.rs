//! Expiry reminders (SPEC "Expiry reminders"): a group asks to be reminded `days_before` its
//! `valid_until`, once, daily, weekly or every 30 days until the window ends. The window that
//! counts is the group's effective one, inherited along its path: when an ancestor's window
//! ends first (or the group has no end of its own), the group's users are blocked then, so the
//! reminder counts back from then.

use chrono::{DateTime, Duration, Utc};
use events::{GroupId, Reminder, ReminderFrequency, Restriction, Tenant};

/// A group's reminder occurrence that is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueReminder {
    pub group: GroupId,
    pub group_name: String,
    pub valid_until: DateTime<Utc>,
    pub reminder: Reminder,
    /// When this occurrence fell due.
    pub due_at: DateTime<Utc>,
    /// Already delivered to the webhook.
    pub delivered: bool,
}

fn period(frequency: ReminderFrequency) -> Option<Duration> {
    match frequency {
        ReminderFrequency::Once => None,
        ReminderFrequency::Daily => Some(Duration::days(1)),
        ReminderFrequency::Weekly => Some(Duration::days(7)),
        ReminderFrequency::Every30Days => Some(Duration::days(30)),
    }
}

/// The latest occurrence of a restriction's reminder at or before `at`, counted back from its
/// own `valid_until`, if one has fallen due.
pub fn latest_occurrence(restriction: &Restriction, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    occurrence_before(restriction, restriction.valid_until?, at)
}

/// The latest occurrence of a restriction's reminder at or before `at` for a window that ends
/// at `until`, if one has fallen due.
fn occurrence_before(
    restriction: &Restriction,
    until: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !restriction.enabled {
        return None;
    }
    let reminder = restriction.reminder?;
    let first = until - Duration::days(i64::from(reminder.days_before));
    if at < first {
        return None;
    }
    match period(reminder.frequency) {
        None => Some(first),
        Some(step) => {
            let last_before_end = until - Duration::microseconds(1);
            let upto = at.min(last_before_end);
            if upto < first {
                return Some(first);
            }
            let steps = (upto - first).num_microseconds()? / step.num_microseconds()?;
            Some(first + step * i32::try_from(steps).ok()?)
        }
    }
}

/// Every group's latest reminder occurrence due at or before `due_before`, by group id;
/// `valid_until` is the end of the group's effective (inherited) window.
pub fn due_reminders(tenant: &Tenant, due_before: DateTime<Utc>) -> Vec<DueReminder> {
    tenant
        .groups
        .values()
        .filter_map(|g| {
            let restriction = g.restriction.as_ref()?;
            let (_, until) = tenant.effective_window(g.id);
            let until = until?;
            let due_at = occurrence_before(restriction, until, due_before)?;
            Some(DueReminder {
                group: g.id,
                group_name: g.name.clone(),
                valid_until: until,
                reminder: restriction.reminder?,
                due_at,
                delivered: tenant.reminders_delivered.contains(&(g.id, due_at)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    fn restriction(days_before: u32, frequency: ReminderFrequency) -> Restriction {
        Restriction {
            enabled: true,
            limits: BTreeMap::new(),
            valid_from: None,
            valid_until: Some(Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 0).unwrap()),
            reminder: Some(Reminder {
                days_before,
                frequency,
            }),
        }
    }

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_once_reminder_falls_due_days_before_the_window_ends_and_stays_the_same() {
        let r = restriction(10, ReminderFrequency::Once);
        assert_eq!(latest_occurrence(&r, day(20)), None);
        let first = Utc.with_ymd_and_hms(2026, 12, 21, 0, 0, 0).unwrap();
        assert_eq!(latest_occurrence(&r, day(21)), Some(first));
        assert_eq!(latest_occurrence(&r, day(30)), Some(first));
    }

    #[test]
    fn a_daily_reminder_moves_to_each_new_day_until_the_window_ends() {
        let r = restriction(10, ReminderFrequency::Daily);
        let midnight = |d| Utc.with_ymd_and_hms(2026, 12, d, 0, 0, 0).unwrap();
        assert_eq!(latest_occurrence(&r, day(21)), Some(midnight(21)));
        assert_eq!(latest_occurrence(&r, day(25)), Some(midnight(25)));
        let later = Utc.with_ymd_and_hms(2027, 2, 1, 0, 0, 0).unwrap();
        assert_eq!(latest_occurrence(&r, later), Some(midnight(30)));
    }

    #[test]
    fn weekly_and_thirty_day_reminders_step_by_their_period() {
        let weekly = restriction(21, ReminderFrequency::Weekly);
        let start = Utc.with_ymd_and_hms(2026, 12, 10, 0, 0, 0).unwrap();
        assert_eq!(latest_occurrence(&weekly, day(16)), Some(start));
        assert_eq!(
            latest_occurrence(&weekly, day(17)),
            Some(start + Duration::days(7))
        );
        let monthly = restriction(90, ReminderFrequency::Every30Days);
        let first = Utc.with_ymd_and_hms(2026, 10, 2, 0, 0, 0).unwrap();
        assert_eq!(
            latest_occurrence(&monthly, day(1)),
            Some(first + Duration::days(60))
        );
    }

    #[test]
    fn a_disabled_restriction_or_one_without_a_window_never_reminds() {
        let mut r = restriction(10, ReminderFrequency::Daily);
        r.enabled = false;
        assert_eq!(latest_occurrence(&r, day(30)), None);
        r.enabled = true;
        r.valid_until = None;
        assert_eq!(latest_occurrence(&r, day(30)), None);
    }
}
