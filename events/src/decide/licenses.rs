//! Licence rules: provisioning, quantities, termination, assigning a base licence to a user
//! (by id or by type, with add-ons), and what a user must pass to take licences on.

use super::common::{
    active_user, base_license, invalid, known_type, live_license, one, violations,
};
use super::tenant::{check_tenant_total, TenantTotal};
use super::{ADDONS_PER_ASSIGNMENT_MAX, PROVISION_QUANTITY_MAX};
use crate::catalogue::{excludes, Kind};
use crate::command::Context;
use crate::event::Event;
use crate::ids::{GroupId, LicenseId, TypeCode, UserId};
use crate::rejection::{Rejection, Rule, Violation};
use crate::state::{License, Tenant, User};
use std::collections::{BTreeMap, BTreeSet};

/// Licence ids derived from the command id: the same command always yields the same ids.
pub fn derived_license_ids(ctx: &Context, count: u32) -> Vec<LicenseId> {
    (0..count)
        .map(|index| {
            let mut hasher = blake3::Hasher::new();
            hasher.update(ctx.command_id.as_uuid().as_bytes());
            hasher.update(&index.to_le_bytes());
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
            LicenseId(uuid::Builder::from_random_bytes(bytes).into_uuid())
        })
        .collect()
}

pub(super) fn provision(
    state: &Tenant,
    license_type: &TypeCode,
    quantity: u32,
    ctx: &Context,
) -> Result<Vec<Event>, Rejection> {
    known_type(state, license_type)?;
    if quantity == 0 || quantity > PROVISION_QUANTITY_MAX {
        return Err(invalid(format!(
            "quantity must be between 1 and {PROVISION_QUANTITY_MAX}"
        )));
    }
    check_tenant_total(
        TenantTotal::Licenses,
        state.licenses.len(),
        quantity as usize,
    )
    .map_err(|violation| one(violation.of_type(license_type)))?;
    Ok(vec![Event::LicensesProvisioned {
        license_type: license_type.clone(),
        ids: derived_license_ids(ctx, quantity),
    }])
}

pub(super) fn set_quantity(
    state: &Tenant,
    license_type: &TypeCode,
    quantity: u32,
    ctx: &Context,
) -> Result<Vec<Event>, Rejection> {
    known_type(state, license_type)?;
    let owned = state.owned.get(license_type).copied().unwrap_or(0);
    let wanted = u64::from(quantity);
    if wanted > owned {
        let step = wanted - owned;
        if step > u64::from(PROVISION_QUANTITY_MAX) {
            return Err(one(Violation::new(
                Rule::QuantityStepTooLarge,
                format!(
                    "raising {license_type} from {owned} to {wanted} adds more than {PROVISION_QUANTITY_MAX} licences at once"
                ),
            )
            .of_type(license_type)));
        }
        return provision(state, license_type, step as u32, ctx);
    }
    let surplus = (owned - wanted) as usize;
    if surplus == 0 {
        return Ok(vec![]);
    }
    // Newest free licences go first; a base licence carrying add-ons is not free to drop.
    let mut candidates: Vec<&License> = state
        .free
        .get(license_type)
        .into_iter()
        .flatten()
        .filter_map(|id| state.licenses.get(id))
        .filter(|l| l.addons.is_empty())
        .collect();
    if candidates.len() < surplus {
        let assigned = state.assigned_count(license_type);
        return Err(one(Violation::new(
            Rule::NotEnoughFreeLicenses,
            format!(
                "cannot lower {license_type} to {wanted}: {assigned} of {owned} are in use and only {} are free",
                candidates.len()
            ),
        )
        .of_type(license_type)
        .counts(owned, assigned)));
    }
    candidates.sort_by(|a, b| {
        b.provisioned_version
            .cmp(&a.provisioned_version)
            .then(b.id.cmp(&a.id))
    });
    Ok(candidates
        .into_iter()
        .take(surplus)
        .map(|l| Event::LicenseTerminated {
            license: l.id,
            license_type: l.license_type.clone(),
        })
        .collect())
}

pub(super) fn terminate(state: &Tenant, id: LicenseId) -> Result<Vec<Event>, Rejection> {
    let l = live_license(state, id)?;
    let holder_of_base = l
        .base
        .and_then(|b| state.licenses.get(&b))
        .and_then(|b| b.user);
    if l.user.is_some() || l.base.is_some() || !l.addons.is_empty() {
        return Err(Rejection::LicenseInUse {
            license: id,
            user: l.user.or(holder_of_base),
            base: l.base,
            addons: l.addons.iter().copied().collect(),
        });
    }
    Ok(vec![Event::LicenseTerminated {
        license: id,
        license_type: l.license_type.clone(),
    }])
}

