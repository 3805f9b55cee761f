//! The web console's rows (issue 18): how long each page of the console takes to get its
//! answers on the tenant of the memory row (100 000 users, 1 000 000 licences), through the
//! real HTTP server on loopback.
//!
//! A page's time is that of the API requests its script makes, one after the other as it
//! makes them (`src/http/console/app.js`), from the first request sent to the last answer
//! read: what a user waits for before the page can draw. The browser's own drawing is not in
//! it. Each page is loaded `PAGE_LOADS` times; the row gives p50 and p99 (the slowest of the
//! loads, as they are few) against the 100 ms of the issue.

use super::common::{ms, percentile, serve, Row};
use super::memory::build_memory_log;
use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use events::{GroupId, Tenant, TenantId, UserId};
use ledger::http::auth::token_hash;
use ledger::http::{app, App};
use ledger::ledger::Ledger;
use ledger::store::sled_store::SledStore;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Loads of each page.
const PAGE_LOADS: usize = 30;
/// What a page may take (issue 18).
const PAGE_TARGET: Duration = Duration::from_millis(100);
const ROOT_TOKEN: &str = "bench-console-root";
/// The feature the user page asks "why blocked" about.
const ASKED: &str = "call_recording";

/// A request of a page: method, path (from the server's root) and body.
type Call = (&'static str, String, Option<Value>);

/// What the pages are asked about: the tenant, a user with licences, their group and its
/// path up to the root, and a group with a limit of some type.
struct Subject {
    tenant: TenantId,
    user: UserId,
    group: GroupId,
    path: Vec<GroupId>,
    limited: Option<(GroupId, String, u64)>,
    head: u64,
}

fn subject(tenant: &Tenant, id: TenantId, head: u64) -> Result<Subject, String> {
    let user = tenant
        .users
        .values()
        .find(|u| !u.removed && !u.licenses.is_empty())
        .ok_or("the console tenant has no user with a licence")?;
    let mut path = Vec::new();
    let mut next = Some(user.group);
    while let Some(group) = next {
        path.push(group);
        next = tenant.groups.get(&group).and_then(|g| g.parent);
    }
    let limited = tenant.groups.values().find_map(|g| {
        let r = g.restriction.as_ref().filter(|r| r.enabled)?;
        let (code, _) = r.limits.iter().next()?;
        Some((
            g.id,
            code.to_string(),
            g.used.get(code).copied().unwrap_or(0),
        ))
    });
    Ok(Subject {
        tenant: id,
        user: user.id,
        group: user.group,
        path,
        limited,
        head,
    })
}

/// Each page and the requests it makes, in order.
fn pages(s: &Subject, now: DateTime<Utc>) -> Vec<(&'static str, Vec<Call>)> {
    let t = format!("/v1/tenants/{}", s.tenant);
    let instant = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Secs, true);
    let at = instant(now - chrono::Duration::hours(1));
    let month = now.format("%Y-%m").to_string();
    let get = |path: String| -> Call { ("GET", path, None) };
    let mut billing = vec![
        get(format!("{t}/billing/{month}")),
        get(format!("{t}/invoices/{month}")),
    ];
    // The chart: the usage at the end of each day of the month so far, today as it is now.
    let first = now.date_naive().with_day0(0).unwrap_or(now.date_naive());
    let mut day = first;
    while day < now.date_naive() {
        let end = day.and_hms_opt(23, 59, 59).map(|d| d.and_utc());
        if let Some(end) = end {
            billing.push(get(format!("{t}/usage?at={}", instant(end))));
        }
        day = day.succ_opt().unwrap_or(now.date_naive());
    }
    billing.push(get(format!("{t}/usage")));
    // The page names the group its licences count against (the user's own, here).
    let mut user = vec![
        get(format!("{t}/users/{}", s.user)),
        get(format!("{t}/groups/{}", s.group)),
        get(format!("{t}/users/{}/entitlements/{ASKED}", s.user)),
    ];
    user.extend(s.path.iter().map(|g| get(format!("{t}/groups/{g}"))));
    let mut out = vec![
        (
            "overview",
            vec![
                get("/healthz".into()),
                get(format!("{t}/usage")),
                get(format!(
                    "{t}/events?limit=500&after={}",
                    s.head.saturating_sub(500)
                )),
            ],
        ),
        (
            "groups (the whole tree)",
            vec![get(format!("{t}/groups?limit=1000"))],
        ),
        (
            "a group's state",
            vec![get(format!("{t}/groups/{}/state", s.group))],
        ),
        ("user, why blocked, path in the tree", user),
        (
            "billing (peaks, invoice, a usage per day for the chart)",
            billing,
        ),
        (
            "audit, a group's events and its state as of an instant",
            vec![
                get(format!("{t}/events?limit=1")),
                get(format!("{t}/events?group_id={}&limit=200", s.group)),
                get(format!("{t}/usage?at={at}")),
                get(format!("{t}/groups/{}/state?at={at}", s.group)),
            ],
        ),
        (
            "what-if, the page",
            vec![get(format!("{t}/groups?limit=1000"))],
        ),
        (
            "what-if, preview of 10 more phone_system licences (allowed)",
            vec![(
                "POST",
                format!("{t}/what-if"),
                Some(json!({"commands": [
                    {"op": "provision", "type": "phone_system", "quantity": 10}
                ]})),
            )],
        ),
    ];
    if let Some((group, code, used)) = &s.limited {
        out.push((
            "what-if, preview of a limit below usage (refused)",
            vec![(
                "POST",
                format!("{t}/what-if"),
                Some(json!({"commands": [{
                    "op": "set_restriction", "group_id": group, "enabled": true,
                    "limits": {code: used.saturating_sub(1)}
                }]})),
            )],
        ));
    }
    out
}

