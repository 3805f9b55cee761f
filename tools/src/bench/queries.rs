//! The in-process query rows: usage, group state and explain on the live state, and as-of
//! questions at past instants (the past index beside a folded past state).

use super::common::{ms, percentile, Row};
use chrono::Utc;
use events::{TenantId, TypeCode, UserId};
use ledger::ledger::Ledger;
use std::time::{Duration, Instant};

fn time_many(samples: usize, mut work: impl FnMut()) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        work();
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// `history`: the first and last instants of the large tenant's generated history (the as-of
/// queries ask about instants inside it).
pub(super) fn query_rows(
    ledger: &Ledger,
    tenant: TenantId,
    user: UserId,
    group: events::GroupId,
    history: (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
) -> Vec<Row> {
    let now = Utc::now();
    let phone = TypeCode::from("phone_system");
    let mut rows = Vec::new();
    let mut add = |name: &str, times: (Duration, Duration)| {
        rows.push(query_row(name, times, "—".into(), "—".into()));
    };
    add(
        "usage",
        time_many(2000, || {
            let world = ledger.read();
            std::hint::black_box(projections::usage(&world.tenants[&tenant]));
        }),
    );
    add(
        "group state",
        time_many(2000, || {
            let world = ledger.read();
            std::hint::black_box(
                projections::group_state(&world.tenants[&tenant], group, now).is_some(),
            );
        }),
    );
    add(
        "explain (entitlement)",
        time_many(2000, || {
            let world = ledger.read();
            std::hint::black_box(projections::entitlement(
                &world.tenants[&tenant],
                user,
                &phone,
                now,
            ));
        }),
    );
    let (first, last) = history;
    add(
        "as-of group state, an instant after the tenant's last event (the live state)",
        time_many(2000, || {
            let answer = ledger.with_tenant_at(tenant, now, |t| {
                projections::group_state(t, group, now).is_some()
            });
            std::hint::black_box(answer.ok());
        }),
    );
    let span = (last - first).num_milliseconds().max(1);
    let spread = |count: i64, stride: i64| -> Vec<_> {
        (0..count)
            .map(|i| {
                first
                    + chrono::Duration::milliseconds(span * (i * stride % count + 1) / (count + 1))
            })
            .collect()
    };
    // `usage?at=` answers from the usage history, by binary search.
    let many = spread(2000, 997);
    let mut next = many.iter().cycle();
    add(
        "as-of usage (usage history), 2000 distinct past instants",
        time_many(many.len(), || {
            let at = *next.next().expect("cycle");
            std::hint::black_box(ledger.read().usage_at(tenant, at).1.len());
        }),
    );
    // Group state and explain at past instants: the part of the tenant they read, rebuilt
    // from the past index. The reference folds a past state from the nearest one kept, as
    // every as-of question did before the index (and as one still does if it cannot answer).
    let folded_instants = spread(40, 37);
    let mut next = folded_instants.iter().cycle();
    let folded = time_many(folded_instants.len(), || {
        let at = *next.next().expect("cycle");
        let answer = ledger.with_tenant_at(tenant, at, |t| {
            (
                projections::group_state(t, group, at).is_some(),
                projections::entitlement(t, user, &phone, at).is_some_and(|e| e.allowed),
            )
        });
        std::hint::black_box(answer.ok());
    });
    let mut next = many.iter().cycle();
    let state = time_many(many.len(), || {
        let at = *next.next().expect("cycle");
        let answer = ledger.with_view_at(tenant, at, None, |t| {
            projections::group_state(t, group, at).is_some()
        });
        std::hint::black_box(answer.ok());
    });
    let mut next = many.iter().cycle();
    let explain = time_many(many.len(), || {
        let at = *next.next().expect("cycle");
        let answer = ledger.with_view_at(tenant, at, Some(user), |t| {
            projections::entitlement(t, user, &phone, at).is_some_and(|e| e.allowed)
        });
        std::hint::black_box(answer.ok());
    });
    let reference = format!(
        "group state + explain from a folded past state, 40 distinct past instants: p50 {} p99 {}",
        ms(folded.0),
        ms(folded.1)
    );
    for (name, (p50, p99)) in [
        (
            "as-of group state (past index), 2000 distinct past instants",
            state,
        ),
        (
            "as-of explain (past index), 2000 distinct past instants",
            explain,
        ),
    ] {
        let ratio = format!(
            "{:.0}× faster at p99",
            folded.1.as_secs_f64() / p99.as_secs_f64().max(1e-9)
        );
        rows.push(query_row(name, (p50, p99), reference.clone(), ratio));
    }
    rows
}

/// A row of an in-process query's latency percentiles.
fn query_row(
    name: &str,
    (p50, p99): (Duration, Duration),
    reference: String,
    ratio: String,
) -> Row {
    Row {
        scenario: format!("query in process: {name}"),
        figure: format!("p50 {} p99 {}", ms(p50), ms(p99)),
        reference,
        ratio,
    }
}
