//! Events: the immutable facts of the log, their envelope and their versioned binary encoding.
//!
//! **Invariant:** variants are only ever appended to [`Event`]; an existing variant's fields never
//! change. A change of shape is a new variant (`…V2`) and `evolve` handles both forever.

use crate::catalogue::{Feature, LicenseType};
use crate::ids::{CommandId, GroupId, KeyId, LicenseId, TenantId, TypeCode, UserId};
use crate::notification::NotificationTemplate;
use crate::time::{instant, optional_instant};
use bincode::Options;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Role of an API key (SPEC "Access").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads current state.
    Viewer,
    /// Viewer, plus assign / unassign / reassign / add-ons / users.
    Operator,
    /// Everything inside its tenant.
    Admin,
    /// Viewer, plus history and as-of state.
    Auditor,
    /// Viewer, plus usage peaks and invoices.
    Billing,
}

/// How often an expiry reminder repeats once it is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderFrequency {
    Once,
    Daily,
    Weekly,
    #[serde(rename = "every_30_days")]
    Every30Days,
}

/// A reminder `days_before` the group's `valid_until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    pub days_before: u32,
    pub frequency: ReminderFrequency,
}

/// A group's restriction (quota). Disabled means unlimited; types absent from `limits` are
/// unlimited too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restriction {
    pub enabled: bool,
    pub limits: BTreeMap<TypeCode, u64>,
    #[serde(with = "optional_instant", default)]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(with = "optional_instant", default)]
    pub valid_until: Option<DateTime<Utc>>,
    pub reminder: Option<Reminder>,
}

/// A user's personal licence settings: limits per type (licences of the type the user may
/// hold, add-ons counted) and a validity window. They lie inside the user's group's: a limit
/// never above the effective limit of the primary group's path, the window inside its
/// effective window. Types absent from `limits` are bounded by the groups alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRestriction {
    pub limits: BTreeMap<TypeCode, u64>,
    #[serde(with = "optional_instant", default)]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(with = "optional_instant", default)]
    pub valid_until: Option<DateTime<Utc>>,
}

/// Call-recording retention of a tenant: up to 14 days is free, otherwise whole quarters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    Days(u32),
    Months(u32),
}

