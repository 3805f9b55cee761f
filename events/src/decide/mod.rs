//! `decide`: judge a command against a tenant's state and return the events it produces, or
//! why it is refused. Pure: no I/O, no clock, no randomness (new ids derive from the command id).
//!
//! This file holds the bounds and the one entry, which hands each command to the file of its
//! area: `tenant`, `licenses`, `addons`, `groups`, `users`, `catalogue`, `import`; `common`
//! holds the checks they share.

mod addons;
mod cart;
mod catalogue;
mod common;
mod groups;
mod import;
mod licenses;
mod metering;
pub mod scope;
mod tenant;
mod users;

pub use licenses::derived_license_ids;
pub use metering::service_outcome_when_used;
pub use tenant::{check_tenant_total, TenantTotal};

use crate::command::{Command, Context};
use crate::event::Event;
use crate::ids::GroupId;
use crate::rejection::{Rejection, Violation};
use crate::state::Tenant;
use crate::time::truncate_to_micros;

/// Longest name of a tenant, group, user or key, in bytes.
pub const NAME_BYTES_MAX: usize = 200;
/// Longest extension or DID number, in bytes.
pub const EXTENSION_BYTES_MAX: usize = 32;
/// Licences provisioned by one call.
pub const PROVISION_QUANTITY_MAX: u32 = 10_000;
/// Users created by one batch.
pub const USERS_PER_BATCH_MAX: usize = 10_000;
/// Depth of a group tree (a root group has depth 1).
pub const GROUP_DEPTH_MAX: usize = 32;
/// Groups a user may belong to besides their own.
pub const OTHER_GROUPS_PER_USER_MAX: usize = 32;
/// Add-ons requested in one assignment.
pub const ADDONS_PER_ASSIGNMENT_MAX: usize = 32;
/// Per-type limits in one restriction.
pub const LIMITS_PER_RESTRICTION_MAX: usize = 64;
/// Longest call-recording retention in months.
pub const RETENTION_MONTHS_MAX: u32 = 120;
/// Longest free call-recording retention in days.
pub const RETENTION_DAYS_FREE_MAX: u32 = 14;
/// Features one tenant's catalogue may define.
pub const FEATURES_PER_TENANT_MAX: usize = 1000;
/// Features one restriction may switch on or off.
pub const FEATURES_PER_RESTRICTION_MAX: usize = 64;
/// Codes listed in one `attaches_to`, `requires_any` or `excludes`.
pub const CATALOGUE_REFERENCES_MAX: usize = 64;
/// Longest webhook URL, in bytes.
pub const WEBHOOK_URL_BYTES_MAX: usize = 2000;
/// Longest webhook signing secret, in bytes.
pub const WEBHOOK_SECRET_BYTES_MAX: usize = 200;
/// Metered services of one tenant.
pub const SERVICES_PER_TENANT_MAX: usize = 1000;
/// Usage records in one batch.
pub const USAGE_RECORDS_PER_BATCH_MAX: usize = 10_000;
/// Longest usage record id, in bytes.
pub const USAGE_RECORD_ID_BYTES_MAX: usize = 128;
/// Largest quantity of one usage record, and of a service's allowance or cap.
pub const USAGE_QUANTITY_MAX: u64 = 1_000_000_000;
/// Longest JSON text of a cart's commands, in bytes.
pub const CART_COMMANDS_BYTES_MAX: usize = 256 * 1024;
/// Rows of one import.
pub const IMPORT_ROWS_MAX: usize = 200_000;
/// The base type every import row hands out.
pub const IMPORT_BASE_TYPE: &str = "phone_system";
/// Longest reminder lead time in days.
pub const REMINDER_DAYS_MAX: u32 = 366;
/// Highest price of one licence unit, in minor units (ten million in major units): an invoice
/// line stays exact in `i64` up to a billion units.
pub const UNIT_PRICE_MINOR_MAX: i64 = 1_000_000_000;

/// Users one tenant may ever create: removed users stay in its history and its state.
pub const USERS_PER_TENANT_MAX: usize = 1_000_000;
/// Groups of one tenant (groups are never deleted).
pub const GROUPS_PER_TENANT_MAX: usize = 100_000;
/// Keys of one tenant that are not revoked.
pub const KEYS_PER_TENANT_MAX: usize = 10_000;
/// Licences one tenant may ever provision: terminated ones stay in its history and its state.
pub const LICENSES_PER_TENANT_MAX: usize = 10_000_000;

