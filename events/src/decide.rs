//! `decide`: judge a command against a tenant's state and return the events it produces, or
//! why it is refused. Pure: no I/O, no clock, no randomness (new ids derive from the command id).

use crate::catalogue::{default_catalogue, excludes, Kind, LicenseType};
use crate::command::{Command, Context, ImportRow, NewUser};
use crate::event::{Event, Restriction, Retention};
use crate::ids::{GroupId, LicenseId, TypeCode, UserId};
use crate::rejection::{Rejection, RowError, Rule, Violation};
use crate::state::{evolve, License, Tenant, User};
use crate::time::truncate_to_micros;
use std::collections::{BTreeMap, BTreeSet};

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
/// Add-ons requested in one assignment.
pub const ADDONS_PER_ASSIGNMENT_MAX: usize = 32;
/// Per-type limits in one restriction.
pub const LIMITS_PER_RESTRICTION_MAX: usize = 64;
/// Longest call-recording retention in months.
pub const RETENTION_MONTHS_MAX: u32 = 120;
/// Longest free call-recording retention in days.
pub const RETENTION_DAYS_FREE_MAX: u32 = 14;
/// Codes listed in one `attaches_to`, `requires_any` or `excludes`.
pub const CATALOGUE_REFERENCES_MAX: usize = 64;
/// Longest webhook URL, in bytes.
pub const WEBHOOK_URL_BYTES_MAX: usize = 2000;
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

/// A per-tenant total bounded by one of the `*_PER_TENANT_MAX` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantTotal {
    Users,
    Groups,
    Keys,
    Licenses,
}

impl TenantTotal {
    /// The bound of this total.
    pub fn max(self) -> usize {
        match self {
            TenantTotal::Users => USERS_PER_TENANT_MAX,
            TenantTotal::Groups => GROUPS_PER_TENANT_MAX,
            TenantTotal::Keys => KEYS_PER_TENANT_MAX,
            TenantTotal::Licenses => LICENSES_PER_TENANT_MAX,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            TenantTotal::Users => "users",
            TenantTotal::Groups => "groups",
            TenantTotal::Keys => "live keys",
            TenantTotal::Licenses => "licences",
        }
    }
}

/// Whether adding `adding` to a tenant's `current` total stays within its bound; past it, the
/// `tenant_limit_reached` violation (a 422) naming the bound (`limit`) and the total (`used`).
pub fn check_tenant_total(
    total: TenantTotal,
    current: usize,
    adding: usize,
) -> Result<(), Violation> {
    let max = total.max();
    if current.saturating_add(adding) <= max {
        return Ok(());
    }
    let noun = total.noun();
    Err(Violation::new(
        Rule::TenantLimitReached,
        format!("a tenant holds at most {max} {noun}; it has {current}, and this adds {adding}"),
    )
    .counts(max as u64, current as u64))
}

const _: () = assert!(UNIT_PRICE_MINOR_MAX as i128 * 1_000_000_000 <= i64::MAX as i128);

const _: () = assert!(USERS_PER_BATCH_MAX as u64 <= PROVISION_QUANTITY_MAX as u64 * 10);

