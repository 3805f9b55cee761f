//! Data generation for benchmarks: a realistic tenant mix as commands, and churn on it.
//! Deterministic for a seed, so two runs measure the same work. [`bench`] is the bench itself
//! (run by the `bench` binary: `cargo run --release -p tools --bin bench`), with the load
//! driver ([`load`]) and the PostgreSQL reference ([`postgres`]) it measures with; [`crash`]
//! holds the crash trials of the real binary (run by `crash-trials` and by
//! `tests/it/crash.rs`). This crate depends on `ledger`, never the reverse: the server carries
//! none of it.

pub mod bench;
pub mod crash;

use events::{Command, GroupId, NewUser, Restriction, TenantId, TypeCode, UserId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use uuid::Uuid;

pub mod load;
pub mod postgres;

/// The shape of one generated tenant.
#[derive(Clone, Debug)]
pub struct TenantShape {
    pub tenant: TenantId,
    pub users: usize,
    pub licenses: u32,
    /// Levels of groups under (and including) the root group.
    pub depth: usize,
    /// Children per group.
    pub fan_out: usize,
}

/// A tenant laid out: the commands that create it and the users it will hold.
#[derive(Clone, Debug)]
pub struct Layout {
    pub tenant: TenantId,
    pub setup: Vec<Command>,
    pub users: Vec<UserId>,
    pub groups: Vec<GroupId>,
}

fn random_uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
}

/// A realistic mix: `large` tenants with deep trees and many users, `small` ones with a few.
pub fn tenant_mix(seed: u64, large: usize, small: usize, large_users: usize) -> Vec<TenantShape> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shapes = Vec::new();
    for _ in 0..large {
        shapes.push(TenantShape {
            tenant: TenantId(random_uuid(&mut rng)),
            users: large_users,
            licenses: (large_users + large_users / 10) as u32,
            depth: 4,
            fan_out: 4,
        });
    }
    for _ in 0..small {
        let users = rng.gen_range(5..60);
        shapes.push(TenantShape {
            tenant: TenantId(random_uuid(&mut rng)),
            users,
            licenses: users as u32 + 5,
            depth: 2,
            fan_out: 2,
        });
    }
    shapes
}

/// The commands that create a tenant of `shape`: catalogue, licences (phone_system and
/// call_recording), a group tree with generous restrictions, and users spread over leaves.
pub fn layout(shape: &TenantShape, seed: u64) -> Layout {
    let provisions = [
        (TypeCode::from("phone_system"), shape.licenses),
        (TypeCode::from("call_recording"), shape.licenses),
    ];
    layout_provisioned(shape, seed, &provisions)
}

/// Like [`layout`], provisioning `provisions` (a type and its quantity each) instead: in
/// commands of at most `PROVISION_QUANTITY_MAX`, the types taking turns.
fn layout_provisioned(shape: &TenantShape, seed: u64, provisions: &[(TypeCode, u32)]) -> Layout {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut setup = vec![Command::CreateTenant {
        name: format!("tenant-{}", shape.tenant),
        billing_timezone: "Europe/Prague".into(),
        currency: "EUR".into(),
    }];
    let mut remaining: Vec<(TypeCode, u32)> = provisions.to_vec();
    while remaining.iter().any(|(_, left)| *left > 0) {
        for (code, left) in remaining.iter_mut().filter(|(_, left)| *left > 0) {
            let quantity = (*left).min(events::decide::PROVISION_QUANTITY_MAX);
            setup.push(Command::ProvisionLicenses {
                license_type: code.clone(),
                quantity,
            });
            *left -= quantity;
        }
    }
    let mut groups = Vec::new();
    let mut level = vec![None];
    for depth in 0..shape.depth {
        let mut next = Vec::new();
        for parent in &level {
            let children = if depth == 0 { 1 } else { shape.fan_out };
            for index in 0..children {
                let group = GroupId(random_uuid(&mut rng));
                setup.push(Command::CreateGroup {
                    group,
                    name: format!("group {depth}.{index}"),
                    parent: *parent,
                    contact_email: None,
                });
                let mut limits = BTreeMap::new();
                limits.insert(TypeCode::from("phone_system"), u64::from(shape.licenses));
                setup.push(Command::SetRestriction {
                    group,
                    restriction: Restriction {
                        enabled: true,
                        limits,
                        valid_from: None,
                        valid_until: None,
                        reminder: None,
                    },
                });
                groups.push(group);
                next.push(Some(group));
            }
        }
        level = next;
    }
    let leaves: Vec<GroupId> = level.into_iter().flatten().collect();
    let users: Vec<UserId> = (0..shape.users)
        .map(|_| UserId(random_uuid(&mut rng)))
        .collect();
    for chunk in users.chunks(events::decide::USERS_PER_BATCH_MAX) {
        let batch = chunk
            .iter()
            .enumerate()
            .map(|(index, user)| NewUser {
                user: *user,
                name: format!("user {user}"),
                group: leaves[index % leaves.len()],
                extension: None,
                number: None,
            })
            .collect();
        setup.push(Command::CreateUsers(batch));
    }
    Layout {
        tenant: shape.tenant,
        setup,
        users,
        groups,
    }
}