// The bounds leave room for the largest tenants the product serves: 100 000 users and a
// million licences.
const _: () = assert!(USERS_PER_TENANT_MAX >= 100_000 && LICENSES_PER_TENANT_MAX >= 1_000_000);
const _: () = assert!(USERS_PER_BATCH_MAX <= USERS_PER_TENANT_MAX);
const _: () = assert!(PROVISION_QUANTITY_MAX as usize <= LICENSES_PER_TENANT_MAX);

const _: () = assert!(FEATURES_PER_RESTRICTION_MAX <= FEATURES_PER_TENANT_MAX);

const _: () = assert!(UNIT_PRICE_MINOR_MAX as i128 * 1_000_000_000 <= i64::MAX as i128);

const _: () = assert!(USERS_PER_BATCH_MAX as u64 <= PROVISION_QUANTITY_MAX as u64 * 10);

/// Judge `command` sent with a key scoped to `scope` (a dealer's key; `None` for a key of the
/// whole tenant): first what the scope allows (`scope::check`), then the rules as for anyone.
pub fn decide_as(
    state: &Tenant,
    command: &Command,
    ctx: &Context,
    scope: Option<GroupId>,
) -> Result<Vec<Event>, Rejection> {
    let Some(scope) = scope else {
        return decide(state, command, ctx);
    };
    scope::check(state, scope, command)?;
    match command {
        Command::Import(rows) => import::import(state, rows, ctx, Some(scope)),
        Command::ConfirmCart { cart, commands } => {
            cart::confirm_cart(state, *cart, commands, ctx, Some(scope))
        }
        _ => decide(state, command, ctx),
    }
    .map_err(|rejection| seen_from(state, scope, rejection))
}

/// A rejection as a key scoped to `scope` may see it: the holder of a taken extension is not
/// named when they are outside the scope (the refusal itself stays: extensions are unique in
/// the whole tenant), and a violation at a group above the scope is shown on the scope group
/// ([`seen_violation`]); inside a batch's refusal too.
fn seen_from(state: &Tenant, scope: GroupId, rejection: Rejection) -> Rejection {
    match rejection {
        Rejection::ExtensionTaken {
            extension,
            user: Some(holder),
        } if !scope::user_in_scope(state, scope, holder) => Rejection::ExtensionTaken {
            extension,
            user: None,
        },
        Rejection::RuleViolations(list) => {
            let mut shown: Vec<Violation> = Vec::with_capacity(list.len());
            for v in list {
                let v = seen_violation(state, scope, v);
                // The groups above are folded into the scope group: one entry per rule and type.
                let repeated = v.above_scope
                    && shown.iter().any(|s| {
                        s.above_scope && s.rule == v.rule && s.license_type == v.license_type
                    });
                if !repeated {
                    shown.push(v);
                }
            }
            Rejection::RuleViolations(shown)
        }
        Rejection::BatchRejected(items) => Rejection::BatchRejected(
            items
                .into_iter()
                .map(|(index, item)| (index, seen_from(state, scope, item)))
                .collect(),
        ),
        other => other,
    }
}

/// A violation at a group above `scope` as the scoped key sees it: on the scope group (its
/// grant), without the issuer's limit, usage or group name.
fn seen_violation(state: &Tenant, scope: GroupId, v: Violation) -> Violation {
    if v.group
        .is_none_or(|g| scope::group_in_scope(state, scope, g))
    {
        return v;
    }
    let name = state.groups.get(&scope).map_or("", |g| g.name.as_str());
    let what = v
        .license_type
        .as_ref()
        .map_or_else(String::new, |t| format!(" for {t}"));
    Violation {
        group: Some(scope),
        limit: None,
        used: None,
        above_scope: true,
        message: format!(
            "{}{what}: a group above {name} ({scope}), which the key's issuer manages, does not allow this",
            v.rule.as_str()
        ),
        ..v
    }
}

