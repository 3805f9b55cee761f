//! Metered services (issue 17 items 1 and 2): services with a switch, a monthly base
//! allowance and a cap over it, usage records counted per month up to the cap, duplicates by
//! id ignored, late records counted in the month they occurred, requirements between services.

mod support;

use events::metering::{NewUsageRecord, RecordOutcome, Service, UsageRecord};
use events::time::Month;
use events::{Command, Event, Rejection, Rule, Tenant, TypeCode};
use support::*;

fn stt() -> TypeCode {
    "speech_to_text".into()
}

fn topics() -> TypeCode {
    "ai_topics".into()
}

/// Speech-to-Text: 5 000 minutes a month, at most 2 000 over them.
fn speech_to_text() -> Service {
    Service {
        code: stt(),
        name: "Speech-to-Text".into(),
        unit: "minute".into(),
        enabled: true,
        base_allowance: 5000,
        monthly_cap: Some(2000),
        requires: vec![],
    }
}

/// AI topics on calls: Power Packs, at most 10 a month, needs Speech-to-Text.
fn ai_topics() -> Service {
    Service {
        code: topics(),
        name: "AI Topics".into(),
        unit: "power_pack".into(),
        enabled: true,
        base_allowance: 0,
        monthly_cap: Some(10),
        requires: vec![stt()],
    }
}

fn defined(service: Service) -> Event {
    Event::ServiceDefined { service }
}

fn services() -> Vec<Event> {
    vec![defined(speech_to_text()), defined(ai_topics())]
}

fn with(extra: &[Event]) -> Vec<Event> {
    let mut facts = services();
    facts.extend_from_slice(extra);
    facts
}

fn record(id: &str, service: TypeCode, quantity: u64) -> NewUsageRecord {
    NewUsageRecord {
        id: id.into(),
        service,
        quantity,
        user: None,
        queue: Some("support".into()),
        occurred_at: at(2024, 5, 10),
    }
}

fn stored(new: &NewUsageRecord, counted: u64, outcome: RecordOutcome) -> UsageRecord {
    UsageRecord {
        id: new.id.clone(),
        service: new.service.clone(),
        quantity: new.quantity,
        counted,
        user: new.user,
        queue: new.queue.clone(),
        occurred_at: new.occurred_at,
        outcome,
    }
}

fn used(state: &Tenant, service: TypeCode, month: (i32, u32)) -> u64 {
    let month = Month {
        year: month.0,
        month: month.1,
    };
    state.metered.get(&(service, month)).map_or(0, |m| m.used)
}

#[test]
fn a_service_definition_is_kept_as_an_event_and_setting_it_again_records_nothing() {
    let state = given(&[])
        .when(Command::DefineService(speech_to_text()))
        .then_events(&[defined(speech_to_text())]);
    given_state(state)
        .when(Command::DefineService(speech_to_text()))
        .then_events(&[]);
}

#[test]
fn a_service_may_not_take_a_licence_types_code_nor_require_an_unknown_service() {
    let mut clash = speech_to_text();
    clash.code = "phone_system".into();
    given(&[])
        .when(Command::DefineService(clash))
        .then_rule(Rule::CatalogueKindChange);
    given(&[])
        .when(Command::DefineService(ai_topics()))
        .then_reject(Rejection::UnknownService(stt()));
}

#[test]
fn services_may_not_require_each_other_round() {
    let mut stt_needing_topics = speech_to_text();
    stt_needing_topics.requires = vec![topics()];
    given(&services())
        .when(Command::DefineService(stt_needing_topics))
        .then_rule(Rule::RequiresCycle);
}

#[test]
fn records_count_in_full_while_under_the_cap() {
    let batch = vec![record("a", stt(), 3000), record("b", stt(), 1000)];
    let state = given(&services())
        .when(Command::RecordUsage(batch.clone()))
        .then_events(&[Event::UsageRecorded {
            records: vec![
                stored(&batch[0], 3000, RecordOutcome::Counted),
                stored(&batch[1], 1000, RecordOutcome::Counted),
            ],
        }]);
    assert_eq!(used(&state, stt(), (2024, 5)), 4000);
}

#[test]
fn the_record_that_passes_the_cap_counts_up_to_it_and_the_service_then_stops_for_the_month() {
    // 5 000 included + 2 000 over: 7 000 at most.
    let first = vec![record("a", stt(), 6500)];
    let state = given(&services())
        .when(Command::RecordUsage(first))
        .then_accepted();
    let batch = vec![record("b", stt(), 800), record("c", stt(), 5)];
    let state = given_state(state)
        .when(Command::RecordUsage(batch.clone()))
        .then_events(&[Event::UsageRecorded {
            records: vec![
                stored(&batch[0], 500, RecordOutcome::Capped),
                stored(&batch[1], 0, RecordOutcome::Capped),
            ],
        }]);
    assert_eq!(used(&state, stt(), (2024, 5)), 7000);
    let figures = &state.metered[&(
        stt(),
        Month {
            year: 2024,
            month: 5,
        },
    )];
    assert_eq!(figures.reported, 7305);
    let reached = figures.cap_reached.as_ref().expect("the cap was reached");
    assert_eq!(reached.record, "b");
}

