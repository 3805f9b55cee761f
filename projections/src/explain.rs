//! "Why can't this user use feature X?": every entitlement check in order, with pass/fail, and
//! the first failing one as `blocked_by`. X is a licence type or a feature of the catalogue
//! (`kind: "feature"`, switched on or off by groups' restrictions).

use crate::group_state::window_block;
use chrono::{DateTime, Utc};
use events::state::{Group, User};
use events::{GroupId, Restriction, Tenant, TypeCode, UserId};

/// One check of an entitlement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Check {
    /// `user_active`, `holds_license`, `requires`, `excludes`, for a user with personal
    /// settings `user_window` (failing: `user_window_not_started`, `user_window_expired`) and
    /// `user_limit` (failing: `user_limit_reached`), `group_window` (failing:
    /// `window_not_started`, `window_expired`); for a feature `group_feature` (failing:
    /// `feature_disabled`) and `feature_enabled` (failing: `feature_not_enabled`).
    pub rule: &'static str,
    pub passed: bool,
    pub group: Option<(GroupId, String)>,
    /// The user whose personal settings the check reads.
    pub user: Option<UserId>,
    pub detail: String,
    /// The limit a limit check compared with and how much of it is used: a group's limit of
    /// the type asked about (its subtree's usage) where the group limits it, or the user's
    /// personal limit (their own holdings) for `user_limit`.
    pub limit: Option<LimitUse>,
    /// For a metered service's monthly cap: when the month ends and the cap resets.
    pub resets_at: Option<DateTime<Utc>>,
}

/// A group's limit of one type and how much of it is used (in its subtree).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitUse {
    pub limit: u64,
    pub used: u64,
}

/// The answer to "may this user use this type at this instant?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entitlement {
    pub allowed: bool,
    pub checks: Vec<Check>,
}

impl Entitlement {
    /// What blocks the user: the first failing check, except that for a user who holds no
    /// licence of the type a full limit is named instead — it is why they cannot be given one:
    /// their personal limit (`user_limit_reached`) first, then a full group limit on the path
    /// (`limit_reached`).
    pub fn blocked_by(&self) -> Option<&Check> {
        blocked_index(&self.checks).map(|i| &self.checks[i])
    }
}

/// The index of the check that blocks, by the rule of [`Entitlement::blocked_by`].
pub fn blocked_index(checks: &[Check]) -> Option<usize> {
    let first = checks.iter().position(|c| !c.passed)?;
    if checks[first].rule == "holds_license" {
        for rule in ["user_limit_reached", "limit_reached"] {
            if let Some(full) = checks.iter().position(|c| !c.passed && c.rule == rule) {
                return Some(full);
            }
        }
    }
    Some(first)
}

fn check(rule: &'static str, passed: bool, detail: String) -> Check {
    Check {
        rule,
        passed,
        detail,
        ..Check::default()
    }
}

/// Whether the user's personal window covers `at` (`user_window`, failing
/// `user_window_not_started` or `user_window_expired`); `None` without personal settings.
fn user_window_check(u: &User, at: DateTime<Utc>) -> Option<Check> {
    let r = u.restriction.as_ref()?;
    let window = format!(
        "personal window {} to {}",
        r.valid_from.map_or("open".into(), instant),
        r.valid_until.map_or("open".into(), instant)
    );
    let (rule, passed, covers) = if r.valid_from.is_some_and(|from| at < from) {
        ("user_window_not_started", false, "does not cover")
    } else if r.valid_until.is_some_and(|until| at >= until) {
        ("user_window_expired", false, "does not cover")
    } else {
        ("user_window", true, "covers")
    };
    Some(Check {
        rule,
        passed,
        user: Some(u.id),
        detail: format!("{window} of user {} {covers} {}", u.name, instant(at)),
        ..Check::default()
    })
}