/// Judge `command` against `state` at `ctx.now`.
pub fn decide(state: &Tenant, command: &Command, ctx: &Context) -> Result<Vec<Event>, Rejection> {
    use Command::*;
    match command {
        CreateTenant {
            name,
            billing_timezone,
            currency,
        } => tenant::create_tenant(state, name, billing_timezone, currency),
        ProvisionLicenses {
            license_type,
            quantity,
        } => licenses::provision(state, license_type, *quantity, ctx),
        SetQuantity {
            license_type,
            quantity,
        } => licenses::set_quantity(state, license_type, *quantity, ctx),
        TerminateLicense { license } => licenses::terminate(state, *license),
        AssignLicense {
            license,
            user,
            group,
        } => licenses::assign(state, *license, *user, *group),
        UnassignLicense { license } => licenses::unassign(state, *license),
        ReassignLicense {
            license,
            user,
            group,
        } => licenses::reassign(state, *license, *user, *group),
        AttachAddon { base, addon } => addons::attach(state, *base, *addon),
        DetachAddon { base, addon } => addons::detach(state, *base, *addon),
        AssignByType {
            user,
            license_type,
            addons,
            group,
        } => licenses::assign_by_type(state, *user, license_type, addons, *group),
        CreateGroup {
            group,
            name,
            parent,
            contact_email,
        } => groups::create_group(state, *group, name, *parent, contact_email.as_deref()),
        UpdateGroup {
            group,
            name,
            parent,
            contact_email,
        } => groups::update_group(
            state,
            *group,
            groups::GroupChange {
                name: name.as_deref(),
                parent: *parent,
                contact_email: contact_email.as_ref().map(Option::as_deref),
            },
        ),
        SetRestriction { group, restriction } => groups::set_restriction(
            state,
            *group,
            &groups::at_log_precision(restriction),
            None,
            truncate_to_micros(ctx.now),
        ),
        SetRestrictionAndFeatures {
            group,
            restriction,
            features,
        } => groups::set_restriction(
            state,
            *group,
            &groups::at_log_precision(restriction),
            Some(features),
            truncate_to_micros(ctx.now),
        ),
        ClearRestriction { group } => {
            groups::clear_restriction(state, *group, truncate_to_micros(ctx.now))
        }
        CreateUser(user) => users::create_user(state, user),
        CreateUsers(users) => users::create_users(state, users),
        UpdateUser {
            user,
            name,
            group,
            extension,
            number,
        } => users::update_user(
            state,
            *user,
            users::UserChange {
                name: name.as_deref(),
                group: *group,
                extension: extension.as_ref(),
                number: number.as_ref(),
            },
        ),
        DeleteUser { user } => users::delete_user(state, *user),
        AddUserToGroup { user, group } => users::add_to_group(state, *user, *group),
        RemoveUserFromGroup { user, group } => users::remove_from_group(state, *user, *group),
        SetUserRestriction { user, restriction } => {
            users::set_user_restriction(state, *user, restriction)
        }
        ClearUserRestriction { user } => users::clear_user_restriction(state, *user),
        SetRetention(retention) => tenant::set_retention(*retention),
        SetPrice {
            license_type,
            unit_price_minor,
            currency,
            effective_from,
        } => tenant::set_price(
            state,
            license_type,
            *unit_price_minor,
            currency,
            *effective_from,
        ),
        IssueKey {
            key,
            name,
            role,
            token_hash,
            group,
        } => tenant::issue_key(state, *key, name, *role, *token_hash, *group),
        DefineLicenseType(definition) => catalogue::define_type(state, definition),
        DefineFeature(definition) => catalogue::define_feature(state, definition),
        Import(rows) => import::import(state, rows, ctx, None),
        SetWebhook { url, secret } => tenant::set_webhook(url, secret),
        SetNotificationTemplate(template) => tenant::set_notification_template(template),
        DefineService(service) => metering::define_service(state, service),
        CreateCart {
            cart,
            commands,
            version,
            amount_minor_delta,
        } => cart::create_cart(state, *cart, commands, *version, *amount_minor_delta),
        ConfirmCart { cart, commands } => cart::confirm_cart(state, *cart, commands, ctx, None),
        RecordUsage(records) => metering::record_usage(state, records, ctx),
        RecordUnblockedNotified { version } => groups::record_unblocked_notified(state, *version),
        RecordReminderDelivered { group, due_at } => {
            groups::record_reminder_delivered(state, *group, *due_at)
        }
        RevokeKey { key } => tenant::revoke_key(state, *key),
    }
}
