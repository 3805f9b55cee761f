//! Worked billing examples: commands decided at chosen instants, folded into the projection.

use chrono::{DateTime, TimeZone, Utc};
use events::{
    decide, evolve, Command, CommandId, Context, Envelope, EventHash, Retention, Tenant, TenantId,
    TypeCode,
};
use projections::billing::{invoice, Billing, Month};

/// A tenant driven through `decide`, its envelopes folded into billing as they are produced.
struct Story {
    state: Tenant,
    billing: Billing,
    seq: u64,
    log: Vec<(Envelope, EventHash)>,
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

impl Story {
    fn new(timezone: &str, when: DateTime<Utc>) -> Story {
        let mut story = Story {
            state: Tenant::empty(TenantId::new_random()),
            billing: Billing::default(),
            seq: 0,
            log: Vec::new(),
        };
        story.run(
            Command::CreateTenant {
                name: "Acme".into(),
                billing_timezone: timezone.into(),
                currency: "EUR".into(),
            },
            when,
        );
        story
    }

    fn run(&mut self, command: Command, when: DateTime<Utc>) {
        let ctx = Context {
            now: when,
            command_id: CommandId::new_random(),
        };
        let produced = decide(&self.state, &command, &ctx).expect("the story's commands are valid");
        for event in produced {
            self.seq += 1;
            let envelope = Envelope {
                seq: self.seq,
                tenant: self.state.id,
                version: self.state.version + 1,
                recorded_at: when,
                actor: "key:test".into(),
                reason: None,
                command_id: ctx.command_id,
                prev_hash: self.state.last_hash,
                event,
            };
            let hash = Envelope::hash_of(&envelope.encode());
            evolve(&mut self.state, &envelope.event, envelope.version);
            self.state.last_hash = hash;
            self.billing.apply(&envelope, hash);
            self.log.push((envelope, hash));
        }
    }

    fn provision(&mut self, code: &str, quantity: u32, when: DateTime<Utc>) {
        self.run(
            Command::ProvisionLicenses {
                license_type: code.into(),
                quantity,
            },
            when,
        );
    }

