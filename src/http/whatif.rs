//! `POST /v1/tenants/{t}/what-if`: preview a list of commands, written in the shapes of the
//! write endpoints, without writing anything. The parsing and the answer are shared with
//! `ledger what-if`, which prints the same JSON.
//!
//! Each command needs the role its write endpoint needs: an operator may preview assignments,
//! add-ons and user moves; quotas, quantities, terminations, group moves, retention and prices
//! need an admin. A caller may preview exactly what it may do.

use super::auth::{allows, role_name, Auth, Need};
use super::doc;
use super::error::{violation_json, ApiError};
use super::extract::{AppJson, AppPath};
use super::groups::{parse_features, restriction_command};
use super::views::{instant, parse_instant, parse_type};
use super::{with_etag, App};
use crate::ledger::World;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use events::decide::scope::user_in_scope;
use events::decide::PROVISION_QUANTITY_MAX;
use events::{
    Command, GroupId, LicenseId, Reminder, Restriction, Retention, Tenant, TenantId, UserId,
};
use projections::whatif::{what_if_as, WhatIf, COMMANDS_PER_WHAT_IF_MAX};
use projections::Billing;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Licences the commands of one what-if may ask to provision, in total (provisions, and
/// quantities raised above what the tenant owns): a preview never builds a huge copy.
pub const LICENSES_PER_WHAT_IF_MAX: u64 = 100_000;

/// The request body: `{"at"?, "commands": [{"op", ...}]}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct WhatIfBody {
    #[schema(format = DateTime)]
    pub at: Option<String>,
    /// Each `{"op": "set_restriction|clear_restriction|set_quantity|provision|terminate|assign|
    /// unassign|reassign|attach_addon|detach_addon|assign_type|move_user|add_user_to_group|
    /// remove_user_from_group|move_group|set_user_restriction|clear_user_restriction|
    /// set_retention|set_price|set_service", ...}` with the fields of its write endpoint.
    #[schema(value_type = Vec<Object>)]
    pub commands: Vec<Value>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// One command of a what-if, with the fields of its write endpoint. On the wire `op` sits
/// beside the fields; it is read as the variant name (see [`parse_op`]) so that errors can
/// name the field they are about.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Op {
    SetRestriction {
        group_id: GroupId,
        enabled: bool,
        #[serde(default)]
        limits: BTreeMap<String, u64>,
        valid_from: Option<String>,
        valid_until: Option<String>,
        reminder: Option<Reminder>,
        features: Option<BTreeMap<String, bool>>,
    },
    ClearRestriction {
        group_id: GroupId,
    },
    SetQuantity {
        #[serde(rename = "type")]
        license_type: String,
        quantity: u32,
    },
    Provision {
        #[serde(rename = "type")]
        license_type: String,
        quantity: u32,
    },
    Terminate {
        license_id: LicenseId,
    },
    /// `group_id`: which of the user's groups it counts against (default: their own).
    Assign {
        license_id: LicenseId,
        user_id: UserId,
        group_id: Option<GroupId>,
    },
    Unassign {
        license_id: LicenseId,
    },
    Reassign {
        license_id: LicenseId,
        user_id: UserId,
        group_id: Option<GroupId>,
    },
    AttachAddon {
        license_id: LicenseId,
        addon_id: LicenseId,
    },
    DetachAddon {
        license_id: LicenseId,
        addon_id: LicenseId,
    },
    AssignType {
        user_id: UserId,
        #[serde(rename = "type")]
        license_type: String,
        #[serde(default)]
        addons: Vec<String>,
        group_id: Option<GroupId>,
    },
    MoveUser {
        user_id: UserId,
        group_id: GroupId,
    },
    AddUserToGroup {
        user_id: UserId,
        group_id: GroupId,
    },
    RemoveUserFromGroup {
        user_id: UserId,
        group_id: GroupId,
    },
    /// `parent_id: null` makes the group a root group; the field must be there.
    MoveGroup {
        group_id: GroupId,
        #[serde(default, deserialize_with = "present")]
        parent_id: Option<Option<GroupId>>,
    },
    SetUserRestriction {
        user_id: UserId,
        #[serde(default)]
        limits: BTreeMap<String, u64>,
        valid_from: Option<String>,
        valid_until: Option<String>,
    },
    ClearUserRestriction {
        user_id: UserId,
    },
    SetRetention {
        days: Option<u32>,
        months: Option<u32>,
    },
    /// A metered service's switch, allowance, cap and requirements, as `PUT /services/{code}`.
    SetService {
        code: String,
        name: Option<String>,
        unit: Option<String>,
        enabled: bool,
        #[serde(default)]
        base_allowance: u64,
        monthly_cap: Option<u64>,
        #[serde(default)]
        requires: Vec<String>,
    },
    SetPrice {
        #[serde(rename = "type")]
        license_type: String,
        unit_price_minor: i64,
        currency: Option<String>,
        effective_from: Option<String>,
    },
}