#[test]
fn a_cap_reached_exactly_stops_the_service_and_names_that_record() {
    let state = given(&services())
        .when(Command::RecordUsage(vec![record("exact", topics(), 10)]))
        .then_accepted();
    let figures = state
        .metered
        .values()
        .next()
        .expect("AI topics has a month");
    assert_eq!(figures.used, 10);
    assert_eq!(
        figures.cap_reached.as_ref().map(|c| c.record.as_str()),
        Some("exact")
    );
    let events = given_state(state)
        .when(Command::RecordUsage(vec![record("more", topics(), 1)]))
        .then_accepted();
    assert_eq!(used(&events, topics(), (2024, 5)), 10);
}

#[test]
fn next_month_starts_from_nothing() {
    let may = given(&services())
        .when(Command::RecordUsage(vec![record("a", topics(), 10)]))
        .then_accepted();
    // Asked on 2 June: May's cap is used up, June's is whole.
    let mut june = record("b", topics(), 4);
    june.occurred_at = at(2024, 6, 2);
    let ctx = events::Context {
        now: at(2024, 6, 2) + chrono::Duration::hours(1),
        ..context()
    };
    let events =
        events::decide(&may, &Command::RecordUsage(vec![june.clone()]), &ctx).expect("accepted");
    assert_eq!(
        events,
        vec![Event::UsageRecorded {
            records: vec![stored(&june, 4, RecordOutcome::Counted)],
        }]
    );
    let mut june_state = may;
    fold(&mut june_state, &events);
    assert_eq!(used(&june_state, topics(), (2024, 5)), 10);
    assert_eq!(used(&june_state, topics(), (2024, 6)), 4);
}

#[test]
fn records_of_two_months_ago_are_refused_once_the_month_turns() {
    let mut april = record("april", stt(), 1);
    april.occurred_at = at(2024, 4, 30);
    let ctx = events::Context {
        now: at(2024, 6, 1),
        ..context()
    };
    let state = {
        let mut s = Tenant::empty(events::TenantId(uuid::Uuid::nil()));
        fold(&mut s, &tenant_created());
        fold(&mut s, &services());
        s
    };
    let refused = events::decide(&state, &Command::RecordUsage(vec![april]), &ctx);
    assert!(
        matches!(refused, Err(Rejection::BatchRejected(ref items)) if items.len() == 1),
        "{refused:?}"
    );
}

#[test]
fn a_switched_off_service_and_one_whose_requirement_is_off_count_nothing() {
    let mut off = speech_to_text();
    off.enabled = false;
    let batch = vec![record("a", stt(), 10), record("b", topics(), 1)];
    given(&with(&[defined(off)]))
        .when(Command::RecordUsage(batch.clone()))
        .then_events(&[Event::UsageRecorded {
            records: vec![
                stored(&batch[0], 0, RecordOutcome::Disabled),
                stored(&batch[1], 0, RecordOutcome::RequiresMissing),
            ],
        }]);
}

#[test]
fn a_record_sent_again_is_ignored_in_the_batch_and_later() {
    let batch = vec![record("a", stt(), 10), record("a", stt(), 10)];
    let state = given(&services())
        .when(Command::RecordUsage(batch.clone()))
        .then_events(&[Event::UsageRecorded {
            records: vec![stored(&batch[0], 10, RecordOutcome::Counted)],
        }]);
    let state = given_state(state)
        .when(Command::RecordUsage(vec![
            record("a", stt(), 10),
            record("c", stt(), 1),
        ]))
        .then_accepted();
    assert_eq!(used(&state, stt(), (2024, 5)), 11);
    given_state(state)
        .when(Command::RecordUsage(vec![record("a", stt(), 10)]))
        .then_events(&[]);
}

#[test]
fn a_late_record_counts_in_the_month_it_occurred() {
    let mut april = record("late", stt(), 100);
    april.occurred_at = at(2024, 4, 30);
    let state = given(&services())
        .when(Command::RecordUsage(vec![april, record("now", stt(), 1)]))
        .then_accepted();
    assert_eq!(used(&state, stt(), (2024, 4)), 100);
    assert_eq!(used(&state, stt(), (2024, 5)), 1);
}

#[test]
fn bad_records_refuse_the_whole_batch_naming_each_index() {
    let mut too_old = record("old", stt(), 1);
    too_old.occurred_at = at(2024, 3, 31);
    let mut future = record("future", stt(), 1);
    future.occurred_at = at(2024, 5, 16);
    let mut nobody = record("nobody", stt(), 1);
    nobody.user = Some(user(99));
    let batch = vec![
        record("fine", stt(), 1),
        too_old,
        future,
        record("zero", stt(), 0),
        record("unknown", "no_such_service".into(), 1),
        nobody,
        record("", stt(), 1),
    ];
    let rejection = given(&services())
        .when(Command::RecordUsage(batch))
        .rejection();
    let Rejection::BatchRejected(items) = rejection else {
        panic!("expected a batch rejection, got {rejection:?}");
    };
    let indices: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(
        items[3].1,
        Rejection::UnknownService("no_such_service".into())
    );
    assert_eq!(items[4].1, Rejection::UserNotFound(user(99)));
    given(&services())
        .when(Command::RecordUsage(vec![]))
        .then_invalid_input("1 to 10000");
}