/// The console rows: build the memory row's tenant in `dir`, serve it, load each page.
pub(super) fn console_rows(
    runtime: &Runtime,
    dir: &Path,
    users: usize,
    licenses: u32,
) -> Result<Vec<Row>, String> {
    build_memory_log(dir, users, licenses)?;
    let store = Arc::new(SledStore::open(dir).map_err(|e| e.to_string())?);
    let ledger = Ledger::start(store).map_err(|e| e.to_string())?;
    let subject = {
        let world = ledger.read();
        let (id, tenant) = world
            .tenants
            .iter()
            .max_by_key(|(_, t)| t.users.len())
            .ok_or("the console log has no tenant")?;
        subject(tenant, *id, world.head)?
    };
    let router = app(App {
        ledger,
        root_token_hash: token_hash(ROOT_TOKEN),
    });
    let _guard = runtime.enter();
    let (address, serving) = runtime.block_on(serve(router))?;
    let base = format!("http://{address}");
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let mut rows = Vec::new();
    for (page, calls) in pages(&subject, Utc::now()) {
        let mut times = Vec::with_capacity(PAGE_LOADS);
        for _ in 0..PAGE_LOADS {
            let started = Instant::now();
            for (method, path, body) in &calls {
                let request = agent
                    .request(method, &format!("{base}{path}"))
                    .set("Authorization", &format!("Bearer {ROOT_TOKEN}"));
                let answer = match body {
                    Some(body) => request.send_json(body.clone()),
                    None => request.call(),
                };
                let answer = answer.map_err(|e| format!("{page}: {method} {path}: {e}"))?;
                // The page reads the whole answer before it draws.
                answer
                    .into_string()
                    .map_err(|e| format!("{page}: {method} {path}: {e}"))?;
            }
            times.push(started.elapsed());
        }
        times.sort();
        let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
        rows.push(Row {
            scenario: format!(
                "console page on a {users}-user, {licenses}-licence tenant: {page} \
                 (its {} API requests in order over loopback HTTP, {PAGE_LOADS} loads)",
                calls.len()
            ),
            figure: format!("p50 {} p99 {}", ms(p50), ms(p99)),
            reference: format!("target {}", ms(PAGE_TARGET)),
            ratio: if p99 <= PAGE_TARGET {
                "within".into()
            } else {
                format!("{:.1}× over", p99.as_secs_f64() / PAGE_TARGET.as_secs_f64())
            },
        });
    }
    runtime.block_on(serving.stop());
    Ok(rows)
}