impl Op {
    /// The wire name.
    fn name(&self) -> &'static str {
        match self {
            Op::SetRestriction { .. } => "set_restriction",
            Op::ClearRestriction { .. } => "clear_restriction",
            Op::SetQuantity { .. } => "set_quantity",
            Op::Provision { .. } => "provision",
            Op::Terminate { .. } => "terminate",
            Op::Assign { .. } => "assign",
            Op::Unassign { .. } => "unassign",
            Op::Reassign { .. } => "reassign",
            Op::AttachAddon { .. } => "attach_addon",
            Op::DetachAddon { .. } => "detach_addon",
            Op::AssignType { .. } => "assign_type",
            Op::MoveUser { .. } => "move_user",
            Op::AddUserToGroup { .. } => "add_user_to_group",
            Op::RemoveUserFromGroup { .. } => "remove_user_from_group",
            Op::MoveGroup { .. } => "move_group",
            Op::SetUserRestriction { .. } => "set_user_restriction",
            Op::ClearUserRestriction { .. } => "clear_user_restriction",
            Op::SetRetention { .. } => "set_retention",
            Op::SetPrice { .. } => "set_price",
            Op::SetService { .. } => "set_service",
        }
    }

    /// The role its write endpoint needs.
    fn need(&self) -> Need {
        match self {
            Op::Assign { .. }
            | Op::Unassign { .. }
            | Op::Reassign { .. }
            | Op::AttachAddon { .. }
            | Op::DetachAddon { .. }
            | Op::AssignType { .. }
            | Op::MoveUser { .. }
            | Op::AddUserToGroup { .. }
            | Op::RemoveUserFromGroup { .. } => Need::Operate,
            _ => Need::Administer,
        }
    }

    /// The command, with wire values checked; `tenant` gives defaults (the currency) and
    /// the owned counts the provisioning budget is measured from.
    fn into_command(self, tenant: &Tenant) -> Result<Command, ApiError> {
        let instant_of = |field: &str, text: Option<String>| {
            text.as_deref().map(|t| parse_instant(field, t)).transpose()
        };
        Ok(match self {
            Op::SetRestriction {
                group_id,
                enabled,
                limits,
                valid_from,
                valid_until,
                reminder,
                features,
            } => {
                let mut parsed = BTreeMap::new();
                for (code, limit) in limits {
                    parsed.insert(parse_type(&code)?, limit);
                }
                let restriction = Restriction {
                    enabled,
                    limits: parsed,
                    valid_from: instant_of("valid_from", valid_from)?,
                    valid_until: instant_of("valid_until", valid_until)?,
                    reminder,
                };
                restriction_command(group_id, restriction, parse_features(features)?)
            }
            Op::ClearRestriction { group_id } => Command::ClearRestriction { group: group_id },
            Op::SetQuantity {
                license_type,
                quantity,
            } => Command::SetQuantity {
                license_type: parse_type(&license_type)?,
                quantity,
            },
            Op::Provision {
                license_type,
                quantity,
            } => Command::ProvisionLicenses {
                license_type: parse_type(&license_type)?,
                quantity,
            },
            Op::Terminate { license_id } => Command::TerminateLicense {
                license: license_id,
            },
            Op::Assign {
                license_id,
                user_id,
                group_id,
            } => Command::AssignLicense {
                license: license_id,
                user: user_id,
                group: group_id,
            },
            Op::Unassign { license_id } => Command::UnassignLicense {
                license: license_id,
            },
            Op::Reassign {
                license_id,
                user_id,
                group_id,
            } => Command::ReassignLicense {
                license: license_id,
                user: user_id,
                group: group_id,
            },
            Op::AttachAddon {
                license_id,
                addon_id,
            } => Command::AttachAddon {
                base: license_id,
                addon: addon_id,
            },
            Op::DetachAddon {
                license_id,
                addon_id,
            } => Command::DetachAddon {
                base: license_id,
                addon: addon_id,
            },
            Op::AssignType {
                user_id,
                license_type,
                addons,
                group_id,
            } => Command::AssignByType {
                user: user_id,
                license_type: parse_type(&license_type)?,
                addons: addons
                    .iter()
                    .map(|code| parse_type(code))
                    .collect::<Result<_, _>>()?,
                group: group_id,
            },
            Op::MoveUser { user_id, group_id } => Command::UpdateUser {
                user: user_id,
                name: None,
                group: Some(group_id),
                extension: None,
                number: None,
            },
            Op::AddUserToGroup { user_id, group_id } => Command::AddUserToGroup {
                user: user_id,
                group: group_id,
            },
            Op::RemoveUserFromGroup { user_id, group_id } => Command::RemoveUserFromGroup {
                user: user_id,
                group: group_id,
            },
            Op::MoveGroup {
                group_id,
                parent_id,
            } => Command::UpdateGroup {
                group: group_id,
                name: None,
                parent: Some(parent_id.ok_or_else(|| {
                    ApiError::bad_request("missing field `parent_id` (null makes a root group)")
                })?),
                contact_email: None,
            },
            Op::SetUserRestriction {
                user_id,
                limits,
                valid_from,
                valid_until,
            } => Command::SetUserRestriction {
                user: user_id,
                restriction: super::users::user_restriction(super::users::UserRestrictionBody {
                    limits,
                    valid_from,
                    valid_until,
                })?,
            },
            Op::ClearUserRestriction { user_id } => Command::ClearUserRestriction { user: user_id },
            Op::SetRetention { days, months } => Command::SetRetention(match (days, months) {
                (Some(days), None) => Retention::Days(days),
                (None, Some(months)) => Retention::Months(months),
                _ => {
                    return Err(ApiError::bad_request(
                        "give exactly one of `days` or `months`",
                    ))
                }
            }),
            Op::SetService {
                code,
                name,
                unit,
                enabled,
                base_allowance,
                monthly_cap,
                requires,
            } => {
                let code = events::TypeCode::parse(&code).ok_or_else(|| {
                    ApiError::bad_request(format!("`{code}` is not a service code"))
                })?;
                Command::DefineService(super::services::service_from(
                    code,
                    super::services::ServiceBody {
                        name,
                        unit,
                        enabled,
                        base_allowance,
                        monthly_cap,
                        requires,
                    },
                )?)
            }
            Op::SetPrice {
                license_type,
                unit_price_minor,
                currency,
                effective_from,
            } => Command::SetPrice {
                license_type: parse_type(&license_type)?,
                unit_price_minor,
                currency: currency.unwrap_or_else(|| tenant.currency.clone()),
                effective_from: instant_of("effective_from", effective_from)?
                    .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
            },
        })
    }
}

