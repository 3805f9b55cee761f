//! Import rules: a bulk-import file judged row by row, every bad row reported.

use super::common::{check_number, invalid, known_type};
use super::scope::user_in_scope;
use super::{decide, IMPORT_BASE_TYPE, IMPORT_ROWS_MAX};
use crate::catalogue::Kind;
use crate::command::{Command, Context, ImportRow};
use crate::event::Event;
use crate::ids::{GroupId, TypeCode, UserId};
use crate::rejection::{Rejection, RowError};
use crate::state::{evolve, Tenant};
use std::collections::BTreeMap;

/// Apply an import: each row gives its user a `phone_system` licence with the row's extension
/// and number, and attaches the row's add-ons. Rows are judged in order against the state the
/// earlier good rows leave, so conflicts inside the file (the same extension twice, more rows
/// than free licences, a quota reached by the file as a whole) are found too. Any bad row: every
/// bad row is reported and nothing is applied. With `within` (a key scoped to that group),
/// only users of its subtree are found, by id or by name.
pub(super) fn import(
    state: &Tenant,
    rows: &[ImportRow],
    ctx: &Context,
    within: Option<GroupId>,
) -> Result<Vec<Event>, Rejection> {
    if rows.is_empty() || rows.len() > IMPORT_ROWS_MAX {
        return Err(invalid(format!(
            "an import holds 1 to {IMPORT_ROWS_MAX} rows"
        )));
    }
    let base_type = TypeCode::from(IMPORT_BASE_TYPE);
    known_type(state, &base_type)?;
    let mut by_name: BTreeMap<String, Vec<UserId>> = BTreeMap::new();
    let visible = |user: UserId| within.is_none_or(|scope| user_in_scope(state, scope, user));
    for user in state.users.values().filter(|u| !u.removed && visible(u.id)) {
        by_name
            .entry(user.name.trim().to_lowercase())
            .or_default()
            .push(user.id);
    }
    let mut scratch = state.clone();
    let mut errors = Vec::new();
    let mut events = Vec::new();
    // Extensions claimed by earlier rows, good or bad: a file naming one twice is wrong in the
    // later row whichever row is otherwise at fault.
    let mut claimed: BTreeMap<String, (u32, String)> = BTreeMap::new();
    for row in rows {
        let extension = row.extension.trim().to_string();
        let user = row.user.trim().to_lowercase();
        let earlier = claimed.get(&extension).filter(|(_, u)| *u != user).cloned();
        claimed.entry(extension.clone()).or_insert((row.row, user));
        if let Some((earlier_row, _)) = earlier {
            errors.push(row_error(
                row,
                "Ext Key",
                "extension_taken",
                format!("extension {extension} is also given in row {earlier_row}"),
            ));
            continue;
        }
        match import_row(&scratch, &by_name, &visible, &base_type, row, ctx) {
            Ok(produced) => {
                for event in produced {
                    let version = scratch.version + 1;
                    evolve(&mut scratch, &event, version);
                    events.push(event);
                }
            }
            Err(mut row_errors) => errors.append(&mut row_errors),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(Rejection::ImportRejected(errors))
    }
}

fn row_error(row: &ImportRow, column: &str, code: &str, message: String) -> RowError {
    RowError {
        row: row.row,
        column: column.to_string(),
        code: code.to_string(),
        message,
    }
}

/// The events of one import row, or every error it has.
fn import_row(
    state: &Tenant,
    by_name: &BTreeMap<String, Vec<UserId>>,
    visible: &dyn Fn(UserId) -> bool,
    base_type: &TypeCode,
    row: &ImportRow,
    ctx: &Context,
) -> Result<Vec<Event>, Vec<RowError>> {
    let mut errors = Vec::new();
    let user = match row.user.trim().parse::<UserId>() {
        Ok(id) if state.active_user(id).is_some() && visible(id) => Some(id),
        _ => match by_name
            .get(&row.user.trim().to_lowercase())
            .map(Vec::as_slice)
        {
            Some([only]) => Some(*only),
            Some(many) if many.len() > 1 => {
                errors.push(row_error(
                    row,
                    "User",
                    "user_ambiguous",
                    format!(
                        "{} users are named `{}`; use the user's id",
                        many.len(),
                        row.user.trim()
                    ),
                ));
                None
            }
            _ => {
                errors.push(row_error(
                    row,
                    "User",
                    "user_not_found",
                    format!("no user with the id or name `{}`", row.user.trim()),
                ));
                None
            }
        },
    };
    let extension = row.extension.trim().to_string();
    let number = Some(row.number.trim().to_string()).filter(|n| !n.is_empty());
    if let Err(e) = check_number("extension", &Some(extension.clone())) {
        errors.push(row_error(
            row,
            "Ext Key",
            "invalid_extension",
            e.to_string(),
        ));
    }
    if let Err(e) = check_number("number", &number) {
        errors.push(row_error(row, "Number", "invalid_number", e.to_string()));
    }
    let mut addons = Vec::new();
    for (column, code) in &row.addons {
        let parsed = TypeCode::parse(code.trim());
        let definition = parsed.as_ref().and_then(|t| state.catalogue.get(t));
        let feature = parsed.as_ref().and_then(|t| state.features.get(t));
        match definition {
            None if feature.is_some() => errors.push(row_error(
                row,
                column,
                "feature_has_no_units",
                format!(
                    "{} is a feature, not a licence type: it cannot be attached",
                    code.trim()
                ),
            )),
            None => errors.push(row_error(
                row,
                column,
                "unknown_license_type",
                format!("`{}` is not a licence type of the catalogue", code.trim()),
            )),
            Some(d) if d.kind != Kind::Addon => errors.push(row_error(
                row,
                column,
                "not_an_addon",
                format!("{} is a base type, not an add-on", d.code),
            )),
            Some(d) if !d.attaches_to.contains(base_type) => errors.push(row_error(
                row,
                column,
                "addon_cannot_attach",
                format!("{} cannot be attached to a {base_type} licence", d.code),
            )),
            Some(d) if addons.contains(&d.code) => errors.push(row_error(
                row,
                column,
                "addon_type_already_attached",
                format!("{} appears twice in the row", d.code),
            )),
            Some(d) => addons.push(d.code.clone()),
        }
    }
    let Some(user) = user else {
        return Err(errors);
    };
    if let Some(holder) = state.extensions.get(&extension).filter(|h| **h != user) {
        // Worded as the refusal of a single write: a dealer's import learns that the extension
        // is taken, not by whom outside its scope.
        let taken = Rejection::ExtensionTaken {
            extension: extension.clone(),
            user: Some(*holder).filter(|h| visible(*h)),
        };
        errors.push(row_error(
            row,
            "Ext Key",
            "extension_taken",
            taken.to_string(),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut events = Vec::new();
    let current = state
        .active_user(user)
        .map(|u| (u.extension.clone(), u.number.clone()));
    if current != Some((Some(extension.clone()), number.clone())) {
        events.push(Event::UserNumbersSet {
            user,
            extension: Some(extension),
            number,
        });
    }
    let assignment = Command::AssignByType {
        user,
        license_type: base_type.clone(),
        addons: addons.clone(),
        group: None,
    };
    match decide(state, &assignment, ctx) {
        Ok(mut assigned) => {
            events.append(&mut assigned);
            Ok(events)
        }
        Err(rejection) => Err(assignment_errors(row, base_type, &rejection)),
    }
}

/// Row errors for a refused assignment: each violation in the column of the type it concerns.
fn assignment_errors(
    row: &ImportRow,
    base_type: &TypeCode,
    rejection: &Rejection,
) -> Vec<RowError> {
    let column_of = |t: Option<&TypeCode>| -> String {
        t.filter(|t| *t != base_type)
            .and_then(|t| {
                row.addons
                    .iter()
                    .find(|(_, code)| code.trim() == t.as_str())
                    .map(|(column, _)| column.clone())
            })
            .unwrap_or_else(|| "User".to_string())
    };
    match rejection {
        Rejection::RuleViolations(violations) => violations
            .iter()
            .map(|v| RowError {
                row: row.row,
                column: column_of(v.license_type.as_ref()),
                code: v.rule.as_str().to_string(),
                message: v.message.clone(),
            })
            .collect(),
        other => vec![row_error(row, "User", other.reason(), other.to_string())],
    }
}
