//! Bearer-token authentication and the role table of SPEC "Access".

use super::error::ApiError;
use super::App;
use crate::ledger::KeyGrant;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use events::{GroupId, Role, TenantId};

/// What a request may do inside a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Read current state: every role.
    Read,
    /// Assign, unassign, reassign, add-ons, users: operator and admin.
    Operate,
    /// Quotas, quantities, terminations, prices, keys, settings: admin.
    Administer,
    /// History and as-of state: auditor and admin.
    Audit,
    /// Peaks and invoices: billing and admin.
    Bill,
}

/// Whether `role` grants `need`.
pub fn allows(role: Role, need: Need) -> bool {
    matches!(
        (role, need),
        (Role::Admin, _)
            | (_, Need::Read)
            | (Role::Operator, Need::Operate)
            | (Role::Auditor, Need::Audit)
            | (Role::Billing, Need::Bill)
    )
}

/// The authenticated caller.
#[derive(Clone, Copy, Debug)]
pub enum Auth {
    /// The root token: creates tenants, acts as admin inside every tenant.
    Root,
    /// A tenant's API key.
    Key(KeyGrant),
}

/// Hash of a bearer token, as stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl Auth {
    /// The identity stored as the `actor` of events.
    pub fn actor(&self) -> String {
        match self {
            Auth::Root => "root".to_string(),
            Auth::Key(grant) => format!("key:{}", grant.key),
        }
    }

    /// For a key scoped to a group (a dealer's key): that group.
    pub fn scope(&self) -> Option<GroupId> {
        match self {
            Auth::Root => None,
            Auth::Key(grant) => grant.group,
        }
    }

    /// The caller's role inside `tenant`, or 403 for a key of another tenant.
    pub fn role_in(&self, tenant: TenantId) -> Result<Role, ApiError> {
        match self {
            Auth::Root => Ok(Role::Admin),
            Auth::Key(grant) if grant.tenant == tenant => Ok(grant.role),
            Auth::Key(_) => Err(ApiError::forbidden("this key belongs to another tenant")),
        }
    }

    /// Check that the caller may do `need` inside `tenant`.
    pub fn require(&self, tenant: TenantId, need: Need) -> Result<Role, ApiError> {
        let role = self.role_in(tenant)?;
        if allows(role, need) {
            Ok(role)
        } else {
            Err(ApiError::forbidden(format!(
                "the {} role may not do this",
                role_name(role)
            )))
        }
    }

    /// Only the root token.
    pub fn require_root(&self) -> Result<(), ApiError> {
        match self {
            Auth::Root => Ok(()),
            Auth::Key(_) => Err(ApiError::forbidden("only the root token may do this")),
        }
    }
}

/// The wire name of a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
        Role::Auditor => "auditor",
        Role::Billing => "billing",
    }
}

impl FromRequestParts<App> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("Authorization must be Bearer <token>"))?;
        let hash = token_hash(token);
        if blake3::Hash::from(hash) == blake3::Hash::from(app.root_token_hash) {
            return Ok(Auth::Root);
        }
        let grant = app.ledger.grant(&hash);
        grant
            .map(Auth::Key)
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table_matches_the_spec() {
        use Need::*;
        let table = [
            (Role::Viewer, [true, false, false, false, false]),
            (Role::Operator, [true, true, false, false, false]),
            (Role::Admin, [true, true, true, true, true]),
            (Role::Auditor, [true, false, false, true, false]),
            (Role::Billing, [true, false, false, false, true]),
        ];
        for (role, expected) in table {
            let got = [Read, Operate, Administer, Audit, Bill].map(|need| allows(role, need));
            assert_eq!(got, expected, "{role:?}");
        }
    }
}
