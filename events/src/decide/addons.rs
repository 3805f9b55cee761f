//! Add-on rules: attaching an add-on licence to a base licence and detaching it.

use super::common::{base_license, license, live_license, one, violations};
use super::licenses::taking_violations;
use crate::catalogue::{excludes, Kind};
use crate::event::Event;
use crate::ids::{LicenseId, TypeCode};
use crate::rejection::{Rejection, Rule, Violation};
use crate::state::{License, Tenant};

pub(super) fn attach(
    state: &Tenant,
    base_id: LicenseId,
    addon_id: LicenseId,
) -> Result<Vec<Event>, Rejection> {
    let base = base_license(state, base_id)?;
    let addon = live_license(state, addon_id)?;
    if addon.kind != Kind::Addon {
        return Err(one(Violation::new(
            Rule::NotAnAddon,
            format!(
                "licence {addon_id} is a {} base licence, not an add-on",
                addon.license_type
            ),
        )
        .of_type(&addon.license_type)));
    }
    if addon.base.is_some() {
        return Err(Rejection::LicenseAlreadyAssigned {
            license: addon_id,
            user: None,
            base: addon.base,
        });
    }
    violations(attach_violations(state, base, &addon.license_type))?;
    Ok(vec![Event::AddonAttached {
        addon: addon_id,
        addon_type: addon.license_type.clone(),
        base: base_id,
    }])
}

/// Rules for attaching an add-on of `addon_type` to `base`: the catalogue allows it, the base
/// has none of that type yet, and the holder (if any) may take it.
fn attach_violations(state: &Tenant, base: &License, addon_type: &TypeCode) -> Vec<Violation> {
    let mut found = Vec::new();
    let allowed = state
        .catalogue
        .get(addon_type)
        .is_some_and(|d| d.attaches_to.contains(&base.license_type));
    if !allowed {
        found.push(
            Violation::new(
                Rule::AddonCannotAttach,
                format!(
                    "{addon_type} cannot be attached to a {} licence",
                    base.license_type
                ),
            )
            .of_type(addon_type),
        );
    }
    let existing = state.license_with_addon_types(base);
    if existing[1..].contains(addon_type) {
        found.push(
            Violation::new(
                Rule::AddonTypeAlreadyAttached,
                format!("licence {} already carries a {addon_type} add-on", base.id),
            )
            .of_type(addon_type),
        );
    }
    let adding = std::slice::from_ref(addon_type);
    match base.user.and_then(|u| state.active_user(u)) {
        Some(holder) => {
            let counted = state.counting_group(base).unwrap_or(holder.group);
            found.extend(taking_violations(
                state, holder, adding, counted, None, false,
            ));
        }
        None => {
            for other in &existing {
                if excludes(&state.catalogue, addon_type, other) {
                    found.push(
                        Violation::new(
                            Rule::ExcludedType,
                            format!("{addon_type} cannot be held together with {other}"),
                        )
                        .of_type(addon_type),
                    );
                }
            }
        }
    }
    found
}

pub(super) fn detach(
    state: &Tenant,
    base_id: LicenseId,
    addon_id: LicenseId,
) -> Result<Vec<Event>, Rejection> {
    let base = license(state, base_id)?;
    let addon = license(state, addon_id)?;
    if addon.base != Some(base_id) {
        return Err(Rejection::AddonNotAttached {
            addon: addon_id,
            base: base_id,
        });
    }
    if let Some(holder) = base.user {
        super::licenses::keep_requirements(state, holder, addon_id, &[addon_id])?;
    }
    Ok(vec![Event::AddonDetached {
        addon: addon_id,
        addon_type: addon.license_type.clone(),
        base: base_id,
    }])
}