impl Retention {
    /// Billing units each `call_recording` licence counts for.
    pub fn units_per_license(&self) -> u64 {
        match self {
            Retention::Days(_) => 0,
            Retention::Months(months) => u64::from(*months / 3),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention::Days(14)
    }
}

/// Every state change of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    TenantCreated {
        name: String,
        billing_timezone: String,
        currency: String,
    },
    LicenseTypeDefined {
        definition: LicenseType,
    },
    LicensesProvisioned {
        license_type: TypeCode,
        ids: Vec<LicenseId>,
    },
    LicenseTerminated {
        license: LicenseId,
        license_type: TypeCode,
    },
    LicenseAssigned {
        license: LicenseId,
        license_type: TypeCode,
        user: UserId,
    },
    LicenseUnassigned {
        license: LicenseId,
        license_type: TypeCode,
        user: UserId,
    },
    LicenseReassigned {
        license: LicenseId,
        license_type: TypeCode,
        from: UserId,
        to: UserId,
    },
    AddonAttached {
        addon: LicenseId,
        addon_type: TypeCode,
        base: LicenseId,
    },
    AddonDetached {
        addon: LicenseId,
        addon_type: TypeCode,
        base: LicenseId,
    },
    GroupCreated {
        group: GroupId,
        name: String,
        parent: Option<GroupId>,
    },
    GroupMoved {
        group: GroupId,
        parent: Option<GroupId>,
    },
    GroupRenamed {
        group: GroupId,
        name: String,
    },
    RestrictionSet {
        group: GroupId,
        restriction: Restriction,
    },
    RestrictionCleared {
        group: GroupId,
    },
    UserCreated {
        user: UserId,
        name: String,
        group: GroupId,
        extension: Option<String>,
        number: Option<String>,
    },
    UserMoved {
        user: UserId,
        group: GroupId,
    },
    UserRenamed {
        user: UserId,
        name: String,
    },
    UserRemoved {
        user: UserId,
    },
    RetentionSet {
        retention: Retention,
    },
    PriceSet {
        license_type: TypeCode,
        unit_price_minor: i64,
        currency: String,
        #[serde(with = "instant")]
        effective_from: DateTime<Utc>,
    },
    ApiKeyIssued {
        key: KeyId,
        name: String,
        role: Role,
        token_hash: [u8; 32],
    },
    ApiKeyRevoked {
        key: KeyId,
    },
    /// A user's extension and DID number were set (bulk import).
    UserNumbersSet {
        user: UserId,
        extension: Option<String>,
        number: Option<String>,
    },
    /// Where due expiry reminders are delivered.
    WebhookSet {
        url: String,
    },
    /// A group's expiry reminder due at `due_at` was delivered to the webhook.
    ReminderDelivered {
        group: GroupId,
        #[serde(with = "instant")]
        due_at: DateTime<Utc>,
    },
    /// A key that reads and manages only the subtree of `group` (a dealer's key).
    ScopedApiKeyIssued {
        key: KeyId,
        name: String,
        role: Role,
        token_hash: [u8; 32],
        group: GroupId,
    },
    /// A feature was defined or changed in the catalogue.
    FeatureDefined {
        definition: Feature,
    },
    /// A group's restriction now switches exactly these features on (`true`) or off
    /// (`false`); a feature absent is inherited. Replaces the group's earlier settings.
    RestrictionFeaturesSet {
        group: GroupId,
        features: BTreeMap<TypeCode, bool>,
    },
    /// A group's administrator contact was set; `None` clears it, and the group inherits its
    /// nearest ancestor's again.
    GroupContactSet {
        group: GroupId,
        contact_email: Option<String>,
    },
    /// The tenant's reminder template (subject and body), checked when it was set.
    NotificationTemplateSet {
        template: NotificationTemplate,
    },
    /// The secret webhook deliveries are signed with from now on (HMAC-SHA256). Set with the
    /// webhook's URL, in the same command; it stays inside the log (the HTTP history and the
    /// export leave it out).
    WebhookSecretSet {
        secret: String,
    },
    /// A restriction change at `at` unblocked `groups` (in `group`'s subtree; `group` itself
    /// among them when it was blocked): their window excluded `at` before the change and admits
    /// it after. `users` is how many active users are directly in them. Owed to the webhook
    /// as an `unblocked` notification.
    GroupsUnblocked {
        group: GroupId,
        groups: Vec<GroupId>,
        users: u64,
        #[serde(with = "instant")]
        at: DateTime<Utc>,
    },
    /// The `unblocked` notification of the `groups_unblocked` event at `version` was
    /// delivered to the webhook.
    UnblockedNotified {
        version: u64,
    },
    /// A user's personal limits and validity window are now exactly these.
    UserRestrictionSet {
        user: UserId,
        restriction: UserRestriction,
    },
    /// A user's personal limits and window were cleared: only their groups' bound them.
    UserRestrictionCleared {
        user: UserId,
    },
    /// The user became a member of another group besides their own (the one they were
    /// created in or moved to): licences assigned to them may count against it.
    UserGroupAdded {
        user: UserId,
        group: GroupId,
    },
    /// The user left one of their other groups; the licences that counted against it count
    /// against the user's own group from now on.
    UserGroupRemoved {
        user: UserId,
        group: GroupId,
    },
    /// Base licence `license` (with its add-ons) counts against `group` (one of `user`'s
    /// other groups) instead of the user's own group: it precedes the assignment or
    /// reassignment to `user` in the same command. (On a licence `user` already holds, it
    /// moves the licence's usage to `group`.)
    LicenseCountedIn {
        license: LicenseId,
        user: UserId,
        group: GroupId,
    },
    /// A metered service was defined or changed (switched, allowance, cap, requirements).
    ServiceDefined {
        service: crate::metering::Service,
    },
    /// A batch of usage records, each with what counted of it.
    UsageRecorded {
        records: Vec<crate::metering::UsageRecord>,
    },
    /// Changes stored together with the preview they were shown with: `commands` is the
    /// JSON array of what-if commands, previewed at `previewed_version`, moving this month's
    /// bill by `amount_minor_delta`.
    CartCreated {
        cart: crate::ids::CartId,
        commands: String,
        previewed_version: u64,
        amount_minor_delta: i64,
    },
    /// A cart was confirmed: its commands' events precede this one in the same batch.
    CartConfirmed {
        cart: crate::ids::CartId,
        amount_minor_delta: i64,
    },
}

/// What an issued key is, whichever event issued it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuedKey<'a> {
    pub key: KeyId,
    pub name: &'a str,
    pub role: Role,
    pub token_hash: [u8; 32],
    /// For a dealer's key: the group whose subtree it reads and manages.
    pub group: Option<GroupId>,
}

