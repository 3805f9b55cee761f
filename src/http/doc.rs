//! The documentation types of the OpenAPI document: answer shapes, the error envelope, the
//! shared error responses and the sets of them routes answer with. Handlers build their answers
//! with `json!`, so the answer shapes are declared here, next to each other, as types that are
//! never constructed; `tests/it/openapi.rs` validates real answers against them, so a changed
//! answer that is not documented fails there.
//!
//! Types of the `events` crate (ids, roles, kinds) appear on the wire as plain strings; the
//! mirrors below (`RoleName`, `LicenseKind`, …) describe them without making the domain crate
//! depend on utoipa.
//!
//! This module knows no handler: handlers name these types in their `#[utoipa::path]`
//! attributes, and `openapi.rs` assembles the document from the handlers.

use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::openapi::{Ref, RefOr, Response};
use utoipa::{IntoParams, IntoResponses, ToResponse, ToSchema};
use uuid::Uuid;

// ---- Error sets ---------------------------------------------------------------------------

/// References to the shared error responses (`components.responses`) under their statuses.
fn error_responses(statuses: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    statuses
        .iter()
        .map(|(status, name)| {
            let reference = Ref::from_response_name(*name);
            (status.to_string(), RefOr::Ref(reference))
        })
        .collect()
}

/// What every authenticated route may answer with: 400, 401, 403 and 404.
pub struct ReadErrors;

impl IntoResponses for ReadErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        error_responses(&[
            ("400", "BadRequest"),
            ("401", "Unauthorized"),
            ("403", "Forbidden"),
            ("404", "NotFound"),
        ])
    }
}

/// What a write named by its path alone (no body) may answer with: [`ReadErrors`] and 409
/// and 422.
pub struct PathWriteErrors;

impl IntoResponses for PathWriteErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = ReadErrors::responses();
        responses.extend(error_responses(&[
            ("409", "Conflict"),
            ("422", "RuleViolation"),
        ]));
        responses
    }
}

/// What a write with a body may answer with: [`PathWriteErrors`] and 413.
pub struct WriteErrors;

impl IntoResponses for WriteErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let mut responses = PathWriteErrors::responses();
        responses.extend(error_responses(&[("413", "PayloadTooLarge")]));
        responses
    }
}

// ---- Error answers ------------------------------------------------------------------------

/// The error envelope of every failure.
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// One error: a stable code, a human message and machine-readable details.
#[derive(ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// Machine-readable details, e.g. `reason`, and `violations` of a 422
    /// (`[{rule, group_id?, type?, limit?, used?, message}]`).
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

/// The error codes, one per status.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    RuleViolation,
    PayloadTooLarge,
    MethodNotAllowed,
    Internal,
}

/// Malformed input whatever the state: bad JSON, wrong types, invalid UUIDs or instants,
/// unknown enum values or catalogue codes (`bad_request`).
#[derive(ToResponse)]
pub struct BadRequest(pub ErrorBody);

/// No token, or an unknown or revoked one (`unauthorized`).
#[derive(ToResponse)]
pub struct Unauthorized(pub ErrorBody);

/// The token's role may not do this, or the key belongs to another tenant (`forbidden`).
#[derive(ToResponse)]
pub struct Forbidden(pub ErrorBody);

/// The tenant or an entity named in the path or body does not exist (`not_found`).
#[derive(ToResponse)]
pub struct NotFound(pub ErrorBody);

/// Version mismatch (`If-Match`), an `Idempotency-Key` reused with another body, already
/// assigned, in use, duplicate id or extension (`conflict`).
#[derive(ToResponse)]
pub struct Conflict(pub ErrorBody);

/// The body is larger than the limit (`payload_too_large`).
#[derive(ToResponse)]
pub struct PayloadTooLarge(pub ErrorBody);

/// Valid input that breaks a domain rule; `details.violations` lists every rule broken
/// (`rule_violation`).
#[derive(ToResponse)]
pub struct RuleViolation(pub ErrorBody);