/// The user's personal limit of `license_type` (`user_limit`): for a user holding none, full
/// when they already hold as many as it allows (`user_limit_reached`, with the limit and what
/// they hold). `None` without a personal limit of the type.
fn user_limit_check(
    tenant: &Tenant,
    u: &User,
    license_type: &TypeCode,
    holds: bool,
) -> Option<Check> {
    let limit = u.limit_of(license_type)?;
    let used = tenant.held_count(u.id, license_type);
    let full = !holds && used >= limit;
    Some(Check {
        rule: if full {
            "user_limit_reached"
        } else {
            "user_limit"
        },
        passed: !full,
        user: Some(u.id),
        limit: Some(LimitUse { limit, used }),
        detail: format!(
            "personal {license_type} limit {limit} of user {}, holds {used}",
            u.name
        ),
        ..Check::default()
    })
}

fn user_active(u: &User) -> Check {
    check(
        "user_active",
        !u.removed,
        if u.removed {
            format!("user {} was removed", u.name)
        } else {
            format!("user {} is active", u.name)
        },
    )
}

/// Explain whether `user` is entitled to `license_type` at `at`: holds an assigned licence of
/// the type (directly or as an add-on of their base licence), its dependencies hold, and every
/// group on the path to the root has a window covering `at` — the path of the group the held
/// licence counts against (a user in several groups is entitled only while that path is
/// valid), else of the user's own group. For a feature of the catalogue,
/// see [`feature_entitlement`]. `None` if the user never existed.
pub fn entitlement(
    tenant: &Tenant,
    user: UserId,
    license_type: &TypeCode,
    at: DateTime<Utc>,
) -> Option<Entitlement> {
    if tenant.features.contains_key(license_type) {
        return feature_entitlement(tenant, user, license_type, at);
    }
    if tenant.services.contains_key(license_type) {
        return service_entitlement(tenant, user, license_type, at);
    }
    let u = tenant.users.get(&user)?;
    let mut checks = vec![user_active(u)];
    let holdings = tenant.holdings(user);
    let held = u
        .licenses
        .iter()
        .filter_map(|id| tenant.licenses.get(id))
        .find_map(|base| {
            let counted = counted_text(tenant, u, base);
            if &base.license_type == license_type {
                return Some((
                    format!("holds {license_type} licence {}{counted}", base.id),
                    base,
                ));
            }
            base.addons
                .iter()
                .filter_map(|a| tenant.licenses.get(a))
                .find(|a| &a.license_type == license_type)
                .map(|a| {
                    let detail = format!(
                        "holds {license_type} add-on {} on {} licence {}{counted}",
                        a.id, base.license_type, base.id
                    );
                    (detail, base)
                })
        });
    let holds = held.is_some();
    // The groups that judge it: those of the group the held licence counts against, else
    // (nothing held) the user's own group, where an assignment would count by default.
    let judged_in = held
        .as_ref()
        .and_then(|(_, base)| tenant.counting_group(base))
        .unwrap_or(u.group);
    checks.push(match held {
        Some((detail, _)) => check("holds_license", true, detail),
        None => check(
            "holds_license",
            false,
            format!("holds no assigned {license_type} licence"),
        ),
    });
    if let Some(definition) = tenant.catalogue.get(license_type) {
        if !definition.requires_any.is_empty() {
            let names: Vec<&str> = definition.requires_any.iter().map(|r| r.as_str()).collect();
            let met = definition
                .requires_any
                .iter()
                .find(|r| holdings.contains(r));
            checks.push(match met {
                Some(r) => check(
                    "requires",
                    true,
                    format!("requires one of {}: holds {r}", names.join(", ")),
                ),
                None => check(
                    "requires",
                    false,
                    format!("requires one of {}: holds none", names.join(", ")),
                ),
            });
        }
        let clash = holdings.iter().find(|h| {
            *h != license_type && events::catalogue::excludes(&tenant.catalogue, license_type, h)
        });
        checks.push(match clash {
            Some(h) => check(
                "excludes",
                false,
                format!("{license_type} cannot be held with {h}"),
            ),
            None => check(
                "excludes",
                true,
                format!("holds nothing that excludes {license_type}"),
            ),
        });
    }
    checks.extend(user_window_check(u, at));
    checks.extend(user_limit_check(tenant, u, license_type, holds));
    for_each_group_on_path(tenant, judged_in, &mut checks, |g, r, checks| {
        let limit = r.limits.get(license_type).map(|&limit| LimitUse {
            limit,
            used: g.used_of(license_type),
        });
        let text = limit.map_or_else(
            || format!("no {license_type} limit"),
            |l| format!("{license_type} limit {}, used {}", l.limit, l.used),
        );
        let mut window = window_check(g, r, at, &format!("; {text}"));
        window.limit = limit;
        checks.push(window);
        // For a user without the type, a full limit is why none can be assigned to them.
        if let Some(full) = limit.filter(|l| !holds && l.used >= l.limit) {
            checks.push(Check {
                rule: "limit_reached",
                passed: false,
                group: Some((g.id, g.name.clone())),
                detail: format!(
                    "group {} has used {} of its {license_type} limit {}: none can be assigned",
                    g.name, full.used, full.limit
                ),
                limit: Some(full),
                ..Check::default()
            });
        }
    });
    let allowed = checks.iter().all(|c| c.passed);
    Some(Entitlement { allowed, checks })
}

