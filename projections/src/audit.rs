//! Audit: what an event concerns, so history can be filtered by user, licence, group and type
//! (a feature's code counts as a type: `?type=` finds the events naming it).

use events::{Event, GroupId, LicenseId, TypeCode, UserId};

/// The ids and types an event names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touches<'a> {
    pub users: Vec<UserId>,
    pub licenses: Vec<LicenseId>,
    pub groups: Vec<GroupId>,
    pub types: Vec<&'a TypeCode>,
}

/// Everything `event` names directly.
pub fn touches(event: &Event) -> Touches<'_> {
    let mut t = Touches::default();
    match event {
        Event::TenantCreated { .. } | Event::ApiKeyIssued { .. } | Event::ApiKeyRevoked { .. } => {}
        Event::RetentionSet { .. } => {}
        Event::ScopedApiKeyIssued { group, .. } => t.groups.push(*group),
        Event::LicenseTypeDefined { definition } => t.types.push(&definition.code),
        Event::LicensesProvisioned { license_type, ids } => {
            t.types.push(license_type);
            t.licenses.extend(ids.iter().copied());
        }
        Event::LicenseTerminated {
            license,
            license_type,
        } => {
            t.types.push(license_type);
            t.licenses.push(*license);
        }
        Event::LicenseAssigned {
            license,
            license_type,
            user,
        }
        | Event::LicenseUnassigned {
            license,
            license_type,
            user,
        } => {
            t.types.push(license_type);
            t.licenses.push(*license);
            t.users.push(*user);
        }
        Event::LicenseReassigned {
            license,
            license_type,
            from,
            to,
        } => {
            t.types.push(license_type);
            t.licenses.push(*license);
            t.users.extend([*from, *to]);
        }
        Event::AddonAttached {
            addon,
            addon_type,
            base,
        }
        | Event::AddonDetached {
            addon,
            addon_type,
            base,
        } => {
            t.types.push(addon_type);
            t.licenses.extend([*addon, *base]);
        }
        Event::GroupCreated { group, parent, .. } | Event::GroupMoved { group, parent } => {
            t.groups.push(*group);
            t.groups.extend(parent.iter().copied());
        }
        Event::GroupRenamed { group, .. }
        | Event::RestrictionSet { group, .. }
        | Event::RestrictionCleared { group }
        | Event::GroupContactSet { group, .. } => t.groups.push(*group),
        Event::UserCreated { user, group, .. } | Event::UserMoved { user, group } => {
            t.users.push(*user);
            t.groups.push(*group);
        }
        Event::UserRenamed { user, .. } | Event::UserRemoved { user } => t.users.push(*user),
        Event::PriceSet { license_type, .. } => t.types.push(license_type),
        Event::UserNumbersSet { user, .. } => t.users.push(*user),
        Event::WebhookSet { .. }
        | Event::WebhookSecretSet { .. }
        | Event::NotificationTemplateSet { .. }
        | Event::UnblockedNotified { .. } => {}
        Event::GroupsUnblocked { group, groups, .. } => {
            t.groups.push(*group);
            t.groups
                .extend(groups.iter().copied().filter(|g| g != group));
        }
        Event::ReminderDelivered { group, .. } => t.groups.push(*group),
        Event::FeatureDefined { definition } => t.types.push(&definition.code),
        Event::RestrictionFeaturesSet { group, features } => {
            t.groups.push(*group);
            t.types.extend(features.keys());
        }
        Event::UserRestrictionSet { user, restriction } => {
            t.users.push(*user);
            t.types.extend(restriction.limits.keys());
        }
        Event::UserRestrictionCleared { user } => t.users.push(*user),
        Event::UserGroupAdded { user, group } | Event::UserGroupRemoved { user, group } => {
            t.users.push(*user);
            t.groups.push(*group);
        }
        Event::CartCreated { .. } | Event::CartConfirmed { .. } => {}
        Event::ServiceDefined { service } => {
            t.types.push(&service.code);
            t.types.extend(service.requires.iter());
        }
        Event::UsageRecorded { records } => {
            // A batch holds up to 10 000 records: each service and user once, without a
            // quadratic search of what was collected.
            let services: std::collections::BTreeSet<&TypeCode> =
                records.iter().map(|r| &r.service).collect();
            let users: std::collections::BTreeSet<UserId> =
                records.iter().filter_map(|r| r.user).collect();
            t.types.extend(services);
            t.users.extend(users);
        }
        Event::LicenseCountedIn {
            license,
            user,
            group,
        } => {
            t.licenses.push(*license);
            t.users.push(*user);
            t.groups.push(*group);
        }
    }
    t
}