/// A rule broken, as listed in `details.violations` of a 422 and in what-if answers.
#[derive(ToSchema)]
pub struct Violation {
    pub rule: String,
    pub group_id: Option<Uuid>,
    /// The user whose personal settings the rule concerns (`user_limit_reached`, …).
    pub user_id: Option<Uuid>,
    #[schema(rename = "type")]
    pub license_type: Option<String>,
    pub limit: Option<u64>,
    pub used: Option<u64>,
    pub message: String,
    /// The command it belongs to (what-if only).
    pub index: Option<u64>,
    /// `true` for a dealer's key refused by a group above its subtree: `group_id` is then the
    /// key's group (see "Dealers" in docs/API.md).
    pub above_scope: Option<bool>,
}

// ---- Parameters ---------------------------------------------------------------------------

// The header bounds below are literals (utoipa takes no paths there); these keep them true.
const _: () = assert!(crate::idempotency::IDEMPOTENCY_KEY_BYTES_MAX == 200);
const _: () = assert!(super::extract::REASON_BYTES_MAX == 500);
// So is `max_length` of the free-text filters (`q`, `extension`, `kind`, `actor`).
const _: () = assert!(super::FILTER_TEXT_BYTES_MAX == 200);

/// The headers every write accepts.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct WriteHeaders {
    /// The tenant version the write expects (a plain number or the quoted `ETag`); 409 if the
    /// tenant is at another version.
    #[param(rename = "If-Match", value_type = String, required = false, pattern = r#"^(W/)?"?[0-9]{1,19}"?$"#)]
    pub if_match: Option<String>,
    /// The same key with the same request returns the first answer and appends nothing; with
    /// another request it is a 409.
    #[param(rename = "Idempotency-Key", value_type = String, required = false, min_length = 1, max_length = 200)]
    pub idempotency_key: Option<String>,
    /// Stored as the event's `reason`.
    #[param(rename = "X-Reason", value_type = String, required = false, max_length = 500)]
    pub x_reason: Option<String>,
}

/// `{t}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant id.
    pub t: Uuid,
}

/// `{t}`, `{key}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The tenant id.
    pub t: Uuid,
    /// The API key id.
    pub key: Uuid,
}

/// `{t}`, `{code}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CodePath {
    /// The tenant id.
    pub t: Uuid,
    /// A licence type code: 1 to 64 characters of a-z, 0-9 and _.
    #[param(pattern = "^[a-z0-9_]{1,64}$")]
    pub code: String,
}

/// `{t}`, `{type}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TypePath {
    /// The tenant id.
    pub t: Uuid,
    /// A licence type code of the tenant's catalogue.
    #[param(rename = "type", pattern = "^[a-z0-9_]{1,64}$")]
    pub license_type: String,
}

/// `{t}`, `{month}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MonthPath {
    /// The tenant id.
    pub t: Uuid,
    /// A month, `YYYY-MM`, in the tenant's billing time zone.
    #[param(pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub month: String,
}

/// `{t}`, `{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LicensePath {
    /// The tenant id.
    pub t: Uuid,
    /// The licence id.
    pub id: Uuid,
}

/// `{t}`, `{id}`, `{addon}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AddonPath {
    /// The tenant id.
    pub t: Uuid,
    /// The base licence id.
    pub id: Uuid,
    /// The add-on licence id.
    pub addon: Uuid,
}

/// `{t}`, `{g}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GroupPath {
    /// The tenant id.
    pub t: Uuid,
    /// The group id.
    pub g: Uuid,
}

/// `{t}`, `{u}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserPath {
    /// The tenant id.
    pub t: Uuid,
    /// The user id.
    pub u: Uuid,
}

/// `{t}`, `{id}` of a cart.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CartPath {
    /// The tenant id.
    pub t: Uuid,
    /// The cart id.
    pub id: Uuid,
}

/// `{t}`, `{u}`, `{g}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MembershipPath {
    /// The tenant id.
    pub t: Uuid,
    /// The user id.
    pub u: Uuid,
    /// One of the user's other groups.
    pub g: Uuid,
}

/// `{t}`, `{u}`, `{type}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EntitlementPath {
    /// The tenant id.
    pub t: Uuid,
    /// The user id.
    pub u: Uuid,
    /// A licence type code of the tenant's catalogue.
    #[param(rename = "type", pattern = "^[a-z0-9_]{1,64}$")]
    pub license_type: String,
}