/// Churn for one tenant: each user alternately takes a phone_system licence (with call
/// recording one time in four) and gives it back.
pub struct Churn {
    rng: StdRng,
    users: Vec<UserId>,
    holding: Vec<bool>,
}

/// One churn step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Take { user: UserId, addons: Vec<TypeCode> },
    GiveBack { user: UserId },
}

impl Churn {
    /// Churn over `users`, deterministic for `seed`.
    pub fn new(users: Vec<UserId>, seed: u64) -> Churn {
        let holding = vec![false; users.len()];
        Churn {
            rng: StdRng::seed_from_u64(seed),
            users,
            holding,
        }
    }

    /// The next step for a random user.
    pub fn next_step(&mut self) -> Step {
        let index = self.rng.gen_range(0..self.users.len());
        let user = self.users[index];
        self.holding[index] = !self.holding[index];
        if self.holding[index] {
            let addons = if self.rng.gen_ratio(1, 4) {
                vec![TypeCode::from("call_recording")]
            } else {
                vec![]
            };
            Step::Take { user, addons }
        } else {
            Step::GiveBack { user }
        }
    }
}

/// What one user of the memory tenant holds: base types, each with the add-ons attached to it.
type Bundle = &'static [(&'static str, &'static [&'static str])];

/// The bundles users of the memory tenant take in turn: a desk worker with a phone and a
/// contact-centre seat (10 licences), a light user with a softphone (8); 9 a user on average.
const MEMORY_BUNDLES: [Bundle; 2] = [
    &[
        (
            "phone_system",
            &[
                "call_recording",
                "device_ip_phone",
                "device_desktop_app",
                "team_chat",
                "license_number",
            ],
        ),
        ("voice", &["outbound"]),
        ("cc_agent", &[]),
        ("call_group", &[]),
    ],
    &[
        ("phone_system", &["device_mobile_app", "device_web_rtc"]),
        ("voice", &["license_number", "call_recording"]),
        ("developer", &[]),
        ("auto_attendant", &[]),
    ],
];

/// Percentage of the memory tenant's licences handed out; the rest stay free.
const MEMORY_ASSIGNED_PERCENT: u64 = 90;

/// One large tenant for the memory figure, and the assignments that fill it.
#[derive(Clone, Debug)]
pub struct MemoryLayout {
    /// The tenant, its group tree, its `licenses` licences (of every type the bundles name)
    /// and its users.
    pub layout: Layout,
    /// One `AssignByType` per base licence a user takes, with its add-ons.
    pub assignments: Vec<Command>,
    /// Licences the assignments hand out (bases and add-ons).
    pub assigned: u64,
}

