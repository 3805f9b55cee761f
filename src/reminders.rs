//! Delivery of due expiry reminders to each tenant's webhook: a background task that POSTs
//! every due, undelivered reminder as JSON, retries with backoff, and records each delivery as
//! an event — so a restart neither loses nor repeats a delivered reminder. Each payload carries
//! a stable `reminder_id` so a receiver can also drop a repeat (a crash between the receiver's
//! answer and the recording event can cause one).

use crate::ledger::{Actor, ExecError, Ledger, Request};
use chrono::{DateTime, Utc};
use events::{Command, Rejection, TenantId};
use serde_json::json;
use std::time::Duration;

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

struct Pending {
    tenant: TenantId,
    url: String,
    payload: serde_json::Value,
    group: events::GroupId,
    due_at: DateTime<Utc>,
}

/// A reminder occurrence's stable id.
pub fn reminder_id(tenant: TenantId, group: events::GroupId, due_at: DateTime<Utc>) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(tenant.as_uuid().as_bytes());
    hasher.update(group.as_uuid().as_bytes());
    hasher.update(&due_at.timestamp_micros().to_le_bytes());
    hasher.finalize().to_hex()[..32].to_string()
}

fn pending(ledger: &Ledger, now: DateTime<Utc>) -> Vec<Pending> {
    let world = ledger.read();
    let mut out = Vec::new();
    for tenant in world.tenants.values() {
        let Some(url) = &tenant.webhook else { continue };
        for due in projections::due_reminders(tenant, now) {
            if due.delivered {
                continue;
            }
            let payload = json!({
                "reminder_id": reminder_id(tenant.id, due.group, due.due_at),
                "tenant_id": tenant.id,
                "group_id": due.group,
                "group_name": due.group_name,
                "valid_until": crate::http::views::instant(due.valid_until),
                "due_at": crate::http::views::instant(due.due_at),
                "days_before": due.reminder.days_before,
                "frequency": due.reminder.frequency,
            });
            out.push(Pending {
                tenant: tenant.id,
                url: url.clone(),
                payload,
                group: due.group,
                due_at: due.due_at,
            });
        }
    }
    out
}

/// POST with retries; `true` once the receiver answered 2xx.
fn post(agent: &ureq::Agent, delivery: &Delivery, reminder: &Pending) -> bool {
    let mut pause = delivery.backoff;
    for attempt in 1..=delivery.attempts {
        match agent
            .post(&reminder.url)
            .send_json(reminder.payload.clone())
        {
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

/// Deliver every due reminder once; returns how many were delivered and recorded.
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
            command: Command::RecordReminderDelivered {
                group: reminder.group,
                due_at: reminder.due_at,
            },
        };
        match ledger.execute(request).await {
            Ok(_) => delivered += 1,
            Err(ExecError::Rejected(Rejection::ReminderAlreadyDelivered { .. })) => {}
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
