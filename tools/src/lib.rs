//! Data generation for benchmarks: a realistic tenant mix as commands, and churn on it.
//! Deterministic for a seed, so two runs measure the same work. [`crash`] holds the crash
//! trials of the real binary (run by `crash-trials` and by `tests/it/crash.rs`).

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
    let mut rng = StdRng::seed_from_u64(seed);
    let mut setup = vec![Command::CreateTenant {
        name: format!("tenant-{}", shape.tenant),
        billing_timezone: "Europe/Prague".into(),
        currency: "EUR".into(),
    }];
    let mut remaining = shape.licenses;
    while remaining > 0 {
        let quantity = remaining.min(events::decide::PROVISION_QUANTITY_MAX);
        for code in ["phone_system", "call_recording"] {
            setup.push(Command::ProvisionLicenses {
                license_type: code.into(),
                quantity,
            });
        }
        remaining -= quantity;
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