/// A tenant of `users` users and `licenses` licences, most of them assigned: users take the
/// bundles of [`MEMORY_BUNDLES`] in turn until 90 % of the licences are handed out (or every
/// user has one); the rest stay free, spread over the same types. Deterministic for `seed`.
pub fn memory_layout(users: usize, licenses: u32, seed: u64) -> MemoryLayout {
    let shape = TenantShape {
        licenses,
        ..tenant_mix(seed, 1, 0, users)[0].clone()
    };
    let layout_seed = seed.wrapping_add(1);
    // The users' ids come from the layout's seed alone, whatever is provisioned: lay them out
    // first, then hand out bundles and provision what those take.
    let people = layout_provisioned(&shape, layout_seed, &[]).users;
    let budget = u64::from(licenses) * MEMORY_ASSIGNED_PERCENT / 100;
    let mut needed: BTreeMap<TypeCode, u64> = BTreeMap::new();
    let mut assignments = Vec::new();
    let mut assigned = 0u64;
    for (index, user) in people.iter().enumerate() {
        let bundle = MEMORY_BUNDLES[index % MEMORY_BUNDLES.len()];
        let size: u64 = bundle
            .iter()
            .map(|(_, addons)| 1 + addons.len() as u64)
            .sum();
        if assigned + size > budget {
            break;
        }
        assigned += size;
        for (base, addons) in bundle {
            *needed.entry(TypeCode::from(*base)).or_insert(0) += 1;
            for addon in *addons {
                *needed.entry(TypeCode::from(*addon)).or_insert(0) += 1;
            }
            assignments.push(Command::AssignByType {
                user: *user,
                license_type: TypeCode::from(*base),
                addons: addons.iter().map(|a| TypeCode::from(*a)).collect(),
                group: None,
            });
        }
    }
    let provisions = memory_provisions(&needed, assigned, u64::from(licenses));
    MemoryLayout {
        layout: layout_provisioned(&shape, layout_seed, &provisions),
        assignments,
        assigned,
    }
}

/// Quantities per type: what the assignments take, plus the free licences spread over the
/// types in the same proportions (the rounding remainder, or all of them when nothing is
/// assigned, as phone_system). They add up to `total`.
fn memory_provisions(
    needed: &BTreeMap<TypeCode, u64>,
    assigned: u64,
    total: u64,
) -> Vec<(TypeCode, u32)> {
    let free = total - assigned;
    let mut quantities: BTreeMap<TypeCode, u64> = needed
        .iter()
        .map(|(code, n)| (code.clone(), n + free * n / assigned.max(1)))
        .collect();
    let spread: u64 = quantities.values().sum();
    *quantities
        .entry(TypeCode::from("phone_system"))
        .or_insert(0) += total - spread;
    quantities
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(code, n)| (code, u32::try_from(n).unwrap_or(u32::MAX)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provisioned(layout: &Layout) -> u64 {
        layout
            .setup
            .iter()
            .map(|command| match command {
                Command::ProvisionLicenses { quantity, .. } => u64::from(*quantity),
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn memory_layout_provisions_exactly_the_licences_asked_for_and_assigns_most() {
        for (users, licenses) in [(1_000, 10_000), (50, 10_000), (1_000, 7), (10, 0)] {
            let memory = memory_layout(users, licenses, 3);
            assert_eq!(provisioned(&memory.layout), u64::from(licenses));
            assert_eq!(memory.layout.users.len(), users);
            assert!(memory.assigned <= u64::from(licenses) * 9 / 10);
        }
        let memory = memory_layout(1_000, 10_000, 3);
        assert!(memory.assigned >= 8_900, "{} assigned", memory.assigned);
    }

    #[test]
    fn layout_provisions_both_types_in_commands_the_decider_accepts() {
        let shape = TenantShape {
            licenses: 25_000,
            ..tenant_mix(1, 1, 0, 10)[0].clone()
        };
        let plan = layout(&shape, 2);
        assert_eq!(provisioned(&plan), 50_000);
        let quantities: Vec<u32> = plan
            .setup
            .iter()
            .filter_map(|command| match command {
                Command::ProvisionLicenses { quantity, .. } => Some(*quantity),
                _ => None,
            })
            .collect();
        assert!(quantities
            .iter()
            .all(|q| *q <= events::decide::PROVISION_QUANTITY_MAX));
    }
}
