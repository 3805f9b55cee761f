//! Tenant rules: creating a tenant, the per-tenant totals, and its settings (retention,
//! webhook, prices, API keys).

use super::common::{check_name, invalid, known_type, one};
use super::{
    GROUPS_PER_TENANT_MAX, KEYS_PER_TENANT_MAX, LICENSES_PER_TENANT_MAX, RETENTION_DAYS_FREE_MAX,
    RETENTION_MONTHS_MAX, UNIT_PRICE_MINOR_MAX, USERS_PER_TENANT_MAX, WEBHOOK_SECRET_BYTES_MAX,
    WEBHOOK_URL_BYTES_MAX,
};
use crate::catalogue::default_catalogue;
use crate::event::{Event, Retention, Role};
use crate::ids::{GroupId, KeyId, TypeCode};
use crate::notification::NotificationTemplate;
use crate::rejection::{Rejection, Rule, Violation};
use crate::state::Tenant;
use crate::time::truncate_to_micros;
use chrono::{DateTime, Utc};

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

pub(super) fn create_tenant(
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

pub(super) fn set_retention(retention: Retention) -> Result<Vec<Event>, Rejection> {
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

pub(super) fn set_price(
    state: &Tenant,
    license_type: &TypeCode,
    unit_price_minor: i64,
    currency: &str,
    effective_from: DateTime<Utc>,
) -> Result<Vec<Event>, Rejection> {
    // A metered service is priced per unit over its base allowance.
    if !state.services.contains_key(license_type) {
        known_type(state, license_type)?;
    }
    if unit_price_minor < 0 {
        return Err(invalid("unit_price_minor must not be negative"));
    }
    if unit_price_minor > UNIT_PRICE_MINOR_MAX {
        return Err(invalid(format!(
            "unit_price_minor must be at most {UNIT_PRICE_MINOR_MAX}"
        )));
    }
    if currency != state.currency {
        return Err(one(Violation::new(
            Rule::CurrencyMismatch,
            format!("the tenant bills in {}, not {currency}", state.currency),
        )));
    }
    Ok(vec![Event::PriceSet {
        license_type: license_type.clone(),
        unit_price_minor,
        currency: currency.to_string(),
        effective_from: truncate_to_micros(effective_from),
    }])
}

/// The URL and the secret that signs deliveries to it from now on (a new one each time: a
/// webhook set again rotates its secret).
pub(super) fn set_webhook(url: &str, secret: &str) -> Result<Vec<Event>, Rejection> {
    if url.is_empty() || url.len() > WEBHOOK_URL_BYTES_MAX {
        return Err(invalid(format!(
            "the webhook URL must be 1 to {WEBHOOK_URL_BYTES_MAX} bytes"
        )));
    }
    if secret.is_empty() || secret.len() > WEBHOOK_SECRET_BYTES_MAX {
        return Err(invalid(format!(
            "the webhook secret must be 1 to {WEBHOOK_SECRET_BYTES_MAX} bytes"
        )));
    }
    Ok(vec![
        Event::WebhookSet {
            url: url.to_string(),
        },
        Event::WebhookSecretSet {
            secret: secret.to_string(),
        },
    ])
}

/// A template is stored only once it parses and names only known variables, so every stored
/// template renders.
pub(super) fn set_notification_template(
    template: &NotificationTemplate,
) -> Result<Vec<Event>, Rejection> {
    template.check().map_err(Rejection::InvalidTemplate)?;
    Ok(vec![Event::NotificationTemplateSet {
        template: template.clone(),
    }])
}

pub(super) fn issue_key(
    state: &Tenant,
    key: KeyId,
    name: &str,
    role: Role,
    token_hash: [u8; 32],
    group: Option<GroupId>,
) -> Result<Vec<Event>, Rejection> {
    check_name(name)?;
    if state.keys.contains_key(&key) {
        return Err(Rejection::KeyAlreadyExists(key));
    }
    if let Some(group) = group {
        if !state.groups.contains_key(&group) {
            return Err(Rejection::GroupNotFound(group));
        }
    }
    let live_keys = state.keys.values().filter(|k| !k.revoked).count();
    check_tenant_total(TenantTotal::Keys, live_keys, 1).map_err(one)?;
    let name = name.to_string();
    Ok(vec![match group {
        None => Event::ApiKeyIssued {
            key,
            name,
            role,
            token_hash,
        },
        Some(group) => Event::ScopedApiKeyIssued {
            key,
            name,
            role,
            token_hash,
            group,
        },
    }])
}

pub(super) fn revoke_key(state: &Tenant, key: KeyId) -> Result<Vec<Event>, Rejection> {
    match state.keys.get(&key) {
        None => Err(Rejection::KeyNotFound(key)),
        Some(k) if k.revoked => Err(Rejection::KeyAlreadyRevoked(key)),
        Some(_) => Ok(vec![Event::ApiKeyRevoked { key }]),
    }
}
