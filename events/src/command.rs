//! Commands: what a client asks for. `decide` turns one into events or a rejection.

use crate::event::{Restriction, Retention, Role, UserRestriction};
use crate::ids::{CommandId, GroupId, KeyId, LicenseId, TypeCode, UserId};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// What the shell knows about a command besides its content. Time arrives here; `decide`
/// never reads a clock.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub now: DateTime<Utc>,
    /// New licence ids are derived from it, so `decide` stays a pure function.
    pub command_id: CommandId,
}

/// A new user, alone or in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    pub user: UserId,
    pub name: String,
    pub group: GroupId,
    pub extension: Option<String>,
    pub number: Option<String>,
}

/// Everything a client can ask the ledger to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    CreateTenant {
        name: String,
        billing_timezone: String,
        currency: String,
    },
    ProvisionLicenses {
        license_type: TypeCode,
        quantity: u32,
    },
    SetQuantity {
        license_type: TypeCode,
        quantity: u32,
    },
    TerminateLicense {
        license: LicenseId,
    },
    /// `group`: which of the user's groups the licence counts against; `None`: the user's
    /// own group.
    AssignLicense {
        license: LicenseId,
        user: UserId,
        group: Option<GroupId>,
    },
    UnassignLicense {
        license: LicenseId,
    },
    /// `group` as for [`Command::AssignLicense`], of the receiving user's groups.
    ReassignLicense {
        license: LicenseId,
        user: UserId,
        group: Option<GroupId>,
    },
    AttachAddon {
        base: LicenseId,
        addon: LicenseId,
    },
    DetachAddon {
        base: LicenseId,
        addon: LicenseId,
    },
    /// Pick free licences of these types and hand them to the user in one step.
    AssignByType {
        user: UserId,
        license_type: TypeCode,
        addons: Vec<TypeCode>,
        /// As for [`Command::AssignLicense`].
        group: Option<GroupId>,
    },
    CreateGroup {
        group: GroupId,
        name: String,
        parent: Option<GroupId>,
        /// The group administrator's contact address.
        contact_email: Option<String>,
    },
    /// `parent: Some(None)` makes the group a root group; `contact_email: Some(None)` clears
    /// the group's own contact.
    UpdateGroup {
        group: GroupId,
        name: Option<String>,
        parent: Option<Option<GroupId>>,
        contact_email: Option<Option<String>>,
    },
    /// Set a group's restriction, leaving the features it switches as they are.
    SetRestriction {
        group: GroupId,
        restriction: Restriction,
    },
    /// Set a group's restriction and the features it switches on (`true`) or off (`false`)
    /// in one step; features absent from the map are inherited.
    SetRestrictionAndFeatures {
        group: GroupId,
        restriction: Restriction,
        features: BTreeMap<TypeCode, bool>,
    },
    ClearRestriction {
        group: GroupId,
    },
    CreateUser(NewUser),
    CreateUsers(Vec<NewUser>),
    /// Rename, move, or change the extension or DID number: `None` leaves a field as it is;
    /// for the numbers `Some(None)` clears one.
    UpdateUser {
        user: UserId,
        name: Option<String>,
        group: Option<GroupId>,
        extension: Option<Option<String>>,
        number: Option<Option<String>>,
    },
    DeleteUser {
        user: UserId,
    },
    /// Make the user a member of another group besides their own.
    AddUserToGroup {
        user: UserId,
        group: GroupId,
    },
    /// Take the user out of one of their other groups; the licences counted against it move
    /// to the user's own group, within its limits.
    RemoveUserFromGroup {
        user: UserId,
        group: GroupId,
    },
    /// Set a user's personal limits and validity window (inside their group's).
    SetUserRestriction {
        user: UserId,
        restriction: UserRestriction,
    },
    /// Clear a user's personal limits and window.
    ClearUserRestriction {
        user: UserId,
    },
    SetRetention(Retention),
    SetPrice {
        license_type: TypeCode,
        unit_price_minor: i64,
        currency: String,
        effective_from: DateTime<Utc>,
    },
    IssueKey {
        key: KeyId,
        name: String,
        role: Role,
        token_hash: [u8; 32],
        /// A dealer's key: it reads and manages only this group's subtree.
        group: Option<GroupId>,
    },
    RevokeKey {
        key: KeyId,
    },
    /// Define a new licence type or change an existing one.
    DefineLicenseType(crate::catalogue::LicenseType),
    /// Define a new feature or change an existing one.
    DefineFeature(crate::catalogue::Feature),
    /// Apply a bulk-import file: every row validated first, all applied or none.
    Import(Vec<ImportRow>),
    /// Set the URL due reminders are delivered to, and the new secret deliveries are signed
    /// with (chosen by the caller: `decide` draws nothing).
    SetWebhook {
        url: String,
        secret: String,
    },
    /// Record that the `unblocked` notification of the `groups_unblocked` event at `version`
    /// was delivered.
    RecordUnblockedNotified {
        version: u64,
    },
    /// Define a metered service or change it.
    DefineService(crate::metering::Service),
    /// Report consumption of metered services: every record judged, the batch stored as one
    /// event; records already seen (by id, in their month) are left out.
    RecordUsage(Vec<crate::metering::NewUsageRecord>),
    /// Store a cart: `commands` (the what-if JSON) previewed at `version`, which must still
    /// be the tenant's.
    CreateCart {
        cart: crate::ids::CartId,
        commands: String,
        version: u64,
        amount_minor_delta: i64,
    },
    /// Apply a cart's commands (parsed from what it stored) in one batch, all or none, if the
    /// tenant is still at the version the cart was stored at.
    ConfirmCart {
        cart: crate::ids::CartId,
        commands: Vec<Command>,
    },
    /// Set the tenant's reminder template.
    SetNotificationTemplate(crate::notification::NotificationTemplate),
    /// Record that a group's reminder due at `due_at` was delivered.
    RecordReminderDelivered {
        group: GroupId,
        due_at: DateTime<Utc>,
    },
}

/// One row of a bulk-import file (SPEC "Bulk import"), as read, before any validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportRow {
    /// 1 for the first data row.
    pub row: u32,
    pub extension: String,
    pub number: String,
    /// A user id or a user's unique name.
    pub user: String,
    /// Non-empty add-on cells: the column's header and the code in it.
    pub addons: Vec<(String, String)>,
}
