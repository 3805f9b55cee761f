//! Small checks every area shares: rejection builders, name and number formats, and lookups
//! that refuse what is missing.

use super::{EXTENSION_BYTES_MAX, NAME_BYTES_MAX};
use crate::catalogue::Kind;
use crate::ids::{GroupId, LicenseId, TypeCode, UserId};
use crate::rejection::{Rejection, Rule, Violation};
use crate::state::{License, Tenant, User};

pub(super) fn invalid(message: impl Into<String>) -> Rejection {
    Rejection::InvalidInput(message.into())
}

pub(super) fn one(violation: Violation) -> Rejection {
    Rejection::RuleViolations(vec![violation])
}

pub(super) fn violations(list: Vec<Violation>) -> Result<(), Rejection> {
    if list.is_empty() {
        Ok(())
    } else {
        Err(Rejection::RuleViolations(list))
    }
}

pub(super) fn check_name(name: &str) -> Result<(), Rejection> {
    if name.trim().is_empty() {
        return Err(invalid("name must not be empty"));
    }
    if name.len() > NAME_BYTES_MAX {
        return Err(invalid(format!(
            "name is longer than {NAME_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

pub(super) fn check_number(field: &str, value: &Option<String>) -> Result<(), Rejection> {
    let Some(value) = value else { return Ok(()) };
    let valid = !value.is_empty()
        && value.len() <= EXTENSION_BYTES_MAX
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'*' | b'#' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field} must be 1 to {EXTENSION_BYTES_MAX} characters of digits, letters, + * # -"
        )))
    }
}

/// The licence type `license_type` names. A feature's code is refused naming the feature
/// (422 `feature_has_no_units`): a feature cannot be provisioned, priced, limited, assigned,
/// attached or billed. Any other unknown code is bad input.
pub(super) fn known_type<'a>(
    state: &'a Tenant,
    license_type: &TypeCode,
) -> Result<&'a crate::catalogue::LicenseType, Rejection> {
    if let Some(definition) = state.catalogue.get(license_type) {
        return Ok(definition);
    }
    match state.features.get(license_type) {
        Some(feature) => Err(one(feature_has_no_units(feature))),
        None => Err(Rejection::UnknownLicenseType(license_type.clone())),
    }
}

/// The violation of using `feature` where a licence type is needed.
pub(super) fn feature_has_no_units(feature: &crate::catalogue::Feature) -> Violation {
    Violation::new(
        Rule::FeatureHasNoUnits,
        format!(
            "{} ({}) is a feature, not a licence type: it has no units and cannot be \
             provisioned, priced, limited, assigned, attached or billed",
            feature.code, feature.name
        ),
    )
    .of_type(&feature.code)
}

pub(super) fn license(state: &Tenant, id: LicenseId) -> Result<&License, Rejection> {
    state
        .licenses
        .get(&id)
        .ok_or(Rejection::LicenseNotFound(id))
}

pub(super) fn live_license(state: &Tenant, id: LicenseId) -> Result<&License, Rejection> {
    let l = license(state, id)?;
    if l.terminated {
        return Err(Rejection::LicenseTerminated(id));
    }
    Ok(l)
}

pub(super) fn base_license(state: &Tenant, id: LicenseId) -> Result<&License, Rejection> {
    let l = live_license(state, id)?;
    if l.kind != Kind::Base {
        return Err(one(Violation::new(
            Rule::NotABaseLicense,
            format!(
                "licence {id} is a {} add-on; attach it to a base licence instead",
                l.license_type
            ),
        )
        .of_type(&l.license_type)));
    }
    Ok(l)
}

pub(super) fn active_user(state: &Tenant, id: UserId) -> Result<&User, Rejection> {
    state.active_user(id).ok_or(Rejection::UserNotFound(id))
}

pub(super) fn group_exists(state: &Tenant, id: GroupId) -> Result<(), Rejection> {
    if state.groups.contains_key(&id) {
        Ok(())
    } else {
        Err(Rejection::GroupNotFound(id))
    }
}