impl Event {
    /// The key an `ApiKeyIssued` or `ScopedApiKeyIssued` event issues.
    pub fn issued_key(&self) -> Option<IssuedKey<'_>> {
        match self {
            Event::ApiKeyIssued {
                key,
                name,
                role,
                token_hash,
            } => Some(IssuedKey {
                key: *key,
                name,
                role: *role,
                token_hash: *token_hash,
                group: None,
            }),
            Event::ScopedApiKeyIssued {
                key,
                name,
                role,
                token_hash,
                group,
            } => Some(IssuedKey {
                key: *key,
                name,
                role: *role,
                token_hash: *token_hash,
                group: Some(*group),
            }),
            _ => None,
        }
    }

    /// The snake_case name of the event kind, as `/events?kind=` filters it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::TenantCreated { .. } => "tenant_created",
            Event::LicenseTypeDefined { .. } => "license_type_defined",
            Event::LicensesProvisioned { .. } => "licenses_provisioned",
            Event::LicenseTerminated { .. } => "license_terminated",
            Event::LicenseAssigned { .. } => "license_assigned",
            Event::LicenseUnassigned { .. } => "license_unassigned",
            Event::LicenseReassigned { .. } => "license_reassigned",
            Event::AddonAttached { .. } => "addon_attached",
            Event::AddonDetached { .. } => "addon_detached",
            Event::GroupCreated { .. } => "group_created",
            Event::GroupMoved { .. } => "group_moved",
            Event::GroupRenamed { .. } => "group_renamed",
            Event::RestrictionSet { .. } => "restriction_set",
            Event::RestrictionCleared { .. } => "restriction_cleared",
            Event::UserCreated { .. } => "user_created",
            Event::UserMoved { .. } => "user_moved",
            Event::UserRenamed { .. } => "user_renamed",
            Event::UserRemoved { .. } => "user_removed",
            Event::RetentionSet { .. } => "retention_set",
            Event::PriceSet { .. } => "price_set",
            Event::ApiKeyIssued { .. } => "api_key_issued",
            Event::ApiKeyRevoked { .. } => "api_key_revoked",
            Event::UserNumbersSet { .. } => "user_numbers_set",
            Event::WebhookSet { .. } => "webhook_set",
            Event::ReminderDelivered { .. } => "reminder_delivered",
            Event::ScopedApiKeyIssued { .. } => "scoped_api_key_issued",
            Event::FeatureDefined { .. } => "feature_defined",
            Event::RestrictionFeaturesSet { .. } => "restriction_features_set",
            Event::GroupContactSet { .. } => "group_contact_set",
            Event::NotificationTemplateSet { .. } => "notification_template_set",
            Event::WebhookSecretSet { .. } => "webhook_secret_set",
            Event::GroupsUnblocked { .. } => "groups_unblocked",
            Event::UnblockedNotified { .. } => "unblocked_notified",
            Event::UserRestrictionSet { .. } => "user_restriction_set",
            Event::UserRestrictionCleared { .. } => "user_restriction_cleared",
            Event::UserGroupAdded { .. } => "user_group_added",
            Event::UserGroupRemoved { .. } => "user_group_removed",
            Event::LicenseCountedIn { .. } => "license_counted_in",
            Event::ServiceDefined { .. } => "service_defined",
            Event::UsageRecorded { .. } => "usage_recorded",
            Event::CartCreated { .. } => "cart_created",
            Event::CartConfirmed { .. } => "cart_confirmed",
        }
    }
}

/// A blake3 hash of an encoded envelope; the zero hash precedes a tenant's first event.
/// Lowercase hex in JSON, the 32 raw bytes in the binary encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EventHash(pub [u8; 32]);

impl Serialize for EventHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for EventHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            blake3::Hash::from_hex(&text)
                .map(|h| EventHash(*h.as_bytes()))
                .map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(EventHash)
        }
    }
}

impl EventHash {
    /// Lowercase hex, as the API shows it.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from(self.0).to_hex().to_string()
    }
}

/// One stored event with everything the log promises about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Global sequence number, gapless from 1.
    pub seq: u64,
    pub tenant: TenantId,
    /// Position in the tenant's stream, gapless from 1.
    pub version: u64,
    /// Server clock when the batch was decided.
    #[serde(with = "instant")]
    pub recorded_at: DateTime<Utc>,
    /// API key id, `root` or a CLI identity.
    pub actor: String,
    pub reason: Option<String>,
    pub command_id: CommandId,
    /// Hash of the tenant's previous event.
    pub prev_hash: EventHash,
    pub event: Event,
}

/// Tag of the first (and so far only) binary format of an envelope.
pub const FORMAT_V1: u8 = 1;
/// Largest encoded envelope accepted; a corrupt length prefix never allocates beyond it.
pub const ENVELOPE_BYTES_MAX: u64 = 8 << 20;

/// Why stored bytes could not be read back as an envelope.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty event record")]
    Empty,
    #[error("unknown event format version {0}")]
    UnknownFormat(u8),
    #[error("undecodable event: {0}")]
    Bincode(#[from] bincode::Error),
}

fn bincode_options() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_limit(ENVELOPE_BYTES_MAX)
        .reject_trailing_bytes()
}

impl Envelope {
    /// The stored bytes: the format tag, then bincode of the envelope.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![FORMAT_V1];
        // Serialising an in-memory envelope into a Vec cannot fail unless it exceeds the
        // limit, which `decide` prevents by bounding every input.
        bincode_options()
            .serialize_into(&mut bytes, self)
            .expect("an envelope within ENVELOPE_BYTES_MAX always encodes");
        bytes
    }

    /// Read stored bytes written by this or any earlier release.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        match bytes.split_first() {
            None => Err(DecodeError::Empty),
            Some((&FORMAT_V1, rest)) => Ok(bincode_options().deserialize(rest)?),
            Some((&other, _)) => Err(DecodeError::UnknownFormat(other)),
        }
    }

    /// The hash of encoded bytes, which the tenant's next event chains to.
    pub fn hash_of(encoded: &[u8]) -> EventHash {
        EventHash(*blake3::hash(encoded).as_bytes())
    }
}
