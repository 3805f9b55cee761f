//! Why `decide` refused a command. Every variant reads as a sentence and has a stable code.

use crate::ids::{GroupId, KeyId, LicenseId, TypeCode, UserId};
use crate::notification::TemplateProblem;

/// A domain rule a command would break (HTTP 422 `rule_violation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    GroupLimitReached,
    ChildLimitExceedsParent,
    WindowOutsideParent,
    WindowReversed,
    SipNumberBelowMobileApp,
    LimitBelowUsage,
    RequiresMissing,
    ExcludedType,
    AddonCannotAttach,
    AddonTypeAlreadyAttached,
    OneBasePerType,
    NotABaseLicense,
    NotAnAddon,
    NoFreeLicense,
    NotEnoughFreeLicenses,
    QuantityStepTooLarge,
    GroupCycle,
    GroupDepthExceeded,
    CurrencyMismatch,
    BaseCannotAttach,
    AddonAttachesToNothing,
    AttachesToNonBase,
    RequiresCycle,
    KindChangeInUse,
    AssignmentInvalidated,
    TenantLimitReached,
    /// A feature code where a licence type is needed: features have no units.
    FeatureHasNoUnits,
    /// A licence type code where a feature is needed (a restriction's `features`).
    NotAFeature,
    /// A group may not switch on a feature an ancestor's restriction switches off.
    FeatureDisabledAbove,
    /// A code cannot change between a licence type and a feature.
    CatalogueKindChange,
    /// A user already holds as many licences of a type as their personal limit allows.
    UserLimitReached,
    /// A user's personal limit is above the effective limit of their group's path.
    UserLimitExceedsGroup,
    /// A user's personal limit is below the licences of the type they hold.
    UserLimitBelowUsage,
    /// A user's personal window does not lie inside their group's effective window.
    UserWindowOutsideGroup,
    /// An assignment names a group to count against that the user does not belong to.
    UserNotInGroup,
    /// A user already belongs to as many other groups as allowed.
    UserGroupsFull,
}

impl Rule {
    /// The stable snake_case name clients match on.
    pub fn as_str(&self) -> &'static str {
        match self {
            Rule::GroupLimitReached => "group_limit_reached",
            Rule::ChildLimitExceedsParent => "child_limit_exceeds_parent",
            Rule::WindowOutsideParent => "window_outside_parent",
            Rule::WindowReversed => "window_reversed",
            Rule::SipNumberBelowMobileApp => "sip_number_below_mobile_app",
            Rule::LimitBelowUsage => "limit_below_usage",
            Rule::RequiresMissing => "requires_missing",
            Rule::ExcludedType => "excluded_type",
            Rule::AddonCannotAttach => "addon_cannot_attach",
            Rule::AddonTypeAlreadyAttached => "addon_type_already_attached",
            Rule::OneBasePerType => "one_base_per_type",
            Rule::NotABaseLicense => "not_a_base_license",
            Rule::NotAnAddon => "not_an_addon",
            Rule::NoFreeLicense => "no_free_license",
            Rule::NotEnoughFreeLicenses => "not_enough_free_licenses",
            Rule::QuantityStepTooLarge => "quantity_step_too_large",
            Rule::GroupCycle => "group_cycle",
            Rule::GroupDepthExceeded => "group_depth_exceeded",
            Rule::CurrencyMismatch => "currency_mismatch",
            Rule::BaseCannotAttach => "base_cannot_attach",
            Rule::AddonAttachesToNothing => "addon_attaches_to_nothing",
            Rule::AttachesToNonBase => "attaches_to_non_base",
            Rule::RequiresCycle => "requires_cycle",
            Rule::KindChangeInUse => "kind_change_in_use",
            Rule::AssignmentInvalidated => "assignment_invalidated",
            Rule::TenantLimitReached => "tenant_limit_reached",
            Rule::FeatureHasNoUnits => "feature_has_no_units",
            Rule::NotAFeature => "not_a_feature",
            Rule::FeatureDisabledAbove => "feature_disabled_above",
            Rule::CatalogueKindChange => "catalogue_kind_change",
            Rule::UserLimitReached => "user_limit_reached",
            Rule::UserLimitExceedsGroup => "user_limit_exceeds_group",
            Rule::UserLimitBelowUsage => "user_limit_below_usage",
            Rule::UserWindowOutsideGroup => "user_window_outside_group",
            Rule::UserNotInGroup => "user_not_in_group",
            Rule::UserGroupsFull => "user_groups_full",
        }
    }
}