/// `" (counted against group <name>)"` for a licence counted against one of the user's other
/// groups, else nothing.
fn counted_text(tenant: &Tenant, u: &User, base: &events::state::License) -> String {
    match base.counted_in.filter(|g| *g != u.group) {
        Some(g) => {
            let name = tenant.groups.get(&g).map_or("?", |g| g.name.as_str());
            format!(" (counted against group {name})")
        }
        None => String::new(),
    }
}

/// For each group from `group` up to the root: `checks_of` its enabled restriction, or a
/// passed window check for a group without one (it blocks nothing).
fn for_each_group_on_path(
    tenant: &Tenant,
    group: GroupId,
    checks: &mut Vec<Check>,
    mut checks_of: impl FnMut(&Group, &Restriction, &mut Vec<Check>),
) {
    for id in tenant.path_to_root(group) {
        let Some(g) = tenant.groups.get(&id) else {
            continue;
        };
        match g.enabled_restriction() {
            Some(r) => checks_of(g, r, checks),
            None => checks.push(Check {
                rule: "group_window",
                passed: true,
                group: Some((g.id, g.name.clone())),
                detail: "no enabled restriction".into(),
                ..Check::default()
            }),
        }
    }
}

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Whether the enabled restriction `r` of group `g` has a window covering `at` (`then` is
/// added to the detail).
fn window_check(g: &Group, r: &Restriction, at: DateTime<Utc>, then: &str) -> Check {
    let window = format!(
        "window {} to {}",
        r.valid_from.map_or("open".into(), instant),
        r.valid_until.map_or("open".into(), instant)
    );
    let group = Some((g.id, g.name.clone()));
    match window_block(r, at) {
        None => Check {
            rule: "group_window",
            passed: true,
            group,
            detail: format!("{window} covers {}{then}", instant(at)),
            ..Check::default()
        },
        Some(rule) => Check {
            rule,
            passed: false,
            group,
            detail: format!("{window} does not cover {}{then}", instant(at)),
            ..Check::default()
        },
    }
}

/// Explain whether `user` may use metered service `code` at `at`: the user is active; the
/// service is switched on (`service_enabled`, failing `service_disabled`); each service it
/// requires is switched on (`service_requires`, failing `requires_missing`); and, with a cap,
/// the month of `at` has not used it up (`monthly_cap`, failing `monthly_cap_reached`, with
/// the monthly maximum as `limit`, what counted as `used`, and `resets_at`, the month's end).
/// `None` if the user never existed or the service is unknown.
pub fn service_entitlement(
    tenant: &Tenant,
    user: UserId,
    code: &TypeCode,
    at: DateTime<Utc>,
) -> Option<Entitlement> {
    let u = tenant.users.get(&user)?;
    let service = tenant.services.get(code)?;
    let mut checks = vec![user_active(u)];
    checks.push(if service.enabled {
        check(
            "service_enabled",
            true,
            format!("service {} is switched on", service.name),
        )
    } else {
        check(
            "service_disabled",
            false,
            format!("service {} is switched off", service.name),
        )
    });
    for required in &service.requires {
        let on = tenant.services.get(required).is_some_and(|s| s.enabled);
        checks.push(check(
            if on {
                "service_requires"
            } else {
                "requires_missing"
            },
            on,
            format!(
                "{code} requires service {required}, which is switched {}",
                if on { "on" } else { "off" }
            ),
        ));
    }
    if let Some(maximum) = service.monthly_maximum() {
        let zone = events::time::billing_zone(&tenant.billing_timezone);
        let month = events::time::Month::of(at, zone);
        let used = tenant
            .metered
            .get(&(code.clone(), month))
            .map_or(0, |m| m.used);
        let full = used >= maximum;
        checks.push(Check {
            rule: if full {
                "monthly_cap_reached"
            } else {
                "monthly_cap"
            },
            passed: !full,
            limit: Some(LimitUse {
                limit: maximum,
                used,
            }),
            resets_at: Some(month.end(zone)),
            detail: format!(
                "{month}: {used} of {maximum} {} used (base {} + cap {}){}",
                service.unit,
                service.base_allowance,
                maximum - service.base_allowance,
                if full {
                    format!("; stopped until {}", instant(month.end(zone)))
                } else {
                    String::new()
                }
            ),
            ..Check::default()
        });
    }
    let allowed = checks.iter().all(|c| c.passed);
    Some(Entitlement { allowed, checks })
}

/// Explain whether `user` may use `feature` at `at`. In order: the user is active; then for
/// each group from the user's up to the root, its window covers `at` (a group whose window
/// is over blocks everything under it, features too) and, where its restriction is enabled,
/// it does not switch the feature off (`feature_disabled`, naming the group); last, some group
/// on the path switches it on or the catalogue has it on by default (else
/// `feature_not_enabled`). `None` if the user never existed.
pub fn feature_entitlement(
    tenant: &Tenant,
    user: UserId,
    feature: &TypeCode,
    at: DateTime<Utc>,
) -> Option<Entitlement> {
    let u = tenant.users.get(&user)?;
    let mut checks = vec![user_active(u)];
    checks.extend(user_window_check(u, at));
    for_each_group_on_path(tenant, u.group, &mut checks, |g, r, checks| {
        checks.push(window_check(g, r, at, ""));
        let switch = g.feature_switch(feature);
        checks.push(Check {
            rule: if switch == Some(false) {
                "feature_disabled"
            } else {
                "group_feature"
            },
            passed: switch != Some(false),
            group: Some((g.id, g.name.clone())),
            detail: match switch {
                Some(false) => format!("group {} switches {feature} off", g.name),
                Some(true) => format!("group {} switches {feature} on", g.name),
                None => format!("group {} leaves {feature} as inherited", g.name),
            },
            ..Check::default()
        });
    });
    let default = tenant
        .features
        .get(feature)
        .is_some_and(|f| f.enabled_by_default);
    let switched_on = tenant
        .path_to_root(u.group)
        .into_iter()
        .filter_map(|id| tenant.groups.get(&id))
        .find(|g| g.feature_switch(feature) == Some(true));
    checks.push(match switched_on {
        Some(g) => Check {
            rule: "feature_enabled",
            passed: true,
            group: Some((g.id, g.name.clone())),
            detail: format!("group {} switches {feature} on", g.name),
            ..Check::default()
        },
        None if default => check(
            "feature_enabled",
            true,
            format!("{feature} is on by default"),
        ),
        None => check(
            "feature_not_enabled",
            false,
            format!("no group on the path switches {feature} on, and it is off by default"),
        ),
    });
    let allowed = checks.iter().all(|c| c.passed);
    Some(Entitlement { allowed, checks })
}