// ---- Wire values of the domain ------------------------------------------------------------

/// The role of an API key.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum RoleName {
    Viewer,
    Operator,
    Admin,
    Auditor,
    Billing,
}

/// What a catalogue entry is: a seat held by a user, an add-on attached to a seat, or a
/// feature (no units; switched on or off by groups' restrictions).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum LicenseKind {
    Base,
    Addon,
    Feature,
}

/// What an entitlement is about.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum EntitlementKind {
    License,
    Feature,
    Service,
}

/// The state of a licence.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum LicenseStatusName {
    Free,
    Assigned,
    Terminated,
}

/// How often an expiry reminder repeats once it is due (the names `ReminderFrequency`
/// serialises to).
#[derive(ToSchema)]
pub enum ReminderFrequencyName {
    #[schema(rename = "once")]
    Once,
    #[schema(rename = "daily")]
    Daily,
    #[schema(rename = "weekly")]
    Weekly,
    #[schema(rename = "every_30_days")]
    Every30Days,
}

/// A reminder `days_before` a group's `valid_until`.
#[derive(ToSchema)]
pub struct ReminderBody {
    pub days_before: u32,
    pub frequency: ReminderFrequencyName,
}

// ---- Answers ------------------------------------------------------------------------------

/// `{"status": "ok", "seq", "writes"}`, plus `writes_stopped_reason` once writes are stopped,
/// and `role` and `lag_events` on a log shared with other nodes.
#[derive(ToSchema)]
pub struct Health {
    pub status: String,
    /// The global sequence of the last event.
    pub seq: u64,
    /// `ok` while writes are taken; `stopped` after a storage failure stopped them (until a
    /// restart).
    pub writes: WritesState,
    /// Why writes are stopped; present only when `writes` is `stopped`.
    pub writes_stopped_reason: Option<String>,
    /// On a log shared with other nodes (PostgreSQL): `writer` when this node holds the write
    /// lease, `follower` while another does (writes sent here are forwarded to it).
    pub role: Option<NodeRole>,
    /// On a shared log: events committed that this node has not folded yet.
    pub lag_events: Option<u64>,
}

/// A node's part in the log.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum NodeRole {
    Writer,
    Follower,
}

/// Whether the server takes writes.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum WritesState {
    Ok,
    Stopped,
}

/// The answer of a write: the global sequence of its last event and the tenant's version.
#[derive(ToSchema)]
pub struct Written {
    pub seq: u64,
    pub version: u64,
}

/// A creation: the new id, with the write's `seq` and `version`.
#[derive(ToSchema)]
pub struct Created {
    pub id: Uuid,
    pub seq: u64,
    pub version: u64,
}

/// Several creations at once.
#[derive(ToSchema)]
pub struct CreatedMany {
    pub ids: Vec<Uuid>,
    pub seq: u64,
    pub version: u64,
}

/// A new tenant.
#[derive(ToSchema)]
pub struct TenantCreated {
    pub id: Uuid,
    pub name: String,
    pub billing_timezone: String,
    pub currency: String,
    pub seq: u64,
    pub version: u64,
}

/// A tenant.
#[derive(ToSchema)]
pub struct TenantView {
    pub id: Uuid,
    pub name: String,
    pub billing_timezone: String,
    pub currency: String,
    pub version: u64,
    pub recording_retention: RetentionView,
}

/// `{"days"}` or `{"months"}`.
#[derive(ToSchema)]
pub struct RetentionView {
    pub days: Option<u32>,
    pub months: Option<u32>,
}

/// A new API key: the token is shown once.
#[derive(ToSchema)]
pub struct KeyIssued {
    pub id: Uuid,
    pub token: String,
    pub role: RoleName,
    /// For a dealer's key: the group whose subtree it reads and manages; `null` for a key of
    /// the whole tenant.
    pub group_id: Option<Uuid>,
    pub seq: u64,
    pub version: u64,
}

/// The tenant's catalogue.
#[derive(ToSchema)]
pub struct Catalogue {
    pub items: Vec<LicenseTypeView>,
}