/// One broken rule, with where and by how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub group: Option<GroupId>,
    /// The user whose personal settings the rule concerns.
    pub user: Option<UserId>,
    pub license_type: Option<TypeCode>,
    pub limit: Option<u64>,
    pub used: Option<u64>,
    pub message: String,
    /// Shown to a dealer's key for a group above its scope: `group` is then the scope group,
    /// and the limits and usage above (the issuer's) are left out.
    pub above_scope: bool,
}

impl Violation {
    /// A violation with only a rule and a message.
    pub fn new(rule: Rule, message: impl Into<String>) -> Violation {
        Violation {
            rule,
            group: None,
            user: None,
            license_type: None,
            limit: None,
            used: None,
            message: message.into(),
            above_scope: false,
        }
    }

    /// Name the group where the rule applies.
    pub fn in_group(mut self, group: GroupId) -> Violation {
        self.group = Some(group);
        self
    }

    /// Name the user whose personal settings the rule concerns.
    pub fn of_user(mut self, user: UserId) -> Violation {
        self.user = Some(user);
        self
    }

    /// Name the licence type concerned.
    pub fn of_type(mut self, license_type: &TypeCode) -> Violation {
        self.license_type = Some(license_type.clone());
        self
    }

    /// The limit and the usage it was compared with.
    pub fn counts(mut self, limit: u64, used: u64) -> Violation {
        self.limit = Some(limit);
        self.used = Some(used);
        self
    }
}

/// One bad cell of an import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    pub row: u32,
    /// The header of the column at fault, as the file spells it.
    pub column: String,
    pub code: String,
    pub message: String,
}

/// How a rejection maps onto the API's error classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectionClass {
    /// Malformed whatever the state (400).
    BadInput,
    /// Something named does not exist (404).
    NotFound,
    /// The state conflicts: already assigned, in use, taken (409).
    Conflict,
    /// Valid input that breaks a domain rule (422).
    RuleViolation,
    /// The caller's key may not do this anywhere it could name (403).
    Forbidden,
}