/// A parsed what-if: the instant asked for and the commands, each with its wire name.
pub struct Preview {
    at: Option<DateTime<Utc>>,
    ops: Vec<Op>,
}

/// Name the command a malformed field belongs to, keeping the error's details.
fn at_index(index: usize, op: Option<&str>, error: ApiError) -> ApiError {
    let what = op.map_or_else(
        || format!("commands[{index}]"),
        |op| format!("commands[{index}] ({op})"),
    );
    let mut details = match error.details {
        Some(Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    };
    details.insert("index".into(), json!(index));
    ApiError::bad_request(format!("{what}: {}", error.message)).with_details(Value::Object(details))
}

/// Check the shape of every command (unknown ops, missing or mistyped fields, bad UUIDs or
/// instants): a 400 naming the first bad index.
pub fn parse(body: WhatIfBody) -> Result<Preview, ApiError> {
    if body.commands.len() > COMMANDS_PER_WHAT_IF_MAX {
        return Err(ApiError::bad_request(format!(
            "a what-if takes at most {COMMANDS_PER_WHAT_IF_MAX} commands, not {}",
            body.commands.len()
        )));
    }
    let at = body
        .at
        .as_deref()
        .map(|text| parse_instant("at", text))
        .transpose()?;
    let ops = body
        .commands
        .into_iter()
        .enumerate()
        .map(|(index, value)| parse_op(index, value))
        .collect::<Result<Vec<Op>, ApiError>>()?;
    Ok(Preview { at, ops })
}

/// `{"op": "assign", "license_id", ...}` as `Op::Assign`: unknown ops, missing, unknown or
/// mistyped fields are a 400 naming the index, the op and the field.
fn parse_op(index: usize, value: Value) -> Result<Op, ApiError> {
    let bad =
        |op: Option<&str>, message: String| at_index(index, op, ApiError::bad_request(message));
    let Value::Object(mut fields) = value else {
        return Err(bad(None, "a command must be an object with an `op`".into()));
    };
    let op = match fields.remove("op") {
        Some(Value::String(op)) => op,
        Some(_) => return Err(bad(None, "`op` must be a string".into())),
        None => return Err(bad(None, "missing field `op`".into())),
    };
    let tagged = json!({ op.as_str(): Value::Object(fields) });
    serde_path_to_error::deserialize::<_, Op>(tagged).map_err(|e| {
        let field: Vec<String> = e.path().iter().skip(1).map(|p| p.to_string()).collect();
        let message = e.into_inner().to_string();
        if field.is_empty() && message.starts_with("unknown variant") {
            bad(None, message.replacen("unknown variant", "unknown op", 1))
        } else if field.is_empty() {
            bad(Some(&op), message)
        } else {
            bad(Some(&op), format!("{}: {message}", field.join(".")))
        }
    })
}

impl Preview {
    /// The commands, with wire values checked against `tenant`, and the name of each op.
    pub fn commands(self, tenant: &Tenant) -> Result<(Vec<&'static str>, Vec<Command>), ApiError> {
        let mut budget = 0u64;
        let mut names = Vec::with_capacity(self.ops.len());
        let mut commands = Vec::with_capacity(self.ops.len());
        for (index, op) in self.ops.into_iter().enumerate() {
            let name = op.name();
            let command = op
                .into_command(tenant)
                .map_err(|e| at_index(index, Some(name), e))?;
            budget = budget.saturating_add(provisioning(tenant, &command));
            if budget > LICENSES_PER_WHAT_IF_MAX {
                return Err(at_index(
                    index,
                    Some(name),
                    ApiError::bad_request(format!(
                        "the commands would provision more than {LICENSES_PER_WHAT_IF_MAX} licences"
                    )),
                ));
            }
            names.push(name);
            commands.push(command);
        }
        Ok((names, commands))
    }

    /// 403 naming the first command the caller may not make.
    pub fn authorize(&self, auth: &Auth, tenant: TenantId) -> Result<(), ApiError> {
        let role = auth.require(tenant, Need::Operate)?;
        match self
            .ops
            .iter()
            .enumerate()
            .find(|(_, op)| !allows(role, op.need()))
        {
            None => Ok(()),
            Some((index, op)) => Err(ApiError::forbidden(format!(
                "commands[{index}] ({}) needs the admin role; the {} role may preview only \
                 what it may do",
                op.name(),
                role_name(role)
            ))),
        }
    }
}

/// What a preview reads: one tenant's state and billing as they were, shared (not copied)
/// under the read lock so the preview runs without holding it; the writer copies on write.
pub struct Snapshot {
    pub tenant: std::sync::Arc<Tenant>,
    pub billing: std::sync::Arc<Billing>,
    /// The instant the writer would stamp a command with now: the clock, never before the
    /// last event of the log.
    pub now: DateTime<Utc>,
}

impl Snapshot {
    /// Share `tenant` of `world`; 404 if it does not exist.
    pub fn take(
        world: &World,
        tenant: TenantId,
        clock: DateTime<Utc>,
    ) -> Result<Snapshot, ApiError> {
        let state = world
            .tenants
            .get(&tenant)
            .ok_or_else(|| ApiError::not_found(format!("tenant {tenant} not found")))?;
        Ok(Snapshot {
            tenant: std::sync::Arc::clone(state),
            billing: world
                .billing
                .get(&tenant)
                .map(std::sync::Arc::clone)
                .unwrap_or_default(),
            now: world.last_recorded_at.map_or(clock, |last| last.max(clock)),
        })
    }
}

/// Run the preview against `snapshot` and answer in the API's JSON.
/// With `scope` (a key scoped to that group), every command is judged as that key's write
/// would be, `would_block` lists only the scope's users and `billing_delta`, the tenant's
/// money, is left empty.
pub fn answer(
    snapshot: &Snapshot,
    preview: Preview,
    scope: Option<GroupId>,
) -> Result<Value, ApiError> {
    let at = preview.at.unwrap_or(snapshot.now);
    let (names, commands) = preview.commands(&snapshot.tenant)?;
    let mut report = what_if_as(&snapshot.tenant, &snapshot.billing, at, &commands, scope)
        .map_err(|e| {
            ApiError::bad_request(e.to_string()).with_details(json!({"reason": match e {
                projections::WhatIfError::TooManyCommands { .. } => "too_many_commands",
                projections::WhatIfError::MonthClosed { .. } => "month_closed",
            }}))
        })?;
    if let Some(scope) = scope {
        report
            .would_block
            .retain(|b| user_in_scope(&snapshot.tenant, scope, b.user));
        report.billing_delta.clear();
    }
    Ok(report_json(
        &snapshot.tenant,
        &snapshot.billing,
        &report,
        &names,
    ))
}

/// Licences a command may provision, at most (`decide` never raises a quantity by more than
/// [`PROVISION_QUANTITY_MAX`] at once).
fn provisioning(tenant: &Tenant, command: &Command) -> u64 {
    match command {
        Command::ProvisionLicenses { quantity, .. } => u64::from(*quantity),
        Command::SetQuantity {
            license_type,
            quantity,
        } => u64::from(*quantity)
            .saturating_sub(tenant.owned.get(license_type).copied().unwrap_or(0))
            .min(u64::from(PROVISION_QUANTITY_MAX)),
        _ => 0,
    }
}

/// The answer: `{"at", "month", "version", "ok", "results", "violations", "would_block",
/// "billing_delta", "currency"}`.
fn report_json(tenant: &Tenant, billing: &Billing, report: &WhatIf, names: &[&str]) -> Value {
    let results: Vec<Value> = report
        .results
        .iter()
        .zip(names)
        .enumerate()
        .map(|(index, (result, name))| match &result.outcome {
            Ok(events) => json!({
                "index": index,
                "op": name,
                "ok": true,
                "events": events.iter().map(|e| e.kind()).collect::<Vec<_>>(),
            }),
            Err(rejection) => {
                let error = ApiError::from(rejection.clone());
                let mut body = json!({"code": error.code, "message": error.message});
                if let Some(details) = error.details {
                    body["details"] = details;
                }
                json!({"index": index, "op": name, "ok": false, "error": body})
            }
        })
        .collect();
    let violations: Vec<Value> = report
        .violations
        .iter()
        .map(|v| {
            let mut out = violation_json(&v.violation);
            out["index"] = json!(v.index);
            out
        })
        .collect();
    let would_block: Vec<Value> = report
        .would_block
        .iter()
        .map(|b| {
            json!({
                "user_id": b.user,
                "type": b.license_type,
                "rule": b.rule,
                "group_id": b.group.as_ref().map(|(id, _)| id),
                "group_name": b.group.as_ref().map(|(_, name)| name),
                "detail": b.detail,
            })
        })
        .collect();
    let billing_delta: serde_json::Map<String, Value> = report
        .billing_delta
        .iter()
        .map(|(t, d)| {
            (
                t.to_string(),
                json!({
                    "peak_units_before": d.peak_units_before,
                    "peak_units_after": d.peak_units_after,
                    "amount_minor_before": d.amount_minor_before,
                    "amount_minor_after": d.amount_minor_after,
                    "amount_minor_delta": d.amount_minor_delta,
                }),
            )
        })
        .collect();
    json!({
        "at": instant(report.at),
        "month": report.month.to_string(),
        "version": tenant.version,
        "currency": billing.currency,
        "ok": report.ok,
        "results": results,
        "violations": violations,
        "would_block": would_block,
        "billing_delta": billing_delta,
    })
}

/// `POST /v1/tenants/{t}/what-if` (operator for operator commands, else admin): the preview
/// of the tenant at its current version, which the answer's `ETag` names; nothing is written.
#[utoipa::path(
    post,
    path = "/v1/tenants/{t}/what-if",
    operation_id = "what_if",
    tag = "what-if",
    params(doc::TenantPath),
    request_body = WhatIfBody,
    responses(
        (status = 200, description = "The preview; nothing was written.", body = doc::WhatIfReport),
        doc::ReadErrors,
        (status = 413, response = doc::PayloadTooLarge),
    ),
)]
pub async fn preview(
    State(app): State<App>,
    auth: Auth,
    AppPath(tenant): AppPath<TenantId>,
    AppJson(body): AppJson<WhatIfBody>,
) -> Result<Response, ApiError> {
    let preview = parse(body)?;
    auth.role_in(tenant)?;
    let snapshot = {
        let world = app.ledger.read();
        if !world.tenants.contains_key(&tenant) {
            return Err(ApiError::not_found(format!("tenant {tenant} not found")));
        }
        preview.authorize(&auth, tenant)?;
        Snapshot::take(&world, tenant, events::time::truncate_to_micros(Utc::now()))?
    };
    let version = snapshot.tenant.version;
    let body = answer(&snapshot, preview, auth.scope())?;
    Ok(with_etag(Json(body).into_response(), version))
}