/// Judge `command` against `state` at `ctx.now`.
pub fn decide(state: &Tenant, command: &Command, ctx: &Context) -> Result<Vec<Event>, Rejection> {
    use Command::*;
    match command {
        CreateTenant {
            name,
            billing_timezone,
            currency,
        } => create_tenant(state, name, billing_timezone, currency),
        ProvisionLicenses {
            license_type,
            quantity,
        } => provision(state, license_type, *quantity, ctx),
        SetQuantity {
            license_type,
            quantity,
        } => set_quantity(state, license_type, *quantity, ctx),
        TerminateLicense { license } => terminate(state, *license),
        AssignLicense { license, user } => assign(state, *license, *user),
        UnassignLicense { license } => unassign(state, *license),
        ReassignLicense { license, user } => reassign(state, *license, *user),
        AttachAddon { base, addon } => attach(state, *base, *addon),
        DetachAddon { base, addon } => detach(state, *base, *addon),
        AssignByType {
            user,
            license_type,
            addons,
        } => assign_by_type(state, *user, license_type, addons),
        CreateGroup {
            group,
            name,
            parent,
        } => create_group(state, *group, name, *parent),
        UpdateGroup {
            group,
            name,
            parent,
        } => update_group(state, *group, name.as_deref(), *parent),
        SetRestriction { group, restriction } => {
            set_restriction(state, *group, &at_log_precision(restriction))
        }
        ClearRestriction { group } => clear_restriction(state, *group),
        CreateUser(user) => {
            create_users(state, std::slice::from_ref(user)).map_err(|mut e| match &mut e {
                Rejection::BatchRejected(items) if items.len() == 1 => items.remove(0).1,
                _ => e,
            })
        }
        CreateUsers(users) => create_users(state, users),
        UpdateUser { user, name, group } => update_user(state, *user, name.as_deref(), *group),
        DeleteUser { user } => delete_user(state, *user),
        SetRetention(retention) => set_retention(*retention),
        SetPrice {
            license_type,
            unit_price_minor,
            currency,
            effective_from,
        } => {
            known_type(state, license_type)?;
            if *unit_price_minor < 0 {
                return Err(invalid("unit_price_minor must not be negative"));
            }
            if *unit_price_minor > UNIT_PRICE_MINOR_MAX {
                return Err(invalid(format!(
                    "unit_price_minor must be at most {UNIT_PRICE_MINOR_MAX}"
                )));
            }
            if currency != &state.currency {
                return Err(one(Violation::new(
                    Rule::CurrencyMismatch,
                    format!("the tenant bills in {}, not {currency}", state.currency),
                )));
            }
            Ok(vec![Event::PriceSet {
                license_type: license_type.clone(),
                unit_price_minor: *unit_price_minor,
                currency: currency.clone(),
                effective_from: truncate_to_micros(*effective_from),
            }])
        }
        IssueKey {
            key,
            name,
            role,
            token_hash,
        } => {
            check_name(name)?;
            if state.keys.contains_key(key) {
                return Err(Rejection::KeyAlreadyExists(*key));
            }
            let live_keys = state.keys.values().filter(|k| !k.revoked).count();
            check_tenant_total(TenantTotal::Keys, live_keys, 1).map_err(one)?;
            Ok(vec![Event::ApiKeyIssued {
                key: *key,
                name: name.clone(),
                role: *role,
                token_hash: *token_hash,
            }])
        }
        DefineLicenseType(definition) => define_type(state, definition),
        Import(rows) => import(state, rows, ctx),
        SetWebhook { url } => {
            if url.is_empty() || url.len() > WEBHOOK_URL_BYTES_MAX {
                return Err(invalid(format!(
                    "the webhook URL must be 1 to {WEBHOOK_URL_BYTES_MAX} bytes"
                )));
            }
            Ok(vec![Event::WebhookSet { url: url.clone() }])
        }
        RecordReminderDelivered { group, due_at } => {
            group_exists(state, *group)?;
            let due_at = crate::time::truncate_to_micros(*due_at);
            if state.reminders_delivered.contains(&(*group, due_at)) {
                return Err(Rejection::ReminderAlreadyDelivered {
                    group: *group,
                    due_at,
                });
            }
            Ok(vec![Event::ReminderDelivered {
                group: *group,
                due_at,
            }])
        }
        RevokeKey { key } => match state.keys.get(key) {
            None => Err(Rejection::KeyNotFound(*key)),
            Some(k) if k.revoked => Err(Rejection::KeyAlreadyRevoked(*key)),
            Some(_) => Ok(vec![Event::ApiKeyRevoked { key: *key }]),
        },
    }
}

/// The restriction with its instants cut to the microseconds the log stores, so the event
/// folded live equals the one read back from disk.
fn at_log_precision(restriction: &Restriction) -> Restriction {
    Restriction {
        valid_from: restriction.valid_from.map(truncate_to_micros),
        valid_until: restriction.valid_until.map(truncate_to_micros),
        ..restriction.clone()
    }
}

fn invalid(message: impl Into<String>) -> Rejection {
    Rejection::InvalidInput(message.into())
}

fn one(violation: Violation) -> Rejection {
    Rejection::RuleViolations(vec![violation])
}

fn violations(list: Vec<Violation>) -> Result<(), Rejection> {
    if list.is_empty() {
        Ok(())
    } else {
        Err(Rejection::RuleViolations(list))
    }
}