/// Why a command was refused. Nothing was stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{0}")]
    InvalidInput(String),
    #[error("unknown licence type `{0}`")]
    UnknownLicenseType(TypeCode),
    #[error("unknown feature `{0}`")]
    UnknownFeature(TypeCode),
    #[error("tenant already exists")]
    TenantAlreadyExists,
    #[error("licence {0} not found")]
    LicenseNotFound(LicenseId),
    #[error("user {0} not found")]
    UserNotFound(UserId),
    #[error("group {0} not found")]
    GroupNotFound(GroupId),
    #[error("key {0} not found")]
    KeyNotFound(KeyId),
    #[error("licence {0} is terminated")]
    LicenseTerminated(LicenseId),
    #[error("licence {license} is already assigned{}", holder_text(.user, .base))]
    LicenseAlreadyAssigned {
        license: LicenseId,
        user: Option<UserId>,
        base: Option<LicenseId>,
    },
    #[error("licence {0} is not assigned")]
    LicenseNotAssigned(LicenseId),
    #[error("licence {license} is in use{}{}", holder_text(.user, .base), addons_text(.addons))]
    LicenseInUse {
        license: LicenseId,
        user: Option<UserId>,
        base: Option<LicenseId>,
        addons: Vec<LicenseId>,
    },
    #[error("add-on {addon} is not attached to licence {base}")]
    AddonNotAttached { addon: LicenseId, base: LicenseId },
    /// `user`: the holder, `None` when the caller's scope does not include them.
    #[error("extension {extension} is already used by {}", .user.map_or_else(|| "another user".to_string(), |u| format!("user {u}")))]
    ExtensionTaken {
        extension: String,
        user: Option<UserId>,
    },
    #[error("user {user} still holds {} licence(s)", .licenses.len())]
    UserHoldsLicenses {
        user: UserId,
        licenses: Vec<LicenseId>,
    },
    #[error("user {0} already exists")]
    UserAlreadyExists(UserId),
    #[error("group {0} already exists")]
    GroupAlreadyExists(GroupId),
    #[error("key {0} already exists")]
    KeyAlreadyExists(KeyId),
    #[error("key {0} is already revoked")]
    KeyAlreadyRevoked(KeyId),
    #[error("{}", violations_text(.0))]
    RuleViolations(Vec<Violation>),
    /// Some items of a batch were refused; each with its index. Nothing was stored.
    #[error("{} item(s) of the batch were refused; nothing was stored", .0.len())]
    BatchRejected(Vec<(usize, Rejection)>),
    /// Some rows of an import are bad; every one is listed. Nothing was stored.
    #[error("{} row(s) of the import are bad; nothing was applied", .0.len())]
    ImportRejected(Vec<RowError>),
    /// Removing `license` from `user` (unassign, reassign, detach) would leave licences they
    /// hold without the type those require: remove the dependants first.
    #[error(
        "licence {license} is required by {} licence(s) user {user} holds ({}); remove those first",
        .dependants.len(),
        dependants_text(.dependants)
    )]
    RequiredByHeld {
        license: LicenseId,
        user: UserId,
        /// The licences that would lose what they require, with their types.
        dependants: Vec<(LicenseId, TypeCode)>,
    },
    /// A contact address that is not a bare `local@domain.tld`.
    #[error("contact_email `{0}` is not an email address such as admin@example.com")]
    InvalidEmail(String),
    /// A notification template that is too long, does not parse or names an unknown variable.
    #[error("{}", template_text(.0))]
    InvalidTemplate(crate::notification::TemplateProblem),
    /// The `unblocked` notification of this event was delivered already, or none is owed.
    #[error("no unblocked notification is owed for the event at version {version}")]
    UnblockedAlreadyNotified { version: u64 },
    #[error("the reminder of group {group} due at {due_at} was already delivered")]
    ReminderAlreadyDelivered {
        group: GroupId,
        due_at: chrono::DateTime<chrono::Utc>,
    },
    #[error("cart {0} not found")]
    CartNotFound(crate::ids::CartId),
    #[error("cart {0} already exists")]
    CartAlreadyExists(crate::ids::CartId),
    #[error("cart {cart} was confirmed already, at version {version}")]
    CartAlreadyConfirmed {
        cart: crate::ids::CartId,
        version: u64,
    },
    /// The tenant changed after the cart was previewed: preview it again.
    #[error(
        "cart {cart} was previewed at version {previewed}, the tenant is at {current}: preview it again"
    )]
    CartStale {
        cart: crate::ids::CartId,
        previewed: u64,
        current: u64,
    },
    /// A usage record or a requirement names a service the tenant has not defined.
    #[error("unknown service `{0}`; define it with PUT /services/{0}")]
    UnknownService(TypeCode),
    /// The user already belongs to the group (as their own or one of their other groups).
    #[error("user {user} already belongs to group {group}")]
    AlreadyInGroup { user: UserId, group: GroupId },
    /// The group is not one of the user's other groups.
    #[error("user {user} is not a member of group {group} besides their own")]
    NotAMember { user: UserId, group: GroupId },
    /// A user cannot leave their own group: move them (`PATCH` `group_id`) instead.
    #[error("group {group} is user {user}'s own group; move the user to another group instead")]
    OwnGroup { user: UserId, group: GroupId },
    /// A key scoped to a group asked for something outside that group's subtree that names
    /// nothing it could probe (tenant-wide settings, the scope group itself, a root group).
    #[error("{0}")]
    OutsideScope(String),
}

fn holder_text(user: &Option<UserId>, base: &Option<LicenseId>) -> String {
    match (user, base) {
        (Some(u), _) => format!(" by user {u}"),
        (None, Some(b)) => format!(" as an add-on of licence {b}"),
        (None, None) => String::new(),
    }
}

fn addons_text(addons: &[LicenseId]) -> String {
    if addons.is_empty() {
        String::new()
    } else {
        format!(" ({} add-on(s) attached)", addons.len())
    }
}

fn dependants_text(dependants: &[(LicenseId, TypeCode)]) -> String {
    let named: Vec<String> = dependants
        .iter()
        .map(|(id, t)| format!("{t} {id}"))
        .collect();
    named.join(", ")
}

