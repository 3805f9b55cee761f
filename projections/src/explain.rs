//! "Why can't this user use feature X?": every entitlement check in order, with pass/fail, and
//! the first failing one as `blocked_by`.

use crate::group_state::window_block;
use chrono::{DateTime, Utc};
use events::{GroupId, Tenant, TypeCode, UserId};

/// One check of an entitlement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// `user_active`, `holds_license`, `requires`, `excludes`, `group_window`, `group_limit`.
    pub rule: &'static str,
    pub passed: bool,
    pub group: Option<(GroupId, String)>,
    pub detail: String,
}

/// The answer to "may this user use this type at this instant?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entitlement {
    pub allowed: bool,
    pub checks: Vec<Check>,
}

impl Entitlement {
    /// The first failing check.
    pub fn blocked_by(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.passed)
    }
}

fn check(rule: &'static str, passed: bool, detail: String) -> Check {
    Check {
        rule,
        passed,
        group: None,
        detail,
    }
}

/// Explain whether `user` is entitled to `license_type` at `at`: holds an assigned licence of
/// the type (directly or as an add-on of their base licence), its dependencies hold, and every
/// group on the path to the root has a window covering `at`. `None` if the user never existed.
pub fn entitlement(
    tenant: &Tenant,
    user: UserId,
    license_type: &TypeCode,
    at: DateTime<Utc>,
) -> Option<Entitlement> {
    let u = tenant.users.get(&user)?;
    let mut checks = vec![check(
        "user_active",
        !u.removed,
        if u.removed {
            format!("user {} was removed", u.name)
        } else {
            format!("user {} is active", u.name)
        },
    )];
    let holdings = tenant.holdings(user);
    let held = u
        .licenses
        .iter()
        .filter_map(|id| tenant.licenses.get(id))
        .find_map(|base| {
            if &base.license_type == license_type {
                return Some(format!("holds {license_type} licence {}", base.id));
            }
            base.addons
                .iter()
                .filter_map(|a| tenant.licenses.get(a))
                .find(|a| &a.license_type == license_type)
                .map(|a| {
                    format!(
                        "holds {license_type} add-on {} on {} licence {}",
                        a.id, base.license_type, base.id
                    )
                })
        });
    checks.push(match held {
        Some(detail) => check("holds_license", true, detail),
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
    for id in tenant.path_to_root(u.group) {
        let Some(g) = tenant.groups.get(&id) else {
            continue;
        };
        let group = Some((g.id, g.name.clone()));
        let Some(r) = g.enabled_restriction() else {
            checks.push(Check {
                rule: "group_window",
                passed: true,
                group,
                detail: "no enabled restriction".into(),
            });
            continue;
        };
        let window = format!(
            "window {} to {}",
            r.valid_from.map_or("open".into(), |f| f
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            r.valid_until.map_or("open".into(), |u| u
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        );
        let limit = r.limits.get(license_type).map_or_else(
            || format!("no {license_type} limit"),
            |l| format!("{license_type} limit {l}, used {}", g.used_of(license_type)),
        );
        checks.push(match window_block(r, at) {
            None => Check {
                rule: "group_window",
                passed: true,
                group,
                detail: format!(
                    "{window} covers {}; {limit}",
                    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                ),
            },
            Some(rule) => Check {
                rule,
                passed: false,
                group,
                detail: format!(
                    "{window} does not cover {}; {limit}",
                    at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                ),
            },
        });
    }
    let allowed = checks.iter().all(|c| c.passed);
    Some(Entitlement { allowed, checks })
}
