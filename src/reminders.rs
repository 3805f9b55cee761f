//! Delivery of notifications to each tenant's webhook: a background task that POSTs every
//! due, undelivered expiry reminder (`"kind": "reminder"`) as JSON, retries with backoff, and
//! records each delivery as an event — so a restart neither loses nor repeats a delivered
//! reminder. Each payload carries a stable `reminder_id` so a receiver can also drop a repeat
//! (a crash between the receiver's answer and the recording event can cause one).
//!
//! A reminder goes `to` the group's effective contact and carries its `subject` and `body`
//! rendered from the tenant's template (the default while none is set).
//!
//! A restriction change that unblocks groups (a window extended or cleared while it excluded
//! the present) owes an `"kind": "unblocked"` notification, recorded as delivered the same way
//! (`unblocked_notified`), with a stable `notification_id`.
//!
//! Every POST is signed: `Ledger-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>.<raw body>"` with the tenant's webhook secret, signed afresh on every attempt.
//! A webhook set before signing existed has no secret: its deliveries go unsigned until it is
//! set again.

use crate::ledger::{Actor, ExecError, Ledger, Request};
use chrono::{DateTime, Utc};
use events::notification::{NotificationTemplate, ReminderValues};
use events::{Command, Rejection, Tenant, TenantId};
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};
use std::time::Duration;

/// The header every delivery is signed in.
pub const SIGNATURE_HEADER: &str = "Ledger-Signature";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The `Ledger-Signature` value of `body` sent at `timestamp` (unix seconds):
/// `t=<timestamp>,v1=<hex of HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 accepts a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// How the deliverer paces itself.
#[derive(Clone, Copy, Debug)]
pub struct Delivery {
    /// Pause between looks for due reminders.
    pub interval: Duration,
    /// POST attempts per reminder and look.
    pub attempts: u32,
    /// First pause between attempts; doubles each time.
    pub backoff: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            interval: Duration::from_secs(60),
            attempts: 5,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A notification owed to a tenant's webhook, and the command that records its delivery.
struct Pending {
    tenant: TenantId,
    url: String,
    secret: Option<String>,
    payload: Value,
    record: Command,
}

/// A reminder occurrence's stable id.
pub fn reminder_id(tenant: TenantId, group: events::GroupId, due_at: DateTime<Utc>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(tenant.as_uuid().as_bytes());
    hasher.update(group.as_uuid().as_bytes());
    hasher.update(&due_at.timestamp_micros().to_le_bytes());
    hasher.finalize().to_hex()[..32].to_string()
}

/// Whole days from `from` to `until`, counting a part of a day as a day.
fn days_left(from: DateTime<Utc>, until: DateTime<Utc>) -> i64 {
    let micros = (until - from).num_microseconds().unwrap_or(i64::MAX);
    let day = chrono::Duration::days(1)
        .num_microseconds()
        .unwrap_or(86_400_000_000);
    micros.div_euclid(day) + i64::from(micros.rem_euclid(day) != 0)
}

/// A due reminder's payload: `"kind": "reminder"`, where it goes and what it says.
fn reminder_payload(tenant: &Tenant, due: &projections::DueReminder) -> Value {
    let instant = crate::http::views::instant;
    let values = ReminderValues {
        group_name: due.group_name.clone(),
        group_id: due.group.to_string(),
        tenant_name: tenant.name.clone(),
        expiry_date: due.valid_until.format("%Y-%m-%d").to_string(),
        valid_until: instant(due.valid_until),
        days_left: days_left(due.due_at, due.valid_until),
    };
    let default = NotificationTemplate::default();
    let template = tenant.notification_template.as_ref().unwrap_or(&default);
    // A stored template was checked when it was set; only its fuel can run out. The reminder
    // still goes out, in the default's words.
    let rendered = template.render(&values).or_else(|error| {
        tracing::warn!(tenant = %tenant.id, %error, "the tenant's template failed; using the default");
        default.render(&values)
    });
    let (subject, body) = match rendered {
        Ok(r) => (Some(r.subject), Some(r.body)),
        Err(_) => (None, None),
    };
    json!({
        "kind": "reminder",
        "reminder_id": reminder_id(tenant.id, due.group, due.due_at),
        "tenant_id": tenant.id,
        "group_id": due.group,
        "group_name": due.group_name,
        "valid_until": values.valid_until,
        "due_at": instant(due.due_at),
        "days_before": due.reminder.days_before,
        "frequency": due.reminder.frequency,
        "days_left": values.days_left,
        "to": tenant.effective_contact(due.group).map(|(_, email)| email),
        "subject": subject,
        "body": body,
    })
}

fn pending(ledger: &Ledger, now: DateTime<Utc>) -> Vec<Pending> {
    let world = ledger.read();
    let mut out = Vec::new();
    for tenant in world.tenants.values() {
        let Some(url) = &tenant.webhook else { continue };
        let owed = |payload, record| Pending {
            tenant: tenant.id,
            url: url.clone(),
            secret: tenant.webhook_secret.as_ref().map(|s| s.secret.clone()),
            payload,
            record,
        };
        for due in projections::due_reminders(tenant, now) {
            if due.delivered {
                continue;
            }
            let record = Command::RecordReminderDelivered {
                group: due.group,
                due_at: due.due_at,
            };
            out.push(owed(reminder_payload(tenant, &due), record));
        }
        for (version, unblock) in &tenant.unblocks_owed {
            let record = Command::RecordUnblockedNotified { version: *version };
            out.push(owed(unblocked_payload(tenant, *version, unblock), record));
        }
    }
    out
}

/// An `unblocked` notification's stable id: the tenant and the version of its event.
pub fn notification_id(tenant: TenantId, version: u64) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"unblocked");
    hasher.update(tenant.as_uuid().as_bytes());
    hasher.update(&version.to_le_bytes());
    hasher.finalize().to_hex()[..32].to_string()
}

