//! What a key scoped to a group (a dealer's key) sees when it reads: the groups of its subtree,
//! their users, the licences those users hold and the events that name them. Anything else
//! answers 404 exactly as an unknown id does, so a dealer cannot probe the rest of the tree;
//! what is tenant-wide (usage of the whole tenant, billing) is 403. Writes are judged by
//! `events::decide_as` in the writer, against the state the command is decided on.
//!
//! The groups above the scope are the key's issuer's: a dealer sees its own group as a root
//! (no parent), and where a group above it limits or blocks something, the answer names the
//! scope group instead, marked `above_scope: true`.

use super::auth::Auth;
use super::error::ApiError;
use events::decide::scope::{group_in_scope, license_in_scope};
use events::{Envelope, Event, GroupId, License, LicenseId, Tenant, UserId};
use std::collections::HashSet;

/// The view of one tenant a caller may read.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    tenant: &'a Tenant,
    /// `None`: the whole tenant.
    group: Option<GroupId>,
}

impl<'a> Scope<'a> {
    pub fn of(auth: &Auth, tenant: &'a Tenant) -> Scope<'a> {
        Scope {
            tenant,
            group: auth.scope(),
        }
    }

    /// The group a scoped key is limited to.
    pub fn group_id(&self) -> Option<GroupId> {
        self.group
    }

    pub fn sees_group(&self, group: GroupId) -> bool {
        self.group
            .is_none_or(|scope| group_in_scope(self.tenant, scope, group))
    }

    /// A user of a group of the scope, removed or not.
    pub fn sees_user(&self, user: UserId) -> bool {
        match self.group {
            None => true,
            Some(scope) => self
                .tenant
                .users
                .get(&user)
                .is_some_and(|u| group_in_scope(self.tenant, scope, u.group)),
        }
    }

    pub fn sees_license(&self, license: &License) -> bool {
        self.group
            .is_none_or(|scope| license_in_scope(self.tenant, scope, license))
    }

    /// 404 `group … not found` for a group the caller may not see, as for one that does not
    /// exist.
    pub fn group(&self, group: GroupId) -> Result<(), ApiError> {
        if self.sees_group(group) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("group {group} not found")))
        }
    }

    /// 404 `user … not found` for a user the caller may not see.
    pub fn user(&self, user: UserId) -> Result<(), ApiError> {
        if self.sees_user(user) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("user {user} not found")))
        }
    }

    /// The parent a group is shown with: none for the scope group itself.
    pub fn parent_of(&self, group: GroupId, parent: Option<GroupId>) -> Option<GroupId> {
        if self.group == Some(group) {
            None
        } else {
            parent
        }
    }

    /// A group an answer names as limiting or blocking: itself when the caller sees it,
    /// otherwise (a group above the scope) the scope group, and whether it was replaced.
    pub fn shown_group(&self, group: GroupId) -> (GroupId, bool) {
        match self.group {
            Some(scope) if !group_in_scope(self.tenant, scope, group) => (scope, true),
            _ => (group, false),
        }
    }

    /// The name of a group as shown.
    pub fn group_name(&self, group: GroupId) -> String {
        self.tenant
            .groups
            .get(&group)
            .map(|g| g.name.clone())
            .unwrap_or_default()
    }

    /// An entitlement's checks as a scoped key sees them: the checks of the groups above the
    /// scope become one check on the scope group (`above_scope`), passed when all of them
    /// passed, failing with the first failing one's rule otherwise; their windows, limits and
    /// usage are the issuer's and are not shown.
    /// Also returns the index of that folded check.
    pub fn fold_checks_above(
        &self,
        checks: Vec<projections::Check>,
    ) -> (Vec<projections::Check>, Option<usize>) {
        let Some(scope) = self.group else {
            return (checks, None);
        };
        let mut out = Vec::with_capacity(checks.len());
        let mut above: Option<projections::Check> = None;
        for check in checks {
            let outside = check
                .group
                .as_ref()
                .is_some_and(|(id, _)| !group_in_scope(self.tenant, scope, *id));
            if !outside {
                out.push(check);
                continue;
            }
            match &mut above {
                Some(folded) => {
                    if folded.passed && !check.passed {
                        folded.passed = false;
                        folded.rule = check.rule;
                        folded.detail = above_detail(false);
                    }
                }
                None => {
                    above = Some(projections::Check {
                        limit: None,
                        rule: check.rule,
                        passed: check.passed,
                        group: Some((scope, self.group_name(scope))),
                        detail: above_detail(check.passed),
                        ..projections::Check::default()
                    })
                }
            }
        }
        let folded = above.is_some().then_some(out.len());
        out.extend(above);
        (out, folded)
    }

    /// The ids a scoped key sees, taken once so a scan of the log does not hold the state;
    /// `None` for the whole tenant.
    pub fn visible_ids(&self) -> Option<VisibleIds> {
        let scope = self.group?;
        let groups: HashSet<GroupId> = self.tenant.subtree(scope).into_iter().collect();
        let mut users = HashSet::new();
        let mut bases = HashSet::new();
        for user in self.tenant.users.values() {
            if groups.contains(&user.group) {
                users.insert(user.id);
                bases.extend(user.licenses.iter().copied());
            }
        }
        Some(VisibleIds {
            groups,
            users,
            bases,
        })
    }
}

/// The groups, users and base licences of a scope at one instant.
pub struct VisibleIds {
    groups: HashSet<GroupId>,
    users: HashSet<UserId>,
    bases: HashSet<LicenseId>,
}

impl VisibleIds {
    /// Whether a scoped key sees an event: one naming a group or user of the scope, or an
    /// add-on change on a base licence held there.
    pub fn sees_event(&self, envelope: &Envelope) -> bool {
        let touched = projections::touches(&envelope.event);
        touched.groups.iter().any(|g| self.groups.contains(g))
            || touched.users.iter().any(|u| self.users.contains(u))
            || match &envelope.event {
                Event::AddonAttached { base, .. } | Event::AddonDetached { base, .. } => {
                    self.bases.contains(base)
                }
                _ => false,
            }
    }
}

fn above_detail(passed: bool) -> String {
    if passed {
        "the groups above this key's group, which its issuer manages, allow it".into()
    } else {
        "a group above this key's group, which its issuer manages, blocks it".into()
    }
}

/// 403 for a key scoped to a group asking for something of the whole tenant.
pub fn whole_tenant(auth: &Auth, what: &str) -> Result<(), ApiError> {
    match auth.scope() {
        None => Ok(()),
        Some(group) => Err(ApiError::forbidden(format!(
            "a key scoped to group {group} may not read {what}: it covers the whole tenant; the group's state shows its limits and usage"
        ))
        .with_details(serde_json::json!({"reason": "outside_key_scope"}))),
    }
}