/// One licence type and its rules, or a feature (its lists empty).
#[derive(ToSchema)]
pub struct LicenseTypeView {
    pub code: String,
    pub kind: LicenseKind,
    pub attaches_to: Vec<String>,
    pub requires_any: Vec<String>,
    pub excludes: Vec<String>,
    /// A feature's name (features only).
    #[schema(required = false)]
    pub name: String,
    /// Whether a feature is on where no group switches it (features only).
    #[schema(required = false)]
    pub enabled_by_default: bool,
}

/// A cart stored with the preview it was shown with.
#[derive(ToSchema)]
pub struct CartCreated {
    pub id: Uuid,
    /// The what-if answer at the version the cart was previewed at.
    #[schema(value_type = Object)]
    pub preview: serde_json::Value,
    /// What the cart moves this month's bill by (the sum of the preview's amounts).
    pub amount_minor_delta: i64,
    pub seq: u64,
    /// The version the cart is stored at: it may be confirmed only while the tenant is there.
    pub version: u64,
}

/// A stored cart.
#[derive(ToSchema)]
pub struct CartView {
    pub id: Uuid,
    /// The what-if commands, as sent.
    #[schema(value_type = Vec<Object>)]
    pub commands: serde_json::Value,
    pub version: u64,
    pub previewed_version: u64,
    pub amount_minor_delta: i64,
    pub confirmed: bool,
    pub confirmed_version: Option<u64>,
}

/// A cart confirmed: every command applied in one batch.
#[derive(ToSchema)]
pub struct CartConfirmed {
    pub id: Uuid,
    /// Events appended, `cart_confirmed` last.
    pub events: u64,
    pub amount_minor_delta: i64,
    pub seq: u64,
    pub version: u64,
}

/// A metered service defined or changed.
#[derive(ToSchema)]
pub struct ServiceDefined {
    pub code: String,
    pub seq: u64,
    pub version: u64,
}

/// Where a service's monthly cap was reached.
#[derive(ToSchema)]
pub struct CapReachedView {
    /// The tenant version of the `usage_recorded` event.
    pub version: u64,
    pub record_id: String,
    #[schema(format = DateTime)]
    pub occurred_at: String,
}

/// A metered service and its consumption in a month.
#[derive(ToSchema)]
pub struct ServiceView {
    pub code: String,
    pub name: String,
    pub unit: String,
    pub enabled: bool,
    pub base_allowance: u64,
    /// The most units a month may use over the base allowance; `null`: no cap.
    #[schema(nullable = true)]
    pub monthly_cap: Option<u64>,
    pub requires: Vec<String>,
    /// `YYYY-MM`.
    pub month: String,
    /// Units counted in the month.
    pub used: u64,
    /// Units reported, counted or not.
    pub reported: u64,
    pub records: u64,
    pub over_allowance: u64,
    /// Units left before the cap; `null` without a cap.
    #[schema(nullable = true)]
    pub remaining: Option<u64>,
    /// Whether the service stops now: switched off, a required service off, or the cap used.
    pub blocked: bool,
    /// `service_disabled`, `requires_missing`, `monthly_cap_reached` or `null`.
    #[schema(nullable = true)]
    pub blocked_by: Option<String>,
    /// When the month ends and the cap resets.
    #[schema(format = DateTime)]
    pub resets_at: String,
    #[schema(nullable = true)]
    pub cap_reached: Option<CapReachedView>,
}

/// Every metered service in a month.
#[derive(ToSchema)]
pub struct ServicePage {
    pub month: String,
    pub items: Vec<ServiceView>,
}

/// What became of one usage record.
#[derive(ToSchema)]
pub struct RecordAnswer {
    pub id: String,
    /// `counted`, `capped`, `service_disabled`, `requires_missing` or `duplicate`.
    pub status: String,
    pub counted: u64,
    /// It occurred in an earlier month than the current one (and counts there).
    pub late: bool,
}

/// A batch of usage records judged.
#[derive(ToSchema)]
pub struct UsageRecorded {
    /// Units counted over the batch.
    pub counted: u64,
    /// Records already seen, left out.
    pub duplicates: u64,
    pub records: Vec<RecordAnswer>,
    pub seq: u64,
    pub version: u64,
}