/// The payload telling the group's contact that a restriction change unblocked groups:
/// `"kind": "unblocked"`, the group changed, every group it unblocked with its window now,
/// and how many users may use their licences again.
fn unblocked_payload(tenant: &Tenant, version: u64, unblock: &events::Unblock) -> Value {
    let instant = crate::http::views::instant;
    let name = |g: events::GroupId| tenant.groups.get(&g).map(|g| g.name.clone());
    let group_name = name(unblock.group).unwrap_or_default();
    let (_, valid_until) = tenant.effective_window(unblock.group);
    let until = valid_until.map(|u| u.format("%Y-%m-%d").to_string());
    let subject = format!("{group_name}: licences usable again");
    let body = format!(
        "A change to group {group_name} unblocked {} group(s) with {} user(s){}.",
        unblock.groups.len(),
        unblock.users,
        until.map_or_else(String::new, |u| format!("; the window now ends on {u}"))
    );
    let groups: Vec<Value> = unblock
        .groups
        .iter()
        .map(|g| {
            let (from, until) = tenant.effective_window(*g);
            json!({
                "group_id": g,
                "group_name": name(*g),
                "valid_from": from.map(instant),
                "valid_until": until.map(instant),
            })
        })
        .collect();
    json!({
        "kind": "unblocked",
        "notification_id": notification_id(tenant.id, version),
        "tenant_id": tenant.id,
        "group_id": unblock.group,
        "group_name": group_name,
        "at": instant(unblock.at),
        "version": version,
        "groups": groups,
        "users": unblock.users,
        "valid_until": valid_until.map(instant),
        "to": tenant.effective_contact(unblock.group).map(|(_, email)| email),
        "subject": subject,
        "body": body,
    })
}

/// POST with retries, each attempt signed afresh; `true` once the receiver answered 2xx.
fn post(agent: &ureq::Agent, delivery: &Delivery, reminder: &Pending) -> bool {
    let body = reminder.payload.to_string();
    let mut pause = delivery.backoff;
    for attempt in 1..=delivery.attempts {
        let mut request = agent
            .post(&reminder.url)
            .set("Content-Type", "application/json");
        if let Some(secret) = &reminder.secret {
            let signed = signature(secret, Utc::now().timestamp(), body.as_bytes());
            request = request.set(SIGNATURE_HEADER, &signed);
        }
        match request.send_string(&body) {
            Ok(_) => return true,
            Err(error) => {
                tracing::warn!(tenant = %reminder.tenant, attempt, %error, "reminder delivery failed");
                if attempt < delivery.attempts {
                    std::thread::sleep(pause);
                    pause = pause.saturating_mul(2);
                }
            }
        }
    }
    false
}

/// Deliver every notification owed once; returns how many were delivered and recorded.
pub async fn deliver_due(ledger: &Ledger, delivery: &Delivery) -> usize {
    let agent = ureq::AgentBuilder::new().timeout(delivery.timeout).build();
    let mut delivered = 0;
    for reminder in pending(ledger, Utc::now()) {
        let (agent, config) = (agent.clone(), *delivery);
        let (sent, reminder) = match tokio::task::spawn_blocking(move || {
            let sent = post(&agent, &config, &reminder);
            (sent, reminder)
        })
        .await
        {
            Ok(result) => result,
            Err(error) => {
                tracing::error!(%error, "reminder delivery task failed");
                continue;
            }
        };
        if !sent {
            continue;
        }
        let request = Request {
            tenant: reminder.tenant,
            actor: Actor {
                id: "reminders".into(),
                reason: None,
                scope: None,
            },
            expected_version: None,
            command: reminder.record,
        };
        match ledger.execute(request).await {
            Ok(_) => delivered += 1,
            Err(ExecError::Rejected(
                Rejection::ReminderAlreadyDelivered { .. }
                | Rejection::UnblockedAlreadyNotified { .. },
            )) => {}
            Err(error) => tracing::error!(%error, "cannot record a delivered reminder"),
        }
    }
    delivered
}

/// Run the deliverer until the runtime stops.
pub fn spawn(ledger: Ledger, delivery: Delivery) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            // Only the writer delivers: a follower would send every reminder a second time.
            if ledger.is_writer() {
                deliver_due(&ledger, &delivery).await;
            }
            tokio::time::sleep(delivery.interval).await;
        }
    })
}
