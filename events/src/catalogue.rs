//! The catalogue of licence types: data, not code. Installed with every new tenant and
//! editable per tenant.

use crate::ids::TypeCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Whether a type is a seat held by a user or an add-on hanging off a seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Assigned to a user.
    Base,
    /// Attached to a base licence.
    Addon,
}

/// One licence type and its rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseType {
    /// The code, unique in the tenant.
    pub code: TypeCode,
    /// Base or add-on.
    pub kind: Kind,
    /// For an add-on: the base types it may attach to.
    pub attaches_to: Vec<TypeCode>,
    /// The holder must also hold one of these types (empty: no requirement).
    pub requires_any: Vec<TypeCode>,
    /// The holder may not hold any of these types at the same time (checked both ways).
    pub excludes: Vec<TypeCode>,
}

/// A tenant's catalogue, ordered by code.
pub type Catalogue = BTreeMap<TypeCode, LicenseType>;

/// A named feature (catalogue `kind: "feature"`): something a group's restriction switches on
/// or off for the users under it. It has no units: it is never provisioned, priced, assigned,
/// attached or billed. Its code shares the catalogue's namespace with the licence types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feature {
    /// The code, unique in the tenant among features and licence types.
    pub code: TypeCode,
    /// What people call it (`UKEY2`).
    pub name: String,
    /// Available where no group on the path switches it on or off.
    pub enabled_by_default: bool,
}

/// A tenant's features, ordered by code.
pub type Features = BTreeMap<TypeCode, Feature>;

/// The base types of the default catalogue.
pub const DEFAULT_BASE_TYPES: [&str; 9] = [
    "phone_system",
    "call_group",
    "auto_attendant",
    "developer",
    "cc_agent",
    "cc_supervisor",
    "cc_wallboard",
    "cc_admin",
    "voice",
];

const CC_SEATS: [&str; 4] = ["cc_agent", "cc_supervisor", "cc_wallboard", "cc_admin"];
const CC_ANALYTICS_SEATS: [&str; 3] = ["cc_wallboard", "cc_supervisor", "cc_admin"];
const ALL_USER_SEATS: [&str; 6] = [
    "phone_system",
    "cc_agent",
    "cc_supervisor",
    "cc_wallboard",
    "cc_admin",
    "voice",
];

fn codes(list: &[&str]) -> Vec<TypeCode> {
    list.iter().map(|code| TypeCode::from(*code)).collect()
}

fn base(code: &str, excludes: &[&str]) -> LicenseType {
    LicenseType {
        code: code.into(),
        kind: Kind::Base,
        attaches_to: vec![],
        requires_any: vec![],
        excludes: codes(excludes),
    }
}

fn addon(
    code: &str,
    attaches_to: &[&str],
    requires_any: &[&str],
    excludes: &[&str],
) -> LicenseType {
    LicenseType {
        code: code.into(),
        kind: Kind::Addon,
        attaches_to: codes(attaches_to),
        requires_any: codes(requires_any),
        excludes: codes(excludes),
    }
}

/// The default catalogue of SPEC "Licences and add-ons".
///
/// - a user holds at most one `cc_*` seat (each excludes the other three);
/// - `outbound` requires `voice`;
/// - `historical_analytics_*` attach only to wallboard, supervisor or admin seats, require one
///   of them, and exclude each other;
/// - `license_call_recording_unlimited_enabled` requires `call_recording`.
pub fn default_catalogue() -> Catalogue {
    let others =
        |me: &str| -> Vec<&str> { CC_SEATS.iter().copied().filter(|c| *c != me).collect() };
    let mut types = vec![
        base("phone_system", &[]),
        base("call_group", &[]),
        base("auto_attendant", &[]),
        base("developer", &[]),
        base("voice", &[]),
    ];
    for seat in CC_SEATS {
        types.push(base(seat, &others(seat)));
    }
    let phone = ["phone_system"];
    types.extend([
        addon("call_recording", &ALL_USER_SEATS, &[], &[]),
        addon("device_desktop_app", &phone, &[], &[]),
        addon("license_dnc_checking_enabled", &ALL_USER_SEATS, &[], &[]),
        addon("device_ip_phone", &phone, &[], &[]),
        addon("device_mobile_app", &phone, &[], &[]),
        addon("device_web_rtc", &ALL_USER_SEATS, &[], &[]),
        addon(
            "license_number",
            &["phone_system", "call_group", "auto_attendant", "voice"],
            &[],
            &[],
        ),
        addon("team_chat", &phone, &[], &[]),
        addon(
            "license_call_recording_unlimited_enabled",
            &ALL_USER_SEATS,
            &["call_recording"],
            &[],
        ),
        addon("outbound", &ALL_USER_SEATS, &["voice"], &[]),
        addon(
            "historical_analytics_viewer",
            &CC_ANALYTICS_SEATS,
            &CC_ANALYTICS_SEATS,
            &["historical_analytics_creator"],
        ),
        addon(
            "historical_analytics_creator",
            &CC_ANALYTICS_SEATS,
            &CC_ANALYTICS_SEATS,
            &["historical_analytics_viewer"],
        ),
        addon("accent_conversion", &CC_SEATS, &[], &[]),
        addon("sip_number", &phone, &[], &[]),
        addon("mobile_app", &phone, &[], &[]),
    ]);
    types.into_iter().map(|t| (t.code.clone(), t)).collect()
}

/// Whether two types exclude each other in this catalogue (either side may declare it).
pub fn excludes(catalogue: &Catalogue, a: &TypeCode, b: &TypeCode) -> bool {
    let declares = |x: &TypeCode, y: &TypeCode| {
        catalogue
            .get(x)
            .is_some_and(|t| t.excludes.iter().any(|e| e == y))
    };
    declares(a, b) || declares(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_catalogue_has_every_type_of_the_spec() {
        let catalogue = default_catalogue();
        assert_eq!(catalogue.len(), 24);
        let bases = catalogue.values().filter(|t| t.kind == Kind::Base).count();
        assert_eq!(bases, DEFAULT_BASE_TYPES.len());
    }

    #[test]
    fn a_cc_agent_can_never_carry_historical_analytics() {
        let catalogue = default_catalogue();
        for code in [
            "historical_analytics_viewer",
            "historical_analytics_creator",
        ] {
            let addon = &catalogue[&TypeCode::from(code)];
            assert!(!addon.attaches_to.contains(&"cc_agent".into()));
        }
    }

    #[test]
    fn cc_seats_exclude_each_other_both_ways() {
        let catalogue = default_catalogue();
        assert!(excludes(&catalogue, &"cc_agent".into(), &"cc_admin".into()));
        assert!(excludes(&catalogue, &"cc_admin".into(), &"cc_agent".into()));
        assert!(!excludes(
            &catalogue,
            &"cc_agent".into(),
            &"phone_system".into()
        ));
    }
}