/// A type defined or changed.
#[derive(ToSchema)]
pub struct TypeDefined {
    pub code: String,
    pub seq: u64,
    pub version: u64,
}

/// Owned, assigned and free licences per type, at an instant.
#[derive(ToSchema)]
pub struct Usage {
    #[schema(format = DateTime)]
    pub at: String,
    pub types: BTreeMap<String, TypeUsage>,
}

/// Counts of one licence type.
#[derive(ToSchema)]
pub struct TypeUsage {
    pub owned: u64,
    pub assigned: u64,
    pub free: u64,
}

/// The owned quantity set, with the licences it provisioned or terminated.
#[derive(ToSchema)]
pub struct QuantitySet {
    pub quantity: u32,
    pub provisioned: Vec<Uuid>,
    pub terminated: Vec<Uuid>,
    pub seq: u64,
    pub version: u64,
}

/// An add-on attached to a licence.
#[derive(ToSchema)]
pub struct AddonRef {
    pub id: Uuid,
    #[schema(rename = "type")]
    pub license_type: Option<String>,
}

/// Free licences picked and assigned in one step.
#[derive(ToSchema)]
pub struct AssignmentMade {
    pub license_id: Option<Uuid>,
    pub user_id: Uuid,
    /// The group the licence counts against when it is not the user's own (`group_id` was
    /// given); `null`: the user's own group.
    pub group_id: Option<Uuid>,
    pub addons: Vec<AddonRef>,
    pub seq: u64,
    pub version: u64,
}

/// One licence; `events` (its full history) only for roles that read history.
#[derive(ToSchema)]
pub struct LicenseView {
    pub id: Uuid,
    #[schema(rename = "type")]
    pub license_type: String,
    pub kind: LicenseKind,
    pub status: LicenseStatusName,
    /// The holder (of the base licence, for an attached add-on).
    pub user_id: Option<Uuid>,
    /// For a held licence: the group whose quota it counts against (the holder's own group
    /// or one of their other groups).
    pub group_id: Option<Uuid>,
    /// The base licence an add-on is attached to.
    pub base_id: Option<Uuid>,
    pub addons: Vec<AddonRef>,
    pub events: Option<Vec<EventView>>,
}

/// A page of licences.
#[derive(ToSchema)]
pub struct LicensePage {
    pub items: Vec<LicenseView>,
    /// The `after` of the next page, `null` on the last.
    pub next: Option<String>,
}

/// One stored event.
#[derive(ToSchema)]
pub struct EventView {
    pub seq: u64,
    pub version: u64,
    #[schema(format = DateTime)]
    pub recorded_at: String,
    pub actor: String,
    pub reason: Option<String>,
    /// The event kind, e.g. `license_assigned`.
    pub kind: String,
    /// The event's fields.
    #[schema(value_type = Value)]
    pub data: Value,
    /// blake3 of the stored event, hex.
    pub hash: String,
}

/// A page of events.
#[derive(ToSchema)]
pub struct EventPage {
    pub items: Vec<EventView>,
    /// The `after` of the next page, `null` on the last.
    pub next: Option<String>,
}

/// A group's restriction.
#[derive(ToSchema)]
pub struct RestrictionView {
    pub enabled: bool,
    pub limits: BTreeMap<String, u64>,
    #[schema(format = DateTime)]
    pub valid_from: Option<String>,
    #[schema(format = DateTime)]
    pub valid_until: Option<String>,
    pub reminder: Option<ReminderBody>,
    /// The features it switches on (`true`) or off (`false`); absent ones are inherited.
    /// They count only while the restriction is enabled.
    pub features: BTreeMap<String, bool>,
}

/// A feature in a group: the group's own switch and what holds there.
#[derive(ToSchema)]
pub struct FeatureState {
    /// The group's own switch: on, off, or `null` (inherited).
    pub own: Option<bool>,
    /// Whether the feature is on for the group's users by the switches on its path (windows
    /// are in `blocked_by`).
    pub enabled: bool,
    /// The group whose switch decides `enabled`; `null` when the catalogue's default does.
    pub group_id: Option<Uuid>,
    pub group_name: Option<String>,
}

