//! Users in several groups in the views: a licence counted against one of the user's other
//! groups is entitled only while that group's path is valid, and explain names that group;
//! the past index answers where a licence counted at every version.

use chrono::{DateTime, Duration, TimeZone, Utc};
use events::{Command, GroupId, LicenseId, NewUser, Restriction, TypeCode, UserId};
use projections::{entitlement, Entitlement};
use std::collections::BTreeMap;
use support::Session;
use uuid::Uuid;

mod support;

const HQ: GroupId = GroupId(Uuid::from_u128(0x3000_0001));
const SALES: GroupId = GroupId(Uuid::from_u128(0x3000_0002));
const SUPPORT: GroupId = GroupId(Uuid::from_u128(0x3000_0003));
const ALICE: UserId = UserId(Uuid::from_u128(0x2000_0001));

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 9, 0, 0).unwrap()
}

fn phone() -> TypeCode {
    TypeCode::from("phone_system")
}

/// The story's tenant.
type Fixture = Session;

impl Fixture {
    /// HQ → Sales and HQ → Support; Alice in Sales and also in Support; two phone_system
    /// licences.
    fn story() -> Fixture {
        let mut fixture = Session::new(0x7e7a_0555, now());
        for (group, name, parent) in [
            (HQ, "HQ", None),
            (SALES, "Sales", Some(HQ)),
            (SUPPORT, "Support", Some(HQ)),
        ] {
            fixture.run(Command::CreateGroup {
                group,
                name: name.into(),
                parent,
                contact_email: None,
            });
        }
        fixture.run(Command::CreateUser(NewUser {
            user: ALICE,
            name: "Alice".into(),
            group: SALES,
            extension: None,
            number: None,
        }));
        fixture.run(Command::AddUserToGroup {
            user: ALICE,
            group: SUPPORT,
        });
        fixture.run(Command::ProvisionLicenses {
            license_type: phone(),
            quantity: 2,
        });
        fixture
    }

    fn a_free_phone(&self) -> LicenseId {
        *self.tenant.free[&phone()]
            .iter()
            .next()
            .expect("a free phone_system licence")
    }

    fn expire(&mut self, group: GroupId) {
        self.run(Command::SetRestriction {
            group,
            restriction: Restriction {
                enabled: true,
                limits: BTreeMap::new(),
                valid_from: None,
                valid_until: Some(now() - Duration::days(1)),
                reminder: None,
            },
        });
    }

    fn phone_entitlement(&self) -> Entitlement {
        entitlement(&self.tenant, ALICE, &phone(), now()).expect("Alice exists")
    }
}

#[test]
fn a_licence_counted_in_another_group_is_entitled_only_while_that_groups_path_is_valid() {
    let mut fixture = Fixture::story();
    let licence = fixture.a_free_phone();
    fixture.run(Command::AssignLicense {
        license: licence,
        user: ALICE,
        group: Some(SUPPORT),
    });
    // Her own group's window is over; the licence counts against Support, which is fine.
    fixture.expire(SALES);
    let answer = fixture.phone_entitlement();
    assert!(answer.allowed, "{:?}", answer.checks);
    let held = &answer.checks[1];
    assert_eq!(held.rule, "holds_license");
    assert!(
        held.detail.contains("counted against group Support"),
        "{}",
        held.detail
    );
    // Support's window ends: now she is blocked, and explain names Support.
    fixture.expire(SUPPORT);
    let answer = fixture.phone_entitlement();
    assert!(!answer.allowed);
    let blocked = answer.blocked_by().expect("something blocks");
    assert_eq!(blocked.rule, "window_expired");
    assert_eq!(blocked.group.as_ref().map(|(id, _)| *id), Some(SUPPORT));
}

#[test]
fn a_licence_in_the_own_group_is_judged_by_the_own_groups_path() {
    let mut fixture = Fixture::story();
    let licence = fixture.a_free_phone();
    fixture.run(Command::AssignLicense {
        license: licence,
        user: ALICE,
        group: None,
    });
    fixture.expire(SUPPORT);
    assert!(fixture.phone_entitlement().allowed);
    fixture.expire(SALES);
    let answer = fixture.phone_entitlement();
    let blocked = answer.blocked_by().expect("something blocks");
    assert_eq!(blocked.group.as_ref().map(|(id, _)| *id), Some(SALES));
}

#[test]
fn the_past_index_knows_where_a_licence_counted_at_every_version() {
    let mut fixture = Fixture::story();
    let licence = fixture.a_free_phone();
    fixture.run(Command::AssignLicense {
        license: licence,
        user: ALICE,
        group: Some(SUPPORT),
    });
    let while_in_support = fixture.tenant.version;
    fixture.run(Command::RemoveUserFromGroup {
        user: ALICE,
        group: SUPPORT,
    });
    let live = &fixture.tenant;
    let then = fixture
        .past
        .tenant_at(live, while_in_support, Some(ALICE))
        .expect("indexed");
    assert_eq!(then.licenses[&licence].counted_in, Some(SUPPORT));
    assert!(then.users[&ALICE].other_groups.contains(&SUPPORT));
    assert_eq!(then.groups[&SUPPORT].used_of(&phone()), 1);
    assert_eq!(then.groups[&SALES].used_of(&phone()), 0);
    let after = fixture
        .past
        .tenant_at(live, live.version, Some(ALICE))
        .expect("indexed");
    assert_eq!(after.licenses[&licence].counted_in, None);
    assert_eq!(after.groups[&SUPPORT].used_of(&phone()), 0);
    assert_eq!(after.groups[&SALES].used_of(&phone()), 1);
}