fn check_name(name: &str) -> Result<(), Rejection> {
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

fn check_number(field: &str, value: &Option<String>) -> Result<(), Rejection> {
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

fn known_type<'a>(
    state: &'a Tenant,
    license_type: &TypeCode,
) -> Result<&'a crate::catalogue::LicenseType, Rejection> {
    state
        .catalogue
        .get(license_type)
        .ok_or_else(|| Rejection::UnknownLicenseType(license_type.clone()))
}

fn license(state: &Tenant, id: LicenseId) -> Result<&License, Rejection> {
    state
        .licenses
        .get(&id)
        .ok_or(Rejection::LicenseNotFound(id))
}

fn live_license(state: &Tenant, id: LicenseId) -> Result<&License, Rejection> {
    let l = license(state, id)?;
    if l.terminated {
        return Err(Rejection::LicenseTerminated(id));
    }
    Ok(l)
}

fn base_license(state: &Tenant, id: LicenseId) -> Result<&License, Rejection> {
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

fn active_user(state: &Tenant, id: UserId) -> Result<&User, Rejection> {
    state.active_user(id).ok_or(Rejection::UserNotFound(id))
}

fn group_exists(state: &Tenant, id: GroupId) -> Result<(), Rejection> {
    if state.groups.contains_key(&id) {
        Ok(())
    } else {
        Err(Rejection::GroupNotFound(id))
    }
}

fn create_tenant(
    state: &Tenant,
    name: &str,
    billing_timezone: &str,
    currency: &str,
) -> Result<Vec<Event>, Rejection> {
    if state.version > 0 {
        return Err(Rejection::TenantAlreadyExists);
    }
    check_name(name)?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(
            "currency must be a three-letter ISO 4217 code such as EUR",
        ));
    }
    let mut events = vec![Event::TenantCreated {
        name: name.to_string(),
        billing_timezone: billing_timezone.to_string(),
        currency: currency.to_string(),
    }];
    events.extend(
        default_catalogue()
            .into_values()
            .map(|definition| Event::LicenseTypeDefined { definition }),
    );
    Ok(events)
}

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