/// A group.
#[derive(ToSchema)]
pub struct GroupView {
    pub id: Uuid,
    pub name: String,
    pub parent_id: Option<Uuid>,
    pub children: Vec<Uuid>,
    pub restriction: Option<RestrictionView>,
    /// Licences of each type held by users anywhere in the group's subtree.
    pub used: BTreeMap<String, u64>,
    /// The group administrator's own contact address, `null` if the group has none.
    #[schema(format = "email")]
    pub contact_email: Option<String>,
    /// The contact that holds for the group: its own, else its nearest ancestor's.
    pub effective_contact: Option<EffectiveContact>,
}

/// The contact address that holds for a group, and the group it comes from.
#[derive(ToSchema)]
pub struct EffectiveContact {
    #[schema(format = "email")]
    pub email: String,
    /// The group whose own contact it is: the group itself, or an ancestor.
    pub group_id: Uuid,
    pub group_name: String,
    /// `true` when it comes from an ancestor.
    pub inherited: bool,
}

/// A page of groups.
#[derive(ToSchema)]
pub struct GroupPage {
    pub items: Vec<GroupView>,
    /// The `after` of the next page, `null` on the last.
    pub next: Option<String>,
}

/// A group named in its state.
#[derive(ToSchema)]
pub struct GroupRef {
    pub id: Uuid,
    pub name: String,
    pub parent_id: Option<Uuid>,
}

/// Limits, usage and remainders of one type in a group.
#[derive(ToSchema)]
pub struct TypeState {
    pub limit: Option<u64>,
    pub used: u64,
    pub remaining: Option<u64>,
    pub effective_remaining: Option<u64>,
    pub limited_by: Option<Uuid>,
}

/// An ancestor whose window blocks the group.
#[derive(ToSchema)]
pub struct WindowBlock {
    pub rule: String,
    pub group_id: Uuid,
    pub group_name: String,
    #[schema(format = DateTime)]
    pub valid_from: Option<String>,
    #[schema(format = DateTime)]
    pub valid_until: Option<String>,
}

/// A group's state at an instant.
#[derive(ToSchema)]
pub struct GroupStateView {
    #[schema(format = DateTime)]
    pub at: String,
    pub group: GroupRef,
    pub restriction: Option<RestrictionView>,
    pub types: BTreeMap<String, TypeState>,
    #[schema(format = DateTime)]
    pub valid_from: Option<String>,
    #[schema(format = DateTime)]
    pub valid_until: Option<String>,
    pub blocked_by: Vec<WindowBlock>,
    /// Every feature of the catalogue.
    pub features: BTreeMap<String, FeatureState>,
    /// The group administrator's own contact address.
    #[schema(format = "email")]
    pub contact_email: Option<String>,
    /// The contact that holds for the group (own or inherited), where reminders go.
    pub effective_contact: Option<EffectiveContact>,
}

/// A licence a user holds, with its add-ons.
#[derive(ToSchema)]
pub struct HeldLicense {
    pub id: Uuid,
    #[schema(rename = "type")]
    pub license_type: String,
    /// The group whose quota it counts against: the user's own or one of their others.
    pub group_id: Uuid,
    pub addons: Vec<AddonRef>,
}

/// A user with licences and add-ons.
#[derive(ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub name: String,
    /// The user's own group.
    pub group_id: Uuid,
    /// The groups the user belongs to besides their own (`POST /users/{u}/groups`).
    pub other_group_ids: Vec<Uuid>,
    pub extension: Option<String>,
    pub number: Option<String>,
    pub removed: bool,
    pub licenses: Vec<HeldLicense>,
    /// The user's personal limits and window; `null` without.
    pub restriction: Option<UserRestrictionView>,
}

/// A user's personal settings, inside their group's.
#[derive(ToSchema)]
pub struct UserRestrictionView {
    /// Licences of each type the user may hold.
    pub limits: BTreeMap<String, u64>,
    /// Licences of each limited type the user holds.
    pub used: BTreeMap<String, u64>,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
}

/// A page of users.
#[derive(ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    /// The `after` of the next page, `null` on the last.
    pub next: Option<String>,
}