    fn replayed(&self) -> Billing {
        let mut billing = Billing::default();
        for (envelope, hash) in &self.log {
            billing.apply(envelope, *hash);
        }
        billing
    }
}

fn month(text: &str) -> Month {
    Month::parse(text).unwrap()
}

fn phone() -> TypeCode {
    "phone_system".into()
}

#[test]
fn peak_is_the_highest_count_in_the_month_and_carries_into_the_next() {
    let mut story = Story::new("UTC", at(2026, 9, 20, 8));
    story.provision("phone_system", 10, at(2026, 10, 3, 9));
    story.provision("phone_system", 4, at(2026, 10, 10, 9));
    story.run(
        Command::SetQuantity {
            license_type: phone(),
            quantity: 8,
        },
        at(2026, 10, 20, 9),
    );
    let october = &story.billing.month(month("2026-10"))[&phone()];
    assert_eq!(october.peak_units, 14);
    assert_eq!(october.peak_at, at(2026, 10, 10, 9));
    assert_eq!(october.units_at_end, 8);
    let november = &story.billing.month(month("2026-11"))[&phone()];
    assert_eq!(november.peak_units, 8);
    assert_eq!(november.peak_at, month("2026-11").start(chrono_tz::UTC));
    assert_eq!(november.units_at_end, 8);
}

#[test]
fn peak_names_the_event_and_actor_that_first_reached_it() {
    let mut story = Story::new("UTC", at(2026, 10, 1, 8));
    story.provision("phone_system", 10, at(2026, 10, 3, 9));
    let raising_seq = story.seq + 1;
    story.provision("phone_system", 4, at(2026, 10, 10, 9));
    story.run(
        Command::SetQuantity {
            license_type: phone(),
            quantity: 14,
        },
        at(2026, 10, 11, 9),
    );
    let october = &story.billing.month(month("2026-10"))[&phone()];
    assert_eq!(october.peak_seq, raising_seq);
    assert_eq!(october.peak_actor, "key:test");
}

#[test]
fn a_licence_that_existed_for_a_moment_counts_in_that_months_peak() {
    let mut story = Story::new("UTC", at(2026, 10, 1, 8));
    story.provision("phone_system", 3, at(2026, 10, 5, 9));
    story.run(
        Command::SetQuantity {
            license_type: phone(),
            quantity: 0,
        },
        at(2026, 10, 5, 9) + chrono::Duration::seconds(1),
    );
    let october = &story.billing.month(month("2026-10"))[&phone()];
    assert_eq!((october.peak_units, october.units_at_end), (3, 0));
    assert_eq!(
        story.billing.month(month("2026-11"))[&phone()].peak_units,
        0
    );
}

#[test]
fn nine_months_retention_counts_three_units_per_call_recording_licence() {
    let mut story = Story::new("UTC", at(2026, 10, 1, 8));
    story.provision("call_recording", 4, at(2026, 10, 2, 9));
    let recording = TypeCode::from("call_recording");
    assert_eq!(
        story.billing.month(month("2026-10"))[&recording].peak_units,
        0
    );
    story.run(
        Command::SetRetention(Retention::Months(9)),
        at(2026, 10, 3, 9),
    );
    assert_eq!(
        story.billing.month(month("2026-10"))[&recording].peak_units,
        12
    );
    story.run(
        Command::SetRetention(Retention::Days(14)),
        at(2026, 11, 3, 9),
    );
    let november = &story.billing.month(month("2026-11"))[&recording];
    assert_eq!((november.peak_units, november.units_at_end), (12, 0));
    assert_eq!(
        story.billing.month(month("2026-12"))[&recording].peak_units,
        0
    );
}

#[test]
fn a_prague_month_boundary_differs_from_utc() {
    // 2026-10-31T23:30Z is already 1 November 00:30 in Prague (CET, UTC+1).
    let instant = Utc.with_ymd_and_hms(2026, 10, 31, 23, 30, 0).unwrap();
    for (zone, october, november) in [("UTC", 5, 5), ("Europe/Prague", 0, 5)] {
        let mut story = Story::new(zone, at(2026, 10, 1, 8));
        story.provision("phone_system", 5, instant);
        let peak = |m: &str| {
            story
                .billing
                .month(month(m))
                .get(&phone())
                .map_or(0, |f| f.peak_units)
        };
        assert_eq!(peak("2026-10"), october, "{zone} October");
        assert_eq!(peak("2026-11"), november, "{zone} November");
    }
}

#[test]
fn invoice_prices_peak_units_at_the_price_in_force_at_month_end() {
    let mut story = Story::new("UTC", at(2026, 10, 1, 8));
    story.run(
        Command::SetPrice {
            license_type: phone(),
            unit_price_minor: 1500,
            currency: "EUR".into(),
            effective_from: at(2026, 1, 1, 0),
        },
        at(2026, 10, 1, 9),
    );
    story.provision("phone_system", 10, at(2026, 10, 3, 9));
    story.run(
        Command::SetPrice {
            license_type: phone(),
            unit_price_minor: 1700,
            currency: "EUR".into(),
            effective_from: at(2026, 10, 15, 0),
        },
        at(2026, 10, 14, 9),
    );
    let october = invoice(&story.billing, month("2026-10"));
    assert_eq!(october.lines.len(), 1);
    assert_eq!(october.lines[0].unit_price_minor, Some(1700));
    assert_eq!(october.lines[0].amount_minor, 17_000);
    assert_eq!(october.total_minor, 17_000);
    assert_eq!(october.through_seq, story.seq);
}

#[test]
fn a_closed_months_invoice_is_byte_identical_after_replay_and_later_events() {
    let mut story = Story::new("UTC", at(2026, 10, 1, 8));
    story.provision("phone_system", 10, at(2026, 10, 3, 9));
    let before = projections::invoice_bytes(&invoice(&story.billing, month("2026-10")));
    story.provision("phone_system", 5, at(2026, 11, 3, 9));
    let after = projections::invoice_bytes(&invoice(&story.billing, month("2026-10")));
    let replayed = projections::invoice_bytes(&invoice(&story.replayed(), month("2026-10")));
    assert_eq!(before, after);
    assert_eq!(before, replayed);
    assert_eq!(story.replayed(), story.billing);
}

#[test]
fn the_digest_changes_when_the_log_under_the_invoice_differs() {
    let mut one = Story::new("UTC", at(2026, 10, 1, 8));
    one.provision("phone_system", 10, at(2026, 10, 3, 9));
    let mut two = Story::new("UTC", at(2026, 10, 1, 8));
    two.provision("phone_system", 10, at(2026, 10, 3, 10));
    let a = invoice(&one.billing, month("2026-10"));
    let b = invoice(&two.billing, month("2026-10"));
    assert_eq!(a.lines, b.lines);
    assert_ne!(a.digest, b.digest);
}

#[test]
fn month_parsing_rejects_malformed_text() {
    for bad in [
        "2026-13", "2026-1", "26-10", "2026/10", "", "2026-00", "abcd-ef",
    ] {
        assert!(Month::parse(bad).is_none(), "{bad}");
    }
    assert_eq!(month("2026-02").to_string(), "2026-02");
}

/// Speech-to-Text at 2 cents a minute over its 5 000 included, cap 2 000 over.
fn metered_story(when: DateTime<Utc>) -> Story {
    let mut story = Story::new("UTC", when);
    story.run(
        Command::DefineService(events::metering::Service {
            code: stt(),
            name: "Speech-to-Text".into(),
            unit: "minute".into(),
            enabled: true,
            base_allowance: 5000,
            monthly_cap: Some(2000),
            requires: vec![],
        }),
        when,
    );
    story.run(
        Command::SetPrice {
            license_type: stt(),
            unit_price_minor: 2,
            currency: "EUR".into(),
            effective_from: at(2026, 1, 1, 0),
        },
        when,
    );
    story
}

fn stt() -> TypeCode {
    TypeCode::from("speech_to_text")
}

fn minutes(id: &str, quantity: u64, occurred_at: DateTime<Utc>) -> Command {
    Command::RecordUsage(vec![events::metering::NewUsageRecord {
        id: id.into(),
        service: stt(),
        quantity,
        user: None,
        queue: None,
        occurred_at,
    }])
}

#[test]
fn metered_lines_bill_the_units_over_the_base_allowance() {
    let mut story = metered_story(at(2026, 10, 1, 8));
    story.run(minutes("a", 4000, at(2026, 10, 2, 9)), at(2026, 10, 2, 9));
    story.run(minutes("b", 1500, at(2026, 10, 3, 9)), at(2026, 10, 3, 9));
    let october = invoice(&story.billing, month("2026-10"));
    assert_eq!(october.metered.len(), 1);
    let line = &october.metered[0];
    assert_eq!(
        (line.used, line.base_allowance, line.billable_units),
        (5500, 5000, 500)
    );
    assert_eq!(line.unit_price_minor, Some(2));
    assert_eq!(line.amount_minor, 1000);
    assert_eq!(october.total_minor, 1000);
}

#[test]
fn a_metered_month_names_the_event_that_reached_the_cap_and_bills_no_more_than_the_cap() {
    let mut story = metered_story(at(2026, 10, 1, 8));
    story.run(minutes("a", 6900, at(2026, 10, 2, 9)), at(2026, 10, 2, 9));
    story.run(minutes("b", 500, at(2026, 10, 3, 9)), at(2026, 10, 3, 9));
    let reached_at = story.seq;
    story.run(minutes("c", 50, at(2026, 10, 4, 9)), at(2026, 10, 4, 9));
    let figures = story.billing.metered(month("2026-10"));
    let stt_month = &figures[&stt()];
    assert_eq!(stt_month.used, 7000);
    assert_eq!(stt_month.cap_reached_seq, Some(reached_at));
    assert_eq!(stt_month.cap_reached_record.as_deref(), Some("b"));
    let october = invoice(&story.billing, month("2026-10"));
    assert_eq!(october.metered[0].billable_units, 2000);
    assert_eq!(october.metered[0].amount_minor, 4000);
}

#[test]
fn a_late_record_changes_the_month_it_occurred_in_and_replay_gives_the_same_bytes() {
    let mut story = metered_story(at(2026, 10, 1, 8));
    story.run(minutes("a", 5100, at(2026, 10, 30, 9)), at(2026, 10, 30, 9));
    let before = invoice(&story.billing, month("2026-10"));
    // Recorded on 2 November, occurred on 31 October.
    story.run(
        minutes("late", 100, at(2026, 10, 31, 23)),
        at(2026, 11, 2, 9),
    );
    let october = invoice(&story.billing, month("2026-10"));
    assert_eq!(october.metered[0].used, 5200);
    assert_eq!(
        october.through_seq, story.seq,
        "October now includes the late event"
    );
    assert_ne!(before.digest, october.digest);
    assert!(
        invoice(&story.billing, month("2026-11")).metered.is_empty(),
        "November has no consumption of its own"
    );
    let replayed = projections::invoice_bytes(&invoice(&story.replayed(), month("2026-10")));
    assert_eq!(projections::invoice_bytes(&october), replayed);
    assert_eq!(story.replayed(), story.billing);
}

#[test]
fn an_invoice_without_metered_services_keeps_its_bytes() {
    let mut story = Story::new("UTC", at(2026, 10, 1, 8));
    story.provision("phone_system", 2, at(2026, 10, 3, 9));
    let bytes = projections::invoice_bytes(&invoice(&story.billing, month("2026-10")));
    let text = String::from_utf8(bytes).expect("utf-8");
    assert!(!text.contains("metered"), "{text}");
}