/// Every rule a user must pass to take on licences of `adding` types, counted against
/// `counted` (the user's own group or one of their others): one base per type, exclusions,
/// requirements and every enabled limit on `counted`'s path to the root. Groups also on
/// `leaving_group`'s path are skipped: their usage does not change.
pub(super) fn taking_violations(
    state: &Tenant,
    user: &User,
    adding: &[TypeCode],
    counted: GroupId,
    leaving_group: Option<GroupId>,
    skip_holdings: bool,
) -> Vec<Violation> {
    let mut found = Vec::new();
    let holdings = if skip_holdings {
        vec![]
    } else {
        state.holdings(user.id)
    };
    for (index, t) in adding.iter().enumerate() {
        let is_base = state.catalogue.get(t).is_some_and(|d| d.kind == Kind::Base);
        if is_base && holdings.contains(t) {
            found.push(
                Violation::new(
                    Rule::OneBasePerType,
                    format!("user {} already holds a {t} licence", user.id),
                )
                .of_type(t),
            );
        }
        let earlier = adding[..index].iter();
        for other in holdings.iter().chain(earlier) {
            if other != t && excludes(&state.catalogue, t, other) {
                found.push(
                    Violation::new(
                        Rule::ExcludedType,
                        format!("{t} cannot be held together with {other}"),
                    )
                    .of_type(t),
                );
            }
        }
    }
    if !skip_holdings {
        found.extend(requirement_violations(state, &holdings, adding));
    }
    found.extend(limit_violations(state, counted, adding, leaving_group));
    found.extend(personal_limit_violations(state, user, adding));
    found
}

/// The user's personal limits that `adding` more licences would exceed
/// (`user_limit_reached`, naming the user, with the limit and what they hold).
fn personal_limit_violations(state: &Tenant, user: &User, adding: &[TypeCode]) -> Vec<Violation> {
    let Some(restriction) = &user.restriction else {
        return vec![];
    };
    let mut counts: BTreeMap<&TypeCode, u64> = BTreeMap::new();
    for t in adding {
        *counts.entry(t).or_insert(0) += 1;
    }
    let mut found = Vec::new();
    for (t, n) in counts {
        let Some(&limit) = restriction.limits.get(t) else {
            continue;
        };
        let used = state.held_count(user.id, t);
        if used + n > limit {
            found.push(
                Violation::new(
                    Rule::UserLimitReached,
                    format!(
                        "user {} ({}) may hold {limit} {t}, holds {used}",
                        user.name, user.id
                    ),
                )
                .of_user(user.id)
                .of_type(t)
                .counts(limit, used),
            );
        }
    }
    found
}

fn requirement_violations(
    state: &Tenant,
    holdings: &[TypeCode],
    adding: &[TypeCode],
) -> Vec<Violation> {
    let mut found = Vec::new();
    for t in adding {
        let Some(definition) = state.catalogue.get(t) else {
            continue;
        };
        if definition.requires_any.is_empty() {
            continue;
        }
        let satisfied = definition
            .requires_any
            .iter()
            .any(|r| holdings.contains(r) || adding.contains(r));
        if !satisfied {
            let names: Vec<&str> = definition.requires_any.iter().map(|r| r.as_str()).collect();
            found.push(
                Violation::new(
                    Rule::RequiresMissing,
                    format!("{t} requires one of: {}", names.join(", ")),
                )
                .of_type(t),
            );
        }
    }
    found
}

/// Enabled limits on `group`'s path that `adding` more licences would exceed.
pub(super) fn limit_violations(
    state: &Tenant,
    group: GroupId,
    adding: &[TypeCode],
    leaving_group: Option<GroupId>,
) -> Vec<Violation> {
    let mut counts: BTreeMap<&TypeCode, u64> = BTreeMap::new();
    for t in adding {
        *counts.entry(t).or_insert(0) += 1;
    }
    counted_limit_violations(state, group, &counts, leaving_group)
}

/// Like [`limit_violations`], with the number of licences added per type.
pub(super) fn counted_limit_violations(
    state: &Tenant,
    group: GroupId,
    counts: &BTreeMap<&TypeCode, u64>,
    leaving_group: Option<GroupId>,
) -> Vec<Violation> {
    let unchanged: BTreeSet<GroupId> = leaving_group
        .map(|g| state.path_to_root(g).into_iter().collect())
        .unwrap_or_default();
    let mut found = Vec::new();
    for id in state.path_to_root(group) {
        if unchanged.contains(&id) {
            continue;
        }
        let Some(g) = state.groups.get(&id) else {
            continue;
        };
        let Some(r) = g.enabled_restriction() else {
            continue;
        };
        for (t, n) in counts {
            let Some(&limit) = r.limits.get(*t) else {
                continue;
            };
            let used = g.used_of(t);
            if used + n > limit {
                found.push(
                    Violation::new(
                        Rule::GroupLimitReached,
                        format!(
                            "group {} ({}) allows {limit} {t}, {used} are used",
                            g.name, g.id
                        ),
                    )
                    .in_group(id)
                    .of_type(t)
                    .counts(limit, used),
                );
            }
        }
    }
    found
}