#[test]
fn raising_the_cap_lets_the_service_run_again_this_month() {
    let state = given(&services())
        .when(Command::RecordUsage(vec![record("a", topics(), 10)]))
        .then_accepted();
    let mut more = ai_topics();
    more.monthly_cap = Some(15);
    let state = given_state(state)
        .when(Command::DefineService(more))
        .then_accepted();
    let state = given_state(state)
        .when(Command::RecordUsage(vec![record("b", topics(), 8)]))
        .then_accepted();
    assert_eq!(used(&state, topics(), (2024, 5)), 15);
}

#[test]
fn a_dealer_key_may_not_record_usage_or_define_services() {
    for command in [
        Command::RecordUsage(vec![record("a", stt(), 1)]),
        Command::DefineService(speech_to_text()),
    ] {
        let facts = with(&[group_created(group(1), "Dealer", None)]);
        let rejection = given(&facts).when_scoped(group(1), command).rejection();
        assert!(
            matches!(rejection, Rejection::OutsideScope(_)),
            "{rejection:?}"
        );
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        /// Set a service's cap (and switch).
        Define {
            topics: bool,
            cap: Option<u64>,
            enabled: bool,
        },
        /// A batch of (id, topics?, quantity, day of month: 0 is 30 April).
        Record(Vec<(u8, bool, u64, u8)>),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            1 => (any::<bool>(), prop::option::weighted(0.8, 0u64..40), prop::bool::weighted(0.85))
                .prop_map(|(topics, cap, enabled)| Step::Define { topics, cap, enabled }),
            4 => prop::collection::vec((0u8..30, any::<bool>(), 1u64..12, 0u8..15), 1..20)
                .prop_map(Step::Record),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever batches arrive, in whatever order, and however caps change: no record
        /// makes a month count more than the maximum in force when it arrived, what counts is
        /// the sum of the records' counted units, and folding the log again gives the same
        /// state.
        #[test]
        fn the_cap_is_never_exceeded_and_replay_equals_live(steps in prop::collection::vec(step(), 1..30)) {
            let mut live = given(&services()).when(Command::RecordUsage(vec![record("seed", stt(), 1)])).then_accepted();
            let mut log: Vec<Event> = Vec::new();
            let start = live.clone();
            for step in steps {
                let command = match step {
                    Step::Define { topics, cap, enabled } => {
                        let mut s = if topics { ai_topics() } else { speech_to_text() };
                        s.monthly_cap = cap;
                        s.enabled = enabled;
                        Command::DefineService(s)
                    }
                    Step::Record(rows) => Command::RecordUsage(rows.into_iter().map(|(id, t, q, day)| {
                        let mut r = record(&format!("r{id}"), if t { topics() } else { stt() }, q);
                        r.occurred_at = if day == 0 { at(2024, 4, 30) } else { at(2024, 5, u32::from(day)) };
                        r
                    }).collect()),
                };
                let Ok(events) = events::decide(&live, &command, &context()) else { continue };
                for event in &events {
                    if let Event::UsageRecorded { records } = event {
                        let mut after = live.clone();
                        fold(&mut after, std::slice::from_ref(event));
                        for r in records {
                            prop_assert!(r.counted <= r.quantity);
                            let month = Month::of(r.occurred_at, chrono_tz::Tz::UTC);
                            let maximum = live.services[&r.service].monthly_maximum();
                            let used = after.metered[&(r.service.clone(), month)].used;
                            let before = live.metered.get(&(r.service.clone(), month)).map_or(0, |m| m.used);
                            if let Some(m) = maximum {
                                prop_assert!(r.counted == 0 || used <= m.max(before),
                                    "{} counted {} to {used}, above {m}", r.id, r.counted);
                            }
                        }
                    }
                }
                fold(&mut live, &events);
                log.extend(events);
            }
            let mut replayed = start;
            fold(&mut replayed, &log);
            prop_assert_eq!(&replayed, &live);
            let mut sums: std::collections::BTreeMap<(TypeCode, Month), u64> = Default::default();
            for event in given(&services()).when(Command::RecordUsage(vec![record("seed", stt(), 1)])).accepted_events().iter().chain(&log) {
                if let Event::UsageRecorded { records } = event {
                    for r in records {
                        *sums.entry((r.service.clone(), Month::of(r.occurred_at, chrono_tz::Tz::UTC))).or_default() += r.counted;
                    }
                }
            }
            for (key, sum) in sums {
                prop_assert_eq!(live.metered[&key].used, sum);
            }
        }
    }
}