/// One check of an entitlement.
#[derive(ToSchema)]
pub struct CheckView {
    pub rule: String,
    pub passed: bool,
    pub detail: String,
    pub group_id: Option<Uuid>,
    pub group_name: Option<String>,
    /// The user whose personal settings the check reads (`user_window`, `user_limit`).
    #[schema(nullable = false)]
    pub user_id: Option<Uuid>,
    /// The limit the check compares with: the group's limit of the type where its restriction
    /// sets one, or the user's personal limit for `user_limit` (absent otherwise).
    #[schema(nullable = false)]
    pub limit: Option<u64>,
    /// How much of that limit is used: the group's subtree, or the user's own holdings.
    #[schema(nullable = false)]
    pub used: Option<u64>,
    /// For a metered service's `monthly_cap` / `monthly_cap_reached`: when the month ends
    /// and the cap resets (`limit` is the month's maximum, `used` what counted).
    #[schema(nullable = false, format = DateTime)]
    pub resets_at: Option<String>,
}

/// The first failing check.
#[derive(ToSchema)]
pub struct BlockedBy {
    pub rule: String,
    pub detail: String,
    pub group_id: Option<Uuid>,
    pub group_name: Option<String>,
    /// For `user_window_*` and `user_limit_reached`: the user.
    #[schema(nullable = false)]
    pub user_id: Option<Uuid>,
    /// For `limit_reached`, `user_limit_reached` (and a window check of a group limiting the
    /// type): the limit.
    #[schema(nullable = false)]
    pub limit: Option<u64>,
    /// The usage of that limit.
    #[schema(nullable = false)]
    pub used: Option<u64>,
    /// For `monthly_cap_reached`: when the cap resets.
    #[schema(nullable = false, format = DateTime)]
    pub resets_at: Option<String>,
}

/// Whether a user may use a type, with every check in order.
#[derive(ToSchema)]
pub struct EntitlementView {
    #[schema(format = DateTime)]
    pub at: String,
    pub user_id: Uuid,
    #[schema(rename = "type")]
    pub license_type: String,
    /// `license`, `feature` or `service`: what `type` names.
    pub kind: EntitlementKind,
    pub allowed: bool,
    pub checks: Vec<CheckView>,
    pub blocked_by: Option<BlockedBy>,
}

/// A month's billing figures of one type, with the event behind its peak.
#[derive(ToSchema)]
pub struct MonthFigures {
    pub peak_units: u64,
    #[schema(format = DateTime)]
    pub peak_at: String,
    pub peak_seq: u64,
    pub peak_actor: String,
    pub peak_assigned: u64,
    pub units_at_end: u64,
}

/// A month's billing figures.
#[derive(ToSchema)]
pub struct BillingMonth {
    pub month: String,
    pub timezone: String,
    pub currency: String,
    pub types: BTreeMap<String, MonthFigures>,
    /// Metered services with consumption in the month (the month each record occurred in).
    pub services: BTreeMap<String, ServiceMonthFigures>,
    pub through_seq: u64,
    pub closed: bool,
}

/// A metered service's month, for billing.
#[derive(ToSchema)]
pub struct ServiceMonthFigures {
    pub unit: Option<String>,
    pub used: u64,
    pub records: u64,
    pub base_allowance: u64,
    /// The cap over the base allowance in force at month end; `null`: none.
    pub monthly_cap: Option<u64>,
    pub over_allowance: u64,
    /// The global sequence of the event whose record reached the cap, and the record's id.
    pub cap_reached_seq: Option<u64>,
    pub cap_reached_record: Option<String>,
}

/// One metered invoice line: units over the base allowance × the service's price.
#[derive(ToSchema)]
pub struct MeteredLine {
    pub service: String,
    pub unit: String,
    pub used: u64,
    pub base_allowance: u64,
    pub billable_units: u64,
    /// `null` when no price was in force at month end.
    pub unit_price_minor: Option<i64>,
    pub amount_minor: i64,
}

/// One invoice line.
#[derive(ToSchema)]
pub struct InvoiceLine {
    #[schema(rename = "type")]
    pub license_type: String,
    pub peak_units: u64,
    /// `null` when no price was in force at month end.
    pub unit_price_minor: Option<i64>,
    pub amount_minor: i64,
}

