//! Catalogue rules: defining or changing a licence type without breaking the catalogue or any
//! current assignment.

use super::common::{check_name, feature_has_no_units, invalid, one, violations};
use super::{CATALOGUE_REFERENCES_MAX, FEATURES_PER_TENANT_MAX};
use crate::catalogue::{excludes, Feature, Kind, LicenseType};
use crate::event::Event;
use crate::ids::TypeCode;
use crate::rejection::{Rejection, Rule, Violation};
use crate::state::{License, Tenant};
use std::collections::BTreeSet;

/// Define or change a licence type. Every referenced code must exist (or be the type itself);
/// a base attaches to nothing, an add-on to at least one base; `requires_any` must not form a
/// cycle; and the change must not invalidate any current assignment, each of which is listed.
pub(super) fn define_type(
    state: &Tenant,
    definition: &LicenseType,
) -> Result<Vec<Event>, Rejection> {
    let lists = [
        &definition.attaches_to,
        &definition.requires_any,
        &definition.excludes,
    ];
    if lists.iter().any(|l| l.len() > CATALOGUE_REFERENCES_MAX) {
        return Err(invalid(format!(
            "attaches_to, requires_any and excludes list at most {CATALOGUE_REFERENCES_MAX} codes each"
        )));
    }
    let code = &definition.code;
    if state.features.contains_key(code) {
        return Err(one(kind_change(code, "a feature", "a licence type")));
    }
    if state.services.contains_key(code) {
        return Err(one(kind_change(
            code,
            "a metered service",
            "a licence type",
        )));
    }
    for reference in lists.iter().flat_map(|l| l.iter()) {
        if let Some(feature) = state.features.get(reference) {
            return Err(one(feature_has_no_units(feature)));
        }
        if reference != code && !state.catalogue.contains_key(reference) {
            return Err(Rejection::UnknownLicenseType(reference.clone()));
        }
    }
    let mut found = Vec::new();
    let rule = |rule: Rule, message: String| Violation::new(rule, message).of_type(code);
    match definition.kind {
        Kind::Base if !definition.attaches_to.is_empty() => found.push(rule(
            Rule::BaseCannotAttach,
            format!("{code} is a base type and cannot attach to other licences"),
        )),
        Kind::Addon if definition.attaches_to.is_empty() => found.push(rule(
            Rule::AddonAttachesToNothing,
            format!("add-on {code} must attach to at least one base type"),
        )),
        _ => {}
    }
    for target in &definition.attaches_to {
        let is_base = state
            .catalogue
            .get(target)
            .is_some_and(|t| t.kind == Kind::Base);
        if !is_base {
            found.push(rule(
                Rule::AttachesToNonBase,
                format!("{code} can only attach to base types, and {target} is not one"),
            ));
        }
    }
    let mut catalogue = state.catalogue.clone();
    catalogue.insert(code.clone(), definition.clone());
    if let Some(cycle) = requires_cycle(&catalogue, code) {
        found.push(rule(
            Rule::RequiresCycle,
            format!("requires_any forms a cycle: {}", cycle.join(" → ")),
        ));
    }
    let in_use: Vec<&License> = state
        .licenses
        .values()
        .filter(|l| &l.license_type == code && !l.terminated)
        .collect();
    if let Some(old) = state.catalogue.get(code) {
        if old.kind != definition.kind && !in_use.is_empty() {
            found.push(rule(
                Rule::KindChangeInUse,
                format!(
                    "{code} cannot change between base and add-on while {} licences of it exist",
                    in_use.len()
                ),
            ));
        }
    }
    found.extend(invalidated_assignments(
        state, &catalogue, definition, &in_use,
    ));
    violations(found)?;
    Ok(vec![Event::LicenseTypeDefined {
        definition: definition.clone(),
    }])
}

/// Define or change a feature. Its code must not be a licence type's (a code never changes
/// between the two kinds), its name follows the rules of names, and a tenant defines at most
/// [`FEATURES_PER_TENANT_MAX`] features.
pub(super) fn define_feature(
    state: &Tenant,
    definition: &Feature,
) -> Result<Vec<Event>, Rejection> {
    check_name(&definition.name)?;
    let code = &definition.code;
    if state.catalogue.contains_key(code) {
        return Err(one(kind_change(code, "a licence type", "a feature")));
    }
    if state.services.contains_key(code) {
        return Err(one(kind_change(code, "a metered service", "a feature")));
    }
    if !state.features.contains_key(code) && state.features.len() >= FEATURES_PER_TENANT_MAX {
        return Err(invalid(format!(
            "a tenant defines at most {FEATURES_PER_TENANT_MAX} features"
        )));
    }
    Ok(vec![Event::FeatureDefined {
        definition: definition.clone(),
    }])
}

pub(super) fn kind_change(code: &TypeCode, is: &str, asked: &str) -> Violation {
    Violation::new(
        Rule::CatalogueKindChange,
        format!("{code} is {is} and cannot become {asked}"),
    )
    .of_type(code)
}

/// A cycle through `start` in `requires_any`, as the codes along it.
fn requires_cycle(
    catalogue: &crate::catalogue::Catalogue,
    start: &TypeCode,
) -> Option<Vec<String>> {
    fn walk(
        catalogue: &crate::catalogue::Catalogue,
        start: &TypeCode,
        at: &TypeCode,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<TypeCode>,
    ) -> bool {
        let Some(t) = catalogue.get(at) else {
            return false;
        };
        for next in &t.requires_any {
            path.push(next.to_string());
            if next == start
                || (seen.insert(next.clone()) && walk(catalogue, start, next, path, seen))
            {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    walk(catalogue, start, start, &mut path, &mut seen).then_some(path)
}

/// Current assignments the new definition would break, one violation each.
fn invalidated_assignments(
    state: &Tenant,
    catalogue: &crate::catalogue::Catalogue,
    definition: &LicenseType,
    in_use: &[&License],
) -> Vec<Violation> {
    let code = &definition.code;
    let mut found = Vec::new();
    let broken =
        |message: String| Violation::new(Rule::AssignmentInvalidated, message).of_type(code);
    for license in in_use {
        let base = license.base.and_then(|b| state.licenses.get(&b));
        if let Some(base) = base {
            if !definition.attaches_to.contains(&base.license_type) {
                found.push(broken(format!(
                    "add-on {} is attached to {} licence {}, which {code} could no longer attach to",
                    license.id, base.license_type, base.id
                )));
            }
        }
        let holder = license.user.or_else(|| base.and_then(|b| b.user));
        let Some(user) = holder else { continue };
        let holdings = state.holdings(user);
        if !definition.requires_any.is_empty()
            && !definition.requires_any.iter().any(|r| holdings.contains(r))
        {
            found.push(broken(format!(
                "user {user} holds {code} licence {} without any of the types it would require",
                license.id
            )));
        }
        for other in &holdings {
            if other != code && excludes(catalogue, code, other) {
                found.push(broken(format!(
                    "user {user} holds {code} licence {} together with {other}, which it would exclude",
                    license.id
                )));
            }
        }
    }
    found
}