/// The group an assignment to `user` counts against: the one named, which must be one of
/// the user's groups (else `user_not_in_group`), or else the user's own group.
pub(super) fn counted_group(
    state: &Tenant,
    user: &User,
    named: Option<GroupId>,
) -> Result<GroupId, Rejection> {
    let Some(group) = named else {
        return Ok(user.group);
    };
    if !state.groups.contains_key(&group) {
        return Err(Rejection::GroupNotFound(group));
    }
    if user.belongs_to(group) {
        return Ok(group);
    }
    Err(one(Violation::new(
        Rule::UserNotInGroup,
        format!(
            "user {} ({}) does not belong to group {group}: add them to it first",
            user.name, user.id
        ),
    )
    .in_group(group)
    .of_user(user.id)))
}

/// The event that makes `license` count against `counted` once `user` takes it, when that
/// is not the user's own group: it precedes the assignment, so no state between the two
/// counts the licence anywhere else.
fn counted_in_event(user: &User, license: LicenseId, counted: GroupId) -> Option<Event> {
    (counted != user.group).then_some(Event::LicenseCountedIn {
        license,
        user: user.id,
        group: counted,
    })
}

pub(super) fn assign(
    state: &Tenant,
    id: LicenseId,
    user: UserId,
    group: Option<GroupId>,
) -> Result<Vec<Event>, Rejection> {
    let l = base_license(state, id)?;
    if l.user.is_some() {
        return Err(Rejection::LicenseAlreadyAssigned {
            license: id,
            user: l.user,
            base: None,
        });
    }
    let u = active_user(state, user)?;
    let counted = counted_group(state, u, group)?;
    let adding = state.license_with_addon_types(l);
    violations(taking_violations(state, u, &adding, counted, None, false))?;
    let mut events: Vec<Event> = counted_in_event(u, id, counted).into_iter().collect();
    events.push(Event::LicenseAssigned {
        license: id,
        license_type: l.license_type.clone(),
        user,
    });
    Ok(events)
}

/// Refuse taking `removed` (licence ids: a base with its add-ons, or one add-on) away from
/// `user` when a licence the user keeps requires a type only those provided: the dependants
/// are named, and the caller removes them first. A requirement already unmet before (after a
/// catalogue edit) does not block.
pub(super) fn keep_requirements(
    state: &Tenant,
    user: UserId,
    license: LicenseId,
    removed: &[LicenseId],
) -> Result<(), Rejection> {
    let Some(u) = state.users.get(&user) else {
        return Ok(());
    };
    let held: Vec<(LicenseId, &TypeCode)> = u
        .licenses
        .iter()
        .filter_map(|id| state.licenses.get(id))
        .flat_map(|base| {
            std::iter::once(base)
                .chain(base.addons.iter().filter_map(|a| state.licenses.get(a)))
                .map(|l| (l.id, &l.license_type))
        })
        .collect();
    let kept: Vec<(LicenseId, &TypeCode)> = held
        .iter()
        .copied()
        .filter(|(id, _)| !removed.contains(id))
        .collect();
    let has = |set: &[(LicenseId, &TypeCode)], t: &TypeCode| set.iter().any(|(_, h)| *h == t);
    let dependants: Vec<(LicenseId, TypeCode)> = kept
        .iter()
        .filter(|(_, t)| {
            state.catalogue.get(*t).is_some_and(|d| {
                !d.requires_any.is_empty()
                    && d.requires_any.iter().any(|r| has(&held, r))
                    && !d.requires_any.iter().any(|r| has(&kept, r))
            })
        })
        .map(|(id, t)| (*id, (*t).clone()))
        .collect();
    if dependants.is_empty() {
        Ok(())
    } else {
        Err(Rejection::RequiredByHeld {
            license,
            user,
            dependants,
        })
    }
}

/// A base licence and its attached add-ons: what leaves a user with it.
fn with_addons(l: &License) -> Vec<LicenseId> {
    std::iter::once(l.id)
        .chain(l.addons.iter().copied())
        .collect()
}

pub(super) fn unassign(state: &Tenant, id: LicenseId) -> Result<Vec<Event>, Rejection> {
    let l = base_license(state, id)?;
    let Some(user) = l.user else {
        return Err(Rejection::LicenseNotAssigned(id));
    };
    keep_requirements(state, user, id, &with_addons(l))?;
    Ok(vec![Event::LicenseUnassigned {
        license: id,
        license_type: l.license_type.clone(),
        user,
    }])
}