/// A month's invoice; `digest` binds it to the log.
#[derive(ToSchema)]
pub struct Invoice {
    pub month: String,
    pub currency: String,
    pub lines: Vec<InvoiceLine>,
    /// Present when metered services have consumption in the month.
    #[schema(nullable = false)]
    pub metered: Option<Vec<MeteredLine>>,
    pub total_minor: i64,
    pub through_seq: u64,
    pub digest: String,
}

/// The outcome of one what-if command.
#[derive(ToSchema)]
pub struct WhatIfResult {
    pub index: u64,
    pub op: String,
    pub ok: bool,
    /// The kinds of the events it would append (when `ok`).
    pub events: Option<Vec<String>>,
    /// Why it would be refused (when not `ok`).
    pub error: Option<ErrorDetail>,
}

/// A user who would lose an entitlement.
#[derive(ToSchema)]
pub struct WouldBlock {
    pub user_id: Uuid,
    #[schema(rename = "type")]
    pub license_type: String,
    pub rule: String,
    pub group_id: Option<Uuid>,
    pub group_name: Option<String>,
    pub detail: String,
}

/// The change of a type's billing in the month.
#[derive(ToSchema)]
pub struct BillingDelta {
    pub peak_units_before: u64,
    pub peak_units_after: u64,
    pub amount_minor_before: i64,
    pub amount_minor_after: i64,
    pub amount_minor_delta: i64,
}

/// A what-if preview; nothing was written.
#[derive(ToSchema)]
pub struct WhatIfReport {
    #[schema(format = DateTime)]
    pub at: String,
    pub month: String,
    pub version: u64,
    pub currency: String,
    pub ok: bool,
    pub results: Vec<WhatIfResult>,
    pub violations: Vec<Violation>,
    pub would_block: Vec<WouldBlock>,
    pub billing_delta: BTreeMap<String, BillingDelta>,
}

/// One bad cell or row of an import.
#[derive(ToSchema)]
pub struct ImportRowError {
    /// Numbered from 1 for the first data row (the header is row 0).
    pub row: u32,
    /// The header of the column at fault, as the file spells it.
    pub column: String,
    pub code: String,
    pub message: String,
}

/// An import's report. A bad file answers 422 with this report in the error's `details`.
#[derive(ToSchema)]
pub struct ImportReport {
    pub applied: bool,
    pub rows: u64,
    pub errors: Vec<ImportRowError>,
    /// Events appended (applied imports only).
    pub events: Option<u64>,
    /// The write's global sequence (applied imports only).
    pub seq: Option<u64>,
    /// The tenant's version after the write (applied imports only).
    pub version: Option<u64>,
}

/// A group's reminder occurrence due by `due_before`.
#[derive(ToSchema)]
pub struct DueReminder {
    pub group_id: Uuid,
    pub group_name: String,
    #[schema(format = DateTime)]
    pub valid_until: String,
    pub days_before: u32,
    pub frequency: ReminderFrequencyName,
    #[schema(format = DateTime)]
    pub due_at: String,
    pub delivered: bool,
}

/// The answer of `PUT /webhook`: the write, and the secret deliveries are signed with.
#[derive(ToSchema)]
pub struct WebhookSet {
    pub seq: u64,
    pub version: u64,
    /// `whsec_` and 64 hex digits: the HMAC-SHA256 key of the `Ledger-Signature` header.
    /// Shown only in this answer (and its idempotent replay); setting the webhook again
    /// rotates it.
    pub secret: String,
}

/// A variable a notification template may name.
#[derive(ToSchema)]
pub struct TemplateVariable {
    pub name: String,
    pub description: String,
}

/// The tenant's reminder template.
#[derive(ToSchema)]
pub struct NotificationTemplateView {
    pub subject: String,
    pub body: String,
    /// `true` while the tenant has set none and the default applies.
    pub default: bool,
    /// What the template may name.
    pub variables: Vec<TemplateVariable>,
}

/// The reminders due, and where they are delivered.
#[derive(ToSchema)]
pub struct DueReminders {
    #[schema(format = DateTime)]
    pub due_before: String,
    pub items: Vec<DueReminder>,
    pub webhook: Option<String>,
}