fn provision(
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

fn set_quantity(
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

fn terminate(state: &Tenant, id: LicenseId) -> Result<Vec<Event>, Rejection> {
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

/// Every rule a user must pass to take on licences of `adding` types: one base per type,
/// exclusions, requirements and every enabled limit on the path to the root. Groups also on
/// `leaving_group`'s path are skipped: their usage does not change.
fn taking_violations(
    state: &Tenant,
    user: &User,
    adding: &[TypeCode],
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
    found.extend(limit_violations(state, user.group, adding, leaving_group));
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
fn limit_violations(
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
fn counted_limit_violations(
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

fn assign(state: &Tenant, id: LicenseId, user: UserId) -> Result<Vec<Event>, Rejection> {
    let l = base_license(state, id)?;
    if l.user.is_some() {
        return Err(Rejection::LicenseAlreadyAssigned {
            license: id,
            user: l.user,
            base: None,
        });
    }
    let u = active_user(state, user)?;
    let adding = state.license_with_addon_types(l);
    violations(taking_violations(state, u, &adding, None, false))?;
    Ok(vec![Event::LicenseAssigned {
        license: id,
        license_type: l.license_type.clone(),
        user,
    }])
}

fn unassign(state: &Tenant, id: LicenseId) -> Result<Vec<Event>, Rejection> {
    let l = base_license(state, id)?;
    let Some(user) = l.user else {
        return Err(Rejection::LicenseNotAssigned(id));
    };
    Ok(vec![Event::LicenseUnassigned {
        license: id,
        license_type: l.license_type.clone(),
        user,
    }])
}

fn reassign(state: &Tenant, id: LicenseId, to: UserId) -> Result<Vec<Event>, Rejection> {
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
    let leaving = state.users.get(&from).map(|u| u.group);
    let adding = state.license_with_addon_types(l);
    violations(taking_violations(state, target, &adding, leaving, false))?;
    Ok(vec![Event::LicenseReassigned {
        license: id,
        license_type: l.license_type.clone(),
        from,
        to,
    }])
}

fn attach(
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
        Some(holder) => found.extend(taking_violations(state, holder, adding, None, false)),
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

fn detach(
    state: &Tenant,
    base_id: LicenseId,
    addon_id: LicenseId,
) -> Result<Vec<Event>, Rejection> {
    license(state, base_id)?;
    let addon = license(state, addon_id)?;
    if addon.base != Some(base_id) {
        return Err(Rejection::AddonNotAttached {
            addon: addon_id,
            base: base_id,
        });
    }
    Ok(vec![Event::AddonDetached {
        addon: addon_id,
        addon_type: addon.license_type.clone(),
        base: base_id,
    }])
}

fn assign_by_type(
    state: &Tenant,
    user: UserId,
    license_type: &TypeCode,
    addons: &[TypeCode],
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
    found.extend(taking_violations(state, u, &adding, None, false));
    violations(found)?;
    let Some(base) = base else {
        unreachable!("a missing base licence is reported as a violation above");
    };
    let mut events = vec![Event::LicenseAssigned {
        license: base,
        license_type: license_type.clone(),
        user,
    }];
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

fn depth(state: &Tenant, group: GroupId) -> usize {
    state.path_to_root(group).len()
}

/// Height of a subtree: 1 for a leaf.
fn height(state: &Tenant, group: GroupId) -> usize {
    state.groups.get(&group).map_or(1, |g| {
        1 + g
            .children
            .iter()
            .map(|c| height(state, *c))
            .max()
            .unwrap_or(0)
    })
}

fn create_group(
    state: &Tenant,
    group: GroupId,
    name: &str,
    parent: Option<GroupId>,
) -> Result<Vec<Event>, Rejection> {
    check_name(name)?;
    if state.groups.contains_key(&group) {
        return Err(Rejection::GroupAlreadyExists(group));
    }
    check_tenant_total(TenantTotal::Groups, state.groups.len(), 1).map_err(one)?;
    if let Some(p) = parent {
        group_exists(state, p)?;
        if depth(state, p) + 1 > GROUP_DEPTH_MAX {
            return Err(one(Violation::new(
                Rule::GroupDepthExceeded,
                format!("groups nest at most {GROUP_DEPTH_MAX} deep"),
            )
            .in_group(p)));
        }
    }
    Ok(vec![Event::GroupCreated {
        group,
        name: name.to_string(),
        parent,
    }])
}

fn update_group(
    state: &Tenant,
    group: GroupId,
    name: Option<&str>,
    parent: Option<Option<GroupId>>,
) -> Result<Vec<Event>, Rejection> {
    let current = state
        .groups
        .get(&group)
        .ok_or(Rejection::GroupNotFound(group))?;
    let mut events = Vec::new();
    if let Some(name) = name {
        check_name(name)?;
        if name != current.name {
            events.push(Event::GroupRenamed {
                group,
                name: name.to_string(),
            });
        }
    }
    if let Some(new_parent) = parent {
        if new_parent != current.parent {
            check_move(state, group, new_parent)?;
            events.push(Event::GroupMoved {
                group,
                parent: new_parent,
            });
        }
    }
    Ok(events)
}

fn check_move(
    state: &Tenant,
    group: GroupId,
    new_parent: Option<GroupId>,
) -> Result<(), Rejection> {
    let Some(p) = new_parent else {
        return Ok(());
    };
    group_exists(state, p)?;
    if state.path_to_root(p).contains(&group) {
        return Err(one(Violation::new(
            Rule::GroupCycle,
            format!("group {group} cannot move under its own subtree"),
        )
        .in_group(p)));
    }
    let mut found = Vec::new();
    if depth(state, p) + height(state, group) > GROUP_DEPTH_MAX {
        found.push(
            Violation::new(
                Rule::GroupDepthExceeded,
                format!("groups nest at most {GROUP_DEPTH_MAX} deep"),
            )
            .in_group(p),
        );
    }
    // The moved subtree's usage lands on the new ancestors.
    let adding: BTreeMap<&TypeCode, u64> = state.groups[&group]
        .used
        .iter()
        .map(|(t, n)| (t, *n))
        .collect();
    found.extend(counted_limit_violations(
        state,
        p,
        &adding,
        current_parent(state, group),
    ));
    let moved = Hypothesis {
        state,
        restriction: None,
        parent: Some((group, p)),
    };
    found.extend(moved.violations(group));
    violations(found)
}

fn current_parent(state: &Tenant, group: GroupId) -> Option<GroupId> {
    state.groups.get(&group).and_then(|g| g.parent)
}

/// Validate a restriction edit: every violated rule is listed, nothing is stored.
fn set_restriction(
    state: &Tenant,
    group: GroupId,
    restriction: &Restriction,
) -> Result<Vec<Event>, Rejection> {
    let current = state
        .groups
        .get(&group)
        .ok_or(Rejection::GroupNotFound(group))?;
    if restriction.limits.len() > LIMITS_PER_RESTRICTION_MAX {
        return Err(invalid(format!(
            "at most {LIMITS_PER_RESTRICTION_MAX} limits per restriction"
        )));
    }
    for t in restriction.limits.keys() {
        known_type(state, t)?;
    }
    if let Some(reminder) = restriction.reminder {
        if reminder.days_before == 0 || reminder.days_before > REMINDER_DAYS_MAX {
            return Err(invalid(format!(
                "reminder days_before must be between 1 and {REMINDER_DAYS_MAX}"
            )));
        }
    }
    let mut found = Vec::new();
    if let (Some(from), Some(until)) = (restriction.valid_from, restriction.valid_until) {
        if from >= until {
            found.push(
                Violation::new(
                    Rule::WindowReversed,
                    format!("valid_from {from} is not before valid_until {until}"),
                )
                .in_group(group),
            );
        }
    }
    if restriction.enabled {
        let sip = restriction.limits.get(&TypeCode::from("sip_number"));
        let mobile = restriction.limits.get(&TypeCode::from("mobile_app"));
        if let (Some(&sip), Some(&mobile)) = (sip, mobile) {
            if sip < mobile {
                found.push(
                    Violation::new(
                        Rule::SipNumberBelowMobileApp,
                        format!("sip_number limit {sip} is below mobile_app limit {mobile}"),
                    )
                    .in_group(group)
                    .of_type(&"sip_number".into())
                    .counts(mobile, sip),
                );
            }
        }
        for (t, &limit) in &restriction.limits {
            let used = current.used_of(t);
            if limit < used {
                found.push(
                    Violation::new(
                        Rule::LimitBelowUsage,
                        format!(
                            "{t} limit {limit} is below the {used} already used in group {}",
                            current.name
                        ),
                    )
                    .in_group(group)
                    .of_type(t)
                    .counts(limit, used),
                );
            }
        }
    }
    let edited = Hypothesis {
        state,
        restriction: Some((group, Some(restriction))),
        parent: None,
    };
    found.extend(edited.violations(group));
    violations(found)?;
    Ok(vec![Event::RestrictionSet {
        group,
        restriction: restriction.clone(),
    }])
}

fn clear_restriction(state: &Tenant, group: GroupId) -> Result<Vec<Event>, Rejection> {
    group_exists(state, group)?;
    let cleared = Hypothesis {
        state,
        restriction: Some((group, None)),
        parent: None,
    };
    violations(cleared.violations(group))?;
    Ok(vec![Event::RestrictionCleared { group }])
}

/// The group tree as it would be after one edit, without cloning the tenant.
struct Hypothesis<'a> {
    state: &'a Tenant,
    /// A group whose restriction is replaced (`None`: cleared).
    restriction: Option<(GroupId, Option<&'a Restriction>)>,
    /// A group moved under a new parent.
    parent: Option<(GroupId, GroupId)>,
}

impl<'a> Hypothesis<'a> {
    fn enabled_restriction(&self, id: GroupId) -> Option<&'a Restriction> {
        match self.restriction {
            Some((g, r)) if g == id => r.filter(|r| r.enabled),
            _ => self.state.groups.get(&id)?.enabled_restriction(),
        }
    }

    fn parent(&self, id: GroupId) -> Option<GroupId> {
        match self.parent {
            Some((g, p)) if g == id => Some(p),
            _ => self.state.groups.get(&id)?.parent,
        }
    }

    /// `id` and its ancestors, nearest first (bounded against cycles).
    fn path_to_root(&self, id: GroupId) -> Vec<GroupId> {
        let mut path = Vec::new();
        let mut next = Some(id);
        while let Some(g) = next {
            if path.len() > self.state.groups.len() {
                break;
            }
            path.push(g);
            next = self.parent(g);
        }
        path
    }

    /// Child-versus-parent rules for every enabled restriction in `group`'s subtree, checked
    /// against, per type, the nearest enabled ancestor limiting that type, and against the
    /// intersection of ancestor windows.
    fn violations(&self, group: GroupId) -> Vec<Violation> {
        let mut found = Vec::new();
        for id in self.state.subtree(group) {
            let Some(r) = self.enabled_restriction(id) else {
                continue;
            };
            let name = |g: GroupId| self.state.groups.get(&g).map_or("?", |g| g.name.as_str());
            let ancestors = self.path_to_root(id).split_off(1);
            // Per type: the nearest ancestor whose enabled restriction limits that type. A
            // parent that is disabled, or limits only other types, is unlimited for it.
            for (t, &limit) in &r.limits {
                let nearest = ancestors.iter().find_map(|a| {
                    let ar = self.enabled_restriction(*a)?;
                    ar.limits.get(t).map(|&parent_limit| (*a, parent_limit))
                });
                if let Some((a, parent_limit)) = nearest {
                    if limit > parent_limit {
                        found.push(
                            Violation::new(
                                Rule::ChildLimitExceedsParent,
                                format!(
                                    "{t} limit {limit} of group {} exceeds {parent_limit} of its ancestor group {}",
                                    name(id),
                                    name(a)
                                ),
                            )
                            .in_group(id)
                            .of_type(t)
                            .counts(parent_limit, limit),
                        );
                    }
                }
            }
            let windows = ancestors
                .iter()
                .filter_map(|a| self.enabled_restriction(*a));
            let from = windows.clone().filter_map(|w| w.valid_from).max();
            let until = windows.filter_map(|w| w.valid_until).min();
            let starts_early = matches!((r.valid_from, from), (Some(c), Some(p)) if c < p);
            let ends_late = matches!((r.valid_until, until), (Some(c), Some(p)) if c > p);
            if starts_early || ends_late {
                found.push(
                    Violation::new(
                        Rule::WindowOutsideParent,
                        format!(
                            "the validity window of group {} does not lie inside its ancestors' window",
                            name(id)
                        ),
                    )
                    .in_group(id),
                );
            }
        }
        found
    }
}

/// Define or change a licence type. Every referenced code must exist (or be the type itself);
/// a base attaches to nothing, an add-on to at least one base; `requires_any` must not form a
/// cycle; and the change must not invalidate any current assignment, each of which is listed.
fn define_type(state: &Tenant, definition: &LicenseType) -> Result<Vec<Event>, Rejection> {
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
    for code in lists.iter().flat_map(|l| l.iter()) {
        if code != &definition.code && !state.catalogue.contains_key(code) {
            return Err(Rejection::UnknownLicenseType(code.clone()));
        }
    }
    let code = &definition.code;
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

/// Apply an import: each row gives its user a `phone_system` licence with the row's extension
/// and number, and attaches the row's add-ons. Rows are judged in order against the state the
/// earlier good rows leave, so conflicts inside the file (the same extension twice, more rows
/// than free licences, a quota reached by the file as a whole) are found too. Any bad row: every
/// bad row is reported and nothing is applied.
fn import(state: &Tenant, rows: &[ImportRow], ctx: &Context) -> Result<Vec<Event>, Rejection> {
    if rows.is_empty() || rows.len() > IMPORT_ROWS_MAX {
        return Err(invalid(format!(
            "an import holds 1 to {IMPORT_ROWS_MAX} rows"
        )));
    }
    let base_type = TypeCode::from(IMPORT_BASE_TYPE);
    known_type(state, &base_type)?;
    let mut by_name: BTreeMap<String, Vec<UserId>> = BTreeMap::new();
    for user in state.users.values().filter(|u| !u.removed) {
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
        match import_row(&scratch, &by_name, &base_type, row, ctx) {
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
    base_type: &TypeCode,
    row: &ImportRow,
    ctx: &Context,
) -> Result<Vec<Event>, Vec<RowError>> {
    let mut errors = Vec::new();
    let user = match row.user.trim().parse::<UserId>() {
        Ok(id) if state.active_user(id).is_some() => Some(id),
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
        let definition = TypeCode::parse(code.trim()).and_then(|t| state.catalogue.get(&t));
        match definition {
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
        errors.push(row_error(
            row,
            "Ext Key",
            "extension_taken",
            format!("extension {extension} is already used by user {holder}"),
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

fn create_users(state: &Tenant, users: &[NewUser]) -> Result<Vec<Event>, Rejection> {
    if users.is_empty() || users.len() > USERS_PER_BATCH_MAX {
        return Err(invalid(format!(
            "a batch holds 1 to {USERS_PER_BATCH_MAX} users"
        )));
    }
    let mut errors = Vec::new();
    let mut ids = BTreeSet::new();
    let mut extensions: BTreeMap<&str, UserId> = BTreeMap::new();
    for (index, u) in users.iter().enumerate() {
        if let Err(e) = check_new_user(state, u, &ids, &extensions) {
            errors.push((index, e));
        }
        ids.insert(u.user);
        if let Some(ext) = &u.extension {
            extensions.entry(ext).or_insert(u.user);
        }
    }
    if !errors.is_empty() {
        return Err(Rejection::BatchRejected(errors));
    }
    check_tenant_total(TenantTotal::Users, state.users.len(), users.len()).map_err(one)?;
    Ok(users
        .iter()
        .map(|u| Event::UserCreated {
            user: u.user,
            name: u.name.clone(),
            group: u.group,
            extension: u.extension.clone(),
            number: u.number.clone(),
        })
        .collect())
}

fn check_new_user(
    state: &Tenant,
    u: &NewUser,
    batch_ids: &BTreeSet<UserId>,
    batch_extensions: &BTreeMap<&str, UserId>,
) -> Result<(), Rejection> {
    check_name(&u.name)?;
    check_number("extension", &u.extension)?;
    check_number("number", &u.number)?;
    if state.users.contains_key(&u.user) || batch_ids.contains(&u.user) {
        return Err(Rejection::UserAlreadyExists(u.user));
    }
    group_exists(state, u.group)?;
    if let Some(ext) = &u.extension {
        let holder = state
            .extensions
            .get(ext)
            .or_else(|| batch_extensions.get(ext.as_str()));
        if let Some(holder) = holder {
            return Err(Rejection::ExtensionTaken {
                extension: ext.clone(),
                user: *holder,
            });
        }
    }
    Ok(())
}

fn update_user(
    state: &Tenant,
    user: UserId,
    name: Option<&str>,
    group: Option<GroupId>,
) -> Result<Vec<Event>, Rejection> {
    let u = active_user(state, user)?;
    let mut events = Vec::new();
    if let Some(name) = name {
        check_name(name)?;
        if name != u.name {
            events.push(Event::UserRenamed {
                user,
                name: name.to_string(),
            });
        }
    }
    if let Some(group) = group {
        group_exists(state, group)?;
        if group != u.group {
            let holdings = state.holdings(user);
            violations(limit_violations(state, group, &holdings, Some(u.group)))?;
            events.push(Event::UserMoved { user, group });
        }
    }
    Ok(events)
}

fn delete_user(state: &Tenant, user: UserId) -> Result<Vec<Event>, Rejection> {
    let u = active_user(state, user)?;
    if !u.licenses.is_empty() {
        return Err(Rejection::UserHoldsLicenses {
            user,
            licenses: u.licenses.iter().copied().collect(),
        });
    }
    Ok(vec![Event::UserRemoved { user }])
}

fn set_retention(retention: Retention) -> Result<Vec<Event>, Rejection> {
    match retention {
        Retention::Days(days) if days == 0 || days > RETENTION_DAYS_FREE_MAX => Err(invalid(format!(
            "retention in days must be 1 to {RETENTION_DAYS_FREE_MAX}; longer retention is set in months"
        ))),
        Retention::Months(months) if months % 3 != 0 || !(3..=RETENTION_MONTHS_MAX).contains(&months) => {
            Err(invalid(format!(
                "retention in months must be a multiple of 3 from 3 to {RETENTION_MONTHS_MAX}"
            )))
        }
        _ => Ok(vec![Event::RetentionSet { retention }]),
    }
}