pub(super) fn reassign(
    state: &Tenant,
    id: LicenseId,
    to: UserId,
    group: Option<GroupId>,
) -> Result<Vec<Event>, Rejection> {
    let l = base_license(state, id)?;
    let Some(from) = l.user else {
        return Err(Rejection::LicenseNotAssigned(id));
    };
    let target = active_user(state, to)?;
    if from == to {
        return Err(Rejection::LicenseAlreadyAssigned {
            license: id,
            user: Some(to),
            base: None,
        });
    }
    let counted = counted_group(state, target, group)?;
    keep_requirements(state, from, id, &with_addons(l))?;
    let leaving = state.counting_group(l);
    let adding = state.license_with_addon_types(l);
    violations(taking_violations(
        state, target, &adding, counted, leaving, false,
    ))?;
    let mut events: Vec<Event> = counted_in_event(target, id, counted).into_iter().collect();
    events.push(Event::LicenseReassigned {
        license: id,
        license_type: l.license_type.clone(),
        from,
        to,
    });
    Ok(events)
}

pub(super) fn assign_by_type(
    state: &Tenant,
    user: UserId,
    license_type: &TypeCode,
    addons: &[TypeCode],
    group: Option<GroupId>,
) -> Result<Vec<Event>, Rejection> {
    let definition = known_type(state, license_type)?;
    if addons.len() > ADDONS_PER_ASSIGNMENT_MAX {
        return Err(invalid(format!(
            "at most {ADDONS_PER_ASSIGNMENT_MAX} add-ons per assignment"
        )));
    }
    for code in addons {
        known_type(state, code)?;
    }
    let u = active_user(state, user)?;
    let counted = counted_group(state, u, group)?;
    if definition.kind != Kind::Base {
        return Err(one(Violation::new(
            Rule::NotABaseLicense,
            format!("{license_type} is an add-on type; assign a base type"),
        )
        .of_type(license_type)));
    }
    let mut found = Vec::new();
    let base = first_free(state, license_type, &BTreeSet::new(), &mut found);
    let mut taken = BTreeSet::new();
    let mut picked_addons = Vec::new();
    for (index, code) in addons.iter().enumerate() {
        let d = &state.catalogue[code];
        if d.kind != Kind::Addon {
            found.push(
                Violation::new(
                    Rule::NotAnAddon,
                    format!("{code} is a base type, not an add-on"),
                )
                .of_type(code),
            );
            continue;
        }
        if !d.attaches_to.contains(license_type) {
            found.push(
                Violation::new(
                    Rule::AddonCannotAttach,
                    format!("{code} cannot be attached to a {license_type} licence"),
                )
                .of_type(code),
            );
        }
        if addons[..index].contains(code) {
            found.push(
                Violation::new(
                    Rule::AddonTypeAlreadyAttached,
                    format!("{code} is requested twice"),
                )
                .of_type(code),
            );
            continue;
        }
        if let Some(id) = first_free(state, code, &taken, &mut found) {
            taken.insert(id);
            picked_addons.push((id, code.clone()));
        }
    }
    let mut adding = vec![license_type.clone()];
    adding.extend(addons.iter().cloned());
    found.extend(taking_violations(state, u, &adding, counted, None, false));
    violations(found)?;
    let Some(base) = base else {
        unreachable!("a missing base licence is reported as a violation above");
    };
    let mut events: Vec<Event> = counted_in_event(u, base, counted).into_iter().collect();
    events.push(Event::LicenseAssigned {
        license: base,
        license_type: license_type.clone(),
        user,
    });
    events.extend(
        picked_addons
            .into_iter()
            .map(|(addon, addon_type)| Event::AddonAttached {
                addon,
                addon_type,
                base,
            }),
    );
    Ok(events)
}

/// The first free licence of a type (without add-ons, not already taken), or a violation.
fn first_free(
    state: &Tenant,
    license_type: &TypeCode,
    taken: &BTreeSet<LicenseId>,
    found: &mut Vec<Violation>,
) -> Option<LicenseId> {
    let pick = state
        .free
        .get(license_type)
        .into_iter()
        .flatten()
        .find(|id| {
            !taken.contains(id) && state.licenses.get(id).is_some_and(|l| l.addons.is_empty())
        })
        .copied();
    if pick.is_none() {
        let owned = state.owned.get(license_type).copied().unwrap_or(0);
        found.push(
            Violation::new(
                Rule::NoFreeLicense,
                format!("no free {license_type} licence: all {owned} owned are in use"),
            )
            .of_type(license_type)
            .counts(owned, state.assigned_count(license_type)),
        );
    }
    pick
}