fn template_text(problem: &TemplateProblem) -> String {
    match problem {
        TemplateProblem::TooLong { field, max } => {
            format!("the template's {field} is longer than {max} bytes")
        }
        TemplateProblem::Syntax { field, message } => {
            format!("the template's {field} does not parse: {message}")
        }
        TemplateProblem::UnknownVariables { field, names } => format!(
            "the template's {field} names unknown variable(s) {}; known: {}",
            names.join(", "),
            crate::notification::TEMPLATE_VARIABLES
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn violations_text(violations: &[Violation]) -> String {
    let messages: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
    messages.join("; ")
}

impl Rejection {
    /// The class that decides the HTTP status.
    pub fn class(&self) -> RejectionClass {
        use Rejection::*;
        match self {
            InvalidInput(_)
            | UnknownLicenseType(_)
            | UnknownFeature(_)
            | UnknownService(_)
            | InvalidEmail(_)
            | InvalidTemplate(_) => RejectionClass::BadInput,
            LicenseNotFound(_) | UserNotFound(_) | GroupNotFound(_) | KeyNotFound(_) => {
                RejectionClass::NotFound
            }
            TenantAlreadyExists
            | LicenseTerminated(_)
            | LicenseAlreadyAssigned { .. }
            | LicenseNotAssigned(_)
            | LicenseInUse { .. }
            | AddonNotAttached { .. }
            | ExtensionTaken { .. }
            | UserHoldsLicenses { .. }
            | UserAlreadyExists(_)
            | GroupAlreadyExists(_)
            | KeyAlreadyExists(_)
            | KeyAlreadyRevoked(_)
            | RequiredByHeld { .. }
            | ReminderAlreadyDelivered { .. }
            | UnblockedAlreadyNotified { .. }
            | AlreadyInGroup { .. }
            | OwnGroup { .. }
            | CartAlreadyExists(_)
            | CartAlreadyConfirmed { .. }
            | CartStale { .. } => RejectionClass::Conflict,
            CartNotFound(_) => RejectionClass::NotFound,
            NotAMember { .. } => RejectionClass::NotFound,
            OutsideScope(_) => RejectionClass::Forbidden,
            ImportRejected(_) => RejectionClass::RuleViolation,
            RuleViolations(_) => RejectionClass::RuleViolation,
            BatchRejected(items) => items
                .first()
                .map_or(RejectionClass::BadInput, |(_, first)| first.class()),
        }
    }

    /// A precise snake_case reason, finer than the class (for `details.reason`).
    pub fn reason(&self) -> &'static str {
        use Rejection::*;
        match self {
            InvalidInput(_) => "invalid_input",
            InvalidEmail(_) => "invalid_email",
            InvalidTemplate(problem) => match problem {
                TemplateProblem::TooLong { .. } => "template_too_long",
                TemplateProblem::Syntax { .. } => "template_syntax",
                TemplateProblem::UnknownVariables { .. } => "unknown_template_variable",
            },
            UnknownLicenseType(_) => "unknown_license_type",
            UnknownFeature(_) => "unknown_feature",
            UnknownService(_) => "unknown_service",
            CartNotFound(_) => "cart_not_found",
            CartAlreadyExists(_) => "cart_already_exists",
            CartAlreadyConfirmed { .. } => "cart_already_confirmed",
            CartStale { .. } => "cart_stale",
            TenantAlreadyExists => "tenant_already_exists",
            LicenseNotFound(_) => "license_not_found",
            UserNotFound(_) => "user_not_found",
            GroupNotFound(_) => "group_not_found",
            KeyNotFound(_) => "key_not_found",
            LicenseTerminated(_) => "license_terminated",
            LicenseAlreadyAssigned { .. } => "license_already_assigned",
            LicenseNotAssigned(_) => "license_not_assigned",
            LicenseInUse { .. } => "license_in_use",
            AddonNotAttached { .. } => "addon_not_attached",
            ExtensionTaken { .. } => "extension_taken",
            UserHoldsLicenses { .. } => "user_holds_licenses",
            UserAlreadyExists(_) => "user_already_exists",
            GroupAlreadyExists(_) => "group_already_exists",
            KeyAlreadyExists(_) => "key_already_exists",
            KeyAlreadyRevoked(_) => "key_already_revoked",
            RuleViolations(_) => "rule_violations",
            BatchRejected(_) => "batch_rejected",
            ImportRejected(_) => "import_rejected",
            RequiredByHeld { .. } => "required_by_held_licenses",
            ReminderAlreadyDelivered { .. } => "reminder_already_delivered",
            UnblockedAlreadyNotified { .. } => "unblocked_already_notified",
            OutsideScope(_) => "outside_key_scope",
            AlreadyInGroup { .. } => "already_in_group",
            NotAMember { .. } => "membership_not_found",
            OwnGroup { .. } => "own_group",
        }
    }

    /// The violations of a 422, empty otherwise.
    pub fn violations(&self) -> &[Violation] {
        match self {
            Rejection::RuleViolations(v) => v,
            _ => &[],
        }
    }
}
